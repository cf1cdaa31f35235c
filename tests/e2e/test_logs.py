"""CloudWatch Logs through the real binary: a real job's log lines read back by boto3 1.26 and
1.43, AWS CLI v2.9 (get-log-events, logs tail) and v1, `trainyard logs [-f]`, and a replay of the
SageMaker SDK v2 `logs_for_job` call sequence; a second account sees nothing of the first's; bad
tokens, oversized limits and unknown groups get CloudWatch's errors and the server keeps serving."""

import json
import os
import subprocess
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

import shapecheck
from conftest import HERE, TEST_CONFIG, Server, job_request, trainyard_bin, wait_status
from test_accounts import KEY_B, write_two_accounts
from test_clients import AWS_V2, pyenv_tool

GROUP = "/aws/sagemaker/TrainingJobs"
LINES = 1200  # more than one default page of the SDK readers below
JOB = "logs-job"
# Many lines share a millisecond: the SDK's skip counting and inclusive startTime are exercised.
COMMAND = (f"i=1; while [ $i -le {LINES} ]; do echo \"line $i\"; i=$((i+1)); done; "
           "echo '{\"level\": \"ERROR\", \"n\": 7}'")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("logs")
    s = Server(str(base / "data"))
    write_two_accounts(s.data_dir)
    s.start()
    s.out_dir = str(base / "out")
    os.makedirs(s.out_dir, exist_ok=True)
    sm = s.boto3()
    sm.create_training_job(**job_request(JOB, s.out_dir, COMMAND))
    assert wait_status(sm, JOB)["TrainingJobStatus"] == "Completed"
    yield s
    s.stop()


def logs_a(srv):
    """Account A's logs client (boto3 1.26); every response is checked against its model."""
    logs = srv.boto3("logs")
    problems = []

    def check(http_response=None, parsed=None, model=None, **kwargs):
        if http_response is not None and http_response.status_code == 200:
            problems.extend(f"{model.name}: {p}" for p in shapecheck.check_output(
                logs, model.name, parsed))
            assert problems == [], problems
    logs.meta.events.register("after-call.logs.*", check)
    return logs


def logs_b(srv):
    return boto3.session.Session(region_name=srv.region, **KEY_B).client(
        "logs", endpoint_url=srv.url, config=botocore.config.Config(retries={"max_attempts": 1}))


EXPECTED = [f"line {i}" for i in range(1, LINES + 1)] + ['{"level": "ERROR", "n": 7}']


def ours(messages):
    """The job's own lines: without the agent's "trainyard: ..." notes (limits, network)."""
    return [m for m in messages if not m.startswith("trainyard: ")]


def all_messages(logs, stream):
    return [e["message"] for e in logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                                        startFromHead=True)["events"]]


def error_code(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"]


def only_stream(logs):
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=JOB + "/")
    assert "nextToken" not in streams
    assert len(streams["logStreams"]) == 1, streams
    return streams["logStreams"][0]


