"""Managed spot training end to end, through the real binary and boto3:
interruptions (injected and drawn by the seeded market), restarts from synced
checkpoints, MaxWait across attempts, RetryStrategy, capacity queueing, the
fault-injection CLI and billing."""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import ROOT, Server, TEST_CONFIG, job_request, logs_of, wait_for, wait_status

COUNTER = os.path.join(ROOT, "tests", "e2e", "jobs", "counter.py")


def spot_request(name, tmp_path, *args, max_wait=600, max_runtime=300, storage=None,
                 **overrides):
    """A spot job running jobs/counter.py. With `storage` (the conftest fixture) the script
    channel, checkpoints and output live there and the second result is the checkpoint URI;
    else under tmp_path, and it is the checkpoint directory."""
    if storage is None:
        out = "file://" + str(tmp_path / "out")
        os.makedirs(out[len("file://"):], exist_ok=True)
        ckpt = str(tmp_path / "ckpt" / name)
        ckpt_uri = "file://" + ckpt + "/"
        scripts = "file://" + os.path.dirname(COUNTER)
    else:
        out = storage.uri("out")
        ckpt = ckpt_uri = storage.uri(f"ckpt/{name}/")
        scripts = storage.uri(f"scripts-{name}")
        storage.put_dir(os.path.dirname(COUNTER), scripts)
    req = job_request(name, "/unused", EnableManagedSpotTraining=True,
                      StoppingCondition={"MaxRuntimeInSeconds": max_runtime,
                                         "MaxWaitTimeInSeconds": max_wait},
                      CheckpointConfig={"S3Uri": ckpt_uri}, **overrides)
    req["OutputDataConfig"]["S3OutputPath"] = out
    # The script comes in as a channel: the sandbox hides the host's /tmp, where a
    # checkout may live, but a channel is visible wherever the job runs.
    req["InputDataConfig"] = [{
        "ChannelName": "scripts",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": scripts,
                                        "S3DataDistributionType": "FullyReplicated"}}}]
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/bin/sh", "-c", 'exec /usr/bin/python3 "$SM_CHANNEL_SCRIPTS/counter.py" "$@"', "sh",
        *args]
    return req, ckpt


def secondary(sm, name):
    return sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"]


def wait_log(server, name, text, timeout=60):
    return wait_for(lambda: logs_of(server, name), lambda logs: text in logs, timeout=timeout,
                    interval=0.2)


def test_spot_job_survives_three_interruptions_and_resumes_each_time(server, sm, tmp_path,
                                                                   storage):
    req, ckpt = spot_request("spot3", tmp_path, "--steps", "40", "--sleep", "0.15",
                             storage=storage)
    sm.create_training_job(**req)
    rng = random.Random(3)
    for i in range(3):
        wait_for(lambda: sm.describe_training_job(TrainingJobName="spot3"),
                 lambda d: d["SecondaryStatus"] == "Training", timeout=60)
        time.sleep(rng.uniform(0.8, 1.6))  # a random point of the attempt
        server.cli("spot", "interrupt", "spot3")
        d = wait_for(lambda: sm.describe_training_job(TrainingJobName="spot3"),
                     lambda d: d["SecondaryStatus"] in ("Interrupted", "Starting", "Downloading"),
                     timeout=30)
    d = wait_status(sm, "spot3", timeout=120)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    seq = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert seq.count("Interrupted") == 3, seq
    assert seq.count("Training") == 4, seq
    logs = logs_of(server, "spot3")
    resumed = [line for line in logs.splitlines() if "resumed from checkpoint at step" in line]
    assert len(resumed) == 3, logs
    # Each resume starts where the previous attempt's last checkpoint left off.
    steps = [int(line.rsplit(" ", 1)[1]) for line in resumed]
    assert steps == sorted(steps) and steps[0] > 0, steps
    # Every step ran: the counter reached the end.
    assert "done after 40 steps" in logs
    # Each attempt logged to its own stream.
    streams = {line.split()[2] for line in logs.splitlines() if line.strip()}
    assert len(streams) == 4, streams
    # Spot billing: billable time is well below training time.
    assert d["BillableTimeInSeconds"] < d["TrainingTimeInSeconds"]
    desc = server.cli("jobs", "describe", "spot3").stdout
    assert "Attempts:    4 (3 interrupted" in desc, desc
    assert desc.count("injected with trainyard spot interrupt") == 3, desc
    assert "on-demand would have cost" in desc
    # The last checkpoint and the model are in the store.
    assert json.loads(storage.get_bytes(ckpt + "state.json")) == {"step": 40}
    assert storage.keys(storage.uri("out/spot3/output")) == ["model.tar.gz", "output.tar.gz"]


