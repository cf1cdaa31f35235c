"""The clients the other governance tests leave out: the JS SDK v3 for EventBridge
(@aws-sdk/client-eventbridge), and AWS CLI v1 (pyenv `aws`, which honours AWS_ENDPOINT_URL) for
Lambda, SNS and CloudWatch alarms. Each drives the real server and checks what it did."""
import base64
import io
import json
import subprocess
import zipfile

from conftest import wait_for
from test_clients import pyenv_tool
from test_js_sdk import js, ok as js_ok

HANDLER = b"def handler(event, context):\n    return {'echo': event, 'fn': context.function_name}\n"


def zipped():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", HANDLER)
    return buf.getvalue()


def test_js_sdk_eventbridge_routes_a_custom_event_to_a_log_group(server, tmp_path):
    logs = server.boto3("logs")
    logs.create_log_group(logGroupName="/js/events")
    account = logs.describe_log_groups()["logGroups"][0]["arn"].split(":")[4]
    group_arn = f"arn:aws:logs:us-east-1:{account}:log-group:/js/events"
    put_rule, put_targets, listed, tested, bad, put = js(server, tmp_path, [
        {"client": "events", "op": "PutRule", "input": {
            "Name": "js-rule", "EventPattern": json.dumps({"source": ["js.app"],
                                                           "detail": {"n": [{"numeric": [">", 1]}]}})}},
        {"client": "events", "op": "PutTargets", "input": {
            "Rule": "js-rule", "Targets": [{"Id": "log", "Arn": group_arn}]}},
        {"client": "events", "op": "ListRules", "input": {"NamePrefix": "js-"}},
        {"client": "events", "op": "TestEventPattern", "input": {
            "EventPattern": json.dumps({"source": ["js.app"]}),
            "Event": json.dumps({"id": "1", "account": account, "source": "js.app",
                                 "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                                 "resources": [], "detail-type": "t", "detail": {}})}},
        {"client": "events", "op": "PutRule", "input": {"Name": "js-bad", "EventPattern": "{"}},
        {"client": "events", "op": "PutEvents", "input": {"Entries": [
            {"Source": "js.app", "DetailType": "t", "Detail": json.dumps({"n": 2})},
            {"Source": "js.app", "DetailType": "t", "Detail": json.dumps({"n": 1})},
            {"Source": "aws.sagemaker", "DetailType": "t", "Detail": "{}"}]}},
    ])
    assert js_ok(put_rule)["RuleArn"].endswith(":rule/js-rule")
    assert js_ok(put_targets)["FailedEntryCount"] == 0
    assert [r["Name"] for r in js_ok(listed)["Rules"]] == ["js-rule"]
    assert js_ok(tested)["Result"] is True
    assert bad["error"]["name"] == "InvalidEventPatternException", bad
    out = js_ok(put)
    assert out["FailedEntryCount"] == 1
    assert out["Entries"][2]["ErrorCode"] == "NotAuthorizedForSourceException"
    # Only the event with n > 1 matches the rule, and it reaches the group.
    got = wait_for(lambda: logs.filter_log_events(logGroupName="/js/events")["events"],
                   lambda evs: len(evs) >= 1, timeout=30, interval=0.2)
    delivered = [json.loads(e["message"]) for e in got]
    assert [d["detail"] for d in delivered] == [{"n": 2}]
    assert delivered[0]["id"] == out["Entries"][0]["EventId"]


def v1(server, *args, check=True):
    aws, env = pyenv_tool(server, "aws")
    res = subprocess.run([aws, "--output", "json", *args], env=env, capture_output=True, text=True,
                         timeout=60)
    if check:
        assert res.returncode == 0, f"aws {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
        return json.loads(res.stdout) if res.stdout.strip() else {}
    return res


def test_aws_cli_v1_lambda_sns_and_alarms(server, tmp_path):
    code = tmp_path / "code.zip"
    code.write_bytes(zipped())
    fn = v1(server, "lambda", "create-function", "--function-name", "echo", "--runtime",
            "python3.11", "--role", "arn:aws:iam::123456789012:role/r", "--handler", "app.handler",
            "--zip-file", f"fileb://{code}")
    assert fn["Handler"] == "app.handler" and fn["Runtime"] == "python3.11"
    out = tmp_path / "out.json"
    inv = v1(server, "lambda", "invoke", "--function-name", "echo", "--payload", '{"x": 1}',
             "--log-type", "Tail", str(out))
    assert inv["StatusCode"] == 200 and "FunctionError" not in inv
    assert json.loads(out.read_text()) == {"echo": {"x": 1}, "fn": "echo"}
    assert "REPORT RequestId:" in base64.b64decode(inv["LogResult"]).decode()
    assert [f["FunctionName"] for f in v1(server, "lambda", "list-functions")["Functions"]] == ["echo"]

    topic = v1(server, "sns", "create-topic", "--name", "v1-topic")["TopicArn"]
    sub = v1(server, "sns", "subscribe", "--topic-arn", topic, "--protocol", "lambda",
             "--notification-endpoint", fn["FunctionArn"])
    assert sub["SubscriptionArn"].startswith(topic + ":")
    assert v1(server, "sns", "publish", "--topic-arn", topic, "--message", "hello")["MessageId"]
    # The function ran for the message: its log group has a second invocation.
    logs = server.boto3("logs")
    wait_for(lambda: "".join(e["message"] for e in logs.filter_log_events(
        logGroupName="/aws/lambda/echo")["events"]),
        lambda text: text.count("REPORT RequestId:") >= 2, timeout=30, interval=0.2)

    v1(server, "cloudwatch", "put-metric-alarm", "--alarm-name", "v1-alarm", "--namespace", "V1",
       "--metric-name", "M", "--statistic", "Average", "--period", "60", "--evaluation-periods",
       "1", "--threshold", "1", "--comparison-operator", "GreaterThanThreshold",
       "--alarm-actions", topic)
    alarm = v1(server, "cloudwatch", "describe-alarms", "--alarm-names", "v1-alarm")["MetricAlarms"][0]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA" and alarm["AlarmActions"] == [topic]
    v1(server, "cloudwatch", "set-alarm-state", "--alarm-name", "v1-alarm", "--state-value",
       "ALARM", "--state-reason", "testing")
    # The state change published to the topic, whose subscriber (the function) ran again.
    wait_for(lambda: "".join(e["message"] for e in logs.filter_log_events(
        logGroupName="/aws/lambda/echo")["events"]),
        lambda text: text.count("REPORT RequestId:") >= 3, timeout=30, interval=0.2)
    history = v1(server, "cloudwatch", "describe-alarm-history", "--alarm-name", "v1-alarm")
    assert any(h["HistoryItemType"] == "StateUpdate" for h in history["AlarmHistoryItems"])
    bad = v1(server, "cloudwatch", "put-metric-alarm", "--alarm-name", "x", "--namespace", "V1",
             "--metric-name", "M", "--period", "60", "--evaluation-periods", "1",
             "--threshold", "1", "--comparison-operator", "Sideways", check=False)
    assert bad.returncode != 0 and "ValidationError" in bad.stderr, bad.stderr
