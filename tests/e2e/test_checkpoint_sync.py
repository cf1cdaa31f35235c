"""Checkpoint sync end to end: the checkpoint directory is mirrored to
CheckpointConfig.S3Uri while the job trains, restored at every start (a new
job pointed at an old URI resumes), and stays whole under faults: the agent
killed mid-upload, the disk full, a file deleted while it uploads."""
import json
import os
import subprocess
import threading
import time

import pytest

from test_spot import kill_agent, spot_request
from conftest import logs_of, wait_for, wait_status


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def visible_files(root):
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files
                if ".ty-tmp-" not in f]
    return sorted(out)


class WholenessWatcher(threading.Thread):
    """Reads a checkpoint object over and over; every version seen must be whole
    (the counter job writes blob.bin with every byte equal to the step % 251)."""

    def __init__(self, path, size):
        super().__init__(daemon=True)
        self.path, self.size = path, size
        self.versions, self.torn, self.stop = set(), [], False

    def run(self):
        while not self.stop:
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except OSError:
                time.sleep(0.005)
                continue
            if len(data) != self.size or data.count(data[:1]) != len(data):
                self.torn.append((len(data), data[:1], data[-1:]))
            else:
                self.versions.add(data[0])
            time.sleep(0.002)


def test_checkpoints_are_mirrored_while_training(server, sm, tmp_path, storage):
    req, ckpt = spot_request("mirror", tmp_path, "--steps", "200", "--sleep", "0.1",
                             "--delete-after-write", storage=storage)
    sm.create_training_job(**req)
    wait_for(lambda: logs_of(server, "mirror"), lambda l: "step 10 " in l, timeout=30)

    def stored_state():
        try:
            return json.loads(storage.get_bytes(ckpt + "state.json"))
        except Exception:  # not there yet (FileNotFoundError, NoSuchKey)
            return None

    # The stored state follows the local one while the job trains (within a second or two on
    # a quiet machine; bench/ measures the lag: the bound here only has to outlast a loaded CI).
    state = wait_for(stored_state, lambda s: s is not None and s["step"] >= 10, timeout=30)
    assert state["step"] >= 10
    sm.stop_training_job(TrainingJobName="mirror")
    d = wait_status(sm, "mirror")
    assert d["TrainingJobStatus"] == "Stopped"
    # The SIGTERM checkpoint made it, and the deleted scratch file is not there.
    last = int(logs_of(server, "mirror").split("SIGTERM received: checkpoint written at step ")[1].split()[0])
    assert stored_state()["step"] == last
    assert storage.keys(ckpt) == ["state.json"]


def test_a_new_job_resumes_from_an_old_checkpoint_uri(server, sm, tmp_path):
    req, ckpt = spot_request("seed5", tmp_path, "--steps", "5", "--sleep", "0.05")
    sm.create_training_job(**req)
    assert wait_status(sm, "seed5")["TrainingJobStatus"] == "Completed"
    assert read_json(os.path.join(ckpt, "state.json")) == {"step": 5}
    req7, _ = spot_request("seed7", tmp_path, "--steps", "7", "--sleep", "0.05")
    req7["CheckpointConfig"] = req["CheckpointConfig"]
    sm.create_training_job(**req7)
    assert wait_status(sm, "seed7")["TrainingJobStatus"] == "Completed"
    logs = logs_of(server, "seed7")
    assert "resumed from checkpoint at step 5" in logs
    assert "step 6 " in logs and "step 5 " not in logs
    assert "done after 7 steps" in logs


def test_agent_killed_mid_upload_leaves_every_stored_version_whole(server, sm, tmp_path):
    mb = 48
    req, ckpt = spot_request("killed", tmp_path, "--steps", "1000", "--sleep", "0.05",
                             "--blob-mb", str(mb), RetryStrategy={"MaximumRetryAttempts": 1})
    sm.create_training_job(**req)
    blob = os.path.join(ckpt, "blob.bin")
    watcher = WholenessWatcher(blob, mb << 20)
    watcher.start()
    try:
        # Generous: the job starts Python and writes 48 MiB per step; on 2 loaded cores (CI) the
        # first two versions have taken over a minute.
        wait_for(lambda: len(watcher.versions), lambda n: n >= 2, timeout=180)
        kill_agent(server, "killed")  # uploads run back to back: one is in flight
        wait_for(lambda: logs_of(server, "killed"), lambda l: "resumed from checkpoint" in l,
                 timeout=60)
        wait_for(lambda: len(watcher.versions), lambda n: n >= 4, timeout=60)
    finally:
        watcher.stop = True
        watcher.join()
    sm.stop_training_job(TrainingJobName="killed")
    assert wait_status(sm, "killed")["TrainingJobStatus"] == "Stopped"
    assert watcher.torn == []
    assert visible_files(ckpt) == ["blob.bin", "state.json"]
    # The restarted attempt resumed from a whole checkpoint.
    resumed = [l for l in logs_of(server, "killed").splitlines() if "resumed from checkpoint" in l]
    assert len(resumed) == 1


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_at_the_checkpoint_uri_is_reported_and_nothing_hangs(server, sm, tmp_path,
                                                                       tiny_disk):
    req, _ = spot_request("full", tmp_path, "--steps", "6", "--sleep", "0.2", "--blob-mb", "8")
    req["CheckpointConfig"] = {"S3Uri": "file://" + tiny_disk + "/ckpt/"}
    sm.create_training_job(**req)
    d = wait_status(sm, "full", timeout=60)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "full")
    assert "No space left on device" in logs, logs
    # The small checkpoint still synced; no scratch copy is left taking the space.
    assert read_json(os.path.join(tiny_disk, "ckpt", "state.json")) == {"step": 6}
    leftovers = [f for f in os.listdir(os.path.join(tiny_disk, "ckpt")) if ".ty-tmp-" in f]
    assert leftovers == []


def test_a_file_deleted_while_uploading_is_not_stored(server, sm, tmp_path):
    req, ckpt = spot_request("vanish", tmp_path, "--steps", "15", "--sleep", "0.02",
                             "--delete-after-write")
    sm.create_training_job(**req)
    d = wait_status(sm, "vanish", timeout=60)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert visible_files(ckpt) == ["state.json"]
    assert read_json(os.path.join(ckpt, "state.json")) == {"step": 15}
