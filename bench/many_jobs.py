#!/usr/bin/env python3
"""(i) Many concurrent jobs on one server: N `sleep` jobs with capacity N (one agent per job,
each keeping its report connection open), and DescribeTrainingJob latency meanwhile
(bench/describe_load.cc, K=1, in back-to-back windows), against the same server idle before the
jobs start, in the same run. Reports whether every job completed."""
import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, job_request, med  # noqa: E402
from describe_throughput import load_binary, run_load  # noqa: E402

JOB = "describe-bench-job"  # the name describe_load asks for


def config(n):
    return ('images:\n'
            '  - match: "bench/echo:*"\n    command: ["/bin/echo", "hello"]\n'
            f'capacity: {{"*": {n}}}\n'
            'instance_limits: false\n'
            f'http: {{max_connections_per_client: {n + 1024}}}\n')


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def agents_pss_kb(server_pid):
    """Proportional set size summed over the server's descendants (agents and their sleeps):
    shared pages (the one binary's text) are counted once overall, not once per agent."""
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    total, stack = 0, list(children.get(server_pid, []))
    while stack:
        p = stack.pop()
        total += pss_kb(p)
        stack.extend(children.get(p, []))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000, help="concurrent jobs (and capacity)")
    ap.add_argument("--sleep", type=int, default=60, help="seconds each job sleeps")
    ap.add_argument("-t", type=float, default=2.0, help="seconds per Describe window")
    ap.add_argument("--isolation", default="none")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = load_binary()
    srv = Server(config(a.n), extra_args=["--isolation", a.isolation]).start()
    port = int(srv.url.rsplit(":", 1)[1])
    try:
        c = Client(srv.url, srv.creds)
        out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")
        st, body = c.call("CreateTrainingJob", job_request(JOB, "bench/echo:1", out_dir))
        assert st == 200, body
        while c.call("DescribeTrainingJob", {"TrainingJobName": JOB})[1]["TrainingJobStatus"] \
                not in ("Completed", "Failed", "Stopped"):
            time.sleep(0.05)
        creds = (srv.creds.access_key, srv.creds.secret_key)
        idle = [run_load(binary, port, *creds, 1, a.t)[0] for _ in range(3)]

        t0 = time.time()
        for i in range(a.n):
            req = job_request(f"sleep-{i}", "bench/echo:1", out_dir)
            req["AlgorithmSpecification"]["ContainerEntrypoint"] = ["/bin/sleep", str(a.sleep)]
            st, body = c.call("CreateTrainingJob", req)
            assert st == 200, body
        created = time.time() - t0
        windows, peak_running, peak_rss, peak_agents_pss = [], 0, 0, 0
        statuses = {}
        while True:
            w, _ = run_load(binary, port, *creds, 1, a.t)
            windows.append(w)
            running = 0
            token = None
            while True:
                req = {"MaxResults": 100, **({"NextToken": token} if token else {})}
                st, page = c.call("ListTrainingJobs", req)
                running += sum(j["TrainingJobStatus"] == "InProgress"
                               for j in page.get("TrainingJobSummaries", []))
                token = page.get("NextToken")
                if not token:
                    break
            peak_running = max(peak_running, running)
            peak_rss = max(peak_rss, srv.rss_kb())
            peak_agents_pss = max(peak_agents_pss, agents_pss_kb(srv.proc.pid))
            print(f"  t={time.time() - t0:6.1f}s in progress {running:5d}  describe p50 "
                  f"{w['p50_us'] / 1000:.2f} ms p99 {w['p99_us'] / 1000:.2f} ms "
                  f"errors {int(w['non200'] + w['errors'])}", flush=True)
            if running == 0 and time.time() - t0 > a.sleep:
                break
            if time.time() - t0 > a.sleep + 30 * 60:
                break
        elapsed = time.time() - t0
        for i in range(a.n):
            st, d = c.call("DescribeTrainingJob", {"TrainingJobName": f"sleep-{i}"})
            statuses[d.get("TrainingJobStatus")] = statuses.get(d.get("TrainingJobStatus"), 0) + 1
        p99s = [w["p99_us"] for w in windows]
        idle_p99 = med([w["p99_us"] for w in idle])
        print(f"many_jobs: {a.n} jobs (sleep {a.sleep} s, isolation {a.isolation}), created in "
              f"{created:.1f} s, all done after {elapsed:.1f} s; statuses {statuses}; peak in "
              f"progress {peak_running}; server VmRSS peak {peak_rss / 1024:.0f} MiB, agents' "
              f"{peak_agents_pss / 1024:.0f} MiB PSS")
        print(f"RESULT many_jobs {a.n} sleep jobs: {statuses.get('Completed', 0)}/{a.n} "
              f"completed, peak {peak_running} in progress at once")
        print(f"RESULT many_jobs describe p99 while they run: median of windows "
              f"{med(p99s) / 1000:.2f} ms, worst window {max(p99s) / 1000:.2f} ms, idle "
              f"{idle_p99 / 1000:.2f} ms (x{med(p99s) / idle_p99:.2f}; goal < 50 ms: "
              f"{'MET' if max(p99s) < 50000 else 'NOT MET'})")
    finally:
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