def test_capacity_that_never_returns_ends_max_wait_exceeded_on_time(server, sm, tmp_path):
    server.cli("spot", "unavailable", "ml.m5.large", "600")
    req, _ = spot_request("nocap", tmp_path, max_wait=6, max_runtime=5)
    sm.create_training_job(**req)
    d = wait_for(lambda: sm.describe_training_job(TrainingJobName="nocap"),
                 lambda d: d["SecondaryStatus"] == "Starting" and
                 "Waiting for spot capacity" in d["SecondaryStatusTransitions"][-1]["StatusMessage"],
                 timeout=10)
    d = wait_status(sm, "nocap", timeout=30)
    assert d["TrainingJobStatus"] == "Stopped"
    assert d["SecondaryStatus"] == "MaxWaitTimeExceeded"
    ended = d["SecondaryStatusTransitions"][-1]["StartTime"]
    waited = (ended - d["CreationTime"]).total_seconds()
    assert 6 <= waited < 7, waited
    assert "TrainingTimeInSeconds" not in d  # it never ran


def test_stop_while_interrupted_and_waiting(server, sm, tmp_path):
    req, _ = spot_request("stopwait", tmp_path, "--steps", "400", "--sleep", "0.1")
    sm.create_training_job(**req)
    wait_log(server, "stopwait", "step 1 ")  # the script's SIGTERM handler is in place
    server.cli("spot", "unavailable", "ml.m5.large", "600")
    server.cli("spot", "interrupt", "stopwait")
    wait_for(lambda: sm.describe_training_job(TrainingJobName="stopwait"),
             lambda d: d["SecondaryStatus"] == "Interrupted" and
             d["SecondaryStatusTransitions"][-1]["StatusMessage"].startswith(
                 "Waiting for spot capacity: no ml.m5.large spot capacity"), timeout=30)
    status = server.cli("spot", "status").stdout
    assert "unavailable" in status, status
    sm.stop_training_job(TrainingJobName="stopwait")
    d = wait_status(sm, "stopwait", timeout=10)
    assert d["TrainingJobStatus"] == "Stopped"
    assert d["SecondaryStatus"] == "Stopped"
    logs = logs_of(server, "stopwait")
    assert "SIGTERM received: checkpoint written" in logs


def test_interruption_drawn_by_the_seeded_market(tmp_path):
    config = TEST_CONFIG + """  types:
    ml.c5.xlarge:
      mean_time_between_interruptions_seconds: 2
      notice_seconds: 2
"""
    srv = Server(str(tmp_path / "data"), config=config).start()
    try:
        sm = srv.boto3()
        req, _ = spot_request("drawn", tmp_path, "--steps", "30", "--sleep", "0.15")
        req["ResourceConfig"]["InstanceType"] = "ml.c5.xlarge"
        sm.create_training_job(**req)
        d = wait_status(sm, "drawn", timeout=180)
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        assert [t["Status"] for t in d["SecondaryStatusTransitions"]].count("Interrupted") >= 1
        assert "done after 30 steps" in logs_of(srv, "drawn")
        assert "drawn by the spot market model" in srv.cli("jobs", "describe", "drawn").stdout
    finally:
        srv.stop()


def test_retry_strategy_restarts_a_lost_instance(server, sm, tmp_path):
    req, ckpt = spot_request("retried", tmp_path, "--steps", "30", "--sleep", "0.1",
                             RetryStrategy={"MaximumRetryAttempts": 1})
    sm.create_training_job(**req)
    # Lose the instance once a checkpoint has reached the URI.
    wait_for(lambda: os.path.exists(os.path.join(ckpt, "state.json")), bool, timeout=30)
    kill_agent(server, "retried")
    d = wait_status(sm, "retried", timeout=90)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    msgs = [t["StatusMessage"] for t in d["SecondaryStatusTransitions"]]
    assert any("retry 1 of 1" in m for m in msgs), msgs
    assert "resumed from checkpoint at step" in logs_of(server, "retried")


def test_without_retries_a_lost_instance_fails_the_job(server, sm, tmp_path):
    req, _ = spot_request("noretry", tmp_path, "--steps", "300", "--sleep", "0.1")
    sm.create_training_job(**req)
    wait_for(lambda: logs_of(server, "noretry"), lambda l: "step 2 " in l, timeout=30)
    kill_agent(server, "noretry")
    d = wait_status(sm, "noretry", timeout=30)
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("InternalServerError:")


