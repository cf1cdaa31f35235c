#!/usr/bin/python3
"""SigV4 test vectors for S3 requests, computed by botocore's own signer (S3SigV4Auth).

Run by tests/storage/s3_sigv4_test.cc at test time (with Debian's /usr/bin/python3 and its
python3-botocore), so the expectations come from botocore itself, never from a copy:

    /usr/bin/python3 tools/sigv4_vectors.py OUT.json

Two kinds of cases:
  client  a real botocore S3 client (signature s3v4) performs an operation; the request is
          captured right after botocore signed it and the call is abandoned before anything is
          sent. Besides the signature this gives botocore's encoding of keys and query values.
  direct  a hand-built request in the form Trainyard's client sends (e.g. "?uploads=", unsorted
          query pairs, header values with runs of spaces) signed by S3SigV4Auth.add_auth.

Every case is signed at the same fixed time. For each case the JSON holds the request as signed
(method, host, path, query, the headers at signing time without the ones the signer adds, the
body in hex), the credentials and region, the key / query parameters it was built from (client
cases), and botocore's results: Authorization, X-Amz-Date, X-Amz-Content-SHA256, the canonical
request and the string to sign.
"""

import datetime
import json
import os
import sys

# Nothing from the user's AWS configuration may leak in.
for var in list(os.environ):
    if var.startswith("AWS_"):
        del os.environ[var]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

import botocore  # noqa: E402
import botocore.auth  # noqa: E402
import botocore.session  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

FIXED_NOW = datetime.datetime(2024, 2, 29, 23, 59, 58)  # UTC; a leap day, just before midnight
FIXED_EPOCH_SECONDS = 1709251198


class _FixedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return FIXED_NOW


class _FixedDatetimeModule:
    datetime = _FixedDatetime


botocore.auth.datetime = _FixedDatetimeModule  # the signer reads datetime.datetime.utcnow()
# With awscrt installed (Debian's python3-awscrt) clients sign through the CRT; the reference
# here is botocore's own S3SigV4Auth.
botocore.auth.AUTH_TYPE_MAPS["s3v4"] = botocore.auth.S3SigV4Auth
assert (FIXED_NOW - datetime.datetime(1970, 1, 1)).total_seconds() == FIXED_EPOCH_SECONDS

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token=="
# Headers the signer itself adds; the C++ side must add them the same way.
SIGNER_ADDED = {"authorization", "x-amz-date", "x-amz-security-token"}


class _Captured(Exception):
    pass


def _headers_list(headers):
    return [[k, v.decode() if isinstance(v, bytes) else v] for k, v in headers.items()]


def _body_bytes(body):
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "read"):
        pos = body.tell()
        data = body.read()
        body.seek(pos)
        return data
    return bytes(body)


def _record(name, request, auth, region, creds, extra):
    url = botocore.compat.urlsplit(request.url)
    canonical = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical)
    headers = [[k, v] for k, v in _headers_list(request.headers) if k.lower() not in SIGNER_ADDED]
    case = {
        "name": name,
        "method": request.method,
        "url": request.url,
        "host": botocore.auth._host_from_url(request.url),
        "path": url.path,
        "query": url.query,
        "headers": headers,
        "body_hex": _body_bytes(request.body).hex(),
        "region": region,
        "access_key_id": creds.access_key,
        "secret_access_key": creds.secret_key,
        "session_token": creds.token or "",
        "expected": {
            "authorization": request.headers["Authorization"],
            "x_amz_date": request.headers["X-Amz-Date"],
            "x_amz_content_sha256": request.headers["X-Amz-Content-SHA256"],
            "x_amz_security_token": request.headers.get("X-Amz-Security-Token", ""),
            "canonical_request": canonical,
            "string_to_sign": string_to_sign,
        },
    }
    case.update(extra)
    return case


