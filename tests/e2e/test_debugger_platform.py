"""The platform side of SageMaker Debugger through the real binary and boto3: DebugHookConfig and
DebugRuleConfigurations become /opt/ml/input/config/debughookconfig.json (the rules' collections
merged in) and the hook's local output is synced to <S3OutputPath>/<job>/debug-output/ while the
job trains (never torn) and wholly once it ends; TensorBoardOutputConfig likewise; ProfilerConfig
gives system metrics under profiler-output/system/ that the real smdebug reader reads; training
code imports from the server's python/ folder; bad debugger input is refused by name."""
import json
import os
import subprocess
import textwrap

import botocore.exceptions
import pytest

from conftest import TEST_CONFIG, Server, job_request, logs_of, wait_for, wait_status

REGION = "us-east-1"
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
FILE_SIZE = 64 * 1024

# A stand-in for a hook: writes smdebug-shaped files into the local path, each held open across
# a pause (a sync that uploaded on write would upload it torn), every byte of file i equal to
# i % 251. On SIGTERM it writes one last file and exits 0. Prints the config it was given.
WRITER = textwrap.dedent("""
    import json, os, signal, sys, time
    cfg_path = os.path.join(os.environ["SM_INPUT_DATA_DIR"], "..", "config", sys.argv[1])
    cfg = json.load(open(cfg_path))
    print("CONFIG " + json.dumps(cfg), flush=True)
    out = cfg["LocalPath"]
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    def write(i, final=False):
        rel = (f"events/{i:012d}/{i:012d}_worker_0.tfevents" if sys.argv[1].startswith("debug")
               else f"train/{i:012d}_1_algo-1.tfevents")
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(bytes([i % 251]) * (SIZE // 2))
            f.flush()
            time.sleep(0.05)
            f.write(bytes([i % 251]) * (SIZE - SIZE // 2))
        print(f"wrote {i}" + (" final" if final else ""), flush=True)
    i = 0
    deadline = time.time() + float(sys.argv[2])
    while not stop and time.time() < deadline:
        write(i)
        i += 1
        time.sleep(0.2)
    if stop:
        write(i, final=True)
        i += 1
    print(f"WROTE {i}", flush=True)
""").replace("SIZE", str(FILE_SIZE))


def writer_job(name, tmp_path, storage, config_file, seconds, **members):
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "writer.py").write_text(WRITER)
    req = job_request(name, str(tmp_path), **members)
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    # The script comes in as a channel: the sandbox hides the host's /tmp.
    req["InputDataConfig"] = [{
        "ChannelName": "scripts",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"file://{scripts}",
                                        "S3DataDistributionType": "FullyReplicated"}}}]
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/bin/sh", "-c", 'exec /usr/bin/python3 "$SM_CHANNEL_SCRIPTS/writer.py" "$@"', "sh",
        config_file, str(seconds)]
    return req


def whole(data, i):
    return len(data) == FILE_SIZE and data.count(bytes([i % 251])) == FILE_SIZE


def stored_steps(storage, uri, pattern):
    """{step: whole?} of the files stored under `uri` whose key starts with `pattern`."""
    out = {}
    for key in storage.keys(uri):
        if key.startswith(pattern):
            i = int(key.split("/")[-1][:12])
            out[i] = whole(storage.get_bytes(uri + key), i)
    return out


def config_from_logs(logs):
    line = next(l for l in logs.splitlines() if " CONFIG {" in l)
    return json.loads(line.split(" CONFIG ", 1)[1])


def rule(name, rule_to_invoke, **params):
    return {"RuleConfigurationName": name, "RuleEvaluatorImage": RULES_IMAGE,
            "RuleParameters": {"rule_to_invoke": rule_to_invoke, **params}}


