"""Other generations of AWS clients against a real server: the current boto3 (pyenv `python3`),
AWS CLI v2 (/usr/bin/aws) and AWS CLI v1 (the pyenv `aws`)."""

import datetime
import json
import os
import shutil
import subprocess

import pytest

from conftest import HERE, job_request, wait_status

AWS_V2 = "/usr/bin/aws"
SPIN = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def pyenv_tool(server, name):
    env = server.client_env()
    path = shutil.which(name, path=env.get("PATH"))
    if path is None or os.path.realpath(path).startswith("/usr/bin/"):
        pytest.fail(f"the pyenv `{name}` is not first on PATH (found {path})")
    return path, env


def test_current_boto3_script(server, tmp_path):
    python, env = pyenv_tool(server, "python3")
    res = subprocess.run([python, os.path.join(HERE, "clients", "boto3_new.py"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "boto3_new: OK" in res.stdout


def v2(server, *args, check=True):
    env = server.client_env()
    env["AWS_PAGER"] = ""
    res = subprocess.run([AWS_V2, "--endpoint-url", server.url, "--output", "json",
                          "sagemaker", *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, f"aws {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
        return json.loads(res.stdout) if res.stdout.strip() else {}
    return res


def iso(text):
    return datetime.datetime.fromisoformat(text)


def test_aws_cli_v2(server, tmp_path):
    req = job_request("cli-v2", str(tmp_path), "echo acc=0.5",
                      Tags=[{"Key": "via", "Value": "cli-v2"}])
    req["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "acc", "Regex": "acc=([0-9.]+)"}]
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req))
    created = v2(server, "create-training-job", "--cli-input-json", f"file://{path}")
    arn = created["TrainingJobArn"]
    assert arn.endswith(":training-job/cli-v2")
    spin = job_request("cli-v2-spin", str(tmp_path), SPIN)
    (tmp_path / "spin.json").write_text(json.dumps(spin))
    v2(server, "create-training-job", "--cli-input-json", f"file://{tmp_path / 'spin.json'}")

    wait_status(server.boto3(), "cli-v2", timeout=60)
    d = v2(server, "describe-training-job", "--training-job-name", "cli-v2")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["TrainingJobArn"] == arn
    assert iso(d["CreationTime"]) <= iso(d["TrainingEndTime"])  # timestamps parsed and reprinted
    assert d["FinalMetricDataList"][0]["Value"] == 0.5

    listed = v2(server, "list-training-jobs", "--sort-by", "Name")
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == ["cli-v2", "cli-v2-spin"]
    # The CLI follows NextToken by itself.
    paged = v2(server, "list-training-jobs", "--page-size", "1")
    assert len(paged["TrainingJobSummaries"]) == 2

    found = v2(server, "search", "--resource", "TrainingJob", "--search-expression", json.dumps(
        {"Filters": [{"Name": "Tags.via", "Operator": "Equals", "Value": "cli-v2"}]}))
    assert [r["TrainingJob"]["TrainingJobName"] for r in found["Results"]] == ["cli-v2"]

    tags = v2(server, "list-tags", "--resource-arn", arn)
    assert tags["Tags"] == [{"Key": "via", "Value": "cli-v2"}]

    assert v2(server, "stop-training-job", "--training-job-name", "cli-v2-spin") == {}
    d = wait_status(server.boto3(), "cli-v2-spin", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped"

    # CLI v2.9's model predates DeleteTrainingJob: the CLI refuses the command itself.
    res = v2(server, "delete-training-job", "--training-job-name", "cli-v2", check=False)
    if res.returncode == 0:
        assert v2(server, "list-training-jobs")["TrainingJobSummaries"][0]["TrainingJobName"] == \
            "cli-v2-spin"
    else:
        assert res.returncode == 252 and "invalid choice" in res.stderr.lower(), res.stderr[-300:]


def test_aws_cli_v2_errors(server, tmp_path):
    res = v2(server, "describe-training-job", "--training-job-name", "ghost", check=False)
    assert res.returncode in (254, 255), (res.returncode, res.stderr)
    assert "(ValidationException)" in res.stderr and "Requested resource not found." in res.stderr
    bad = job_request("bad_name", str(tmp_path), "true")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = v2(server, "create-training-job", "--cli-input-json", f"file://{tmp_path / 'bad.json'}",
             check=False)
    # Either the CLI's own validation (252/255) or ours (254) refuses it.
    assert res.returncode in (252, 254, 255), (res.returncode, res.stderr)
    assert "bad_name" in res.stderr or "TrainingJobName" in res.stderr, res.stderr
    # Wrong credentials surface as the AWS error type too.
    env = server.client_env()
    env.update(AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000", AWS_SECRET_ACCESS_KEY="x", AWS_PAGER="")
    res = subprocess.run([AWS_V2, "--endpoint-url", server.url, "sagemaker", "list-training-jobs"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode in (254, 255) and "UnrecognizedClientException" in res.stderr, res.stderr


def v1(server, *args, check=True):
    aws, env = pyenv_tool(server, "aws")
    res = subprocess.run([aws, "--output", "json", "sagemaker", *args], env=env,
                         capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, f"aws(v1) {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
        return json.loads(res.stdout) if res.stdout.strip() else {}
    return res


def test_aws_cli_v1_uses_aws_endpoint_url(server, sm, tmp_path):
    sm.create_training_job(**job_request("cli-v1", str(tmp_path), "true"))
    wait_status(sm, "cli-v1", timeout=60)
    d = v1(server, "describe-training-job", "--training-job-name", "cli-v1")
    assert d["TrainingJobStatus"] == "Completed" and d["TrainingJobName"] == "cli-v1"
    listed = v1(server, "list-training-jobs", "--status-equals", "Completed")
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == ["cli-v1"]
    assert v1(server, "delete-training-job", "--training-job-name", "cli-v1") == {}
    assert v1(server, "list-training-jobs")["TrainingJobSummaries"] == []
    res = v1(server, "describe-training-job", "--training-job-name", "cli-v1", check=False)
    assert res.returncode in (254, 255) and "ValidationException" in res.stderr, res.stderr


def test_aws_cli_v1_create_stop_tags_search(server, sm, tmp_path):
    req = job_request("cli-v1-spot", str(tmp_path), "echo acc=0.5",
                      Tags=[{"Key": "via", "Value": "cli-v1"}], EnableManagedSpotTraining=True,
                      StoppingCondition={"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 600})
    req["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "acc", "Regex": "acc=([0-9.]+)"}]
    (tmp_path / "req.json").write_text(json.dumps(req))
    arn = v1(server, "create-training-job", "--cli-input-json",
             f"file://{tmp_path / 'req.json'}")["TrainingJobArn"]
    assert arn.endswith(":training-job/cli-v1-spot")
    spin = job_request("cli-v1-spin", str(tmp_path), SPIN)
    (tmp_path / "spin.json").write_text(json.dumps(spin))
    v1(server, "create-training-job", "--cli-input-json", f"file://{tmp_path / 'spin.json'}")

    wait_status(sm, "cli-v1-spot", timeout=60)
    d = v1(server, "describe-training-job", "--training-job-name", "cli-v1-spot")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    # What the SageMaker SDK's attach and billing report read, as the CLI prints it.
    assert d["OutputDataConfig"]["KmsKeyId"] == ""
    assert d["EnableManagedSpotTraining"] is True and d["EnableNetworkIsolation"] is False
    assert d["EnableInterContainerTrafficEncryption"] is False
    assert 1 <= d["BillableTimeInSeconds"] <= d["TrainingTimeInSeconds"]
    assert d["FinalMetricDataList"][0]["Value"] == 0.5

    assert v1(server, "list-tags", "--resource-arn", arn)["Tags"] == [{"Key": "via",
                                                                       "Value": "cli-v1"}]
    found = v1(server, "search", "--resource", "TrainingJob", "--search-expression", json.dumps(
        {"Filters": [{"Name": "Tags.via", "Operator": "Equals", "Value": "cli-v1"}]}))
    assert [r["TrainingJob"]["TrainingJobName"] for r in found["Results"]] == ["cli-v1-spot"]
    # The CLI follows NextToken by itself.
    paged = v1(server, "list-training-jobs", "--page-size", "1", "--sort-by", "Name")
    assert [s["TrainingJobName"] for s in paged["TrainingJobSummaries"]] == \
        ["cli-v1-spin", "cli-v1-spot"]

    assert v1(server, "stop-training-job", "--training-job-name", "cli-v1-spin") == {}
    assert wait_status(sm, "cli-v1-spin", timeout=60)["TrainingJobStatus"] == "Stopped"
    res = v1(server, "create-training-job", "--cli-input-json", f"file://{tmp_path / 'spin.json'}",
             check=False)
    assert res.returncode in (254, 255) and "ResourceInUse" in res.stderr, res.stderr