def client_case(name, operation, params, *, region="us-east-1",
                endpoint="http://127.0.0.1:4568", addressing="path", token=None,
                payload_signing=None, key=None, query_params=None):
    """Runs `operation` on a botocore S3 client and records the request botocore signed."""
    creds = Credentials(ACCESS_KEY, SECRET_KEY, token)
    s3_config = {"addressing_style": addressing}
    if payload_signing is not None:
        s3_config["payload_signing_enabled"] = payload_signing
    session = botocore.session.get_session()
    client = session.create_client(
        "s3", region_name=region, endpoint_url=endpoint, aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key, aws_session_token=token,
        config=Config(signature_version="s3v4", s3=s3_config, retries={"max_attempts": 0}))
    captured = {}

    def capture(request, **kwargs):
        # Runs after the signer (registered last on the same event): the request as signed.
        captured["request"] = request
        raise _Captured()

    client.meta.events.register_last("request-created.s3", capture)
    try:
        getattr(client, operation)(**params)
    except _Captured:
        pass
    request = captured["request"]
    # Recompute the intermediate strings with a signer in the same state (same credentials,
    # region, timestamp) for diagnostics; the Authorization header is botocore's own.
    auth = botocore.auth.S3SigV4Auth(creds.get_frozen_credentials(), "s3", region)
    extra = {"kind": "client", "operation": operation, "addressing": addressing}
    if key is not None:
        extra["bucket"] = params["Bucket"]
        extra["key"] = key
    if query_params:
        extra["query_params"] = [[k, v] for k, v in query_params]
    return _record(name, request, auth, region, creds.get_frozen_credentials(), extra)


def direct_case(name, method, url, headers, body=b"", *, region="us-east-1", token=None,
                payload_signing=None):
    """Signs a hand-built request with S3SigV4Auth.add_auth."""
    creds = Credentials(ACCESS_KEY, SECRET_KEY, token).get_frozen_credentials()
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    if payload_signing is not None:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": payload_signing})
    auth = botocore.auth.S3SigV4Auth(creds, "s3", region)
    auth.add_auth(request)
    return _record(name, request, auth, region, creds, {"kind": "direct"})


