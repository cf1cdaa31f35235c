"""Debugger end to end with the real SageMaker Python SDK 2.230 and the real smdebug
(../shared/clients), through the real binary on s3:// storage (the SDK refuses file://).

One module server runs four jobs at once (about two minutes together):
- `spot`: `PyTorch(..., rules=[Rule.sagemaker(rule_configs.vanishing_gradient()),
  Rule.sagemaker(rule_configs.loss_not_decreasing())], use_spot_instances=True,
  checkpoint_s3_uri=...)` training a healthy network with the project's hook
  (python/trainyard_debugger), interrupted twice while its rules run;
- `reference`: the same job, never interrupted: both rules must end exactly as for `spot`, having
  evaluated the same steps, each once;
- `vanish`: a deep sigmoid stack whose gradients vanish, hooked by the REAL smdebug library
  shipped in its source_dir: VanishingGradient reads what smdebug wrote, finds the issue, and its
  StopTraining action stops the job with the rule named in the status message;
- `torn`: a job (boto3) whose script writes a malformed event file: the rule ends in Error with a
  clear StatusDetails, the job completes and the server is unharmed.
"""

import json
import os
import random
import re
import shutil
import threading
import time

import pytest

import s3util

from conftest import HERE, Server, job_request, logs_of, wait_for, wait_status
from test_sagemaker_sdk import CLIENTS, PYTORCH_IMAGE, ROLE, Sdk, sdk_pythonpath  # noqa: F401

TRAIN = os.path.join(HERE, "jobs", "debugger_train.py")
STEPS = 50


@pytest.fixture(scope="module")
def dbg(tmp_path_factory, s3rver, sdk_pythonpath):  # noqa: F811 - the fixture imported above
    server = Server(str(tmp_path_factory.mktemp("dbg-server") / "data")).start()
    try:
        yield Sdk(server, s3rver, sdk_pythonpath, str(tmp_path_factory.mktemp("dbg-work")))
    finally:
        server.stop()


def source_dir(dbg, name, with_smdebug=False):
    src = os.path.join(dbg.work_dir, name)
    os.makedirs(src, exist_ok=True)
    shutil.copy(TRAIN, os.path.join(src, "train.py"))
    if with_smdebug:  # what a team without a Debugger container ships with its script
        shutil.copytree(os.path.join(CLIENTS, "smdebug", "smdebug"), os.path.join(src, "smdebug"))
        shutil.copytree(os.path.join(CLIENTS, "stubs", "pyinstrument"),
                        os.path.join(src, "pyinstrument"))
    return src


def every_step(*collections):
    return {c: {"save_interval": "1"} for c in collections}


