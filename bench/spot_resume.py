#!/usr/bin/env python3
"""Managed spot resume latency: from the moment spot capacity comes back to the moment the
restarted attempt's training process runs with its checkpoint directory restored, against a
plain `cp -r` of the same checkpoint directory on the same file system, in the same run.

Per sample: a spot job whose checkpoint URI (file://) is pre-populated starts; its entrypoint is
a /bin/sh script that counts the restored files (builtins only), prints `date +%s.%N` and
sleeps. Once attempt 1 printed, `trainyard spot unavailable ml.m5.large OUTAGE` takes the
capacity away (OUTAGE = --outage + a random 0..--outage-jitter s, so the outage ends at a random
phase of the controller's 200 ms tick; with a fixed OUTAGE the phase is nearly constant), its
UnavailableUntil is read back from `trainyard spot status --json`, and `trainyard spot interrupt
JOB` interrupts the job; it must be waiting for capacity before the outage ends
(else the sample is dropped). Resume latency = attempt 2's printed time - UnavailableUntil.

Breakdown (from DescribeTrainingJob SecondaryStatusTransitions, server receipt times, ms):
  placed:  UnavailableUntil -> Starting "Restarting the training job (attempt 2)" (the controller
           noticed the capacity and placed the job);
  launch:  -> Downloading (previous attempt's tree removed, agent spawned, its first report);
  restore: -> Training (staging: checkpoint restore, config files; checkpoint sync started);
  exec:    -> the printed time (Training report, bwrap/sh start, the file check, date).

Baseline: `cp -r CKPT FRESH_DIR` (subprocess, timed around the call), alternated with the
samples; both warm (the checkpoint files stay in the page cache; nothing is dropped).
Goal: resume median <= 1.2 x cp median + 100 ms.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, med, pct, trainyard_bin  # noqa: E402

TYPE = "ml.m5.large"
CONFIG = """images:
  - match: "bench/shell:*"
    command: ["/bin/sh", "-c", "true"]
