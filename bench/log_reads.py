#!/usr/bin/env python3
"""CloudWatch Logs figures, side by side in one run.

Reads: a 100,000-line job log (printed by a real job) read to the end through GetLogEvents
pagination with boto3 (startFromHead, nextForwardToken until it comes back unchanged), against
`cat` of the same lines (a file, piped into this process) and against moto_server's Logs API
serving the same lines (PutLogEvents in 10,000-event batches first, then the same reader).

Ingest: 16 simulated agents (the real report path, model::kAgentReportPath, with the tokens of
16 running jobs read from the database) post log-report batches at once; lines/s the server
stores, the server's CPU (utime+stime) per 100k lines, and the database's growth per 1M lines
(after a WAL checkpoint).

Run with the pyenv `python3` (boto3 1.43; moto_server on PATH). `--moto-dir DIR` runs moto from
a source checkout instead (PYTHONPATH=DIR python3 -m moto.server); without either the moto
column is skipped with a note.

usage: log_reads.py [--lines 100000] [--reps 3] [--agents 16] [--ingest-lines 400000]
                    [--batch 500] [--moto-dir DIR] [--sections reads,ingest]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

import boto3  # noqa: E402
import botocore.config  # noqa: E402

GROUP = "/aws/sagemaker/TrainingJobs"
REPORT_PATH = "/_trainyard/agent/v1/report"
LINE = "training step {i} loss=0.4321 acc=0.9876 lr=0.001 throughput=1234.5 samples/s"


def config(n_jobs, lines):
    return ('images:\n'
            '  - match: "bench/print:*"\n'
            f'    command: ["/bin/sh", "-c", "seq -f \'{LINE.replace("{i}", "%g")}\' 1 {lines}"]\n'
            '  - match: "bench/sleep:*"\n    command: ["/bin/sleep", "600"]\n'
            f'capacity: {{"*": {n_jobs + 2}}}\n'
            'instance_limits: false\n'
            # The job prints its lines in about a second, faster than one agent posts them:
            # room for all of them, so none is dropped (and noted) on the way.
            f'agent_log_buffer_lines: {max(lines, 20000) * 2}\n')


def job_request(name, image, out_dir):
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "file://" + out_dir},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
    }


def client(service, url, key, secret):
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                 region_name="us-east-1").client(
        service, endpoint_url=url, config=botocore.config.Config(retries={"max_attempts": 1}))


def wait_status(sm, name, want, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = sm.describe_training_job(TrainingJobName=name)
        if d["TrainingJobStatus"] in want:
            return d
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not reach {want}")


def read_all(logs, stream):
    """The reader under test: (lines, pages)."""
    token, n, pages = None, 0, 0
    while True:
        kw = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True,
                                   **kw)
        pages += 1
        n += len(page["events"])
        # CloudWatch (and Trainyard) return the same token at the end; moto's may differ, so an
        # empty page ends the read too.
        if page["nextForwardToken"] == token or not page["events"]:
            return n, pages
        token = page["nextForwardToken"]


def read_all_raw(url, creds, stream):
    """The same reads without botocore's parser: signed requests on one keep-alive connection,
    bodies decoded with json.loads. What the server (and the wire) cost."""
    c = Client(url, creds, prefix="Logs_20140328")
    c.signer = SigV4Auth(creds, "logs", "us-east-1")
    token, n, pages = None, 0, 0
    while True:
        body = {"logGroupName": GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            body["nextToken"] = token
        status, page = c.call("GetLogEvents", body)
        assert status == 200, page
        pages += 1
        n += len(page["events"])
        if page["nextForwardToken"] == token or not page["events"]:
            c.conn.close()
            return n, pages
        token = page["nextForwardToken"]


def read_all_curl(url, key, secret, stream, scratch):
    """The server and the wire alone: each page fetched by curl (--aws-sigv4, body to a file),
    summing curl's own time_total; the token is picked out of the body with a regex. Returns
    (seconds, lines, pages)."""
    token, n, pages, total = None, 0, 0, 0.0
    path = os.path.join(scratch, "page.json")
    while True:
        body = {"logGroupName": GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            body["nextToken"] = token
        r = subprocess.run(
            ["curl", "-s", "-o", path, "-w", "%{http_code} %{time_total}",
             "--aws-sigv4", "aws:amz:us-east-1:logs", "--user", f"{key}:{secret}",
             "-H", "Content-Type: application/x-amz-json-1.1",
             "-H", "X-Amz-Target: Logs_20140328.GetLogEvents",
             "--data-binary", json.dumps(body), url + "/"],
            capture_output=True, text=True, check=True)
        code, secs = r.stdout.split()
        assert code == "200", open(path).read()[:500]
        total += float(secs)
        pages += 1
        with open(path) as f:
            text = f.read()
        events = len(re.findall(r'"timestamp":\s*\d', text))
        n += events
        nxt = re.search(r'"nextForwardToken":\s*"([^"]*)"', text).group(1)
        if nxt == token or events == 0:
            return total, n, pages
        token = nxt


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(moto_dir):
    port = free_port()
    env = dict(os.environ)
    if moto_dir:
        env["PYTHONPATH"] = moto_dir + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "moto.server", "-p", str(port)]
    else:
        exe = shutil.which("moto_server")
        if exe is None:
            return None, None
        cmd = [exe, "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                return None, None
            time.sleep(0.2)
    proc.kill()
    return None, None


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def reads(a):
    srv = Server(config(0, a.lines)).start()
    out_dir = tempfile.mkdtemp(prefix="ty-bench-logs-out-")
    lines_file = os.path.join(out_dir, "lines.txt")
    try:
        url = srv.url
        sm = client("sagemaker", url, srv.creds.access_key, srv.creds.secret_key)
        logs = client("logs", url, srv.creds.access_key, srv.creds.secret_key)
        t0 = time.time()
        sm.create_training_job(**job_request("log-reads", "bench/print:1", out_dir))
        d = wait_status(sm, "log-reads", ("Completed", "Failed", "Stopped"))
        print(f"job printing {a.lines:,} lines: {d['TrainingJobStatus']} in {time.time() - t0:.1f} s")
        streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="log-reads/")
        stream = streams["logStreams"][0]["logStreamName"]
        with open(lines_file, "w") as f:
            for i in range(1, a.lines + 1):
                f.write(LINE.format(i=i) + "\n")

        ty_times, cat_times, moto_times, ty_raw, moto_raw = [], [], [], [], []
        ty_curl, moto_curl = [], []
        n_ty = pages_ty = n_moto = pages_moto = 0
        for _ in range(a.reps):
            t = time.perf_counter()
            n_ty, pages_ty = read_all(logs, stream)
            ty_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            n_raw, _ = read_all_raw(url, srv.creds, stream)
            ty_raw.append(time.perf_counter() - t)
            assert n_raw == n_ty
            secs, n_curl, _ = read_all_curl(url, srv.creds.access_key, srv.creds.secret_key,
                                            stream, out_dir)
            assert n_curl == n_ty
            ty_curl.append(secs)
            t = time.perf_counter()
            cat = subprocess.run(["cat", lines_file], stdout=subprocess.PIPE, check=True)
            cat_times.append(time.perf_counter() - t)
            assert cat.stdout.count(b"\n") == a.lines
        # The agent's own notes (limits, network) come first; the job's lines must all be there.
        if n_ty < a.lines:
            print(f"WARNING: trainyard returned {n_ty:,} lines, expected {a.lines:,} and notes")

        moto, port = start_moto(a.moto_dir)
        moto_note = ""
        if moto is None:
            moto_note = ("moto column skipped: no moto_server on PATH and no --moto-dir "
                         "(a source snapshot of getmoto/moto runs from PYTHONPATH)")
        else:
            try:
                ml = client("logs", f"http://127.0.0.1:{port}", "testing", "testing")
                ml.create_log_group(logGroupName=GROUP)
                ml.create_log_stream(logGroupName=GROUP, logStreamName=stream)
                now = int(time.time() * 1000)
                for b in range(0, a.lines, 10000):
                    ml.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=[
                        {"timestamp": now, "message": LINE.format(i=i)}
                        for i in range(b + 1, min(b + 10000, a.lines) + 1)])
                for _ in range(a.reps):
                    t = time.perf_counter()
                    n_moto, pages_moto = read_all(ml, stream)
                    moto_times.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    read_all_raw(f"http://127.0.0.1:{port}", Credentials("testing", "testing"),
                                 stream)
                    moto_raw.append(time.perf_counter() - t)
                    moto_curl.append(read_all_curl(f"http://127.0.0.1:{port}", "testing",
                                                   "testing", stream, out_dir)[0])
            finally:
                moto.terminate()
                moto.wait()

        print(f"\nread {a.lines:,} lines to the end, median of {a.reps} "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
        print(f"  {'reader':<44s} {'seconds':>8s} {'lines/s':>12s} {'pages':>6s}")

        def row(label, secs, n, pages=""):
            print(f"  {label:<44s} {secs:8.3f} {n / secs:12,.0f} {pages:>6}")
        row("cat (file -> pipe)", med(cat_times), a.lines)
        row("trainyard GetLogEvents, boto3", med(ty_times), n_ty, pages_ty)
        row("trainyard GetLogEvents, signed raw HTTP", med(ty_raw), n_ty, pages_ty)
        row("trainyard GetLogEvents, curl (server+wire)", med(ty_curl), n_ty, pages_ty)
        if moto_times:
            row("moto_server GetLogEvents, boto3", med(moto_times), n_moto, pages_moto)
            row("moto_server GetLogEvents, signed raw HTTP", med(moto_raw), n_moto, pages_moto)
            row("moto_server GetLogEvents, curl (server+wire)", med(moto_curl), n_moto, pages_moto)
            print(f"  trainyard vs moto: {med(moto_times) / med(ty_times):.1f}x with boto3, "
                  f"{med(moto_raw) / med(ty_raw):.1f}x raw, "
                  f"{med(moto_curl) / med(ty_curl):.1f}x server+wire (goal >= 20x); "
                  f"trainyard raw is {med(ty_raw) / med(cat_times):.1f}x cat's time")
        else:
            print("  " + moto_note)
    finally:
        srv.stop()
        srv.cleanup()
        shutil.rmtree(out_dir, ignore_errors=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_bytes(db):
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size
    finally:
        con.close()


def ingest(a):
    srv = Server(config(a.agents, 1)).start()
    out_dir = tempfile.mkdtemp(prefix="ty-bench-logs-out-")
    try:
        sm = client("sagemaker", srv.url, srv.creds.access_key, srv.creds.secret_key)
        names = [f"ingest-{i}" for i in range(a.agents)]
        for n in names:
            sm.create_training_job(**job_request(n, "bench/sleep:1", out_dir))
        for n in names:
            wait_status(sm, n, ("InProgress",))
        db = os.path.join(srv.data_dir, "trainyard.db")
        # The agents' own credentials: each job's token, attempt and ARN.
        deadline = time.time() + 60
        while True:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            rows = con.execute("SELECT name, arn, agent_token, attempt FROM jobs").fetchall()
            con.close()
            if all(r[2] for r in rows) or time.time() > deadline:
                break
            time.sleep(0.2)
        agents = {r[0]: r for r in rows}
        per_agent = a.ingest_lines // a.agents
        batches = per_agent // a.batch
        host, port = srv.url.split("://", 1)[1].rsplit(":", 1)
        base_ms = int(time.time() * 1000)

        def bodies(name):
            _, arn, token, attempt = agents[name]
            out = []
            for b in range(batches):
                lines = [{"t": base_ms + b, "m": LINE.format(i=b * a.batch + k)}
                         for k in range(a.batch)]
                out.append(json.dumps({"type": "log", "job_arn": arn, "host_index": 1,
                                       "attempt": attempt, "seq": 10_000_000 + b,
                                       "stream": f"{name}/algo-1-bench", "lines": lines}).encode())
            return token, out

        prepared = {n: bodies(n) for n in names}
        size_before = db_bytes(db)
        errors = []
        start = threading.Barrier(a.agents + 1)

        def agent(name):
            token, payloads = prepared[name]
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            start.wait()
            for body in payloads:
                for _attempt in range(50):
                    try:
                        conn.request("POST", REPORT_PATH, body=body, headers={
                            "Authorization": "Bearer " + token,
                            "Content-Type": "application/json"})
                        resp = conn.getresponse()
                        resp.read()
                    except (ConnectionError, http.client.HTTPException):
                        conn.close()
                        continue
                    if resp.status == 200:
                        break
                    if resp.status != 503:
                        errors.append(resp.status)
                        break
                    time.sleep(0.05)
            conn.close()

        threads = [threading.Thread(target=agent, args=(n,)) for n in names]
        for t in threads:
            t.start()
        cpu0 = cpu_seconds(srv.proc.pid)
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        total = a.agents * batches * a.batch
        growth = db_bytes(db) - size_before
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        stored = con.execute("SELECT COUNT(*) FROM stream_events e JOIN log_streams s ON "
                             "s.id = e.stream_id WHERE s.name LIKE '%/algo-1-bench'").fetchone()[0]
        con.close()
        print(f"\ningest: {a.agents} agents x {batches} reports x {a.batch} lines "
              f"({len(LINE) + 3} B each) at once")
        print(f"  lines stored {stored:,} of {total:,}; errors {len(errors)}")
        print(f"  {total / wall:,.0f} lines/s ({wall:.2f} s); server CPU "
              f"{cpu / total * 100000:.2f} s per 100k lines; database +{growth / total * 1e6 / 2**20:.1f} "
              f"MiB per 1M lines ({growth / total:.0f} B/line)")
        for n in names:
            sm.stop_training_job(TrainingJobName=n)
    finally:
        srv.stop()
        srv.cleanup()
        shutil.rmtree(out_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--agents", type=int, default=16)
    ap.add_argument("--ingest-lines", type=int, default=400000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--moto-dir", default=None)
    ap.add_argument("--sections", default="reads,ingest")
    a = ap.parse_args()
    sections = a.sections.split(",")
    if "reads" in sections:
        reads(a)
    if "ingest" in sections:
        ingest(a)


if __name__ == "__main__":
    main()
