"""Debugger rules beside a training job, through the real binary and boto3 1.26: the statuses in
DescribeTrainingJob from creation (DebugRuleEvaluationStatuses), a rule that cannot run (an
unknown rule_to_invoke) ends in Error with a clear StatusDetails while the job completes
unharmed, DescribeProcessingJob answers for the RuleEvaluationJobArn (and never for another
account), `trainyard debugger rules` prints the rules, training_job_end.ts is placed in the debug
output when the job ends, and the job's state-change events carry the rule statuses.

The helpers (rules_job, rule_status, wait_rule) are meant for rule-firing cases too: a case that
writes tensors and expects IssuesFound / NoIssuesFound uses the same shape."""

import json
import os
import re

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import TEST_CONFIG, Server, job_request, wait_for, wait_status
from test_accounts import ACCOUNT_A, KEY_B, write_two_accounts

REGION = "us-east-1"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
STATE_CHANGE = "SageMaker Training Job State Change"
CONFIG = TEST_CONFIG + """
debugger:
  threads: 2
  poll_interval_ms: 100
  stop_grace_seconds: 5
events:
  poll_ms: 100
"""
ARN_RE = re.compile(r"arn:aws:sagemaker:us-east-1:111111111111:processing-job/"
                    r"[a-z0-9-]{1,63}$")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("dbgrules")
    s = Server(str(base / "data"), config=CONFIG)
    write_two_accounts(s.data_dir)
    s.start()
    s.out_dir = str(base / "out")
    os.makedirs(s.out_dir, exist_ok=True)
    yield s
    s.stop()


def rule(name, rule_to_invoke, **params):
    """A DebugRuleConfigurations entry as the SDK's Rule.sagemaker() sends it."""
    return {"RuleConfigurationName": name, "RuleEvaluatorImage": RULES_IMAGE,
            "InstanceType": "ml.t3.medium", "VolumeSizeInGB": 0,
            "RuleParameters": {"rule_to_invoke": rule_to_invoke, **params}}


def rules_job(name, out_dir, rules, command="echo training", **overrides):
    """A CreateTrainingJob request with a debug hook writing under out_dir and `rules`."""
    return job_request(name, out_dir, command,
                       DebugHookConfig={"S3OutputPath": "file://" + out_dir,
                                        "CollectionConfigurations": []},
                       DebugRuleConfigurations=rules, **overrides)


def statuses(described):
    return {s["RuleConfigurationName"]: s for s in described.get("DebugRuleEvaluationStatuses", [])}


def wait_rule(sm, job, name, wanted, timeout=60):
    d = wait_for(lambda: sm.describe_training_job(TrainingJobName=job),
                 lambda d: statuses(d).get(name, {}).get("RuleEvaluationStatus") in wanted,
                 timeout=timeout, interval=0.2)
    return statuses(d)[name]


def client_b(srv, service="sagemaker"):
    return boto3.session.Session(region_name=srv.region, **KEY_B).client(
        service, endpoint_url=srv.url, config=botocore.config.Config(retries={"max_attempts": 1}))


