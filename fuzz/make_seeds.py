#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from documents the tests use (run from the
repository root; the output is checked in). Standard library only."""

import base64
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# The CreateTrainingJob request of tests/e2e/conftest.py job_request(), with URIs under the
# fuzz target's file root, plus the members the unit tests exercise.
CREATE = {
    "TrainingJobName": "fuzz-job",
    "AlgorithmSpecification": {"TrainingImage": "trainyard-test/shell:1",
                               "TrainingInputMode": "File",
                               "ContainerEntrypoint": ["/bin/sh", "-c", "true"],
                               "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]},
    "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
    "HyperParameters": {"epochs": "2", "sagemaker_submit_directory": "\"file:///fuzz/data/code\""},
    "Environment": {"MODE": "test"},
    "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": "file:///fuzz/data/train",
        "S3DataDistributionType": "FullyReplicated"}}}],
    "OutputDataConfig": {"S3OutputPath": "file:///fuzz/data/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
    "EnableManagedSpotTraining": True,
    "CheckpointConfig": {"S3Uri": "s3://bucket/ckpt", "LocalPath": "/opt/ml/checkpoints"},
    "RetryStrategy": {"MaximumRetryAttempts": 2},
    "Tags": [{"Key": "team", "Value": "vision"}],
}

# CREATE with the debugger and profiler members (services/sagemaker/debugger_request.cc).
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
CREATE_DEBUGGER = dict(
    CREATE,
    DebugHookConfig={"S3OutputPath": "file:///fuzz/data/dbg", "LocalPath": "/opt/ml/output/tensors",
                     "HookParameters": {"save_interval": "10"},
                     "CollectionConfigurations": [{"CollectionName": "gradients",
                                                   "CollectionParameters": {"save_interval": "2"}}]},
    DebugRuleConfigurations=[
        {"RuleConfigurationName": "vg", "RuleEvaluatorImage": RULES_IMAGE,
         "RuleParameters": {"rule_to_invoke": "VanishingGradient"}},
        {"RuleConfigurationName": "az", "RuleEvaluatorImage": RULES_IMAGE,
         "RuleParameters": {"rule_to_invoke": "AllZero", "collection_names": "weights,biases"}}],
    TensorBoardOutputConfig={"S3OutputPath": "file:///fuzz/data/tb"},
    ProfilerConfig={"ProfilingIntervalInMilliseconds": 500, "DisableProfiler": False},
    ProfilerRuleConfigurations=[{"RuleConfigurationName": "ProfilerReport",
                                 "RuleEvaluatorImage": RULES_IMAGE,
                                 "RuleParameters": {"rule_to_invoke": "ProfilerReport"}}])

SEARCH = {
    "Resource": "TrainingJob",
    "SearchExpression": {
        "Filters": [{"Name": "TrainingJobStatus", "Operator": "Equals", "Value": "Completed"}],
        "NestedFilters": [{"NestedPropertyName": "InputDataConfig", "Filters": [
            {"Name": "InputDataConfig.ChannelName", "Operator": "Equals", "Value": "train"}]}],
        "SubExpressions": [{"Operator": "Or", "Filters": [
            {"Name": "Tags.team", "Operator": "Contains", "Value": "vis"},
            {"Name": "Metrics.val:acc", "Operator": "GreaterThan", "Value": "0.5"},
            {"Name": "CreationTime", "Operator": "LessThan", "Value": "2024-02-01T00:00:00Z"}]}],
        "Operator": "And"},
    "SortBy": "Metrics.val:acc", "SortOrder": "Ascending", "MaxResults": 5,
}

REQUESTS = {
    "create": ("SageMaker.CreateTrainingJob", CREATE),
    "create_debugger": ("SageMaker.CreateTrainingJob", CREATE_DEBUGGER),
    "describe": ("SageMaker.DescribeTrainingJob", {"TrainingJobName": "fuzz-job"}),
    "list": ("SageMaker.ListTrainingJobs", {"MaxResults": 5, "StatusEquals": "Completed",
                                           "NameContains": "fuzz", "SortBy": "CreationTime",
                                           "CreationTimeAfter": 1704067200}),
    "stop": ("SageMaker.StopTrainingJob", {"TrainingJobName": "fuzz-job"}),
    "tags": ("SageMaker.AddTags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:111122223333:"
                                                  "training-job/fuzz-job",
                                   "Tags": [{"Key": "k", "Value": "v"}]}),
    "search": ("SageMaker.Search", SEARCH),
    "unknown_member": ("SageMaker.ListTrainingJobs", {"Unknown": {"a": [1, {"b": None}]}}),
}


def http(target, body, extra=""):
    return ("POST /\nHost: localhost:8080\nContent-Type: application/x-amz-json-1.1\n"
            f"X-Amz-Target: {target}\n{extra}\n" + body)


for name, (target, body) in REQUESTS.items():
    text = json.dumps(body)
    write("request", name, b"\x01" + http(target, text).encode())           # long-term key
    write("request", name + "_session", b"\x05" + http(target, text).encode())  # session key
write("request", "bogus_token", b"\x09" + http("SageMaker.ListTrainingJobs", "{}",
                                               "X-Amz-Security-Token: bogus\n").encode())
write("request", "deep", b"\x01" + http("SageMaker.ListTrainingJobs",
                                        '{"Unknown":' + '{"a":' * 70 + "1" + "}" * 70 + "}").encode())
# Unsigned (mode 0): the verifier's own parsing, from tests/api/fixtures/sigv4_vectors.json.
with open(os.path.join(ROOT, "tests", "api", "fixtures", "sigv4_vectors.json")) as f:
    for i, v in enumerate(json.load(f)["vectors"]):
        lines = [f"{v['method']} {v['path']}" + (f"?{v['query']}" if v["query"] else ""),
                 f"Host: {v['host']}"]
        lines += [f"{k}: {val}" for k, val in v["headers"] + v["signed_headers"]]
        write("request", f"sigv4_vector_{i}", b"\x00" + ("\n".join(lines) + "\n\n" + v["body"]).encode())

write("search", "full", json.dumps(SEARCH))
write("search", "empty", json.dumps({"Resource": "TrainingJob"}))
write("search", "nested", json.dumps({"Resource": "TrainingJob", "SearchExpression": {
    "SubExpressions": [{"SubExpressions": [{"Filters": [
        {"Name": "HyperParameters.lr.max", "Operator": "Exists"},
        {"Name": "Tags.env", "Operator": "NotEquals", "Value": "dev"},
        {"Name": "ResourceConfig.InstanceType", "Operator": "In",
         "Value": "ml.m5.large,ml.p3.2xlarge"}]}]}]}}))

# S3 responses from tests/storage/s3_client_test.cc; byte 0 picks the parser (see the target).
XML = [
    (0, "error", '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed'
                 "</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
                 "<Region>eu-west-1</Region><Endpoint>s3.eu-west-1.amazonaws.com</Endpoint></Error>"),
    (1, "list", '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                "<NextContinuationToken>tok+/=</NextContinuationToken>"
                "<Contents><Key>a%20b%2Bc/%C3%A9</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag>"
                "<LastModified>2024-01-02T03:04:05.678Z</LastModified></Contents>"
                "<CommonPrefixes><Prefix>d%2F</Prefix></CommonPrefixes></ListBucketResult>"),
    (2, "initiate", "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                    "<UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>"),
    (3, "complete", "<CompleteMultipartUploadResult><Location>http://b/k</Location><Bucket>b"
                    "</Bucket><Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
                    "</CompleteMultipartUploadResult>"),
    (4, "delete", "<DeleteResult><Deleted><Key>ok</Key></Deleted><Error><Key>a&amp;b</Key>"
                  "<Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>"),
    (0, "doctype", '<?xml version="1.0"?><!DOCTYPE Error [<!ENTITY x "y">]><Error><Code>&x;</Code>'
                   "</Error>"),
]
for selector, name, text in XML:
    write("s3_xml", name, bytes([selector]) + text.encode())

# Job specs: the examples and tests/cli/job_spec_file_test.cc; byte 0: odd JSON, even YAML.
for example in ("digits", "spot-digits", "ddp-digits"):
    path = os.path.join(ROOT, "examples", example, "job.yaml")
    if os.path.exists(path):
        with open(path, "rb") as f:
            write("job_spec", "example_" + example, b"\x00" + f.read())
write("job_spec", "types", b"\x00" + b"""TrainingJobName: my-job
HyperParameters:
  epochs: 10
  lr: 0.001
  verbose: true
  sagemaker_submit_directory: '"file://./code"'
