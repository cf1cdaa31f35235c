"""The training-job API surface through boto3 1.26: create/describe/list/search/stop/delete/tags,
with every response checked against the client's own output shapes."""

import datetime
import http.client
import json
import math
import os
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import Server, job_request, wait_for, wait_status
import shapecheck

UTC = datetime.timezone.utc
SPIN = "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done"  # runs until stopped


def check_shape(sm, op, resp):
    problems = shapecheck.check_output(sm, op, resp)
    assert problems == [], (op, problems)
    return resp


def error_of(call, *args, **kw):
    try:
        call(*args, **kw)
    except Exception as e:  # botocore.exceptions.ClientError
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    raise AssertionError(f"{call} succeeded; expected an error")


def raw_call(server, op, body, creds=None):
    """A signed AWS JSON 1.1 call, for operations boto3 1.26 does not model (DeleteTrainingJob)."""
    creds = creds or server.creds
    data = json.dumps(body).encode()
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=server.url + "/", data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"SageMaker.{op}"})
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"]),
        "sagemaker", server.region).add_auth(req)
    u = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("POST", "/", body=data, headers=dict(req.headers.items()))
        res = conn.getresponse()
        text = res.read().decode()
        return res.status, (json.loads(text) if text.strip() else {})
    finally:
        conn.close()


def names(summaries):
    return [s["TrainingJobName"] for s in summaries]


# ---------------------------------------------------------------------------------------------
# A module-wide server with five jobs in four statuses, created in two waves around T_MID.

METRICS = [{"Name": "validation:acc", "Regex": "acc=([0-9.]+)"}]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    srv = Server(str(tmp / "data")).start()
    sm = srv.boto3()
    out = str(tmp)

    def create(name, command, acc_tag, lr):
        req = job_request(name, out, command, HyperParameters={"lr": lr, "epochs": "2"},
                          Tags=[{"Key": "team", "Value": acc_tag}] if acc_tag else [])
        req["AlgorithmSpecification"]["MetricDefinitions"] = METRICS
        check_shape(sm, "CreateTrainingJob", sm.create_training_job(**req))

    try:
        create("alpha-done", "echo acc=0.9", "a", "0.1")
        create("beta-fail", "echo acc=0.3; exit 1", "b", "0.2")
        for n in ("alpha-done", "beta-fail"):
            wait_status(sm, n, timeout=60)
        t_mid = math.ceil(time.time() + 0.05)
        while time.time() < t_mid + 0.1:
            time.sleep(0.05)
        create("gamma-done", "echo acc=0.5", "a", "0.1")
        create("delta-run", SPIN, None, "0.3")
        create("epsilon-stop", SPIN, "b", "0.3")
        wait_status(sm, "gamma-done", timeout=60)
        check_shape(sm, "StopTrainingJob", sm.stop_training_job(TrainingJobName="epsilon-stop"))
        wait_status(sm, "epsilon-stop", timeout=60)
        statuses = {n: sm.describe_training_job(TrainingJobName=n)["TrainingJobStatus"]
                    for n in ("alpha-done", "beta-fail", "gamma-done", "delta-run", "epsilon-stop")}
        assert statuses == {"alpha-done": "Completed", "beta-fail": "Failed",
                            "gamma-done": "Completed", "delta-run": "InProgress",
                            "epsilon-stop": "Stopped"}, statuses
        yield srv, sm, datetime.datetime.fromtimestamp(t_mid, UTC)
    finally:
        srv.stop()


ALL = {"alpha-done", "beta-fail", "gamma-done", "delta-run", "epsilon-stop"}
CREATION_ORDER = ["alpha-done", "beta-fail", "gamma-done", "delta-run", "epsilon-stop"]


def listed(sm, **kw):
    resp = check_shape(sm, "ListTrainingJobs", sm.list_training_jobs(MaxResults=100, **kw))
    return resp["TrainingJobSummaries"]


def test_describe_and_list_shapes(fleet):
    srv, sm, _ = fleet
    for n in ALL:
        d = check_shape(sm, "DescribeTrainingJob", sm.describe_training_job(TrainingJobName=n))
        assert d["TrainingJobName"] == n
        assert d["HyperParameters"]["epochs"] == "2"
    summaries = listed(sm)
    assert set(names(summaries)) == ALL
    by_name = {s["TrainingJobName"]: s for s in summaries}
    assert "TrainingEndTime" in by_name["alpha-done"]
    assert "TrainingEndTime" not in by_name["delta-run"]
    assert by_name["epsilon-stop"]["TrainingJobStatus"] == "Stopped"


