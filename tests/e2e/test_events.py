"""EventBridge through the real binary: a rule with a CloudWatch Logs target receives a real
job's "SageMaker Training Job State Change" events in order (read back with the Logs API);
PutEvents routes custom events and refuses aws.* sources; TestEventPattern; rule management and
its errors; accounts are isolated; a server killed -9 between a job change and its delivery
delivers after restart; a burst of 1,000 events is all delivered; a target that is gone becomes a
dead letter (`trainyard rules dead-letters`). Clients: boto3 1.26 (here), boto3 1.43 (pyenv,
subprocess), AWS CLI v2.9 and v1."""

import json
import os
import signal
import subprocess
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import HERE, TEST_CONFIG, Server, job_request, wait_for, wait_status
from test_accounts import ACCOUNT_A, ACCOUNT_B, KEY_B, write_two_accounts
from test_clients import AWS_V2, pyenv_tool

# Short retries so a failing target is a dead letter in about a second.
CONFIG = TEST_CONFIG + """
events:
  backoff_initial_ms: 100
  backoff_max_ms: 400
  max_retries: 2
  poll_ms: 100
"""
STATE_CHANGE = "SageMaker Training Job State Change"


def group_arn(account, name):
    return f"arn:aws:logs:us-east-1:{account}:log-group:{name}"


def client_b(srv, service):
    return boto3.session.Session(region_name=srv.region, **KEY_B).client(
        service, endpoint_url=srv.url, config=botocore.config.Config(retries={"max_attempts": 1}))


