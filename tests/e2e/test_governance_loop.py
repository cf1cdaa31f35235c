"""The governance loop of a SageMaker team, run unchanged against real jobs: EventBridge rules on
"SageMaker Training Job State Change" invoke Python Lambda functions (tests/e2e/functions/
governance.py) that use plain boto3 inside; one creates a CloudWatch alarm per job whose SNS
topic triggers a second function that stops the idle job. Everything is wired with boto3 1.26,
as a team's setup script would.
"""
import io
import json
import os
import zipfile

import pytest

from conftest import ROOT, job_request, wait_for, wait_status

FUNCTIONS = os.path.join(ROOT, "tests", "e2e", "functions", "governance.py")
COUNTER = os.path.join(ROOT, "tests", "e2e", "jobs", "counter.py")
ROLE = "arn:aws:iam::123456789012:role/governance"
STATE_CHANGE = {"source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Training Job State Change"]}


def code_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(FUNCTIONS, "governance.py")
    return buf.getvalue()


def wire(server, topic_env=True):
    """Creates the functions, the topic, the rules and their targets; returns the clients."""
    lam, events, sns = server.boto3("lambda"), server.boto3("events"), server.boto3("sns")
    topic = sns.create_topic(Name="idle-jobs")["TopicArn"]
    env = {"Variables": {"REQUIRED_TAGS": "team", "IDLE_TOPIC_ARN": topic,
                         "MIN_RUN_SECONDS": "4"}}
    arns = {}
    for handler in ("tag_guard", "idle_alarms", "idle_stopper", "failure_cloner",
                    "spot_replacer"):
        fn = lam.create_function(FunctionName=handler.replace("_", "-"), Runtime="python3.11",
                                 Role=ROLE, Handler=f"governance.{handler}",
                                 Code={"ZipFile": code_zip()}, Timeout=30, MemorySize=256,
                                 Environment=env)
        arns[handler] = fn["FunctionArn"]
    rules = {
        "tag_guard": dict(STATE_CHANGE, detail={"TrainingJobStatus": ["InProgress"],
                                                 "SecondaryStatus": ["Starting"]}),
        # Only jobs that opt in (a tag) are watched for idleness.
        "idle_alarms": dict(STATE_CHANGE, detail={"Tags": {"watch-idle": ["yes"]}}),
        "failure_cloner": dict(STATE_CHANGE, detail={"TrainingJobStatus": ["Failed"]}),
        "spot_replacer": dict(STATE_CHANGE, detail={"EnableManagedSpotTraining": [True],
                                                     "SecondaryStatus": [{"anything-but":
                                                                          ["Interrupted"]}]}),
    }
    for handler, pattern in rules.items():
        rule = events.put_rule(Name=handler, EventPattern=json.dumps(pattern))["RuleArn"]
        lam.add_permission(FunctionName=handler.replace("_", "-"), StatementId="events",
                           Action="lambda:InvokeFunction", Principal="events.amazonaws.com",
                           SourceArn=rule)
        res = events.put_targets(Rule=handler, Targets=[{"Id": "fn", "Arn": arns[handler]}])
        assert res["FailedEntryCount"] == 0, res
    lam.add_permission(FunctionName="idle-stopper", StatementId="sns",
                       Action="lambda:InvokeFunction", Principal="sns.amazonaws.com",
                       SourceArn=topic)
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arns["idle_stopper"])
    return lam, events, sns, topic


def function_log(server, function):
    logs = server.boto3("logs")
    events = logs.filter_log_events(logGroupName=f"/aws/lambda/{function}")["events"]
    return "".join(e["message"] for e in events)


def tagged(*pairs):
    return [{"Key": k, "Value": v} for k, v in pairs]


