#!/usr/bin/env python3
"""Governance figures, side by side in one run:

  - event latency: from a job's status change (its SecondaryStatusTransitions StartTime, ms on
    the server's clock) to the Lambda handler running, warm and cold, p50 and p99; the floor is
    a direct `python3 -c` run of the same handler (process start, import boto3, call);
  - throughput: custom events per second matched by a rule and delivered to a warm function
    (PutEvents, 10 a call, from the first call to the last handler run);
  - alarm detection: from an idle instance's Training start to ALARM and to the job Stopping,
    against the least the alarm's window allows (Period x DatapointsToAlarm).

  bench/governance.py [--warm 20] [--cold 6] [--burst 1000]
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

from _common import Server

HANDLER = r'''
import json, time
import boto3
sagemaker = boto3.client("sagemaker")

def handler(event, context):
    now = time.time() * 1000
    if event.get("source") == "aws.sagemaker":
        sent = event["detail"]["SecondaryStatusTransitions"][-1]["StartTime"]
        kind = "job"
    else:
        sent = event["detail"].get("sent", now)
        kind = "burst"
    print(json.dumps({"probe": kind, "latency_ms": now - sent, "id": event.get("id")}))
    return {"ok": True}

def stop_idle(event, context):
    name = event["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"][
        "dimensions"]["Host"].split("/")[0]
    sagemaker.stop_training_job(TrainingJobName=name)
    print(json.dumps({"probe": "stopped", "job": name, "t": time.time() * 1000}))
'''

CONFIG = """
images:
  - match: "trainyard-test/shell:*"
    command: ["/bin/sh", "-c", "exit 0"]
capacity:
  "*": 64