def test_boto3_reads_the_job_log_with_cloudwatch_token_semantics(srv):
    logs = logs_a(srv)
    groups = logs.describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == [GROUP]
    stream = only_stream(logs)
    name = stream["logStreamName"]
    prefix, epoch = name.rsplit("-", 1)
    assert prefix == f"{JOB}/algo-1" and epoch.isdigit(), name
    assert stream["firstEventTimestamp"] <= stream["lastEventTimestamp"] <= stream["lastIngestionTime"]
    everything = all_messages(logs, name)
    assert stream["storedBytes"] == sum(len(m.encode()) for m in everything)

    got, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True,
                                   limit=500, **kw)
        assert "nextBackwardToken" in page
        if page["nextForwardToken"] == token:
            assert page["events"] == []  # the end: [] and the same token
            break
        got += [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
    assert got == everything and ours(got) == EXPECTED
    stamps = [e["timestamp"] for e in logs.get_log_events(
        logGroupName=GROUP, logStreamName=name, startFromHead=True)["events"]]
    assert stamps == sorted(stamps)

    # startFromHead false (the default) reads the last page; backward tokens go back from it.
    last = logs.get_log_events(logGroupName=GROUP, logStreamName=name, limit=10)
    assert [e["message"] for e in last["events"]] == EXPECTED[-10:]
    before = logs.get_log_events(logGroupName=GROUP, logStreamName=name, limit=10,
                                 nextToken=last["nextBackwardToken"])
    assert [e["message"] for e in before["events"]] == EXPECTED[-20:-10]
    # FilterLogEvents: terms and JSON patterns over the group.
    found = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix=JOB + "/",
                                   filterPattern='"line 12"')["events"]
    assert [e["message"] for e in found] == ["line 12"] + [f"line {i}" for i in range(120, 130)] + \
        [f"line {i}" for i in range(1200, 1201)]
    found = logs.filter_log_events(logGroupName=GROUP, filterPattern="{ $.n > 5 }")["events"]
    assert [(e["logStreamName"], e["message"]) for e in found] == [(name, EXPECTED[-1])]
    pages = list(logs.get_paginator("filter_log_events").paginate(
        logGroupName=GROUP, filterPattern="line", PaginationConfig={"PageSize": 500}))
    with_line = [m for m in everything if "line" in m]
    assert len(pages) == -(-len(with_line) // 500) and "nextToken" not in pages[-1]
    assert [e["message"] for p in pages for e in p["events"]] == with_line


def test_sagemaker_sdk_v2_logs_for_job_sequence_terminates_and_prints_each_line_once(srv):
    """The calls of sagemaker.session._flush_log_streams / logs.multi_stream_iter (spec §3.2),
    replayed with boto3 1.26 for several polls: every line exactly once, and no endless loop."""
    logs = boto3.session.Session(
        aws_access_key_id=srv.creds["aws_access_key_id"],
        aws_secret_access_key=srv.creds["aws_secret_access_key"],
        region_name=srv.region).client("logs", endpoint_url=srv.url,
                                        config=botocore.config.Config(retries={"max_attempts": 15}))
    instance_count = 1
    positions = {}  # stream -> (timestamp, skip)
    printed = []

    def log_stream(stream, start_time, skip):
        next_token, event_count = None, 1
        while event_count > 0:
            token_arg = {"nextToken": next_token} if next_token is not None else {}
            response = logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                           startTime=start_time, startFromHead=True, **token_arg)
            next_token = response["nextForwardToken"]
            events = response["events"]
            event_count = len(events)
            if event_count > skip:
                events, skip = events[skip:], 0
            else:
                skip, events = skip - event_count, []
            yield from events

    def flush():
        stream_names = []  # the SDK's rebinding quirk: the list is empty on every poll
        calls = 0
        if len(stream_names) < instance_count:
            streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=JOB + "/",
                                                orderBy="LogStreamName",
                                                limit=min(instance_count, 50))
            stream_names = [s["logStreamName"] for s in streams["logStreams"]]
            while "nextToken" in streams:
                calls += 1
                assert calls < 20, "DescribeLogStreams keeps returning nextToken: the SDK loops"
                streams = logs.describe_log_streams(logGroupName=GROUP,
                                                    logStreamNamePrefix=JOB + "/",
                                                    orderBy="LogStreamName", limit=50)
                stream_names.extend(s["logStreamName"] for s in streams["logStreams"])
            for s in stream_names:
                positions.setdefault(s, (0, 0))
        iters = [log_stream(s, *positions[s]) for s in stream_names]
        heads = [next(it, None) for it in iters]
        while any(heads):
            i = min(range(len(heads)),
                    key=lambda k: heads[k]["timestamp"] if heads[k] else 9999999999999)
            event = heads[i]
            printed.append(event["message"])
            ts, count = positions[stream_names[i]]
            positions[stream_names[i]] = (ts, count + 1) if event["timestamp"] == ts \
                else (event["timestamp"], 1)
            heads[i] = next(iters[i], None)

    for _ in range(3):  # the job is complete: later polls must print nothing new
        flush()
    assert printed == all_messages(logs, only_stream(logs_a(srv))["logStreamName"])
    assert ours(printed) == EXPECTED