def test_debug_hook_output_is_synced_while_training_and_whole_after(server, sm, tmp_path, storage):
    req = writer_job("dbg", tmp_path, storage, "debughookconfig.json", 90,
                     DebugHookConfig={
                         "S3OutputPath": storage.uri("dbg"),
                         "HookParameters": {"save_interval": "1"},
                         "CollectionConfigurations": [
                             {"CollectionName": "weights"},
                             {"CollectionName": "gradients",
                              "CollectionParameters": {"save_interval": "2"}}]},
                     DebugRuleConfigurations=[
                         rule("vanishing", "VanishingGradient"),
                         rule("loss", "LossNotDecreasing"),
                         rule("dead", "DeadRelu")])
    sm.create_training_job(**req)
    out = storage.uri("dbg/dbg/debug-output/")

    # Files appear in the store while the job trains, each one whole.
    seen = wait_for(lambda: stored_steps(storage, out, "events/"), lambda s: len(s) >= 3,
                    timeout=60, interval=0.2)
    assert sm.describe_training_job(TrainingJobName="dbg")["TrainingJobStatus"] == "InProgress"
    assert all(seen.values()), seen

    sm.stop_training_job(TrainingJobName="dbg")
    d = wait_status(sm, "dbg")
    assert d["TrainingJobStatus"] == "Stopped", d.get("FailureReason")
    logs = logs_of(server, "dbg")
    written = int(logs.split("WROTE ")[1].split()[0])
    assert "final" in logs  # the file written after SIGTERM ...
    final = stored_steps(storage, out, "events/")
    assert sorted(final) == list(range(written))  # ... and every other one is in the store
    assert all(final.values()), final
    # The control plane places the end marker once the job ended (its final sync done).
    wait_for(lambda: storage.keys(out), lambda keys: "training_job_end.ts" in keys, timeout=30)

    # The config is SageMaker's, with the rules' collections merged into the user's.
    cfg = config_from_logs(logs)
    assert cfg["S3OutputPath"] == storage.uri("dbg")
    assert cfg["LocalPath"].endswith("/output/tensors")
    assert cfg["HookParameters"] == {"save_interval": "1"}
    colls = {c["CollectionName"]: c.get("CollectionParameters", {})
             for c in cfg["CollectionConfigurations"]}
    assert colls["weights"] == {}
    assert colls["gradients"] == {"save_interval": "2"}  # the user's parameters win
    assert colls["losses"] == {"save_interval": "500"}
    assert colls["relu_output"] == {"include_regex": ".*relu_output", "save_interval": "500"}
    # Describe echoes the request.
    assert [r["RuleConfigurationName"] for r in d["DebugRuleConfigurations"]] == [
        "vanishing", "loss", "dead"]


def test_spot_interruption_keeps_what_the_attempt_wrote(server, sm, tmp_path, storage):
    req = writer_job("dbgspot", tmp_path, storage, "debughookconfig.json", 90,
                     EnableManagedSpotTraining=True,
                     StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
                     DebugHookConfig={"S3OutputPath": storage.uri("dbg")})
    sm.create_training_job(**req)
    out = storage.uri("dbg/dbgspot/debug-output/")
    wait_for(lambda: stored_steps(storage, out, "events/"), lambda s: len(s) >= 2, timeout=60,
             interval=0.2)
    server.cli("spot", "interrupt", "dbgspot")
    # The interrupted attempt's last file (written on its SIGTERM) and all before it are kept.
    logs = wait_for(lambda: logs_of(server, "dbgspot"), lambda l: "WROTE " in l, timeout=60,
                    interval=0.2)
    written = int(logs.split("WROTE ")[1].split()[0])
    assert "final" in logs
    got = wait_for(lambda: stored_steps(storage, out, "events/"),
                   lambda s: set(range(written)) <= set(s), timeout=30, interval=0.2)
    assert all(got.values()), got
    sm.stop_training_job(TrainingJobName="dbgspot")
    assert wait_status(sm, "dbgspot")["TrainingJobStatus"] == "Stopped"


def test_rules_without_a_hook_config_get_one_under_the_output_path(server, sm, tmp_path):
    from s3util import FileStorage
    storage = FileStorage(str(tmp_path / "store"))
    req = writer_job("rulesonly", tmp_path, storage, "debughookconfig.json", 0.5,
                     DebugRuleConfigurations=[rule("vg", "VanishingGradient")])
    sm.create_training_job(**req)
    d = wait_status(sm, "rulesonly")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    cfg = config_from_logs(logs_of(server, "rulesonly"))
    assert cfg["S3OutputPath"] == storage.uri("out")
    assert cfg["CollectionConfigurations"] == [
        {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "500"}}]
    written = int(logs_of(server, "rulesonly").split("WROTE ")[1].split()[0])
    got = stored_steps(storage, storage.uri("out/rulesonly/debug-output/"), "events/")
    assert sorted(got) == list(range(written)) and all(got.values())


