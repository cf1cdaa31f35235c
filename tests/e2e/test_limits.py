"""Per-instance limits through the real server, agent and cgroups, driven by boto3 1.26: a
process limit from the instance type (max_processes), an out-of-memory kill that names the
instance's memory limit, and VolumeSizeInGB on the instance's storage volume."""

import os
import subprocess
import uuid

import pytest

from conftest import TEST_CONFIG, Server, job_request, logs_of, wait_status

# Types made small in the server config (names stay built-in ones: the API takes only those), so
# a process bomb and a memory hog hit their limits in seconds.
FEW_PROCS = "ml.t3.medium"
SMALL_MEMORY = "ml.t3.large"
LIMITS_CONFIG = TEST_CONFIG + f"""
instance_types:
  {FEW_PROCS}: {{max_processes: 48}}
  {SMALL_MEMORY}: {{vcpus: 1, memory_gib: 0.25}}
"""


def cgroups_writable():
    if os.geteuid() != 0:
        return False
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return os.access("/sys/fs/cgroup/cgroup.procs", os.W_OK)
    return all(os.access(f"/sys/fs/cgroup/{c}/cgroup.procs", os.W_OK)
               for c in ("cpu", "memory", "pids"))


needs_cgroups = pytest.mark.skipif(not cgroups_writable(),
                                   reason="instance limits need root and writable cgroups")


@pytest.fixture
def limits_server(tmp_path):
    srv = Server(str(tmp_path / "data"), config=LIMITS_CONFIG).start()
    yield srv
    srv.stop()


def processes_with(marker):
    """Pids of processes on the host whose command line contains `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


# Forks children that sleep until killed, without bound, until fork fails; then reports and
# exits 3, leaving the children behind for the instance's end to clean up.
BOMB = """
import os, sys
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print(f"fork failed after {n} children: {e.strerror}", flush=True)
        sys.exit(3)
    if pid == 0:
        os.execv("/bin/sleep", ["sleep", "SECONDS"])
    n += 1
"""


def code_channel(tmp_path, name, text):
    """An input channel "code" holding `name` with `text` (an entrypoint is at most 256 bytes)."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(text)
    return [{"ChannelName": "code", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"file://{code}/",
        "S3DataDistributionType": "FullyReplicated"}}}]


@needs_cgroups
def test_process_bomb_stops_at_the_types_limit_and_leaves_nothing(limits_server, tmp_path):
    sm = limits_server.boto3()
    # A sleep length no other process on the machine uses marks the bomb's children.
    marker = str(86000 + uuid.uuid4().int % 400) + ".5"
    req = job_request("bomb", str(tmp_path / "out"),
                      "exec /usr/bin/python3 /opt/ml/input/data/code/bomb.py",
                      InputDataConfig=code_channel(tmp_path, "bomb.py",
                                                   BOMB.replace("SECONDS", marker)))
    req["ResourceConfig"]["InstanceType"] = FEW_PROCS
    sm.create_training_job(**req)
    d = wait_status(sm, "bomb")
    logs = logs_of(limits_server, "bomb")

    assert d["TrainingJobStatus"] == "Failed", d.get("FailureReason")
    assert d["FailureReason"] == "AlgorithmError: Exit Code: 3"
    assert "48 processes" in logs  # the limits line
    assert "fork failed after" in logs and "Resource temporarily unavailable" in logs, logs
    started = int(logs.split("fork failed after ")[1].split()[0])
    assert 10 < started < 48
    # The instance's end killed what the job left behind.
    assert processes_with("sleep\0" + marker) == []
    # The host still forks.
    assert subprocess.run(["/bin/true"]).returncode == 0


@needs_cgroups
def test_memory_hog_fails_with_the_instance_memory_limit(limits_server, tmp_path):
    sm = limits_server.boto3()
    # bytes * n writes every page: the memory is really used, not just reserved.
    script = ("echo allocating; "
              "exec /usr/bin/python3 -c 'x = b\"x\" * (1 << 30); print(\"survived\", len(x))'")
    req = job_request("hog", str(tmp_path), script)
    req["ResourceConfig"]["InstanceType"] = SMALL_MEMORY
    sm.create_training_job(**req)
    d = wait_status(sm, "hog")

    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith(
        "OutOfMemoryError: Please use an instance type with more memory, or reduce the size of "
        "job data processed on an instance. (memory limit 256 MiB of ml.t3.large"), d
    assert "survived" not in logs_of(limits_server, "hog")


@needs_cgroups
def test_job_within_its_limits_completes(limits_server, tmp_path):
    sm = limits_server.boto3()
    script = "for i in 1 2 3 4 5; do sleep 0.1 & done; wait; echo fine"
    req = job_request("within", str(tmp_path), script)
    req["ResourceConfig"]["InstanceType"] = FEW_PROCS
    sm.create_training_job(**req)
    d = wait_status(sm, "within")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert "fine" in logs_of(limits_server, "within")
