"""Reads a training job's CloudWatch log with the current boto3 (pyenv `python3`, boto3 1.43):
the streams by prefix, then each stream from the head through nextForwardToken until the token
comes back unchanged. Prints the messages, one a line, then "logs_new: OK <count>".

usage: python3 logs_new.py JOB_NAME          exits non-zero with a message on any problem
"""

import sys

import boto3
import botocore.exceptions

GROUP = "/aws/sagemaker/TrainingJobs"


def main():
    job = sys.argv[1]
    logs = boto3.client("logs")
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=job + "/")
    if "nextToken" in streams:
        sys.exit(f"logs_new: FAIL: nextToken on the only page: {streams}")
    names = [s["logStreamName"] for s in streams["logStreams"]]
    if not names:
        sys.exit("logs_new: FAIL: no streams")
    count = 0
    for name in names:
        token = None
        for _ in range(10000):
            kw = {"nextToken": token} if token else {}
            page = logs.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True,
                                       limit=500, **kw)
            for e in page["events"]:
                print(e["message"])
                count += 1
            if page["nextForwardToken"] == token:
                if page["events"]:
                    sys.exit("logs_new: FAIL: events with an unchanged token")
                break
            token = page["nextForwardToken"]
        else:
            sys.exit("logs_new: FAIL: the forward token never settled")
    try:
        logs.get_log_events(logGroupName=GROUP, logStreamName=names[0], limit=10001)
        sys.exit("logs_new: FAIL: limit 10001 accepted")
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "InvalidParameterException":
            sys.exit(f"logs_new: FAIL: limit 10001 -> {e.response['Error']}")
    print(f"logs_new: OK {count}")


if __name__ == "__main__":
    main()