def test_tensorboard_output_is_synced(server, sm, tmp_path, storage):
    req = writer_job("tb", tmp_path, storage, "tensorboardoutputconfig.json", 1.5,
                     TensorBoardOutputConfig={"S3OutputPath": storage.uri("tb")})
    sm.create_training_job(**req)
    d = wait_status(sm, "tb")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "tb")
    cfg = config_from_logs(logs)
    assert cfg["LocalPath"].endswith("/output/tensorboard")
    written = int(logs.split("WROTE ")[1].split()[0])
    assert written >= 1
    got = stored_steps(storage, storage.uri("tb/tb/tensorboard-output/"), "train/")
    assert sorted(got) == list(range(written)) and all(got.values())
    assert d["TensorBoardOutputConfig"]["S3OutputPath"] == storage.uri("tb")


def smdebug_env():
    """TY_SMDEBUG_PYTHONPATH from the clients folder's setup.sh (TY_CLIENTS, else
    ../shared/clients beside the checkout, as test_sagemaker_sdk.py finds it), or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.environ.get("TY_CLIENTS"), os.path.join(os.path.dirname(root), "shared", "clients"),
                  "/work/shared/clients"]
    clients = next((c for c in candidates if c and os.path.exists(os.path.join(c, "setup.sh"))), None)
    if clients is None:
        return None
    res = subprocess.run([os.path.join(clients, "setup.sh")], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        line = line.replace("export ", "", 1)
        if line.startswith("TY_SMDEBUG_PYTHONPATH="):
            return line.split("=", 1)[1].strip()
    return None


READ_SYSTEM_METRICS = textwrap.dedent("""
    import json, sys
    from smdebug.profiler.system_metrics_reader import LocalSystemMetricsReader
    r = LocalSystemMetricsReader(sys.argv[1])
    end = r.get_timestamp_of_latest_available_file()
    events = r.get_events(0, 10**17)
    print(json.dumps({"end": end, "events": [
        [e.type, e.name, e.dimension, e.value, e.node_id, e.timestamp] for e in events]}))
""")


def test_profiler_system_metrics_are_read_by_smdebug(server, sm, tmp_path, storage):
    pythonpath = smdebug_env()
    if not pythonpath:
        pytest.skip("the real smdebug is absent: no clients folder with setup.sh (set TY_CLIENTS "
                    "to its path)")
    req = job_request("prof", str(tmp_path), "sleep 3",
                      ProfilerConfig={"ProfilingIntervalInMilliseconds": 100,
                                      "S3OutputPath": storage.uri("prof")})
    sm.create_training_job(**req)
    d = wait_status(sm, "prof")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")

    root = storage.uri("prof/prof/profiler-output/")
    keys = storage.keys(root)
    assert keys and all(k.startswith("system/incremental/") and k.endswith(".algo-1.json")
                        for k in keys), keys
    if storage.scheme == "file":
        local = root[len("file://"):]
    else:  # the reader reads a local copy of what the store holds
        local = str(tmp_path / "profiler-output")
        for k in keys:
            os.makedirs(os.path.dirname(os.path.join(local, k)), exist_ok=True)
            with open(os.path.join(local, k), "wb") as f:
                f.write(storage.get_bytes(root + k))
    res = subprocess.run(["/usr/bin/python3", "-c", READ_SYSTEM_METRICS, local],
                         env=dict(os.environ, PYTHONPATH=pythonpath),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.splitlines()[-1])
    events = got["events"]
    cpu = sorted(e[5] for e in events if e[0] == "cpu" and e[1] == "total"
                 and e[2] == "CPUUtilization")
    mem = [e for e in events if e[0] == "memory" and e[2] == "MemoryUsedPercent"]
    assert len(cpu) >= 5, events[:20]  # ~3 s at 100 ms
    assert mem and all(0 <= e[3] <= 100 for e in mem)
    assert all(e[4] == "algo-1" for e in events)
    assert any(e[1] == "cpu0" for e in events)
    assert not any(e[0] == "gpu" for e in events)  # no GPU here: no GPU events, no failure
    # Samples are about the interval apart (a loaded machine may stretch some; none are bunched).
    gaps = [b - a for a, b in zip(cpu, cpu[1:])]
    assert min(gaps) >= 0.05, gaps
    assert sorted(gaps)[len(gaps) // 2] < 1.0, gaps


PACKAGE = "MARKER = 'trainyard-debugger-placeholder'\n"

IMPORTER = textwrap.dedent("""
    import os, sys, trainyard_debugger
    print("IMPORTED", trainyard_debugger.MARKER, os.path.dirname(trainyard_debugger.__file__))
    try:
        open(os.path.join(os.path.dirname(trainyard_debugger.__file__), "x.py"), "w").write("")
        print("WRITABLE")
    except OSError as e:
        print("READONLY", e.errno)
