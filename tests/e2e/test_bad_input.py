"""Bad requests get the right AWS error type and a clear message, and the server keeps serving."""

import http.client
import json
import os
import urllib.parse

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest

from conftest import Server, job_request, wait_status


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("bad") / "data")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def raw(srv):
    """A client that skips botocore's own checks, so bad values reach the server."""
    session = boto3.session.Session(
        aws_access_key_id=srv.creds["aws_access_key_id"],
        aws_secret_access_key=srv.creds["aws_secret_access_key"], region_name=srv.region)
    return session.client("sagemaker", endpoint_url=srv.url, config=botocore.config.Config(
        parameter_validation=False, retries={"max_attempts": 1}))


@pytest.fixture
def out(srv, tmp_path):
    return str(tmp_path)


@pytest.fixture(autouse=True)
def still_serving(request):
    yield
    if "srv" in request.fixturenames:
        s = request.getfixturevalue("srv")
        assert s.proc.poll() is None, "server died"
        assert "TrainingJobSummaries" in s.boto3().list_training_jobs()


def send(srv, body, target="SageMaker.ListTrainingJobs", content_type="application/x-amz-json-1.1",
         method="POST", path="/", signed=True):
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    if content_type is None:
        del headers["Content-Type"]
    if signed:
        req = botocore.awsrequest.AWSRequest(method=method, url=srv.url + path, data=body,
                                             headers=headers)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(
            srv.creds["aws_access_key_id"], srv.creds["aws_secret_access_key"]),
            "sagemaker", srv.region).add_auth(req)
        headers = dict(req.headers.items())
    u = urllib.parse.urlparse(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        text = res.read().decode()
        hdrs = {k.lower(): v for k, v in res.getheaders()}
    finally:
        conn.close()
    body = json.loads(text)
    assert isinstance(body.get("message"), str) and body["message"], body
    assert hdrs.get("x-amzn-requestid"), hdrs
    assert hdrs.get("x-amzn-errortype") == body["__type"], (hdrs, body)
    return res.status, body


def expect_error(call, code, *fragments, **kw):
    try:
        call(**kw)
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, err
        for f in fragments:
            assert f in err["Message"], (f, err["Message"])
        return err["Message"]
    raise AssertionError(f"{call.__name__} succeeded; expected {code}")


# --- the wire ---------------------------------------------------------------------------------

def test_malformed_json(srv):
    status, body = send(srv, b'{"MaxResults": ')
    assert (status, body["__type"]) == (400, "SerializationException"), body
    assert "JSON" in body["message"]
    status, body = send(srv, b'[1, 2]')
    assert (status, body["__type"]) == (400, "SerializationException"), body


def deep_object(depth, leaf=b"1"):
    return b'{"a":' * depth + leaf + b"}" * depth


def deep_search_expression(depth):
    # {"SubExpressions": [{"SubExpressions": [ ... {} ... ]}]}
    return b'{"SubExpressions":[' * depth + b"{}" + b"]}" * depth


@pytest.mark.parametrize("depth", [65, 10_000, 20_000, 150_000])
def test_deeply_nested_list_training_jobs_body_is_refused(srv, depth):
    # Issue 10: nested 20,000 deep (about 100 KB) under an unknown member, this body overflowed
    # the server's stack and killed it.
    status, body = send(srv, b'{"Unknown":' + deep_object(depth) + b"}")
    assert (status, body["__type"]) == (400, "SerializationException"), body
    assert "deeper than 64 levels" in body["message"], body["message"]


@pytest.mark.parametrize("depth", [32, 10_000, 20_000])
def test_deeply_nested_search_sub_expressions_are_refused(srv, depth):
    status, body = send(srv, b'{"Resource":"TrainingJob","SearchExpression":' +
                        deep_search_expression(depth) + b"}", target="SageMaker.Search")
    assert (status, body["__type"]) == (400, "SerializationException"), body
    assert "deeper than 64 levels" in body["message"], body["message"]


def test_nesting_within_the_limit_is_still_served(raw):
    # 20 levels of SubExpressions are 42 JSON levels: parsed, validated and searched as before.
    expression = {"Filters": [{"Name": "TrainingJobName", "Operator": "Equals", "Value": "none"}]}
    for _ in range(20):
        expression = {"SubExpressions": [expression]}
    assert raw.search(Resource="TrainingJob", SearchExpression=expression)["Results"] == []


def test_wrong_content_type(srv):
    status, body = send(srv, b"{}", content_type="text/plain")
    assert status == 400 and body["__type"] == "SerializationException", body
    assert "Content-Type" in body["message"] and "application/x-amz-json-1.1" in body["message"]


def test_body_over_the_limit(srv):
    big = json.dumps({"NameContains": "x" * (2 * 1024 * 1024)}).encode()
    status, body = send(srv, big)
    assert status == 413, body
    assert body["__type"] == "SerializationException", body
    assert "1048576" in body["message"] or "1 MiB" in body["message"], body["message"]


def test_unknown_operations(srv):
    for target in ("SageMaker.Nope", "Foo.Bar", "SageMaker.CreateEndpoint"):
        status, body = send(srv, b"{}", target=target)
        assert (status, body["__type"]) == (400, "UnknownOperationException"), body
        assert target in body["message"], body["message"]
    status, body = send(srv, b"{}", target=None)
    assert (status, body["__type"]) == (400, "UnknownOperationException"), body
    assert "X-Amz-Target" in body["message"]


def test_get_root_is_an_aws_error(srv):
    status, body = send(srv, b"", method="GET", target=None, content_type=None, signed=False)
    assert 400 <= status < 500 and body["__type"].endswith("Exception"), body
    status, body = send(srv, b"", method="GET", target=None, content_type=None)
    assert 400 <= status < 500 and body["__type"] == "UnknownOperationException", body
    status, body = send(srv, b"{}", path="/v1/jobs")
    assert 400 <= status < 500 and body["__type"] == "UnknownOperationException", body


# --- CreateTrainingJob validation ----------------------------------------------------------------

def test_name_pattern(raw, out):
    expect_error(raw.create_training_job, "ValidationException",
                 "Value 'bad_name!' at 'trainingJobName' failed to satisfy constraint: "
                 "Member must satisfy regular expression pattern",
                 **job_request("bad_name!", out, "true"))
    expect_error(raw.create_training_job, "ValidationException",
                 "Member must have length less than or equal to 63",
                 **job_request("a" * 64, out, "true"))


def test_duplicate_name(srv, raw, out):
    arn = raw.create_training_job(**job_request("dup", out, "true"))["TrainingJobArn"]
    expect_error(raw.create_training_job, "ResourceInUse",
                 "Training job names must be unique within an AWS account and region, and a "
                 f"training job with this name already exists ({arn})",
                 **job_request("dup", out, "true"))
    wait_status(raw, "dup", timeout=60)


def test_too_many_tags_and_hyperparameters(raw, out):
    msg = expect_error(raw.create_training_job, "ValidationException", "tags", **job_request(
        "tags51", out, "true", Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]))
    assert "50" in msg, msg
    msg = expect_error(raw.create_training_job, "ValidationException", "hyperParameters",
                       **job_request("hp101", out, "true",
                                     HyperParameters={f"h{i}": "1" for i in range(101)}))
    assert "100" in msg, msg