def test_list_filters(fleet):
    _, sm, t_mid = fleet
    assert set(names(listed(sm, NameContains="done"))) == {"alpha-done", "gamma-done"}
    assert set(names(listed(sm, NameContains="nomatch"))) == set()
    assert set(names(listed(sm, StatusEquals="Completed"))) == {"alpha-done", "gamma-done"}
    assert set(names(listed(sm, StatusEquals="Failed"))) == {"beta-fail"}
    assert set(names(listed(sm, StatusEquals="InProgress"))) == {"delta-run"}
    assert set(names(listed(sm, StatusEquals="Stopped"))) == {"epsilon-stop"}
    early, late = {"alpha-done", "beta-fail"}, {"gamma-done", "delta-run", "epsilon-stop"}
    assert set(names(listed(sm, CreationTimeBefore=t_mid))) == early
    assert set(names(listed(sm, CreationTimeAfter=t_mid))) == late
    assert set(names(listed(sm, LastModifiedTimeBefore=t_mid))) == early
    assert set(names(listed(sm, LastModifiedTimeAfter=t_mid))) == late
    # Filters combine.
    assert set(names(listed(sm, CreationTimeAfter=t_mid, StatusEquals="Completed",
                            NameContains="done"))) == {"gamma-done"}


def test_list_sorting(fleet):
    _, sm, _ = fleet
    assert names(listed(sm, SortBy="Name", SortOrder="Ascending")) == sorted(ALL)
    assert names(listed(sm, SortBy="Name", SortOrder="Descending")) == sorted(ALL, reverse=True)
    assert names(listed(sm, SortBy="CreationTime", SortOrder="Ascending")) == CREATION_ORDER
    assert names(listed(sm, SortBy="CreationTime", SortOrder="Descending")) == CREATION_ORDER[::-1]
    asc = [s["TrainingJobStatus"] for s in listed(sm, SortBy="Status", SortOrder="Ascending")]
    assert asc == sorted(asc) and len(asc) == 5
    desc = [s["TrainingJobStatus"] for s in listed(sm, SortBy="Status", SortOrder="Descending")]
    assert desc == sorted(desc, reverse=True)
    times = [s["CreationTime"] for s in listed(sm)]
    assert times == sorted(times) or times == sorted(times, reverse=True)


def test_list_paginator_collects_every_job_once(fleet):
    _, sm, _ = fleet
    pages = list(sm.get_paginator("list_training_jobs").paginate(
        SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}))
    for p in pages:
        check_shape(sm, "ListTrainingJobs", p)
        assert len(p["TrainingJobSummaries"]) <= 2
    got = [n for p in pages for n in names(p["TrainingJobSummaries"])]
    assert len(pages) == 3
    assert got == sorted(ALL)  # no duplicates, none missing, order kept across pages
    assert "NextToken" not in pages[-1]
    # A token from another operation is refused.
    code, _ = error_of(sm.list_training_jobs, MaxResults=2, NextToken="garbage")
    assert code == "ValidationException"


def search(sm, expression=None, **kw):
    args = {"Resource": "TrainingJob", "MaxResults": 100, **kw}
    if expression is not None:
        args["SearchExpression"] = expression
    resp = check_shape(sm, "Search", sm.search(**args))
    return [r["TrainingJob"] for r in resp["Results"]]


def found(sm, *filters, **kw):
    return {r["TrainingJobName"] for r in search(sm, {"Filters": list(filters)}, **kw)}


