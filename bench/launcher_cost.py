#!/usr/bin/env python3
"""The controller's cost per running attempt, LocalLauncher against SlurmLauncher, side by side in
one run: with N (default 100) running attempts of a trivial job (`sleep`), over a window:
  polls/s      how often the launcher looks at its attempts: local, the /proc/<pid>/stat reads of
               the server (strace of every server thread, counting openat of /proc/<n>/stat:
               ProcessAlive); Slurm, the squeue and scontrol processes the server ran;
  spawned/s    processes the server started (BSD process accounting, acct(2): every process
               that exits on the machine is recorded with its parent; those whose parent is the
               server, by command name: squeue, scontrol, sbatch, scancel, ...);
  CPU          the server's CPU time per second (utime + stime of all its threads), the CPU of
               the processes it ran and reaped (cutime + cstime), and for Slurm the CPU that
               slurmctld spent meanwhile (the load we put on the engine);
each against the same server with no job (idle), so per attempt = (busy - idle) / N.

The strace window is separate from the CPU window: strace stops every system call of the
threads it traces, which inflates CPU; it only counts. Nothing here is asserted.

Local: `--isolation none`, `instance_limits: false`, capacity N (no namespaces or cgroups: the
launcher's own cost, not the sandbox's). Slurm: every attempt is a real Slurm job (a batch step
and an srun step, two slurmstepd; an agent and its `sleep`) of one CPU. The test cluster's
partitions give whole nodes to each job, so the run adds a partition `tycost` over both nodes
that does not (removed after the run) and points the server's on-demand partition at it. N jobs
of one CPU need nodes that declare N/2 CPUs: start the cluster with `TY_SLURM_CPUS=64
scripts/slurm.sh up` (SlurmdParameters=config_overrides: the nodes declare 64 CPUs on this
2-core machine; the jobs sleep). OverSubscribe=FORCE on a partition does not do it here: Slurm
22.05's cons_tres kept every job in the partition's first row (4 jobs on two 2-CPU nodes).

usage: launcher_cost.py [-n N] [--window S] [--trace S] [--launchers local,slurm] [--up] [-v]
"""
import argparse
import collections
import ctypes
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, job_request  # noqa: E402
from _slurm import Cluster, proc_cpu_s, slurm_server, wait_status  # noqa: E402

IMAGES = 'images:\n  - match: "bench/sleep:*"\n    command: ["/bin/sh", "-c", "exec sleep 3600"]\n'
PARTITION = "tycost"


class Accounting:
    """BSD process accounting (acct(2)) into a file of ours while it is on."""

    def __init__(self, path):
        self.path = path
        self.libc = ctypes.CDLL(None, use_errno=True)
        open(path, "wb").close()
        if self.libc.acct(path.encode()) != 0:
            raise OSError(ctypes.get_errno(), "acct(2) (process accounting) is not available")

    def offset(self):
        return os.path.getsize(self.path)

    def children(self, ppid, start, end):
        """Command names of the processes with parent `ppid` recorded between two offsets."""
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        names = collections.Counter()
        for off in range(0, len(data) - 63, 64):  # struct acct_v3, 64 bytes
            rec = data[off:off + 64]
            if rec[1] != 3:
                continue
            if struct.unpack_from("<I", rec, 20)[0] == ppid:  # ac_ppid
                names[rec[48:64].split(b"\0")[0].decode(errors="replace")] += 1
        return names

    def close(self):
        self.libc.acct(None)
        os.unlink(self.path)


def threads(pid):
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def trace_counts(pid, seconds):
    """System calls of the server's threads in `seconds`, per second: liveness checks
    (`proc_stat`: opens of /proc/<n>/stat; `reap`: wait4/waitid with WNOHANG, how LocalLauncher
    asks about its own children), process spawns (clone without CLONE_THREAD, vfork, fork)."""
    out = tempfile.mktemp(prefix="ty-bench-strace-")
    argv = ["strace", "-qq", "-e", "trace=openat,wait4,waitid,clone,clone3,vfork,fork",
            "-e", "signal=none", "-o", out]
    for t in threads(pid):
        argv += ["-p", str(t)]
    p = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    p.terminate()
    p.wait()
    counts = collections.Counter()
    with open(out) as f:
        for line in f:
            call = re.match(r"\d+\s+(\w+)\(", line)
            if not call:
                continue
            name = call.group(1)
            if name == "openat" and re.search(r'"/proc/\d+/stat"', line):
                counts["proc_stat"] += 1
            elif name in ("wait4", "waitid") and "WNOHANG" in line:
                counts["reap"] += 1
            elif name in ("clone", "clone3", "vfork", "fork") and "CLONE_THREAD" not in line:
                counts["spawn"] += 1
    if os.environ.get("TY_BENCH_KEEP_STRACE"):
        print(f"  strace output kept: {out}", file=sys.stderr)
    else:
        os.unlink(out)
    return {k: v / seconds for k, v in counts.items()}


