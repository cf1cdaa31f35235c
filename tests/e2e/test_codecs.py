"""The protocol codecs as clients see them.

1. botocore's own parsers (1.29 in-process, 1.43 in the pyenv python3) read the responses and
   errors the C++ encoders wrote (tests/api/fixtures/codecs/responses.json, kept equal to the
   encoders' output by tests/api/codecs_test.cc) back to the documents they were given.
2. Bad input through the real server, in each protocol: malformed CBOR and forms, unknown
   actions, CBOR carrying X-Amz-Target, a scope for another service, no protocol at all. Each
   gets that protocol's error, parsed by botocore, and the server keeps serving. Where the
   request names CloudWatch, the expected error depends on whether this build serves it (the
   query and CBOR protocols reach decoding only through a service that speaks them).
"""

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import HERE, ROOT, Server

sys.path.insert(0, os.path.join(HERE, "clients"))
import codec_parse  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "api", "fixtures", "codecs")
CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/ListMetrics"


def pyenv_python():
    path = shutil.which("python3")
    if path is None or os.path.realpath(path).startswith("/usr/bin/"):
        pytest.fail(f"the pyenv python3 is not first on PATH (found {path})")
    return path


def golden_count(with_cbor):
    with open(os.path.join(FIXTURES, "responses.json"), encoding="utf-8") as f:
        golden = json.load(f)
    return sum(1 for e in golden["responses"] + golden["errors"]
               if with_cbor or e["protocol"] != "smithy-rpc-v2-cbor")


def test_botocore_1_29_parses_what_the_encoders_write():
    result = codec_parse.check_fixtures(FIXTURES)
    assert result["botocore"].startswith("1.29"), result["botocore"]
    assert result["problems"] == []
    # query, json and rest-json responses and errors (not CBOR, which 1.29 cannot read).
    assert result["checked"] == golden_count(with_cbor=False) > 30, result


def test_botocore_1_43_parses_what_the_encoders_write():
    res = subprocess.run([pyenv_python(), os.path.join(HERE, "clients", "codec_parse.py"),
                          "fixtures", FIXTURES], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["botocore"].startswith("1.4"), result["botocore"]
    assert result["problems"] == []
    assert result["checked"] == golden_count(with_cbor=True) > 40, result


# --- bad input through the server -----------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("codecs") / "data")).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def still_serving(request):
    yield
    if "srv" in request.fixturenames:
        s = request.getfixturevalue("srv")
        assert s.proc.poll() is None, "server died"
        assert "TrainingJobSummaries" in s.boto3().list_training_jobs()


def send(srv, path, body=b"", headers=None, scope="sagemaker", method="POST", query=""):
    headers = dict(headers or {})
    url = srv.url + path + ("?" + query if query else "")
    if scope is not None:
        req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(
            srv.creds["aws_access_key_id"], srv.creds["aws_secret_access_key"]),
            scope, srv.region).add_auth(req)
        headers = dict(req.headers.items())
    u = urllib.parse.urlparse(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path + ("?" + query if query else ""), body=body, headers=headers)
        res = conn.getresponse()
        data = res.read()
        return {"status": res.status, "headers": res.getheaders(),
                "body_b64": base64.b64encode(data).decode()}
    finally:
        conn.close()


