#!/usr/bin/env python3
"""Preemption to resumed training on Slurm: a Trainyard spot job preempted by an on-demand Slurm
job, until its next attempt's first training log line, against Slurm's own requeue of a plain
batch job preempted by the same on-demand job, until its restarted output's first line. Side by
side in one run.

The test cluster (scripts/slurm.sh): nodes n1 and n2, whole nodes per job, partitions `ondemand`
(PriorityTier 10) and `spot` (PriorityTier 1, PreemptMode=CANCEL, GraceTime = the notice),
preempt/partition_prio. Per sample:
  trainyard  a spot training job (one instance, `spot` partition; checkpoints to a file:// URI)
             whose script prints `START <date +%s.%N>` and sleeps. Once attempt 1 printed,
             the on-demand job is submitted (t0). Slurm sends the spot job SIGTERM (the notice);
             the agents sync checkpoints and report Interrupted; Trainyard resubmits the job,
             which waits in Slurm's queue until the on-demand job is done, and attempt 2 prints.
  requeue    the baseline: `sbatch --requeue --open-mode=append` of the same script on a twin
             of `spot` that differs only in PreemptMode=REQUEUE (added for the run, removed
             after: the cluster's `spot` cancels, as Trainyard submits --no-requeue); Slurm
             kills it when GraceTime is over, requeues it and restarts it by itself
             (`START <SLURM_RESTART_COUNT> <time>`).
  on-demand  `sbatch -p ondemand -N 2 --wrap` that prints ODSTART/ODEND times around `sleep
             --hold`: it needs both nodes, so it must preempt the job on one of them.
Figures (all from the jobs' own printed times, one machine, one clock):
  total     t0 -> the resumed run's first line;
  preempt   t0 -> the on-demand job running (Slurm's preemption, the preempted job's exit);
  restart   the on-demand job's end -> the resumed run's first line (what each restart path
            costs once the nodes are free again).
The variants take turns, order rotated; no warm-up is discarded (every sample is a full cycle).
Times are not asserted anywhere.

usage: slurm_preemption.py [-n ROUNDS] [--hold S] [--up] [-v]
"""
import argparse
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, job_request, med, pct  # noqa: E402
from _slurm import Cluster, first_line, logs, slurm_server, wait_status  # noqa: E402

SCRIPT = 'echo "START $(date +%s.%N)"; exec sleep 3600'
IMAGES = ('images:\n  - match: "bench/stamp:*"\n'
          '    command: ["/bin/sh", "-c", "%s"]\n') % SCRIPT.replace('"', '\\"')
TWIN = "tyrequeue"
# The batch shell itself, not a job step: a step's tasks get the preemption's SIGTERM at once and
# end the job before Slurm requeues it (measured: never restarted); the batch shell is signalled
# only when GraceTime is over, so Slurm kills and requeues it then ("preempt" = GraceTime).
REQUEUE_SCRIPT = 'echo "START ${SLURM_RESTART_COUNT:-0} $(date +%s.%N)"; exec sleep 3600'


def lines_of(path):
    try:
        with open(path) as f:
            return [l.rstrip("\n") for l in f if l.endswith("\n")]
    except FileNotFoundError:
        return []


