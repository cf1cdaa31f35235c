"""Built-in governance end to end, through the real binary, boto3 and the `trainyard governance`
CLI: the scenarios of the governance workflow (a tag check at Starting, an idle job stopped, a
clone after a long failure that resumes from its checkpoint, an on-demand clone after four spot
interruptions), with the server's policies instead of functions."""
import json
import os

import botocore.exceptions
import pytest

from conftest import ROOT, Server, job_request, logs_of, wait_for, wait_status

COUNTER = os.path.join(ROOT, "tests", "e2e", "jobs", "counter.py")

CONFIG = """
images:
  - match: "trainyard-test/shell:*"
    command: ["/bin/sh", "-c", "echo 'image default entrypoint ran with:' \\"$@\\"", "sh"]
capacity:
  "*": 32
spot:
  seed: 7
  notice_seconds: 1
metrics:
  interval_seconds: 0.5
governance:
  required_tags:
    keys: [team]
"""

TEAM = [{"Key": "team", "Value": "ml"}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("gov") / "data"), config=CONFIG).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sm(srv):
    return srv.boto3()


def set_policies(srv, tmp_path, yaml_text):
    path = tmp_path / "policies.yaml"
    path.write_text(yaml_text)
    return srv.cli("governance", "set", str(path)).stdout


def tags_of(sm, name):
    arn = sm.describe_training_job(TrainingJobName=name)["TrainingJobArn"]
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def last_message(d):
    return d["SecondaryStatusTransitions"][-1]["StatusMessage"]


def governance_json(srv):
    return json.loads(srv.cli("governance", "--json").stdout)


def counter_request(name, tmp_path, *args, **overrides):
    """A job running jobs/counter.py (a channel) with a file:// checkpoint URI."""
    out = str(tmp_path / "out")
    os.makedirs(out, exist_ok=True)
    ckpt = str(tmp_path / "ckpt" / name)
    req = job_request(name, out, Tags=TEAM, CheckpointConfig={"S3Uri": "file://" + ckpt + "/"},
                      **overrides)
    req["InputDataConfig"] = [{
        "ChannelName": "scripts",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                        "S3Uri": "file://" + os.path.dirname(COUNTER),
                                        "S3DataDistributionType": "FullyReplicated"}}}]
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/bin/sh", "-c", 'exec /usr/bin/python3 "$SM_CHANNEL_SCRIPTS/counter.py" "$@"', "sh",
        *args]
    return req, ckpt


def test_required_tags_stop_at_starting_then_refuse_at_create(srv, sm, tmp_path):
    # The config's policy: stop mode.
    g = governance_json(srv)
    assert g["Governance"]["Source"] == "server"
    assert g["Governance"]["Policies"] == {"RequiredTags": {"Keys": ["team"], "Action": "stop"}}

    sm.create_training_job(**job_request("untagged", str(tmp_path), command="sleep 30"))
    sm.create_training_job(**job_request("tagged", str(tmp_path), command="true", Tags=TEAM))
    d = wait_status(sm, "untagged", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped"
    assert "lacks the required tag(s) team" in last_message(d), d["SecondaryStatusTransitions"]
    # Stopped as it started: it never reached Downloading or Training.
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]] == ["Starting", "Stopping",
                                                                     "Stopped"]
    assert tags_of(sm, "untagged")["trainyard:governance"] == "required-tags:stopped"
    assert wait_status(sm, "tagged", timeout=60)["TrainingJobStatus"] == "Completed"
    assert "trainyard:governance" not in tags_of(sm, "tagged")

    # Refuse mode, and the limits, set by the account through the CLI.
    shown = set_policies(srv, tmp_path, """
required_tags: {keys: [team, project], action: refuse}
allowed_instance_types: [ml.m5.large]
max_runtime_seconds: 600
""")
    assert "required_tags" in shown and "refuse" in shown, shown
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_training_job(**job_request("refused", str(tmp_path), command="true",
                                             Tags=TEAM))
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "lacks the required tag(s) project" in e.value.response["Error"]["Message"]
    tags = TEAM + [{"Key": "project", "Value": "p"}]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_training_job(**job_request("too-long", str(tmp_path), command="true", Tags=tags,
                                             StoppingCondition={"MaxRuntimeInSeconds": 601}))
    assert "MaxRuntimeInSeconds 601 is more than the 600" in e.value.response["Error"]["Message"]
    req = job_request("wrong-type", str(tmp_path), command="true", Tags=tags)
    req["ResourceConfig"]["InstanceType"] = "ml.c5.xlarge"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_training_job(**req)
    assert "ml.c5.xlarge is not allowed" in e.value.response["Error"]["Message"]
    for name in ("refused", "too-long", "wrong-type"):
        with pytest.raises(botocore.exceptions.ClientError):
            sm.describe_training_job(TrainingJobName=name)

    # `trainyard governance` shows the policies and the action taken.
    out = srv.cli("governance").stdout
    assert "set by this account" in out, out
    assert "required-tags" in out and "stopped" in out and "untagged" in out, out
    g = governance_json(srv)
    assert g["Actions"][0]["TrainingJobName"] == "untagged"


