"""Secrets and accounts, through the real binary and boto3: the data dir is never a file://
root, roots that overlap it are refused at start, file_roots per account keep account B out of
account A's data, server files are the server's only, and isolation none with several accounts
is refused unless the operator opts in."""

import os
import stat
import subprocess

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import (ROOT, TEST_CONFIG, Server, job_request, outside_file_roots, trainyard_bin,
                      wait_status)

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
KEY_B = {"aws_access_key_id": "AKIATRAINYARDBBBBBB2",
         "aws_secret_access_key": "b/secret/key/for/trainyard/tests000000000"}


def write_two_accounts(data_dir):
    path = os.path.join(data_dir, "credentials")
    with open(path, "w") as f:
        f.write("[trainyard]\n"
                "aws_access_key_id = AKIATRAINYARDAAAAAA1\n"
                "aws_secret_access_key = a/secret/key/for/trainyard/tests000000000\n"
                f"aws_account_id = {ACCOUNT_A}\n"
                "\n[b]\n"
                f"aws_access_key_id = {KEY_B['aws_access_key_id']}\n"
                f"aws_secret_access_key = {KEY_B['aws_secret_access_key']}\n"
                f"aws_account_id = {ACCOUNT_B}\n")
    os.chmod(path, 0o600)


def client_b(srv):
    return boto3.session.Session(region_name=srv.region, **KEY_B).client(
        "sagemaker", endpoint_url=srv.url,
        config=botocore.config.Config(retries={"max_attempts": 1}))


def refused(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def channel(uri):
    return [{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri}}}]


