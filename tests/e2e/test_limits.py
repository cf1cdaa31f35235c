"""Per-instance limits through the real server, agent and cgroups, driven by boto3 1.26: a
process limit from the instance type (max_processes), an out-of-memory kill that names the
instance's memory limit, and VolumeSizeInGB on the instance's storage volume."""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import TEST_CONFIG, Server, job_request, logs_of, wait_for, wait_status

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


def volume_leftovers(data_dir):
    """Mounts and loop devices of instance volumes under `data_dir` that are still there."""
    left = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(data_dir + "/"):
                left.append("mount " + point)
    for dev in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{dev}/loop/backing_file") as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(data_dir + "/"):
            left.append(f"{dev} -> {backing}")
    for root, _, files in os.walk(data_dir):
        left += ["image " + os.path.join(root, n) for n in files if n.endswith(".volume")]
    return left


def loop_devices_work():
    return os.geteuid() == 0 and os.path.exists("/dev/loop-control")


def host_free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.skipif(not loop_devices_work(), reason="instance volumes need root and loop devices")
def test_job_that_fills_its_volume_fails_and_the_host_keeps_its_space(server, sm, tmp_path):
    free_before = host_free_bytes(server.data_dir)
    # 2 GiB onto a 1 GiB volume: dd stops at the volume's end with ENOSPC and fails.
    script = ("dd if=/dev/zero of=/opt/ml/model/fill bs=1M count=2048 2>&1; "
              "df -k /opt/ml | tail -1; exit 1")
    req = job_request("fills", str(tmp_path / "out"), script)
    assert req["ResourceConfig"]["VolumeSizeInGB"] == 1
    sm.create_training_job(**req)
    d = wait_status(sm, "fills")
    logs = logs_of(server, "fills")

    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith(
        "ClientError: the instance's storage volume (VolumeSizeInGB 1) is full: the training "
        "process exited with code 1."), d["FailureReason"]
    assert "No space left on device" in logs, logs
    assert "VolumeSizeInGB 1, its own ext4 file system" in logs
    # Released once the agent is gone: no mount, loop device or image left, and the host got
    # back what the volume took (allow for other tests writing meanwhile).
    wait_for(lambda: volume_leftovers(server.data_dir), lambda left: left == [], timeout=30)
    wait_for(lambda: host_free_bytes(server.data_dir), lambda free: free > free_before - (512 << 20),
             timeout=30)


@pytest.mark.skipif(not loop_devices_work(), reason="instance volumes need root and loop devices")
def test_file_channels_count_toward_the_volume(server, sm, tmp_path):
    # Readable by others, so the sandbox binds it instead of copying it onto the volume.
    data = tempfile.mkdtemp(prefix="ty-limits-channel-")
    os.chmod(data, 0o755)
    with open(os.path.join(data, "big.bin"), "wb") as f:
        f.truncate(2 << 30)  # 2 GiB, sparse on the host: only its size matters
    req = job_request("bigchannel", str(tmp_path / "out"), "echo should not run",
                      InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
                          "S3DataType": "S3Prefix", "S3Uri": f"file://{data}/",
                          "S3DataDistributionType": "FullyReplicated"}}}])
    try:
        sm.create_training_job(**req)
        d = wait_status(sm, "bigchannel")
    finally:
        shutil.rmtree(data)

    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith(
        "ClientError: the instance's storage volume (VolumeSizeInGB 1) is full: the input "
        "channels in File mode take 2.00 GiB."), d["FailureReason"]
    assert "should not run" not in logs_of(server, "bigchannel")
    wait_for(lambda: volume_leftovers(server.data_dir), lambda left: left == [], timeout=30)


@pytest.mark.skipif(not loop_devices_work(), reason="instance volumes need root and loop devices")
def test_server_restart_sweeps_volumes_of_jobs_it_does_not_readopt(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    try:
        sm = srv.boto3()
        sm.create_training_job(**job_request("orphan", str(tmp_path / "out"),
                                             "echo started; sleep 300"))
        wait_for(lambda: logs_of(srv, "orphan"), lambda logs: "started" in logs, timeout=60)
        assert any(x.startswith("mount ") for x in volume_leftovers(srv.data_dir))
        # A crash: the server goes, and so does the agent (killed like a lost machine's).
        srv.proc.kill()
        srv.proc.wait()
        for pid in processes_with(srv.data_dir):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        srv.proc = None
        srv.start()
        # The restarted server does not re-adopt the dead agent, and sweeps its volume at start.
        assert volume_leftovers(srv.data_dir) == []
        d = wait_status(srv.boto3(), "orphan")
        assert d["TrainingJobStatus"] == "Failed"
    finally:
        srv.stop()


def test_watched_volume_stops_a_job_past_its_size(tmp_path):
    """The fallback for machines without loop devices: the agent watches the tree's usage and
    stops the job once it passes VolumeSizeInGB."""
    srv = Server(str(tmp_path / "data"), config=TEST_CONFIG + "instance_volumes: watch\n").start()
    try:
        sm = srv.boto3()
        script = ("dd if=/dev/zero of=/opt/ml/model/fill bs=1M count=2048 2>&1; "
                  "echo wrote everything; sleep 60")
        sm.create_training_job(**job_request("watched", str(tmp_path / "out"), script))
        d = wait_status(sm, "watched")
        logs = logs_of(srv, "watched")

        assert d["TrainingJobStatus"] == "Failed"
        assert d["FailureReason"].startswith(
            "ClientError: the instance's storage volume (VolumeSizeInGB 1) is full: the training "
            "process was stopped."), d["FailureReason"]
        assert "VolumeSizeInGB 1, usage of the instance tree watched" in logs
        assert "wrote everything" not in logs
    finally:
        srv.stop()
