"""The SageMaker Python SDK 2.230 (../shared/clients) against the real binary, on its default
path: `fit()` with wait and logs on (the job's log through CloudWatch Logs, then the billing
lines), `Estimator.attach` / `PyTorch.attach`, and `TrainingJobAnalytics(job).dataframe()`
(CloudWatch GetMetricStatistics). Storage is s3:// on the session's s3rver, as the SDK refuses
file:// outside its local mode.

The SDK runs as a subprocess (tests/e2e/clients/sagemaker_sdk.py) under the pyenv `python3`
with PYTHONPATH from ../shared/clients/setup.sh; the folder can be named with TY_CLIENTS. The
tests skip only when that folder is absent.

`fit()` polls the logs every 10 s and DescribeTrainingJob every 30 s (the SDK's own pacing), so
the three fits run at once in one fixture (about 35 s), and attach and TrainingJobAnalytics share
one SDK process: about a minute for the file.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import s3util
from conftest import HERE, ROOT, Server, wait_status

CLIENTS = os.environ.get("TY_CLIENTS") or os.path.join(os.path.dirname(ROOT), "shared", "clients")
DRIVER = os.path.join(HERE, "clients", "sagemaker_sdk.py")
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
# A PyTorch training image: the built-in python-framework runtime plays it (README "Images"),
# and the SDK's attach parses framework, version and Python from its name.
PYTORCH_IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/"
                 "pytorch-training:2.0.0-cpu-py310")
METRICS = [{"Name": "train:loss", "Regex": "loss=([0-9.]+)"},
           {"Name": "validation:accuracy", "Regex": "accuracy=([0-9.]+)"}]

PLAIN_COMMAND = "echo 'hello from the SageMaker SDK'; echo 'epoch 1 loss=0.25'; " \
                "echo 'epoch 1 accuracy=0.75'; echo 'training done'"
SPOT_COMMAND = "echo 'spot job starts'; sleep 2; echo 'spot job done'"
TRAIN_PY = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int)
p.add_argument("--lr", type=float)
args = p.parse_args()
print("pytorch entry point ran with epochs=%d lr=%s" % (args.epochs, args.lr), flush=True)
print("epoch 1 loss=0.5", flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("weights")
"""


def python3_on_path(env):
    """The pyenv python3 (boto3 1.43), not Debian's."""
    path = shutil.which("python3", path=env.get("PATH"))
    if path is None or os.path.realpath(path).startswith("/usr/bin/"):
        pytest.fail(f"the pyenv `python3` is not first on PATH (found {path})")
    return path


