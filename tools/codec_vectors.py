#!/usr/bin/env python3
"""Writes request test vectors for the C++ protocol codecs, serialized by botocore itself.

Run it under each botocore generation (Debian's /usr/bin/python3 has 1.29, the pyenv python3
has 1.43); each run writes tests/api/fixtures/codecs/requests-botocore-<major.minor>.json:
a list of {name, protocol, model, operation, request: {method, path, query, headers, body_b64},
expected}. `expected` is the document (api/protocol.h) the request carries: the params with
datetimes as epoch seconds (at the precision the protocol's wire keeps) and bytes as base64.
tests/api/codecs_test.cc decodes every request with the C++ codec and compares.

Models: the botocore's own CloudWatch, Logs and Lambda models (forced into each protocol they
list) and tests/api/fixtures/codecs/synthetic-model.json for the shape kinds they lack.
smithy-rpc-v2-cbor needs botocore >= 1.42; older ones skip it.

usage: python3 tools/codec_vectors.py   (standard library + botocore only)
"""

import base64
import calendar
import copy
import datetime
import json
import os
import sys

import botocore
import botocore.awsrequest
import botocore.loaders
import botocore.model
import botocore.serialize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "api", "fixtures", "codecs")
VERSION = tuple(int(p) for p in botocore.__version__.split(".")[:2])

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
T_MS = datetime.datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)  # milliseconds on the wire
T_OLD = datetime.datetime(1999, 12, 31, 23, 59, 59, 123000, tzinfo=UTC)


def load_real(service):
    loader = botocore.loaders.Loader()
    return loader.load_service_model(service, "service-2")


def load_synthetic():
    with open(os.path.join(FIXTURES, "synthetic-model.json"), encoding="utf-8") as f:
        return json.load(f)


def with_protocol(model_dict, protocol):
    m = copy.deepcopy(model_dict)
    m["metadata"]["protocol"] = protocol
    m["metadata"]["protocols"] = [protocol]
    return botocore.model.ServiceModel(m)


def epoch(dt, precise):
    secs = calendar.timegm(dt.timetuple())
    if not precise or dt.microsecond == 0:
        return secs
    return secs + dt.microsecond / 1e6


def document(value, shape, protocol, location=None):
    """The document form of a botocore params value of `shape`."""
    t = shape.type_name
    if t == "structure":
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            m = shape.members[k]
            out[k] = document(v, m, protocol, m.serialization.get("location"))
        return out
    if t == "list":
        return [document(e, shape.member, protocol, location) for e in value]
    if t == "map":
        return {k: document(v, shape.value, protocol, location) for k, v in value.items()}
    if t == "timestamp":
        # query and rest-json query strings carry ISO-8601 with microseconds; JSON, CBOR,
        # rest-json bodies (epoch seconds) and headers (RFC 822) whole seconds.
        precise = protocol == "query" or (protocol == "rest-json" and location == "querystring")
        return epoch(value, precise)
    if t == "blob":
        raw = value if isinstance(value, bytes) else value.encode()
        return base64.b64encode(raw).decode()
    return value


def wire(model, protocol, operation, params):
    op = model.operation_model(operation)
    serializer = botocore.serialize.create_serializer(protocol, include_validation=True)
    request = serializer.serialize_to_request(params, op)
    botocore.awsrequest.prepare_request_dict(request, endpoint_url="https://example.com")
    prepared = botocore.awsrequest.create_request_object(request).prepare()
    url = prepared.url[len("https://example.com"):]
    path, _, query = url.partition("?")
    body = prepared.body or b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()
               if k.lower() not in ("user-agent", "content-length")}
    return {"method": prepared.method, "path": path, "query": query, "headers": headers,
            "body_b64": base64.b64encode(body).decode()}


# --- the cases -----------------------------------------------------------------------------

DIMS = [{"Name": "Host", "Value": "job/algo-1"}, {"Name": "Space", "Value": "a b&c=d+é"}]