capacity: {"*": 8}
spot: {seed: 1, notice_seconds: 5, price_fraction: 0.3}
"""

# Builtins only between start and `date`: the check costs no fork. LocalPath differs with and
# without the sandbox, so it is read from checkpointconfig.json (one line). The API allows 256
# characters per ContainerEntrypoint element, no newlines. A missing file fails the job (exit 3).
JOB_SCRIPT = ('read -r c <"$SM_INPUT_CONFIG_DIR/checkpointconfig.json";p=${c#*LocalPath\\":\\"};'
              'p=${p%%\\"*};n=0;for f in "$p"/*;do [ -s "$f" ]&&n=$((n+1));done;'
              '[ $n = EXPECTED ]||exit 3;echo "RESTORED $n $(date +%s.%N)";exec sleep 3600')


def parse_size(text):
    """'10x1M' -> (10, 1 MiB): count x size, K/M/G suffixes (binary)."""
    count, size = text.lower().split("x")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(size[-1], 1)
    return int(count), int(size.rstrip("kmg")) * mult


def human(nbytes):
    for unit, m in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= m:
            return f"{nbytes / m:g} {unit}"
    return f"{nbytes} B"


def populate(dirpath, count, size):
    os.makedirs(dirpath)
    block = os.urandom(1 << 20)
    for i in range(count):
        with open(os.path.join(dirpath, f"part-{i:03d}.ckpt"), "wb") as f:
            left = size
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n


def time_cp(src, dst):
    """(ms of `cp -r src dst`, ms of removing that copy again)."""
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", src, dst], check=True)
    t1 = time.perf_counter()
    shutil.rmtree(dst)
    return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


class Bench:
    def __init__(self, srv, base, outage, jitter, verbose):
        self.srv = srv
        self.base = base
        self.outage = outage
        self.jitter = jitter
        self.rng = random.Random(1)
        self.verbose = verbose
        self.c = Client(srv.url, srv.creds)
        self.env = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            self.env.pop(k, None)
        self.env.update({"AWS_ENDPOINT_URL": srv.url,
                         "AWS_SHARED_CREDENTIALS_FILE": os.path.join(srv.data_dir, "credentials"),
                         "AWS_PROFILE": "trainyard", "AWS_DEFAULT_REGION": "us-east-1",
                         "AWS_CONFIG_FILE": "/dev/null"})
        self.out_dir = os.path.join(base, "out")
        os.makedirs(self.out_dir, exist_ok=True)

    def cli(self, *args):
        r = subprocess.run([trainyard_bin(), *args], env=self.env, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"trainyard {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def describe(self, name):
        st, d = self.c.call("DescribeTrainingJob", {"TrainingJobName": name})
        assert st == 200, d
        return d

    def restored_lines(self, name):
        st, lb = self.c.call("GetTrainingJobLogs", {"TrainingJobName": name, "AfterSeq": 0},
                             target_prefix="Trainyard")
        assert st == 200, lb
        lines = [e["Message"] for e in lb.get("Events", [])]
        return [m for m in lines if m.startswith("RESTORED ")], lb.get("TrainingJobStatus")

    def wait_lines(self, name, count, timeout, interval):
        deadline = time.time() + timeout
        while time.time() < deadline:
            lines, status = self.restored_lines(name)
            if len(lines) >= count:
                return lines
            if status in ("Completed", "Failed", "Stopped"):
                d = self.describe(name)
                raise RuntimeError(f"{name} ended {status}: {d.get('FailureReason')}")
            time.sleep(interval)
        raise RuntimeError(f"{name}: {count} RESTORED line(s) not seen within {timeout} s")

    def sample(self, name, ckpt_dir, nfiles):
        req = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": "bench/shell:1", "TrainingInputMode": "File",
                "ContainerEntrypoint": ["/bin/sh", "-c",
                                        JOB_SCRIPT.replace("EXPECTED", str(nfiles))]},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "file://" + self.out_dir},
            "ResourceConfig": {"InstanceType": TYPE, "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {"S3Uri": "file://" + ckpt_dir + "/"},
        }
        st, body = self.c.call("CreateTrainingJob", req)
        assert st == 200, body
        try:
            self.wait_lines(name, 1, 120, 0.05)
            outage = self.outage + self.rng.uniform(0, self.jitter)
            self.cli("spot", "unavailable", TYPE, f"{outage:.3f}")
            market = json.loads(self.cli("spot", "status", "--json"))
            until = next(t["UnavailableUntil"] for t in market["InstanceTypes"]
                         if t["InstanceType"] == TYPE)
            self.cli("spot", "interrupt", name)
            waiting_at = None
            while time.time() < until + 30:
                tr = self.describe(name)["SecondaryStatusTransitions"][-1]
                if tr["StatusMessage"].startswith("Waiting for spot capacity"):
                    waiting_at = time.time()
                    break
                if tr["Status"] != "Interrupted":
                    break  # restarted already: capacity came back before the attempt ended
                time.sleep(0.02)
            # Leave the machine alone until the outage ends, then look every 50 ms (the
            # figure is the job's own timestamp, not when we see it).
            time.sleep(max(0.0, until - time.time()))
            lines = self.wait_lines(name, 2, 120, 0.05)
            printed = float(lines[1].rsplit(" ", 1)[1])
            d = self.describe(name)
        finally:
            self.c.call("StopTrainingJob", {"TrainingJobName": name})
        while self.describe(name)["TrainingJobStatus"] not in ("Stopped", "Completed", "Failed"):
            time.sleep(0.05)
        account = d["TrainingJobArn"].split(":")[4]
        shutil.rmtree(os.path.join(self.srv.data_dir, "jobs", account, name), ignore_errors=True)
        if waiting_at is None or waiting_at >= until:
            print(f"  {name}: dropped: the interrupted attempt was not waiting for capacity "
                  f"before the outage ended (raise --outage)", file=sys.stderr)
            return None
        trs = d["SecondaryStatusTransitions"]

        def last(status, prefix=""):
            xs = [t["StartTime"] for t in trs
                  if t["Status"] == status and t.get("StatusMessage", "").startswith(prefix)]
            return xs[-1] if xs else float("nan")

        placed = last("Starting", "Restarting the training job")
        down = last("Downloading")
        train = last("Training")
        r = {"total": (printed - until) * 1000, "placed": (placed - until) * 1000,
             "launch": (down - placed) * 1000, "restore": (train - down) * 1000,
             "exec": (printed - train) * 1000, "slack": (until - waiting_at) * 1000}
        if self.verbose:
            print("  " + name + " " + " ".join(f"{k}={v:.1f}" for k, v in r.items()))
        return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10x1M,4x256M",
                    help="checkpoints to measure, COUNTxSIZE each (default 10x1M,4x256M)")
    ap.add_argument("-n", type=int, default=7, help="samples per size (+1 warm-up)")
    ap.add_argument("--outage", type=float, default=1.0,
                    help="seconds of spot unavailability per sample (must outlast the "
                         "interruption)")
    ap.add_argument("--outage-jitter", type=float, default=0.2,
                    help="plus a uniform random 0..J s, so the outage's end falls at a random "
                         "phase of the controller's 200 ms tick (the loop's ticks run in phase "
                         "with its last activity, the interrupted attempt's exit)")
    ap.add_argument("--isolation", default="auto", help="server --isolation (auto|bwrap|none)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    a = ap.parse_args()

    base = tempfile.mkdtemp(prefix="ty-bench-spot-")
    os.makedirs(os.path.join(base, "data"))
    srv = Server(CONFIG, ["--isolation", a.isolation], data_dir=os.path.join(base, "data")).start()
    rows, summary = [], []
    try:
        b = Bench(srv, base, a.outage, a.outage_jitter, a.verbose)
        assert os.stat(base).st_dev == os.stat(srv.data_dir).st_dev
        print(f"spot_resume: n={a.n} per size (+1 warm-up), outage {a.outage} s + "
              f"U(0,{a.outage_jitter}) s, isolation {a.isolation}; checkpoints, cp copies and job "
              f"trees all under {base} (one file system)")
        for spec in a.sizes.split(","):
            count, size = parse_size(spec)
            label = f"{human(count * size)} ({count} x {human(size)})"
            ckpt = os.path.join(base, f"ckpt-{spec}")
            populate(ckpt, count, size)
            cps, rms, res = [], [], []
            for i in range(a.n + 1):
                cp_ms, rm_ms = time_cp(ckpt, os.path.join(base, f"cp-{spec}-{i}"))
                r = b.sample(f"resume-{spec.lower()}-{i}-{int(time.time() * 1000) % 100000}",
                             ckpt, count)
                if i == 0:
                    continue  # warm-up: page cache, bwrap probe, first agent
                cps.append(cp_ms)
                rms.append(rm_ms)
                if r is not None:
                    res.append(r)
            shutil.rmtree(ckpt)
            rows.append((label, cps, rms, res))
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(f"{'checkpoint':28s} {'cp -r med':>10s} {'resume med':>11s} {'p90':>8s} {'min':>8s} "
          f"{'ratio':>6s} {'goal 1.2x+100ms':>16s}")
    for label, cps, rms, res in rows:
        tot = [r["total"] for r in res]
        cp_m, rs_m = med(cps), med(tot)
        ok = rs_m <= 1.2 * cp_m + 100
        print(f"{label:28s} {cp_m:8.1f}ms {rs_m:9.1f}ms {pct(tot, 90):6.1f}ms "
              f"{min(tot, default=float('nan')):6.1f}ms {rs_m / cp_m:5.1f}x "
              f"{('MET' if ok else 'NOT MET') + f' (<= {1.2 * cp_m + 100:.0f} ms)':>16s}")
        summary.append(f"{label}: resume median {rs_m:.1f} ms (p90 {pct(tot, 90):.1f}, "
                       f"n={len(tot)}) "
                       f"vs cp -r {cp_m:.1f} ms -> x{rs_m / cp_m:.1f}; goal <= 1.2x+100ms "
                       f"({1.2 * cp_m + 100:.0f} ms): {'MET' if ok else 'NOT MET'}")
    print("\nbreakdown, medians in ms (placed: outage end -> controller placed attempt 2; launch: "
          "-> agent's Downloading report;\n restore: -> Training report (restore + sync start); "
          "exec: -> printed time; slack: job was waiting this long before the outage ended;\n"
          " rm -rf copy: removing one cp -r copy, as the controller removes the previous attempt's "
          "tree before launching)")
    print(f"{'checkpoint':28s} {'placed':>8s} {'launch':>8s} {'restore':>8s} {'exec':>8s} "
          f"{'total':>8s} {'slack':>8s} {'rm -rf copy':>12s}")
    for label, cps, rms, res in rows:
        vals = [med([r[k] for r in res]) for k in ("placed", "launch", "restore", "exec", "total",
                                                   "slack")]
        print(f"{label:28s} " + " ".join(f"{v:8.1f}" for v in vals) + f" {med(rms):12.1f}")
        summary[[r[0] for r in rows].index(label)] += (
            f"; breakdown placed {vals[0]:.0f} / launch {vals[1]:.0f} / restore {vals[2]:.0f} / "
            f"exec {vals[3]:.0f} ms (rm -rf of a copy {med(rms):.0f} ms)")
    for s in summary:
        print("RESULT spot_resume " + s)


if __name__ == "__main__":
    main()
