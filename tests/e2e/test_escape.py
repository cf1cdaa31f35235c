"""The escape suite (issue 10, Proof): a training script (jobs/escape.py) tries what an attacker
would from inside its sandbox: the mount and umount family, pivot_root, mknod, ptrace, signals
outside its PID namespace, sysctls, cgroup writes, new user namespaces, reading the data dir,
the credentials, another job's tree and /root by path, writing into its channel. Every attempt
must fail, the host must be unchanged, and what the job was meant to write must come out owned
by the configured sandbox uid, still packed, merged and synced by the root agent. For single-
and multi-instance jobs. (Reaching the API port over the network is tested with the instance
networks.)"""
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile

import pytest

from conftest import TEST_CONFIG, ROOT, Server, job_request, logs_of, wait_for, wait_status

ESCAPE = os.path.join(ROOT, "tests", "e2e", "jobs", "escape.py")
SANDBOX_UID = 65534


def _userns_works():
    if os.geteuid() != 0 or not shutil.which("bwrap"):
        return False
    r = subprocess.run(["setpriv", "--reuid", str(SANDBOX_UID), "--regid", str(SANDBOX_UID),
                        "--clear-groups", "bwrap", "--unshare-user", "--uid", "0", "--gid", "0",
                        "--ro-bind", "/", "/", "true"], capture_output=True)
    return r.returncode == 0


pytestmark = pytest.mark.skipif(not _userns_works(),
                                reason="needs root, bubblewrap and unprivileged user namespaces")


def snapshot(path):
    """{relative path: (mode, uid, sha256)} of everything under `path` (a file or a tree)."""
    out = {}
    if os.path.isfile(path):
        st = os.lstat(path)
        with open(path, "rb") as f:
            return {"": (st.st_mode, st.st_uid, hashlib.sha256(f.read()).hexdigest())}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, digest)
    return out


