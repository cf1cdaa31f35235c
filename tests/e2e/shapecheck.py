"""Checks a parsed botocore response against the operation's output shape.

End-to-end tests call `check_output(client, "DescribeTrainingJob", response)` and assert the
result is empty. The shape comes from the client's own service model
(client.meta.service_model), so the same test run under Debian's botocore 1.29 and a current
botocore checks Trainyard against both model generations.

Standard library + botocore only; works with both generations (it uses only Shape.type_name,
.members, .required_members, .member, .key, .value, .enum and .metadata).
"""

import datetime
import sys

_NUMERIC_KINDS = {
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
}


def check_output(client, operation_name, response_dict):
    """Returns violations ("<path>: <problem>") of `response_dict` against the output shape."""
    op = client.meta.service_model.operation_model(operation_name)
    response = {k: v for k, v in response_dict.items() if k != "ResponseMetadata"}
    if op.output_shape is None:
        return [f"{k}: unexpected member (operation has no output)" for k in sorted(response)]
    problems = []
    _check(op.output_shape, response, "", problems)
    return problems


def check_raw(client, operation_name, body):
    """Like check_output, but for the raw JSON body the server sent (before botocore parsed
    it): timestamps are JSON numbers, and members the parser would silently drop are caught."""
    op = client.meta.service_model.operation_model(operation_name)
    if op.output_shape is None:
        return [] if body in ({}, None) else [f"{k}: unexpected member (operation has no output)"
                                             for k in sorted(body)]
    problems = []
    _check(op.output_shape, body, "", problems, raw=True)
    return problems


def _join(path, leaf):
    return f"{path}.{leaf}" if path else leaf


def _check(shape, value, path, problems, raw=False):
    where = path or "<response>"
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected structure, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"{_join(path, name)}: required member missing")
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                problems.append(f"{_join(path, name)}: unknown member")
            elif item is not None:
                _check(member, item, _join(path, name), problems, raw)
        return
    if kind == "list":
        if not isinstance(value, list):
            problems.append(f"{where}: expected list, got {type(value).__name__}")
            return
        _check_size(meta, len(value), where, "items", problems)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems, raw)
        return
    if kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected map, got {type(value).__name__}")
            return
        _check_size(meta, len(value), where, "entries", problems)
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key {key!r}>", problems, raw)
            _check(shape.value, item, f"{path}[{key!r}]", problems, raw)
        return
    if kind == "timestamp" and raw:
        # AWS JSON 1.1 sends epoch seconds as a number.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected epoch seconds, got {type(value).__name__}")
        return
    if kind == "timestamp":
        if not isinstance(value, datetime.datetime):
            problems.append(f"{where}: expected datetime, got {type(value).__name__}")
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected bool, got {type(value).__name__}")
        return
    if kind in _NUMERIC_KINDS:
        if isinstance(value, bool) or not isinstance(value, _NUMERIC_KINDS[kind]):
            problems.append(f"{where}: expected {kind}, got {type(value).__name__}")
            return
        if "min" in meta and value < meta["min"]:
            problems.append(f"{where}: {value} < min {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where}: {value} > max {meta['max']}")
        return
    if kind == "blob":
        if not isinstance(value, (bytes, bytearray)):
            problems.append(f"{where}: expected bytes, got {type(value).__name__}")
        return
    if kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected str, got {type(value).__name__}")
            return
        enum = getattr(shape, "enum", None) or meta.get("enum")
        if enum and value not in enum:
            problems.append(f"{where}: {value!r} not in enum of {shape.name}")
        _check_size(meta, len(value), where, "chars", problems)
        return
    problems.append(f"{where}: shape type {kind} not checked")


def _check_size(meta, size, where, unit, problems):
    if "min" in meta and size < meta["min"]:
        problems.append(f"{where}: {size} {unit} < min {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{where}: {size} {unit} > max {meta['max']}")


def _self_test():
    import botocore
    import botocore.session

    client = botocore.session.get_session().create_client(
        "sagemaker", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing")
    now = datetime.datetime.now(datetime.timezone.utc)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/mnist-1"
    good = {
        "TrainingJobName": "mnist-1", "TrainingJobArn": arn,
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/out/mnist-1/output/model.tar.gz"},
        "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
        "HyperParameters": {"epochs": "10"},
        "AlgorithmSpecification": {"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": now, "TrainingStartTime": now, "TrainingEndTime": now,
        "LastModifiedTime": now,
        "SecondaryStatusTransitions": [{"Status": "Starting", "StartTime": now,
                                        "EndTime": now, "StatusMessage": "Starting"}],
        "FinalMetricDataList": [{"MetricName": "loss", "Value": 0.5, "Timestamp": now}],
        "EnableNetworkIsolation": False, "TrainingTimeInSeconds": 12,
        "BillableTimeInSeconds": 12,
        "ResponseMetadata": {"RequestId": "r", "HTTPStatusCode": 200},
    }
    problems = check_output(client, "DescribeTrainingJob", good)
    assert problems == [], problems

    bad = dict(good)
    del bad["TrainingJobArn"]
    bad["TrainingJobStatus"] = "Running"
    bad["CreationTime"] = "2024-01-01T00:00:00Z"
    bad["TrainingTimeInSeconds"] = "12"
    bad["EnableNetworkIsolation"] = 1
    bad["TrainingJobName"] = "x" * 64
    bad["Bogus"] = 1
    bad["SecondaryStatusTransitions"] = [{"Status": "Starting"}]
    problems = check_output(client, "DescribeTrainingJob", bad)
    expected = [
        "TrainingJobArn: required member missing",
        "TrainingJobStatus: 'Running' not in enum of TrainingJobStatus",
        "CreationTime: expected datetime, got str",
        "TrainingTimeInSeconds: expected integer, got str",
        "EnableNetworkIsolation: expected bool, got int",
        "TrainingJobName: 64 chars > max 63",
        "Bogus: unknown member",
        "SecondaryStatusTransitions[0].StartTime: required member missing",
    ]
    assert sorted(problems) == sorted(expected), problems

    tags = {"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}
    assert check_output(client, "ListTags", tags) == ["Tags: 51 items > max 50"]
    assert check_output(client, "StopTrainingJob", {"ResponseMetadata": {}}) == []
    assert check_output(client, "ListTrainingJobs", {}) == [
        "TrainingJobSummaries: required member missing"]
    print(f"shapecheck self-test passed (botocore {botocore.__version__})")


if __name__ == "__main__":
    _self_test()
    sys.exit(0)
