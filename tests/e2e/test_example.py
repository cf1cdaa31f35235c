"""`trainyard run` with an embedded server: the main job (examples/digits), and Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import tarfile

from conftest import ROOT, trainyard_bin


def test_digits_example_runs_end_to_end(tmp_path):
    example = os.path.join(ROOT, "examples", "digits")
    subprocess.run([os.path.join(example, "prepare.sh")], check=True, capture_output=True)
    env = dict(os.environ, TRAINYARD_HOME=str(tmp_path / "home"))
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"):
        env.pop(k, None)
    res = subprocess.run([trainyard_bin(), "run", os.path.join(example, "job.yaml"), "--follow",
                          "--name", "digits-e2e-" + str(os.getpid())],
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "started an embedded server" in out
    # Status transitions and log lines are printed as they happen.
    for status in ("Downloading", "Training", "Uploading", "Completed"):
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d " + status + " - ", out), status
    assert "epoch=1 " in out
    acc = float(re.search(r"validation:accuracy = ([0-9.]+)", out).group(1))
    assert acc >= 0.9, out
    artifact = re.search(r"Model artifacts: file://(\S+)", out).group(1)
    with tarfile.open(artifact) as t:
        names = t.getnames()
    assert "model.pt" in names and "metrics.json" in names
    # No process of the job is left behind by the embedded server.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "home") not in ps


def test_ctrl_c_stops_a_job_run_on_the_embedded_server(tmp_path):
    # The job's files live beside the data dir, not around it: the data dir is never a file root.
    work = tmp_path / "work"
    work.mkdir()
    code = work / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    print('got SIGTERM', flush=True)\n"
        "    open('/opt/ml/model/partial.txt', 'w').write('x')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('spinning', flush=True)\n"
        "while True:\n"
        "    time.sleep(0.1)\n")
    spec = work / "spin.json"
    spec.write_text(json.dumps({
        "AlgorithmSpecification": {"TrainingImage": "x/pytorch-training:2.0",
                                   "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "HyperParameters": {"sagemaker_program": "train.py",
                            "sagemaker_submit_directory": "file://./code"},
        "OutputDataConfig": {"S3OutputPath": "file://./out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600}}))
    env = dict(os.environ, TRAINYARD_HOME=str(tmp_path / "home"))
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"):
        env.pop(k, None)
    proc = subprocess.Popen([trainyard_bin(), "run", str(spec), "--name", "spin"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "spinning" in line:
            proc.send_signal(signal.SIGINT)
            break
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=60) == 1, out  # not Completed
    assert "got SIGTERM" in out, out
    assert "Training job spin: Stopped (Stopped)" in out, out
    with tarfile.open(work / "out/spin/output/model.tar.gz") as t:
        assert "partial.txt" in t.getnames()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "home") not in ps
