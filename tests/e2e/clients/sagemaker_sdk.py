"""Drives a Trainyard server with the real SageMaker Python SDK 2.230 (../shared/clients), the way
a user's notebook would. Run by tests/e2e/test_sagemaker_sdk.py under the pyenv `python3`
(boto3 1.43 honours AWS_ENDPOINT_URL) with PYTHONPATH=$TY_SDK_PYTHONPATH.

usage: sagemaker_sdk.py fit SPEC.json        build the estimator SPEC describes, call fit() with
                                             its defaults (wait=True, logs=True)
       sagemaker_sdk.py start SPEC.json      the same with fit(wait=False): the result is the
                                             CreateTrainingJob request the SDK sent; SPEC may name
                                             debugger rules ("rules": [{"rule": "vanishing_gradient",
                                             "collections": {"gradients": {"save_interval": "1"}},
                                             "parameters": {...}, "stop_training": true}]) and
                                             profiler rules ("profiler_rules": ["ProfilerReport"])
       sagemaker_sdk.py calls CALLS.json     run each call of a list, in one process (importing
                                             the SDK takes seconds):
         ["attach", KIND, JOB]               Estimator.attach (KIND estimator) or PyTorch.attach
         ["analytics", JOB]                  TrainingJobAnalytics(JOB).dataframe()
         ["rules", KIND, JOB]                attach, then rule_job_summary()

Everything the SDK prints goes to stdout untouched. The result is the last line, `RESULT <json>`:
fit's result, or for `calls` one {"ok": result} or {"error": traceback} per call. Environment: the client variables of conftest.Server.client_env(), plus
TY_BUCKET (the SDK's default bucket) and TY_S3_ENDPOINT / TY_S3_ACCESS_KEY / TY_S3_SECRET_KEY
(the S3 store, which has keys of its own: s3rver accepts only its own).
"""

import json
import os
import sys
import traceback

import boto3
import sagemaker
from sagemaker.analytics import TrainingJobAnalytics
from sagemaker.estimator import Estimator
from sagemaker.pytorch import PyTorch


def session():
    # Region, credentials and the endpoint come from the environment, as for any boto3 user.
    boto = boto3.Session()
    sess = sagemaker.Session(boto_session=boto, default_bucket=os.environ["TY_BUCKET"],
                             sagemaker_config={"SchemaVersion": "1.0"})
    # The S3 store is not Trainyard and has keys of its own: the Session's public S3 handles,
    # which the SDK uses for the bucket check and the source_dir upload.
    s3 = boto3.Session(aws_access_key_id=os.environ["TY_S3_ACCESS_KEY"],
                       aws_secret_access_key=os.environ["TY_S3_SECRET_KEY"],
                       region_name=boto.region_name)
    sess.s3_client = s3.client("s3", endpoint_url=os.environ["TY_S3_ENDPOINT"])
    sess.s3_resource = s3.resource("s3", endpoint_url=os.environ["TY_S3_ENDPOINT"])
    return sess


def result(doc):
    sys.stdout.flush()
    print("RESULT " + json.dumps(doc, default=str), flush=True)


def fit(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    kind = spec.pop("kind")
    job_name = spec.pop("job_name")
    cls = {"estimator": Estimator, "pytorch": PyTorch}[kind]
    est = cls(sagemaker_session=session(), **spec)
    est.fit(job_name=job_name)  # the defaults: wait=True, logs="All"
    result({"job_name": est.latest_training_job.name, "model_data": est.model_data})


def debugger_rules(specs):
    """Rule.sagemaker(rule_configs.<rule>(), ...) per spec, as a notebook writes them."""
    from sagemaker.debugger import CollectionConfig, Rule, rule_configs
    rules = []
    for spec in specs:
        collections = [CollectionConfig(name=n, parameters=p)
                       for n, p in spec.get("collections", {}).items()] or None
        actions = rule_configs.ActionList(rule_configs.StopTraining()) \
            if spec.get("stop_training") else None
        rules.append(Rule.sagemaker(getattr(rule_configs, spec["rule"])(),
                                    rule_parameters=spec.get("parameters"),
                                    collections_to_save=collections, actions=actions))
    return rules


def profiler_rules(names):
    from sagemaker.debugger import ProfilerRule, rule_configs
    return [ProfilerRule.sagemaker(getattr(rule_configs, n)()) for n in names]


def start(spec_path):
    """fit(wait=False); the result is what the SDK sent to CreateTrainingJob."""
    with open(spec_path) as f:
        spec = json.load(f)
    kind = spec.pop("kind")
    job_name = spec.pop("job_name")
    rules = debugger_rules(spec.pop("rules", [])) + profiler_rules(spec.pop("profiler_rules", []))
    cls = {"estimator": Estimator, "pytorch": PyTorch}[kind]
    sent = {}
    sess = session()
    client = sess.sagemaker_client
    client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **kw: sent.update(params))
    est = cls(sagemaker_session=sess, rules=rules or None, **spec)
    est.fit(job_name=job_name, wait=False)
    result({"job_name": est.latest_training_job.name, "request": sent,
            "debugger_artifacts": est.latest_job_debugger_artifacts_path()})


def rules(kind, job_name):
    cls = {"estimator": Estimator, "pytorch": PyTorch}[kind]
    est = cls.attach(job_name, sagemaker_session=session())
    return {"summary": est.latest_training_job.rule_job_summary()}


def attach(kind, job_name):
    """The rebuilt estimator's settings."""
    cls = {"estimator": Estimator, "pytorch": PyTorch}[kind]
    est = cls.attach(job_name, sagemaker_session=session())
    doc = {
        "class": type(est).__name__,
        "job_name": est.latest_training_job.name,
        "role": est.role,
        "instance_count": est.instance_count,
        "instance_type": est.instance_type,
        "volume_size": est.volume_size,
        "max_run": est.max_run,
        "input_mode": est.input_mode,
        "output_path": est.output_path,
        "output_kms_key": est.output_kms_key,
        "image_uri": est.image_uri,
        "hyperparameters": est.hyperparameters(),
        "use_spot_instances": est.use_spot_instances,
        "max_wait": est.max_wait,
        "encrypt_inter_container_traffic": est.encrypt_inter_container_traffic,
        "enable_network_isolation": est.enable_network_isolation(),
        "tags": est.tags,
        "model_data": est.model_data,
    }
    if kind == "pytorch":
        doc.update(entry_point=est.entry_point, source_dir=est.source_dir,
                   framework_version=est.framework_version, py_version=est.py_version)
    else:
        doc.update(container_entry_point=est.container_entry_point)
    return doc


def analytics(job_name):
    df = TrainingJobAnalytics(job_name, sagemaker_session=session()).dataframe()
    return {"columns": list(df.columns), "rows": df.to_dict(orient="records")}


def calls(path):
    with open(path) as f:
        todo = json.load(f)
    done = []
    for call in todo:
        try:
            done.append({"ok": {"attach": attach, "analytics": analytics,
                                "rules": rules}[call[0]](*call[1:])})
        except Exception:  # noqa: BLE001 - reported to the test, which judges it
            done.append({"error": traceback.format_exc()})
    result(done)


def main(argv):
    cmd = argv[1]
    if cmd == "fit":
        fit(argv[2])
    elif cmd == "start":
        start(argv[2])
    elif cmd == "calls":
        calls(argv[2])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