"""


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def job(name, out, command, **extra):
    req = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "trainyard-test/shell:1",
                                   "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["/bin/sh", "-c", command]},
        "RoleArn": "arn:aws:iam::123456789012:role/bench",
        "OutputDataConfig": {"S3OutputPath": "file://" + out},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    req.update(extra)
    return req


class Bench:
    def __init__(self, server):
        self.server = server
        session = boto3.session.Session(
            aws_access_key_id=server.creds.access_key, aws_secret_access_key=server.creds.secret_key,
            region_name="us-east-1")
        cfg = botocore.config.Config(retries={"max_attempts": 1})
        self.c = {s: session.client(s, endpoint_url=server.url, config=cfg)
                  for s in ("sagemaker", "lambda", "events", "logs", "cloudwatch")}
        self.seen = 0
        self.log_token = None

    def probe_lines(self, function="probe"):
        """Every probe line the function logged so far."""
        lines, kw = [], {"logGroupName": f"/aws/lambda/{function}"}
        while True:
            try:
                page = self.c["logs"].filter_log_events(**kw)
            except self.c["logs"].exceptions.ResourceNotFoundException:
                return []
            for e in page["events"]:
                for line in e["message"].splitlines():
                    if line.startswith('{"probe"'):
                        lines.append(json.loads(line))
            if not page.get("nextToken"):
                return lines
            kw["nextToken"] = page["nextToken"]

    def wait_lines(self, kind, n, timeout=300, function="probe"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [x for x in self.probe_lines(function) if x["probe"] == kind]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise RuntimeError(f"only {len(got)} of {n} {kind} probes after {timeout}s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--cold", type=int, default=6)
    ap.add_argument("--burst", type=int, default=1000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ty-bench-gov-")
    out = os.path.join(work, "out")
    os.makedirs(out)
    with open(os.path.join(work, "probe.py"), "w") as f:
        f.write(HANDLER)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(os.path.join(work, "probe.py"), "probe.py")
    code = buf.getvalue()

    server = Server(CONFIG).start()
    try:
        b = Bench(server)
        lam, ev, sm = b.c["lambda"], b.c["events"], b.c["sagemaker"]
        fn = lam.create_function(FunctionName="probe", Runtime="python3.11", Role="arn:aws:iam::123456789012:role/bench",
                                 Handler="probe.handler", Code={"ZipFile": code}, Timeout=30,
                                 MemorySize=256)["FunctionArn"]
        for rule, pattern in (("jobs", {"source": ["aws.sagemaker"],
                                         "detail": {"SecondaryStatus": ["Starting"]}}),
                              ("burst", {"source": ["bench.burst"]})):
            arn = ev.put_rule(Name=rule, EventPattern=json.dumps(pattern))["RuleArn"]
            lam.add_permission(FunctionName="probe", StatementId=rule, Action="lambda:InvokeFunction",
                               Principal="events.amazonaws.com", SourceArn=arn)
            ev.put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": fn}])

        # Cold: a configuration change before each job retires the warm workers.
        cold = []
        for i in range(args.cold):
            lam.update_function_configuration(FunctionName="probe",
                                              Environment={"Variables": {"ROUND": str(i)}})
            sm.create_training_job(**job(f"cold-{i}", out, "true"))
            cold = b.wait_lines("job", i + 1)
        cold_ms = [x["latency_ms"] for x in cold]
        warm = []
        for i in range(args.warm):
            sm.create_training_job(**job(f"warm-{i}", out, "true"))
            warm = b.wait_lines("job", args.cold + i + 1)
        warm_ms = [x["latency_ms"] for x in warm[args.cold:]]

        # The floor: the same handler run directly by the machine's Python.
        event = {"source": "aws.sagemaker", "detail": {"SecondaryStatusTransitions": [
            {"StartTime": 0}]}}
        floor = []
        env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x",
                   AWS_SECRET_ACCESS_KEY="y")
        for _ in range(10):
            t0 = time.time()
            subprocess.run(["/usr/bin/python3", "-c",
                            f"import sys; sys.path.insert(0, {work!r}); import probe; "
                            f"probe.handler({event!r}, None)"],
                           check=True, env=env, capture_output=True)
            floor.append((time.time() - t0) * 1000)

        # Throughput: a burst of custom events to the warm function.
        t0 = time.time()
        for i in range(0, args.burst, 10):
            entries = [{"Source": "bench.burst", "DetailType": "burst",
                        "Detail": json.dumps({"n": i + k, "sent": time.time() * 1000})}
                       for k in range(min(10, args.burst - i))]
            res = ev.put_events(Entries=entries)
            assert res["FailedEntryCount"] == 0, res
        put_s = time.time() - t0
        b.wait_lines("burst", args.burst, timeout=600)
        burst_s = time.time() - t0

        # Alarm detection: an idle job, an alarm on its CPU with a direct Lambda action.
        stop_fn = lam.create_function(FunctionName="stopper", Runtime="python3.11",
                                      Role="arn:aws:iam::123456789012:role/bench", Handler="probe.stop_idle",
                                      Code={"ZipFile": code}, Timeout=30)["FunctionArn"]
        sm.create_training_job(**job("idle", out, "sleep 300"))
        while sm.describe_training_job(TrainingJobName="idle")["SecondaryStatus"] != "Training":
            time.sleep(0.05)
        d = sm.describe_training_job(TrainingJobName="idle")
        training_at = d["SecondaryStatusTransitions"][-1]["StartTime"].timestamp()
        period, m = 10, 2
        b.c["cloudwatch"].put_metric_alarm(
            AlarmName="idle", Namespace="/aws/sagemaker/TrainingJobs", MetricName="CPUUtilization",
            Dimensions=[{"Name": "Host", "Value": "idle/algo-1"}], Statistic="Average",
            Period=period, EvaluationPeriods=m, DatapointsToAlarm=m, Threshold=5,
            ComparisonOperator="LessThanThreshold", AlarmActions=[stop_fn])
        while True:
            d = sm.describe_training_job(TrainingJobName="idle")
            if d["TrainingJobStatus"] != "InProgress":
                break
            time.sleep(0.1)
        stopping_at = next(t["StartTime"].timestamp() for t in d["SecondaryStatusTransitions"]
                           if t["Status"] == "Stopping") if any(
            t["Status"] == "Stopping" for t in d["SecondaryStatusTransitions"]) else time.time()
        alarm = b.c["cloudwatch"].describe_alarms(AlarmNames=["idle"])["MetricAlarms"][0]
        alarm_at = alarm["StateUpdatedTimestamp"].timestamp()
    finally:
        server.stop()
        server.cleanup()

    def row(name, xs):
        return f"| {name} | {len(xs)} | {pct(xs, 50):.0f} | {pct(xs, 99):.0f} |"

    print("| event latency (ms) | n | p50 | p99 |")
    print("|---|---|---|---|")
    print(row("cold function (status change -> handler)", cold_ms))
    print(row("warm function (status change -> handler)", warm_ms))
    print(row("floor: `python3 -c` running the handler", floor))
    print(f"warm p50 / floor p50: {pct(warm_ms, 50) / pct(floor, 50):.2f}x; "
          f"cold p50 / floor p50: {pct(cold_ms, 50) / pct(floor, 50):.2f}x")
    print(f"throughput: {args.burst} events matched and delivered in {burst_s:.2f} s = "
          f"{args.burst / burst_s:.0f} events/s (PutEvents alone took {put_s:.2f} s)")
    least = period * m
    print(f"alarm detection: Training -> ALARM {alarm_at - training_at:.1f} s, -> job Stopping "
          f"{stopping_at - training_at:.1f} s; the window allows no less than {least} s "
          f"(ratio {(alarm_at - training_at) / least:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
