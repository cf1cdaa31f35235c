"""Jobs that really run, through the real server and agent, driven by boto3 1.26."""

import json
import os
import signal
import subprocess
import tarfile
import time

from conftest import Server, job_request, logs_of, wait_for, wait_status
import shapecheck


def check_shape(sm, op, resp):
    problems = shapecheck.check_output(sm, op, resp)
    assert problems == [], problems


def test_job_completes_with_artifacts_metrics_and_transitions(server, sm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "echo hello from $TRAINING_JOB_NAME on $SM_CURRENT_HOST; "
        "echo 'loss=0.50'; echo 'loss=0.25'; echo 'acc=0.91' >&2; "
        "echo weights > $SM_MODEL_DIR/model.bin; echo report > $SM_OUTPUT_DATA_DIR/report.txt")
    req = job_request("completes", str(out), script)
    req["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "train:loss", "Regex": "loss=([0-9.]+)"},
        {"Name": "validation:acc", "Regex": "acc=([0-9.]+)"}]
    created = sm.create_training_job(**req)
    check_shape(sm, "CreateTrainingJob", created)
    assert created["TrainingJobArn"].endswith(":training-job/completes")
    d = wait_status(sm, "completes")
    check_shape(sm, "DescribeTrainingJob", d)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["SecondaryStatus"] == "Completed"
    seq = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert seq == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all(t["StatusMessage"] for t in d["SecondaryStatusTransitions"])
    assert all("EndTime" in t for t in d["SecondaryStatusTransitions"])
    assert d["TrainingStartTime"] <= d["TrainingEndTime"]
    assert d["TrainingTimeInSeconds"] >= 1 and d["BillableTimeInSeconds"] == d["TrainingTimeInSeconds"]
    metrics = {m["MetricName"]: m["Value"] for m in d["FinalMetricDataList"]}
    assert metrics == {"train:loss": 0.25, "validation:acc": 0.91}
    model = d["ModelArtifacts"]["S3ModelArtifacts"]
    assert model == f"file://{out}/completes/output/model.tar.gz"
    with tarfile.open(out / "completes/output/model.tar.gz") as t:
        assert t.extractfile("model.bin").read() == b"weights\n"
    with tarfile.open(out / "completes/output/output.tar.gz") as t:
        assert t.extractfile("report.txt").read() == b"report\n"
    logs = logs_of(server, "completes")
    assert "hello from completes on algo-1" in logs
    assert "acc=0.91" in logs  # stderr is captured too
    assert "completes/algo-1-" in logs


def test_failure_file_becomes_failure_reason(server, sm, tmp_path):
    script = "echo 'bad hyperparameter: lr' > /opt/ml/output/failure; exit 3"
    sm.create_training_job(**job_request("fails", str(tmp_path), script))
    d = wait_status(sm, "fails")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["SecondaryStatus"] == "Failed"
    assert d["FailureReason"] == "AlgorithmError: bad hyperparameter: lr\n"


def test_exit_code_without_failure_file(server, sm, tmp_path):
    sm.create_training_job(**job_request("exit7", str(tmp_path), "exit 7"))
    d = wait_status(sm, "exit7")
    assert d["TrainingJobStatus"] == "Failed"
    assert "AlgorithmError" in d["FailureReason"] and "7" in d["FailureReason"]


