"""Lambda Invoke latency, side by side in one run: a cold invocation (a new sandboxed worker
imports the handler), a warm one (the worker is reused), and the floor: `python3 -c` running the
same handler directly, without Trainyard, sandbox or HTTP.

usage: TRAINYARD_BIN=build/trainyard python3 bench/lambda_invoke.py [--runs N]
Prints a Markdown table (p50 / p99 in ms). Cold invocations are forced by an
UpdateFunctionConfiguration between them (it retires the warm worker).
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import boto3
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Server  # noqa: E402

HANDLER = "import json\ndef handler(event, context):\n    return {'ok': True, 'n': event.get('n')}\n"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    srv = Server().start()
    try:
        c = boto3.session.Session(
            aws_access_key_id=srv.creds.access_key, aws_secret_access_key=srv.creds.secret_key,
            region_name="us-east-1").client(
                "lambda", endpoint_url=srv.url,
                config=botocore.config.Config(retries={"max_attempts": 1}))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", HANDLER)
        c.create_function(FunctionName="bench", Runtime="python3.12", Handler="app.handler",
                          Role="arn:aws:iam::123456789012:role/bench",
                          Code={"ZipFile": buf.getvalue()})

        def invoke():
            t = time.perf_counter()
            r = c.invoke(FunctionName="bench", Payload=b'{"n": 1}')
            r["Payload"].read()
            assert "FunctionError" not in r
            return (time.perf_counter() - t) * 1000

        cold, warm = [], []
        for i in range(args.runs):
            c.update_function_configuration(FunctionName="bench", Description=str(i))
            cold.append(invoke())
            warm.append(invoke())
            warm.append(invoke())
        task = tempfile.mkdtemp(prefix="ty-bench-fn-")
        with open(os.path.join(task, "app.py"), "w") as f:
            f.write(HANDLER)
        direct = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run(["/usr/bin/python3", "-c",
                            "import json, app; print(json.dumps(app.handler({'n': 1}, None)))"],
                           cwd=task, check=True, capture_output=True)
            direct.append((time.perf_counter() - t) * 1000)
        print("| path | runs | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for name, xs in (("Invoke, cold (new sandboxed worker)", cold),
                         ("Invoke, warm (reused worker)", warm),
                         ("`python3 -c` the same handler (floor)", direct)):
            print(f"| {name} | {len(xs)} | {statistics.median(xs):.1f} | {pct(xs, 99):.1f} |")
    finally:
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
