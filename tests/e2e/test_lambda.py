"""Lambda for Python through the real binary: functions created, invoked, updated and deleted
with boto3 1.26 (Debian), boto3 1.43 (pyenv, subprocess), the AWS CLI v2 and the JS SDK v3; a
handler that calls boto3.client("sagemaker") unmodified; warm workers reused; faults (raise,
timeout, memory, 10 MB of output); logs in /aws/lambda/<fn>; accounts isolated."""

import base64
import io
import json
import os
import subprocess
import time
import zipfile

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import HERE, ROOT, Server, job_request, trainyard_bin, wait_status
from test_accounts import ACCOUNT_A, KEY_B, write_two_accounts

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
NODE = "/usr/bin/node"
MODULES = os.environ.get("TY_JS_MODULES") or os.path.join(ROOT, ".deps", "js", "node_modules")


def package(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def lam(server, **kw):
    return server.boto3("lambda", **kw)


def create(client, name, source, handler="app.handler", **kw):
    args = dict(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler=handler,
                Code={"ZipFile": package({"app.py": source})})
    args.update(kw)
    return client.create_function(**args)


def invoke(client, name, event=None, **kw):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), **kw)
    body = resp["Payload"].read()
    return resp, json.loads(body) if body else None


def log_messages(server, name):
    logs = server.boto3("logs")
    out = []
    kw = {"logGroupName": f"/aws/lambda/{name}"}
    while True:
        page = logs.filter_log_events(**kw)
        out += [e["message"] for e in page["events"]]
        if not page.get("nextToken"):
            return out
        kw["nextToken"] = page["nextToken"]


ECHO = """
import os
def handler(event, context):
    return {"event": event, "pid": os.getpid(), "greeting": os.environ.get("GREETING"),
            "request_id": context.aws_request_id, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "name": context.function_name,
            "remaining": context.get_remaining_time_in_millis(),
            "task_root": os.environ["LAMBDA_TASK_ROOT"], "cwd": os.getcwd(),
            "region": os.environ["AWS_REGION"], "stream": context.log_stream_name}
"""


