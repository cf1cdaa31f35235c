#!/usr/bin/env python3
"""CloudWatch metrics figures: ingest from 16 agents' reports at once (points/s, server CPU),
GetMetricData latency over 1 job x 5 metrics x 24 h of 1 s points (raw and rolled up), and the
memory and disk that ~1M points cost.

  bench/metrics.py [--agents 16] [--seconds 5] [--series 12] [--hours 24]

Seeds through PutMetricData (AWS JSON 1.0, 1,000 datums a call, 4 connections), with raw
retention raised to 25 h so the 24 h can be read raw too. Ingest: 16 `sleep` jobs run; 16
threads then post agent log reports carrying 100 samples (5 metrics each, 500 points) with the
jobs' own tokens, closed loop, for --seconds.
"""
import argparse
import glob
import json
import os
import threading
import time
import http.client
import sqlite3

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from _common import Server, Client, job_request, rss_kb

NS = "/aws/sagemaker/TrainingJobs"
METRICS = ["CPUUtilization", "MemoryUtilization", "DiskUtilization", "GPUUtilization",
           "GPUMemoryUtilization"]


class CloudWatch:
    """A keep-alive connection sending AWS JSON 1.0 CloudWatch calls signed for `monitoring`."""

    def __init__(self, url, creds):
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        self.url = url
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.signer = SigV4Auth(creds, "monitoring", "us-east-1")

    def call(self, op, body):
        data = json.dumps(body).encode()
        req = AWSRequest(method="POST", url=self.url + "/", data=data, headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"GraniteServiceVersion20100801.{op}", "x-amzn-query-mode": "true"})
        self.signer.add_auth(req)
        self.conn.request("POST", "/", body=data, headers=dict(req.headers.items()))
        resp = self.conn.getresponse()
        raw = resp.read()
        out = json.loads(raw) if raw else {}
        if resp.status != 200:
            raise RuntimeError(f"{op}: {resp.status} {out}")
        return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed(srv, series, hours, now):
    """series x hours of 1 s points through PutMetricData; returns (points, seconds)."""
    names = [(f"job-0", m) for m in METRICS] + [(f"job-{i}", "CPUUtilization")
                                                 for i in range(1, series - len(METRICS) + 1)]
    start = now - hours * 3600
    work = []
    for job, metric in names[:series]:
        dims = [{"Name": "Host", "Value": f"{job}/algo-1"}]
        for t0 in range(int(start), int(now), 1000):
            work.append((metric, dims, t0, min(int(now), t0 + 1000)))
    lock = threading.Lock()
    total = [0]

    def worker():
        cw = CloudWatch(srv.url, srv.creds)
        while True:
            with lock:
                if not work:
                    return
                metric, dims, t0, t1 = work.pop()
            data = [{"MetricName": metric, "Dimensions": dims, "Timestamp": t,
                     "Value": float((t * 7) % 100), "Unit": "Percent"} for t in range(t0, t1)]
            cw.call("PutMetricData", {"Namespace": NS, "MetricData": data})
            with lock:
                total[0] += len(data)

    t = time.time()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return total[0], time.time() - t


def query(srv, now, hours, period, stat, max_points=100800):
    cw = CloudWatch(srv.url, srv.creds)
    queries = [{"Id": f"m{i}", "MetricStat": {"Metric": {
        "Namespace": NS, "MetricName": m, "Dimensions": [{"Name": "Host", "Value": "job-0/algo-1"}]},
        "Period": period, "Stat": stat}} for i, m in enumerate(METRICS)]
    body = {"MetricDataQueries": queries, "StartTime": now - hours * 3600, "EndTime": now,
            "MaxDatapoints": max_points}
    t = time.time()
    points = pages = 0
    while True:
        out = cw.call("GetMetricData", body)
        pages += 1
        points += sum(len(r["Values"]) for r in out["MetricDataResults"])
        if "NextToken" not in out:
            break
        body["NextToken"] = out["NextToken"]
    return time.time() - t, points, pages