def test_a_teams_governance_functions_run_against_real_jobs(server, sm, tmp_path):
    lam, events, sns, topic = wire(server)
    out = str(tmp_path / "out")
    os.makedirs(out)

    # 1. No required tag: stopped at Starting by tag_guard.
    sm.create_training_job(**job_request("untagged", out, "sleep 60"))
    # 2. Tagged and opted in to idle watching, and idle: alarm at Training, ALARM, SNS, stopped.
    sm.create_training_job(**job_request("idle", out, "sleep 120",
                                         Tags=tagged(("team", "ml"), ("watch-idle", "yes"))))
    # 3. Fails after running a while: cloned, and the clone resumes from the checkpoint.
    ckpt = str(tmp_path / "ckpt-longfail")
    script = ("if [ -f /opt/ml/checkpoints/marker ]; then echo resumed from marker; exit 0; fi; "
              "echo attempt > /opt/ml/checkpoints/marker; sleep 6; echo failing; exit 3")
    sm.create_training_job(**job_request("longfail", out, script, Tags=tagged(("team", "ml")),
                                         CheckpointConfig={"S3Uri": "file://" + ckpt}))

    d = wait_status(sm, "untagged", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped", d
    assert "missing required tags ['team']" in function_log(server, "tag-guard")

    # The idle alarm exists while the job trains, fires, and the stopper stops the job.
    cw = server.boto3("cloudwatch")
    wait_for(lambda: cw.describe_alarms(AlarmNames=["idle-idle"])["MetricAlarms"],
             lambda alarms: len(alarms) == 1, timeout=60, interval=0.5)
    d = wait_status(sm, "idle", timeout=120)
    assert d["TrainingJobStatus"] == "Stopped", d
    assert "stopped idle job idle (idle-idle" in function_log(server, "idle-stopper")
    # ... and the alarm is deleted when the job ends.
    wait_for(lambda: cw.describe_alarms(AlarmNames=["idle-idle"])["MetricAlarms"],
             lambda alarms: alarms == [], timeout=60, interval=0.5)
    history = function_log(server, "idle-alarms")
    assert "created alarm idle-idle" in history and "deleted alarm idle-idle" in history

    d = wait_status(sm, "longfail", timeout=60)
    assert d["TrainingJobStatus"] == "Failed", d
    clone = wait_status(sm, "longfail-retry", timeout=90)
    assert clone["TrainingJobStatus"] == "Completed", clone.get("FailureReason")
    assert clone["CheckpointConfig"]["S3Uri"] == "file://" + ckpt
    tags = sm.list_tags(ResourceArn=clone["TrainingJobArn"])["Tags"]
    assert {"Key": "cloned-from", "Value": "longfail"} in tags
    assert "resumed from marker" in server.cli("logs", "longfail-retry").stdout

    # Every invocation wrote Lambda's START / END / REPORT lines.
    log = function_log(server, "tag-guard")
    assert "START RequestId:" in log and "END RequestId:" in log and "REPORT RequestId:" in log

    # The tagged jobs were left alone by tag_guard, and a job that never failed was not cloned.
    assert sm.describe_training_job(TrainingJobName="untagged")["TrainingJobStatus"] == "Stopped"
    names = {j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]}
    assert "idle-retry" not in names and "untagged-retry" not in names


def test_a_spot_job_interrupted_four_times_is_replaced_on_demand(server, sm, tmp_path):
    wire(server)
    out = "file://" + str(tmp_path / "out")
    ckpt = "file://" + str(tmp_path / "ckpt") + "/"
    req = job_request("flaky", "/unused", EnableManagedSpotTraining=True,
                      StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
                      CheckpointConfig={"S3Uri": ckpt}, Tags=tagged(("team", "ml")))
    req["OutputDataConfig"]["S3OutputPath"] = out
    req["InputDataConfig"] = [{
        "ChannelName": "scripts",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                        "S3Uri": "file://" + os.path.dirname(COUNTER),
                                        "S3DataDistributionType": "FullyReplicated"}}}]
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/bin/sh", "-c", 'exec /usr/bin/python3 "$SM_CHANNEL_SCRIPTS/counter.py" "$@"', "sh",
        "--steps", "400", "--sleep", "0.1"]
    sm.create_training_job(**req)
    for _ in range(4):
        wait_for(lambda: sm.describe_training_job(TrainingJobName="flaky"),
                 lambda d: d["SecondaryStatus"] == "Training", timeout=60, interval=0.2)
        server.cli("spot", "interrupt", "flaky")
        wait_for(lambda: sm.describe_training_job(TrainingJobName="flaky"),
                 lambda d: d["SecondaryStatus"] != "Training", timeout=30, interval=0.2)
    d = wait_status(sm, "flaky", timeout=120)
    assert d["TrainingJobStatus"] == "Stopped", d
    seq = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert seq.count("Interrupted") == 4, seq
    clone = wait_for(lambda: sm.describe_training_job(TrainingJobName="flaky-ondemand"),
                     lambda c: c["SecondaryStatus"] in ("Training", "Completed"), timeout=60)
    assert clone["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in clone["StoppingCondition"]
    assert clone["CheckpointConfig"]["S3Uri"] == ckpt
    sm.stop_training_job(TrainingJobName="flaky-ondemand")
    assert "replaced flaky after 4 interruptions by flaky-ondemand" in function_log(
        server, "spot-replacer")
