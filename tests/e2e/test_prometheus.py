"""GET /metrics: the server's own metrics in Prometheus' text format, read with the real
Prometheus client library's parser (python3-prometheus-client), through the real binary.

By default the endpoint needs a configured access key (SigV4 or HTTP Basic); the config can open
it on the API listener or move it to a separate admin address."""

import base64
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TEST_CONFIG, Server, job_request, wait_status


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def basic(akid, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{akid}:{secret}".encode()).decode()}


def samples(text):
    """{(name, frozenset(labels)): value} of every sample, parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed, name, **labels):
    return parsed.get((name, frozenset(labels.items())))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_needs_credentials_by_default(server):
    status, headers, body = get(server.url + "/metrics")
    assert status == 401, body
    assert "Basic" in headers.get("WWW-Authenticate", "")
    status, _, _ = get(server.url + "/metrics",
                       basic(server.creds["aws_access_key_id"], "not-the-secret"))
    assert status == 401
    status, _, _ = get(server.url + "/metrics", basic("AKIDUNKNOWN", "x"))
    assert status == 401
    # The refusals cost nothing: the API still answers.
    server.boto3().list_training_jobs()


def test_sigv4_signed_scrape(server):
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    creds = botocore.credentials.Credentials(server.creds["aws_access_key_id"],
                                             server.creds["aws_secret_access_key"])
    req = botocore.awsrequest.AWSRequest(method="GET", url=server.url + "/metrics")
    botocore.auth.SigV4Auth(creds, "sagemaker", server.region).add_auth(req)
    status, headers, body = get(server.url + "/metrics", dict(req.headers.items()))
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples(body)  # parses


def test_counts_requests_jobs_and_ingest(server, tmp_path):
    sm = server.boto3()
    sm.list_training_jobs()
    sm.list_training_jobs()
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_training_job(TrainingJobName="no-such-job")
    name = "prom-job"
    sm.create_training_job(**job_request(name, str(tmp_path / "out"),
                                         command="for i in 1 2 3 4 5; do echo line $i; done"))
    wait_status(sm, name)

    auth = basic(server.creds["aws_access_key_id"], server.creds["aws_secret_access_key"])
    status, _, body = get(server.url + "/metrics", auth)
    assert status == 200, body
    m = samples(body)
    assert value(m, "trainyard_api_requests_total", service="SageMaker",
                 operation="ListTrainingJobs", outcome="ok") == 2
    assert value(m, "trainyard_api_requests_total", service="SageMaker",
                 operation="DescribeTrainingJob", outcome="ValidationException") == 1
    count = value(m, "trainyard_api_request_duration_seconds_count", service="SageMaker",
                  operation="ListTrainingJobs")
    inf = value(m, "trainyard_api_request_duration_seconds_bucket", service="SageMaker",
                operation="ListTrainingJobs", le="+Inf")
    assert count == inf == 2
    assert value(m, "trainyard_jobs", status="Completed") == 1
    assert value(m, "trainyard_log_lines_ingested_total") >= 5
    assert value(m, "trainyard_agent_reports_total") >= 1
    # Names a caller invents never become label values.
    assert "no-such-job" not in body


def test_capacity_and_agents_while_a_job_runs(server, tmp_path):
    sm = server.boto3()
    name = "prom-running"
    sm.create_training_job(**job_request(name, str(tmp_path / "out"),
                                         command="echo started; sleep 120"))
    from conftest import wait_for
    wait_for(lambda: sm.describe_training_job(TrainingJobName=name),
             lambda d: d["SecondaryStatus"] == "Training", timeout=60)
    auth = basic(server.creds["aws_access_key_id"], server.creds["aws_secret_access_key"])
    try:
        m = wait_for(lambda: samples(get(server.url + "/metrics", auth)[2]),
                     lambda m: (value(m, "trainyard_agents_connected") or 0) >= 1, timeout=30)
        assert value(m, "trainyard_capacity_instances", instance_type="ml.m5.large") == 32
        assert value(m, "trainyard_capacity_instances_in_use", instance_type="ml.m5.large") == 1
        assert value(m, "trainyard_jobs", status="InProgress") == 1
    finally:
        sm.stop_training_job(TrainingJobName=name)
    wait_status(sm, name)
    m = samples(get(server.url + "/metrics", auth)[2])
    assert value(m, "trainyard_jobs", status="Stopped") == 1


def test_unknown_operations_do_not_grow_the_label_set(server):
    import json
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    creds = botocore.credentials.Credentials(server.creds["aws_access_key_id"],
                                             server.creds["aws_secret_access_key"])
    for i in range(5):
        req = botocore.awsrequest.AWSRequest(
            method="POST", url=server.url + "/", data=b"{}",
            headers={"X-Amz-Target": f"SageMaker.Invented{i}",
                     "Content-Type": "application/x-amz-json-1.1"})
        botocore.auth.SigV4Auth(creds, "sagemaker", server.region).add_auth(req)
        r = urllib.request.Request(server.url + "/", data=b"{}", headers=dict(req.headers.items()))
        try:
            urllib.request.urlopen(r, timeout=10)
        except urllib.error.HTTPError as e:
            assert json.loads(e.read())["__type"] == "UnknownOperationException"
    auth = basic(server.creds["aws_access_key_id"], server.creds["aws_secret_access_key"])
    _, _, body = get(server.url + "/metrics", auth)
    assert "Invented" not in body
    m = samples(body)
    assert value(m, "trainyard_api_requests_total", service="SageMaker", operation="unknown",
                 outcome="UnknownOperationException") == 5


def test_open_and_admin_listener(tmp_path):
    port = free_port()
    config = TEST_CONFIG + f"metrics_endpoint:\n  listen: 127.0.0.1:{port}\n"
    srv = Server(str(tmp_path / "admin"), config=config).start()
    try:
        status, _, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, body
        assert "trainyard_api_requests_total" in body
        # The API listener still wants credentials.
        assert get(srv.url + "/metrics")[0] == 401
    finally:
        srv.stop()
    config = TEST_CONFIG + "metrics_endpoint:\n  unauthenticated: true\n"
    srv = Server(str(tmp_path / "open"), config=config).start()
    try:
        status, _, body = get(srv.url + "/metrics")
        assert status == 200, body
        samples(body)
    finally:
        srv.stop()


def test_access_keys_restrict_the_readers(tmp_path):
    config = TEST_CONFIG + "metrics_endpoint:\n  access_keys: [AKIDSOMEONEELSE0000]\n"
    srv = Server(str(tmp_path / "restricted"), config=config).start()
    try:
        auth = basic(srv.creds["aws_access_key_id"], srv.creds["aws_secret_access_key"])
        assert get(srv.url + "/metrics", auth)[0] == 401
    finally:
        srv.stop()
