"""Fixtures for end-to-end tests: a real `trainyard server` process on a
free port with its own data dir, and real AWS clients pointed at it.

Runs under Debian's /usr/bin/python3 (boto3 1.26). Tests for the newer
boto3 (pyenv `python3`) and the AWS CLIs run those clients as subprocesses.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import s3util

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

ACCOUNT_RE = r"[0-9]{12}"


def trainyard_bin():
    path = os.environ.get("TRAINYARD_BIN", os.path.join(ROOT, "build", "trainyard"))
    if not os.path.exists(path):
        pytest.exit(f"trainyard binary not found at {path}; build first", returncode=2)
    return path


def read_credentials(path, profile="trainyard"):
    creds, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif "=" in line and section == profile:
                k, v = (x.strip() for x in line.split("=", 1))
                creds[k] = v
    return creds


TEST_CONFIG = """
images:
  - match: "trainyard-test/shell:*"
    command: ["/bin/sh", "-c", "echo 'image default entrypoint ran with:' \\"$@\\"", "sh"]
  - match: "trainyard-test/missing:*"
    command: ["/nonexistent/bin/train"]
capacity:
  "*": 32
spot:
  seed: 7
  notice_seconds: 5
"""


# The data dir is never a file:// root, and the server refuses roots that overlap it. Tests keep
# their files under the temp dir (a root), so a server's data dir lives in a tree of its own,
# outside every root; the path the test asked for becomes a symlink to it.
DATA_BASE = os.path.join("/var/tmp", f"trainyard-e2e-{os.getpid()}")


def outside_file_roots(data_dir):
    """The real data dir for the path a test asked for (see DATA_BASE)."""
    data_dir = os.path.abspath(data_dir)
    if os.path.islink(data_dir):
        return os.path.realpath(data_dir)
    tmp = os.path.realpath(tempfile.gettempdir())
    if not (os.path.realpath(data_dir) + "/").startswith(tmp + "/"):
        return data_dir
    os.makedirs(DATA_BASE, exist_ok=True)
    real = tempfile.mkdtemp(prefix="data-", dir=DATA_BASE)
    if os.path.isdir(data_dir):  # prepared by the test before the server: keep what it holds
        for entry in os.listdir(data_dir):
            shutil.move(os.path.join(data_dir, entry), real)
        os.rmdir(data_dir)
    os.makedirs(os.path.dirname(data_dir), exist_ok=True)
    os.symlink(real, data_dir)
    return real


@pytest.fixture(scope="session", autouse=True)
def _data_base():
    yield
    shutil.rmtree(DATA_BASE, ignore_errors=True)


# The session's s3rver (started by the autouse `s3rver` fixture); every Server uses it as its
# S3 store, configured through the AWS CLI's environment variables.
S3RVER = None


class Server:
    """A running `trainyard server` with its data dir and credentials."""

    def __init__(self, data_dir, stop_grace=3, extra_args=(), region="us-east-1", config=None):
        self.data_dir = outside_file_roots(data_dir)
        self.log_path = os.path.join(self.data_dir, "server.log")  # the server's stderr
        self.region = region
        self.stop_grace = stop_grace
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None
        os.makedirs(data_dir, exist_ok=True)
        self.config = os.path.join(data_dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write(TEST_CONFIG if config is None else config)

    def start(self, listen="127.0.0.1:0"):
        self.log = open(self.log_path, "ab")
        # The server's own storage settings, never the test runner's AWS variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if S3RVER is not None:
            env.update(S3RVER.server_env())
        self.proc = subprocess.Popen(
            [trainyard_bin(), "server", "--listen", listen, "--data-dir", self.data_dir,
             "--config", self.config, "--region", self.region,
             "--stop-grace", str(self.stop_grace),
             "--file-root", ROOT, "--file-root", tempfile.gettempdir()] + self.extra_args,
            stdout=subprocess.PIPE, stderr=self.log, cwd=self.data_dir, env=env)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("trainyard listening on http://"), line
        self.url = line.split(" on ", 1)[1].strip()
        self.credentials_file = os.path.join(self.data_dir, "credentials")
        self.creds = read_credentials(self.credentials_file)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def client_env(self):
        """Environment that points AWS clients (and the trainyard CLI) at us."""
        env = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(k, None)
        env.update({
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.url,
            "AWS_SHARED_CREDENTIALS_FILE": self.credentials_file,
            "AWS_PROFILE": "trainyard",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
        })
        return env

    def boto3(self, service="sagemaker", **kw):
        import boto3
        import botocore.config
        session = boto3.session.Session(
            aws_access_key_id=self.creds["aws_access_key_id"],
            aws_secret_access_key=self.creds["aws_secret_access_key"],
            region_name=self.region)
        client = session.client(service, endpoint_url=self.url,
                                config=botocore.config.Config(retries={"max_attempts": 1}), **kw)
        client.meta.events.register("response-received.sagemaker.*", _record_raw_response)
        return client

    def cli(self, *args, check=True, timeout=120):
        res = subprocess.run([trainyard_bin(), *args], env=self.client_env(), capture_output=True,
                             text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"trainyard {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res


def _embedded_model_client():
    """A stand-in client whose service model is the one the server itself validates with
    (src/api/data/sagemaker-model.json: the newest botocore model, pruned), so members newer
    than Debian's botocore (e.g. TrainingJobSummary.SecondaryStatus) are judged correctly."""
    import types
    import botocore.model
    with open(os.path.join(ROOT, "src", "api", "data", "sagemaker-model.json")) as f:
        model = botocore.model.ServiceModel(json.load(f), service_name="sagemaker")
    return types.SimpleNamespace(meta=types.SimpleNamespace(service_model=model))


