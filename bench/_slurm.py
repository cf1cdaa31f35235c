"""Shared helpers for the Slurm benchmarks: the test cluster of scripts/slurm.sh, plain sbatch jobs
next to Trainyard's, and a Trainyard server with `launcher: slurm`.

The benchmarks use the cluster that `scripts/slurm.sh up` makes (two nodes, n1 and n2, on this
machine; partitions `ondemand` and `spot`). Only one such cluster can run on a machine: a bench
starts it only with --up (and then stops it again), and otherwise requires it running. Whatever a
bench adds to the cluster (a partition) it removes again; every Slurm job it or its server made is
cancelled at the end, and a job left over is reported.
"""
import os
import re
import socket
import subprocess
import time

from _common import ROOT, Server

SLURM_SH = os.path.join(ROOT, "scripts", "slurm.sh")
TERMINAL = ("Completed", "Failed", "Stopped")
OURS = ("ty-bench-", f"tybench{os.getpid()}-")  # the names of this run's Slurm jobs


def free_port():
    """A port free right now on 127.0.0.1: the server's URL must be in its config
    (slurm.server_url) before it starts, so it cannot bind port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """The test cluster; tools run with its SLURM_CONF."""

    def __init__(self, up=False):
        self.started = False
        if subprocess.run([SLURM_SH, "status"], capture_output=True).returncode != 0:
            if not up:
                raise SystemExit("no Slurm cluster is running: start it with `scripts/slurm.sh up` "
                                 "(or pass --up to start it for this run and stop it after)")
            subprocess.run([SLURM_SH, "up"], check=True)
            self.started = True
        out = subprocess.run([SLURM_SH, "env"], capture_output=True, text=True, check=True).stdout
        self.conf = re.search(r"SLURM_CONF=(\S+)", out).group(1)
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.partitions_added = []

    def run(self, *argv, check=True):
        r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def job_ids(self):
        """Jobs of this run that have not ended: ours are named ty-bench-... (sbatch) and
        tybench<pid>-... (the server's job_name_prefix), so a cluster shared with others'
        tests is left alone."""
        out = self.run("squeue", "-h", "-o", "%A %j")  # default: the jobs not yet ended
        ids = []
        for line in out.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0].isdigit() and parts[1].startswith(OURS):
                ids.append(int(parts[0]))
        return ids

    def state(self, job_id):
        """Slurm's state of a job ("" once Slurm has forgotten it)."""
        out = self.run("squeue", "-h", "-j", str(job_id), "-o", "%T", check=False)
        return out.strip()

    def sbatch(self, *args):
        return int(self.run("sbatch", "--parsable", *args).strip().split(";")[0])

    def cancel(self, *job_ids):
        if job_ids:
            self.run("scancel", *[str(j) for j in job_ids], check=False)

    def wait_gone(self, job_ids, timeout=60):
        """Waits until none of the jobs is pending, running or completing."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            live = [j for j in job_ids if self.state(j) in ("PENDING", "RUNNING", "COMPLETING",
                                                           "SUSPENDED", "REQUEUED", "CONFIGURING",
                                                           "RESIZING", "SIGNALING", "STAGE_OUT",
                                                           "PREEMPTED", "REQUEUE_HOLD", "REQUEUE_FED")]
            if not live:
                return True
            time.sleep(0.1)
        return False

    def add_partition(self, name, *settings):
        """A partition over the cluster's nodes for this run (removed by cleanup; one an
        interrupted run left is replaced)."""
        self.run("scontrol", "delete", f"PartitionName={name}", check=False)
        self.run("scontrol", "create", f"PartitionName={name}", "Nodes=n1,n2", "State=UP",
                 "MaxTime=INFINITE", *settings)
        self.partitions_added.append(name)

    def daemon_cpu_s(self, name="slurmctld"):
        """CPU seconds (user + system) the cluster's daemon(s) `name` have used so far."""
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != name:
                        continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.conf.encode() not in f.read():
                        continue
                total += proc_cpu_s(int(pid))
            except OSError:
                pass
        return total

    def cleanup(self):
        """Cancels every job this run left, removes its partitions; returns the jobs it found."""
        left = self.job_ids()
        self.cancel(*left)
        self.wait_gone(left, 60)
        for name in self.partitions_added:
            self.run("scontrol", "delete", f"PartitionName={name}", check=False)
        self.partitions_added = []
        if self.started:
            subprocess.run([SLURM_SH, "down"], check=False)
        return left


def proc_cpu_s(pid, children=False):
    """utime + stime of a process (all its threads), in seconds; with children=True those of its
    reaped children instead (cutime + cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    i = 13 if children else 11  # fields 16/17 (cutime, cstime) or 14/15 (utime, stime)
    return (int(fields[i]) + int(fields[i + 1])) / os.sysconf("SC_CLK_TCK")


def first_line(path, timeout, interval=0.005, prefix=""):
    """(time it was seen, line) of the first complete line of `path` starting with `prefix`,
    polling every `interval` s; (None, None) after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                for line in f:
                    if line.endswith("\n") and line.startswith(prefix):
                        return time.time(), line.rstrip("\n")
        except FileNotFoundError:
            pass
        time.sleep(interval)
    return None, None


# The server's Slurm settings (launch/slurm_launcher.h; server/config.h, the `slurm:` section).
# The instance type maps to one CPU so that the benches fit the two 2-CPU test nodes (the
# partitions of scripts/slurm.sh give whole nodes to each job anyway).
def slurm_server(cluster, images_yaml, on_demand="ondemand", spot="spot", extra_yaml=""):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = (images_yaml +
              "launcher: slurm\n"
              "slurm:\n"
              f"  slurm_conf: {cluster.conf}\n"
              f"  server_url: {url}\n"
              f"  on_demand_partition: {on_demand}\n"
              f"  spot_partition: {spot}\n"
              f"  job_name_prefix: tybench{os.getpid()}-\n"
              "  instance_types:\n"
              "    ml.m5.large: {cpus: 1}\n" + extra_yaml)
    return Server(config, ["--isolation", "none"], listen=f"127.0.0.1:{port}")


def logs(client, name):
    """(the job's log lines so far, its status) through Trainyard.GetTrainingJobLogs."""
    st, body = client.call("GetTrainingJobLogs", {"TrainingJobName": name, "AfterSeq": 0},
                           target_prefix="Trainyard")
    if st != 200:
        raise RuntimeError(f"GetTrainingJobLogs {name}: {body}")
    return body.get("Events", []), body.get("TrainingJobStatus")


def wait_status(client, name, statuses=TERMINAL, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, d = client.call("DescribeTrainingJob", {"TrainingJobName": name})
        if d.get("TrainingJobStatus") in statuses:
            return d
        time.sleep(0.1)
    raise RuntimeError(f"{name}: not {'/'.join(statuses)} within {timeout} s")
