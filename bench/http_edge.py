#!/usr/bin/env python3
"""(h) The HTTP edge under hostile load: DescribeTrainingJob latency (p50/p99, one keep-alive
client, closed loop, bench/describe_load.cc) on an idle server, against the same server while
2,000 idle connections, 100 slow-header clients and 500 simulated reporting agents are open;
the two alternate in rounds, in one run. Also the server's memory per idle connection (VmRSS
delta / connections). Run with either Python (no boto3 needed beyond botocore's signer, which
_common imports)."""
import argparse
import asyncio
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Client, Server, job_request, med  # noqa: E402
from describe_throughput import load_binary, run_load  # noqa: E402

CONFIG = 'images:\n  - match: "bench/echo:*"\n    command: ["/bin/echo", "hello"]\n'
JOB = "describe-bench-job"  # the name describe_load asks for
REPORT_PATH = "/_trainyard/agent/v1/report"
SLOW_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: SageMaker.ListTrainingJobs\r\n"


def server_sockets(pid):
    n = 0
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def wait_until(cond, timeout=120):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for the load to settle")
        time.sleep(0.05)


class Load:
    """The hostile load, on an asyncio loop in a thread: idle connections (nothing sent), slow
    header clients (one byte a second, replaced when the server drops them) and agents (a
    report every `interval` s on a keep-alive connection). Sources spread over loopback
    addresses so that no address exceeds the server's per-client limit."""

    def __init__(self, port, idle, slow, agents, interval):
        self.port, self.n_idle, self.n_slow, self.n_agents = port, idle, slow, agents
        self.interval = interval
        self.reports = 0
        self.report_status = {}
        self.slow_dropped = 0
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.writers = []

    async def _connect(self, source):
        r, w = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
        self.writers.append(w)
        return r, w

    async def _open_idle(self, n):
        for i in range(n):
            await self._connect(f"127.0.0.{20 + i % 4}")  # 500 per address at 2,000

    async def _slow(self, i):
        while not self.stopping:
            try:
                r, w = await self._connect("127.0.0.30")
                for b in SLOW_HEAD:
                    if self.stopping:
                        return
                    w.write(bytes([b]))
                    await w.drain()
                    try:
                        if await asyncio.wait_for(r.read(1), 1.0) == b"":
                            break  # dropped at the head deadline: come back
                    except asyncio.TimeoutError:
                        pass
                if not self.stopping:
                    self.slow_dropped += 1
                w.close()
            except OSError:
                await asyncio.sleep(0.1)

    async def _agent(self, i):
        body = json.dumps({"type": "phase", "phase": "Training", "seq": 0,
                           "job_arn": f"arn:aws:sagemaker:us-east-1:000000000000:"
                                      f"training-job/bench-agent-{i}"}).encode()
        req = (f"POST {REPORT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
               f"Authorization: Bearer token-{i}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        await asyncio.sleep(random.random() * self.interval)
        r = w = None
        while not self.stopping:
            try:
                if w is None:
                    r, w = await self._connect(f"127.0.0.{40 + i % 2}")
                w.write(req)
                await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await r.readexactly(length)
                self.reports += 1
                self.report_status[status] = self.report_status.get(status, 0) + 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                w = None
            await asyncio.sleep(self.interval)

    def start_idle(self):
        asyncio.run_coroutine_threadsafe(self._open_idle(self.n_idle), self.loop).result()

    def start_active(self):
        self.tasks = []
        for i in range(self.n_slow):
            self.tasks.append(asyncio.run_coroutine_threadsafe(self._slow(i), self.loop))
        for i in range(self.n_agents):
            self.tasks.append(asyncio.run_coroutine_threadsafe(self._agent(i), self.loop))

    def stop(self):
        self.stopping = True

        async def close_all():
            for w in self.writers:
                w.close()
        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result()
        for t in getattr(self, "tasks", []):
            try:
                t.result(timeout=10)
            except Exception:  # noqa: BLE001 - a task's socket error is not the figure
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-t", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--slow", type=int, default=100)
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--interval", type=float, default=1.0, help="s between an agent's reports")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = load_binary()

    srv = Server(CONFIG).start()
    port = int(srv.url.rsplit(":", 1)[1])
    try:
        c = Client(srv.url, srv.creds)
        out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")
        st, body = c.call("CreateTrainingJob", job_request(JOB, "bench/echo:1", out_dir))
        assert st == 200, body
        while c.call("DescribeTrainingJob", {"TrainingJobName": JOB})[1]["TrainingJobStatus"] \
                not in ("Completed", "Failed", "Stopped"):
            time.sleep(0.05)
        c.conn.close()
        creds = (srv.creds.access_key, srv.creds.secret_key)
        run_load(binary, port, *creds, 1, 1.0)  # warm-up
        print(f"http_edge: {a.rounds} rounds of {a.t:.0f} s idle / {a.t:.0f} s under load "
              f"({a.idle} idle, {a.slow} slow-header, {a.agents} agents reporting every "
              f"{a.interval:g} s); DescribeTrainingJob by describe_load K=1")
        print(f"{'round':>5s} {'idle p50 us':>12s} {'p99 us':>8s} {'load p50 us':>12s} "
              f"{'p99 us':>8s} {'reports/s':>10s} {'slow dropped':>12s} {'errors':>7s}")
        rows, mem = [], []
        for rnd in range(1, a.rounds + 1):
            base_socks = server_sockets(srv.proc.pid)
            idle, _ = run_load(binary, port, *creds, 1, a.t)
            load = Load(port, a.idle, a.slow, a.agents, a.interval)
            rss0 = srv.rss_kb()
            load.start_idle()
            wait_until(lambda: server_sockets(srv.proc.pid) >= base_socks + a.idle)
            time.sleep(0.5)
            mem.append((srv.rss_kb() - rss0) / a.idle)
            load.start_active()
            wait_until(lambda: server_sockets(srv.proc.pid) >= base_socks + a.idle + a.slow +
                       a.agents)
            time.sleep(a.interval)  # every agent has started reporting
            r0, t0 = load.reports, time.time()
            busy, _ = run_load(binary, port, *creds, 1, a.t)
            rate = (load.reports - r0) / (time.time() - t0)
            load.stop()
            wait_until(lambda: server_sockets(srv.proc.pid) <= base_socks + 5)
            errors = int(idle["non200"] + idle["errors"] + busy["non200"] + busy["errors"])
            rows.append((idle, busy, rate))
            print(f"{rnd:5d} {idle['p50_us']:12.0f} {idle['p99_us']:8.0f} {busy['p50_us']:12.0f} "
                  f"{busy['p99_us']:8.0f} {rate:10.0f} {load.slow_dropped:12d} {errors:7d}  "
                  f"report statuses {load.report_status}")
        p50_i = med([r[0]["p50_us"] for r in rows])
        p99_i = med([r[0]["p99_us"] for r in rows])
        p50_b = med([r[1]["p50_us"] for r in rows])
        p99_b = med([r[1]["p99_us"] for r in rows])
        ratio = p99_b / p99_i if p99_i else float("inf")
        print(f"RESULT http_edge describe p50: idle {p50_i / 1000:.2f} ms, under load "
              f"{p50_b / 1000:.2f} ms (x{p50_b / p50_i:.2f})")
        print(f"RESULT http_edge describe p99: idle {p99_i / 1000:.2f} ms, under load "
              f"{p99_b / 1000:.2f} ms (x{ratio:.2f}; goal <=2x: "
              f"{'MET' if ratio <= 2 else 'NOT MET'})")
        # Later rounds reuse what the allocator kept from the first: only the first round, on a
        # server that never had these connections, shows what a connection costs.
        print(f"RESULT http_edge memory per idle connection: {mem[0]:.1f} KiB (server VmRSS "
              f"delta / {a.idle} connections, first round; later rounds "
              f"{', '.join(f'{m:.1f}' for m in mem[1:])} KiB, memory reused)")
    finally:
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
