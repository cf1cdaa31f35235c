"""CloudWatch metrics through the real binary: instance metrics sampled by the agents, training
metrics from MetricDefinitions, and PutMetricData / ListMetrics / GetMetricStatistics /
GetMetricData with the current boto3 (pyenv `python3`, AWS JSON 1.0), accounts kept apart, and
the AWS query protocol (boto3 1.26, AWS CLI v2.9)."""

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import HERE, Server, job_request, wait_for, wait_status
from test_accounts import KEY_B, write_two_accounts

NS = "/aws/sagemaker/TrainingJobs"
AWS_V2 = "/usr/bin/aws"


def cloudwatch(server, calls, keys=None):
    """Runs the calls with boto3 1.43 in a pyenv python3 subprocess; a list of results."""
    env = server.client_env()
    python = shutil.which("python3", path=env.get("PATH"))
    if python is None or os.path.realpath(python).startswith("/usr/bin/"):
        pytest.fail(f"the pyenv python3 is not first on PATH (found {python})")
    req = {"calls": calls}
    if keys:
        req["keys"] = keys
    res = subprocess.run([python, os.path.join(HERE, "clients", "cloudwatch_calls.py")],
                         input=json.dumps(req), env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return json.loads(res.stdout)


def ok(result):
    assert "ok" in result, result
    return result["ok"]


def test_cpu_utilization_follows_a_burst_then_a_sleep(server, sm, tmp_path):
    # One core busy for 5 s, then idle for 5 s.
    # (One line: ContainerEntrypoint members match '.*', which takes no newline.)
    script = ("python3 -c \"exec('import time\\nt = time.time()\\nwhile time.time() - t < 5: "
              "pass\\ntime.sleep(5)')\"")
    sm.create_training_job(**job_request("burn", str(tmp_path), script))
    d = wait_status(sm, "burn")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    start, end = d["TrainingStartTime"].timestamp(), d["TrainingEndTime"].timestamp()
    query = {"Id": "cpu", "MetricStat": {
        "Metric": {"Namespace": NS, "MetricName": "CPUUtilization",
                   "Dimensions": [{"Name": "Host", "Value": "burn/algo-1"}]},
        "Period": 1, "Stat": "Average", "Unit": "Percent"}}
    mem = {"Id": "mem", "MetricStat": {
        "Metric": {"Namespace": NS, "MetricName": "MemoryUtilization",
                   "Dimensions": [{"Name": "Host", "Value": "burn/algo-1"}]},
        "Period": 60, "Stat": "Maximum"}}
    [res, listed] = cloudwatch(server, [
        {"op": "get_metric_data", "args": {"MetricDataQueries": [query, mem],
                                           "StartTime": start - 5, "EndTime": end + 5,
                                           "ScanBy": "TimestampAscending"}},
        {"op": "list_metrics", "args": {"Namespace": NS,
                                        "Dimensions": [{"Name": "Host", "Value": "burn/algo-1"}]}}])
    results = {r["Id"]: r for r in ok(res)["MetricDataResults"]}
    cpu = results["cpu"]["Values"]
    assert len(cpu) >= 6, results["cpu"]
    # Wide margins (the machine is shared): the burst reads high, the sleep after it low.
    busy = [i for i, v in enumerate(cpu) if v > 50]
    assert busy, cpu
    after = cpu[busy[-1] + 1:]
    assert len([v for v in after if v < 30]) >= 2, cpu
    assert 0 < max(results["mem"]["Values"]) <= 100, results["mem"]
    names = {m["MetricName"] for m in ok(listed)["Metrics"]}
    assert {"CPUUtilization", "MemoryUtilization", "DiskUtilization"} <= names, names
    # This machine has no NVML: no GPU datapoints, and the job's log says so once.
    assert "GPUUtilization" not in names
    log = server.cli("logs", "burn").stdout
    assert log.count("no GPU metrics") == 1, log


def test_metric_definitions_become_datapoints_at_their_lines_time(server, sm, tmp_path):
    script = "echo 'loss=0.9'; sleep 1.2; echo 'loss=0.5'; sleep 1.2; echo 'loss=0.25'"
    req = job_request("curve", str(tmp_path), script)
    req["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "train:loss", "Regex": "loss=([0-9.]+)"}]
    sm.create_training_job(**req)
    d = wait_status(sm, "curve")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    final = {m["MetricName"]: m for m in d["FinalMetricDataList"]}
    assert final["train:loss"]["Value"] == 0.25
    start, end = d["TrainingStartTime"].timestamp(), d["TrainingEndTime"].timestamp()
    # As the SageMaker SDK's TrainingJobAnalytics asks (Period 60, Average), and at Period 1.
    args = {"Namespace": NS, "MetricName": "train:loss",
            "Dimensions": [{"Name": "TrainingJobName", "Value": "curve"}],
            "StartTime": start, "EndTime": end + 60, "Statistics": ["Average"]}
    [minute, second] = cloudwatch(server, [
        {"op": "get_metric_statistics", "args": dict(args, Period=60)},
        {"op": "get_metric_statistics", "args": dict(args, Period=1,
                                                     Statistics=["Maximum", "SampleCount"])}])
    points = sorted(ok(second)["Datapoints"], key=lambda p: p["Timestamp"])
    assert [p["Maximum"] for p in points] == [0.9, 0.5, 0.25], points
    assert all(p["SampleCount"] == 1 for p in points)
    # Each at its line's second, inside the training time, in order.
    stamps = [p["Timestamp"] for p in points]
    assert stamps == sorted(set(stamps)) and start - 1 <= stamps[0] and stamps[-1] <= end + 1
    total = sum(p["Average"] for p in ok(minute)["Datapoints"])
    assert len(ok(minute)["Datapoints"]) in (1, 2) and 0.25 <= total <= 1.65


def test_put_list_get_round_trip_and_accounts_are_apart(tmp_path):
    srv = Server(str(tmp_path / "data"))
    os.makedirs(srv.data_dir, exist_ok=True)
    write_two_accounts(srv.data_dir)
    srv.start()
    try:
        now = time.time()
        # Two points in one whole minute, so that Period 60 gives one datapoint.
        base = (now - 120) // 60 * 60 + 1
        dims = [{"Name": "Model", "Value": "resnet"}, {"Name": "Stage", "Value": "eval"}]
        results = cloudwatch(srv, [
            {"op": "put_metric_data", "args": {"Namespace": "Team/Training", "MetricData": [
                {"MetricName": "Latency", "Dimensions": dims, "Timestamp": base,
                 "Values": [10, 20, 30], "Counts": [1, 1, 2], "Unit": "Milliseconds"},
                {"MetricName": "Latency", "Dimensions": dims, "Timestamp": base + 2,
                 "StatisticValues": {"SampleCount": 2, "Sum": 10, "Minimum": 4, "Maximum": 6},
                 "Unit": "Milliseconds", "StorageResolution": 1}]}},
            {"op": "put_metric_data", "args": {"Namespace": "AWS/EC2", "MetricData": [
                {"MetricName": "CPUUtilization", "Value": 1}]}},
            {"op": "list_metrics", "args": {"Namespace": "Team/Training",
                                            "Dimensions": [{"Name": "Stage"}]}},
            {"op": "get_metric_statistics", "args": {
                "Namespace": "Team/Training", "MetricName": "Latency", "Dimensions": dims,
                "StartTime": now - 300, "EndTime": now + 60, "Period": 60,
                "Statistics": ["SampleCount", "Sum", "Minimum", "Maximum", "Average"]}},
            {"op": "get_metric_statistics", "args": {
                "Namespace": "Team/Training", "MetricName": "Latency", "Dimensions": dims,
                "StartTime": now - 300, "EndTime": now + 60, "Period": 60,
                "ExtendedStatistics": ["p50"]}},
            {"op": "get_metric_statistics", "args": {
                "Namespace": "Team/Training", "MetricName": "Latency", "Dimensions": dims,
                "StartTime": now - 300, "EndTime": now + 60, "Period": 7,
                "Statistics": ["Sum"]}},
        ])
        ok(results[0])
        assert results[1]["error"]["Code"] == "InvalidParameterValue", results[1]
        assert results[1]["error"]["Type"] == "Sender", results[1]
        metrics = ok(results[2])["Metrics"]
        assert metrics == [{"Namespace": "Team/Training", "MetricName": "Latency",
                            "Dimensions": dims}], metrics
        [dp] = ok(results[3])["Datapoints"]
        assert (dp["SampleCount"], dp["Sum"], dp["Minimum"], dp["Maximum"]) == (6, 100, 4, 30), dp
        assert abs(dp["Average"] - 100 / 6) < 1e-9 and dp["Unit"] == "Milliseconds", dp
        [ext] = ok(results[4])["Datapoints"]
        # Nearest rank over 5 (x2, the set's average), 10, 20, 30 (x2).
        assert ext["ExtendedStatistics"]["p50"] == 10, ext
        assert results[5]["error"]["Code"] == "InvalidParameterValue", results[5]

        # The second account sees none of it, and its own put stays its own.
        keys_b = {"aws_access_key_id": KEY_B["aws_access_key_id"],
                  "aws_secret_access_key": KEY_B["aws_secret_access_key"]}
        b = cloudwatch(srv, [
            {"op": "list_metrics", "args": {}},
            {"op": "get_metric_statistics", "args": {
                "Namespace": "Team/Training", "MetricName": "Latency", "Dimensions": dims,
                "StartTime": now - 300, "EndTime": now + 60, "Period": 60,
                "Statistics": ["Sum"]}},
            {"op": "put_metric_data", "args": {"Namespace": "B", "MetricData": [
                {"MetricName": "Mine", "Value": 1}]}},
        ], keys=keys_b)
        assert ok(b[0])["Metrics"] == [], b[0]
        assert ok(b[1])["Datapoints"] == [], b[1]
        ok(b[2])
        [a_list] = cloudwatch(srv, [{"op": "list_metrics", "args": {}}])
        assert {m["Namespace"] for m in ok(a_list)["Metrics"]} == {"Team/Training"}
    finally:
        srv.stop()


def test_query_protocol_clients(server, sm, tmp_path):
    """boto3 1.26 and AWS CLI v2.9 speak the query protocol to CloudWatch."""
    cw = server.boto3("cloudwatch")
    now = time.time()
    cw.put_metric_data(Namespace="Old/Client", MetricData=[
        {"MetricName": "m", "Dimensions": [{"Name": "Host", "Value": "a/algo-1"}],
         "Timestamp": now - 10, "Value": 3.5}])
    listed = cw.list_metrics(Namespace="Old/Client")["Metrics"]
    assert listed == [{"Namespace": "Old/Client", "MetricName": "m",
                       "Dimensions": [{"Name": "Host", "Value": "a/algo-1"}]}]
    stats = cw.get_metric_statistics(Namespace="Old/Client", MetricName="m",
                                     Dimensions=[{"Name": "Host", "Value": "a/algo-1"}],
                                     StartTime=now - 60, EndTime=now + 60, Period=60,
                                     Statistics=["Average"])
    assert [p["Average"] for p in stats["Datapoints"]] == [3.5]
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.put_metric_data(Namespace="AWS/X", MetricData=[{"MetricName": "m", "Value": 1}])
    res = subprocess.run(
        [AWS_V2, "--endpoint-url", server.url, "--output", "json", "cloudwatch",
         "get-metric-statistics", "--namespace", "Old/Client", "--metric-name", "m",
         "--dimensions", "Name=Host,Value=a/algo-1", "--start-time", str(int(now - 60)),
         "--end-time", str(int(now + 60)), "--period", "60", "--statistics", "Maximum"],
        env=server.client_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert [p["Maximum"] for p in json.loads(res.stdout)["Datapoints"]] == [3.5]