def wait_for(pred, timeout, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return None


class Bench:
    def __init__(self, cluster, srv, work, hold, verbose):
        self.cluster, self.srv, self.work, self.hold, self.verbose = cluster, srv, work, hold, verbose
        self.c = Client(srv.url, srv.creds)
        self.out_dir = os.path.join(work, "out")
        os.makedirs(self.out_dir)
        self.res = {k: {"total": [], "preempt": [], "restart": []} for k in ("trainyard", "requeue")}
        self.res["trainyard"]["interrupted"] = []
        self.res["trainyard"]["visible"] = []
        self.failures = 0

    def on_demand(self, tag):
        """Submits the preempting job; (t0, its output file, its id)."""
        out = os.path.join(self.work, f"od-{tag}.out")
        t0 = time.time()
        job = self.cluster.sbatch("-p", "ondemand", "-N", "2", "-J", "ty-bench-od", "-o", out,
                                  "--wrap", f'echo "ODSTART $(date +%s.%N)"; sleep {self.hold}; '
                                            f'echo "ODEND $(date +%s.%N)"')
        return t0, out, job

    def od_times(self, out):
        got = dict(l.split() for l in lines_of(out) if l.startswith("OD"))
        return float(got["ODSTART"]), float(got["ODEND"])

    def record(self, kind, t0, od_out, resumed):
        od_start, od_end = self.od_times(od_out)
        r = self.res[kind]
        r["total"].append((resumed - t0) * 1000)
        r["preempt"].append((od_start - t0) * 1000)
        r["restart"].append((resumed - od_end) * 1000)
        if self.verbose:
            print(f"  {kind}: total {r['total'][-1]:.0f} ms, preempt {r['preempt'][-1]:.0f}, "
                  f"restart {r['restart'][-1]:.0f}", file=sys.stderr)

    def trainyard(self, i):
        name = f"slurm-preempt-{i}-{int(time.time() * 1000) % 100000}"
        req = job_request(name, "bench/stamp:1", self.out_dir)
        req["EnableManagedSpotTraining"] = True
        req["StoppingCondition"] = {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1800}
        ckpt = os.path.join(self.work, f"ckpt-{i}")
        os.makedirs(ckpt)
        req["CheckpointConfig"] = {"S3Uri": "file://" + ckpt + "/"}
        st, body = self.c.call("CreateTrainingJob", req)
        if st != 200:
            raise RuntimeError(f"CreateTrainingJob: {body}")

        def starts():
            events, status = logs(self.c, name)
            if status in ("Completed", "Failed", "Stopped"):
                raise RuntimeError(f"{name} ended {status}: "
                                   f"{wait_status(self.c, name).get('FailureReason')}")
            return [e for e in events if e["Message"].startswith("START ")]

        od = None
        try:
            if not wait_for(lambda: len(starts()) >= 1, 180):
                raise RuntimeError(f"{name}: attempt 1 never printed")
            t0, od_out, od = self.on_demand(f"ty-{i}")
            got = wait_for(lambda: (s := starts()) and len(s) >= 2 and s, 300)
            if not got:
                raise RuntimeError(f"{name}: attempt 2 never printed")
            seen = time.time()
            resumed = float(got[1]["Message"].split()[1])
            self.cluster.wait_gone([od])
            self.record("trainyard", t0, od_out, resumed)
            self.res["trainyard"]["visible"].append((seen - t0) * 1000)
            st, d = self.c.call("DescribeTrainingJob", {"TrainingJobName": name})
            intr = [x["StartTime"] for x in d.get("SecondaryStatusTransitions", [])
                    if x["Status"] == "Interrupted"]
            if intr:
                self.res["trainyard"]["interrupted"].append((intr[0] - t0) * 1000)
        except RuntimeError as e:
            self.failures += 1
            print(f"  trainyard sample {i}: {e}", file=sys.stderr)
        finally:
            self.c.call("StopTrainingJob", {"TrainingJobName": name})
            wait_status(self.c, name, timeout=120)
            if od:
                self.cluster.cancel(od)
            self.wait_idle()

    def requeue(self, i):
        out = os.path.join(self.work, f"requeue-{i}.out")
        job = self.cluster.sbatch("-p", TWIN, "-N", "1", "--requeue", "--open-mode=append",
                                  "-J", "ty-bench-requeue", "-o", out, "--wrap", REQUEUE_SCRIPT)
        od = None
        try:
            if not wait_for(lambda: any(l.startswith("START 0 ") for l in lines_of(out)), 180):
                raise RuntimeError(f"requeue job {job}: never started")
            t0, od_out, od = self.on_demand(f"rq-{i}")
            line = wait_for(lambda: next((l for l in lines_of(out) if l.startswith("START 1 ")),
                                         None), 300)
            if not line:
                raise RuntimeError(f"requeue job {job}: not restarted ({self.cluster.state(job)})")
            self.cluster.wait_gone([od])
            self.record("requeue", t0, od_out, float(line.split()[2]))
        except RuntimeError as e:
            self.failures += 1
            print(f"  requeue sample {i}: {e}", file=sys.stderr)
        finally:
            self.cluster.cancel(*([job] + ([od] if od else [])))
            self.wait_idle()

    def wait_idle(self):
        wait_for(lambda: not self.cluster.job_ids(), 60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5, help="rounds (each: one sample of both)")
    ap.add_argument("--hold", type=float, default=2.0, help="seconds the on-demand job runs")
    ap.add_argument("--up", action="store_true", help="start the test cluster (and stop it after)")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()

    cluster = Cluster(up=a.up)
    spot = cluster.run("scontrol", "show", "partition", "spot", "-o")
    grace = re.search(r"GraceTime=(\S+)", spot).group(1)
    work = tempfile.mkdtemp(prefix="ty-bench-slurm-preempt-")
    srv = None
    try:
        cluster.add_partition(TWIN, "PriorityTier=1", "PreemptMode=REQUEUE", f"GraceTime={grace}",
                              "OverSubscribe=EXCLUSIVE")
        srv = slurm_server(cluster, IMAGES).start()
        b = Bench(cluster, srv, work, a.hold, a.v)
        for i in range(a.n):
            for kind in (("trainyard", "requeue") if i % 2 == 0 else ("requeue", "trainyard")):
                getattr(b, kind)(i)
    finally:
        if srv:
            srv.stop()
            srv.cleanup()
        left = cluster.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    ty, rq = b.res["trainyard"], b.res["requeue"]
    print(f"slurm_preemption: N={a.n} rounds, on-demand job holds the nodes {a.hold} s, spot "
          f"GraceTime {grace}; failures {b.failures}, Slurm jobs left over {len(left)}")
    print(f"{'what (ms)':52s} {'median':>8s} {'p90':>8s} {'min':>8s}")
    rows = [("requeue: total (on-demand submitted -> restarted)", rq["total"]),
            ("requeue: preempt (-> on-demand running)", rq["preempt"]),
            ("requeue: restart (on-demand ended -> restarted)", rq["restart"]),
            ("trainyard: -> Interrupted (server receipt)", ty["interrupted"]),
            ("trainyard: preempt (-> on-demand running)", ty["preempt"]),
            ("trainyard: restart (on-demand ended -> attempt 2)", ty["restart"]),
            ("trainyard: total (-> attempt 2's first line)", ty["total"]),
            ("trainyard: total, the line visible (log API)", ty["visible"])]
    for label, v in rows:
        print(f"{label:52s} {med(v):8.0f} {pct(v, 90):8.0f} {min(v, default=float('nan')):8.0f}")
    print(f"RESULT slurm_preemption: preemption -> resumed training median {med(ty['total']):.0f} ms "
          f"(p90 {pct(ty['total'], 90):.0f}) vs Slurm's requeue {med(rq['total']):.0f} ms "
          f"(p90 {pct(rq['total'], 90):.0f}): x{med(ty['total']) / med(rq['total']):.2f}; restart "
          f"once the nodes are free {med(ty['restart']):.0f} vs {med(rq['restart']):.0f} ms")


if __name__ == "__main__":
    main()
