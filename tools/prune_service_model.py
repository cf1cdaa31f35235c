#!/usr/bin/env python3
"""Builds the service models Trainyard decodes and validates requests against.

One pruned model per served AWS service (--service sagemaker|logs|cloudwatch|lambda|events). Inputs are two
botocore generations of that service's model:
  Model A: the newest botocore found (pyenv's, service-2.json.gz) -- the base, because the
           product needs its members (OutputDataConfig.CompressionType, DeleteTrainingJob).
  Model B: Debian's python3-botocore 1.29 (service-2.json).
The `required` list of every structure reachable from an operation INPUT becomes the union of
A's and B's lists (old SDKs send what B requires), restricted to members A still has.

Only shapes reachable from the served operations' input/output shapes are kept, documentation
is dropped, and the result is written as compact JSON (checked in; the C++ build embeds it and
needs no botocore).

Usage: tools/prune_service_model.py [--model-a PATH] [--model-b PATH] [--out PATH]
"""

import argparse
import glob
import gzip
import json
import os
import re
import sys

# service -> (botocore data path, served operations, output file under src/api/data)
SERVICES = {
    "sagemaker": (os.path.join("data", "sagemaker", "2017-07-24"), [
        "CreateTrainingJob", "DescribeTrainingJob", "ListTrainingJobs", "StopTrainingJob",
        "DeleteTrainingJob", "AddTags", "ListTags", "DeleteTags", "Search",
        "DescribeProcessingJob",
    ], "sagemaker-model.json"),
    "logs": (os.path.join("data", "logs", "2014-03-28"), [
        "CreateLogGroup", "CreateLogStream", "DeleteLogGroup", "DeleteLogStream",
        "DescribeLogGroups", "DescribeLogStreams", "FilterLogEvents", "GetLogEvents",
        "PutLogEvents",
    ], "logs-model.json"),
    "cloudwatch": (os.path.join("data", "cloudwatch", "2010-08-01"), [
        "GetMetricData", "GetMetricStatistics", "ListMetrics", "PutMetricData",
        "PutMetricAlarm", "DescribeAlarms", "DescribeAlarmsForMetric", "DeleteAlarms",
        "SetAlarmState", "EnableAlarmActions", "DisableAlarmActions", "DescribeAlarmHistory",
    ], "cloudwatch-model.json"),
    "sns": (os.path.join("data", "sns", "2010-03-31"), [
        "CreateTopic", "DeleteTopic", "ListTopics", "GetTopicAttributes", "Subscribe",
        "Unsubscribe", "ListSubscriptions", "ListSubscriptionsByTopic", "Publish",
        "GetSubscriptionAttributes",
    ], "sns-model.json"),
    "events": (os.path.join("data", "events", "2015-10-07"), [
        "PutRule", "DescribeRule", "ListRules", "EnableRule", "DisableRule", "DeleteRule",
        "PutTargets", "RemoveTargets", "ListTargetsByRule", "PutEvents", "TestEventPattern",
    ], "events-model.json"),
    # Served by services/lambda. tests/api/fixtures/codecs/lambda-model.json (a wider cut, made
    # with --out) proves the rest-json codec.
    "lambda": (os.path.join("data", "lambda", "2015-03-31"), [
        "AddPermission", "CreateFunction", "DeleteFunction", "GetFunction",
        "GetFunctionConfiguration", "GetPolicy", "Invoke", "ListFunctions", "RemovePermission",
        "UpdateFunctionCode", "UpdateFunctionConfiguration",
    ], "lambda-model.json"),
}
SERVICE = "sagemaker"  # set by main()
OPERATIONS = SERVICES[SERVICE][1]
MODEL_SUBPATH = SERVICES[SERVICE][0]
DEBIAN_BOTOCORE = "/usr/lib/python3/dist-packages/botocore"
# Validation constraints plus the serialization traits the protocol codecs read.
SHAPE_KEYS = ("type", "required", "min", "max", "pattern", "enum", "union", "sensitive",
              "error", "fault", "flattened", "locationName", "timestampFormat", "xmlNamespace",
              "document", "box", "payload")
MEMBER_KEYS = ("jsonvalue", "idempotencyToken", "deprecated", "location", "locationName",
               "flattened", "timestampFormat", "queryName", "xmlAttribute", "xmlNamespace",
               "hostLabel")


def botocore_version(botocore_dir):
    try:
        with open(os.path.join(botocore_dir, "__init__.py"), encoding="utf-8") as f:
            m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", f.read())
    except OSError:
        return None
    return tuple(int(p) for p in m.group(1).split(".") if p.isdigit()) if m else None


def model_file(botocore_dir):
    for name in ("service-2.json", "service-2.json.gz"):
        path = os.path.join(botocore_dir, MODEL_SUBPATH, name)
        if os.path.exists(path):
            return path
    return None


def candidate_botocores():
    dirs = {DEBIAN_BOTOCORE}
    dirs.update(glob.glob("/root/.pyenv/versions/*/lib/python3*/site-packages/botocore"))
    dirs.update(glob.glob(os.path.expanduser("~/.pyenv/versions/*/lib/python3*/site-packages/botocore")))
    try:
        import botocore  # noqa: PLC0415 -- optional, only to find the running interpreter's copy
        dirs.add(os.path.dirname(botocore.__file__))
    except ImportError:
        pass
    found = []
    for d in dirs:
        path, version = model_file(d), botocore_version(d)
        if path and version:
            found.append((version, path))
    return sorted(set(found))


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def refs(shape):
    if shape.get("type") == "structure":
        return [m["shape"] for m in shape.get("members", {}).values()]
    if shape.get("type") == "list":
        return [shape["member"]["shape"]]
    if shape.get("type") == "map":
        return [shape["key"]["shape"], shape["value"]["shape"]]
    return []