def parse(protocol, response):
    """(status, botocore's parsed error) with the botocore that reads `protocol`."""
    entry = dict(response, protocol=protocol)
    if protocol == "smithy-rpc-v2-cbor":
        res = subprocess.run([pyenv_python(), os.path.join(HERE, "clients", "codec_parse.py"),
                              "raw"], input=json.dumps([entry]), capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr
        parsed = json.loads(res.stdout)[0]
    else:
        parsed = codec_parse.parse_raw([entry])[0]
    assert "Error" in parsed, parsed
    assert parsed["Error"]["Message"], parsed
    return response["status"], parsed["Error"]


def header(response, name):
    for k, v in response["headers"]:
        if k.lower() == name.lower():
            return v
    return None


@pytest.fixture(scope="module")
def serves_cloudwatch(srv):
    r = send(srv, "/", b"{}", {"Content-Type": "application/x-amz-json-1.0",
                               "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics"},
             scope="monitoring")
    return r["status"] == 200


FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
CBOR = {"Smithy-Protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
        "Accept": "application/cbor"}


def test_malformed_cbor(srv, serves_cloudwatch):
    for body in (b"\xa1\x61", b"\xbf", b"\x9b\x00\x00\x00\x00\xff\xff\xff\xff", b"\x81" * 100):
        r = send(srv, CBOR_PATH, body, CBOR, scope="monitoring")
        status, err = parse("smithy-rpc-v2-cbor", r)
        assert header(r, "Smithy-Protocol") == "rpc-v2-cbor"
        assert header(r, "X-Amzn-ErrorType") is None
        if serves_cloudwatch:
            assert (status, err["Code"]) == (400, "SerializationException"), err
            assert "not valid CBOR" in err["Message"]
        else:
            assert (status, err["Code"]) == (400, "UnknownOperationException"), err
    # A service that speaks no CBOR (SageMaker) is not reachable through it.
    r = send(srv, "/service/SageMaker/operation/ListTrainingJobs", b"\xa0", CBOR)
    status, err = parse("smithy-rpc-v2-cbor", r)
    assert (status, err["Code"]) == (400, "UnknownOperationException"), err


def test_cbor_carrying_x_amz_target(srv, serves_cloudwatch):
    headers = dict(CBOR, **{"X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics"})
    r = send(srv, CBOR_PATH, b"\xa0", headers, scope="monitoring")
    status, err = parse("smithy-rpc-v2-cbor", r)
    want = "SerializationException" if serves_cloudwatch else "UnknownOperationException"
    assert (status, err["Code"]) == (400, want), err
    if serves_cloudwatch:
        assert "X-Amz-Target" in err["Message"]


def test_malformed_form_bodies(srv, serves_cloudwatch):
    for body in (b"Action=ListMetrics&Version=2010-08-01&Namespace=%zz",
                 b"Action=ListMetrics&Version=2010-08-01&" + b"k" * 2000 + b"=v",
                 b"Action=ListMetrics&Version=2010-08-01&" + b"&".join(
                     b"k%d=v" % i for i in range(20001))):
        r = send(srv, "/", body, FORM, scope="monitoring")
        status, err = parse("query", r)
        assert header(r, "Content-Type").startswith("text/xml")
        if serves_cloudwatch:
            assert (status, err["Code"]) == (400, "MalformedQueryString"), err
        else:
            assert (status, err["Code"]) == (400, "InvalidSignatureException"), err


def test_unknown_and_missing_actions(srv, serves_cloudwatch):
    for body, code in ((b"Action=LaunchRockets&Version=2010-08-01", "InvalidAction"),
                       (b"Version=2010-08-01&Namespace=x", "MissingAction")):
        r = send(srv, "/", body, FORM, scope="monitoring")
        status, err = parse("query", r)
        if serves_cloudwatch:
            assert (status, err["Code"]) == (400, code), err
        else:
            assert (status, err["Code"]) == (400, "InvalidSignatureException"), err
    # GET with the action in the query string is the query protocol too.
    r = send(srv, "/", b"", {}, scope="monitoring", method="GET",
             query="Action=LaunchRockets&Version=2010-08-01")
    status, err = parse("query", r)
    assert err["Code"] == ("InvalidAction" if serves_cloudwatch else "InvalidSignatureException")


def test_a_scope_for_another_service(srv):
    # JSON to SageMaker signed for Logs.
    r = send(srv, "/", b"{}", {"Content-Type": "application/x-amz-json-1.1",
                               "X-Amz-Target": "SageMaker.ListTrainingJobs"}, scope="logs")
    status, err = parse("json", r)
    assert (status, err["Code"]) == (400, "InvalidSignatureException"), err
    assert "Credential should be scoped to correct service" in err["Message"]
    # A form signed for SageMaker, which speaks no query.
    r = send(srv, "/", b"Action=ListTrainingJobs&Version=2017-07-24", FORM, scope="sagemaker")
    status, err = parse("query", r)
    assert (status, err["Code"]) == (400, "InvalidSignatureException"), err
    assert "Credential should be scoped to correct service" in err["Message"]
    assert err["Type"] == "Sender"


def test_no_protocol_gets_an_aws_json_error(srv):
    r = send(srv, "/nowhere", b"hello", {"Content-Type": "text/plain"}, method="PUT")
    status, err = parse("json", r)
    assert (status, err["Code"]) == (404, "UnknownOperationException"), err
    assert header(r, "Content-Type").startswith("application/x-amz-json-1.1")


# --- a CBOR request built by hand, through the server ----------------------------------------

def cbor_encode(v):
    """A small RPC v2 CBOR encoder: what a Go/Ruby/Java SDK sends (tag 1 timestamps as float64)."""
    import struct

    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor_encode(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor_encode(k) + cbor_encode(x) for k, x in v.items())
    if isinstance(v, tuple) and v[0] == "timestamp":
        return b"\xc1" + cbor_encode(float(v[1]))
    raise TypeError(v)


def cbor_decode(data):
    """The matching decoder for the answers (definite lengths, as the server writes)."""
    import struct

    def item(i):
        ib = data[i]
        major, ai = ib >> 5, ib & 31
        i += 1
        if major == 7:
            if ai == 20 or ai == 21:
                return ai == 21, i
            if ai == 22:
                return None, i
            size, fmt = {25: (2, ">e"), 26: (4, ">f"), 27: (8, ">d")}[ai]
            return struct.unpack(fmt, data[i:i + size])[0], i + size
        if ai < 24:
            n = ai
        else:
            size = {24: 1, 25: 2, 26: 4, 27: 8}[ai]
            n = int.from_bytes(data[i:i + size], "big")
            i += size
        if major == 0:
            return n, i
        if major == 1:
            return -1 - n, i
        if major in (2, 3):
            raw = data[i:i + n]
            return (raw.decode() if major == 3 else raw), i + n
        if major == 4:
            out = []
            for _ in range(n):
                x, i = item(i)
                out.append(x)
            return out, i
        if major == 5:
            out = {}
            for _ in range(n):
                k, i = item(i)
                out[k], i = item(i)
            return out, i
        if major == 6:
            x, i = item(i)
            return ("tag", n, x), i
        raise ValueError(major)

    value, end = item(0)
    assert end == len(data)
    return value


def test_a_cbor_client_puts_and_reads_metrics(srv):
    import time as _time
    path = "/service/GraniteServiceVersion20100801/operation/"
    t0 = int(_time.time()) - 120
    put = {"Namespace": "Cbor/Test", "MetricData": [
        {"MetricName": "Loss", "Dimensions": [{"Name": "Run", "Value": "r1"}],
         "Timestamp": ("timestamp", t0 + i + 0.25), "Value": float(v), "Unit": "None"}
        for i, v in enumerate([4, 2, 3])]}
    r = send(srv, path + "PutMetricData", cbor_encode(put), CBOR, scope="monitoring")
    assert r["status"] == 200, base64.b64decode(r["body_b64"])
    assert header(r, "Smithy-Protocol") == "rpc-v2-cbor"

    get = {"Namespace": "Cbor/Test", "MetricName": "Loss",
           "Dimensions": [{"Name": "Run", "Value": "r1"}],
           "StartTime": ("timestamp", t0 - 60), "EndTime": ("timestamp", t0 + 60),
           "Period": 60, "Statistics": ["Minimum", "Maximum", "SampleCount"]}
    r = send(srv, path + "GetMetricStatistics", cbor_encode(get), CBOR, scope="monitoring")
    assert r["status"] == 200, base64.b64decode(r["body_b64"])
    assert header(r, "Content-Type") == "application/cbor"
    answer = cbor_decode(base64.b64decode(r["body_b64"]))
    points = answer["Datapoints"]
    assert sum(p["SampleCount"] for p in points) == 3, answer
    assert min(p["Minimum"] for p in points) == 2 and max(p["Maximum"] for p in points) == 4
    for p in points:  # timestamps come back as tag 1 (epoch seconds)
        assert p["Timestamp"][0] == "tag" and p["Timestamp"][1] == 1, p

    r = send(srv, path + "ListMetrics", cbor_encode({"Namespace": "Cbor/Test"}), CBOR,
             scope="monitoring")
    listed = cbor_decode(base64.b64decode(r["body_b64"]))
    assert [m["MetricName"] for m in listed["Metrics"]] == ["Loss"], listed
