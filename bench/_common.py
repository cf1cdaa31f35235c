"""Shared helpers for the Trainyard benchmarks: start a server, sign with botocore, keep-alive."""
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trainyard_bin():
    return os.path.abspath(os.environ.get("TRAINYARD_BIN", os.path.join(ROOT, "build-bench", "trainyard")))


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


class Server:
    def __init__(self, config_text="", extra_args=(), data_dir=None, listen="127.0.0.1:0"):
        # Outside /tmp: the data dir may never overlap a file root, and /tmp is one (outputs
        # and channels of the benches live there).
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="ty-bench-", dir="/var/tmp")
        self.config = os.path.join(self.data_dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write(config_text or "images: []\n")
        self.extra_args = list(extra_args)
        self.listen = listen  # a fixed port when the config must name the URL (slurm.server_url)

    def start(self):
        self.log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [trainyard_bin(), "server", "--listen", self.listen, "--data-dir", self.data_dir,
             "--config", self.config, "--region", "us-east-1", "--stop-grace", "3",
             "--file-root", tempfile.gettempdir(),
             "--file-root", os.path.dirname(os.path.abspath(__file__))] + self.extra_args,
            stdout=subprocess.PIPE, stderr=self.log, cwd=self.data_dir)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("trainyard listening on http://"), line
        self.url = line.split(" on ", 1)[1].strip()
        c = read_credentials(os.path.join(self.data_dir, "credentials"))
        self.creds = Credentials(c["aws_access_key_id"], c["aws_secret_access_key"])
        return self

    def rss_kb(self):
        return rss_kb(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Client:
    """One keep-alive HTTP/1.1 connection sending botocore-signed AWS JSON 1.1 requests."""

    def __init__(self, url, creds, region="us-east-1", prefix="SageMaker"):
        self.url = url.rstrip("/")
        hostport = self.url.split("://", 1)[1]
        host, port = hostport.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.signer = SigV4Auth(creds, "sagemaker", region)
        self.prefix = prefix

    def prepare(self, op, body, target_prefix=None):
        data = json.dumps(body).encode()
        req = AWSRequest(method="POST", url=self.url + "/", data=data, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"{target_prefix or self.prefix}.{op}"})
        self.signer.add_auth(req)
        return data, dict(req.headers.items())

    def send(self, data, headers):
        # The server closes keep-alive connections idle for 2 s: reconnect once if so.
        for attempt in (0, 1):
            try:
                self.conn.request("POST", "/", body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt:
                    raise
        return resp.status, (json.loads(raw) if raw else {})

    def call(self, op, body, target_prefix=None):
        return self.send(*self.prepare(op, body, target_prefix))


def job_request(name, image, out_dir):
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "file://" + out_dir},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def med(xs):
    return statistics.median(xs) if xs else float("nan")