def reachable(shapes, roots):
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(refs(shapes[name]))
    return seen


def prune_shape(shape):
    out = {k: shape[k] for k in SHAPE_KEYS if k in shape}
    if shape.get("type") == "structure":
        out["members"] = {}
        for name, member in shape.get("members", {}).items():
            m = {"shape": member["shape"]}
            m.update({k: member[k] for k in MEMBER_KEYS if k in member})
            out["members"][name] = m
        out.setdefault("required", [])
    elif shape.get("type") == "list":
        out["member"] = {k: v for k, v in shape["member"].items() if k in ("shape", "locationName")}
    elif shape.get("type") == "map":
        out["key"] = {k: v for k, v in shape["key"].items() if k in ("shape", "locationName")}
        out["value"] = {k: v for k, v in shape["value"].items() if k in ("shape", "locationName")}
    if shape.get("exception"):
        out["exception"] = True
    return out


def build(model_a, model_b):
    shapes_a, shapes_b = model_a["shapes"], model_b["shapes"]
    ops, input_roots, all_roots = {}, [], []
    for name in OPERATIONS:
        op = model_a["operations"][name]
        pruned = {"name": name}
        if "http" in op:
            pruned["http"] = op["http"]
        for io in ("input", "output"):
            if io in op:
                pruned[io] = {k: v for k, v in op[io].items()
                              if k in ("shape", "resultWrapper", "locationName", "xmlNamespace")}
                all_roots.append(op[io]["shape"])
        if "input" in op:
            input_roots.append(op["input"]["shape"])
        errors = [e["shape"] for e in op.get("errors", [])]
        if errors:
            pruned["errors"] = [{"shape": e} for e in errors]
            all_roots.extend(errors)
        ops[name] = pruned

    kept = reachable(shapes_a, all_roots)
    inputs = reachable(shapes_a, input_roots)
    out_shapes = {}
    widened = []
    for name in sorted(kept):
        shape = prune_shape(shapes_a[name])
        b = shapes_b.get(name)
        # Only SageMaker: its old SDKs require members the new model relaxed, and the server
        # refuses what they would. Logs and CloudWatch relaxed members for new alternatives
        # (logGroupIdentifier, EntityMetricData) that new clients send instead.
        if (SERVICE == "sagemaker" and name in inputs and shape.get("type") == "structure"
                and b is not None):
            extra = [r for r in b.get("required", [])
                     if r in shape["members"] and r not in shape["required"]]
            if extra:
                shape["required"] = shape["required"] + extra
                widened.extend(f"{name}.{r}" for r in extra)
        out_shapes[name] = shape

    metadata = {k: model_a["metadata"][k] for k in
                ("apiVersion", "awsQueryCompatible", "endpointPrefix", "jsonVersion", "protocol",
                 "protocols", "serviceFullName", "serviceId", "signatureVersion", "signingName",
                 "targetPrefix", "uid", "xmlNamespace")
                if k in model_a["metadata"]}
    return {"version": "2.0", "metadata": metadata, "operations": ops,
            "shapes": out_shapes}, widened


# Trainyard's extension: file:// URIs are accepted wherever the model allows
# s3:// (the API layer then confines them to the server's file roots).
S3_URI_PATTERN = "(https|s3)://([^/]+)/?(.*)"
S3_OR_FILE_URI_PATTERN = "(https|s3)://([^/]+)/?(.*)|file://(/.*)"


def allow_file_uris(model):
    for shape in model["shapes"].values():
        if shape.get("pattern") == S3_URI_PATTERN:
            shape["pattern"] = S3_OR_FILE_URI_PATTERN


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-a", help="newest service-2.json[.gz] (default: newest found)")
    parser.add_argument("--model-b", help="older service-2.json (default: Debian's)")
    parser.add_argument("--service", default="sagemaker", choices=sorted(SERVICES))
    parser.add_argument("--out", help="default: src/api/data/<service>-model.json")
    args = parser.parse_args(argv)
    global SERVICE, OPERATIONS, MODEL_SUBPATH
    SERVICE = args.service
    MODEL_SUBPATH, OPERATIONS, out_name = SERVICES[SERVICE]
    if not args.out:
        args.out = os.path.join(here, "..", "src", "api", "data", out_name)

    found = candidate_botocores()
    model_a = args.model_a or (found[-1][1] if found else None)
    model_b = args.model_b or model_file(DEBIAN_BOTOCORE) or (found[0][1] if found else None)
    if not model_a or not model_b:
        sys.exit(f"cannot find botocore {SERVICE} models; pass --model-a/--model-b")

    result, widened = build(load(model_a), load(model_b))
    if SERVICE == "sagemaker":
        allow_file_uris(result)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"model A: {model_a}\nmodel B: {model_b}\n"
          f"wrote {os.path.normpath(args.out)}: {len(result['operations'])} operations, "
          f"{len(result['shapes'])} shapes, {os.path.getsize(args.out)} bytes\n"
          f"required widened from model B: {', '.join(widened) or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1:])