def test_search_filters(fleet):
    _, sm, _ = fleet
    records = search(sm)
    assert {r["TrainingJobName"] for r in records} == ALL
    by_name = {r["TrainingJobName"]: r for r in records}
    assert by_name["alpha-done"]["Tags"] == [{"Key": "team", "Value": "a"}]
    assert by_name["alpha-done"]["HyperParameters"]["lr"] == "0.1"
    assert found(sm, {"Name": "TrainingJobStatus", "Operator": "Equals", "Value": "Completed"}) == {
        "alpha-done", "gamma-done"}
    assert found(sm, {"Name": "TrainingJobStatus", "Operator": "NotEquals", "Value": "Completed"}) == {
        "beta-fail", "delta-run", "epsilon-stop"}
    assert found(sm, {"Name": "TrainingJobName", "Operator": "Contains", "Value": "ta-"}) == {
        "beta-fail", "delta-run"}
    assert found(sm, {"Name": "TrainingJobStatus", "Operator": "In", "Value": "Failed,Stopped"}) == {
        "beta-fail", "epsilon-stop"}
    assert found(sm, {"Name": "Tags.team", "Operator": "Exists"}) == ALL - {"delta-run"}
    assert found(sm, {"Name": "Tags.team", "Operator": "NotExists"}) == {"delta-run"}
    assert found(sm, {"Name": "Tags.team", "Value": "a"}) == {"alpha-done", "gamma-done"}
    assert found(sm, {"Name": "HyperParameters.lr", "Operator": "Equals", "Value": "0.3"}) == {
        "delta-run", "epsilon-stop"}
    assert found(sm, {"Name": "Metrics.validation:acc", "Operator": "GreaterThan",
                      "Value": "0.7"}) == {"alpha-done"}
    assert found(sm, {"Name": "Metrics.validation:acc", "Operator": "LessThanOrEqualTo",
                      "Value": "0.5"}) >= {"gamma-done"}
    # Two filters are ANDed.
    assert found(sm, {"Name": "Tags.team", "Value": "a"},
                 {"Name": "TrainingJobName", "Operator": "Contains", "Value": "gamma"}) == {
        "gamma-done"}
    assert found(sm, {"Name": "ResourceConfig.InstanceType", "Value": "ml.m5.large"}) == ALL


def test_search_sub_expressions_nested_filters_and_sorting(fleet):
    _, sm, _ = fleet
    expr = {"SubExpressions": [
        {"Filters": [{"Name": "TrainingJobName", "Operator": "Equals", "Value": "alpha-done"}]},
        {"Filters": [{"Name": "TrainingJobStatus", "Operator": "Equals", "Value": "Stopped"}]}],
        "Operator": "Or"}
    assert {r["TrainingJobName"] for r in search(sm, expr)} == {"alpha-done", "epsilon-stop"}
    expr["Operator"] = "And"
    assert search(sm, expr) == []
    nested = {"NestedFilters": [{"NestedPropertyName": "FinalMetricDataList", "Filters": [
        {"Name": "FinalMetricDataList.MetricName", "Operator": "Equals", "Value": "validation:acc"},
        {"Name": "FinalMetricDataList.Value", "Operator": "GreaterThan", "Value": "0.7"}]}]}
    assert {r["TrainingJobName"] for r in search(sm, nested)} == {"alpha-done"}
    asc = [r["TrainingJobName"] for r in search(sm, SortBy="TrainingJobName", SortOrder="Ascending")]
    assert asc == sorted(ALL)
    desc = [r["TrainingJobName"] for r in search(sm, SortBy="TrainingJobName", SortOrder="Descending")]
    assert desc == sorted(ALL, reverse=True)
    by_creation = [r["TrainingJobName"] for r in search(sm, SortBy="CreationTime",
                                                        SortOrder="Ascending")]
    assert by_creation == CREATION_ORDER
    # Only one Contains per expression, as on SageMaker.
    code, msg = error_of(sm.search, Resource="TrainingJob", SearchExpression={"Filters": [
        {"Name": "TrainingJobName", "Operator": "Contains", "Value": "a"},
        {"Name": "TrainingJobStatus", "Operator": "Contains", "Value": "C"}]})
    assert code == "ValidationException" and "CONTAINS" in msg


def test_search_paginator(fleet):
    _, sm, _ = fleet
    pages = list(sm.get_paginator("search").paginate(
        Resource="TrainingJob", SortBy="TrainingJobName", SortOrder="Ascending",
        PaginationConfig={"PageSize": 2}))
    for p in pages:
        check_shape(sm, "Search", p)
    got = [r["TrainingJob"]["TrainingJobName"] for p in pages for r in p["Results"]]
    assert got == sorted(ALL) and len(pages) == 3


# ---------------------------------------------------------------------------------------------