def start(dbg, kind, spec):
    spec = dict(spec, job_name=f"{dbg.prefix}-{kind}")
    path = os.path.join(dbg.work_dir, f"{kind}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return dbg.run("start", path)


def rule_statuses(d):
    return {r["RuleConfigurationName"]: r for r in d.get("DebugRuleEvaluationStatuses", [])}


def rules_settled(sm, name, timeout=180):
    """DescribeTrainingJob once the job ended and no rule is InProgress or Stopping."""
    def settled(d):
        return (d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") and
                all(r["RuleEvaluationStatus"] not in ("InProgress", "Stopping")
                    for r in d.get("DebugRuleEvaluationStatuses", [])))
    return wait_for(lambda: sm.describe_training_job(TrainingJobName=name), settled,
                    timeout=timeout, interval=0.5)


def rule_details(server, name):
    """`trainyard debugger rules JOB --output json`: per rule, the step that fired and the steps
    evaluated."""
    res = server.cli("debugger", "rules", name, "--output", "json")
    return {r["RuleConfigurationName"]: r for r in json.loads(res.stdout)["Rules"]}


@pytest.fixture(scope="module")
def jobs(dbg):
    common = {"role": ROLE, "instance_count": 1, "instance_type": "ml.m5.large",
              "image_uri": PYTORCH_IMAGE, "entry_point": "train.py",
              "output_path": dbg.uri("out")}
    rules = [{"rule": "vanishing_gradient", "collections": every_step("gradients")},
             {"rule": "loss_not_decreasing", "collections": every_step("losses")}]
    healthy = dict(common, kind="pytorch", source_dir=source_dir(dbg, "healthy"), rules=rules,
                   hyperparameters={"steps": STEPS, "checkpoint-every": 5, "sleep": 0.5},
                   use_spot_instances=True, max_run=600, max_wait=1200)
    # The spot job starts last, and its interrupter at once: starting an SDK process takes
    # seconds under load, and the job must still be running when its turn comes.
    started = {
        "reference": start(dbg, "reference",
                           dict(healthy, checkpoint_s3_uri=dbg.uri("ckpt/reference"))),
        "vanish": start(dbg, "vanish", dict(
            common, kind="pytorch", source_dir=source_dir(dbg, "vanish", with_smdebug=True),
            rules=[{"rule": "vanishing_gradient", "collections": every_step("gradients"),
                    "stop_training": True}],
            hyperparameters={"model": "deep-sigmoid", "steps": 2000, "sleep": 0.05,
                             "hook": "smdebug"})),
        "spot": start(dbg, "spot", dict(healthy, checkpoint_s3_uri=dbg.uri("ckpt/spot"))),
    }
    seed = random.randrange(1 << 30)
    print("interruption seed", seed)
    errors = []

    def interrupter():
        try:
            interrupt_twice(dbg, started["spot"]["job_name"], "spot", seed)
        except BaseException as e:  # noqa: BLE001 - reported by the test that needs it
            errors.append(e)

    thread = threading.Thread(target=interrupter)
    thread.start()
    started["interrupter"] = (thread, errors)
    return {kind: r["job_name"] for kind, r in started.items() if kind != "interrupter"}, started


def checkpoint_runs(dbg, name):
    """The training runs (attempts) whose checkpoints reached the store: the hook's state store,
    metadata.json in the checkpoint URI, has one entry per checkpoint with its training-run."""
    import boto3
    s3 = boto3.client("s3", endpoint_url=dbg.s3rver.endpoint, region_name="us-east-1",
                      aws_access_key_id=s3util.ACCESS_KEY,
                      aws_secret_access_key=s3util.SECRET_KEY)
    try:
        body = s3.get_object(Bucket=s3util.BUCKET,
                             Key=f"{dbg.prefix}/ckpt/{name}/metadata.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return set()
    return {e["training-run"] for e in json.loads(body)}


def interrupt_twice(dbg, name, kind, seed):
    """Two interruptions, each at a random point of an attempt after that attempt's own
    checkpoint reached the store (so the next attempt rewrites steps the lost one had written
    after it). The store, not the log, says when: under load the log can trail by seconds."""
    rng = random.Random(seed)
    server = dbg.server
    for i in range(2):
        wait_for(lambda: checkpoint_runs(dbg, kind), lambda runs: i in runs, timeout=120,
                 interval=0.2)
        time.sleep(rng.uniform(0.2, 0.8))
        res = server.cli("spot", "interrupt", name, check=False)
        if res.returncode != 0:
            d = server.boto3().describe_training_job(TrainingJobName=name)
            pytest.fail(f"interrupt {i + 1} of {name}: {res.stderr}\n"
                        f"{d['TrainingJobStatus']}: {d.get('FailureReason')}\n"
                        f"{logs_of(server, name)}")


def test_sdk_sends_the_rules_and_their_collections(jobs):
    _, started = jobs
    req = started["spot"]["request"]
    names = [r["RuleConfigurationName"] for r in req["DebugRuleConfigurations"]]
    assert names == ["VanishingGradient", "LossNotDecreasing"], req
    for r in req["DebugRuleConfigurations"]:
        assert r["RuleEvaluatorImage"].endswith("/sagemaker-debugger-rules:latest"), r
    collections = {c["CollectionName"] for c in req["DebugHookConfig"]["CollectionConfigurations"]}
    assert {"gradients", "losses"} <= collections, req
    assert req["EnableManagedSpotTraining"] is True and "CheckpointConfig" in req


def test_spot_rules_equal_the_uninterrupted_run_and_count_each_step_once(dbg, jobs):
    names, started = jobs
    thread, errors = started["interrupter"]
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    sm = dbg.server.boto3()
    spot = rules_settled(sm, names["spot"])
    ref = rules_settled(sm, names["reference"])
    assert spot["TrainingJobStatus"] == ref["TrainingJobStatus"] == "Completed", (
        spot.get("FailureReason"), ref.get("FailureReason"))
    transitions = [t["Status"] for t in spot["SecondaryStatusTransitions"]]
    assert transitions.count("Interrupted") == 2, transitions
    logs = logs_of(dbg.server, names["spot"])
    assert logs.count("resumed from checkpoint") == 2, logs
    # The healthy network's gradients never vanish; both runs agree on every rule.
    statuses = {n: r["RuleEvaluationStatus"] for n, r in rule_statuses(spot).items()}
    assert statuses["VanishingGradient"] == "NoIssuesFound", \
        [(n, r["RuleEvaluationStatus"], r.get("StatusDetails")) for n, r in rule_statuses(spot).items()]
    assert statuses == {n: r["RuleEvaluationStatus"] for n, r in rule_statuses(ref).items()}
    spot_details = rule_details(dbg.server, names["spot"])
    ref_details = rule_details(dbg.server, names["reference"])
    for rule in ("VanishingGradient", "LossNotDecreasing"):
        s, r = spot_details[rule], ref_details[rule]
        assert s.get("FiredStep") == r.get("FiredStep"), (rule, s, r)
        # Every step was saved (save_interval 1): both runs evaluated each of them exactly once,
        # the rewritten ones and those whose index files reached the store out of order included.
        assert r["StepsEvaluated"] == STEPS, (rule, r)
        assert s["StepsEvaluated"] == STEPS, (rule, s)


def test_rules_read_what_the_real_smdebug_wrote_and_stop_the_job(dbg, jobs):
    names, _ = jobs
    sm = dbg.server.boto3()
    d = rules_settled(sm, names["vanish"])
    rule = rule_statuses(d)["VanishingGradient"]
    assert rule["RuleEvaluationStatus"] == "IssuesFound", rule
    assert d["TrainingJobStatus"] == "Stopped", d.get("FailureReason")
    # The final Stopped transition names the rule and the step it fired at.
    last = d["SecondaryStatusTransitions"][-1]
    assert last["Status"] == "Stopped", d["SecondaryStatusTransitions"]
    assert last["StatusMessage"].startswith("Stopped by debugger rule VanishingGradient"), last
    assert "smdebug" in logs_of(dbg.server, names["vanish"])  # the real library hooked it
    details = rule_details(dbg.server, names["vanish"])["VanishingGradient"]
    assert details["FiredStep"] is not None and details["FiredStep"] < 100, details


def test_sdk_sees_the_rule_summary_and_the_artifacts_path(dbg, jobs):
    names, _ = jobs
    rules_settled(dbg.server.boto3(), names["reference"])
    res = dbg.run("calls", _write(dbg, "calls.json", [["rules", "pytorch", names["reference"]]]))
    assert "ok" in res[0], res[0].get("error")
    summary = {r["RuleConfigurationName"]: r for r in res[0]["ok"]["summary"]}
    assert summary["VanishingGradient"]["RuleEvaluationStatus"] == "NoIssuesFound", summary
    assert summary["VanishingGradient"]["RuleEvaluationJobArn"].startswith(
        "arn:aws:sagemaker:us-east-1:"), summary
    # Where the SDK says the tensors are (Estimator.latest_job_debugger_artifacts_path()) is
    # where the platform put them.
    _, started = jobs
    assert started["reference"]["debugger_artifacts"] == dbg.uri(
        f"out/{names['reference']}/debug-output")


def _write(dbg, name, doc):
    path = os.path.join(dbg.work_dir, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


RULE_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
# A collections file, then step 0's index pointing into an event file whose only record is cut
# short (and step 1's with a corrupt length CRC): what a crashed or hostile writer leaves.
TORN_WRITER = r"""
import json, os, struct
root = "/opt/ml/output/tensors"
os.makedirs(root + "/collections/000000000", exist_ok=True)
with open(root + "/collections/000000000/worker_0_collections.json", "w") as f:
    json.dump({"collections": {"gradients": {"name": "gradients", "include_regex": ["^gradient"],
               "tensor_names": ["gradient/Net_fc.weight"], "reduction_config": {"save_raw_tensor": True,
               "reductions": "", "save_shape": False}, "save_config": {}, "save_histogram": False}},
               "_meta": {"num_workers": 1}}, f)
for step, body in ((0, struct.pack("<Q", 4096) + b"\x00" * 10),
                   (1, struct.pack("<Q", 12) + b"\xde\xad\xbe\xef" + b"x" * 16)):
    name = "%012d" % step
    os.makedirs(root + "/events/" + name, exist_ok=True)
    os.makedirs(root + "/index/000000000", exist_ok=True)
    ev = "events/%s/%s_worker_0.tfevents" % (name, name)
    with open(root + "/" + ev, "wb") as f:
        f.write(body)
    with open(root + "/index/000000000/%s_worker_0.json" % name, "w") as f:
        json.dump({"meta": {"mode": "TRAIN", "mode_step": step, "event_file_name": ev},
                   "tensor_payload": [{"tensorname": "gradient/Net_fc.weight", "start_idx": 0,
                                       "length": len(body)}]}, f)
print("torn files written", flush=True)
"""


def test_malformed_tensor_files_end_the_rule_in_error_not_the_job(server, sm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = tmp_path / "code"
    code.mkdir()
    (code / "torn.py").write_text(TORN_WRITER)
    req = {
        "TrainingJobName": "torn",
        "AlgorithmSpecification": {"TrainingImage": "trainyard-test/shell:1",
                                   "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["/usr/bin/python3",
                                                           "/opt/ml/input/data/code/torn.py"]},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": f"file://{out}"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "InputDataConfig": [{"ChannelName": "code", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"file://{code}"}}}],
        "DebugHookConfig": {"S3OutputPath": f"file://{out}"},
        "DebugRuleConfigurations": [
            {"RuleConfigurationName": "VanishingGradient", "RuleEvaluatorImage": RULE_IMAGE,
             "RuleParameters": {"rule_to_invoke": "VanishingGradient"}},
            {"RuleConfigurationName": "NoSuchRule", "RuleEvaluatorImage": RULE_IMAGE,
             "RuleParameters": {"rule_to_invoke": "NoSuchRule"}}],
    }
    sm.create_training_job(**req)
    d = rules_settled(sm, "torn", timeout=120)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    rules = rule_statuses(d)
    assert rules["VanishingGradient"]["RuleEvaluationStatus"] == "Error", rules
    detail = rules["VanishingGradient"]["StatusDetails"]
    assert "events/000000000000/000000000000_worker_0.tfevents" in detail, detail
    assert rules["NoSuchRule"]["RuleEvaluationStatus"] == "Error", rules
    assert "NoSuchRule" in rules["NoSuchRule"]["StatusDetails"], rules
    # The server is unharmed: it still answers and runs jobs.
    sm.create_training_job(**job_request("after-torn", str(out), "echo fine"))
    assert wait_status(sm, "after-torn")["TrainingJobStatus"] == "Completed"
