"""The AWS SDK for JavaScript v3 (npm @aws-sdk/client-sagemaker, -cloudwatch-logs, -cloudwatch;
scripts/install-js-clients.sh puts them in .deps/js) against the real binary: small node
scripts (tests/e2e/clients/js_sdk.js) that find the server through AWS_ENDPOINT_URL and the
profile, as any JS user would."""

import datetime
import json
import os
import subprocess
import time

import pytest

from conftest import HERE, ROOT, job_request, wait_status

NODE = "/usr/bin/node"
SCRIPT = os.path.join(HERE, "clients", "js_sdk.js")
MODULES = os.environ.get("TY_JS_MODULES") or os.path.join(ROOT, ".deps", "js", "node_modules")
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def js(server, tmp_path, calls):
    """Runs the calls in one node process; returns one {"ok"} / {"error"} per call."""
    if not os.path.isdir(os.path.join(MODULES, "@aws-sdk", "client-sagemaker")):
        pytest.fail(f"the JS SDK is not installed in {MODULES}: run scripts/install-js-clients.sh "
                    "install (scripts/install-deps.sh does)")
    path = tmp_path / f"calls-{time.time()}.json"
    path.write_text(json.dumps(calls))
    env = server.client_env()
    env["TY_JS_MODULES"] = MODULES
    res = subprocess.run([NODE, SCRIPT, str(path)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, f"node {SCRIPT} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(out) == len(calls)
    return out


def ok(entry):
    assert "error" not in entry, entry["error"]
    return entry["ok"]


def iso(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_sagemaker_list_describe_and_paginate(server, sm, tmp_path):
    req = job_request("js-a", str(tmp_path), "echo hello from js-a; echo loss=0.5")
    req["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "loss",
                                                           "Regex": "loss=([0-9.]+)"}]
    sm.create_training_job(**req)
    sm.create_training_job(**job_request("js-b", str(tmp_path), "true"))
    for name in ("js-a", "js-b"):
        wait_status(sm, name, timeout=60)
    listed, described, pages, missing, bad = js(server, tmp_path, [
        {"client": "sagemaker", "op": "ListTrainingJobs",
         "input": {"SortBy": "Name", "SortOrder": "Ascending"}},
        {"client": "sagemaker", "op": "DescribeTrainingJob", "input": {"TrainingJobName": "js-a"}},
        {"client": "sagemaker", "op": "ListTrainingJobs", "input": {"MaxResults": 1},
         "paginate": True},
        {"client": "sagemaker", "op": "DescribeTrainingJob", "input": {"TrainingJobName": "ghost"}},
        {"client": "sagemaker", "op": "ListTrainingJobs", "input": {"MaxResults": 1000}},
    ])
    summaries = ok(listed)["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in summaries] == ["js-a", "js-b"]
    assert all(s["TrainingJobStatus"] == "Completed" for s in summaries)

    d = ok(described)
    assert d["TrainingJobName"] == "js-a" and d["TrainingJobStatus"] == "Completed"
    # Timestamps were parsed into Dates (printed back as ISO strings) and are ordered.
    assert iso(d["CreationTime"]) <= iso(d["TrainingStartTime"]) <= iso(d["TrainingEndTime"])
    assert d["FinalMetricDataList"][0]["MetricName"] == "loss"
    assert d["FinalMetricDataList"][0]["Value"] == 0.5
    assert d["OutputDataConfig"]["KmsKeyId"] == ""
    assert d["EnableNetworkIsolation"] is False

    # The SDK's paginator follows NextToken to the end, one job a page.
    pages = ok(pages)
    assert sorted(s["TrainingJobName"] for p in pages for s in p["TrainingJobSummaries"]) == \
        ["js-a", "js-b"]
    assert len([p for p in pages if p["TrainingJobSummaries"]]) == 2
    assert "NextToken" not in pages[-1]

    assert missing["error"]["name"] == "ValidationException", missing
    assert "Requested resource not found" in missing["error"]["message"]
    assert missing["error"]["status"] == 400 and missing["error"]["fault"] == "client"
    assert bad["error"]["name"] == "ValidationException", bad
    assert "maxResults" in bad["error"]["message"] or "MaxResults" in bad["error"]["message"]


def test_logs_describe_streams_and_get_events(server, sm, tmp_path):
    sm.create_training_job(**job_request(
        "js-logs", str(tmp_path), "for i in 1 2 3 4 5; do echo line $i; done"))
    assert wait_status(sm, "js-logs", timeout=60)["TrainingJobStatus"] == "Completed"
    streams, = js(server, tmp_path, [
        {"client": "logs", "op": "DescribeLogStreams",
         "input": {"logGroupName": LOG_GROUP, "logStreamNamePrefix": "js-logs/",
                   "orderBy": "LogStreamName"}}])
    streams = ok(streams)
    assert "nextToken" not in streams  # the last page has none (the SageMaker SDK loops on it)
    assert len(streams["logStreams"]) == 1, streams
    stream = streams["logStreams"][0]["logStreamName"]
    assert stream.startswith("js-logs/algo-1-")

    pages, missing_group, missing_stream = js(server, tmp_path, [
        # GetLogEvents hands back the same token at the end of a stream: the JS paginator
        # stops on it when asked to (stopOnSameToken), as the AWS docs tell JS users.
        {"client": "logs", "op": "GetLogEvents", "paginate": {"pageSize": 2,
                                                             "stopOnSameToken": True},
         "input": {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}},
        {"client": "logs", "op": "DescribeLogStreams", "input": {"logGroupName": "/no/such"}},
        {"client": "logs", "op": "GetLogEvents",
         "input": {"logGroupName": LOG_GROUP, "logStreamName": "js-logs/algo-9-1"}},
    ])
    pages = ok(pages)
    events = [e for p in pages for e in p["events"]]
    lines = [e["message"] for e in events if e["message"].startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, 6)]
    assert all(len(p["events"]) <= 2 for p in pages)
    assert pages[-1]["events"] == [] and pages[-1]["nextForwardToken"] == \
        pages[-2]["nextForwardToken"]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and all(isinstance(t, int) for t in stamps)
    assert missing_group["error"]["name"] == "ResourceNotFoundException", missing_group
    assert missing_stream["error"]["name"] == "ResourceNotFoundException", missing_stream


def test_cloudwatch_put_and_get_metric_data(server, tmp_path):
    # Both points at one instant on a minute boundary: one 60 s period holds them both.
    at = datetime.datetime.fromtimestamp(int(time.time()) // 60 * 60 - 60, datetime.timezone.utc)
    date = {"$date": at.isoformat()}
    metric = {"Namespace": "JsTest/App", "MetricName": "Latency",
              "Dimensions": [{"Name": "Api", "Value": "predict"}]}
    window = {"StartTime": {"$date": (at - datetime.timedelta(minutes=10)).isoformat()},
              "EndTime": {"$date": (at + datetime.timedelta(minutes=5)).isoformat()}}
    put, data, stats, listed, reserved = js(server, tmp_path, [
        {"client": "cloudwatch", "op": "PutMetricData", "input": {
            "Namespace": "JsTest/App", "MetricData": [
                {"MetricName": "Latency", "Dimensions": metric["Dimensions"], "Timestamp": date,
                 "Value": v, "Unit": "Milliseconds"} for v in (3.0, 5.0)]}},
        {"client": "cloudwatch", "op": "GetMetricData", "input": dict(window, MetricDataQueries=[
            {"Id": q.lower(), "MetricStat": {"Metric": metric, "Period": 60, "Stat": q}}
            for q in ("Average", "Sum", "SampleCount", "Maximum")])},
        {"client": "cloudwatch", "op": "GetMetricStatistics", "input": dict(
            window, Period=60, Statistics=["Minimum", "Maximum"], **metric)},
        {"client": "cloudwatch", "op": "ListMetrics", "input": {"Namespace": "JsTest/App"}},
        {"client": "cloudwatch", "op": "PutMetricData", "input": {
            "Namespace": "AWS/EC2", "MetricData": [{"MetricName": "x", "Value": 1.0}]}},
    ])
    ok(put)
    results = {r["Id"]: r for r in ok(data)["MetricDataResults"]}
    assert {k: r["Values"] for k, r in results.items()} == {
        "average": [4.0], "sum": [8.0], "samplecount": [2.0], "maximum": [5.0]}
    assert iso(results["sum"]["Timestamps"][0]) == at
    assert all(r["StatusCode"] == "Complete" for r in results.values())
    points = ok(stats)["Datapoints"]
    assert [(p["Minimum"], p["Maximum"], iso(p["Timestamp"])) for p in points] == [(3.0, 5.0, at)]
    assert ok(listed)["Metrics"] == [metric]
    assert reserved["error"]["name"] == "InvalidParameterValueException", reserved


def test_cloudwatch_large_put_metric_data_is_gzipped(server, tmp_path):
    """PutMetricData has the requestcompression trait: the JS SDK gzips bodies from 10 KiB up
    (Content-Encoding: gzip), as botocore 1.43 does."""
    at = datetime.datetime.fromtimestamp(int(time.time()) // 60 * 60 - 60, datetime.timezone.utc)
    datums = [{"MetricName": "Hits", "Dimensions": [{"Name": "Shard", "Value": "all"}],
               "Timestamp": {"$date": at.isoformat()}, "Value": float(i % 7), "Unit": "Count"}
              for i in range(300)]
    assert len(json.dumps(datums)) > 20000
    metric = {"Namespace": "JsTest/Bulk", "MetricName": "Hits",
              "Dimensions": [{"Name": "Shard", "Value": "all"}]}
    put, data = js(server, tmp_path, [
        {"client": "cloudwatch", "op": "PutMetricData",
         "input": {"Namespace": "JsTest/Bulk", "MetricData": datums}},
        {"client": "cloudwatch", "op": "GetMetricData", "input": {
            "StartTime": {"$date": (at - datetime.timedelta(minutes=5)).isoformat()},
            "EndTime": {"$date": (at + datetime.timedelta(minutes=5)).isoformat()},
            "MetricDataQueries": [
                {"Id": q.lower(), "MetricStat": {"Metric": metric, "Period": 60, "Stat": q}}
                for q in ("SampleCount", "Sum")]}},
    ])
    ok(put)
    results = {r["Id"]: r["Values"] for r in ok(data)["MetricDataResults"]}
    assert results == {"samplecount": [300.0], "sum": [float(sum(i % 7 for i in range(300)))]}
