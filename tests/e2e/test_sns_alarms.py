"""SNS topics and CloudWatch alarms through the real binary and real clients: boto3 1.26 (AWS
query for both services), boto3 1.43 (AWS JSON 1.0 for CloudWatch, in a subprocess), AWS CLI
v2.9 and the JS SDK v3. An http subscriber on loopback (a small server in this process) receives
what SNS POSTs; a 10-second alarm over put metric data goes OK -> ALARM and notifies it through
the topic with CloudWatch's message; SetAlarmState fires actions; accounts do not see each
other's topics or alarms; both survive a restart."""

import http.server
import json
import os
import queue
import subprocess
import threading
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import HERE, Server
from test_accounts import KEY_B, write_two_accounts
from test_clients import AWS_V2, pyenv_tool
from test_js_sdk import js, ok as js_ok

REGION_LONG = "US East (N. Virginia)"


class Hook:
    """An http endpoint on 127.0.0.1 that records every POST (headers, body)."""

    def __init__(self):
        self.posts = queue.Queue()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                hook.posts.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def next(self, timeout=60, where=lambda h, b: True):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                headers, body = self.posts.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                break
            if where(headers, body):
                return headers, body
        raise AssertionError("no matching POST reached the subscriber")

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def client(server, service, **keys):
    session = boto3.session.Session(region_name=server.region, **keys) if keys else None
    if session is None:
        return server.boto3(service)
    return session.client(service, endpoint_url=server.url,
                          config=botocore.config.Config(retries={"max_attempts": 1}))


