"""EventBridge with the current boto3 (pyenv `python3`, boto3 1.43): a rule on a custom source
with a logs target, a routed PutEvents entry read back from the group, TestEventPattern, an
`aws.*` source refused per entry, a bad pattern refused. Prints "events_new: OK".

usage: python3 events_new.py ACCOUNT      exits non-zero with a message on any problem
"""

import json
import sys
import time

import boto3
import botocore.exceptions

GROUP = "/events-new/target"


def fail(msg):
    sys.exit(f"events_new: FAIL: {msg}")


def main():
    account = sys.argv[1]
    events = boto3.client("events")
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    arn = events.put_rule(Name="new-boto3", EventPattern=json.dumps(
        {"source": ["new.app"], "detail": {"n": [{"numeric": [">", 0]}]}}))["RuleArn"]
    if arn != f"arn:aws:events:us-east-1:{account}:rule/new-boto3":
        fail(f"rule arn {arn}")
    res = events.put_targets(Rule="new-boto3", Targets=[{
        "Id": "logs", "Arn": f"arn:aws:logs:us-east-1:{account}:log-group:{GROUP}",
        "InputPath": "$.detail"}])
    if res["FailedEntryCount"] != 0:
        fail(f"put_targets {res}")
    res = events.put_events(Entries=[
        {"Source": "new.app", "DetailType": "t", "Detail": json.dumps({"n": 5, "who": "new"})},
        {"Source": "aws.sagemaker", "DetailType": "t", "Detail": "{}"},
    ])
    if res["FailedEntryCount"] != 1 or "EventId" not in res["Entries"][0] or \
            res["Entries"][1].get("ErrorCode") != "NotAuthorizedForSourceException":
        fail(f"put_events {res}")
    deadline = time.time() + 60
    messages = []
    while time.time() < deadline and not messages:
        messages = [e["message"] for e in logs.filter_log_events(logGroupName=GROUP)["events"]]
        time.sleep(0.2)
    if [json.loads(m) for m in messages] != [{"n": 5, "who": "new"}]:
        fail(f"delivered {messages}")
    event = {"id": "1", "account": account, "source": "new.app", "time": "2026-01-01T00:00:00Z",
             "region": "us-east-1", "resources": [], "detail-type": "t", "detail": {"n": 1}}
    pattern = json.dumps({"source": ["new.app"]})
    if not events.test_event_pattern(EventPattern=pattern, Event=json.dumps(event))["Result"]:
        fail("test_event_pattern should match")
    try:
        events.put_rule(Name="bad", EventPattern='{"source": "not-a-list"}')
        fail("a bad pattern was accepted")
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "InvalidEventPatternException":
            fail(f"bad pattern -> {e.response['Error']}")
    names = [r["Name"] for r in events.list_rules(NamePrefix="new-")["Rules"]]
    if names != ["new-boto3"]:
        fail(f"list_rules {names}")
    print("events_new: OK")


if __name__ == "__main__":
    main()