def test_stop_mid_run_uploads_artifacts_and_ends_stopped(server, sm, tmp_path):
    script = ("trap 'echo got SIGTERM; echo final > /opt/ml/model/last.txt; exit 0' TERM; "
              "echo started; while true; do sleep 0.1; done")
    sm.create_training_job(**job_request("stopme", str(tmp_path), script))
    wait_for(lambda: logs_of(server, "stopme"), lambda logs: "started" in logs, timeout=60)
    sm.stop_training_job(TrainingJobName="stopme")
    d = sm.describe_training_job(TrainingJobName="stopme")
    assert d["TrainingJobStatus"] in ("Stopping", "Stopped")
    d = wait_status(sm, "stopme", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "Stopped"
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    assert "got SIGTERM" in logs_of(server, "stopme")
    with tarfile.open(tmp_path / "stopme/output/model.tar.gz") as t:
        assert t.extractfile("last.txt").read() == b"final\n"
    # Stopping a stopped job is refused with SageMaker's message.
    try:
        sm.stop_training_job(TrainingJobName="stopme")
        raise AssertionError("expected an error")
    except sm.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ValidationException"
        assert "in status Stopped" in e.response["Error"]["Message"]


def test_stop_escalates_to_sigkill_after_grace(server, sm, tmp_path):
    # The script ignores SIGTERM; the server's grace period (3 s in tests) ends it.
    script = "trap '' TERM; echo started; while true; do sleep 0.1; done"
    sm.create_training_job(**job_request("stubborn", str(tmp_path), script))
    wait_for(lambda: logs_of(server, "stubborn"), lambda logs: "started" in logs, timeout=60)
    sm.stop_training_job(TrainingJobName="stubborn")
    # Without the SIGKILL the job would sit in Stopping for the 300 s upload allowance.
    d = wait_status(sm, "stubborn", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped"
    # The agent outlived its killed script and still uploaded the artifacts.
    assert (tmp_path / "stubborn/output/model.tar.gz").exists()


def test_max_runtime_stops_the_job(server, sm, tmp_path):
    req = job_request("slow", str(tmp_path), "echo started; sleep 600")
    req["StoppingCondition"] = {"MaxRuntimeInSeconds": 2}
    sm.create_training_job(**req)
    d = wait_status(sm, "slow", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped"
    assert d["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert d["TrainingTimeInSeconds"] >= 2


def test_script_reads_opt_ml_paths_directly(server, sm, tmp_path):
    data = tmp_path / "chan"
    data.mkdir()
    (data / "rows.csv").write_text("1,2,3\n")
    # The script lives in the channel itself: ContainerEntrypoint entries are
    # at most 256 characters, as on SageMaker.
    (data / "run.sh").write_text(
        "cat /opt/ml/input/config/hyperparameters.json; echo\n"
        "cat /opt/ml/input/config/resourceconfig.json; echo\n"
        "cat /opt/ml/input/config/inputdataconfig.json; echo\n"
        "cat /opt/ml/input/data/train/rows.csv; hostname\n"
        "cp /opt/ml/input/data/train/rows.csv /opt/ml/model/\n"
        "touch /opt/ml/input/data/train/x 2>/dev/null && echo WRITABLE || echo READONLY\n")
    script = "sh /opt/ml/input/data/train/run.sh"
    req = job_request("optml", str(tmp_path), script,
                      HyperParameters={"epochs": "3", "lr": "0.1"},
                      InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv",
                                        "DataSource": {"S3DataSource": {
                                            "S3DataType": "S3Prefix", "S3Uri": f"file://{data}"}}}])
    sm.create_training_job(**req)
    d = wait_status(sm, "optml")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "optml")
    assert '{"epochs":"3","lr":"0.1"}' in logs.replace(" ", "")
    assert '"current_host":"algo-1"' in logs.replace(" ", "")
    assert '"ContentType":"text/csv"' in logs.replace(" ", "")
    assert "1,2,3" in logs
    assert "algo-1" in logs
    assert "READONLY" in logs
    assert not (data / "x").exists()


def test_default_train_argument_and_image_catalog(server, sm, tmp_path):
    # No ContainerEntrypoint: the catalog's command plays the image with "train".
    sm.create_training_job(**job_request("defaultarg", str(tmp_path)))
    d = wait_status(sm, "defaultarg")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert "image default entrypoint ran with: train" in logs_of(server, "defaultarg")
    # ContainerArguments replace "train".
    req = job_request("customargs", str(tmp_path))
    req["AlgorithmSpecification"]["ContainerArguments"] = ["--epochs", "2"]
    sm.create_training_job(**req)
    wait_status(sm, "customargs")
    assert "ran with: --epochs 2" in logs_of(server, "customargs")


def test_unknown_image_and_missing_command_fail_the_job_not_the_server(server, sm, tmp_path):
    sm.create_training_job(**job_request("noimage", str(tmp_path), image="example.com/nothing:1"))
    d = wait_status(sm, "noimage")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("ClientError: ")
    assert "example.com/nothing:1" in d["FailureReason"]
    sm.create_training_job(**job_request("nocmd", str(tmp_path), image="trainyard-test/missing:1"))
    d = wait_status(sm, "nocmd")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("ClientError: ")
    assert "/nonexistent/bin/train" in d["FailureReason"]
    assert server.proc.poll() is None  # the server is still serving


def test_missing_channel_data_fails_with_client_error(server, sm, tmp_path):
    req = job_request("nodata", str(tmp_path), "true",
                      InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
                          "S3DataType": "S3Prefix", "S3Uri": f"file://{tmp_path}/absent"}}}])
    sm.create_training_job(**req)
    d = wait_status(sm, "nodata")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "file://{tmp_path}/absent"'), d


def test_pytorch_image_runs_the_toolkit_contract(server, sm, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import argparse, json, os, sys\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--epochs', type=int)\n"
        "p.add_argument('--lr', type=float)\n"
        "a = p.parse_args()\n"
        "print('args', sys.argv[1:])\n"
        "print('hps', os.environ['SM_HPS'])\n"
        "print('entry', os.environ['SM_USER_ENTRY_POINT'], os.environ['SM_MODULE_DIR'])\n"
        "print('cwd', os.getcwd())\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.json'), 'w').write(json.dumps(vars(a)))\n")
    req = job_request("toolkit", str(tmp_path),
                      image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.13.1-cpu-py39",
                      HyperParameters={"sagemaker_program": '"train.py"',
                                       "sagemaker_submit_directory": json.dumps(f"file://{code}"),
                                       "epochs": "4", "lr": "0.5"})
    sm.create_training_job(**req)
    d = wait_status(sm, "toolkit")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "toolkit")
    assert "args ['--epochs', '4', '--lr', '0.5']" in logs
    assert '"epochs":4' in logs and '"lr":0.5' in logs
    assert "entry train.py" in logs
    assert "cwd /opt/ml/code" in logs