def ingest(agents, seconds, tmp):
    srv = Server('images:\n  - match: "bench/sleep:*"\n    command: ["/bin/sh", "-c", "sleep 120", "sh"]\n'
                 f'capacity: {{"*": {agents}}}\ninstance_limits: false\n'
                 "metrics:\n  interval_seconds: 0\n",
                 extra_args=["--isolation", "none"]).start()
    try:
        api = Client(srv.url, srv.creds)
        for i in range(agents):
            req = job_request(f"metrics-ingest-{i}", "bench/sleep:1", tmp)
            status, out = api.call("CreateTrainingJob", req)
            assert status == 200, out
        configs = []
        deadline = time.time() + 60
        while len(configs) < agents and time.time() < deadline:
            configs = glob.glob(os.path.join(srv.data_dir, "jobs", "*", "metrics-ingest-*",
                                             "attempt-1", "algo-1.instance.json"))
            time.sleep(0.2)
        assert len(configs) == agents, configs
        # Reports of an ended job are taken as late log lines only: every job must be training.
        for i in range(agents):
            while True:
                status, d = api.call("DescribeTrainingJob", {"TrainingJobName": f"metrics-ingest-{i}"})
                assert status == 200 and d["TrainingJobStatus"] == "InProgress", d
                if d["SecondaryStatus"] == "Training":
                    break
                time.sleep(0.2)
        host, port = srv.url.split("://", 1)[1].rsplit(":", 1)
        stop_at = [0.0]
        counts = [0] * agents

        def agent(i, cfg):
            with open(cfg) as f:
                c = json.load(f)
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            seq = 1_000_000_000
            while time.time() < stop_at[0]:
                now_ms = int(time.time() * 1000)
                samples = [{"t": now_ms - 100 + k, "cpu": 50.0, "mem": 10.0, "disk": 5.0,
                            "gpu": 1.0, "gpumem": 2.0} for k in range(100)]
                seq += 1
                body = json.dumps({"type": "log", "job_arn": c["job_arn"], "host_index": 1,
                                   "attempt": 1, "seq": seq, "stream": c["log_stream"],
                                   "lines": [], "samples": samples})
                conn.request("POST", "/_trainyard/agent/v1/report", body=body,
                             headers={"Authorization": "Bearer " + c["token"],
                                      "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                assert r.status == 200, r.status
                counts[i] += 500

        cpu0 = cpu_seconds(srv.proc.pid)
        t0 = time.time()
        stop_at[0] = t0 + seconds
        threads = [threading.Thread(target=agent, args=(i, cfg)) for i, cfg in enumerate(configs)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.time() - t0
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        total = sum(counts)
        # Every acknowledged point is stored (the figure counts nothing the server dropped).
        db = sqlite3.connect(os.path.join(srv.data_dir, "metrics.db"))
        stored = db.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
        db.close()
        assert stored == total, (stored, total)
        return total, wall, cpu
    finally:
        srv.stop()
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--series", type=int, default=12)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--ingest-only", action="store_true")
    args = ap.parse_args()
    tmp = "/tmp/ty-bench-metrics-out"
    os.makedirs(tmp, exist_ok=True)

    total, wall, cpu = ingest(args.agents, args.seconds, tmp)
    print(f"ingest: {args.agents} agents, {total} points in {wall:.1f} s = {total / wall:,.0f} "
          f"points/s; server CPU {cpu:.1f} s ({cpu / total * 1e6:.1f} s per 1M points)")
    if args.ingest_only:
        return

    srv = Server("metrics:\n  raw_retention_hours: 25\n").start()
    try:
        now = int(time.time()) // 60 * 60
        rss0 = rss_kb(srv.proc.pid)
        points, secs = seed(srv, args.series, args.hours, now)
        rss1 = rss_kb(srv.proc.pid)
        db = sum(os.path.getsize(p) for p in glob.glob(os.path.join(srv.data_dir, "metrics.db*")))
        print(f"seed: {points:,} points by PutMetricData in {secs:.1f} s "
              f"({points / secs:,.0f} points/s, 4 connections)")
        print(f"footprint: metrics.db(+wal) {db / 1e6:.1f} MB = {db / points * 1e6 / 1e6:.1f} MB "
              f"per 1M points (raw + 1-min + 1-h rollups); server RSS +{(rss1 - rss0) / 1024:.1f} "
              f"MiB while ingesting them")
        for label, hours, period, stat in [
                ("rolled up: 24 h, Period 60, Average (1-min rollups)", args.hours, 60, "Average"),
                ("rolled up: 24 h, Period 3600, Maximum (1-h rollups)", args.hours, 3600, "Maximum"),
                ("raw: 24 h, Period 60, p90 (every raw point)", args.hours, 60, "p90"),
                ("raw: 24 h, Period 1, Average (all points, paginated)", args.hours, 1, "Average"),
                ("raw: 1 h, Period 1, Average", 1, 1, "Average")]:
            runs = [query(srv, now, hours, period, stat) for _ in range(3)]
            best = min(r[0] for r in runs)
            _, n, pages = runs[0]
            print(f"GetMetricData 5 metrics, {label}: {n:,} datapoints in {pages} page(s), "
                  f"best of 3 {best * 1000:.0f} ms")
    finally:
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
