#!/usr/bin/env python3
"""Job start on Slurm: CreateTrainingJob -> the job's first log line, against `sbatch --wrap` of
the same command -> its first output line, side by side in one run.

Every sample runs `/bin/echo hello` on one node of the `ondemand` partition of the test cluster
(scripts/slurm.sh: two nodes on this machine, whole nodes per job, scheduling every second).
  trainyard   a server with `launcher: slurm`; CreateTrainingJob (image `bench/echo`) sent ->
              (1) the "hello" event visible through Trainyard.GetTrainingJobLogs, polled every
              --poll s; (2) the event's Timestamp (the agent's clock when it read the line).
              Breakdown from SecondaryStatusTransitions (server receipt): Downloading = the
              agent's first report (sbatch, Slurm's scheduling, srun, the agent's start).
  sbatch      `sbatch -p ondemand -N 1 -o FILE --wrap '/bin/echo hello'` spawned -> the line in
              FILE, polled every 5 ms (the baseline);
  sbatch+srun the same with `srun /bin/echo hello` (Trainyard runs its agents as a job step).
The variants take turns each round, order rotated; round 0 is a warm-up. Jobs run one at a time
(each waits until the previous Slurm job is gone). Times are not asserted anywhere.

usage: slurm_start.py [-n ROUNDS] [--poll S] [--up] [-v]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, job_request, med, pct  # noqa: E402
from _slurm import Cluster, first_line, logs, slurm_server, wait_status  # noqa: E402

IMAGES = 'images:\n  - match: "bench/echo:*"\n    command: ["/bin/echo", "hello"]\n'


class Bench:
    def __init__(self, cluster, srv, work, poll, verbose):
        self.cluster, self.srv, self.work, self.poll, self.verbose = cluster, srv, work, poll, verbose
        self.c = Client(srv.url, srv.creds)
        self.poller = Client(srv.url, srv.creds)
        self.out_dir = os.path.join(work, "out")
        os.makedirs(self.out_dir)
        self.res = {k: [] for k in ("ty_poll", "ty_ts", "ty_resp", "ty_down", "ty_train",
                                    "sbatch", "sbatch_srun", "sbatch_resp")}
        self.failures = 0

    def trainyard(self, i, record):
        name = f"slurm-start-{i}-{int(time.time() * 1000) % 100000}"
        data, headers = self.c.prepare("CreateTrainingJob",
                                       job_request(name, "bench/echo:1", self.out_dir))
        t0_wall = time.time()
        t0 = time.perf_counter()
        st, body = self.c.send(data, headers)
        t_resp = time.perf_counter()
        if st != 200:
            raise RuntimeError(f"CreateTrainingJob: {body}")
        seen = None
        deadline = t0 + 120
        while seen is None and time.perf_counter() < deadline:
            events, status = logs(self.poller, name)
            for e in events:
                if e["Message"].startswith("hello"):
                    seen = (time.perf_counter(), e["Timestamp"])
                    break
            if seen is None and status in ("Completed", "Failed", "Stopped"):
                break
            if seen is None and self.poll:
                time.sleep(self.poll)
        d = wait_status(self.c, name)
        if seen is None:
            self.failures += 1
            print(f"  {name}: no 'hello' ({d['TrainingJobStatus']}: {d.get('FailureReason')})",
                  file=sys.stderr)
            return
        self.wait_idle()
        if not record:
            return
        self.res["ty_poll"].append((seen[0] - t0) * 1000)
        self.res["ty_ts"].append(seen[1] - t0_wall * 1000)
        self.res["ty_resp"].append((t_resp - t0) * 1000)
        tr = {x["Status"]: x["StartTime"] for x in d.get("SecondaryStatusTransitions", [])}
        if "Downloading" in tr:
            self.res["ty_down"].append((tr["Downloading"] - t0_wall) * 1000)
        if "Training" in tr:
            self.res["ty_train"].append((tr["Training"] - t0_wall) * 1000)
        if self.verbose:
            print(f"  trainyard {i}: polled {self.res['ty_poll'][-1]:.0f} ms, "
                  f"agent ts {self.res['ty_ts'][-1]:.0f} ms", file=sys.stderr)

    def sbatch(self, i, record, srun):
        out = os.path.join(self.work, f"sbatch-{i}-{int(srun)}.out")
        cmd = "srun /bin/echo hello" if srun else "/bin/echo hello"
        t0 = time.perf_counter()
        t0_wall = time.time()
        job = self.cluster.sbatch("-p", "ondemand", "-N", "1", "-J", "ty-bench-start", "-o", out,
                                  "--wrap", cmd)
        t_resp = time.perf_counter()
        seen, line = first_line(out, 120)
        self.cluster.wait_gone([job])
        if seen is None or line != "hello":
            self.failures += 1
            print(f"  sbatch job {job}: first line {line!r}", file=sys.stderr)
            return
        if record:
            self.res["sbatch_srun" if srun else "sbatch"].append((seen - t0_wall) * 1000)
            self.res["sbatch_resp"].append((t_resp - t0) * 1000)
            if self.verbose:
                print(f"  sbatch{'+srun' if srun else ''} {i}: {(seen - t0_wall) * 1000:.0f} ms",
                      file=sys.stderr)

    def wait_idle(self):
        """The Trainyard job's Slurm job is gone too (the next sample gets a free node)."""
        deadline = time.time() + 60
        while time.time() < deadline:
            ours = self.cluster.job_ids()
            if not ours:
                return
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10, help="rounds (each: one job of every variant)")
    ap.add_argument("--poll", type=float, default=0.02, help="seconds between log polls")
    ap.add_argument("--up", action="store_true", help="start the test cluster (and stop it after)")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()

    cluster = Cluster(up=a.up)
    work = tempfile.mkdtemp(prefix="ty-bench-slurm-start-")
    srv = slurm_server(cluster, IMAGES).start()
    try:
        b = Bench(cluster, srv, work, a.poll, a.v)
        variants = [lambda i, r: b.trainyard(i, r), lambda i, r: b.sbatch(i, r, False),
                    lambda i, r: b.sbatch(i, r, True)]
        for i in range(a.n + 1):
            for k in range(len(variants)):
                variants[(i + k) % len(variants)](i, i > 0)
    finally:
        srv.stop()
        srv.cleanup()
        left = cluster.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    r = b.res
    print(f"slurm_start: N={a.n} rounds (+1 warm-up), log poll every {a.poll}s, "
          f"failures {b.failures}, Slurm jobs left over {len(left)}")
    print(f"{'what (ms from the request)':44s} {'median':>8s} {'p90':>8s} {'min':>8s}")
    rows = [("sbatch --wrap: sbatch returned", r["sbatch_resp"]),
            ("sbatch --wrap: first line in the file", r["sbatch"]),
            ("sbatch --wrap 'srun ...': first line", r["sbatch_srun"]),
            ("trainyard: Create response", r["ty_resp"]),
            ("trainyard: -> Downloading (agent's 1st report)", r["ty_down"]),
            ("trainyard: -> Training (staged)", r["ty_train"]),
            ("trainyard: first line, agent Timestamp", r["ty_ts"]),
            ("trainyard: first line visible (log API)", r["ty_poll"])]
    for label, v in rows:
        print(f"{label:44s} {med(v):8.0f} {pct(v, 90):8.0f} {min(v, default=float('nan')):8.0f}")
    base = med(r["sbatch"])
    print(f"RESULT slurm_start: CreateTrainingJob -> first log line median {med(r['ty_poll']):.0f} ms "
          f"(p90 {pct(r['ty_poll'], 90):.0f}; agent ts {med(r['ty_ts']):.0f}) vs sbatch --wrap -> "
          f"first output line {base:.0f} ms (p90 {pct(r['sbatch'], 90):.0f}; with srun "
          f"{med(r['sbatch_srun']):.0f}): x{med(r['ty_poll']) / base:.2f} (visible), "
          f"x{med(r['ty_ts']) / base:.2f} (agent ts)")


if __name__ == "__main__":
    main()