def test_tags_add_overwrite_list_delete(server, sm, tmp_path):
    arn = check_shape(sm, "CreateTrainingJob", sm.create_training_job(**job_request(
        "tagged", str(tmp_path), "true", Tags=[{"Key": "owner", "Value": "ann"}])))["TrainingJobArn"]
    tags = lambda: {t["Key"]: t["Value"] for t in check_shape(
        sm, "ListTags", sm.list_tags(ResourceArn=arn))["Tags"]}
    assert tags() == {"owner": "ann"}
    added = check_shape(sm, "AddTags", sm.add_tags(ResourceArn=arn, Tags=[
        {"Key": "owner", "Value": "bob"}, {"Key": "stage", "Value": "dev"},
        {"Key": "empty", "Value": ""}]))
    assert {t["Key"]: t["Value"] for t in added["Tags"]} == {"owner": "bob", "stage": "dev",
                                                             "empty": ""}
    assert tags() == {"owner": "bob", "stage": "dev", "empty": ""}
    check_shape(sm, "DeleteTags", sm.delete_tags(ResourceArn=arn, TagKeys=["stage", "absent"]))
    assert tags() == {"owner": "bob", "empty": ""}
    # Reserved prefix.
    code, msg = error_of(sm.add_tags, ResourceArn=arn, Tags=[{"Key": "aws:x", "Value": "1"}])
    assert code == "ValidationException" and "aws:" in msg
    code, msg = error_of(sm.create_training_job, **job_request(
        "reserved", str(tmp_path), "true", Tags=[{"Key": "aws:cf", "Value": "1"}]))
    assert code == "ValidationException" and "aws:" in msg
    # More than 50 tags, in one request or in total.
    code, _ = error_of(sm.add_tags, ResourceArn=arn,
                       Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert code == "ValidationException"
    check_shape(sm, "AddTags", sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(48)]))
    assert len(tags()) == 50
    code, msg = error_of(sm.add_tags, ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}])
    assert code in ("ValidationException", "ResourceLimitExceeded") and "50" in msg
    assert len(tags()) == 50
    # Unknown ARN.
    code, msg = error_of(sm.list_tags, ResourceArn=arn.replace("tagged", "nobody"))
    assert code == "ValidationException" and "Resource does not exist" in msg
    # The paginator sees them all.
    pages = list(sm.get_paginator("list_tags").paginate(ResourceArn=arn))
    assert sum(len(p["Tags"]) for p in pages) == 50
    # Describe reports ... and Search records carry the tags.
    rec = check_shape(sm, "Search", sm.search(Resource="TrainingJob"))["Results"][0]["TrainingJob"]
    assert len(rec["Tags"]) == 50


def test_delete_training_job(server, sm, tmp_path):
    sm.create_training_job(**job_request("deleteme", str(tmp_path), SPIN,
                                         Tags=[{"Key": "old", "Value": "1"}]))
    status, body = raw_call(server, "DeleteTrainingJob", {"TrainingJobName": "deleteme"})
    assert (status, body["__type"]) == (400, "ResourceInUse"), body
    check_shape(sm, "StopTrainingJob", sm.stop_training_job(TrainingJobName="deleteme"))
    wait_status(sm, "deleteme", timeout=60)
    status, body = raw_call(server, "DeleteTrainingJob", {"TrainingJobName": "deleteme"})
    assert status == 200 and body == {}, body
    code, msg = error_of(sm.describe_training_job, TrainingJobName="deleteme")
    assert (code, msg) == ("ValidationException", "Requested resource not found.")
    assert names(listed(sm)) == []
    status, body = raw_call(server, "DeleteTrainingJob", {"TrainingJobName": "deleteme"})
    assert status == 400 and body["__type"] in ("ValidationException", "ResourceNotFound"), body
    # The name is free again; the new job starts without the old tags.
    check_shape(sm, "CreateTrainingJob", sm.create_training_job(
        **job_request("deleteme", str(tmp_path), "true")))
    d = check_shape(sm, "DescribeTrainingJob", sm.describe_training_job(TrainingJobName="deleteme"))
    assert d["TrainingJobStatus"] in ("InProgress", "Completed")
    assert check_shape(sm, "ListTags", sm.list_tags(ResourceArn=d["TrainingJobArn"]))["Tags"] == []