def start_raw(data_dir, *args, cwd=None, timeout=60):
    """Runs `trainyard server` directly; returns (process, first stdout line or None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([trainyard_bin(), "server", "--listen", "127.0.0.1:0",
                             "--data-dir", data_dir, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd or data_dir, env=env)
    return proc


def refused_at_start(data_dir, *args, cwd=None):
    proc = start_raw(data_dir, *args, cwd=cwd)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    return err


def started_lines(data_dir, *args, cwd=None):
    """Starts a server, reads its start lines, stops it; returns everything it printed."""
    proc = start_raw(data_dir, *args, cwd=cwd)
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("trainyard listening on"), (lines, proc.stderr.read())
    finally:
        proc.terminate()
        rest = proc.stdout.read()  # not communicate(): it would miss what readline buffered
        proc.wait(timeout=30)
        proc.stderr.close()
    return lines + rest.splitlines(keepends=True)


def test_account_b_cannot_mount_account_a_data(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    (a_dir / "data").mkdir(parents=True)
    (a_dir / "data" / "secret.txt").write_text("A's data\n")
    (b_dir / "data").mkdir(parents=True)
    (b_dir / "data" / "train.txt").write_text("B's data\n")
    config = TEST_CONFIG + f"accounts:\n  \"{ACCOUNT_B}\":\n    file_roots: [{b_dir}]\n"
    srv = Server(str(tmp_path / "data"), config=config)
    write_two_accounts(srv.data_dir)
    srv.start()
    try:
        a, b = srv.boto3(), client_b(srv)
        a_uri = f"file://{a_dir}/data"
        for what, req in [
                ("channel", job_request("steal", str(b_dir), "true", InputDataConfig=channel(a_uri))),
                ("output", job_request("steal", str(a_dir), "true")),
                ("checkpoint", job_request("steal", str(b_dir), "true",
                                           CheckpointConfig={"S3Uri": f"file://{a_dir}/ckpt"})),
        ]:
            code, msg = refused(b.create_training_job, **req)
            assert code == "ValidationException", (what, msg)
            assert str(a_dir) in msg and "outside the allowed file roots" in msg, (what, msg)
        assert b.list_training_jobs()["TrainingJobSummaries"] == []
        # B's own data is fine, and so is A's for A (A has the server-wide roots).
        b.create_training_job(**job_request("own", str(b_dir), "cat /opt/ml/input/data/train/*",
                                            InputDataConfig=channel(f"file://{b_dir}/data")))
        a.create_training_job(**job_request("own", str(a_dir), "true",
                                            InputDataConfig=channel(a_uri)))
        assert wait_status(b, "own")["TrainingJobStatus"] == "Completed"
        assert wait_status(a, "own")["TrainingJobStatus"] == "Completed"
    finally:
        srv.stop()


def test_data_dir_is_never_a_channel(tmp_path, server, sm):
    link = str(tmp_path / "data")  # the conftest's symlink to the real data dir
    assert os.path.realpath(link) == server.data_dir
    for uri in (f"file://{server.data_dir}", f"file://{server.data_dir}/credentials",
                f"file://{link}", f"file://{link}/jobs"):
        code, msg = refused(sm.create_training_job,
                            **job_request("peek", str(tmp_path), "true", InputDataConfig=channel(uri)))
        assert code == "ValidationException", msg
        assert uri in msg, msg
    code, msg = refused(sm.create_training_job,
                        **job_request("peek", os.path.join(server.data_dir, "out"), "true"))
    assert code == "ValidationException", msg


def test_roots_overlapping_the_data_dir_are_refused_at_start(tmp_path):
    data = outside_file_roots(str(tmp_path / "data"))
    os.makedirs(os.path.join(data, "jobs"), exist_ok=True)
    parent = os.path.dirname(data)
    for root in (data, parent, os.path.join(data, "jobs")):
        err = refused_at_start(data, "--file-root", root)
        assert f"overlaps the data dir {data}" in err, err
    config = os.path.join(str(tmp_path), "overlap.yaml")
    with open(config, "w") as f:
        f.write(f"accounts:\n  \"{ACCOUNT_B}\":\n    file_roots: [{parent}]\n")
    err = refused_at_start(data, "--config", config, "--file-root", str(tmp_path))
    assert f"file root of account {ACCOUNT_B} {parent} overlaps the data dir" in err, err


def test_default_root_is_the_starting_directory_unless_it_overlaps(tmp_path):
    data = outside_file_roots(str(tmp_path / "data"))
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    lines = started_lines(data, cwd=str(elsewhere))
    assert f"trainyard file roots: {elsewhere}\n" in lines, lines
    # Started inside the data dir (or above it): no default root, said on a start line.
    for cwd in (data, os.path.dirname(data)):
        lines = started_lines(data, cwd=cwd)
        roots = [l for l in lines if l.startswith("trainyard file roots:")]
        assert roots and roots[0].startswith("trainyard file roots: none (the starting directory"), lines
        assert "overlaps the data dir" in roots[0], roots


def test_server_files_are_the_servers_only(tmp_path, server, sm):
    sm.create_training_job(**job_request("modes", str(tmp_path), "echo hi"))
    assert wait_status(sm, "modes")["TrainingJobStatus"] == "Completed"
    d = server.data_dir
    assert stat.S_IMODE(os.stat(d).st_mode) & 0o066 == 0, oct(os.stat(d).st_mode)
    files = ["credentials", "trainyard.db", "trainyard.db-wal", "trainyard.db-shm", "server.json",
             "server.url", "server.lock"]
    for root, _, names in os.walk(os.path.join(d, "jobs")):
        files += [os.path.relpath(os.path.join(root, n), d) for n in names
                  if n.endswith(".instance.json")]
    assert any(f.endswith(".instance.json") for f in files), files
    for f in files:
        mode = stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode)
        assert mode == 0o600, (f, oct(mode))


def test_isolation_none_with_several_accounts(tmp_path):
    data = outside_file_roots(str(tmp_path / "data"))
    write_two_accounts(data)
    err = refused_at_start(data, "--isolation", "none", "--file-root", str(tmp_path))
    assert "isolation is none" in err and "2 accounts" in err and "allow_shared_host" in err, err
    config = os.path.join(str(tmp_path), "shared.yaml")
    with open(config, "w") as f:
        f.write("allow_shared_host: true\n")
    lines = started_lines(data, "--isolation", "none", "--config", config,
                          "--file-root", str(tmp_path))
    assert any(l.startswith("trainyard: WARNING: isolation is none with 2 accounts") for l in lines), lines
    # One account: no objection.
    single = outside_file_roots(str(tmp_path / "single"))
    lines = started_lines(single, "--isolation", "none", "--file-root", str(tmp_path))
    assert not any("WARNING" in l for l in lines), lines