def cases():
    body = b"hello, s3\n"
    out = [
        client_case("put key with spaces", "put_object",
                    {"Bucket": "bkt", "Key": "with space/a  b.txt", "Body": body},
                    key="with space/a  b.txt"),
        client_case("put key with plus equals ampersand", "put_object",
                    {"Bucket": "bkt", "Key": "plus/a+b=c&d;e,f.txt", "Body": body},
                    key="plus/a+b=c&d;e,f.txt"),
        client_case("get unicode key", "get_object",
                    {"Bucket": "bkt", "Key": "unicode/\u00e9t\u00e9/\u2603 \U0001F600.txt"},
                    key="unicode/\u00e9t\u00e9/\u2603 \U0001F600.txt"),
        client_case("get key with tilde", "get_object",
                    {"Bucket": "bkt", "Key": "tilde/~user/x~y.txt"}, key="tilde/~user/x~y.txt"),
        client_case("head key with percent", "head_object",
                    {"Bucket": "bkt", "Key": "percent/100%/%41%2F.txt"},
                    key="percent/100%/%41%2F.txt"),
        client_case("delete key with specials", "delete_object",
                    {"Bucket": "bkt", "Key": "x/!$'()*@:[] #?.txt"}, key="x/!$'()*@:[] #?.txt"),
        client_case("list prefix needing encoding", "list_objects_v2",
                    {"Bucket": "bkt", "Prefix": "a b/c+d/", "Delimiter": "/",
                     "EncodingType": "url"},
                    query_params=[("prefix", "a b/c+d/"), ("delimiter", "/")]),
        client_case("list continuation token", "list_objects_v2",
                    {"Bucket": "bkt", "Prefix": "p/", "ContinuationToken": "1/AbC=+dEf/g==",
                     "StartAfter": "p/a+b \u00e9", "MaxKeys": 1000},
                    query_params=[("continuation-token", "1/AbC=+dEf/g=="),
                                  ("start-after", "p/a+b \u00e9"), ("prefix", "p/")]),
        client_case("create multipart upload", "create_multipart_upload",
                    {"Bucket": "bkt", "Key": "mp/big file+1.bin",
                     "ContentType": "application/octet-stream"},
                    key="mp/big file+1.bin"),
        client_case("upload part", "upload_part",
                    {"Bucket": "bkt", "Key": "mp/big file+1.bin", "PartNumber": 3,
                     "UploadId": "2~AbC/dEf+gHi=", "Body": body * 50},
                    key="mp/big file+1.bin",
                    query_params=[("partNumber", "3"), ("uploadId", "2~AbC/dEf+gHi=")]),
        client_case("complete multipart upload", "complete_multipart_upload",
                    {"Bucket": "bkt", "Key": "mp/big file+1.bin", "UploadId": "2~AbC/dEf+gHi=",
                     "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": "\"a\""},
                                                   {"PartNumber": 2, "ETag": "\"b\""}]}},
                    key="mp/big file+1.bin", query_params=[("uploadId", "2~AbC/dEf+gHi=")]),
        client_case("abort multipart upload", "abort_multipart_upload",
                    {"Bucket": "bkt", "Key": "mp/big file+1.bin", "UploadId": "2~AbC/dEf+gHi="},
                    key="mp/big file+1.bin", query_params=[("uploadId", "2~AbC/dEf+gHi=")]),
        client_case("delete objects with content md5", "delete_objects",
                    {"Bucket": "bkt", "Delete": {"Objects": [{"Key": "a b"}, {"Key": "c+d"}],
                                                 "Quiet": True}}),
        client_case("put with session token", "put_object",
                    {"Bucket": "bkt", "Key": "tok/a.txt", "Body": body},
                    token=SESSION_TOKEN, key="tok/a.txt"),
        client_case("put unsigned payload", "put_object",
                    {"Bucket": "bkt", "Key": "unsigned/a b.txt", "Body": body},
                    payload_signing=False, key="unsigned/a b.txt"),
        client_case("virtual hosted eu-west-1", "put_object",
                    {"Bucket": "my-bucket", "Key": "v/a b+c.txt", "Body": body},
                    region="eu-west-1", endpoint="https://s3.eu-west-1.amazonaws.com",
                    addressing="virtual", key="v/a b+c.txt"),
        client_case("non-default port and create bucket", "create_bucket",
                    {"Bucket": "bkt2",
                     "CreateBucketConfiguration": {"LocationConstraint": "eu-central-1"}},
                    region="eu-central-1", endpoint="http://localhost:9000"),
    ]
    empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    out += [
        direct_case("uploads= as trainyard sends it", "POST",
                    "http://127.0.0.1:4568/bkt/mp/a%20b.bin?uploads=",
                    {"Content-Type": "application/octet-stream",
                     "X-Amz-Content-SHA256": empty_sha}),
        direct_case("unsorted partNumber and uploadId", "PUT",
                    "http://127.0.0.1:4568/bkt/mp/a%20b.bin?uploadId=x%2By%3D&partNumber=10",
                    {"Content-Type": "application/octet-stream",
                     "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg=="}, body=b"hello"),
        direct_case("header values with runs of spaces", "PUT",
                    "http://127.0.0.1:4568/bkt/meta.txt",
                    {"Content-Type": "text/plain", "X-Amz-Meta-Note": "  a   b\tc  ",
                     "X-Amz-Meta-Empty": ""}, body=b"x"),
        direct_case("get with query needing encoding", "GET",
                    "http://127.0.0.1:4568/bkt?list-type=2&prefix=a%20b%2F&start-after=a%2Bb"
                    "&continuation-token=1%2FAbC%3D%2BdEf%2Fg%3D%3D&encoding-type=url", {}),
        direct_case("unsigned payload put with session token", "PUT",
                    "https://s3.us-west-2.amazonaws.com/bkt/big%2Bfile.bin",
                    {"Content-Type": "application/octet-stream",
                     "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg=="},
                    body=b"hello", region="us-west-2", token=SESSION_TOKEN,
                    payload_signing=False),
    ]
    return out


def main():
    if len(sys.argv) != 2:
        print("usage: sigv4_vectors.py OUT.json", file=sys.stderr)
        return 2
    doc = {
        "botocore_version": botocore.__version__,
        "now_epoch_seconds": FIXED_EPOCH_SECONDS,
        "cases": cases(),
    }
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    os.replace(tmp, sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
