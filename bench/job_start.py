#!/usr/bin/env python3
"""(g) Job start overhead of 1, 2 and 4 instances, side by side in one run.

Every job runs a trivial training script (the `bench/stamp` image: python3 prints
`START <time.time()>` as its first action and exits). Per job, all times from the
CreateTrainingJob send (wall clock; the server, its agents and the scripts share this machine's
clock):
  create      the CreateTrainingJob response (it returns only once the job is placed: the
              instance network is made and every agent forked before the answer);
  start       (a) the latest instance's START stamp, read back through Trainyard.GetTrainingJobLogs;
  completed   (b) the job's Completed transition (server time, ms) after the script exits.
(a) and (b) are also given from the response, as the brief words them.

Breakdown (medians), from the job's SecondaryStatusTransitions (algo-1's phases as the server
received them), the job directory's mtime and the log:
  net         CreationTime -> mtime of jobs/<account>/<name> (its one entry, attempt-1, is made right
              after the network; for 1 instance nothing is made, so this is the SQLite insert and
              placement alone): the network setup is its growth over the 1-instance job;
  agent       Create response -> Downloading (the agent exec'd, cgroup limits set, first report);
  stage       Downloading -> Training (staging);
  exec        Training -> algo-1's START (bwrap, /etc/hosts, python3 start-up);
  spread      first -> last instance's START;
  finish      last START -> Completed (exit, model upload; algo-1 waits for its peers' done marks
              and merges their trees);
  teardown    Completed -> the job's bridge gone from /sys/class/net (jobs with a network; released
              on a controller tick once every agent is gone).

Variants: 1, 2 and 4 instances on a server with `--isolation bwrap` (every instance in its own
network namespace behind the firewall); 1 instance on a bwrap server with `network: loopback`
(the same sandbox on the host's network: what the per-instance network costs a 1-instance job);
and (second baseline) 1 instance on a server with `--isolation none` (multi-node needs
bubblewrap). The variants take
turns in every round, their order rotated each round; round 0 is a warm-up and not counted.
Jobs run one at a time: the next starts once the previous one's agents and network are gone.
Baseline outside Trainyard: the same python3 command run directly and under bwrap with the
agent's flags (spawn -> stamp).

--contention R: R extra rounds on the bwrap server, each sending a 1-instance CreateTrainingJob
50 ms after a 4-instance one (own connection): how long the controller's loop, busy making the
4-instance job's network, holds other requests up (compare with the 1-instance Create alone).
--no-limits: `instance_limits: false` on both servers (what the agent's cgroup set-up costs).

usage: job_start.py [-n ROUNDS] [--quick] [--counts 1,2,4] [--no-none] [--contention R]
                    [--no-limits] [-v]
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, job_request, med, pct  # noqa: E402

PY = "/usr/bin/python3"
STAMP = "import time; print('START %.6f' % time.time(), flush=True)"
STAMP_ARGV = [PY, "-I", "-S", "-c", STAMP]
CONFIG = ('images:\n  - match: "bench/stamp:*"\n    command: ["%s", "-I", "-S", "-c", "%s"]\n'
          'capacity:\n  "*": 16\n') % (PY, STAMP.replace('"', '\\"'))
INSTANCE_TYPE = "ml.m5.large"


# Network keys of every job this run made (what must be gone at the end).
KEYS = set()


def network_key(srv, arn):
    """The job network key a server gives a job: SHA-256 of its id (from its data dir) and the
    ARN (launch/instance_network.h)."""
    server_id = hashlib.sha256(os.path.realpath(srv.data_dir).encode()).hexdigest()[:8]
    return hashlib.sha256(f"{server_id} {arn}".encode()).hexdigest()[:8]


def netns_and_links():
    """Job-network objects on this machine: ty-* namespaces, tyb-/tyv- links."""
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [line.split()[0] for line in ns.splitlines() if line.startswith("ty-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(("tyb-", "tyv-")):
            found.append(name)
    return found


def agents_of(data_dir):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if data_dir.encode() in cmd and b"\0agent\0" in cmd:
            pids.append(int(pid))
    return pids


def wait_until(cond, timeout, interval=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def bwrap_argv(instance_dir):
    # The agent's sandbox flags (src/agent/agent.cc), without the network namespace.
    return ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-uts", "--unshare-ipc",
            "--hostname", "algo-1", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--tmpfs", "/opt", "--bind", instance_dir, "/opt/ml",
            "--chdir", "/opt/ml", "--"] + STAMP_ARGV


def direct_stamp(argv):
    """ms from spawning `argv` to its START stamp."""
    t0 = time.time()
    out = subprocess.run(argv, capture_output=True, text=True)
    m = re.search(r"START (\d+\.\d+)", out.stdout)
    assert out.returncode == 0 and m, out
    return (float(m.group(1)) - t0) * 1000


class Variant:
    def __init__(self, label, srv, count):
        self.label, self.srv, self.count = label, srv, count
        self.client = Client(srv.url, srv.creds)
        self.rows = []


def transitions(d):
    return {t["Status"]: t["StartTime"] for t in d.get("SecondaryStatusTransitions", [])}


def run_job(v, name, out_dir, poll):
    c = v.client
    req = job_request(name, "bench/stamp:1", out_dir)
    req["ResourceConfig"]["InstanceType"] = INSTANCE_TYPE
    req["ResourceConfig"]["InstanceCount"] = v.count
    data, headers = c.prepare("CreateTrainingJob", req)
    t0 = time.time()
    p0 = time.perf_counter()
    status, body = c.send(data, headers)
    create = (time.perf_counter() - p0) * 1000
    assert status == 200, body
    arn = body["TrainingJobArn"]
    while True:
        st, d = c.call("DescribeTrainingJob", {"TrainingJobName": name})
        assert st == 200, d
        if d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(poll)
    seen = (time.time() - t0) * 1000
    if d["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {d['TrainingJobStatus']}: {d.get('FailureReason')}")
    completed_at = time.time()

    # The network goes on a controller tick once every agent is gone.
    key = network_key(v.srv, arn)
    KEYS.add(key)
    teardown = None
    if v.srv.networked:
        gone = wait_until(lambda: not os.path.exists(f"/sys/class/net/tyb-{key}"), 30)
        teardown = (time.time() - completed_at) * 1000 if gone else float("nan")
    wait_until(lambda: not agents_of(v.srv.data_dir), 30, 0.02)

    def read_logs():
        st, lb = c.call("GetTrainingJobLogs", {"TrainingJobName": name, "AfterSeq": 0,
                                                "Limit": 10000}, target_prefix="Trainyard")
        assert st == 200, lb
        return lb["Events"]

    starts = {}
    for _ in range(50):
        events = read_logs()
        starts = {}
        for e in events:
            m = re.match(r"START (\d+\.\d+)", e["Message"])
            if m:
                starts[e["Stream"].split("/", 1)[1].rsplit("-", 1)[0]] = float(m.group(1))
        if len(starts) == v.count:
            break
        time.sleep(0.05)
    if len(starts) != v.count:
        raise RuntimeError(f"{name}: START from {sorted(starts)} of {v.count} instances")
    waited = sum(1 for e in events if "waiting for" in e["Message"] and "other instance" in e["Message"])

    tr = transitions(d)
    ms = lambda wall: (wall - t0) * 1000  # noqa: E731
    account = arn.split(":")[4]
    job_dir = os.path.join(v.srv.data_dir, "jobs", account, name)
    row = {
        "create": create,
        "start": ms(max(starts.values())),
        "first_start": ms(min(starts.values())),
        "algo1_start": ms(starts["algo-1"]),
        "completed": ms(tr["Completed"]),
        "seen": seen,
        "created_at": ms(d["CreationTime"]),
        "dirs": ms(os.stat(job_dir).st_mtime),
        "down": ms(tr["Downloading"]),
        "train": ms(tr["Training"]),
        "upload": ms(tr.get("Uploading", float("nan"))),
        "teardown": teardown,
        "waited": waited,
    }
    row["net"] = row["dirs"] - row["created_at"]
    row["agent"] = row["down"] - row["create"]
    row["stage"] = row["train"] - row["down"]
    row["exec"] = row["algo1_start"] - row["train"]
    row["spread"] = row["start"] - row["first_start"]
    row["finish"] = row["completed"] - row["start"]
    row["start_ret"] = row["start"] - create
    row["completed_ret"] = row["completed"] - create
    return row


def wait_idle(srv, arns):
    keys = [network_key(srv, a) for a in arns]
    wait_until(lambda: not any(os.path.exists(f"/sys/class/net/tyb-{k}") for k in keys), 30)
    wait_until(lambda: not agents_of(srv.data_dir), 30, 0.02)
    time.sleep(0.25)


def contention(srv, rounds, out_dir, poll):
    """Latency of a 1-instance CreateTrainingJob sent 50 ms after a 4-instance one."""
    big, small = Client(srv.url, srv.creds), Client(srv.url, srv.creds)
    lat, big_lat = [], []
    for r in range(rounds):
        stamp = int(time.time() * 1000) % 100000
        reqs = []
        for cl, count in ((big, 4), (small, 1)):
            req = job_request(f"jsc-{count}-{r}-{stamp}", "bench/stamp:1", out_dir)
            req["ResourceConfig"]["InstanceType"] = INSTANCE_TYPE
            req["ResourceConfig"]["InstanceCount"] = count
            reqs.append(cl.prepare("CreateTrainingJob", req))
        got = {}

        def send_big():
            p0 = time.perf_counter()
            got["big"] = big.send(*reqs[0])
            big_lat.append((time.perf_counter() - p0) * 1000)
        th = threading.Thread(target=send_big)
        th.start()
        time.sleep(0.05)
        p0 = time.perf_counter()
        st, body = small.send(*reqs[1])
        lat.append((time.perf_counter() - p0) * 1000)
        th.join()
        assert st == 200 and got["big"][0] == 200, (body, got)
        arns = [got["big"][1]["TrainingJobArn"], body["TrainingJobArn"]]
        for arn in arns:
            name = arn.rsplit("/", 1)[1]
            while small.call("DescribeTrainingJob", {"TrainingJobName": name})[1][
                    "TrainingJobStatus"] == "InProgress":
                time.sleep(poll)
        wait_idle(srv, arns)
    return lat, big_lat


def summary_table(variants, n):
    cols = [("create", "create"), ("net", "net"), ("agent", "agent"), ("stage", "stage"),
            ("exec", "exec"), ("spread", "spread"), ("start", "start"),
            ("start_ret", "start-ret"), ("finish", "finish"), ("completed", "completed"),
            ("completed_ret", "compl-ret"), ("teardown", "teardown")]
    print(f"\njob_start: medians over {n} rounds, ms from the CreateTrainingJob send "
          f"(*-ret: from its response)")
    print(f"{'variant':16s}" + "".join(f"{h:>10s}" for _, h in cols))
    for v in variants:
        line = f"{v.label:16s}"
        for k, _ in cols:
            xs = [r[k] for r in v.rows if r[k] is not None]
            line += f"{med(xs):10.1f}" if xs else f"{'-':>10s}"
        print(line)
    print(f"{'p90 start/compl':16s}" + "".join(
        f"  {v.label}: {pct([r['start'] for r in v.rows], 90):.1f}/"
        f"{pct([r['completed'] for r in v.rows], 90):.1f}" for v in variants))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5, help="counted rounds (each runs every variant)")
    ap.add_argument("--quick", action="store_true", help="n=2")
    ap.add_argument("--counts", default="1,2,4")
    ap.add_argument("--no-none", action="store_true", help="skip the isolation: none baseline")
    ap.add_argument("--poll", type=float, default=0.02, help="DescribeTrainingJob poll period, s")
    ap.add_argument("--contention", type=int, default=0, metavar="R",
                    help="R rounds of a 1-instance Create sent during a 4-instance one")
    ap.add_argument("--no-limits", action="store_true", help="instance_limits: false")
    ap.add_argument("-v", action="store_true", help="print every job")
    a = ap.parse_args()
    n = 2 if a.quick else a.n
    counts = [int(x) for x in a.counts.split(",")]

    # Servers sweep only their own job networks: others' running jobs may share the machine.
    load0 = open("/proc/loadavg").read().split()[:3]
    config = CONFIG + ("instance_limits: false\n" if a.no_limits else "")
    bw = Server(config, ["--isolation", "bwrap"]).start()
    bw.networked = True
    # The same sandbox without the per-instance network: 1-instance jobs share the host's.
    host = Server(config + "network: loopback\n", ["--isolation", "bwrap"]).start()
    host.networked = False
    servers = [bw, host]
    none = None
    if not a.no_none:
        # Loopback: this server runs 1-instance jobs only; it neither probes nor sweeps networks.
        none = Server(config + "network: loopback\n", ["--isolation", "none"]).start()
        none.networked = False
        servers.append(none)
    out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")
    inst = tempfile.mkdtemp(prefix="ty-bench-inst-")
    try:
        variants = [Variant(f"{k} inst", bw, k) for k in counts]
        variants.append(Variant("1 inst, host net", host, 1))
        if none:
            variants.append(Variant("1 inst, none", none, 1))
        base = {"python3 direct": [], "python3 in bwrap": []}
        print(f"job_start: {n} rounds (+1 warm-up) of {', '.join(v.label for v in variants)}; "
              f"{os.cpu_count()} cores, load {' '.join(load0)}; {INSTANCE_TYPE}, capacity 16"
              f"{', instance_limits: false' if a.no_limits else ''}")
        for r in range(n + 1):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:
                tag = 'n' if v.srv is none else 'h' if v.srv is host else 'b'
                name = f"js-{v.count}{tag}-{r}-{int(time.time() * 1000) % 100000}"
                row = run_job(v, name, out_dir, a.poll)
                time.sleep(0.25)  # let the controller's tick after the job pass
                if r == 0:
                    continue
                v.rows.append(row)
                if a.v:
                    print(f"  r{r} {v.label:14s} " + " ".join(
                        f"{k}={row[k]:.1f}" for k in ("create", "net", "down", "train", "start",
                                                       "spread", "completed")
                        if row[k] is not None) + f" waited={row['waited']}")
            base["python3 direct"].append(direct_stamp(STAMP_ARGV))
            base["python3 in bwrap"].append(direct_stamp(bwrap_argv(inst)))
        for k in base:
            base[k] = base[k][1:]
        summary_table(variants, n)
        for k, xs in base.items():
            print(f"baseline {k}: spawn -> START {med(xs):.1f} ms (min {min(xs):.1f})")
        busy = contention(bw, a.contention, out_dir, a.poll) if a.contention else None
        waited = {v.label: sum(r["waited"] for r in v.rows) for v in variants if v.count > 1}
        print(f"jobs whose algo-1 waited for its peers' done marks (polled every 20 ms): {waited}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(inst, ignore_errors=True)
    left = [o for o in netns_and_links() if any(k in o for k in KEYS)]
    leftover_agents = [p for s in servers for p in agents_of(s.data_dir)]
    load1 = open("/proc/loadavg").read().split()[:3]
    for s in servers:
        s.cleanup()
    print(f"load at the end {' '.join(load1)}")

    by = {v.label: v for v in variants}
    one = by.get("1 inst")
    M = lambda v, k: med([r[k] for r in v.rows])  # noqa: E731
    for v in variants:
        line = (f"{v.label}: start {M(v, 'start'):.1f} ms, completed {M(v, 'completed'):.1f} ms "
                f"from the send (from the Create response: {M(v, 'start_ret'):.1f} / "
                f"{M(v, 'completed_ret'):.1f} ms; Create {M(v, 'create'):.1f} ms)")
        if one and v is not one and v.srv is bw:
            line += (f"; vs 1 instance x{M(v, 'start') / M(one, 'start'):.2f} start, "
                     f"x{M(v, 'completed') / M(one, 'completed'):.2f} completed (from the response "
                     f"x{M(v, 'start_ret') / M(one, 'start_ret'):.2f} / "
                     f"x{M(v, 'completed_ret') / M(one, 'completed_ret'):.2f})")
        if one and v.srv is host:
            line += (f"; the per-instance network costs +{M(one, 'start') - M(v, 'start'):.1f} ms "
                     f"start, +{M(one, 'completed') - M(v, 'completed'):.1f} ms completed")
        if one and v.srv is none:
            line += (f"; bwrap costs +{M(one, 'start') - M(v, 'start'):.1f} ms start, "
                     f"+{M(one, 'completed') - M(v, 'completed'):.1f} ms completed")
        print("RESULT job_start " + line)
    hostnet = by.get("1 inst, host net")
    if hostnet:
        for v in variants:
            if v.srv is bw:
                extra = M(v, "net") - M(hostnet, "net")
                print(f"RESULT job_start network setup, {v.count} instances: {extra:.1f} ms "
                      f"({100 * extra / M(v, 'start'):.0f}% of start); teardown "
                      f"{M(v, 'teardown'):.0f} ms after Completed")
    if busy and one:
        print(f"RESULT job_start contention: a 1-instance CreateTrainingJob sent 50 ms into a "
              f"4-instance one's answers in {med(busy[0]):.1f} ms (max {max(busy[0]):.1f}; alone "
              f"{M(one, 'create'):.1f} ms; the 4-instance Create {med(busy[1]):.1f} ms), "
              f"n={len(busy[0])}")
    print("RESULT job_start leftovers: " + (", ".join(left + [f"agent pid {p}" for p in leftover_agents])
                                            or "none (no ty-* netns, tyb-/tyv- link or agent)"))


if __name__ == "__main__":
    main()
