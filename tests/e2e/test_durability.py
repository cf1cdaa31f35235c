"""Nothing lost without a word, through the real binary and boto3: a full disk (a small tmpfs
under the data dir) loses no log line unmentioned and shows no SQL; a missing, empty or damaged
database is refused at start naming the file; `trainyard admin backup` copies the state of a
running server."""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time

import botocore.exceptions
import pytest

from conftest import (DATA_BASE, TEST_CONFIG, Server, job_request, logs_of, outside_file_roots,
                      trainyard_bin, wait_for, wait_status)


def run_completed_job(srv, out_dir, name="kept"):
    sm = srv.boto3()
    sm.create_training_job(**job_request(name, out_dir, "echo kept"))
    assert wait_status(sm, name)["TrainingJobStatus"] == "Completed"


def refused_start(data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    res = subprocess.run([trainyard_bin(), "server", "--listen", "127.0.0.1:0", "--data-dir",
                          data_dir, "--file-root", tempfile.gettempdir()],
                         capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert res.returncode != 0, res.stdout
    return res.stderr


def stopped_server_with_a_job(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    try:
        run_completed_job(srv, str(tmp_path))
    finally:
        srv.stop()
    return srv.data_dir


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_lost_database_beside_job_trees_is_refused(tmp_path, damage):
    data = stopped_server_with_a_job(tmp_path)
    db = os.path.join(data, "trainyard.db")
    for side in ("-wal", "-shm"):
        if os.path.exists(db + side):
            os.unlink(db + side)
    if damage == "empty":
        open(db, "w").close()
    else:
        os.unlink(db)
    err = refused_start(data)
    assert f"{db} is {damage}" in err, err
    assert "trainyard admin backup" in err and "aside" in err, err
    assert not os.path.exists(db) or os.path.getsize(db) == 0  # nothing created over the loss
    # Moving the job trees aside, as the message says, starts an empty server.
    shutil.move(os.path.join(data, "jobs"), os.path.join(data, "jobs.lost"))
    srv = Server(data).start()
    try:
        assert srv.boto3().list_training_jobs()["TrainingJobSummaries"] == []
    finally:
        srv.stop()


def test_damaged_database_is_refused_naming_the_file(tmp_path):
    data = stopped_server_with_a_job(tmp_path)
    db = os.path.join(data, "trainyard.db")
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the garbage below is what is read
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(db)
    assert size >= 3 * 4096, size
    with open(db, "r+b") as f:  # a garbage page over the second page (a table's b-tree)
        f.seek(4096)
        f.write(bytes((i * 7 + 3) % 256 for i in range(4096)))
    err = refused_start(data)
    assert f"the database {db} is damaged" in err, err
    assert "trainyard admin backup" in err, err
    # Not a database at all: the header itself is garbage.
    with open(db, "r+b") as f:
        f.write(b"this is not an SQLite file" * 10)
    err = refused_start(data)
    assert f"the database {db} is damaged" in err and "not a database" in err, err


def test_admin_backup_while_the_server_runs(tmp_path):
    srv = Server(str(tmp_path / "data")).start()
    sm = srv.boto3()
    backup = str(tmp_path / "backup.db")
    try:
        for i in range(3):
            sm.create_training_job(**job_request(f"before-{i}", str(tmp_path), "echo hi"))
        for i in range(3):
            wait_status(sm, f"before-{i}")
        # Writes go on while the copy is taken.
        stop = threading.Event()

        def keep_writing():
            n = 0
            while not stop.is_set():
                sm.add_tags(ResourceArn=sm.describe_training_job(TrainingJobName="before-0")
                            ["TrainingJobArn"], Tags=[{"Key": f"k{n % 40}", "Value": str(n)}])
                n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            res = subprocess.run([trainyard_bin(), "admin", "backup", "--data-dir", srv.data_dir,
                                  backup], capture_output=True, text=True, timeout=120)
        finally:
            stop.set()
            writer.join()
        assert res.returncode == 0, res.stderr
        assert "integrity_check ok" in res.stdout, res.stdout
        assert oct(os.stat(backup).st_mode & 0o777) == oct(0o600)
        with sqlite3.connect(backup) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 3
        # The server still serves after the copy.
        assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 3
    finally:
        srv.stop()
    # Restored into a fresh data dir (with the credentials, which the operator keeps too).
    restored = outside_file_roots(str(tmp_path / "restored"))
    shutil.copy(backup, os.path.join(restored, "trainyard.db"))
    shutil.copy(os.path.join(srv.data_dir, "credentials"), os.path.join(restored, "credentials"))
    srv2 = Server(restored).start()
    try:
        names = sorted(j["TrainingJobName"]
                       for j in srv2.boto3().list_training_jobs()["TrainingJobSummaries"])
        assert names == ["before-0", "before-1", "before-2"]
        d = srv2.boto3().describe_training_job(TrainingJobName="before-1")
        assert d["TrainingJobStatus"] == "Completed"
    finally:
        srv2.stop()


def test_backup_of_a_dir_without_database_fails(tmp_path):
    res = subprocess.run([trainyard_bin(), "admin", "backup", "--data-dir", str(tmp_path / "none"),
                          str(tmp_path / "out.db")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "no database at" in res.stderr, res.stderr


# ---------------------------------------------------------------------------------------------
# A full disk: the data dir is a small tmpfs that a filler file fills up.

def fill(path):
    """Fills the file system holding `path` to the last page; returns the filler's path."""
    filler = os.path.join(path, "filler")
    for bs in ("1M", "4k"):
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", f"bs={bs}", "oflag=append",
                        "conv=notrunc"], capture_output=True)
    st = os.statvfs(path)
    assert st.f_bavail == 0, st
    return filler


@pytest.fixture
def tiny_data_dir():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    os.makedirs(DATA_BASE, exist_ok=True)
    mnt = os.path.join(DATA_BASE, f"fulldisk-{os.getpid()}-{time.time_ns()}")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)
        shutil.rmtree(mnt, ignore_errors=True)


# $S: the signals folder; $N: the job's name; $L: how many lines to print.
SCRIPT = ('until [ -e $S/go-$N ]; do sleep .05; done; i=1; while [ $i -le $L ]; do '
          'echo "line $i of $L"; i=$((i+1)); done; touch $S/printed-$N; '
          'until [ -e $S/free ]; do sleep .05; done')


def test_full_disk_loses_no_line_without_a_word(tmp_path, tiny_data_dir):
    signals = str(tmp_path / "signals")
    os.makedirs(signals)
    # A job's log buffer of 10 lines: 40 lines printed while the disk is full cannot all wait.
    srv = Server(tiny_data_dir, config=TEST_CONFIG + "agent_log_buffer_lines: 10\n",
                 extra_args=["--isolation", "none"])
    srv.log_path = str(tmp_path / "server.log")  # not on the disk that fills up
    srv.start()
    sm = srv.boto3()
    try:
        jobs = {"fits": 8, "overflows": 40}
        for name, lines in jobs.items():
            req = job_request(name, str(tmp_path), SCRIPT,
                              Environment={"S": signals, "N": name, "L": str(lines)})
            sm.create_training_job(**req)
        for name in jobs:
            wait_for(lambda: sm.describe_training_job(TrainingJobName=name),
                     lambda d: d["SecondaryStatus"] == "Training", timeout=60)
        arn = sm.describe_training_job(TrainingJobName="fits")["TrainingJobArn"]
        filler = fill(tiny_data_dir)
        try:
            for name in jobs:
                open(os.path.join(signals, f"go-{name}"), "w").close()
            for name in jobs:
                wait_for(lambda: os.path.exists(os.path.join(signals, f"printed-{name}")),
                         lambda x: x, timeout=60)
            # The server refuses the agents' reports with a retryable error, and says why in its
            # own log only.
            server_log = srv.log_path
            wait_for(lambda: open(server_log, errors="replace").read(),
                     lambda t: "agent report for" in t and "not taken" in t, timeout=60)
            # An API call that must write gets an AWS error without SQL or server paths.
            with pytest.raises(botocore.exceptions.ClientError) as e:
                sm.add_tags(ResourceArn=arn, Tags=[{"Key": "k" * 60, "Value": "v" * 200}] * 1)
            err = e.value.response["Error"]
            assert err["Code"] in ("ServiceUnavailable", "InternalFailure"), err
            msg = err["Message"]
            assert "request id" in msg, msg
            for leak in ("INSERT", "sql", "SQL", "sqlite", tiny_data_dir, "trainyard.db"):
                assert leak not in msg, msg
        finally:
            os.unlink(filler)
        open(os.path.join(signals, "free"), "w").close()
        for name in jobs:
            assert wait_status(sm, name, timeout=120)["TrainingJobStatus"] == "Completed"

        # 8 lines fit in the buffer: all of them arrived, and nothing is said to be lost.
        fits = logs_of(srv, "fits")
        assert [l for l in fits.splitlines() if "line " in l and " of 8" in l].__len__() == 8, fits
        assert "were lost" not in fits, fits
        # 40 lines did not: the lines that arrived plus those counted as lost make 40, the last
        # line arrived, and the count is in the log and in the final status message.
        over = logs_of(srv, "overflows")
        got = [l for l in over.splitlines() if " of 40" in l]
        note = [l for l in over.splitlines() if "log lines were lost" in l]
        assert len(note) == 1, over
        lost = int(note[0].split("trainyard: ", 1)[1].split(" ")[0])
        assert lost + len(got) == 40, (lost, got)
        assert lost >= 20, note
        assert "line 40 of 40" in over
        assert "buffer of 10 lines overflowed" in note[0], note
        d = sm.describe_training_job(TrainingJobName="overflows")
        last = d["SecondaryStatusTransitions"][-1]
        assert d["SecondaryStatus"] == "Completed"
        assert f"trainyard: {lost} log lines were lost" in last["StatusMessage"], last
        print(f"\nfull disk: {len(got)} of 40 lines arrived; log: {note[0]!r}; "
              f"status message: {last['StatusMessage']!r}; API error while full: {msg!r}")
    finally:
        srv.stop()