def test_toolkit_failure_writes_the_failure_file(server, sm, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("import sys\nprint('oops', file=sys.stderr)\nsys.exit(2)\n")
    req = job_request("toolkitfail", str(tmp_path),
                      image="x/pytorch-training:2.0",
                      HyperParameters={"sagemaker_program": "train.py",
                                       "sagemaker_submit_directory": f"file://{code}"})
    sm.create_training_job(**req)
    d = wait_status(sm, "toolkitfail")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError:")
    assert "ExitCode 2" in d["FailureReason"] and "oops" in d["FailureReason"]


def test_server_restart_while_a_job_runs(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    sm = srv.boto3()
    script = "echo first; sleep 3; echo second; echo done > /opt/ml/model/m.txt"
    sm.create_training_job(**job_request("survivor", str(tmp_path), script))
    wait_for(lambda: sm.describe_training_job(TrainingJobName="survivor"),
             lambda d: d["SecondaryStatus"] == "Training", timeout=60)
    srv.stop(signal.SIGKILL)  # a crash: no chance to clean up
    srv.start()  # a new port: the agent finds it through the data dir
    sm = srv.boto3()
    try:
        d = wait_status(sm, "survivor", timeout=60)
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        logs = logs_of(srv, "survivor")
        assert "first" in logs and "second" in logs
    finally:
        srv.stop()


def test_server_restart_fails_jobs_whose_agent_died(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    sm = srv.boto3()
    sm.create_training_job(**job_request("orphan", str(tmp_path), "echo up; sleep 600"))
    d = wait_for(lambda: sm.describe_training_job(TrainingJobName="orphan"),
                 lambda d: d["SecondaryStatus"] == "Training", timeout=60)
    srv.stop(signal.SIGKILL)
    # Kill the agent too (the whole machine went down, say).
    subprocess.run(["pkill", "-KILL", "-f", os.path.join(srv.data_dir, "jobs")], check=False)
    time.sleep(0.5)
    srv.start()
    sm = srv.boto3()
    try:
        d = wait_status(sm, "orphan", timeout=30)
        assert d["TrainingJobStatus"] == "Failed"
        assert d["FailureReason"].startswith("InternalServerError: ")
    finally:
        srv.stop()


def test_graceful_shutdown_leaves_no_process_behind(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    sm = srv.boto3()
    sm.create_training_job(**job_request("leftover", str(tmp_path), "echo up; sleep 600"))
    wait_for(lambda: sm.describe_training_job(TrainingJobName="leftover"),
             lambda d: d["SecondaryStatus"] == "Training", timeout=60)
    srv.stop()
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert srv.data_dir not in ps, ps
    srv.start()
    try:
        d = srv.boto3().describe_training_job(TrainingJobName="leftover")
        assert d["TrainingJobStatus"] == "Failed"
        assert "shut down" in d["FailureReason"]
    finally:
        srv.stop()


def test_failure_reason_is_cut_on_a_character_boundary(server, sm, tmp_path):
    # "AlgorithmError: " (16 bytes) + 1006 ASCII bytes + 3-byte characters: a byte cut at
    # 1024 leaves two bytes of a character, and invalid UTF-8 broke every later Describe
    # of the job. The cut must fall before the character.
    script = ("python3 -c \"import sys; open('/opt/ml/output/failure','w').write("
              "'x'*1006 + '\\u2588'*10)\"; exit 1")
    sm.create_training_job(**job_request("utf8cut", str(tmp_path), script))
    d = wait_status(sm, "utf8cut")
    assert d["TrainingJobStatus"] == "Failed"
    reason = d["FailureReason"]
    assert reason.startswith("AlgorithmError: xxx")
    assert len(reason.encode()) == 1022
    assert reason.endswith("xxx")
    assert sm.search(Resource="TrainingJob")["Results"]


def test_killed_agent_takes_its_training_process_along_without_bwrap(tmp_path):
    srv = Server(str(tmp_path / "data"), extra_args=["--isolation", "none"]).start()
    sm = srv.boto3()
    try:
        sm.create_training_job(**job_request(
            "plain", str(tmp_path), "echo up; exec sleep 600"))
        wait_for(lambda: logs_of(srv, "plain"), lambda logs: "up" in logs, timeout=60)
        agents = subprocess.run(["pgrep", "-f", "agent --instance .*plain"], capture_output=True,
                                text=True).stdout.split()
        assert len(agents) == 1, agents
        children = subprocess.run(["pgrep", "-P", agents[0]], capture_output=True,
                                  text=True).stdout.split()
        assert children, "the agent has no training process"
        os.kill(int(agents[0]), signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and any(os.path.exists(f"/proc/{c}") and
                                             open(f"/proc/{c}/stat").read().split()[2] != "Z"
                                             for c in children):
            time.sleep(0.05)
        alive = [c for c in children if os.path.exists(f"/proc/{c}") and
                 open(f"/proc/{c}/stat").read().split()[2] != "Z"]
        assert alive == [], "training process outlived its agent"
        d = wait_status(sm, "plain", timeout=30)
        assert d["TrainingJobStatus"] == "Failed"
        assert d["FailureReason"].startswith("InternalServerError: ")
    finally:
        srv.stop()
