"""`trainyard storage` against a store that verifies SigV4 signatures: moto_server (the image's
pyenv moto) with authentication on.

s3rver only checks the access key id, so this is the end-to-end proof that our signatures are
accepted, and that a wrong secret or key id fails clearly (non-zero exit, the S3 error code and a
hint at the credentials, never the secret itself).

moto gets its own signature check wrong when the path or a query value is percent-encoded (it
rejects botocore and the AWS CLI there too), so these tests use keys without such characters and
list recursively (no delimiter=%2F); tests/storage/s3_sigv4_test.cc covers those encodings against
botocore's signer.

Authentication in moto: INITIAL_NO_AUTH_ACTION_COUNT=N lets the first N requests through
unchecked; the fixture spends exactly those on creating an IAM user with an allow-all policy, its
access key, and the bucket. Every later request must be signed with that user's key.
"""

import json
import os
import socket
import subprocess
import time

import boto3
import pytest

from conftest import trainyard_bin

MOTO_SERVER = os.environ.get("TY_MOTO_SERVER", "/root/.pyenv/shims/moto_server")
BUCKET = "trainyard-auth"
SETUP_ACTIONS = 4  # create_user, put_user_policy, create_access_key, create_bucket


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port, proc, timeout=30):
    # A TCP connect only: an HTTP request would spend one of the unauthenticated actions.
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Moto:
    def __init__(self, endpoint, access_key, secret_key):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    if not os.path.exists(MOTO_SERVER):
        message = f"moto_server not found at {MOTO_SERVER} (set TY_MOTO_SERVER)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("moto")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_ACTIONS)
    log = open(workdir / "moto.log", "wb")
    proc = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, env=env, cwd=workdir)
    try:
        if not _wait_listening(port, proc):
            pytest.fail(f"moto_server did not start; log:\n{(workdir / 'moto.log').read_text()}")
        endpoint = f"http://127.0.0.1:{port}"
        setup = dict(endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="setup", aws_secret_access_key="setup")
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="trainyard")
        iam.put_user_policy(
            UserName="trainyard", PolicyName="all",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="trainyard")["AccessKey"]
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        yield Moto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def storage_cli(moto, tmp_path, *args, access_key=None, secret_key=None):
    """Runs `trainyard storage ARGS` configured like the AWS CLI, through the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": str(tmp_path),  # no ~/.aws files
        "AWS_ENDPOINT_URL_S3": moto.endpoint,
        "AWS_ACCESS_KEY_ID": access_key or moto.access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key or moto.secret_key,
        "AWS_REGION": "us-east-1",
    })
    return subprocess.run([trainyard_bin(), "storage", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def write_tree(root, files):
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(data)


def read_tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path) as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def s3_with(moto):
    return boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id=moto.access_key, aws_secret_access_key=moto.secret_key)


def test_right_credentials_sync_both_ways_and_list(moto, tmp_path):
    files = {"a.txt": "alpha\n", "sub/b.csv": "1,2,3\n", "sub/deeper/c.bin": "c" * 5000}
    src = tmp_path / "src"
    write_tree(src, files)

    up = storage_cli(moto, tmp_path, "sync", str(src), f"s3://{BUCKET}")
    assert up.returncode == 0, up.stderr
    # What moto stored, read back with boto3 (signed by botocore).
    listed = s3_with(moto).list_objects_v2(Bucket=BUCKET)
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == sorted(files)

    ls = storage_cli(moto, tmp_path, "ls", "--recursive", f"s3://{BUCKET}")
    assert ls.returncode == 0, ls.stderr
    for key in files:
        assert key in ls.stdout, ls.stdout

    dst = tmp_path / "dst"
    down = storage_cli(moto, tmp_path, "sync", f"s3://{BUCKET}", str(dst))
    assert down.returncode == 0, down.stderr
    assert read_tree(dst) == files

    # Incremental: nothing changed, nothing moves; a deletion follows with --delete.
    os.remove(src / "sub" / "b.csv")
    again = storage_cli(moto, tmp_path, "sync", "--delete", str(src), f"s3://{BUCKET}")
    assert again.returncode == 0, again.stderr
    listed = s3_with(moto).list_objects_v2(Bucket=BUCKET)
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == ["a.txt", "sub/deeper/c.bin"]


def test_wrong_secret_fails_clearly(moto, tmp_path):
    wrong = "wrong" + moto.secret_key[5:]
    src = tmp_path / "src"
    write_tree(src, {"wrong-secret.txt": "must not arrive\n"})
    for args in (["ls", "--recursive", f"s3://{BUCKET}"], ["sync", str(src), f"s3://{BUCKET}"]):
        result = storage_cli(moto, tmp_path, *args, secret_key=wrong)
        assert result.returncode != 0, (args, result.stdout)
        assert "SignatureDoesNotMatch" in result.stderr, result.stderr
        assert "credentials" in result.stderr.lower(), result.stderr
        assert wrong not in result.stderr + result.stdout
        assert moto.secret_key not in result.stderr + result.stdout
    # Nothing was written with the wrong secret.
    listed = s3_with(moto).list_objects_v2(Bucket=BUCKET)
    assert "wrong-secret.txt" not in [o["Key"] for o in listed.get("Contents", [])]


def test_unknown_access_key_fails_clearly(moto, tmp_path):
    result = storage_cli(moto, tmp_path, "ls", "--recursive", f"s3://{BUCKET}",
                         access_key="AKIAUNKNOWNUNKNOWN00")
    assert result.returncode != 0, result.stdout
    assert "InvalidAccessKeyId" in result.stderr, result.stderr
    assert "credentials" in result.stderr.lower(), result.stderr
