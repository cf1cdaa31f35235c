#!/usr/bin/env python3
"""(b) DescribeTrainingJob throughput over keep-alive with SigV4-signed requests: Trainyard vs
moto_server (the baseline) answering the same call, same generator (bench/describe_load.cc),
same settings, in the same run. Run with the pyenv `python3` (moto_server, boto3 1.43)."""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, Client, Server, job_request  # noqa: E402

CONFIG = 'images:\n  - match: "bench/echo:*"\n    command: ["/bin/echo", "hello"]\n'
JOB = "describe-bench-job"


def load_binary():
    path = os.environ.get("DESCRIBE_LOAD", os.path.join(ROOT, "build-bench", "describe_load"))
    if not os.path.exists(path):
        subprocess.run(["g++", "-std=c++20", "-O2", "-I" + os.path.join(ROOT, "src"),
                        os.path.join(ROOT, "bench", "describe_load.cc")] +
                       [os.path.join(ROOT, "src", "common", f) for f in ("sigv4.cc", "crypto.cc", "clock.cc")] +
                       ["-o", path, "-lcrypto", "-pthread"], check=True)
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_moto():
    port = free_port()
    exe = os.environ.get("MOTO_SERVER", shutil.which("moto_server"))
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def run_load(binary, port, akid, secret, k, secs):
    out = subprocess.run([binary, "127.0.0.1", str(port), akid, secret, JOB, str(k), str(secs)],
                         capture_output=True, text=True, check=True).stdout.strip()
    fields = dict(re.findall(r"(\w+)=([\d.]+)", out))
    return {k2: float(v) for k2, v in fields.items()}, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="1,4,16")
    ap.add_argument("-t", type=float, default=5.0, help="seconds per measurement")
    a = ap.parse_args()
    binary = load_binary()

    srv = Server(CONFIG).start()
    moto, moto_port = start_moto()
    try:
        c = Client(srv.url, srv.creds)
        out_dir = tempfile.mkdtemp(prefix="ty-bench-out-")
        st, body = c.call("CreateTrainingJob", job_request(JOB, "bench/echo:1", out_dir))
        assert st == 200, body
        while True:
            st, d = c.call("DescribeTrainingJob", {"TrainingJobName": JOB})
            if d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            time.sleep(0.05)
        ty_status = d["TrainingJobStatus"]

        import boto3
        sm = boto3.client("sagemaker", endpoint_url=f"http://127.0.0.1:{moto_port}",
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        req = job_request(JOB, "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:1", "/tmp")
        req["OutputDataConfig"] = {"S3OutputPath": "s3://bench/out"}
        sm.create_training_job(**req)
        sm.describe_training_job(TrainingJobName=JOB)

        tyc = (srv.creds.access_key, srv.creds.secret_key)
        print(f"describe_throughput: {a.t:.0f} s per point; Trainyard job status {ty_status}; "
              f"generator {os.path.basename(binary)} (C++, 1 thread + 1 keep-alive connection per K)")
        print(f"{'K':>3s} {'trainyard req/s':>16s} {'p50 us':>8s} {'p99 us':>8s} {'moto req/s':>11s} "
              f"{'p50 us':>8s} {'p99 us':>8s} {'ratio':>7s}  errors(ty/moto)")
        results = []
        for k in [int(x) for x in a.k.split(",")]:
            mo, mo_line = run_load(binary, moto_port, "testing", "testing", k, a.t)
            ty, ty_line = run_load(binary, int(srv.url.rsplit(":", 1)[1]), *tyc, k, a.t)
            ratio = ty["rps"] / mo["rps"] if mo["rps"] else float("inf")
            results.append((k, ty["rps"], mo["rps"], ratio))
            print(f"{k:3d} {ty['rps']:16.0f} {ty['p50_us']:8.0f} {ty['p99_us']:8.0f} {mo['rps']:11.0f} "
                  f"{mo['p50_us']:8.0f} {mo['p99_us']:8.0f} {ratio:7.1f}  "
                  f"{int(ty['non200'] + ty['errors'])}/{int(mo['non200'] + mo['errors'])} "
                  f"reconnects {int(ty['reconnects'])}/{int(mo['reconnects'])}")
        best = max(results, key=lambda r: r[1])
        for k, t, m, r in results:
            print(f"RESULT describe_throughput K={k}: trainyard {t:.0f} req/s, moto {m:.0f} req/s, "
                  f"ratio x{r:.1f} (goal >=50x: {'MET' if r >= 50 else 'NOT MET'})")
    finally:
        moto.terminate()
        moto.wait()
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