def code_of(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"]


def wait_state(cw, name, state, timeout=90):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        alarms = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        last = alarms[0] if alarms else None
        if last and last["StateValue"] == state:
            return last
        time.sleep(0.5)
    raise AssertionError(f"alarm {name} never reached {state}: {last}")


def test_topic_and_http_subscriber_on_loopback(server, hook):
    sns = client(server, "sns")
    arn = sns.create_topic(Name="alerts")["TopicArn"]
    account = arn.split(":")[4]
    assert arn == f"arn:aws:sns:us-east-1:{account}:alerts" and len(account) == 12
    assert sns.create_topic(Name="alerts")["TopicArn"] == arn  # idempotent by name
    sub = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=hook.url,
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert sub.startswith(arn + ":")
    # Only this machine's endpoints, and only the protocols served.
    assert code_of(sns.subscribe, TopicArn=arn, Protocol="http",
                   Endpoint="http://example.com/hook") == "InvalidParameter"
    assert code_of(sns.subscribe, TopicArn=arn, Protocol="email",
                   Endpoint="a@example.com") == "InvalidParameter"
    assert code_of(sns.get_topic_attributes, TopicArn=arn + "-nope") == "NotFound"

    msg_id = sns.publish(TopicArn=arn, Subject="hello", Message="the message",
                         MessageAttributes={"job": {"DataType": "String",
                                                    "StringValue": "j1"}})["MessageId"]
    headers, body = hook.next()
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-message-id"] == msg_id
    assert headers["x-amz-sns-topic-arn"] == arn
    assert headers["x-amz-sns-subscription-arn"] == sub
    n = json.loads(body)
    assert n["Type"] == "Notification" and n["MessageId"] == msg_id and n["TopicArn"] == arn
    assert n["Subject"] == "hello" and n["Message"] == "the message"
    assert n["MessageAttributes"] == {"job": {"Type": "String", "Value": "j1"}}
    assert n["Timestamp"].endswith("Z") and n["SignatureVersion"] == "1"

    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attrs["TopicArn"] == arn and attrs["SubscriptionsConfirmed"] == "1"
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [arn]
    subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert subs == [{"SubscriptionArn": sub, "Owner": account, "Protocol": "http",
                     "Endpoint": hook.url, "TopicArn": arn}]
    sns.unsubscribe(SubscriptionArn=sub)
    assert sns.list_subscriptions()["Subscriptions"] == []
    sns.delete_topic(TopicArn=arn)
    assert sns.list_topics()["Topics"] == []


def test_ten_second_alarm_goes_ok_to_alarm_and_notifies_through_sns(server, hook):
    sns, cw = client(server, "sns"), client(server, "cloudwatch")
    topic = sns.create_topic(Name="idle")["TopicArn"]
    account = topic.split(":")[4]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=hook.url)
    dims = [{"Name": "Host", "Value": "job-1/algo-1"}]
    cw.put_metric_alarm(AlarmName="gpu-hot", MetricName="GPUUtilization", Namespace="Test/Jobs",
                        Dimensions=dims, Statistic="Average", Period=10, EvaluationPeriods=1,
                        Threshold=50.0, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=[topic], OKActions=[topic])
    alarm = cw.describe_alarms(AlarmNames=["gpu-hot"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:{account}:alarm:gpu-hot"

    def put(value):
        cw.put_metric_data(Namespace="Test/Jobs", MetricData=[{
            "MetricName": "GPUUtilization", "Dimensions": dims, "Value": value,
            "StorageResolution": 1}])

    put(5.0)
    wait_state(cw, "gpu-hot", "OK")
    headers, body = hook.next(where=lambda h, b: json.loads(b).get("Subject", "").startswith("OK:"))
    put(97.5)
    wait_state(cw, "gpu-hot", "ALARM")
    headers, body = hook.next(where=lambda h, b: json.loads(b).get("Subject", "").startswith("ALARM"))
    n = json.loads(body)
    assert n["Subject"] == f'ALARM: "gpu-hot" in {REGION_LONG}'
    m = json.loads(n["Message"])
    assert list(m) == ["AlarmName", "AlarmDescription", "AWSAccountId",
                       "AlarmConfigurationUpdatedTimestamp", "NewStateValue", "NewStateReason",
                       "StateChangeTime", "Region", "AlarmArn", "OldStateValue", "OKActions",
                       "AlarmActions", "InsufficientDataActions", "Trigger"]
    assert m["AlarmName"] == "gpu-hot" and m["AlarmDescription"] is None
    assert m["AWSAccountId"] == account and m["Region"] == REGION_LONG
    # OK, unless the 5.0 left the evaluation range (3 periods) before 97.5 came on a slow machine.
    assert m["NewStateValue"] == "ALARM" and m["OldStateValue"] in ("OK", "INSUFFICIENT_DATA")
    assert m["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [97.5 (")
    assert "was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition)." \
        in m["NewStateReason"]
    assert len(m["StateChangeTime"]) == 28 and m["StateChangeTime"].endswith("+0000")
    assert m["AlarmActions"] == [topic] and m["OKActions"] == [topic]
    assert m["Trigger"] == {
        "MetricName": "GPUUtilization", "Namespace": "Test/Jobs", "StatisticType": "Statistic",
        "Statistic": "AVERAGE", "Unit": None,
        "Dimensions": [{"value": "job-1/algo-1", "name": "Host"}], "Period": 10,
        "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanThreshold", "Threshold": 50.0,
        "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""}
    assert '"Threshold":50.0' in n["Message"]  # a float, as CloudWatch writes it

    deadline = time.time() + 30
    while True:  # the action's outcome is recorded once the subscriber has answered
        history = cw.describe_alarm_history(AlarmName="gpu-hot")["AlarmHistoryItems"]
        if any(h["HistoryItemType"] == "Action" for h in history) or time.time() > deadline:
            break
        time.sleep(0.2)
    kinds = [h["HistoryItemType"] for h in history]
    assert "ConfigurationUpdate" in kinds and kinds.count("StateUpdate") >= 2
    assert any(h["HistoryItemType"] == "Action" and h["HistorySummary"].startswith(
        "Successfully executed action " + topic) for h in history)
    assert [a["AlarmName"] for a in cw.describe_alarms_for_metric(
        MetricName="GPUUtilization", Namespace="Test/Jobs", Dimensions=dims)["MetricAlarms"]] == \
        ["gpu-hot"]


def aws_v2(server, *args):
    env = server.client_env()
    env["AWS_PAGER"] = ""
    res = subprocess.run([AWS_V2, "--endpoint-url", server.url, "--output", "json", *args],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"aws {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout) if res.stdout.strip() else {}


def test_set_alarm_state_fires_actions_with_aws_cli_v2(server, hook):
    topic = aws_v2(server, "sns", "create-topic", "--name", "cli-topic")["TopicArn"]
    aws_v2(server, "sns", "subscribe", "--topic-arn", topic, "--protocol", "http",
           "--notification-endpoint", hook.url)
    aws_v2(server, "cloudwatch", "put-metric-alarm", "--alarm-name", "cli-alarm",
           "--metric-name", "Loss", "--namespace", "Test/Cli", "--statistic", "Maximum",
           "--period", "60", "--evaluation-periods", "3", "--datapoints-to-alarm", "2",
           "--threshold", "1", "--comparison-operator", "GreaterThanOrEqualToThreshold",
           "--treat-missing-data", "ignore", "--alarm-actions", topic)
    aws_v2(server, "cloudwatch", "set-alarm-state", "--alarm-name", "cli-alarm",
           "--state-value", "ALARM", "--state-reason", "testing the stopper")
    _, body = hook.next()
    n = json.loads(body)
    assert n["Subject"] == f'ALARM: "cli-alarm" in {REGION_LONG}'
    m = json.loads(n["Message"])
    assert m["NewStateReason"] == "testing the stopper" and m["Trigger"]["Statistic"] == "MAXIMUM"
    assert m["Trigger"]["DatapointsToAlarm"] == 2 and m["Trigger"]["TreatMissingData"] == "ignore"
    alarms = aws_v2(server, "cloudwatch", "describe-alarms", "--alarm-names", "cli-alarm")
    assert alarms["MetricAlarms"][0]["StateValue"] == "ALARM"
    # trainyard's own commands show the same.
    listed = server.cli("alarms", "list").stdout
    assert "cli-alarm" in listed and "ALARM" in listed and "Test/Cli Loss" in listed, listed
    shown = server.cli("alarms", "describe", "cli-alarm").stdout
    assert "testing the stopper" in shown and "Maximum over 60 s, 2 of 3" in shown, shown
    # The action's outcome is recorded once the subscriber has answered.
    deadline = time.time() + 30
    while "Successfully executed action " + topic not in shown and time.time() < deadline:
        time.sleep(0.2)
        shown = server.cli("alarms", "describe", "cli-alarm").stdout
    assert "Successfully executed action " + topic in shown, shown
    assert topic in server.cli("topics", "list").stdout
    shown = server.cli("topics", "describe", "cli-topic").stdout
    assert hook.url in shown and "Subscriptions: 1" in shown, shown
    assert server.cli("alarms", "describe", "ghost", check=False).returncode == 1
    # Disabled actions: a change of state notifies no one.
    aws_v2(server, "cloudwatch", "disable-alarm-actions", "--alarm-names", "cli-alarm")
    aws_v2(server, "cloudwatch", "set-alarm-state", "--alarm-name", "cli-alarm",
           "--state-value", "OK", "--state-reason", "quiet")
    assert aws_v2(server, "cloudwatch", "describe-alarms")["MetricAlarms"][0]["ActionsEnabled"] \
        is False
    aws_v2(server, "cloudwatch", "delete-alarms", "--alarm-names", "cli-alarm")
    assert aws_v2(server, "cloudwatch", "describe-alarms")["MetricAlarms"] == []
    assert [t["TopicArn"] for t in aws_v2(server, "sns", "list-topics")["Topics"]] == [topic]
    assert hook.posts.empty()


def test_boto3_new_speaks_json_to_alarms(server, hook):
    sns = client(server, "sns")
    topic = sns.create_topic(Name="json-topic")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=hook.url)
    python, env = pyenv_tool(server, "python3")
    calls = [
        {"op": "put_metric_alarm", "args": {
            "AlarmName": "j1", "MetricName": "M", "Namespace": "Test/Json",
            "ExtendedStatistic": "p90", "Period": 30, "EvaluationPeriods": 2, "Threshold": 3.5,
            "ComparisonOperator": "LessThanThreshold", "AlarmActions": [topic],
            # ignore: no evaluation moves the state SetAlarmState sets below.
            "TreatMissingData": "ignore"}},
        {"op": "describe_alarms", "args": {"AlarmNamePrefix": "j"}},
        {"op": "set_alarm_state", "args": {"AlarmName": "j1", "StateValue": "ALARM",
                                           "StateReason": "json"}},
        {"op": "set_alarm_state", "args": {"AlarmName": "ghost", "StateValue": "ALARM",
                                           "StateReason": "x"}},
        {"op": "put_metric_alarm", "args": {
            "AlarmName": "bad", "MetricName": "M", "Namespace": "Test/Json",
            "Statistic": "Average", "Period": 45, "EvaluationPeriods": 1, "Threshold": 1,
            "ComparisonOperator": "LessThanThreshold"}},
        {"op": "describe_alarm_history", "args": {"AlarmName": "j1",
                                                  "HistoryItemType": "StateUpdate"}},
    ]
    res = subprocess.run([python, os.path.join(HERE, "clients", "cloudwatch_calls.py")],
                         input=json.dumps({"calls": calls}), env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    put, described, set_ok, ghost, bad, history = json.loads(res.stdout)
    assert "ok" in put, put
    a = described["ok"]["MetricAlarms"][0]
    assert a["ExtendedStatistic"] == "p90" and a["Period"] == 30 and a["Threshold"] == 3.5
    assert "ok" in set_ok, set_ok
    assert ghost["error"]["Code"] == "ResourceNotFound", ghost
    assert bad["error"]["Code"] == "InvalidParameterValue", bad
    assert history["ok"]["AlarmHistoryItems"][0]["HistorySummary"].endswith("to ALARM")
    m = json.loads(json.loads(hook.next()[1])["Message"])
    assert m["Trigger"]["StatisticType"] == "ExtendedStatistic"
    assert m["Trigger"]["ExtendedStatistic"] == "p90"


def test_js_sdk_sns_and_alarms(server, hook, tmp_path):
    account = server.boto3("sns").create_topic(Name="js-topic")["TopicArn"].split(":")[4]
    created, subscribed, published, listed, put, described = js(server, tmp_path, [
        {"client": "sns", "op": "CreateTopic", "input": {"Name": "js-topic"}},
        {"client": "sns", "op": "Subscribe", "input": {
            "TopicArn": f"arn:aws:sns:us-east-1:{account}:js-topic", "Protocol": "http",
            "Endpoint": hook.url}},
        {"client": "sns", "op": "Publish", "input": {
            "TopicArn": f"arn:aws:sns:us-east-1:{account}:js-topic", "Message": "from js",
            "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "3"}}}},
        {"client": "sns", "op": "ListTopics", "input": {}},
        {"client": "cloudwatch", "op": "PutMetricAlarm", "input": {
            "AlarmName": "js-alarm", "MetricName": "M", "Namespace": "Test/Js",
            "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 1,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "breaching"}},
        {"client": "cloudwatch", "op": "DescribeAlarms", "input": {"AlarmNames": ["js-alarm"]}},
    ])
    topic = js_ok(created)["TopicArn"]
    assert js_ok(subscribed)["SubscriptionArn"].startswith(topic + ":")
    msg_id = js_ok(published)["MessageId"]
    assert [t["TopicArn"] for t in js_ok(listed)["Topics"]] == [topic]
    js_ok(put)
    assert js_ok(described)["MetricAlarms"][0]["TreatMissingData"] == "breaching"
    headers, body = hook.next()
    assert headers["x-amz-sns-message-id"] == msg_id
    assert json.loads(body)["MessageAttributes"] == {"n": {"Type": "Number", "Value": "3"}}


def test_accounts_are_isolated_and_state_survives_a_restart(tmp_path, hook):
    srv = Server(str(tmp_path / "data"))
    write_two_accounts(srv.data_dir)
    srv.start()
    try:
        sns_a, cw_a = client(srv, "sns"), client(srv, "cloudwatch")
        sns_b, cw_b = client(srv, "sns", **KEY_B), client(srv, "cloudwatch", **KEY_B)
        topic = sns_a.create_topic(Name="mine")["TopicArn"]
        sns_a.subscribe(TopicArn=topic, Protocol="http", Endpoint=hook.url)
        cw_a.put_metric_alarm(AlarmName="a-alarm", MetricName="M", Namespace="Test/A",
                              Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1,
                              ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic],
                              TreatMissingData="ignore")
        assert sns_b.list_topics()["Topics"] == []
        assert code_of(sns_b.publish, TopicArn=topic, Message="x") == "NotFound"
        assert code_of(sns_b.subscribe, TopicArn=topic, Protocol="http",
                       Endpoint=hook.url) == "NotFound"
        assert code_of(sns_b.get_topic_attributes, TopicArn=topic) == "NotFound"
        assert cw_b.describe_alarms()["MetricAlarms"] == []
        assert code_of(cw_b.set_alarm_state, AlarmName="a-alarm", StateValue="ALARM",
                       StateReason="x") == "ResourceNotFound"
        # B cannot point its alarm at A's topic.
        assert code_of(cw_b.put_metric_alarm, AlarmName="b", MetricName="M", Namespace="Test/B",
                       Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1,
                       ComparisonOperator="GreaterThanThreshold",
                       AlarmActions=[topic]) == "InvalidParameterValue"
        cw_b.delete_alarms(AlarmNames=["a-alarm"])  # not B's: nothing happens
        cw_a.set_alarm_state(AlarmName="a-alarm", StateValue="ALARM", StateReason="before restart")
        hook.next()

        srv.stop()
        srv.start()
        sns_a, cw_a = client(srv, "sns"), client(srv, "cloudwatch")
        assert [t["TopicArn"] for t in sns_a.list_topics()["Topics"]] == [topic]
        alarm = cw_a.describe_alarms(AlarmNames=["a-alarm"])["MetricAlarms"][0]
        assert alarm["StateValue"] == "ALARM" and alarm["StateReason"] == "before restart"
        sns_a.publish(TopicArn=topic, Message="after restart")
        _, body = hook.next(where=lambda h, b: json.loads(b)["Message"] == "after restart")
    finally:
        srv.stop()


def test_alarms_over_rpc_v2_cbor(server):
    """What the Go (≥ v1.52), Ruby and Java SDKs send for CloudWatch."""
    from test_codecs import CBOR, cbor_decode, cbor_encode, send

    def call(op, body):
        r = send(server, f"/service/GraniteServiceVersion20100801/operation/{op}",
                 cbor_encode(body), CBOR, scope="monitoring")
        import base64
        data = base64.b64decode(r["body_b64"])
        return r["status"], (cbor_decode(data) if data else None)

    status, body = call("PutMetricAlarm", {
        "AlarmName": "cbor-alarm", "MetricName": "M", "Namespace": "Test/Cbor",
        "Statistic": "Minimum", "Period": 20, "EvaluationPeriods": 2, "Threshold": 0.25,
        "ComparisonOperator": "LessThanOrEqualToThreshold", "TreatMissingData": "ignore"})
    assert (status, body) == (200, None)
    status, body = call("DescribeAlarms", {"AlarmNames": ["cbor-alarm"]})
    assert status == 200, body
    a = body["MetricAlarms"][0]
    assert a["AlarmName"] == "cbor-alarm" and a["Period"] == 20 and a["Threshold"] == 0.25
    assert a["StateValue"] == "INSUFFICIENT_DATA" and a["StateUpdatedTimestamp"][0] == "tag"
    status, body = call("SetAlarmState", {"AlarmName": "nope", "StateValue": "OK",
                                          "StateReason": "x"})
    assert status == 404 and body["__type"].endswith("ResourceNotFound"), body