@pytest.fixture(scope="module")
def sdk_pythonpath(tmp_path_factory):
    if not os.path.isdir(CLIENTS):
        pytest.skip(f"the real clients folder {CLIENTS} is absent (set TY_CLIENTS to its path)")
    deps = tmp_path_factory.mktemp("sdk-deps")
    res = subprocess.run([os.path.join(CLIENTS, "setup.sh"), str(deps)], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, f"{CLIENTS}/setup.sh failed:\n{res.stderr}"
    m = re.search(r"^export TY_SDK_PYTHONPATH=(.*)$", res.stdout, re.M)
    assert m, res.stdout
    return m.group(1)


class Sdk:
    """A module's server, its s3:// area on the session's s3rver, and the SDK driver."""

    def __init__(self, server, s3rver, pythonpath, work_dir):
        self.server = server
        self.s3rver = s3rver
        self.prefix = f"sdk-{int(time.time() * 1000)}"
        self.work_dir = work_dir
        self.env = server.client_env()
        self.env.update({
            "PYTHONPATH": pythonpath,
            "TY_BUCKET": s3util.BUCKET,
            "TY_S3_ENDPOINT": s3rver.endpoint,
            "TY_S3_ACCESS_KEY": s3util.ACCESS_KEY,
            "TY_S3_SECRET_KEY": s3util.SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
        })
        self.python = python3_on_path(self.env)

    def uri(self, rel):
        return f"s3://{s3util.BUCKET}/{self.prefix}/{rel}"

    def start(self, *args):
        # A file, not a pipe: fit() prints for a minute and is read at the end.
        out = tempfile.TemporaryFile("w+", dir=self.work_dir)
        proc = subprocess.Popen([self.python, DRIVER, *args], env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, text=True, cwd=self.work_dir)
        return proc, out

    @staticmethod
    def finish(started, timeout=240):
        proc, out = started
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.seek(0)
        text = out.read()
        out.close()
        result = None
        for line in text.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        return proc.returncode, text, result

    def run(self, *args):
        rc, text, result = self.finish(self.start(*args))
        assert rc == 0 and result is not None, f"sagemaker_sdk.py {args} -> {rc}\n{text}"
        return result


@pytest.fixture(scope="module")
def sdk(tmp_path_factory, s3rver, sdk_pythonpath):
    server = Server(str(tmp_path_factory.mktemp("sdk-server") / "data")).start()
    try:
        yield Sdk(server, s3rver, sdk_pythonpath, str(tmp_path_factory.mktemp("sdk-work")))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fits(sdk):
    """Three jobs made by fit() with its defaults, run at once: a generic Estimator with
    MetricDefinitions, a spot Estimator, and a PyTorch estimator with a local source_dir.
    Maps each kind to (job name, exit code, everything the SDK printed, RESULT)."""
    source = os.path.join(sdk.work_dir, "src")
    os.makedirs(source, exist_ok=True)
    with open(os.path.join(source, "train.py"), "w") as f:
        f.write(TRAIN_PY)
    common = {"role": ROLE, "instance_count": 1, "instance_type": "ml.m5.large"}
    specs = {
        "plain": dict(common, kind="estimator", image_uri="trainyard-test/shell:1",
                      container_entry_point=["/bin/sh", "-c", PLAIN_COMMAND],
                      metric_definitions=METRICS, hyperparameters={"epochs": 1},
                      output_path=sdk.uri("out"),
                      tags=[{"Key": "made-by", "Value": "sagemaker-sdk"}]),
        "spot": dict(common, kind="estimator", image_uri="trainyard-test/shell:1",
                     container_entry_point=["/bin/sh", "-c", SPOT_COMMAND],
                     use_spot_instances=True, max_run=300, max_wait=600,
                     checkpoint_s3_uri=sdk.uri("checkpoints/spot"), output_path=sdk.uri("out")),
        "pytorch": dict(common, kind="pytorch", image_uri=PYTORCH_IMAGE, entry_point="train.py",
                        source_dir=source, hyperparameters={"epochs": 2, "lr": 0.01},
                        metric_definitions=METRICS[:1], output_path=sdk.uri("out")),
    }
    started = {}
    for kind, spec in specs.items():
        spec["job_name"] = f"{sdk.prefix}-{kind}"
        path = os.path.join(sdk.work_dir, f"{kind}.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        started[kind] = (spec["job_name"], sdk.start("fit", path))
    deadline = time.time() + 300  # one for all: they run at once
    return {kind: (name, *Sdk.finish(s, timeout=max(1, deadline - time.time())))
            for kind, (name, s) in started.items()}


def completed(sdk, name):
    d = wait_status(sdk.server.boto3(), name, timeout=120)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    return d


def assert_fit_ok(fit):
    name, rc, out, result = fit
    assert rc == 0 and result is not None, f"fit() of {name} -> {rc}\n{out}"
    assert result["job_name"] == name
    return out


def billing_lines(out):
    return {k: v for k, v in re.findall(
        r"^(Training seconds|Billable seconds|Managed Spot Training savings): (.*)$", out, re.M)}


def test_fit_prints_the_log_and_the_billing_lines(sdk, fits):
    name = fits["plain"][0]
    d = completed(sdk, name)
    out = assert_fit_ok(fits["plain"])
    # The job's log lines, verbatim and in order, through CloudWatch Logs.
    lines = out.splitlines()
    expected = ["hello from the SageMaker SDK", "epoch 1 loss=0.25", "epoch 1 accuracy=0.75",
                "training done"]
    assert [ln for ln in lines if ln in expected] == expected, out
    billing = billing_lines(out)
    assert billing == {"Training seconds": str(d["TrainingTimeInSeconds"]),
                       "Billable seconds": str(d["BillableTimeInSeconds"])}, out
    assert d["TrainingTimeInSeconds"] >= 1
    assert d["OutputDataConfig"] == {"S3OutputPath": sdk.uri("out"), "KmsKeyId": ""}


def test_spot_fit_prints_its_savings(sdk, fits):
    name = fits["spot"][0]
    d = completed(sdk, name)
    out = assert_fit_ok(fits["spot"])
    assert "spot job starts" in out and "spot job done" in out, out
    assert d["EnableManagedSpotTraining"] is True
    training, billable = d["TrainingTimeInSeconds"], d["BillableTimeInSeconds"]
    assert 1 <= billable <= training
    assert billing_lines(out) == {
        "Training seconds": str(training), "Billable seconds": str(billable),
        "Managed Spot Training savings": "{:.1f}%".format((1 - billable / training) * 100)}, out


def test_pytorch_fit_runs_the_uploaded_source_dir(sdk, fits):
    name = fits["pytorch"][0]
    d = completed(sdk, name)
    # The SDK tarred source_dir and uploaded it to S3 itself; the job ran train.py from it with
    # the JSON-quoted hyperparameters decoded into arguments.
    hp = d["HyperParameters"]
    assert json.loads(hp["sagemaker_program"]) == "train.py"
    submit = json.loads(hp["sagemaker_submit_directory"])
    assert submit == f"s3://{s3util.BUCKET}/{name}/source/sourcedir.tar.gz", hp
    out = assert_fit_ok(fits["pytorch"])
    assert "pytorch entry point ran with epochs=2 lr=0.01" in out, out
    assert set(billing_lines(out)) == {"Training seconds", "Billable seconds"}, out
    assert fits["pytorch"][3]["model_data"] == sdk.uri(f"out/{name}/output/model.tar.gz")
    key = fits["pytorch"][3]["model_data"][len(f"s3://{s3util.BUCKET}/"):]
    assert sdk.s3rver.client.head_object(Bucket=s3util.BUCKET, Key=key)["ContentLength"] > 0


@pytest.fixture(scope="module")
def later_calls(sdk, fits):
    """attach and TrainingJobAnalytics on the finished jobs, in one SDK process (each import of
    the SDK costs seconds). Maps a call's name to {"ok": result} or {"error": traceback}."""
    calls = {
        "attach plain": ["attach", "estimator", fits["plain"][0]],
        "attach spot": ["attach", "estimator", fits["spot"][0]],
        "attach pytorch": ["attach", "pytorch", fits["pytorch"][0]],
        "attach missing": ["attach", "estimator", "no-such-job"],
        "analytics plain": ["analytics", fits["plain"][0]],
    }
    for kind in ("plain", "spot", "pytorch"):
        wait_status(sdk.server.boto3(), fits[kind][0], timeout=120)
    path = os.path.join(sdk.work_dir, "calls.json")
    with open(path, "w") as f:
        json.dump(list(calls.values()), f)
    results = sdk.run("calls", path)
    return dict(zip(calls, results))


def ok(entry):
    assert "error" not in entry, entry["error"]
    return entry["ok"]


def test_estimator_attach_rebuilds_the_estimator(sdk, fits, later_calls):
    name = fits["plain"][0]
    completed(sdk, name)
    est = ok(later_calls["attach plain"])
    assert est["class"] == "Estimator" and est["job_name"] == name
    assert est["role"] == ROLE
    assert (est["instance_count"], est["instance_type"], est["volume_size"]) == \
        (1, "ml.m5.large", 30)
    assert est["input_mode"] == "File"
    assert est["output_path"] == sdk.uri("out") and est["output_kms_key"] == ""
    assert est["image_uri"] == "trainyard-test/shell:1"
    assert est["container_entry_point"] == ["/bin/sh", "-c", PLAIN_COMMAND]
    assert est["hyperparameters"] == {"epochs": "1"}
    assert est["encrypt_inter_container_traffic"] is False
    assert est["enable_network_isolation"] is False
    assert est["use_spot_instances"] is False
    assert {"Key": "made-by", "Value": "sagemaker-sdk"} in est["tags"]
    assert est["model_data"] == sdk.uri(f"out/{name}/output/model.tar.gz")


def test_spot_estimator_attach_keeps_spot_settings(sdk, fits, later_calls):
    completed(sdk, fits["spot"][0])
    est = ok(later_calls["attach spot"])
    assert est["use_spot_instances"] is True and est["max_wait"] == 600
    assert est["max_run"] == 300


def test_pytorch_attach_rebuilds_the_framework_estimator(sdk, fits, later_calls):
    name = fits["pytorch"][0]
    completed(sdk, name)
    est = ok(later_calls["attach pytorch"])
    assert est["class"] == "PyTorch" and est["job_name"] == name
    assert est["entry_point"] == "train.py"
    assert est["source_dir"] == f"s3://{s3util.BUCKET}/{name}/source/sourcedir.tar.gz"
    assert (est["framework_version"], est["py_version"]) == ("2.0.0", "py310")
    # attach JSON-decoded them; hyperparameters() encodes them again for the next job (a value
    # left quoted would come back as '"2"').
    assert est["hyperparameters"]["epochs"] == "2" and est["hyperparameters"]["lr"] == "0.01"
    assert est["output_kms_key"] == ""
    assert est["model_data"] == sdk.uri(f"out/{name}/output/model.tar.gz")


def test_attach_to_a_missing_job_is_the_sdks_client_error(later_calls):
    error = later_calls["attach missing"].get("error", "")
    assert "ValidationException" in error and "Requested resource not found" in error, \
        later_calls["attach missing"]


def test_training_job_analytics_returns_the_training_metrics(sdk, fits, later_calls):
    completed(sdk, fits["plain"][0])
    df = ok(later_calls["analytics plain"])
    assert df["columns"] == ["timestamp", "metric_name", "value"], df
    # One sample per metric, so the 60 s Average is the sample itself.
    got = sorted((r["metric_name"], r["value"]) for r in df["rows"])
    assert got == [("train:loss", 0.25), ("validation:accuracy", 0.75)], df
    assert all(r["timestamp"] == 0.0 for r in df["rows"]), df