Environment:
  THREADS: 4
InputDataConfig:
  - ChannelName: train
    DataSource: {S3DataSource: {S3DataType: S3Prefix, S3Uri: file://data/train/}}
base: &base {InstanceType: ml.m5.large, InstanceCount: 1}
ResourceConfig: *base
""")
write("job_spec", "json", b"\x01" + json.dumps(CREATE).encode())

# The codec vectors botocore serialized (tools/codec_vectors.py): CloudWatch query forms for
# fuzz_query_form, CloudWatch CBOR bodies for fuzz_cbor (byte 0 picks the shape as the target
# does: the model's operations in order, each op's input then output).
with open(os.path.join(ROOT, "src", "api", "data", "cloudwatch-model.json")) as f:
    CW = json.load(f)
CW_SHAPES = []
for op_name in sorted(CW["operations"]):
    op = CW["operations"][op_name]
    for io in ("input", "output"):
        if io in op:
            CW_SHAPES.append((op_name, io))
with open(os.path.join(ROOT, "tests", "api", "fixtures", "codecs",
                       "requests-botocore-1.43.json")) as f:
    VECTORS = json.load(f)["vectors"]
for v in VECTORS:
    if v["model"] != "cloudwatch":
        continue
    body = base64.b64decode(v["request"]["body_b64"])
    name = v["name"].rsplit("/", 1)[1]
    if v["protocol"] == "query":
        write("query_form", name, body)
    elif v["protocol"] == "smithy-rpc-v2-cbor":
        write("cbor", name, bytes([CW_SHAPES.index((v["operation"], "input"))]) + body)
write("query_form", "get", "?Action=ListMetrics&Version=2010-08-01&Dimensions.member.1.Name=a")
write("query_form", "bad", "Action=PutMetricData&MetricData.member.1.Timestamp=x%zz&a.b.c.d=")

# EventBridge patterns for fuzz_event_pattern: one per operator (cases of
# tests/events/event_pattern_test.cc), plus an InputTransformer template and an InputPath.
PATTERNS = {
    "job_rule": {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Training Job State Change"],
                 "detail": {"TrainingJobStatus": ["Failed", "Stopped"]}},
    "prefix_suffix": {"detail": {"TrainingJobName": [{"prefix": "my-"}, {"suffix": {"equals-ignore-case": "JOB"}}],
                                 "SecondaryStatus": [{"prefix": {"equals-ignore-case": "train"}}]}},
    "anything_but": {"detail": {"TrainingJobStatus": [{"anything-but": ["Completed", "Failed"]}],
                                "ResourceConfig": {"InstanceCount": [{"anything-but": [2, 3]}],
                                                   "InstanceType": [{"anything-but": {"prefix": "ml.p"}}]},
                                "Tags": {"Team": [{"anything-but": {"wildcard": "*-ops"}}]}}},
    "numeric": {"detail": {"ResourceConfig": {"VolumeSizeInGB": [{"numeric": [">", 0, "<=", 3.0e2]}],
                                              "InstanceCount": [{"numeric": ["=", 1]}]}}},
    "exists_null": {"detail": {"FailureReason": [None], "TrainingEndTime": [{"exists": True}],
                               "Missing": [{"exists": False}], "Tags": [{"exists": False}]}},
    "cidr_wildcard": {"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}, {"cidr": "2001:db8::/32"}],
                                 "TrainingJobArn": [{"wildcard": "arn:aws:sagemaker:*:training-job/\\*my*"}]}},
    "or_arrays": {"resources": [{"prefix": "arn:aws:sagemaker:"}],
                  "detail": {"$or": [{"SecondaryStatusTransitions": {"Status": ["Interrupted"]}},
                                     {"Nested": [2.5, True]}, {"$or": [{"a": [1]}, {"b": [""]}]}]}},
}
for name, pattern in PATTERNS.items():
    write("event_pattern", name, json.dumps(pattern))
write("event_pattern", "template", '{"job": <name>, "tags": <tags>, "msg": "job <name> at <first>",'
                                   ' "rule": <aws.events.rule-name>, "m": <missing>}')
write("event_pattern", "path", "$.detail.SecondaryStatusTransitions[1]['Status']")
# Governance policy documents: the README's config example (YAML), its API spelling (JSON).
GOVERNANCE_YAML = """required_tags: {keys: [team, cost-center], action: stop}
allowed_instance_types: [ml.m5.large, ml.g5.xlarge]
max_instance_count: 4
max_runtime_seconds: 86400
idle_stop: {metric: GPUUtilization, threshold_percent: 5, duration_seconds: 1800}
auto_resume: {min_runtime_seconds: 3600, max_resumes: 2, on_algorithm_error: false}
spot_fallback: {after_interruptions: 4, max_capacity_wait_seconds: 1800}
"""
write("governance_policy", "config_yaml", GOVERNANCE_YAML)
write("governance_policy", "api_json", json.dumps({
    "RequiredTags": {"Keys": ["team"], "Action": "refuse"}, "MaxInstanceCount": 2,
    "IdleStop": {"Metric": "CPUUtilization", "ThresholdPercent": 2.5, "DurationSeconds": 60},
    "AutoResume": {"MinRuntimeSeconds": 0, "MaxResumes": 1, "OnAlgorithmError": True},
    "SpotFallback": {"AfterInterruptions": 3}}))
write("governance_policy", "alias_cycle", "a: &a\n  b: *a\n")
