#!/usr/bin/python3
"""Regenerates fixtures/sigv4_vectors.json: SageMaker requests signed by botocore.

Run with Debian's python3 (botocore 1.29):  /usr/bin/python3 tests/api/make_sigv4_vectors.py
(pyenv's botocore 1.43 produces the same Authorization headers.)
The C++ tests check that ty::SignRequest reproduces each Authorization header byte for byte and
that ty::api::SigV4Verifier accepts each request at the fixed timestamp.
"""
import contextlib
import datetime
import json
import os
from unittest import mock

import botocore
from botocore.auth import SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2024, 3, 12, 14, 16, 10)
HERE = os.path.dirname(os.path.abspath(__file__))

CREDS = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "session_token": "",
}
SESSION_CREDS = {
    "access_key_id": "ASIAZZZZZZZZZZZZZZZZ",
    "secret_access_key": "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycA",
    "session_token": "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==",
}


def json_headers(target):
    return [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", target),
        ("User-Agent", "Boto3/1.26.27 Python/3.11.2 Linux/6.1 Botocore/1.29.27"),
    ]


CASES = [
    dict(name="describe_training_job", url="http://localhost:8080/", region="us-east-1",
         creds=CREDS, headers=json_headers("SageMaker.DescribeTrainingJob"),
         body='{"TrainingJobName": "my-job"}'),
    dict(name="create_training_job_unicode", url="http://127.0.0.1:9443/", region="eu-west-1",
         creds=CREDS, headers=json_headers("SageMaker.CreateTrainingJob"),
         body=json.dumps({"TrainingJobName": "j\u00e9-1",
                          "HyperParameters": {"note": "caf\u00e9 \u2603 \U0001F680 \u65e5\u672c"}},
                         ensure_ascii=False)),
    dict(name="list_training_jobs_empty_body", url="https://sagemaker.example.com/",
         region="us-west-2", creds=CREDS, headers=json_headers("SageMaker.ListTrainingJobs"),
         body=""),
    dict(name="session_token", url="http://localhost:8080/", region="us-east-1",
         creds=SESSION_CREDS, headers=json_headers("SageMaker.StopTrainingJob"),
         body='{"TrainingJobName":"stop-me"}'),
    dict(name="extra_amz_header_whitespace_and_query", url="http://localhost:8080/?b=2&a=1&a=0",
         region="us-east-1", creds=CREDS,
         headers=json_headers("SageMaker.ListTags") + [("X-Amz-Meta-Note", "  two   spaces  ")],
         body='{"ResourceArn":"arn:aws:sagemaker:us-east-1:123456789012:training-job/x"}'),
]


def sign(case):
    creds = case["creds"]
    credentials = Credentials(creds["access_key_id"], creds["secret_access_key"],
                              creds["session_token"] or None)
    req = AWSRequest(method="POST", url=case["url"], data=case["body"].encode("utf-8"),
                     headers=dict(case["headers"]))
    # botocore <= 1.3x reads botocore.auth.datetime.datetime.utcnow(); newer releases call
    # botocore.auth.get_current_datetime(). Pin both so the script works with either.
    with contextlib.ExitStack() as stack:
        mock_dt = stack.enter_context(mock.patch("botocore.auth.datetime"))
        mock_dt.datetime.utcnow.return_value = FIXED
        mock_dt.datetime.now.return_value = FIXED
        mock_dt.datetime.strptime = datetime.datetime.strptime
        if hasattr(botocore.auth, "get_current_datetime"):
            stack.enter_context(
                mock.patch("botocore.auth.get_current_datetime", return_value=FIXED))
        SigV4Auth(credentials, "sagemaker", case["region"]).add_auth(req)
    split = botocore.compat.urlsplit(case["url"])
    host = _host_from_url(case["url"])
    signed = [("Host", host)] + [(k, v) for k, v in req.headers.items()]
    return {
        "name": case["name"],
        "method": "POST",
        "path": split.path or "/",
        "query": split.query,
        "host": host,
        "headers": [[k, v] for k, v in case["headers"]],
        "body": case["body"],
        "credentials": creds,
        "region": case["region"],
        "service": "sagemaker",
        "amz_date": FIXED.strftime("%Y%m%dT%H%M%SZ"),
        "epoch_seconds": int(FIXED.replace(tzinfo=datetime.timezone.utc).timestamp()),
        "signed_headers": [[k, v] for k, v in signed],
        "authorization": req.headers["Authorization"],
    }


def main():
    vectors = {"botocore_version": botocore.__version__, "vectors": [sign(c) for c in CASES]}
    out = os.path.join(HERE, "fixtures", "sigv4_vectors.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(vectors, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(vectors['vectors'])} vectors to {out}")


if __name__ == "__main__":
    main()
