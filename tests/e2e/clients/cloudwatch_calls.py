"""Runs CloudWatch calls with whatever boto3 runs this script (the pyenv `python3`: boto3 1.43,
AWS JSON 1.0 with x-amzn-query-mode), for tests that drive the server from another client
generation. The endpoint and credentials come from the environment (AWS_ENDPOINT_URL, the shared
credentials file), or from the request's "keys".

stdin: {"calls": [{"op": "put_metric_data", "args": {...}}, ...], "keys": {...} (optional)}
stdout: one JSON list, per call {"ok": response} or {"error": {"Code", "Message", "Type"}};
datetimes become epoch seconds.
"""

import json
import sys

import boto3
import botocore.config
import botocore.exceptions


def main():
    req = json.load(sys.stdin)
    session = boto3.session.Session(**req.get("keys", {}))
    cw = session.client("cloudwatch", config=botocore.config.Config(retries={"max_attempts": 1}))
    out = []
    for call in req["calls"]:
        try:
            resp = getattr(cw, call["op"])(**call.get("args", {}))
            resp.pop("ResponseMetadata", None)
            out.append({"ok": resp})
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            out.append({"error": {"Code": err.get("Code"), "Message": err.get("Message"),
                                  "Type": err.get("Type")}})
    json.dump(out, sys.stdout, default=lambda d: d.timestamp())


if __name__ == "__main__":
    main()