def window(srv, acct, seconds, cluster=None):
    """Rates over `seconds` of the server (and slurmctld)."""
    pid = srv.proc.pid
    a0, c0, k0 = acct.offset(), proc_cpu_s(pid), proc_cpu_s(pid, children=True)
    s0 = cluster.daemon_cpu_s() if cluster else 0.0
    t0 = time.time()
    time.sleep(seconds)
    dt = time.time() - t0
    a1, c1, k1 = acct.offset(), proc_cpu_s(pid), proc_cpu_s(pid, children=True)
    s1 = cluster.daemon_cpu_s() if cluster else 0.0
    spawned = acct.children(pid, a0, a1)
    return {"cpu": (c1 - c0) / dt, "child_cpu": (k1 - k0) / dt, "ctld_cpu": (s1 - s0) / dt,
            "spawned": sum(spawned.values()) / dt,
            "tools": {k: v / dt for k, v in spawned.items()},
            "polls": sum(v for k, v in spawned.items() if k in ("squeue", "scontrol")) / dt}


def local_polls(w):
    return w["trace"].get("proc_stat", 0.0) + w["trace"].get("reap", 0.0)


def run_jobs(srv, n, verbose):
    c = Client(srv.url, srv.creds)
    out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")
    names = [f"cost-{i}" for i in range(n)]
    for name in names:
        req = job_request(name, "bench/sleep:1", out_dir)
        req["StoppingCondition"] = {"MaxRuntimeInSeconds": 3600}
        st, body = c.call("CreateTrainingJob", req)
        if st != 200:
            raise RuntimeError(f"CreateTrainingJob {name}: {body}")
    t0 = time.time()
    while True:
        training = 0
        for name in names:
            st, d = c.call("DescribeTrainingJob", {"TrainingJobName": name})
            if d.get("TrainingJobStatus") in ("Failed", "Stopped", "Completed"):
                raise RuntimeError(f"{name} ended {d['TrainingJobStatus']}: {d.get('FailureReason')}")
            training += d.get("SecondaryStatus") == "Training"
        if verbose:
            print(f"  {training}/{n} training after {time.time() - t0:.0f} s", file=sys.stderr)
        if training == n:
            return c, names, out_dir, time.time() - t0
        if time.time() - t0 > 900:
            raise RuntimeError(f"only {training} of {n} jobs training after 900 s")
        time.sleep(2)