def test_spot_rules(raw, out):
    req = job_request("nospot", out, "true")
    req["StoppingCondition"] = {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120}
    expect_error(raw.create_training_job, "ValidationException",
                 "Invalid MaxWaitTimeInSeconds. It is only supported when "
                 "EnableManagedSpotTraining is set to true", **req)
    req = job_request("spotshort", out, "true", EnableManagedSpotTraining=True)
    req["StoppingCondition"] = {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 60}
    expect_error(raw.create_training_job, "ValidationException", "MaxWaitTimeInSeconds",
                 "MaxRuntimeInSeconds", **req)


def channel(name, uri):
    return [{"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri}}}]


def test_channel_names(raw, out):
    expect_error(raw.create_training_job, "ValidationException", "channelName",
                 "regular expression pattern",
                 **job_request("slash", out, "true", InputDataConfig=channel("a/b", "file://" + out)))
    expect_error(raw.create_training_job, "ValidationException", "'..'",
                 **job_request("dots", out, "true", InputDataConfig=channel("..", "file://" + out)))


def test_channel_uris_outside_the_roots(raw, out, tmp_path):
    expect_error(raw.create_training_job, "ValidationException", "/etc", "outside",
                 **job_request("etc", out, "true", InputDataConfig=channel("train", "file:///etc")))
    sneaky = f"file://{out}/../../../../../../etc"
    expect_error(raw.create_training_job, "ValidationException", "S3Uri",
                 **job_request("dotdot", out, "true", InputDataConfig=channel("train", sneaky)))
    link = tmp_path / "link-to-etc"
    os.symlink("/etc", link)
    expect_error(raw.create_training_job, "ValidationException", "S3Uri",
                 **job_request("symlink", out, "true",
                               InputDataConfig=channel("train", f"file://{link}")))
    expect_error(raw.create_training_job, "ValidationException", "S3OutputPath",
                 **job_request("outetc", "/etc", "true"))
    assert raw.list_training_jobs(NameContains="etc")["TrainingJobSummaries"] == []


def test_https_and_bucketless_uris_are_refused(raw, out):
    expect_error(raw.create_training_job, "ValidationException", "https:// URIs are not supported",
                 **job_request("httpschan", out, "true",
                               InputDataConfig=channel("train", "https://b.s3.amazonaws.com/p")))
    req = job_request("s3out", out, "true")
    req["OutputDataConfig"] = {"S3OutputPath": "s3:///out"}  # no bucket: the model's pattern
    expect_error(raw.create_training_job, "ValidationException", "s3OutputPath", **req)


def test_unsupported_features_are_rejected_by_name(raw, out):
    vpc = job_request("vpc", out, "true",
                      VpcConfig={"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]})
    expect_error(raw.create_training_job, "ValidationException", "VpcConfig", **vpc)
    groups = job_request("groups", out, "true")
    groups["ResourceConfig"] = {"InstanceGroups": [
        {"InstanceType": "ml.m5.large", "InstanceCount": 1, "InstanceGroupName": "g1"}],
        "VolumeSizeInGB": 1}
    expect_error(raw.create_training_job, "ValidationException", "InstanceGroups", **groups)
    pipe = job_request("pipe", out, "true")
    pipe["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe"
    expect_error(raw.create_training_job, "ValidationException", "Pipe", **pipe)
    retry = job_request("retry", out, "true", RetryStrategy={"MaximumRetryAttempts": 31})
    expect_error(raw.create_training_job, "ValidationException", "maximumRetryAttempts", **retry)
    assert raw.list_training_jobs()["TrainingJobSummaries"] == [] or all(
        s["TrainingJobName"] not in ("vpc", "groups", "pipe", "retry")
        for s in raw.list_training_jobs()["TrainingJobSummaries"])


def test_checkpoint_config_is_accepted(raw, out):
    os.makedirs(os.path.join(out, "ckpt"))
    req = job_request("ckpt", out, "true",
                      CheckpointConfig={"S3Uri": f"file://{out}/ckpt"})
    raw.create_training_job(**req)
    d = wait_status(raw, "ckpt", timeout=60)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["CheckpointConfig"]["S3Uri"] == f"file://{out}/ckpt"


def test_missing_required_member(raw, out):
    req = job_request("norole", out, "true")
    del req["RoleArn"]
    expect_error(raw.create_training_job, "ValidationException",
                 "Value null at 'roleArn' failed to satisfy constraint: Member must not be null",
                 **req)


def test_wrong_json_type(raw, out):
    req = job_request("strcount", out, "true")
    req["ResourceConfig"]["InstanceCount"] = "2"
    msg = expect_error(raw.create_training_job, "SerializationException", **req)
    assert "InstanceCount" in msg or "instanceCount" in msg, msg


def test_undecodable_path_gets_an_aws_error_and_the_server_lives(server):
    # A path that decodes to invalid UTF-8 once crashed the error renderer.
    import http.client
    from urllib.parse import urlparse
    u = urlparse(server.url)
    for path in ("/%ff", "/%c3%28?x=%ff"):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 404
        assert body["__type"] == "UnknownOperationException"
        conn.close()
    assert server.proc.poll() is None
    server.boto3().list_training_jobs()


# --- F9: values that used to be cut short or leak server paths (issue 10) ---------------------

@pytest.mark.parametrize("member,value,fragment", [
    ("Environment", {"MODE": "te\x00st"}, "Environment value of 'MODE' has a NUL character"),
    ("HyperParameters", {"epochs": "1\x00"}, "HyperParameters value of 'epochs' has a NUL"),
    ("HyperParameters", {"a\x00b": "1"}, "HyperParameters has a key with a NUL character"),
])
def test_nul_in_environment_and_hyperparameters_is_refused(raw, out, member, value, fragment):
    # A NUL used to reach the training process and cut the value short there.
    req = job_request("nul-" + member.lower(), out, "true")
    req[member] = value
    msg = expect_error(raw.create_training_job, "ValidationException", **req)
    assert fragment in msg, msg


def test_other_control_characters_in_hyperparameters_follow_the_model(raw, out):
    req = job_request("newline-hp", out, "true")
    req["HyperParameters"] = {"epochs": "1\n2"}
    expect_error(raw.create_training_job, "ValidationException", **req)


def test_failure_reason_shows_no_server_path(tmp_path):
    # The script replaces its model dir by a file, so packing the artifacts fails on the host
    # side; the reason used to name <data-dir>/jobs/<account>/<job>/attempt-1/algo-1/model.
    # Only an unsandboxed job can do that (in the sandbox /opt/ml is not the job's to change),
    # hence a server of its own with isolation none.
    srv = Server(str(tmp_path / "data"), extra_args=["--isolation", "none"]).start()
    try:
        _failure_reason_shows_no_server_path(srv, srv.boto3(), str(tmp_path / "out"))
    finally:
        srv.stop()


def _failure_reason_shows_no_server_path(srv, raw, out):
    name = "failure-path"
    raw.create_training_job(**job_request(
        name, out, 'rm -rf "$SM_MODEL_DIR" && echo x > "$SM_MODEL_DIR"'))
    d = wait_status(raw, name)
    assert d["TrainingJobStatus"] == "Failed", d
    reason = d["FailureReason"]
    assert "/opt/ml/model" in reason, reason
    assert srv.data_dir not in reason and os.path.realpath(srv.data_dir) not in reason, reason
    assert "attempt-1" not in reason and "/jobs/" not in reason, reason