def test_not_found_and_stop_errors(server, sm, tmp_path):
    code, msg = error_of(sm.describe_training_job, TrainingJobName="ghost")
    assert (code, msg) == ("ValidationException", "Requested resource not found.")
    code, _ = error_of(sm.stop_training_job, TrainingJobName="ghost")
    assert code in ("ValidationException", "ResourceNotFound")


def test_waiter_completed_or_stopped(server, sm, tmp_path):
    sm.create_training_job(**job_request("waited", str(tmp_path), "echo hi"))
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="waited", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    d = check_shape(sm, "DescribeTrainingJob", sm.describe_training_job(TrainingJobName="waited"))
    assert d["TrainingJobStatus"] == "Completed"
    # A failed job makes the waiter fail rather than hang.
    sm.create_training_job(**job_request("waitfail", str(tmp_path), "exit 2"))
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.WaiterError):
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="waitfail", WaiterConfig={"Delay": 1, "MaxAttempts": 60})


SECOND = {"aws_access_key_id": "AKIATRAINYARDSECOND2",
          "aws_secret_access_key": "second/secret/key/for/trainyard/tests0000"}


def test_accounts_are_isolated(tmp_path):
    data = tmp_path / "data"
    srv = Server(str(data))
    (data / "credentials").write_text(
        "[trainyard]\n"
        "aws_access_key_id = AKIATRAINYARDFIRST01\n"
        "aws_secret_access_key = first/secret/key/for/trainyard/tests00000\n"
        "\n[other]\n"
        f"aws_access_key_id = {SECOND['aws_access_key_id']}\n"
        f"aws_secret_access_key = {SECOND['aws_secret_access_key']}\n"
        "aws_account_id = 222222222222\n")
    os.chmod(data / "credentials", 0o600)
    srv.start()
    try:
        assert srv.creds["aws_access_key_id"] == "AKIATRAINYARDFIRST01"
        a = srv.boto3()
        import boto3
        import botocore.config
        b = boto3.session.Session(region_name=srv.region, **SECOND).client(
            "sagemaker", endpoint_url=srv.url,
            config=botocore.config.Config(retries={"max_attempts": 1}))
        arn_a = a.create_training_job(**job_request(
            "shared-name", str(tmp_path), "true", Tags=[{"Key": "k", "Value": "a"}]))["TrainingJobArn"]
        acct_a = arn_a.split(":")[4]
        assert len(acct_a) == 12 and acct_a.isdigit() and acct_a != "222222222222"
        # B sees nothing of A's.
        assert check_shape(b, "ListTrainingJobs", b.list_training_jobs())["TrainingJobSummaries"] == []
        assert check_shape(b, "Search", b.search(Resource="TrainingJob"))["Results"] == []
        code, msg = error_of(b.describe_training_job, TrainingJobName="shared-name")
        assert (code, msg) == ("ValidationException", "Requested resource not found.")
        code, _ = error_of(b.stop_training_job, TrainingJobName="shared-name")
        assert code in ("ValidationException", "ResourceNotFound")
        code, _ = error_of(b.list_tags, ResourceArn=arn_a)
        assert code == "ValidationException"
        code, _ = error_of(b.add_tags, ResourceArn=arn_a, Tags=[{"Key": "k", "Value": "b"}])
        assert code == "ValidationException"
        code, _ = error_of(b.delete_tags, ResourceArn=arn_a, TagKeys=["k"])
        assert code == "ValidationException"
        status, body = raw_call(srv, "DeleteTrainingJob", {"TrainingJobName": "shared-name"}, SECOND)
        assert status == 400, body
        # The same name is free in B's account.
        (tmp_path / "b").mkdir()
        arn_b = check_shape(b, "CreateTrainingJob", b.create_training_job(**job_request(
            "shared-name", str(tmp_path / "b"), "true")))["TrainingJobArn"]
        assert arn_b == f"arn:aws:sagemaker:{srv.region}:222222222222:training-job/shared-name"
        assert names(b.list_training_jobs()["TrainingJobSummaries"]) == ["shared-name"]
        assert [s["TrainingJobArn"] for s in a.list_training_jobs()["TrainingJobSummaries"]] == [arn_a]
        assert a.list_tags(ResourceArn=arn_a)["Tags"] == [{"Key": "k", "Value": "a"}]
        wait_status(a, "shared-name", timeout=60)
        wait_status(b, "shared-name", timeout=60)
    finally:
        srv.stop()
