#!/usr/bin/env python3
"""(a) Job start overhead: CreateTrainingJob -> first log line of a job running `/bin/echo hello`,
against running that command directly (subprocess, and bwrap with the agent's flags), all
measured in the same run.

Two observations of the first line:
  poll: tight loop on Trainyard.GetTrainingJobLogs until the "hello" event is visible
        (includes agent log batching, report delivery, store, polling delay);
  ts:   the event's Timestamp (ms, set by the agent when it read the line) minus send time.
Also: a breakdown from DescribeTrainingJob SecondaryStatusTransitions (Downloading = the agent's
first report arrived, Training = staging done, command about to start).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, job_request, med, pct  # noqa: E402

CONFIG = ('images:\n  - match: "bench/echo:*"\n    command: ["/bin/echo", "hello"]\n'
          # prints its line, then keeps running: shows the agent's log batching delay
          '  - match: "bench/linger:*"\n    command: ["/bin/sh", "-c", "echo hello; sleep 0.5", "sh"]\n')


def bwrap_argv(instance_dir):
    # Same flags as src/agent/agent.cc (sandboxed branch of Agent::Impl::Run).
    return ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-uts", "--unshare-ipc",
            "--hostname", "algo-1", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--tmpfs", "/opt", "--bind", instance_dir, "/opt/ml",
            "--chdir", "/opt/ml", "--", "/bin/echo", "hello"]


def time_direct(argv, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.returncode == 0 and r.stdout.strip() == b"hello", r
    return out


def run_jobs(isolation, n, poll_sleep, image="bench/echo:1"):
    srv = Server(CONFIG, ["--isolation", isolation]).start()
    out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")
    try:
        c = Client(srv.url, srv.creds)
        poller = Client(srv.url, srv.creds)
        res = {"poll": [], "ts": [], "resp": [], "down": [], "train": [], "polls": [], "fail": 0}
        for i in range(n + 1):  # job 0 is a warm-up (page cache, bwrap probe), not counted
            name = f"start-{isolation}-{i}-{int(time.time()*1000)%100000}"
            data, headers = c.prepare("CreateTrainingJob", job_request(name, image, out_dir))
            pdata, pheaders = None, None
            t0_wall = time.time()
            t0 = time.perf_counter()
            status, body = c.send(data, headers)
            t_resp = time.perf_counter()
            assert status == 200, body
            seen, polls = None, 0
            deadline = t0 + 30
            while seen is None and time.perf_counter() < deadline:
                # Re-sign each poll like a real client would (X-Amz-Date); cheap relative to the call.
                pdata, pheaders = poller.prepare("GetTrainingJobLogs",
                                                 {"TrainingJobName": name, "AfterSeq": 0},
                                                 target_prefix="Trainyard")
                st, lb = poller.send(pdata, pheaders)
                polls += 1
                for e in lb.get("Events", []):
                    if e["Message"].startswith("hello"):
                        seen = (time.perf_counter(), e["Timestamp"])
                        break
                if lb.get("TrainingJobStatus") in ("Failed", "Stopped") and seen is None:
                    break
                if poll_sleep:
                    time.sleep(poll_sleep)
            # Wait for the job to end so agents never overlap.
            while True:
                st, d = c.call("DescribeTrainingJob", {"TrainingJobName": name})
                if d.get("TrainingJobStatus") in ("Completed", "Failed", "Stopped"):
                    break
                time.sleep(0.02)
            if seen is None:
                res["fail"] += 1
                print(f"  job {name} never showed 'hello': {d.get('FailureReason')}", file=sys.stderr)
                continue
            if i == 0:
                continue
            res["poll"].append((seen[0] - t0) * 1000)
            res["ts"].append(seen[1] - t0_wall * 1000)
            res["resp"].append((t_resp - t0) * 1000)
            res["polls"].append(polls)
            tr = {x["Status"]: x["StartTime"] for x in d.get("SecondaryStatusTransitions", [])}
            if "Downloading" in tr:
                res["down"].append(tr["Downloading"] * 1000 - t0_wall * 1000)
            if "Training" in tr:
                res["train"].append(tr["Training"] * 1000 - t0_wall * 1000)
        return res
    finally:
        srv.stop()
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--isolation", default="bwrap,none")
    ap.add_argument("--poll-sleep", type=float, default=0.0, help="seconds between log polls (0: tight)")
    ap.add_argument("--linger", type=int, default=10,
                    help="also run this many jobs that print then sleep 0.5 s (0: skip)")
    a = ap.parse_args()

    inst = tempfile.mkdtemp(prefix="ty-bench-inst-")
    base = {"echo": time_direct(["/bin/echo", "hello"], a.n)}
    bw_ok = subprocess.run(bwrap_argv(inst), capture_output=True).returncode == 0
    if bw_ok:
        base["bwrap echo"] = time_direct(bwrap_argv(inst), a.n)
    print(f"start_overhead: N={a.n} jobs per isolation mode (+1 warm-up), poll sleep {a.poll_sleep}s")
    print(f"{'what':40s} {'median ms':>10s} {'p90 ms':>8s} {'min ms':>8s}")
    for k, v in base.items():
        print(f"{'baseline: subprocess.run ' + k:40s} {med(v):10.1f} {pct(v, 90):8.1f} {min(v, default=float('nan')):8.1f}")
    summary = []
    for iso in a.isolation.split(","):
        if iso == "bwrap" and not bw_ok:
            print("bwrap does not work here: skipping --isolation bwrap")
            continue
        r = run_jobs(iso, a.n, a.poll_sleep)
        rows = [("Create response", r["resp"]), ("-> Downloading (agent 1st report)", r["down"]),
                ("-> Training (staged)", r["train"]), ("first line, agent Timestamp", r["ts"]),
                ("first line visible via polling", r["poll"])]
        for label, v in rows:
            print(f"{iso + ': ' + label:40s} {med(v):10.1f} {pct(v, 90):8.1f} {min(v, default=float('nan')):8.1f}")
        print(f"{iso + ': polls per job':40s} {med(r['polls']):10.0f}   failures: {r['fail']}")
        ref = base["bwrap echo"] if iso == "bwrap" and bw_ok else base["echo"]
        summary.append(f"isolation={iso}: first line median {med(r['ts']):.1f} ms (agent ts) / "
                       f"{med(r['poll']):.1f} ms (polled), p90 {pct(r['ts'], 90):.1f} / "
                       f"{pct(r['poll'], 90):.1f} ms; direct {med(ref):.1f} ms -> "
                       f"overhead x{med(r['ts']) / med(ref):.1f} (ts) x{med(r['poll']) / med(ref):.1f} (polled); "
                       f"goal <50 ms: {'MET' if med(r['poll']) < 50 else 'NOT MET'}")
    if a.linger:
        r = run_jobs("none", a.linger, a.poll_sleep, "bench/linger:1")
        for label, key in (("first line, agent Timestamp", "ts"), ("first line visible via polling", "poll")):
            print(f"{'none+linger: ' + label:40s} {med(r[key]):10.1f} {pct(r[key], 90):8.1f} {min(r[key]):8.1f}")
        summary.append(f"isolation=none, job keeps running after its line: first line median "
                       f"{med(r['ts']):.1f} ms (agent ts) / {med(r['poll']):.1f} ms (polled); "
                       f"gap {med(r['poll']) - med(r['ts']):.0f} ms = agent log batching")
    for s in summary:
        print("RESULT start_overhead " + s)


if __name__ == "__main__":
    main()