def test_idle_job_is_stopped(srv, sm, tmp_path):
    set_policies(srv, tmp_path, """
idle_stop: {metric: CPUUtilization, threshold_percent: 20, duration_seconds: 3}
""")
    sm.create_training_job(**job_request("idle", str(tmp_path), command="sleep 60", Tags=TEAM,
                                         StoppingCondition={"MaxRuntimeInSeconds": 90}))
    d = wait_status(sm, "idle", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped", d.get("FailureReason")
    assert "CPUUtilization stayed below 20%" in last_message(d), d["SecondaryStatusTransitions"]
    assert tags_of(sm, "idle")["trainyard:governance"] == "idle-stop:stopped"
    assert d["TrainingTimeInSeconds"] < 60
    actions = governance_json(srv)["Actions"]
    assert (actions[0]["Policy"], actions[0]["Action"]) == ("idle-stop", "stopped")


def test_long_failure_is_cloned_and_the_clone_resumes_from_the_checkpoint(srv, sm, tmp_path):
    set_policies(srv, tmp_path, """
auto_resume: {min_runtime_seconds: 2, max_resumes: 1, on_algorithm_error: true}
""")
    out = str(tmp_path / "out")
    ckpt = str(tmp_path / "ckpt" / "flaky")
    # First run: checkpoints step 7, runs past T, fails. The clone finds step 7 and succeeds.
    script = ('c=/opt/ml/checkpoints; if [ -f $c/step ]; then echo "resumed at step $(cat $c/step)";'
              ' exit 0; fi; echo 7 > $c/step; sleep 3; echo failing; exit 3')
    sm.create_training_job(**job_request("flaky", out, command=script, Tags=TEAM,
                                         CheckpointConfig={"S3Uri": "file://" + ckpt + "/"}))
    d = wait_status(sm, "flaky", timeout=60)
    assert d["TrainingJobStatus"] == "Failed"
    assert "cloned as flaky-r1" in last_message(d), d["SecondaryStatusTransitions"]
    assert tags_of(sm, "flaky")["trainyard:governance"] == "auto-resume:cloned"
    clone = wait_status(sm, "flaky-r1", timeout=60)
    assert clone["TrainingJobStatus"] == "Completed", clone.get("FailureReason")
    assert clone["CheckpointConfig"]["S3Uri"] == "file://" + ckpt + "/"
    assert "resumed at step 7" in logs_of(srv, "flaky-r1")
    ctags = tags_of(sm, "flaky-r1")
    assert ctags["team"] == "ml"
    assert ctags["trainyard:governance-origin"] == "flaky"
    assert ctags["trainyard:governance-resumes"] == "1"
    actions = governance_json(srv)["Actions"]
    assert actions[0]["CloneTrainingJobName"] == "flaky-r1"


def test_spot_job_interrupted_four_times_is_replaced_on_demand(srv, sm, tmp_path):
    set_policies(srv, tmp_path, """
spot_fallback: {after_interruptions: 4}
""")
    req, ckpt = counter_request("spotty", tmp_path, "--steps", "400", "--sleep", "0.1",
                                EnableManagedSpotTraining=True,
                                StoppingCondition={"MaxRuntimeInSeconds": 120,
                                                   "MaxWaitTimeInSeconds": 600})
    sm.create_training_job(**req)
    for i in range(4):
        # Interrupt once the attempt has a checkpoint to resume from.
        wait_for(lambda: sm.describe_training_job(TrainingJobName="spotty"),
                 lambda d: d["SecondaryStatus"] == "Training", timeout=60)
        wait_for(lambda: logs_of(srv, "spotty").count("step") > 0, bool, timeout=30)
        srv.cli("spot", "interrupt", "spotty")
        if i < 3:
            wait_for(lambda: sm.describe_training_job(TrainingJobName="spotty"),
                     lambda d: d["SecondaryStatus"] != "Training", timeout=30)
    d = wait_status(sm, "spotty", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped"
    seq = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert seq.count("Interrupted") == 4, seq
    assert "cloned on demand as spotty-r1" in last_message(d), d["SecondaryStatusTransitions"]
    assert tags_of(sm, "spotty")["trainyard:governance"] == "spot-fallback:cloned"
    clone = sm.describe_training_job(TrainingJobName="spotty-r1")
    assert clone.get("EnableManagedSpotTraining", False) is False
    assert "MaxWaitTimeInSeconds" not in clone["StoppingCondition"]
    assert clone["CheckpointConfig"] == d["CheckpointConfig"]
    wait_for(lambda: logs_of(srv, "spotty-r1"), lambda l: "resumed from checkpoint at step" in l,
             timeout=60, interval=0.3)
    sm.stop_training_job(TrainingJobName="spotty-r1")
    wait_status(sm, "spotty-r1", timeout=60)



def test_spot_job_waiting_too_long_for_capacity_is_replaced_on_demand(srv, sm, tmp_path):
    set_policies(srv, tmp_path, """
spot_fallback: {max_capacity_wait_seconds: 2}
""")
    # Its own instance type, so that no other test meets the outage.
    srv.cli("spot", "unavailable", "ml.t3.medium", "300")
    req = job_request("starved", str(tmp_path / "out"), command="echo on-demand now",
                      Tags=TEAM, EnableManagedSpotTraining=True,
                      CheckpointConfig={"S3Uri": "file://" + str(tmp_path / "ckpt") + "/"},
                      StoppingCondition={"MaxRuntimeInSeconds": 60,
                                         "MaxWaitTimeInSeconds": 600})
    req["ResourceConfig"]["InstanceType"] = "ml.t3.medium"
    sm.create_training_job(**req)
    d = wait_status(sm, "starved", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped"
    assert "for spot capacity" in last_message(d), d["SecondaryStatusTransitions"]
    assert "cloned on demand as starved-r1" in last_message(d)
    assert "Training" not in [t["Status"] for t in d["SecondaryStatusTransitions"]]
    clone = wait_status(sm, "starved-r1", timeout=60)
    assert clone["TrainingJobStatus"] == "Completed", clone.get("FailureReason")
    assert clone.get("EnableManagedSpotTraining", False) is False
    assert "on-demand now" in logs_of(srv, "starved-r1")

def trainyard_client(srv, tmp_path, key_id, secret):
    """A boto3 client for Trainyard's own operations, from the model the server validates with."""
    import boto3
    import botocore.config
    import botocore.session
    model_dir = tmp_path / "models" / "trainyard" / "2026-12-01"
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(ROOT, "src", "api", "data", "trainyard-model.json")) as f:
        (model_dir / "service-2.json").write_text(f.read())
    core = botocore.session.get_session()
    core.set_config_variable("data_path", str(tmp_path / "models"))
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret,
                                    region_name=srv.region, botocore_session=core)
    return session.client("trainyard", endpoint_url=srv.url,
                          config=botocore.config.Config(retries={"max_attempts": 1}))


def test_accounts_change_only_their_own_policies_and_bad_ones_are_refused(tmp_path):
    from test_accounts import ACCOUNT_B, KEY_B, write_two_accounts
    s = Server(str(tmp_path / "data"), config=CONFIG)
    write_two_accounts(s.data_dir)
    s.start()
    try:
        a = trainyard_client(s, tmp_path, s.creds["aws_access_key_id"],
                             s.creds["aws_secret_access_key"])
        b = trainyard_client(s, tmp_path, KEY_B["aws_access_key_id"],
                             KEY_B["aws_secret_access_key"])
        r = b.update_governance(Policies={"IdleStop": {"Metric": "GPUUtilization",
                                                       "DurationSeconds": 600}})
        assert r["Source"] == "account"
        assert r["Policies"] == {"IdleStop": {"Metric": "GPUUtilization", "ThresholdPercent": 5.0,
                                              "DurationSeconds": 600}}
        assert b.describe_governance()["Policies"]["IdleStop"]["DurationSeconds"] == 600
        mine = a.describe_governance()
        assert mine["Source"] == "server"
        assert mine["Policies"] == {"RequiredTags": {"Keys": ["team"], "Action": "stop"}}

        # Refused by the model (an unknown metric) and by the policy parser (an empty policy).
        for bad in ({"IdleStop": {"Metric": "DiskUtilization"}}, {"SpotFallback": {}},
                    {"RequiredTags": {"Keys": []}}):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                a.update_governance(Policies=bad)
            assert e.value.response["Error"]["Code"] == "ValidationException", bad
        with pytest.raises(botocore.exceptions.ClientError) as e:
            a.update_governance()
        assert e.value.response["Error"]["Code"] == "ValidationException"
        assert a.describe_governance()["Source"] == "server"

        assert b.update_governance(UseServerDefaults=True)["Source"] == "server"
        assert b.list_governance_actions()["Actions"] == []
    finally:
        s.stop()


def test_config_can_reserve_policies_to_the_operator(tmp_path):
    s = Server(str(tmp_path / "data"),
               config=CONFIG + "  allow_account_updates: false\n").start()
    try:
        path = tmp_path / "p.yaml"
        path.write_text("max_instance_count: 1\n")
        res = s.cli("governance", "set", str(path), check=False)
        assert res.returncode == 1
        assert "AccessDeniedException" in res.stderr, res.stderr
        assert "only the server config sets them" in s.cli("governance").stdout
        path.write_text("idle_stop: {metric: Disk}\n")
        res = s.cli("governance", "set", str(path), check=False)
        assert res.returncode == 2
        assert "idle_stop.metric must be CPUUtilization or GPUUtilization" in res.stderr
    finally:
        s.stop()
