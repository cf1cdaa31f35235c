"""A real s3rver for the end-to-end tests, and one storage API over file:// and s3:// so a test
can run against either (the `storage` fixture in conftest.py).

s3rver is installed by scripts/s3rver.sh (called from scripts/install-deps.sh). It does not
verify signatures; tests/e2e/test_s3_auth.py covers that against moto_server.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
BUCKET = "trainyard-e2e"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3rver_binary():
    path = os.environ.get("TY_S3RVER") or os.path.join(
        ROOT, ".deps", "s3rver", "node_modules", ".bin", "s3rver")
    if not os.path.exists(path):
        raise RuntimeError(f"s3rver not found at {path}: run scripts/s3rver.sh install")
    return path


class S3rver:
    """One s3rver process on a free loopback port with its own data dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ty-e2e-s3rver-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.log = open(os.path.join(self.dir, "s3rver.log"), "ab")
        self.proc = subprocess.Popen(
            [s3rver_binary(), "-d", os.path.join(self.dir, "data"), "-a", "127.0.0.1",
             "-p", str(self.port), "--silent"],
            stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers (403 for an unsigned request)
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"s3rver did not start; see {self.dir}/s3rver.log")
                time.sleep(0.1)
        self.client = self.boto3()
        self.client.create_bucket(Bucket=BUCKET)

    def boto3(self):
        import boto3
        import botocore.config
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1").client(
                "s3", endpoint_url=self.endpoint,
                config=botocore.config.Config(s3={"addressing_style": "path"}))

    def server_env(self):
        """What a Trainyard server needs to use this store: the AWS CLI's variables."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class FileStorage:
    """file:// locations under a test's temp dir."""

    scheme = "file"

    def __init__(self, base_dir):
        self.base_dir = base_dir
        os.makedirs(base_dir, exist_ok=True)

    def uri(self, rel=""):
        return "file://" + os.path.join(self.base_dir, rel)

    def _path(self, uri):
        assert uri.startswith("file://"), uri
        return uri[len("file://"):]

    def put_bytes(self, uri, data):
        path = self._path(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def put_dir(self, local_dir, uri):
        shutil.copytree(local_dir, self._path(uri), dirs_exist_ok=True)

    def get_bytes(self, uri):
        with open(self._path(uri), "rb") as f:
            return f.read()

    def keys(self, uri):
        """Relative keys of every object under the prefix `uri`, sorted."""
        root = self._path(uri).rstrip("/")
        out = []
        for d, _, files in os.walk(root):
            for name in files:
                if ".ty-tmp-" in name:
                    continue
                out.append(os.path.relpath(os.path.join(d, name), root))
        return sorted(out)


class S3Storage:
    """s3:// locations under a unique prefix of the session's s3rver bucket."""

    scheme = "s3"

    def __init__(self, s3rver, prefix):
        self.s3rver = s3rver
        self.client = s3rver.client
        self.prefix = prefix.strip("/")

    def uri(self, rel=""):
        return f"s3://{BUCKET}/{self.prefix}/{rel}"

    def _key(self, uri):
        assert uri.startswith(f"s3://{BUCKET}/"), uri
        return uri[len(f"s3://{BUCKET}/"):]

    def put_bytes(self, uri, data):
        self.client.put_object(Bucket=BUCKET, Key=self._key(uri), Body=data)

    def put_dir(self, local_dir, uri):
        base = self._key(uri).rstrip("/")
        for d, _, files in os.walk(local_dir):
            for name in files:
                path = os.path.join(d, name)
                rel = os.path.relpath(path, local_dir)
                with open(path, "rb") as f:
                    self.client.put_object(Bucket=BUCKET, Key=f"{base}/{rel}", Body=f.read())

    def get_bytes(self, uri):
        return self.client.get_object(Bucket=BUCKET, Key=self._key(uri))["Body"].read()

    def keys(self, uri):
        base = self._key(uri).rstrip("/") + "/"
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                          Prefix=base):
            out += [o["Key"][len(base):] for o in page.get("Contents", [])]
        return sorted(out)