def test_create_invoke_update_delete_with_boto3_126(server):
    c = lam(server)
    conf = create(c, "echo", ECHO, Environment={"Variables": {"GREETING": "hi"}}, Timeout=10)
    assert conf["State"] == "Active" and conf["Runtime"] == "python3.12"
    assert conf["FunctionArn"].endswith(":function:echo")
    assert conf["Environment"]["Variables"] == {"GREETING": "hi"}
    assert conf["CodeSha256"] and conf["CodeSize"] > 0

    resp, out = invoke(c, "echo", {"k": 1}, LogType="Tail")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert out["event"] == {"k": 1} and out["greeting"] == "hi"
    assert out["arn"] == conf["FunctionArn"] and out["memory"] == "128" and out["name"] == "echo"
    assert 0 < out["remaining"] <= 10000
    assert out["task_root"] == "/var/task" and out["cwd"] == "/var/task"
    tail = base64.b64decode(resp["LogResult"]).decode()
    assert f"START RequestId: {out['request_id']} Version: $LATEST" in tail
    assert f"END RequestId: {out['request_id']}" in tail
    assert f"REPORT RequestId: {out['request_id']}\tDuration: " in tail
    assert "\tMemory Size: 128 MB\tMax Memory Used: " in tail

    assert c.get_function(FunctionName="echo")["Configuration"]["Handler"] == "app.handler"
    assert c.get_function_configuration(FunctionName=conf["FunctionArn"])["Timeout"] == 10
    assert [f["FunctionName"] for f in c.list_functions()["Functions"]] == ["echo"]

    with pytest.raises(c.exceptions.ResourceConflictException):
        create(c, "echo", ECHO)
    with pytest.raises(c.exceptions.InvalidParameterValueException):
        create(c, "node", ECHO, Runtime="nodejs20.x")
    with pytest.raises(c.exceptions.InvalidParameterValueException):
        create(c, "badzip", ECHO, Code={"ZipFile": b"not a zip"})
    with pytest.raises(c.exceptions.InvalidParameterValueException):
        create(c, "reserved", ECHO, Environment={"Variables": {"AWS_REGION": "x"}})

    c.update_function_code(FunctionName="echo",
                           ZipFile=package({"app.py": "def handler(e, c):\n    return 'v2'\n"}))
    assert invoke(c, "echo")[1] == "v2"
    c.update_function_configuration(FunctionName="echo", Handler="app.other",
                                    Environment={"Variables": {"BB": "2"}})
    c.update_function_code(FunctionName="echo", ZipFile=package(
        {"app.py": "import os\ndef other(e, c):\n    return dict(os.environ).get('GREETING', 'gone') + os.environ['BB']\n"}))
    assert invoke(c, "echo")[1] == "gone2"

    assert c.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
    assert c.invoke(FunctionName="echo", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    with pytest.raises(c.exceptions.InvalidRequestContentException):
        c.invoke(FunctionName="echo", Payload=b"{not json")

    c.delete_function(FunctionName="echo")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function(FunctionName="echo")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        invoke(c, "echo")
    assert c.list_functions()["Functions"] == []


def test_permissions(server):
    c = lam(server)
    create(c, "guarded", ECHO)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_policy(FunctionName="guarded")
    st = json.loads(c.add_permission(
        FunctionName="guarded", StatementId="rule", Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn="arn:aws:events:us-east-1:123456789012:rule/r")["Statement"])
    assert st["Principal"] == {"Service": "events.amazonaws.com"}
    assert st["Condition"]["ArnLike"]["AWS:SourceArn"].endswith("rule/r")
    with pytest.raises(c.exceptions.ResourceConflictException):
        c.add_permission(FunctionName="guarded", StatementId="rule",
                         Action="lambda:InvokeFunction", Principal="sns.amazonaws.com")
    policy = json.loads(c.get_policy(FunctionName="guarded")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["rule"]
    c.remove_permission(FunctionName="guarded", StatementId="rule")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.remove_permission(FunctionName="guarded", StatementId="rule")


SAGEMAKER_INSIDE = """
import os, sys, uuid
import boto3, botocore
BOOT = uuid.uuid4().hex  # once per worker: the same value means the same warm process
client = boto3.client("sagemaker")   # at import: reused while the worker is warm
def handler(event, context):
    jobs = client.list_training_jobs()["TrainingJobSummaries"]
    return {"jobs": [j["TrainingJobName"] for j in jobs], "boto3": boto3.__version__,
            "python": sys.executable, "worker": (BOOT, os.getpid())}
"""


def test_boto3_sagemaker_inside_the_function_and_warm_reuse(server, sm, tmp_path):
    sm.create_training_job(**job_request("seen-by-lambda", str(tmp_path), "true"))
    c = lam(server)
    create(c, "lister", SAGEMAKER_INSIDE, MemorySize=512, Timeout=30)
    resp, first = invoke(c, "lister")
    assert "FunctionError" not in resp, first
    # Debian's boto3 1.26 ignores AWS_ENDPOINT_URL: the runtime points it at the server.
    assert first["boto3"].startswith("1.26") and first["python"] == "/usr/bin/python3"
    assert first["jobs"] == ["seen-by-lambda"]
    resp, second = invoke(c, "lister")
    assert second["worker"] == first["worker"]  # the same warm worker
    lines = log_messages(server, "lister")
    assert any(l.startswith("trainyard: runtime python3.12 is served by /usr/bin/python3")
               for l in lines), lines
    reports = [l for l in lines if l.startswith("REPORT RequestId: ")]
    assert len(reports) == 2
    assert "\tInit Duration: " in reports[0] and "Init Duration" not in reports[1]
    wait_status(sm, "seen-by-lambda")


FAULTS = """
import time, sys
def boom(event, context):
    raise ValueError("no good: " + event["why"])
def slow(event, context):
    time.sleep(30)
def hog(event, context):
    blocks = []
    for _ in range(64):
        blocks.append(bytearray(16 << 20))
        for i in range(0, len(blocks[-1]), 4096):
            blocks[-1][i] = 1
    return len(blocks)
def loud(event, context):
    for _ in range(10 * 1024):
        print("x" * 1023)
    sys.stdout.write("y" * (1 << 20))
    return "said it"
def ok(event, context):
    return "fine"
"""


def test_faults(server):
    c = lam(server)
    for fn, handler, extra in (("boom", "boom", {}), ("slow", "slow", {"Timeout": 1}),
                               ("hog", "hog", {}), ("loud", "loud", {"Timeout": 60})):
        create(c, fn, FAULTS, handler=f"app.{handler}", **extra)

    resp, err = invoke(c, "boom", {"why": "bad input"})
    assert resp["StatusCode"] == 200 and resp["FunctionError"] == "Unhandled"
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "no good: bad input"
    assert any("in boom" in frame for frame in err["stackTrace"])
    assert not any("bootstrap.py" in frame for frame in err["stackTrace"])

    resp, err = invoke(c, "slow")
    assert resp["FunctionError"] == "Unhandled"
    assert err["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in err["errorMessage"]

    resp, err = invoke(c, "hog")  # 1 GiB against MemorySize 128
    assert resp["FunctionError"] == "Unhandled", err
    assert err["errorType"] in ("Runtime.OutOfMemory", "MemoryError"), err

    resp, out = invoke(c, "loud", LogType="Tail")
    assert "FunctionError" not in resp and out == "said it"
    assert len(base64.b64decode(resp["LogResult"])) <= 4096
    lines = log_messages(server, "loud")
    assert sum(len(l) for l in lines) < 1 << 20  # bounded, and said so
    assert any("bytes of output dropped" in l for l in lines)

    # The server and the functions still work: the timed-out worker was replaced.
    c.update_function_configuration(FunctionName="slow", Handler="app.ok", Timeout=5)
    assert invoke(c, "slow")[1] == "fine"
    assert invoke(c, "boom", {"why": "again"})[0]["FunctionError"] == "Unhandled"


def test_accounts_are_isolated(tmp_path):
    os.makedirs(tmp_path / "data")
    write_two_accounts(str(tmp_path / "data"))
    srv = Server(str(tmp_path / "data")).start()
    try:
        a = lam(srv)
        b = boto3.session.Session(region_name=srv.region, **KEY_B).client(
            "lambda", endpoint_url=srv.url,
            config=botocore.config.Config(retries={"max_attempts": 1}))
        arn = create(a, "mine", ECHO)["FunctionArn"]
        assert f":{ACCOUNT_A}:" in arn
        for call in (lambda: b.get_function(FunctionName=arn),
                     lambda: b.get_function(FunctionName="mine"),
                     lambda: b.invoke(FunctionName=arn, Payload=b"{}"),
                     lambda: b.delete_function(FunctionName=arn)):
            with pytest.raises(b.exceptions.ResourceNotFoundException):
                call()
        assert b.list_functions()["Functions"] == []
        # B's function of the same name is B's own.
        create(b, "mine", "def handler(e, c):\n    return 'b'\n")
        assert invoke(b, "mine")[1] == "b"
        assert invoke(a, "mine")[1]["name"] == "mine"
    finally:
        srv.stop()


def test_aws_cli_v2_and_trainyard_cli(server, tmp_path):
    c = lam(server)
    create(c, "clied", "def handler(e, c):\n    print('hello from', e['who'])\n    return e\n")
    out = tmp_path / "out.json"
    res = subprocess.run(
        ["/usr/bin/aws", "--endpoint-url", server.url, "lambda", "invoke",
         "--function-name", "clied",
         "--cli-binary-format", "raw-in-base64-out", "--payload", '{"who": "cli"}',
         "--log-type", "Tail", str(out)],
        env=server.client_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    assert "hello from cli" in base64.b64decode(meta["LogResult"]).decode()
    assert json.loads(out.read_text()) == {"who": "cli"}
    res = subprocess.run(["/usr/bin/aws", "--endpoint-url", server.url, "lambda",
                          "list-functions"], env=server.client_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "clied" in res.stdout, res.stderr

    assert "clied" in server.cli("functions", "list").stdout
    assert '"FunctionName": "clied"' in server.cli("functions", "describe", "clied", "--json").stdout
    res = server.cli("functions", "invoke", "clied", "--payload", '{"who": "trainyard"}')
    assert json.loads(res.stdout) == {"who": "trainyard"}
    logs = server.cli("functions", "logs", "clied").stdout
    assert "hello from trainyard" in logs and "REPORT RequestId:" in logs
    missing = server.cli("functions", "invoke", "nope", check=False)
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr


NEW_BOTO3 = r"""
import base64, io, json, sys, zipfile
import boto3, botocore.config
c = boto3.client("lambda", config=botocore.config.Config(retries={"max_attempts": 1}))
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("app.py", "def handler(e, c):\n    return {'twice': e['n'] * 2}\n")
c.create_function(FunctionName="newer", Runtime="python3.13", Role=sys.argv[1],
                  Handler="app.handler", Code={"ZipFile": buf.getvalue()})
c.get_waiter("function_active_v2").wait(FunctionName="newer")
r = c.invoke(FunctionName="newer", Payload=json.dumps({"n": 21}))
print(json.dumps({"payload": json.loads(r["Payload"].read()), "boto3": boto3.__version__,
                  "names": [f["FunctionName"] for f in c.list_functions()["Functions"]]}))
"""


def test_boto3_143(server):
    env = server.client_env()
    env["AWS_ENDPOINT_URL_LAMBDA"] = server.url
    res = subprocess.run(["python3", "-c", NEW_BOTO3, ROLE], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert not out["boto3"].startswith("1.26")
    assert out["payload"] == {"twice": 42} and out["names"] == ["newer"]


def test_js_sdk_v3(server, tmp_path):
    if not os.path.isdir(os.path.join(MODULES, "@aws-sdk", "client-lambda")):
        pytest.fail(f"@aws-sdk/client-lambda is not installed in {MODULES}: run "
                    "scripts/install-js-clients.sh install")
    zipped = base64.b64encode(package({"app.py": "def handler(e, c):\n    return e['a'] + 1\n"}))
    calls = [
        {"client": "lambda", "op": "CreateFunction",
         "input": {"FunctionName": "js", "Runtime": "python3.11", "Role": ROLE,
                   "Handler": "app.handler", "Code": {"ZipFile": {"$base64": zipped.decode()}}}},
        {"client": "lambda", "op": "Invoke",
         "input": {"FunctionName": "js", "Payload": {"$base64": base64.b64encode(
             b'{"a": 41}').decode()}}},
        {"client": "lambda", "op": "GetFunction", "input": {"FunctionName": "js"}},
        {"client": "lambda", "op": "Invoke", "input": {"FunctionName": "missing"}},
    ]
    path = tmp_path / "calls.json"
    path.write_text(json.dumps(calls))
    env = server.client_env()
    env["TY_JS_MODULES"] = MODULES
    res = subprocess.run([NODE, os.path.join(HERE, "clients", "js_sdk.js"), str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    created, invoked, got, missing = json.loads(res.stdout.strip().splitlines()[-1])
    assert created["ok"]["State"] == "Active"
    assert invoked["ok"]["StatusCode"] == 200 and invoked["ok"]["Payload"] == "42"
    assert got["ok"]["Configuration"]["Runtime"] == "python3.11"
    assert missing["error"]["name"] == "ResourceNotFoundException"


def test_event_invocations_run_and_failures_are_retried_twice(server):
    c = lam(server)
    create(c, "async", "def handler(e, c):\n    print('ran', e['n'])\n    if e['n'] == 2:\n"
                       "        raise RuntimeError('always fails')\n    return e\n")
    assert c.invoke(FunctionName="async", InvocationType="Event",
                    Payload=b'{"n": 1}')["StatusCode"] == 202
    assert c.invoke(FunctionName="async", InvocationType="Event",
                    Payload=b'{"n": 2}')["StatusCode"] == 202
    deadline = time.time() + 60
    lines = []
    while time.time() < deadline:
        try:
            lines = log_messages(server, "async")
        except botocore.exceptions.ClientError:  # the log group comes with the first invocation
            lines = []
        if lines.count("ran 2") >= 3:
            break
        time.sleep(0.2)
    assert lines.count("ran 1") == 1
    assert lines.count("ran 2") == 3  # Lambda's two retries of a failed asynchronous call