CLOUDWATCH = [
    ("put-metric-data", "PutMetricData", {
        "Namespace": "/aws/sagemaker/TrainingJobs",
        "MetricData": [
            {"MetricName": "CPUUtilization", "Dimensions": DIMS, "Timestamp": T_MS,
             "Value": 12.5, "Unit": "Percent", "StorageResolution": 1},
            {"MetricName": "loss", "Timestamp": T0, "Values": [0.1, 1e-7, 3.0, -2.5e300],
             "Counts": [1.0, 2.0, 3.0, 4.0]},
            {"MetricName": "stats", "StatisticValues": {"SampleCount": 3.0, "Sum": 6.0,
                                                        "Minimum": 1.0, "Maximum": 3.0}}]}),
    ("get-metric-data", "GetMetricData", {
        "MetricDataQueries": [
            {"Id": "m1", "MetricStat": {
                "Metric": {"Namespace": "ns", "MetricName": "CPUUtilization",
                           "Dimensions": DIMS[:1]},
                "Period": 1, "Stat": "p99.9", "Unit": "Percent"}, "ReturnData": True},
            {"Id": "e1", "Expression": "m1 * 2", "Label": "double", "ReturnData": False}],
        "StartTime": T_OLD, "EndTime": T_MS, "ScanBy": "TimestampDescending",
        "MaxDatapoints": 100800, "NextToken": "tok/+="}),
    ("get-metric-statistics", "GetMetricStatistics", {
        "Namespace": "ns", "MetricName": "m", "Dimensions": DIMS, "StartTime": T0,
        "EndTime": T_MS, "Period": 60, "Statistics": ["Average", "Maximum"],
        "ExtendedStatistics": ["p90"], "Unit": "Seconds"}),
    ("list-metrics", "ListMetrics", {
        "Namespace": "ns", "Dimensions": [{"Name": "Host"}], "RecentlyActive": "PT3H"}),
    ("put-metric-alarm", "PutMetricAlarm", {
        "AlarmName": "gpu", "ActionsEnabled": False, "AlarmActions": ["arn:a", "arn:b"],
        "MetricName": "GPUUtilization", "Namespace": "ns", "Statistic": "Average",
        "Dimensions": DIMS, "Period": 60, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
        "Threshold": 80.5, "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "breaching", "Tags": [{"Key": "team", "Value": "ml"}]}),
    ("describe-alarms-empty-list", "DescribeAlarms", {"AlarmNames": [], "MaxRecords": 5}),
]
if VERSION >= (1, 40):
    # EntityMetricData (maps in a query request from a real model) is newer than 1.29.
    CLOUDWATCH.append(("put-metric-data-entity", "PutMetricData", {
        "Namespace": "ns", "StrictEntityValidation": True,
        "EntityMetricData": [{
            "Entity": {"KeyAttributes": {"Type": "Service", "Name": "trainer"},
                       "Attributes": {"a": "1", "b c": "2"}},
            "MetricData": [{"MetricName": "m", "Value": 1.0, "Timestamp": T0}]}]}))

LOGS = [
    ("put-log-events", "PutLogEvents", {
        "logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamName": "job/algo-1-1767225600",
        "logEvents": [{"timestamp": 1767225600123, "message": "epoch 1 loss=0.5"},
                      {"timestamp": 1767225600124, "message": "ünïcode \"quoted\" \\ tab\t"}]}),
    ("get-log-events", "GetLogEvents", {
        "logGroupName": "g", "logStreamName": "s", "startTime": 0, "endTime": 2**53,
        "startFromHead": True, "limit": 10000, "nextToken": "f/00000000000000000001"}),
    ("create-log-group", "CreateLogGroup", {"logGroupName": "g", "tags": {"a": "1", "b": ""}}),
    ("filter-log-events", "FilterLogEvents", {
        "logGroupName": "g", "logStreamNames": ["a", "b"], "filterPattern": "?ERROR ?WARN",
        "interleaved": False}),
]

LAMBDA = [
    ("create-function", "CreateFunction", {
        "FunctionName": "gov", "Runtime": "python3.11", "Role": "arn:aws:iam::123456789012:role/r",
        "Handler": "app.handler", "Code": {"ZipFile": b"PK\x03\x04\x00\xff binary"},
        "Timeout": 30, "MemorySize": 256, "Publish": True,
        "Environment": {"Variables": {"A1": "1", "B_2": "x y"}},
        "Tags": {"team": "ml"}, "Architectures": ["x86_64"]}),
    ("invoke", "Invoke", {
        "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:gov",
        "InvocationType": "Event", "LogType": "Tail", "ClientContext": "eyJhIjoxfQ==",
        "Payload": b'{"detail": {"x": 1}}', "Qualifier": "$LATEST"}),
    ("list-functions", "ListFunctions", {"MaxItems": 50, "Marker": "m/+ x"}),
    ("untag-resource", "UntagResource", {
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:gov",
        "TagKeys": ["a", "b c"]}),
    ("remove-permission", "RemovePermission", {
        "FunctionName": "gov", "StatementId": "s-1", "RevisionId": "r1"}),
    ("get-function", "GetFunction", {"FunctionName": "gov", "Qualifier": "7"}),
    ("update-function-configuration", "UpdateFunctionConfiguration", {
        "FunctionName": "gov", "Timeout": 900, "Environment": {"Variables": {}}}),
]

ITEM = {"Name": "i1", "Values": [1.5, -0.0, 1e-300], "Meta": {"k": "v", "e": ""},
        "Stamp": T_MS}
PUT_THINGS = {
    "ThingName": "thing 1/ü", "Count": -2147483648, "Big": 9007199254740993, "Ratio": 0.1,
    "Small": 1.5, "Flag": False, "When": T_MS, "Data": b"\x00\x01\xfe\xff",
    "Tags": ["a", "", "c&d=e"], "Longs": [0, -1, 2**40], "Stamps": [T0, T_MS, T_OLD],
    "Items": [ITEM, {"Name": "i2"}], "Named": ["x", "y"], "Flat": ["f1", "f2", "f3"],
    "FlatNames": ["n1"], "NestedLists": [["a", "b"], [], ["c"]],
    "Labels": {"k1": "v1", "k 2": "v&2"}, "Attributes": {"DisplayName": "d", "Policy": "{}"},
    "FlatMap": {"x": 1.25, "y": -3.0}, "Groups": {"g1": ["a", "b"], "g2": []},
    "ByName": {"first": ITEM},
    "Nested": {"Flag": True, "Inner": {"Deep": [["deep"]], "Stamp": T_OLD, "Data": b"raw",
                                       "Count": 7}},
    "Renamed": "renamed value", "Member": ["m1", "m2"],
}
SYNTHETIC = [
    ("put-things", "PutThings", PUT_THINGS),
    ("put-things-minimal", "PutThings", {"ThingName": "t"}),
    ("forget-thing", "ForgetThing", {"ThingName": "t", "Reason": "gone"}),
]
SYNTHETIC_REST = [
    ("get-thing", "GetThing", {
        "ThingName": "t:1", "Path": "a/b c/d%", "Limit": 10, "After": T_MS, "Enabled": True,
        "Filters": ["x", "y z"], "Extra": {"p": "1", "q": "two"}, "Token": "tok",
        "Since": T0, "Retries": 3, "Kinds": ["k1", "k2"], "Meta": {"owner": "me"}}),
    ("upload-thing", "UploadThing", {"ThingName": "t", "Kind": "zip",
                                     "Body": b"\x00raw body\xff"}),
    ("download-thing", "DownloadThing", {"ThingName": "t"}),
]

# The 1.29 CloudWatch model is query only; its JSON and CBOR need a newer model's targetPrefix.
PLAN = [
    ("cloudwatch", load_real("cloudwatch"), CLOUDWATCH,
     ["query", "json", "smithy-rpc-v2-cbor"] if VERSION >= (1, 40) else ["query"]),
    ("logs", load_real("logs"), LOGS, ["json"]),
    ("lambda", load_real("lambda"), LAMBDA, ["rest-json"]),
    ("synthetic", load_synthetic(), SYNTHETIC, ["query", "json", "smithy-rpc-v2-cbor",
                                                "rest-json"]),
    ("synthetic", load_synthetic(), SYNTHETIC_REST, ["rest-json"]),
]


def main():
    vectors = []
    for model_name, model_dict, cases, protocols in PLAN:
        for protocol in protocols:
            if protocol == "smithy-rpc-v2-cbor" and VERSION < (1, 40):
                continue
            model = with_protocol(model_dict, protocol)
            for name, operation, params in cases:
                op = model.operation_model(operation)
                vectors.append({
                    "name": f"{model_name}/{protocol}/{name}",
                    "protocol": protocol, "model": model_name, "operation": operation,
                    "request": wire(model, protocol, operation, params),
                    "expected": document(params, op.input_shape, protocol),
                })
    out = os.path.join(FIXTURES, f"requests-botocore-{VERSION[0]}.{VERSION[1]}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"botocore": botocore.__version__, "vectors": vectors}, f, indent=1,
                  sort_keys=True, ensure_ascii=True)
        f.write("\n")
    print(f"botocore {botocore.__version__}: wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    sys.exit(main())