# Every raw response any test's boto3 client received: (client, operation, status, body).
RAW_RESPONSES = []


def _record_raw_response(response_dict=None, parsed_response=None, context=None, **kwargs):
    if response_dict is None:
        return
    op = kwargs.get("event_name", "").rsplit(".", 1)[-1]
    RAW_RESPONSES.append((op, response_dict.get("status_code"), response_dict.get("body")))


@pytest.fixture(autouse=True)
def every_response_matches_the_service_model(request):
    """After each test: every response the server sent to a boto3 client validates against the
    operation's output shape (raw JSON, so members botocore would drop are caught too), and
    every error is AWS-shaped."""
    del RAW_RESPONSES[:]
    yield
    import shapecheck
    client = _embedded_model_client()
    problems = []
    for op, status, body in RAW_RESPONSES:
        doc = json.loads(body) if body else {}
        if status == 200:
            problems += [f"{op}: {p}" for p in shapecheck.check_raw(client, op, doc)]
        elif not (isinstance(doc.get("__type"), str) and isinstance(doc.get("message"), str)):
            problems.append(f"{op}: error response is not AWS-shaped: {body!r}")
    assert problems == [], problems


@pytest.fixture(scope="session", autouse=True)
def s3rver():
    global S3RVER
    S3RVER = s3util.S3rver()
    yield S3RVER
    S3RVER.stop()
    S3RVER = None


@pytest.fixture(params=["file", "s3"])
def storage(request, tmp_path, s3rver):
    """Where a test's data, checkpoints and output live: file:// under tmp_path, or s3:// under a
    prefix unique to the test in the session's s3rver."""
    if request.param == "file":
        return s3util.FileStorage(str(tmp_path / "store"))
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    return s3util.S3Storage(s3rver, f"{name}-{int(time.time() * 1000)}")


@pytest.fixture
def server(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    yield srv
    srv.stop()


@pytest.fixture
def sm(server):
    return server.boto3()


def wait_for(describe, predicate, timeout=60, interval=0.1):
    """Polls describe() until predicate(result) holds; returns the result."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = describe()
        if predicate(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not reached within {timeout}s; last: {last}")


def wait_status(sm, name, statuses=("Completed", "Failed", "Stopped"), timeout=120):
    return wait_for(lambda: sm.describe_training_job(TrainingJobName=name),
                    lambda d: d["TrainingJobStatus"] in statuses, timeout=timeout)


def job_request(name, out_dir, command=None, image="trainyard-test/shell:1", **overrides):
    """A minimal CreateTrainingJob request whose instance runs `command` via /bin/sh -c."""
    req = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "file://" + out_dir},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    if command is not None:
        req["AlgorithmSpecification"]["ContainerEntrypoint"] = ["/bin/sh", "-c", command]
    for k, v in overrides.items():
        req[k] = v
    return req


def logs_of(server, name):
    res = server.cli("logs", name)
    return res.stdout
