#!/usr/bin/env python3
"""Parses protocol responses with the running interpreter's botocore (its own parsers, as a
client would). Standard library + botocore only; run by tests/e2e/test_codecs.py under Debian's
python3 (botocore 1.29) and, as a subprocess, the pyenv python3 (botocore 1.43).

usage:
  codec_parse.py fixtures DIR   parse DIR/responses.json (written by tests/api/codecs_test.cc);
                                print {"botocore", "checked", "problems"} as JSON
  codec_parse.py raw            read [{protocol, status, headers, body_b64}] on stdin; print
                                [{"Error": {...}} or the parsed output] as JSON
"""

import base64
import calendar
import copy
import datetime
import json
import os
import sys

import botocore
import botocore.awsrequest
import botocore.loaders
import botocore.model
import botocore.parsers
import botocore.session

VERSION = tuple(int(p) for p in botocore.__version__.split(".")[:2])
REAL = {"cloudwatch": "cloudwatch", "logs": "logs", "lambda": "lambda"}


def model_dict(name, fixtures):
    if name in REAL:
        return botocore.loaders.Loader().load_service_model(REAL[name], "service-2")
    with open(os.path.join(fixtures, f"{name}-model.json"), encoding="utf-8") as f:
        return json.load(f)


def service_model(name, protocol, fixtures, cache={}):  # noqa: B006 -- a per-run cache
    key = (name, protocol)
    if key not in cache:
        d = copy.deepcopy(model_dict(name, fixtures))
        d["metadata"]["protocol"] = protocol
        d["metadata"]["protocols"] = [protocol]
        cache[key] = botocore.model.ServiceModel(d)
    return cache[key]


def http_response(entry):
    headers = botocore.awsrequest.HeadersDict()
    items = entry["headers"].items() if isinstance(entry["headers"], dict) else entry["headers"]
    for k, v in items:
        headers[k] = v
    if entry.get("content_type"):
        headers["Content-Type"] = entry["content_type"]
    return {"status_code": entry["status"], "headers": headers,
            "body": base64.b64decode(entry["body_b64"])}


def to_document(value, shape):
    """botocore's parsed value in the document form of api/protocol.h."""
    if shape is None:
        return value
    t = shape.type_name
    if t == "structure":
        return {k: to_document(v, shape.members.get(k)) for k, v in value.items()
                if k != "ResponseMetadata"}
    if t == "list":
        return [to_document(e, shape.member) for e in value]
    if t == "map":
        return {k: to_document(v, shape.value) for k, v in value.items()}
    if t == "timestamp" and isinstance(value, datetime.datetime):
        secs = calendar.timegm(value.utctimetuple())
        return secs + value.microsecond / 1e6 if value.microsecond else secs
    if t == "blob":
        if hasattr(value, "read"):
            value = value.read()
        if isinstance(value, str):  # a blob payload botocore decoded as text
            value = value.encode()
        return base64.b64encode(value).decode()
    return value


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def supported(protocol):
    return protocol != "smithy-rpc-v2-cbor" or VERSION >= (1, 40)


def check_fixtures(fixtures):
    with open(os.path.join(fixtures, "responses.json"), encoding="utf-8") as f:
        golden = json.load(f)
    problems, checked = [], 0
    session = botocore.session.get_session()
    for r in golden["responses"]:
        if not supported(r["protocol"]):
            continue
        model = service_model(r["model"], r["protocol"], fixtures)
        op = model.operation_model(r["operation"])
        parser = botocore.parsers.create_parser(r["protocol"])
        parsed = parser.parse(http_response(r), op.output_shape)
        meta = parsed.get("ResponseMetadata", {})
        doc = to_document(parsed, op.output_shape) if op.output_shape is not None else {
            k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        if not same(doc, r["expected"]):
            problems.append({"name": r["name"], "parsed": repr(doc), "expected": r["expected"]})
        if r["protocol"] == "query" and meta.get("RequestId") != "00000000-0000-4000-8000-000000000000":
            problems.append({"name": r["name"], "request_id": meta.get("RequestId")})
        checked += 1
    for e in golden["errors"]:
        if not supported(e["protocol"]):
            continue
        parser = botocore.parsers.create_parser(e["protocol"])
        parsed = parser.parse(http_response(e), None)
        err = parsed.get("Error", {})
        want = {"Code": e["code"], "Message": e["error"]["message"]}
        # JSON and CBOR carry the fault in x-amzn-query-error; botocore 1.29 reads only the code.
        if e.get("fault") and (e["protocol"] == "query" or VERSION >= (1, 40)):
            want["Type"] = e["fault"]
        got = {k: err.get(k) for k in want}
        if got != want:
            problems.append({"name": e["name"], "got": err, "want": want})
        if e.get("exception") and e["model"] in REAL:
            client = session.create_client(REAL[e["model"]], region_name="us-east-1",
                                           aws_access_key_id="x", aws_secret_access_key="y")
            cls = client.exceptions.from_code(err.get("Code"))
            if cls.__name__ != e["exception"]:
                problems.append({"name": e["name"], "exception": cls.__name__,
                                 "want": e["exception"]})
        checked += 1
    return {"botocore": botocore.__version__, "checked": checked, "problems": problems}


def parse_raw(entries):
    out = []
    for e in entries:
        parser = botocore.parsers.create_parser(e["protocol"])
        out.append(parser.parse(http_response(e), None))
    return out


def main(argv):
    if argv[1] == "fixtures":
        print(json.dumps(check_fixtures(argv[2]), default=str))
    else:
        print(json.dumps(parse_raw(json.load(sys.stdin)), default=str))


if __name__ == "__main__":
    main(sys.argv)
