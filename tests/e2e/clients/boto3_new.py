"""Drives Trainyard with the current boto3 (pyenv `python3`, boto3 1.43), every response checked
against that botocore's own (newer) service model. The endpoint comes from AWS_ENDPOINT_URL_SAGEMAKER
/ AWS_ENDPOINT_URL, credentials from the shared credentials file.

usage: python3 boto3_new.py OUTPUT_DIR       exits non-zero with a message on any problem
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/e2e: shapecheck

import boto3  # noqa: E402
import botocore  # noqa: E402
import botocore.exceptions  # noqa: E402

import shapecheck  # noqa: E402


def fail(msg):
    print(f"boto3_new: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def checked(client, op, resp):
    problems = shapecheck.check_output(client, op, resp)
    if problems:
        fail(f"{op} response breaks the {botocore.__version__} model: {problems}")
    return resp


def expect(cond, msg):
    if not cond:
        fail(msg)


def main():
    out = sys.argv[1]
    sm = boto3.client("sagemaker")
    expect(sm.meta.endpoint_url.startswith("http://127.0.0.1"),
           f"AWS_ENDPOINT_URL not honoured: {sm.meta.endpoint_url}")

    def request(name, command):
        return {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": "trainyard-test/shell:1",
                                       "TrainingInputMode": "File",
                                       "ContainerEntrypoint": ["/bin/sh", "-c", command],
                                       "MetricDefinitions": [{"Name": "acc",
                                                              "Regex": "acc=([0-9.]+)"}]},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "file://" + out},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "HyperParameters": {"lr": "0.1"},
            "Tags": [{"Key": "client", "Value": "boto3-new"}],
        }

    arn = checked(sm, "CreateTrainingJob",
                  sm.create_training_job(**request("new-done", "echo acc=0.75")))["TrainingJobArn"]
    expect(arn.endswith(":training-job/new-done"), arn)
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="new-done", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    d = checked(sm, "DescribeTrainingJob", sm.describe_training_job(TrainingJobName="new-done"))
    expect(d["TrainingJobStatus"] == "Completed", f"status {d['TrainingJobStatus']}: "
           f"{d.get('FailureReason')}")
    expect([m["Value"] for m in d.get("FinalMetricDataList", [])] == [0.75],
           f"metrics {d.get('FinalMetricDataList')}")
    # Members the SageMaker SDK's attach() reads without a default.
    expect(d["OutputDataConfig"].get("KmsKeyId") == "", f"KmsKeyId {d['OutputDataConfig']}")
    expect(d.get("EnableNetworkIsolation") is False
           and d.get("EnableInterContainerTrafficEncryption") is False,
           "EnableNetworkIsolation / EnableInterContainerTrafficEncryption not reported")

    checked(sm, "CreateTrainingJob", sm.create_training_job(
        **request("new-spin", "trap 'exit 0' TERM; while true; do sleep 0.1; done")))
    lst = checked(sm, "ListTrainingJobs", sm.list_training_jobs(SortBy="Name"))
    names = [s["TrainingJobName"] for s in lst["TrainingJobSummaries"]]
    expect(names == ["new-done", "new-spin"], f"list: {names}")
    pages = list(sm.get_paginator("list_training_jobs").paginate(PaginationConfig={"PageSize": 1}))
    for p in pages:
        checked(sm, "ListTrainingJobs", p)
    expect(sum(len(p["TrainingJobSummaries"]) for p in pages) == 2, "paginator")

    res = checked(sm, "Search", sm.search(Resource="TrainingJob", SearchExpression={"Filters": [
        {"Name": "Metrics.acc", "Operator": "GreaterThan", "Value": "0.5"}]}))
    expect([r["TrainingJob"]["TrainingJobName"] for r in res["Results"]] == ["new-done"],
           f"search: {res['Results']}")
    expect(res["Results"][0]["TrainingJob"]["Tags"] == [{"Key": "client", "Value": "boto3-new"}],
           "search record tags")

    checked(sm, "AddTags", sm.add_tags(ResourceArn=arn, Tags=[{"Key": "extra", "Value": "1"}]))
    tags = checked(sm, "ListTags", sm.list_tags(ResourceArn=arn))["Tags"]
    expect(sorted(t["Key"] for t in tags) == ["client", "extra"], f"tags {tags}")
    checked(sm, "DeleteTags", sm.delete_tags(ResourceArn=arn, TagKeys=["extra"]))
    tags = checked(sm, "ListTags", sm.list_tags(ResourceArn=arn))["Tags"]
    expect([t["Key"] for t in tags] == ["client"], f"tags after delete {tags}")

    try:
        sm.delete_training_job(TrainingJobName="new-spin")
        fail("deleting a running job succeeded")
    except botocore.exceptions.ClientError as e:
        expect(e.response["Error"]["Code"] == "ResourceInUse", f"delete running: {e}")
    checked(sm, "StopTrainingJob", sm.stop_training_job(TrainingJobName="new-spin"))
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="new-spin", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    d = checked(sm, "DescribeTrainingJob", sm.describe_training_job(TrainingJobName="new-spin"))
    expect(d["TrainingJobStatus"] == "Stopped", d["TrainingJobStatus"])

    for name in ("new-done", "new-spin"):
        checked(sm, "DeleteTrainingJob", sm.delete_training_job(TrainingJobName=name))
    try:
        sm.describe_training_job(TrainingJobName="new-done")
        fail("describe after delete succeeded")
    except botocore.exceptions.ClientError as e:
        expect(e.response["Error"]["Code"] == "ValidationException"
               and e.response["Error"]["Message"] == "Requested resource not found.",
               f"describe after delete: {e.response['Error']}")
    lst = checked(sm, "ListTrainingJobs", sm.list_training_jobs())
    expect(lst["TrainingJobSummaries"] == [], f"list after delete {lst}")
    print(f"boto3_new: OK (boto3 {boto3.__version__}, botocore {botocore.__version__})")


if __name__ == "__main__":
    main()
