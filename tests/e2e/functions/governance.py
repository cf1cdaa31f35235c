"""Governance functions written the way a SageMaker team writes them for AWS Lambda: plain
boto3 clients, no endpoint configuration, reacting to "SageMaker Training Job State Change"
events and to an alarm's SNS notification. Nothing here knows about Trainyard.

Handlers (one function each):
  tag_guard       stop a job that reaches Starting without the required tags
  idle_alarms     create an idle alarm per job at Training, delete it when the job ends
  idle_stopper    SNS-subscribed: stop the job whose idle alarm went to ALARM
  failure_cloner  clone a job that failed after running a long time
  spot_replacer   replace a spot job interrupted more than three times by an on-demand clone
"""
import json
import os

import boto3

sagemaker = boto3.client("sagemaker")
cloudwatch = boto3.client("cloudwatch")

REQUIRED_TAGS = [t for t in os.environ.get("REQUIRED_TAGS", "team").split(",") if t]
IDLE_TOPIC_ARN = os.environ.get("IDLE_TOPIC_ARN", "")
MIN_RUN_SECONDS = float(os.environ.get("MIN_RUN_SECONDS", "5"))
TERMINAL = ("Completed", "Failed", "Stopped")

# The members of DescribeTrainingJob that CreateTrainingJob takes back.
CLONED = ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig",
          "ResourceConfig", "StoppingCondition", "CheckpointConfig", "HyperParameters",
          "EnableManagedSpotTraining", "Environment", "RetryStrategy")


def tag_guard(event, context):
    d = event["detail"]
    if d["TrainingJobStatus"] != "InProgress" or d["SecondaryStatus"] != "Starting":
        return {"action": "none"}
    missing = [k for k in REQUIRED_TAGS if k not in (d.get("Tags") or {})]
    if not missing:
        return {"action": "none"}
    sagemaker.stop_training_job(TrainingJobName=d["TrainingJobName"])
    print(f"stopped {d['TrainingJobName']}: missing required tags {missing}")
    return {"action": "stopped", "job": d["TrainingJobName"]}


def idle_alarms(event, context):
    d = event["detail"]
    name = d["TrainingJobName"]
    alarm = f"idle-{name}"
    if d["TrainingJobStatus"] == "InProgress" and d["SecondaryStatus"] == "Training":
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            AlarmDescription=f"{name} is idle",
            Namespace="/aws/sagemaker/TrainingJobs",
            MetricName="CPUUtilization",
            Dimensions=[{"Name": "Host", "Value": f"{name}/algo-1"}],
            Statistic="Average", Period=10, EvaluationPeriods=2, DatapointsToAlarm=2,
            Threshold=5.0, ComparisonOperator="LessThanThreshold",
            TreatMissingData="notBreaching", AlarmActions=[IDLE_TOPIC_ARN])
        print(f"created alarm {alarm}")
    elif d["TrainingJobStatus"] in TERMINAL:
        cloudwatch.delete_alarms(AlarmNames=[alarm])
        print(f"deleted alarm {alarm}")


def idle_stopper(event, context):
    stopped = []
    for record in event["Records"]:
        message = json.loads(record["Sns"]["Message"])
        if message["NewStateValue"] != "ALARM":
            continue
        host = next(d["value"] for d in message["Trigger"]["Dimensions"] if d["name"] == "Host")
        job = host.split("/")[0]
        status = sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobStatus"]
        if status == "InProgress":
            sagemaker.stop_training_job(TrainingJobName=job)
            print(f"stopped idle job {job} ({message['AlarmName']}: {message['NewStateReason']})")
            stopped.append(job)
    return {"stopped": stopped}


def _clone(name, new_name, **changes):
    job = sagemaker.describe_training_job(TrainingJobName=name)
    request = {k: job[k] for k in CLONED if k in job}
    request.update(changes)
    tags = sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    request["Tags"] = tags + [{"Key": "cloned-from", "Value": name}]
    sagemaker.create_training_job(TrainingJobName=new_name, **request)
    print(f"cloned {name} as {new_name}")
    return new_name


def failure_cloner(event, context):
    d = event["detail"]
    if d["TrainingJobStatus"] != "Failed" or d["TrainingJobName"].endswith("-retry"):
        return {"action": "none"}
    if d["TrainingStartTime"] is None or d["TrainingEndTime"] is None:
        return {"action": "none"}
    ran = (d["TrainingEndTime"] - d["TrainingStartTime"]) / 1000
    if ran < MIN_RUN_SECONDS:
        print(f"{d['TrainingJobName']} failed after {ran:.1f}s: too early to retry")
        return {"action": "none"}
    return {"action": "cloned", "job": _clone(d["TrainingJobName"], d["TrainingJobName"] + "-retry")}


def spot_replacer(event, context):
    d = event["detail"]
    interruptions = sum(1 for t in d["SecondaryStatusTransitions"] if t["Status"] == "Interrupted")
    if (interruptions <= 3 or not d["EnableManagedSpotTraining"]
            or d["TrainingJobStatus"] != "InProgress"):
        return {"action": "none", "interruptions": interruptions}
    name = d["TrainingJobName"]
    # Events arrive at least once and describe the moment they were sent: act on the job as it
    # is now, so a later event of the same change does nothing.
    if sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] != "InProgress":
        return {"action": "none", "interruptions": interruptions}
    sagemaker.stop_training_job(TrainingJobName=name)
    stopping = dict(d["StoppingCondition"])
    stopping.pop("MaxWaitTimeInSeconds", None)
    clone = _clone(name, name + "-ondemand", EnableManagedSpotTraining=False,
                   StoppingCondition=stopping)
    print(f"replaced {name} after {interruptions} interruptions by {clone}")
    return {"action": "replaced", "job": clone}