def measure(name, srv, acct, n, seconds, trace, cluster, verbose):
    srv.start()
    c = names = out_dir = None
    try:
        time.sleep(2)
        idle = window(srv, acct, seconds, cluster)
        idle["trace"] = trace_counts(srv.proc.pid, trace)
        c, names, out_dir, ramp = run_jobs(srv, n, verbose)
        time.sleep(3)
        busy = window(srv, acct, seconds, cluster)
        busy["trace"] = trace_counts(srv.proc.pid, trace)
        busy["ramp"] = ramp
        return idle, busy
    finally:
        if names:
            for name in names:
                c.call("StopTrainingJob", {"TrainingJobName": name})
            for name in names:
                wait_status(c, name, timeout=300)
        srv.stop()
        srv.cleanup()
        if out_dir:
            shutil.rmtree(out_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100, help="running attempts")
    ap.add_argument("--window", type=float, default=20, help="seconds per CPU/spawn window")
    ap.add_argument("--trace", type=float, default=5, help="seconds per strace window")
    ap.add_argument("--launchers", default="local,slurm")
    ap.add_argument("--up", action="store_true", help="start the test cluster (and stop it after)")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ty-bench-cost-")
    acct = Accounting(os.path.join(work, "pacct"))
    results, left = {}, []
    try:
        for launcher in a.launchers.split(","):
            if launcher == "local":
                srv = Server(IMAGES + f'capacity: {{"*": {a.n}}}\ninstance_limits: false\n'
                             f'http: {{max_connections_per_client: {a.n + 1024}}}\n',
                             ["--isolation", "none"])
                results["local"] = measure("local", srv, acct, a.n, a.window, a.trace, None, a.v)
            elif launcher == "slurm":
                cluster = Cluster(up=a.up)
                try:
                    cpus = sum(int(x) for x in cluster.run(
                        "sinfo", "-h", "-N", "-p", "ondemand", "-o", "%c").split())
                    if cpus < a.n:
                        raise SystemExit(f"the cluster's nodes have {cpus} CPUs in all, fewer "
                                         f"than {a.n} one-CPU jobs: restart it with "
                                         f"TY_SLURM_CPUS={a.n} scripts/slurm.sh up")
                    cluster.add_partition(PARTITION, "OverSubscribe=NO", "PriorityTier=10",
                                          "PreemptMode=OFF")
                    srv = slurm_server(cluster, IMAGES + 'instance_limits: false\n'
                                       f'http: {{max_connections_per_client: {a.n + 1024}}}\n',
                                       on_demand=PARTITION)
                    results["slurm"] = measure("slurm", srv, acct, a.n, a.window, a.trace, cluster,
                                               a.v)
                finally:
                    left = cluster.cleanup()
    finally:
        acct.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"launcher_cost: N={a.n} running attempts, {a.window:g} s windows ({a.trace:g} s under "
          f"strace); Slurm jobs left over {len(left)}")
    print(f"{'launcher':9s} {'state':5s} {'cpu ms/s':>9s} {'child ms/s':>10s} {'ctld ms/s':>9s} "
          f"{'spawn/s':>8s} {'polls/s':>8s} {'/proc/s':>8s} {'reap/s':>7s}  tools/s")
    per = {}
    for name, (idle, busy) in results.items():
        for state, w in (("idle", idle), ("busy", busy)):
            polls = w["polls"] if name == "slurm" else local_polls(w)
            tools = " ".join(f"{k} {v:.1f}" for k, v in sorted(w["tools"].items()))
            print(f"{name:9s} {state:5s} {w['cpu'] * 1000:9.1f} {w['child_cpu'] * 1000:10.1f} "
                  f"{w['ctld_cpu'] * 1000:9.1f} {w['spawned']:8.2f} {polls:8.2f} "
                  f"{w['trace'].get('proc_stat', 0.0):8.1f} {w['trace'].get('reap', 0.0):7.1f}  {tools}")
        polls = busy["polls"] if name == "slurm" else local_polls(busy)
        per[name] = {
            "cpu_us": (busy["cpu"] - idle["cpu"]) / a.n * 1e6,
            "all_cpu_us": (busy["cpu"] + busy["child_cpu"] + busy["ctld_cpu"] - idle["cpu"]
                           - idle["child_cpu"] - idle["ctld_cpu"]) / a.n * 1e6,
            "polls": polls, "spawned": busy["spawned"], "ramp": busy["ramp"]}
        print(f"{name:9s} ramp: {a.n} attempts training after {busy['ramp']:.0f} s")
    for name, p in per.items():
        print(f"RESULT launcher_cost {name}: per running attempt {p['cpu_us']:.0f} us/s server CPU "
              f"({p['all_cpu_us']:.0f} us/s with its tools and slurmctld); {p['polls']:.1f} "
              f"polls/s and {p['spawned']:.2f} processes/s in all for {a.n} attempts")
    if "local" in per and "slurm" in per:
        lo, sl = per["local"], per["slurm"]
        ratio = sl["all_cpu_us"] / lo["all_cpu_us"] if lo["all_cpu_us"] > 0 else float("nan")
        print(f"RESULT launcher_cost slurm vs local: CPU per attempt x{ratio:.1f} (all), "
              f"processes {sl['spawned']:.2f}/s vs {lo['spawned']:.2f}/s")


if __name__ == "__main__":
    main()
