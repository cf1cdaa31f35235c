#!/usr/bin/env python3
"""(c) Server memory with 10,000 finished jobs stored, against an idle fresh server (baseline)
started in the same run. Jobs are created through the real API path with an image the catalog
does not know, so each fails at launch (ClientError) without starting an agent."""
import argparse
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, job_request, rss_kb  # noqa: E402


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def db_file(data_dir):
    p = os.path.join(data_dir, "trainyard.db")
    return os.path.getsize(p) if os.path.exists(p) else 0


def db_bytes(data_dir):
    """trainyard.db + -wal + -shm."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(data_dir, "trainyard.db" + suffix)
        if os.path.exists(p):
            total += os.path.getsize(p)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--calls", type=int, default=1000)
    a = ap.parse_args()
    out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")

    base = Server().start()
    srv = Server().start()
    try:
        time.sleep(0.5)
        bc = Client(base.url, base.creds)
        for _ in range(10):
            bc.call("ListTrainingJobs", {})
        rows = [("baseline: idle fresh server", base.rss_kb(), None),
                ("bench server, fresh", srv.rss_kb(), db_bytes(srv.data_dir))]

        counter = iter(range(a.n))
        lock = threading.Lock()
        errors = []

        def worker():
            c = Client(srv.url, srv.creds)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                st, body = c.call("CreateTrainingJob",
                                  job_request(f"mem-{i:05d}", "bench/unknown:1", out_dir))
                if st != 200:
                    errors.append(body)

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker) for _ in range(a.threads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        secs = time.perf_counter() - t0
        rate = a.n / secs
        c = Client(srv.url, srv.creds)
        st, d = c.call("DescribeTrainingJob", {"TrainingJobName": f"mem-{a.n - 1:05d}"})
        assert d.get("TrainingJobStatus") == "Failed", d
        reason = d.get("FailureReason", "")
        time.sleep(1.0)  # let the controller sweep
        rows.append((f"after {a.n} jobs created", srv.rss_kb(), db_bytes(srv.data_dir)))

        t1 = time.perf_counter()
        for j in range(a.calls):
            if j % 2 == 0:
                c.call("DescribeTrainingJob", {"TrainingJobName": f"mem-{random.randrange(a.n):05d}"})
            else:
                c.call("ListTrainingJobs", {"MaxResults": 100, "SortBy": "CreationTime"})
        call_secs = time.perf_counter() - t1
        rows.append((f"after {a.calls} Describe/List calls", srv.rss_kb(), db_bytes(srv.data_dir)))
        peak = status_kb(srv.proc.pid, "VmHWM")
        main_db = db_file(srv.data_dir)

        # Restart on the same data dir: what does a server holding 10k stored jobs start with?
        srv.stop()
        srv2 = Server(data_dir=srv.data_dir).start()
        time.sleep(0.5)
        Client(srv2.url, srv2.creds).call("ListTrainingJobs", {})
        rows.append((f"restarted on the {a.n}-job data dir", srv2.rss_kb(), db_bytes(srv.data_dir)))
        srv2.stop()
        base_rss = rows[0][1]

        print(f"memory: {a.n} finished jobs, {a.threads} client threads, failure reason: {reason[:70]!r}")
        print(f"{'state':40s} {'VmRSS MiB':>10s} {'vs idle':>8s} {'DB+WAL MiB':>11s}")
        for label, rss, db in rows:
            print(f"{label:40s} {rss / 1024:10.1f} {rss / base_rss:7.2f}x "
                  f"{(db / 2**20) if db is not None else float('nan'):11.2f}")
        print(f"creation: {a.n} jobs in {secs:.1f} s = {rate:.0f} jobs/s ({len(errors)} errors); "
              f"{a.calls} Describe/List(100) calls in {call_secs:.1f} s; peak VmHWM {peak / 1024:.1f} MiB")
        grow = rows[3][1] - base_rss
        print(f"RESULT memory: idle {base_rss / 1024:.1f} MiB; with {a.n} jobs after calls "
              f"{rows[3][1] / 1024:.1f} MiB (+{grow / 1024:.1f} MiB, {grow * 1024 / a.n:.0f} B/job, "
              f"x{rows[3][1] / base_rss:.2f}); DB {rows[3][2] / 2**20:.1f} MiB "
              f"incl. WAL, trainyard.db alone {main_db / 2**20:.1f} MiB ({main_db / a.n:.0f} B/job); create {rate:.0f} jobs/s")
    finally:
        base.stop()
        base.cleanup()
        if srv.proc.poll() is None:
            srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