""")


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_training_code_imports_from_the_python_folder(tmp_path, isolation):
    pkg_root = tmp_path / "python"
    (pkg_root / "trainyard_debugger").mkdir(parents=True)
    (pkg_root / "trainyard_debugger" / "__init__.py").write_text(PACKAGE)
    os.chmod(pkg_root, 0o755)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(IMPORTER)
    config = TEST_CONFIG + f"python_dir: {pkg_root}\nisolation: {isolation}\n"
    srv = Server(str(tmp_path / "data"), config=config).start()
    try:
        sm = srv.boto3()
        req = job_request("imports", str(tmp_path), image="x/pytorch-training:2.0",
                          HyperParameters={"sagemaker_program": "train.py",
                                           "sagemaker_submit_directory": f"file://{code}"})
        sm.create_training_job(**req)
        d = wait_status(sm, "imports")
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        logs = logs_of(srv, "imports")
        assert "IMPORTED trainyard-debugger-placeholder" in logs, logs
        if "running without isolation" not in logs:
            # In the sandbox the folder is bound read-only where training code cannot swap it.
            assert "IMPORTED trainyard-debugger-placeholder /opt/trainyard/python/" in logs
            assert "READONLY" in logs, logs
        else:
            assert isolation == "none" or "bubblewrap not available" in logs
        assert not (pkg_root / "trainyard_debugger" / "x.py").exists() or isolation == "none"
    finally:
        srv.stop()


def test_the_real_python_folder_is_found_beside_the_binary(server, sm, tmp_path):
    """Whatever python/ the repository holds next to build/ is importable (skipped when the
    branch has none yet)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(os.environ.get(
        "TRAINYARD_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "trainyard")))))
    pkg = os.path.join(root, "python", "trainyard_debugger")
    if not os.path.isdir(pkg):
        pytest.skip(f"no {pkg} on this branch")
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("import trainyard_debugger\nprint('REAL', trainyard_debugger.__name__)\n")
    req = job_request("realpkg", str(tmp_path), image="x/pytorch-training:2.0",
                      HyperParameters={"sagemaker_program": "train.py",
                                       "sagemaker_submit_directory": f"file://{code}"})
    sm.create_training_job(**req)
    d = wait_status(sm, "realpkg")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert "REAL trainyard_debugger" in logs_of(server, "realpkg")


BAD = [
    ("custom rule image",
     {"DebugRuleConfigurations": [{
         "RuleConfigurationName": "mine",
         "RuleEvaluatorImage": "503895931360.dkr.ecr.us-east-1.amazonaws.com/"
                               "sagemaker-debugger-rule-evaluator:latest",
         "RuleParameters": {"rule_to_invoke": "MyRule", "source_s3_uri": "s3://b/r.py"}}]},
     "custom rule images are not supported"),
    ("framework profiling",
     {"ProfilerConfig": {"ProfilingParameters": {
         "DataloaderProfilingConfig": '{"StartStep": 5, "NumSteps": 2}'}}},
     "ProfilingParameters (DataloaderProfilingConfig) is not supported"),
    ("21 rules",
     {"DebugRuleConfigurations": [rule(f"r{i}", "AllZero") for i in range(21)]},
     "20"),
    ("duplicate rule names",
     {"DebugRuleConfigurations": [rule("same", "AllZero"), rule("same", "Overfit")]},
     "RuleConfigurationName 'same' is repeated"),
    ("bad interval",
     {"ProfilerConfig": {"ProfilingIntervalInMilliseconds": 250}},
     "ProfilingIntervalInMilliseconds 250"),
    ("no rule_to_invoke",
     {"DebugRuleConfigurations": [{"RuleConfigurationName": "x", "RuleEvaluatorImage": RULES_IMAGE,
                                   "RuleParameters": {"threshold": "1"}}]},
     "rule_to_invoke is required"),
]


@pytest.mark.parametrize("label,members,message", BAD, ids=[b[0] for b in BAD])
def test_bad_debugger_input_is_refused(server, sm, tmp_path, label, members, message):
    req = job_request("bad", str(tmp_path), "true", **members)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_training_job(**req)
    err = e.value.response["Error"]
    assert err["Code"] == "ValidationException", err
    assert message in err["Message"], err
    # The server is unharmed and kept nothing.
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    with pytest.raises(botocore.exceptions.ClientError):
        sm.describe_training_job(TrainingJobName="bad")