def refused(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def group_messages(logs, group):
    """Every message of the group in (timestamp, ingestion) order, all pages."""
    out, token = [], None
    for _ in range(1000):
        page = logs.filter_log_events(logGroupName=group, **({"nextToken": token} if token else {}))
        out += [e["message"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            return out
    raise AssertionError("filter_log_events never ended")


def wait_messages(logs, group, predicate, timeout=60):
    return wait_for(lambda: group_messages(logs, group), predicate, timeout=timeout, interval=0.2)


def make_server(base, config=CONFIG):
    s = Server(str(base / "data"), config=config)
    write_two_accounts(s.data_dir)
    return s


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("events")
    s = make_server(base).start()
    s.out_dir = str(base / "out")
    os.makedirs(s.out_dir, exist_ok=True)
    yield s
    s.stop()


def check_job_events(events, name, tags):
    """The events of one job, as delivered: in order, one per change, shaped as spec §1."""
    assert events, "no events"
    states = [(e["detail"]["TrainingJobStatus"], e["detail"]["SecondaryStatus"]) for e in events]
    assert states[0] == ("InProgress", "Starting"), states
    assert states[-1] == ("Completed", "Completed"), states
    for before, after in zip(states, states[1:]):
        assert before != after, states  # one event per change
    transitions = [len(e["detail"]["SecondaryStatusTransitions"]) for e in events]
    assert transitions == sorted(transitions), transitions  # every transition so far, in order
    for e in events:
        assert e["version"] == "0" and e["source"] == "aws.sagemaker"
        assert e["detail-type"] == STATE_CHANGE
        assert e["account"] == ACCOUNT_A and e["region"] == "us-east-1"
        assert e["resources"] == [e["detail"]["TrainingJobArn"]]
        d = e["detail"]
        assert d["TrainingJobName"] == name
        assert d["Tags"] == tags
        assert isinstance(d["CreationTime"], int) and d["CreationTime"] > 1e12  # epoch ms
        assert "FailureReason" in d and d["FailureReason"] is None
        for t in d["SecondaryStatusTransitions"]:
            assert isinstance(t["StartTime"], int) and t["StartTime"] > 1e12
    assert events[0]["detail"]["TrainingEndTime"] is None
    assert isinstance(events[-1]["detail"]["TrainingEndTime"], int)
    assert len({e["id"] for e in events}) == len(events)


def test_job_state_changes_reach_a_log_group_in_order(srv):
    sm, events, logs = srv.boto3(), srv.boto3("events"), srv.boto3("logs")
    logs.create_log_group(logGroupName="/trainyard/job-events")
    arn = events.put_rule(Name="job-changes", EventPattern=json.dumps(
        {"source": ["aws.sagemaker"], "detail-type": [STATE_CHANGE],
         "detail": {"TrainingJobName": [{"prefix": "evjob-"}]}}))["RuleArn"]
    assert arn == f"arn:aws:events:us-east-1:{ACCOUNT_A}:rule/job-changes"
    res = events.put_targets(Rule="job-changes", Targets=[
        {"Id": "log", "Arn": group_arn(ACCOUNT_A, "/trainyard/job-events")}])
    assert res["FailedEntryCount"] == 0 and res["FailedEntries"] == []
    sm.create_training_job(**job_request("evjob-1", srv.out_dir, "echo hello",
                                         Tags=[{"Key": "team", "Value": "ml"}]))
    sm.create_training_job(**job_request("other-1", srv.out_dir, "echo not-matched"))
    assert wait_status(sm, "evjob-1")["TrainingJobStatus"] == "Completed"
    assert wait_status(sm, "other-1")["TrainingJobStatus"] == "Completed"
    got = wait_messages(logs, "/trainyard/job-events",
                        lambda ms: any('"Completed"' in m and "evjob-1" in m for m in ms))
    delivered = [json.loads(m) for m in got]
    assert all(e["detail"]["TrainingJobName"] == "evjob-1" for e in delivered), delivered
    check_job_events(delivered, "evjob-1", {"team": "ml"})
    described = sm.describe_training_job(TrainingJobName="evjob-1")
    last = delivered[-1]["detail"]
    assert last["SecondaryStatusTransitions"][-1]["Status"] == \
        described["SecondaryStatusTransitions"][-1]["Status"]
    assert len(last["SecondaryStatusTransitions"]) == len(described["SecondaryStatusTransitions"])


def test_put_events_routes_custom_events_and_refuses_aws_sources(srv):
    events, logs = srv.boto3("events"), srv.boto3("logs")
    logs.create_log_group(logGroupName="/trainyard/custom")
    events.put_rule(Name="custom", EventPattern=json.dumps(
        {"source": ["my.app"], "detail": {"kind": ["a"]}}), Description="kind a only")
    events.put_targets(Rule="custom", Targets=[
        {"Id": "log", "Arn": group_arn(ACCOUNT_A, "/trainyard/custom")},
        {"Id": "shaped", "Arn": group_arn(ACCOUNT_A, "/trainyard/custom"),
         "InputTransformer": {"InputPathsMap": {"k": "$.detail.kind"},
                              "InputTemplate": '{"shaped": <k>}'}}])
    res = events.put_events(Entries=[
        {"Source": "my.app", "DetailType": "thing", "Detail": json.dumps({"kind": "a", "n": 1}),
         "Resources": ["r1"]},
        {"Source": "my.app", "DetailType": "thing", "Detail": json.dumps({"kind": "b"})},
        {"Source": "aws.sagemaker", "DetailType": STATE_CHANGE, "Detail": "{}"},
        {"Source": "my.app", "DetailType": "thing"},
        {"Source": "my.app", "DetailType": "thing", "Detail": "[1, 2]"},
    ])
    assert res["FailedEntryCount"] == 3, res
    codes = [e.get("ErrorCode") for e in res["Entries"]]
    assert codes == [None, None, "NotAuthorizedForSourceException", "InvalidArgument",
                     "MalformedDetail"], res
    got = wait_messages(logs, "/trainyard/custom", lambda ms: len(ms) >= 2)
    time.sleep(0.5)  # a wrongly routed kind-b event would arrive in this time
    got = [json.loads(m) for m in group_messages(logs, "/trainyard/custom")]
    shaped = [g for g in got if "shaped" in g]
    whole = [g for g in got if "shaped" not in g]
    assert shaped == [{"shaped": "a"}], got
    assert len(whole) == 1 and whole[0]["detail"] == {"kind": "a", "n": 1}, got
    assert whole[0]["source"] == "my.app" and whole[0]["detail-type"] == "thing"
    assert whole[0]["resources"] == ["r1"] and whole[0]["account"] == ACCOUNT_A
    assert whole[0]["id"] == res["Entries"][0]["EventId"]
    # More than 10 entries, or over 256 KiB, is refused whole.
    code, _ = refused(events.put_events, Entries=[
        {"Source": "my.app", "DetailType": "t", "Detail": "{}"}] * 11)
    assert code == "ValidationException"
    code, msg = refused(events.put_events, Entries=[
        {"Source": "my.app", "DetailType": "t", "Detail": json.dumps({"x": "y" * 200000})}] * 2)
    assert code == "ValidationException" and "over the limit" in msg


def test_test_event_pattern_and_pattern_errors(srv):
    events = srv.boto3("events")
    event = json.dumps({"id": "e1", "account": ACCOUNT_A, "source": "my.app",
                        "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                        "resources": ["arn:x"], "detail-type": "thing",
                        "detail": {"status": "Failed", "n": 3}})
    match = events.test_event_pattern(
        EventPattern=json.dumps({"detail": {"status": ["Failed"]}}), Event=event)
    assert match["Result"] is True
    miss = events.test_event_pattern(
        EventPattern=json.dumps({"detail": {"status": ["Completed"]}}), Event=event)
    assert miss["Result"] is False
    for bad in ['{"source": "x"}', "not json", "[1]"]:
        code, _ = refused(events.test_event_pattern, EventPattern=bad, Event=event)
        assert code == "InvalidEventPatternException", bad
        code, _ = refused(events.put_rule, Name="bad-pattern", EventPattern=bad)
        assert code == "InvalidEventPatternException", bad
    code, _ = refused(events.test_event_pattern, EventPattern='{"source": ["x"]}',
                      Event='{"source": "x"}')
    assert code == "ValidationException"
    code, _ = refused(events.put_rule, Name="nothing")
    assert code == "ValidationException"
    code, _ = refused(events.put_rule, Name="bad-cron", ScheduleExpression="cron(0 12 * * * *)")
    assert code == "ValidationException"
    assert events.put_rule(Name="sched", ScheduleExpression="rate(5 minutes)")["RuleArn"]


def test_rule_management(srv):
    events = srv.boto3("events")
    for i in range(3):
        events.put_rule(Name=f"mgmt-{i}", EventPattern='{"source": ["mgmt"]}')
    pages, token = [], None
    while True:
        page = events.list_rules(NamePrefix="mgmt-", Limit=2, **({"NextToken": token} if token else {}))
        pages.append([r["Name"] for r in page["Rules"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [["mgmt-0", "mgmt-1"], ["mgmt-2"]]
    d = events.describe_rule(Name="mgmt-0")
    assert d["State"] == "ENABLED" and d["EventPattern"] == '{"source": ["mgmt"]}'
    assert d["Arn"] == f"arn:aws:events:us-east-1:{ACCOUNT_A}:rule/mgmt-0"
    assert d["EventBusName"] == "default"
    events.disable_rule(Name="mgmt-0")
    assert events.describe_rule(Name="mgmt-0")["State"] == "DISABLED"
    events.enable_rule(Name="mgmt-0")
    assert events.describe_rule(Name="mgmt-0")["State"] == "ENABLED"
    events.put_targets(Rule="mgmt-0", Targets=[{"Id": "t", "Arn": group_arn(ACCOUNT_A, "/x")}])
    assert [t["Id"] for t in events.list_targets_by_rule(Rule="mgmt-0")["Targets"]] == ["t"]
    code, msg = refused(events.delete_rule, Name="mgmt-0")
    assert code == "ValidationException" and "targets" in msg
    code, _ = refused(events.put_targets, Rule="mgmt-0", Targets=[
        {"Id": f"t{i}", "Arn": group_arn(ACCOUNT_A, "/x")} for i in range(6)])
    assert code == "LimitExceededException"
    events.remove_targets(Rule="mgmt-0", Ids=["t"])
    events.delete_rule(Name="mgmt-0")
    events.delete_rule(Name="mgmt-0")  # idempotent, as EventBridge's
    code, _ = refused(events.describe_rule, Name="mgmt-0")
    assert code == "ResourceNotFoundException"
    code, _ = refused(events.enable_rule, Name="mgmt-0")
    assert code == "ResourceNotFoundException"
    code, _ = refused(events.put_targets, Rule="mgmt-0", Targets=[{"Id": "t", "Arn": "arn:x:y"}])
    assert code == "ResourceNotFoundException"
    code, _ = refused(events.put_rule, Name="on-bus", EventPattern='{"source": ["x"]}',
                      EventBusName="custom-bus")
    assert code == "ResourceNotFoundException"
    # The CLI shows the account's rules.
    out = srv.cli("rules", "list").stdout
    assert "mgmt-1" in out and "mgmt-2" in out and "mgmt-0" not in out, out
    out = srv.cli("rules", "describe", "mgmt-1").stdout
    assert "Arn:" in out and "rule/mgmt-1" in out and '{"source": ["mgmt"]}' in out, out
    assert srv.cli("rules", "describe", "mgmt-0", check=False).returncode == 1


def test_accounts_are_isolated_and_a_gone_target_is_a_dead_letter(srv):
    events_a, logs_a = srv.boto3("events"), srv.boto3("logs")
    events_b = client_b(srv, "events")
    logs_a.create_log_group(logGroupName="/trainyard/a-only")
    events_a.put_rule(Name="iso", EventPattern='{"source": ["iso.app"]}')
    events_a.put_targets(Rule="iso", Targets=[
        {"Id": "a", "Arn": group_arn(ACCOUNT_A, "/trainyard/a-only")},
        {"Id": "gone", "Arn": group_arn(ACCOUNT_A, "/trainyard/never-made")}])
    # B sees none of A's rules, and its own rule aimed at A's group cannot write there.
    assert [r["Name"] for r in events_b.list_rules(NamePrefix="iso")["Rules"]] == []
    code, _ = refused(events_b.describe_rule, Name="iso")
    assert code == "ResourceNotFoundException"
    events_b.put_rule(Name="iso", EventPattern='{"source": ["iso.app"]}')
    events_b.put_targets(Rule="iso", Targets=[
        {"Id": "intruder", "Arn": group_arn(ACCOUNT_A, "/trainyard/a-only")}])
    assert events_b.describe_rule(Name="iso")["Arn"].endswith(f":{ACCOUNT_B}:rule/iso")
    events_b.put_events(Entries=[{"Source": "iso.app", "DetailType": "t",
                                  "Detail": json.dumps({"from": "b"})}])
    events_a.put_events(Entries=[{"Source": "iso.app", "DetailType": "t",
                                  "Detail": json.dumps({"from": "a"})}])
    got = wait_messages(logs_a, "/trainyard/a-only", lambda ms: len(ms) >= 1)

    def dead(env_args):
        res = srv.cli("rules", "dead-letters", "--json", *env_args)
        return json.loads(res.stdout)["DeadLetters"]
    letters = wait_for(lambda: dead([]), lambda d: len(d) >= 1)
    assert [d["TargetId"] for d in letters] == ["gone"], letters
    assert "does not exist" in letters[0]["Error"]
    assert json.loads(letters[0]["Payload"])["detail"] == {"from": "a"}
    assert letters[0]["RuleArn"] == f"arn:aws:events:us-east-1:{ACCOUNT_A}:rule/iso"
    text = srv.cli("rules", "dead-letters").stdout
    assert "never-made" in text and "does not exist" in text, text
    # B's delivery to A's group is B's dead letter, never A's log line.
    b_env = srv.client_env()
    b_env.update({"AWS_ACCESS_KEY_ID": KEY_B["aws_access_key_id"],
                  "AWS_SECRET_ACCESS_KEY": KEY_B["aws_secret_access_key"]})
    b_env.pop("AWS_PROFILE")
    import conftest
    res = wait_for(lambda: subprocess.run(
        [conftest.trainyard_bin(), "rules", "dead-letters", "--json"], env=b_env,
        capture_output=True, text=True, timeout=60),
        lambda r: r.returncode == 0 and json.loads(r.stdout)["DeadLetters"])
    b_letters = json.loads(res.stdout)["DeadLetters"]
    assert [d["TargetId"] for d in b_letters] == ["intruder"], b_letters
    assert "not in account" in b_letters[0]["Error"]
    got = [json.loads(m) for m in group_messages(logs_a, "/trainyard/a-only")]
    assert [g["detail"] for g in got] == [{"from": "a"}], got


def test_a_burst_of_1000_events_is_all_delivered(srv):
    events, logs = srv.boto3("events"), srv.boto3("logs")
    logs.create_log_group(logGroupName="/trainyard/burst")
    events.put_rule(Name="burst", EventPattern='{"source": ["burst.app"]}')
    events.put_targets(Rule="burst", Targets=[
        {"Id": "log", "Arn": group_arn(ACCOUNT_A, "/trainyard/burst"), "InputPath": "$.detail"}])
    for batch in range(100):
        res = events.put_events(Entries=[
            {"Source": "burst.app", "DetailType": "n", "Detail": json.dumps({"n": batch * 10 + i})}
            for i in range(10)])
        assert res["FailedEntryCount"] == 0
    got = wait_messages(logs, "/trainyard/burst", lambda ms: len(ms) >= 1000, timeout=120)
    assert sorted(json.loads(m)["n"] for m in got) == list(range(1000))


def test_current_boto3_and_aws_clis(srv, tmp_path):
    python, env = pyenv_tool(srv, "python3")
    res = subprocess.run([python, os.path.join(HERE, "clients", "events_new.py"), ACCOUNT_A],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "events_new: OK" in res.stdout

    env = srv.client_env()
    env["AWS_PAGER"] = ""

    def v2(*args, check=True):
        r = subprocess.run([AWS_V2, "--endpoint-url", srv.url, "--output", "json", "events",
                            *args], env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"aws events {args}: {r.stdout}\n{r.stderr}"
            return json.loads(r.stdout) if r.stdout.strip() else {}
        return r
    created = v2("put-rule", "--name", "cli-v2", "--event-pattern", '{"source":["cli.app"]}')
    assert created["RuleArn"].endswith(":rule/cli-v2")
    assert "cli-v2" in [r["Name"] for r in v2("list-rules", "--name-prefix", "cli-")["Rules"]]
    put = v2("put-events", "--entries", json.dumps([
        {"Source": "cli.app", "DetailType": "t", "Detail": "{}"},
        {"Source": "aws.events", "DetailType": "t", "Detail": "{}"}]))
    assert put["FailedEntryCount"] == 1
    assert put["Entries"][1]["ErrorCode"] == "NotAuthorizedForSourceException"
    event = {"id": "1", "account": ACCOUNT_A, "source": "cli.app", "time": "2026-01-01T00:00:00Z",
             "region": "us-east-1", "resources": [], "detail-type": "t", "detail": {}}
    assert v2("test-event-pattern", "--event-pattern", '{"source":["cli.app"]}',
              "--event", json.dumps(event))["Result"] is True
    bad = v2("put-rule", "--name", "cli-bad", "--event-pattern", '{"source":"x"}', check=False)
    assert bad.returncode != 0 and "InvalidEventPatternException" in bad.stderr, bad.stderr
    # AWS CLI v1 (pyenv `aws`), which honours AWS_ENDPOINT_URL.
    aws_v1, env1 = pyenv_tool(srv, "aws")
    r = subprocess.run([aws_v1, "events", "describe-rule", "--name", "cli-v2", "--output", "json"],
                       env=env1, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["EventPattern"] == '{"source":["cli.app"]}'


def test_killed_between_a_job_change_and_its_delivery(tmp_path):
    """The first server stores the job's events with each change but delivers nothing (paused);
    it is killed -9; the next server delivers them all, in order."""
    paused = make_server(tmp_path, CONFIG + "  paused: true\n").start()
    try:
        sm, events, logs = paused.boto3(), paused.boto3("events"), paused.boto3("logs")
        logs.create_log_group(logGroupName="/trainyard/crash")
        events.put_rule(Name="crash", EventPattern='{"source": ["aws.sagemaker"]}')
        events.put_targets(Rule="crash", Targets=[
            {"Id": "log", "Arn": group_arn(ACCOUNT_A, "/trainyard/crash")}])
        out = str(tmp_path / "out")
        os.makedirs(out, exist_ok=True)
        sm.create_training_job(**job_request("crash-job", out, "echo hi",
                                             Tags=[{"Key": "k", "Value": "v"}]))
        assert wait_status(sm, "crash-job")["TrainingJobStatus"] == "Completed"
        assert group_messages(logs, "/trainyard/crash") == []
        paused.proc.send_signal(signal.SIGKILL)
        paused.proc.wait(timeout=30)
    finally:
        paused.stop()
    with open(paused.config, "w") as f:
        f.write(CONFIG)
    again = paused.start()
    try:
        logs = again.boto3("logs")
        got = wait_messages(logs, "/trainyard/crash",
                            lambda ms: any('"Completed"' in m for m in ms))
        check_job_events([json.loads(m) for m in got], "crash-job", {"k": "v"})
    finally:
        again.stop()