@pytest.fixture
def escape_env(tmp_path):
    """A server whose data dir is outside /tmp (so hiding it is what is tested, not /tmp's
    tmpfs), a world-readable channel holding the script, a finished victim job, and a host
    process to signal."""
    data_dir = tempfile.mkdtemp(prefix="ty-escape-", dir="/var/tmp")
    os.chmod(data_dir, 0o700)
    # Where others may reach and read it, so it is bound read-only (not copied).
    channel_root = tempfile.mkdtemp(prefix="ty-escape-channel-", dir="/var/tmp")
    os.chmod(channel_root, 0o755)
    # `watch`, not a loop volume: the checks below read the instance trees on the host after the
    # job ends, and an instance's volume (its disk) is released once its agent is gone, which
    # used to race with these reads.
    srv = Server(data_dir, extra_args=["--file-root", channel_root],
                 config=TEST_CONFIG + "instance_volumes: watch\n").start()
    # The server says how it sandboxes, on its start lines.
    # (the storage, network, launcher and sandbox lines come first, in that order)
    lines = [srv.proc.stdout.readline().decode() for _ in range(4)]
    assert any(l.startswith("trainyard sandbox: bubblewrap, user namespace: root inside is uid "
                            f"{SANDBOX_UID}") for l in lines), lines
    channel = pathlib.Path(channel_root) / "channel"
    channel.mkdir()
    shutil.copy(ESCAPE, channel / "escape.py")
    (channel / "data.csv").write_text("1,2,3\n")
    for p in (channel, channel / "escape.py", channel / "data.csv"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    sm = srv.boto3()
    out = tmp_path / "out"
    out.mkdir()
    # The victim runs while the escapes are tried, so its tree (on its own instance volume,
    # which goes away when its job ends) holds its secret on the host meanwhile.
    victim = job_request("victim", str(out),
                         "echo secret-of-victim > /opt/ml/model/secret.txt && sleep 600")
    sm.create_training_job(**victim)
    d = sm.describe_training_job(TrainingJobName="victim")
    account = d["TrainingJobArn"].split(":")[4]
    secret = os.path.join(data_dir, "jobs", account, "victim", "attempt-1", "algo-1", "model",
                          "secret.txt")
    wait_for(lambda: os.path.exists(secret), lambda ok: ok, timeout=60)
    marker = subprocess.Popen(["sleep", "600"])
    env = {"srv": srv, "sm": sm, "data_dir": data_dir, "channel": str(channel), "out": str(out),
           "account": account, "marker": marker, "ckpt": str(tmp_path / "ckpt"),
           "victim_tree": os.path.join(data_dir, "jobs", account, "victim", "attempt-1",
                                       "algo-1")}
    yield env
    sm.stop_training_job(TrainingJobName="victim")
    wait_status(sm, "victim")
    marker.kill()
    marker.wait()
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(channel_root, ignore_errors=True)


def run_escape(env, name, count):
    srv = env["srv"]
    watched = {
        "channel": env["channel"],
        "credentials": srv.credentials_file,
        "victim": env["victim_tree"],
        "db": os.path.join(env["data_dir"], "trainyard.db"),
    }
    before = {k: snapshot(v) for k, v in watched.items() if os.path.exists(v)}
    req = job_request(name, env["out"])
    req["ResourceConfig"]["InstanceCount"] = count
    req["InputDataConfig"] = [{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": "file://" + env["channel"],
        "S3DataDistributionType": "FullyReplicated"}}}]
    req["CheckpointConfig"] = {"S3Uri": "file://" + env["ckpt"] + "/" + name}
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/usr/bin/python3", "/opt/ml/input/data/train/escape.py"]
    req["Environment"] = {
        "ESCAPE_DATA_DIR": env["data_dir"],
        "ESCAPE_CREDENTIALS": srv.credentials_file,
        "ESCAPE_OTHER_TREE": env["victim_tree"],
        "ESCAPE_CHANNEL": "/opt/ml/input/data/train",
        "ESCAPE_HOST_PID": str(env["marker"].pid),
    }
    env["sm"].create_training_job(**req)
    d = wait_status(env["sm"], name, timeout=180)
    logs = logs_of(srv, name)
    assert d["TrainingJobStatus"] == "Completed", (d.get("FailureReason"), logs)

    # Every attempt was made, on every instance, and refused.
    attempts = re.findall(r"escape: (\S+) (refused|ESCAPED)(.*)$", logs, re.M)
    print("\n".join(" ".join(a).strip() for a in attempts))  # shown with -s: each errno
    escaped = [a for a in attempts if a[1] == "ESCAPED"]
    assert not escaped, escaped
    names = {a[0] for a in attempts}
    for must in ("remount-channel-rw", "write-into-channel", "umount-tmp", "remount-root-rw",
                 "pivot-root", "mknod-char", "ptrace-attach-child", "kill-host-pid",
                 "write-sysctl", "cgroup-move-to-root", "unshare-user", "read-data-dir",
                 "read-credentials", "read-other-job-tree", "read-root"):
        assert must in names, (must, logs)
    assert len(attempts) == count * len(names), logs
    assert logs.count("escape: uid 0 gid 0") == count, logs  # root inside
    assert "sandbox: root inside is uid 65534 gid 65534" in logs, logs

    # The host is unchanged: channel, credentials, the other job's tree, the database's
    # mode and owner; no marker files; the host process lives.
    after = {k: snapshot(v) for k, v in watched.items() if os.path.exists(v)}
    for k in ("channel", "credentials", "victim"):
        assert after[k] == before[k], k
    # The database changes as jobs run; its mode and owner must not (0600, root's).
    assert after["db"][""][:2] == before["db"][""][:2], (before["db"], after["db"])
    assert after["db"][""][0] & 0o777 == 0o600 and after["db"][""][1] == 0, after["db"]
    assert not os.path.exists("/etc/trainyard-escape-marker")
    assert not os.path.exists("/usr/trainyard-escape-marker")
    assert env["marker"].poll() is None, "the host process was killed"

    # What the job wrote is the sandbox uid's on the host, and the root agent still packed it
    # (merged from every instance), synced the checkpoints and kept the trees readable.
    attempt_dir = os.path.join(env["data_dir"], "jobs", env["account"], name, "attempt-1")
    hosts = [f"algo-{i}" for i in range(1, count + 1)]
    for host in hosts:
        tree = os.path.join(attempt_dir, host)
        for rel in (f"model/escape-{host}.json", f"output/data/escape-{host}.txt",
                    f"checkpoints/ckpt-{host}.txt"):
            st = os.stat(os.path.join(tree, rel))
            assert (st.st_uid, st.st_gid) == (SANDBOX_UID, SANDBOX_UID), rel
        # The channel was bound, not copied: on the host its mount point stays empty.
        assert os.listdir(os.path.join(tree, "input", "data", "train")) == []
        # /opt/ml itself and the inputs stay the agent's.
        assert os.stat(tree).st_uid == 0
        assert os.stat(os.path.join(tree, "input", "config")).st_uid == 0
    with tarfile.open(os.path.join(env["out"], name, "output", "model.tar.gz")) as tar:
        members = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
        reported = json.load(tar.extractfile(
            [m for m in tar.getmembers() if m.name.endswith("escape-algo-1.json")][0]))
    assert {f"escape-{h}.json" for h in hosts} <= members, members
    assert not any(reported.values()), reported
    with tarfile.open(os.path.join(env["out"], name, "output", "output.tar.gz")) as tar:
        data = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
    assert {f"escape-{h}.txt" for h in hosts} <= data, data
    ckpts = os.listdir(os.path.join(env["ckpt"], name))
    assert {f"ckpt-{h}.txt" for h in hosts} <= set(ckpts), ckpts


def test_single_instance_job_cannot_escape(escape_env):
    run_escape(escape_env, "escape1", 1)


def test_multi_instance_job_cannot_escape(escape_env):
    run_escape(escape_env, "escape2", 2)