def test_unknown_rule_is_an_error_and_the_job_completes_unharmed(srv):
    sm = srv.boto3()
    job = "dbg-unknown"
    sm.create_training_job(**rules_job(job, srv.out_dir, [
        rule("NoSuchRule", "NoSuchRule"),
        rule("Vanishing", "VanishingGradient", threshold="0.0000001"),
    ]))
    # From creation, DescribeTrainingJob lists every rule with its evaluation job.
    first = sm.describe_training_job(TrainingJobName=job)
    got = statuses(first)
    assert list(got) == ["NoSuchRule", "Vanishing"], first.get("DebugRuleEvaluationStatuses")
    for s in got.values():
        assert ARN_RE.match(s["RuleEvaluationJobArn"]), s
        assert s["RuleEvaluationStatus"] in ("InProgress", "Error"), s
        assert s["LastModifiedTime"] >= first["CreationTime"]
    assert got["NoSuchRule"]["RuleEvaluationJobArn"] != got["Vanishing"]["RuleEvaluationJobArn"]
    assert ":processing-job/dbg-unknown-nosuchrule-" in got["NoSuchRule"]["RuleEvaluationJobArn"]

    bad = wait_rule(sm, job, "NoSuchRule", ("Error",))
    assert "NoSuchRule" in bad["StatusDetails"], bad
    assert len(bad["StatusDetails"]) <= 1024
    described = wait_status(sm, job)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    # The arn is stable across describes.
    assert statuses(described)["NoSuchRule"]["RuleEvaluationJobArn"] == \
        got["NoSuchRule"]["RuleEvaluationJobArn"]
    # The hook's end marker is placed once the job has ended (the rules read it as "no more
    # data").
    marker = os.path.join(srv.out_dir, job, "debug-output", "training_job_end.ts")
    wait_for(lambda: os.path.exists(marker), bool, timeout=30)
    assert os.path.getsize(marker) == 0

    # DescribeProcessingJob answers for the rule's evaluation job.
    name = bad["RuleEvaluationJobArn"].rsplit("/", 1)[1]
    assert len(name) <= 63
    pj = sm.describe_processing_job(ProcessingJobName=name)
    assert pj["ProcessingJobArn"] == bad["RuleEvaluationJobArn"]
    assert pj["ProcessingJobStatus"] == "Failed"
    assert pj["ExitMessage"] == bad["StatusDetails"]
    assert pj["TrainingJobArn"] == described["TrainingJobArn"]
    assert pj["AppSpecification"]["ImageUri"] == RULES_IMAGE
    assert pj["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.t3.medium"
    assert pj["RoleArn"] == "arn:aws:iam::123456789012:role/SageMakerRole"
    assert "ProcessingEndTime" in pj

    # Another account cannot see it; an unknown name is the AWS error too.
    for client, pname in ((client_b(srv), name), (sm, "dbg-unknown-nosuchrule-00000000")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.describe_processing_job(ProcessingJobName=pname)
        assert e.value.response["Error"]["Code"] == "ResourceNotFound"
        assert pname in e.value.response["Error"]["Message"]

    # The CLI prints the rules with their statuses and details.
    out = srv.cli("debugger", "rules", job).stdout
    assert "NoSuchRule" in out and "Error" in out and bad["StatusDetails"] in out, out
    assert "Vanishing" in out and "VanishingGradient" in out, out
    as_json = json.loads(srv.cli("debugger", "rules", job, "--output", "json").stdout)
    assert [r["RuleConfigurationName"] for r in as_json["Rules"]] == ["NoSuchRule", "Vanishing"]
    assert as_json["Rules"][0]["FiredStep"] is None
    assert as_json["Rules"][0]["StatusDetails"] == bad["StatusDetails"]
    missing = srv.cli("debugger", "rules", "dbg-no-such-job", check=False)
    assert missing.returncode == 1 and "dbg-no-such-job" not in missing.stdout


def test_a_job_without_rules_shows_no_statuses(srv):
    sm = srv.boto3()
    sm.create_training_job(**job_request("dbg-plain", srv.out_dir, "echo plain"))
    d = wait_status(sm, "dbg-plain")
    assert d["TrainingJobStatus"] == "Completed"
    assert "DebugRuleEvaluationStatuses" not in d
    assert "ProfilerRuleEvaluationStatuses" not in d


def test_rule_status_changes_are_state_change_events(srv):
    sm, events, logs = srv.boto3(), srv.boto3("events"), srv.boto3("logs")
    logs.create_log_group(logGroupName="/trainyard/dbg-events")
    events.put_rule(Name="dbg-rules", EventPattern=json.dumps(
        {"source": ["aws.sagemaker"], "detail-type": [STATE_CHANGE],
         "detail": {"TrainingJobName": ["dbg-evented"]}}))
    events.put_targets(Rule="dbg-rules", Targets=[
        {"Id": "log", "Arn": f"arn:aws:logs:us-east-1:{ACCOUNT_A}:log-group:/trainyard/dbg-events"}])
    sm.create_training_job(**rules_job("dbg-evented", srv.out_dir, [rule("Bad", "NoSuchRule")]))
    assert wait_status(sm, "dbg-evented")["TrainingJobStatus"] == "Completed"
    wait_rule(sm, "dbg-evented", "Bad", ("Error",))

    def delivered():
        page = logs.filter_log_events(logGroupName="/trainyard/dbg-events")
        return [json.loads(e["message"]) for e in page["events"]]

    got = wait_for(delivered, lambda es: any(
        s.get("RuleEvaluationStatus") == "Error"
        for e in es for s in (e["detail"].get("DebugRuleEvaluationStatuses") or [])),
        timeout=60, interval=0.3)
    # Every event of the job carries the rule statuses, the first one InProgress (creation).
    assert all(e["detail"]["DebugRuleEvaluationStatuses"] for e in got), got
    assert got[0]["detail"]["DebugRuleEvaluationStatuses"][0]["RuleEvaluationStatus"] == \
        "InProgress"
    errored = [s for e in got for s in e["detail"]["DebugRuleEvaluationStatuses"]
               if s["RuleEvaluationStatus"] == "Error"]
    assert "NoSuchRule" in errored[0]["StatusDetails"]
    assert isinstance(errored[0]["LastModifiedTime"], int)  # epoch ms, as the events carry times


FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "debugger", "data")


def test_debugger_tensors_lists_what_the_real_smdebug_saved(srv):
    """`trainyard debugger tensors` reads the trial on the server (the C++ reader): the files the
    real smdebug wrote (tests/debugger/data/smdebug_trial) stand in for the hook's synced output."""
    import shutil
    sm = srv.boto3()
    job = "dbg-tensors"
    sm.create_training_job(**rules_job(job, srv.out_dir, []))
    assert wait_status(sm, job)["TrainingJobStatus"] == "Completed"
    trial = os.path.join(srv.out_dir, job, "debug-output")
    shutil.rmtree(trial, ignore_errors=True)
    shutil.copytree(os.path.join(FIXTURE, "smdebug_trial"), trial)
    with open(os.path.join(FIXTURE, "smdebug_expected.json")) as f:
        expected = json.load(f)

    got = json.loads(srv.cli("debugger", "tensors", job, "--output", "json").stdout)
    assert got["TrainingEnded"] is True
    assert got["Steps"] == expected["steps"]
    assert [t["Name"] for t in got["Tensors"]] == expected["tensor_names"]
    loss = {t["Name"]: t for t in got["Tensors"]}["CrossEntropyLoss_output_0"]
    last = str(expected["steps"][-1])
    assert loss["Step"] == expected["steps"][-1]
    assert loss["Shape"] == expected["values"]["CrossEntropyLoss_output_0"][last]["shape"]
    assert loss["Mean"] == pytest.approx(
        expected["values"]["CrossEntropyLoss_output_0"][last]["values"][0], rel=1e-6)

    # --step and --name narrow it; the text form names each tensor with its summary.
    one = json.loads(srv.cli("debugger", "tensors", job, "--step", "1", "--name", "^Net_fc1",
                             "--output", "json").stdout)
    assert [t["Name"] for t in one["Tensors"]] == ["Net_fc1.bias", "Net_fc1.weight"]
    bias = one["Tensors"][0]
    values = expected["values"]["Net_fc1.bias"]["1"]["values"]
    assert bias["Step"] == 1 and bias["Count"] == len(values)
    assert bias["Min"] == pytest.approx(min(values)) and bias["Max"] == pytest.approx(max(values))
    text = srv.cli("debugger", "tensors", job, "--name", "loss|Loss").stdout
    assert "CrossEntropyLoss_output_0" in text and "Net_fc1.bias" not in text, text
    # A regex the reader cannot run and a job without a hook are clear errors.
    bad = srv.cli("debugger", "tensors", job, "--name", "(?<=x)y", check=False)
    assert bad.returncode == 1 and "(?<=x)y" in bad.stderr, bad.stderr
    sm.create_training_job(**job_request("dbg-nohook", srv.out_dir, "echo x"))
    nohook = srv.cli("debugger", "tensors", "dbg-nohook", check=False)
    assert nohook.returncode == 1 and "DebugHookConfig" in nohook.stderr, nohook.stderr