def test_newer_boto3_reads_the_log(srv):
    python, env = pyenv_tool(srv, "python3")
    res = subprocess.run([python, os.path.join(HERE, "clients", "logs_new.py"), JOB], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"stdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr}"
    out = res.stdout.splitlines()
    assert out[-1] == f"logs_new: OK {len(out) - 1}"
    assert ours(out[:-1]) == EXPECTED


def test_aws_cli_v2_get_log_events_and_tail(srv):
    env = srv.client_env()
    env["AWS_PAGER"] = ""
    name = only_stream(logs_a(srv))["logStreamName"]
    res = subprocess.run([AWS_V2, "--endpoint-url", srv.url, "--output", "json", "logs",
                          "get-log-events", "--log-group-name", GROUP, "--log-stream-name", name,
                          "--start-from-head", "--limit", "5"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    page = json.loads(res.stdout)
    logs = logs_a(srv)
    assert [e["message"] for e in page["events"]] == all_messages(logs, name)[:5]
    assert page["nextForwardToken"] and page["nextBackwardToken"]
    # `logs tail` reads through FilterLogEvents (paginated) and prints "<time> <stream> <message>".
    res = subprocess.run([AWS_V2, "--endpoint-url", srv.url, "logs", "tail", GROUP,
                          "--log-stream-name-prefix", JOB + "/", "--since", "1h"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert ours([l.split(" ", 2)[2] for l in lines]) == EXPECTED
    assert all(l.split(" ", 2)[1] == name for l in lines)
    # A missing group is CloudWatch's ResourceNotFoundException.
    res = subprocess.run([AWS_V2, "--endpoint-url", srv.url, "logs", "get-log-events",
                          "--log-group-name", "/nope", "--log-stream-name", "x"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 254 and "ResourceNotFoundException" in res.stderr, res.stderr


def test_aws_cli_v1_get_log_events(srv):
    aws, env = pyenv_tool(srv, "aws")
    name = only_stream(logs_a(srv))["logStreamName"]
    res = subprocess.run([aws, "--output", "json", "logs", "get-log-events", "--log-group-name",
                          GROUP, "--log-stream-name", name, "--limit", "3"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert [e["message"] for e in json.loads(res.stdout)["events"]] == EXPECTED[-3:]


def test_trainyard_logs_reads_cloudwatch(srv):
    res = srv.cli("logs", JOB)
    lines = res.stdout.splitlines()
    assert ours([l.split(" ", 3)[3] for l in lines]) == EXPECTED
    assert all(l.split(" ", 3)[2].startswith(f"{JOB}/algo-1-") for l in lines)
    res = srv.cli("logs", "no-such-job", check=False)
    assert res.returncode == 1 and "ValidationException" in res.stderr, res.stderr


def test_trainyard_logs_follow_prints_a_running_job_to_its_end(srv):
    sm = srv.boto3()
    name = "logs-follow"
    sm.create_training_job(**job_request(
        name, srv.out_dir,
        "for i in 1 2 3 4 5 6 7 8; do echo \"tick $i\"; sleep 0.3; done"))
    follower = subprocess.Popen([trainyard_bin(), "logs", "-f", name], env=srv.client_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    assert wait_status(sm, name)["TrainingJobStatus"] == "Completed"
    assert ours([l.split(" ", 3)[3] for l in out.splitlines()]) == [f"tick {i}" for i in range(1, 9)]


def test_second_account_sees_nothing_of_the_first(srv):
    a, b = logs_a(srv), logs_b(srv)
    assert b.describe_log_groups()["logGroups"] == []
    assert error_code(b.describe_log_streams, logGroupName=GROUP) == "ResourceNotFoundException"
    name = only_stream(a)["logStreamName"]
    assert error_code(b.get_log_events, logGroupName=GROUP,
                      logStreamName=name) == "ResourceNotFoundException"
    assert error_code(b.filter_log_events, logGroupName=GROUP) == "ResourceNotFoundException"
    # B's own group of the same name is B's: A's token does not open it.
    b.create_log_group(logGroupName=GROUP)
    b.create_log_stream(logGroupName=GROUP, logStreamName=name)
    b.put_log_events(logGroupName=GROUP, logStreamName=name,
                     logEvents=[{"timestamp": int(time.time() * 1000), "message": "b's line"}])
    a_token = a.get_log_events(logGroupName=GROUP, logStreamName=name,
                               startFromHead=True)["nextForwardToken"]
    assert error_code(b.get_log_events, logGroupName=GROUP, logStreamName=name,
                      nextToken=a_token) == "InvalidParameterException"
    b_events = b.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True)
    assert [e["message"] for e in b_events["events"]] == ["b's line"]
    assert [g["logGroupName"] for g in a.describe_log_groups()["logGroups"]] == [GROUP]
    assert ours(all_messages(a, name)) == EXPECTED
    b.delete_log_group(logGroupName=GROUP)
    assert ours(all_messages(a, name)) == EXPECTED


def test_bad_requests_get_cloudwatch_errors_and_the_server_keeps_serving(srv):
    logs = logs_a(srv)
    name = only_stream(logs)["logStreamName"]
    logs.create_log_group(logGroupName="/bad/requests")
    logs.create_log_stream(logGroupName="/bad/requests", logStreamName="other")
    other = logs.get_log_events(logGroupName="/bad/requests", logStreamName="other")
    cases = [
        (logs.get_log_events, dict(logGroupName=GROUP, logStreamName=name,
                                   nextToken=other["nextForwardToken"]), "InvalidParameterException"),
        (logs.get_log_events, dict(logGroupName=GROUP, logStreamName=name, nextToken="garbage"),
         "InvalidParameterException"),
        (logs.get_log_events, dict(logGroupName=GROUP, logStreamName=name, limit=20000),
         "InvalidParameterException"),
        (logs.describe_log_streams, dict(logGroupName=GROUP, limit=51), "InvalidParameterException"),
        (logs.describe_log_streams, dict(logGroupName=GROUP, orderBy="LastEventTime",
                                         logStreamNamePrefix=JOB), "InvalidParameterException"),
        (logs.filter_log_events, dict(logGroupName=GROUP, logStreamNames=[name],
                                      logStreamNamePrefix=JOB), "InvalidParameterException"),
        (logs.filter_log_events, dict(logGroupName=GROUP, filterPattern="{ $.n > }"),
         "InvalidParameterException"),
        (logs.filter_log_events, dict(logGroupName=GROUP, filterPattern="x" * 1025),
         "InvalidParameterException"),
        (logs.get_log_events, dict(logGroupName="/no/such/group", logStreamName=name),
         "ResourceNotFoundException"),
        (logs.describe_log_streams, dict(logGroupName="/no/such/group"), "ResourceNotFoundException"),
        (logs.create_log_group, dict(logGroupName="/bad/requests"), "ResourceAlreadyExistsException"),
        (logs.put_log_events, dict(logGroupName="/bad/requests", logStreamName="other", logEvents=[
            {"timestamp": int(time.time() * 1000), "message": "b"},
            {"timestamp": int(time.time() * 1000) - 5, "message": "a"}]), "InvalidParameterException"),
    ]
    for call, kw, code in cases:
        assert error_code(call, **kw) == code, (call, kw)
    # Still serving, and the log is intact.
    assert len(logs.get_log_events(logGroupName=GROUP, logStreamName=name, limit=5)["events"]) == 5
    logs.delete_log_group(logGroupName="/bad/requests")


def test_a_full_put_log_events_batch_is_taken(srv):
    """10,000 events of 77 bytes: within PutLogEvents' 1 MiB of events, but more than 1 MiB of
    JSON on the wire. The API's default body limit must not refuse it; a body past the Logs
    limit still gets a clear 413."""
    logs = logs_a(srv)
    logs.create_log_group(logGroupName="/big/batch")
    logs.create_log_stream(logGroupName="/big/batch", logStreamName="s")
    t0 = int(time.time() * 1000) - 60_000
    events = [{"timestamp": t0 + i, "message": f"{i:08d} " + "x" * 68} for i in range(10_000)]
    assert len(json.dumps({"logEvents": events})) > 1 << 20
    logs.put_log_events(logGroupName="/big/batch", logStreamName="s", logEvents=events)
    got = logs.get_log_events(logGroupName="/big/batch", logStreamName="s", startFromHead=True,
                              limit=10_000)["events"]
    assert [e["message"] for e in got] == [e["message"] for e in events]
    # SageMaker's limit is unchanged.
    sm = srv.boto3()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.list_training_jobs(NameContains="x" * 100, NextToken="y" * (2 << 20))
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