def test_algorithm_errors_are_never_retried(server, sm, tmp_path):
    out = str(tmp_path / "out")
    req = job_request("algofail", out, "exit 3", RetryStrategy={"MaximumRetryAttempts": 3})
    sm.create_training_job(**req)
    d = wait_status(sm, "algofail")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"] == "AlgorithmError: Exit Code: 3"
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]].count("Starting") == 1


def test_jobs_queue_for_local_capacity_in_order(tmp_path):
    config = TEST_CONFIG.replace('  "*": 32', '  "*": 32\n  ml.m5.xlarge: 1')
    srv = Server(str(tmp_path / "data"), config=config).start()
    try:
        sm = srv.boto3()
        out = str(tmp_path / "out")
        for name in ("first", "second", "third"):
            req = job_request(name, out, "sleep 1")
            req["ResourceConfig"]["InstanceType"] = "ml.m5.xlarge"
            sm.create_training_job(**req)
        d = sm.describe_training_job(TrainingJobName="third")
        assert d["SecondaryStatus"] == "Starting"
        msg = d["SecondaryStatusTransitions"][-1]["StatusMessage"]
        assert "Waiting for capacity: all 1 ml.m5.xlarge instances of this machine are in use" in msg
        assert "1 job(s) queued ahead" in msg
        ends = {}
        for name in ("first", "second", "third"):
            d = wait_status(sm, name, timeout=60)
            assert d["TrainingJobStatus"] == "Completed"
            ends[name] = (d["TrainingStartTime"], d["TrainingEndTime"])
        assert ends["first"][1] <= ends["second"][0] and ends["second"][1] <= ends["third"][0]
    finally:
        srv.stop()


def test_spot_cli_and_api_errors(server, sm, tmp_path):
    res = server.cli("spot", "unavailable", "ml.nope.large", "10", check=False)
    assert res.returncode == 1 and "ValidationException" in res.stderr, res.stderr
    res = server.cli("spot", "interrupt", "no-such-job", check=False)
    assert res.returncode == 1 and "not found" in res.stderr, res.stderr
    out = str(tmp_path / "out")
    sm.create_training_job(**job_request("ondemand", out, "sleep 5"))
    wait_for(lambda: secondary(sm, "ondemand"), lambda s: s == "Training", timeout=30)
    res = server.cli("spot", "interrupt", "ondemand", check=False)
    assert res.returncode == 1 and "does not use managed spot training" in res.stderr, res.stderr
    status = json.loads(server.cli("spot", "status", "--json").stdout)
    large = [t for t in status["InstanceTypes"] if t["InstanceType"] == "ml.m5.large"]
    assert large and large[0]["LocalCapacity"] == 32 and large[0]["LocalCapacityInUse"] == 1
    assert large[0]["InterruptionNoticeInSeconds"] == 5
    sm.stop_training_job(TrainingJobName="ondemand")
    wait_status(sm, "ondemand")
    # An unknown instance type is refused at CreateTrainingJob in the AWS shape.
    req = job_request("badtype", out, "true")
    req["ResourceConfig"]["InstanceType"] = "ml.r5.large"
    with pytest.raises(sm.exceptions.ClientError) as e:
        sm.create_training_job(**req)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "instance catalog" in e.value.response["Error"]["Message"]


def test_run_prints_the_spot_savings_line(server, tmp_path):
    spec = {
        "AlgorithmSpecification": {"TrainingImage": "trainyard-test/shell:1", "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["/bin/sh", "-c", "sleep 2"]},
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "OutputDataConfig": {"S3OutputPath": "file://" + str(tmp_path / "out")},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
        "EnableManagedSpotTraining": True,
    }
    path = tmp_path / "spot.json"
    path.write_text(json.dumps(spec))
    res = server.cli("run", str(path), "--name", "savings", "--follow", timeout=60)
    assert "Managed Spot Training savings: " in res.stdout, res.stdout
    sm = server.boto3()
    d = sm.describe_training_job(TrainingJobName="savings")
    expected = (1 - d["BillableTimeInSeconds"] / d["TrainingTimeInSeconds"]) * 100
    assert f"Managed Spot Training savings: {expected:.1f}%" in res.stdout
    # The default spot price is 30% of on-demand.
    assert d["BillableTimeInSeconds"] <= round(d["TrainingTimeInSeconds"] * 0.3) + 1


def kill_agent(server, name):
    """SIGKILLs the job's current agent: the instance is lost without notice."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[1] == b"agent" and f"/{name}/attempt-".encode() in argv[3]:
            pids.append(int(pid))
    assert pids, f"no agent found for {name}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
