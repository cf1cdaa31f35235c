"""Multi-node jobs end to end, through the real binary and boto3: InstanceCount > 1 runs one
agent per instance (algo-1 .. algo-N), each in its own network namespace on a bridge the server
makes, with its own /etc/hosts, /opt/ml and PID namespace; ShardedByS3Key splits a channel; the
job is one unit (a failure, a stop, a spot interruption reach every instance); the instances'
model directories are merged into one model.tar.gz; and nothing is left behind (namespaces,
links, processes)."""
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import ROOT, Server, TEST_CONFIG, job_request, logs_of, wait_for, wait_status

JOBS = os.path.join(ROOT, "tests", "e2e", "jobs")
EXAMPLE = os.path.join(ROOT, "examples", "ddp-digits")

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="network namespaces need root (CI runs as root)")


# Network objects that existed when the current test started (another server's, or a leak of an
# earlier test's, which that test reports): not this test's leftovers.
BASELINE = set()


@pytest.fixture(autouse=True)
def network_baseline():
    BASELINE.clear()
    BASELINE.update(leftovers())
    yield


def leftovers(data_dir=None):
    """What a job network or a job's processes could leave behind: ty-* namespaces, tyb-/tyv-
    links, and processes whose command line names the server's data dir."""
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [line.split()[0] for line in ns.splitlines() if line.startswith("ty-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(("tyb-", "tyv-")):
            found.append(name)
    if data_dir:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if data_dir in cmd and "trainyard server" not in cmd:
                found.append(f"pid {pid}: {cmd[:200]}")
        # Instance volumes (VolumeSizeInGB) are unmounted once the job's agents are gone.
        with open("/proc/self/mountinfo") as f:
            found += ["mount " + line.split()[4] for line in f
                      if line.split()[4].startswith(data_dir + "/")]
    return [f for f in found if f not in BASELINE]


def assert_nothing_left(data_dir, timeout=20):
    wait_for(lambda: leftovers(data_dir), lambda left: left == [], timeout=timeout, interval=0.2)


def probe_request(name, storage, count, *args, sharded_files=7, **overrides):
    """A job of `count` instances running jobs/instance_probe.py, with a sharded channel of
    `sharded_files` files and a fully replicated one holding the script."""
    scripts = storage.uri(f"scripts-{name}")
    storage.put_dir(JOBS, scripts)
    shards = storage.uri(f"shards-{name}")
    for i in range(sharded_files):
        storage.put_bytes(f"{shards}/part-{i:02d}.csv", f"{i}\n".encode())
    req = job_request(name, "/unused", **overrides)
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    req["ResourceConfig"]["InstanceCount"] = count
    req["InputDataConfig"] = [
        {"ChannelName": "scripts",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": scripts,
                                         "S3DataDistributionType": "FullyReplicated"}}},
        {"ChannelName": "shards",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": shards,
                                         "S3DataDistributionType": "ShardedByS3Key"}}},
    ]
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/bin/sh", "-c", 'exec /usr/bin/python3 "$SM_CHANNEL_SCRIPTS/instance_probe.py" "$@"',
        "sh", *args]
    return req


def probe_lines(logs):
    """{stream: [probe lines]} from `trainyard logs` output (date time stream message...)."""
    out = {}
    for line in logs.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[3].startswith("probe: "):
            out.setdefault(parts[2], []).append(parts[3][len("probe: "):])
    return out


def model_members(storage, name):
    data = storage.get_bytes(storage.uri(f"out/{name}/output/model.tar.gz"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name.lstrip("./"): tar.extractfile(m).read().decode(errors="replace")
                for m in tar.getmembers() if m.isfile()}


@needs_root
def test_three_instances_see_the_cluster_their_shards_and_each_other(server, sm, storage):
    sm.create_training_job(**probe_request("probe3", storage, 3))
    d = wait_status(sm, "probe3", timeout=120)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["ResourceConfig"]["InstanceCount"] == 3
    logs = logs_of(server, "probe3")
    by_stream = probe_lines(logs)
    # One log stream per instance.
    assert sorted(s.split("/")[1].rsplit("-", 1)[0] for s in by_stream) == \
        ["algo-1", "algo-2", "algo-3"], by_stream.keys()
    addresses = {}
    shards = {}
    for stream, lines in by_stream.items():
        host = stream.split("/")[1].rsplit("-", 1)[0]
        text = "\n".join(lines)
        assert f"current {host} hostname {host} rank {int(host[-1]) - 1} of 3" in text, text
        rc = json.loads(re.search(r"^resourceconfig (.*)$", text, re.M).group(1))
        assert rc["current_host"] == host
        assert rc["hosts"] == ["algo-1", "algo-2", "algo-3"]
        assert rc["network_interface_name"] == "eth0"
        assert "interface eth0 master algo-1 7777" in text, text
        resolved = dict(re.findall(r"^resolves (algo-\d) (\S+)$", text, re.M))
        assert sorted(resolved) == ["algo-1", "algo-2", "algo-3"], text
        addresses[host] = resolved
        shards[host] = json.loads(re.search(r"^channel shards (.*)$", text, re.M).group(1))
        scripts = json.loads(re.search(r"^channel scripts (.*)$", text, re.M).group(1))
        assert "instance_probe.py" in scripts  # FullyReplicated: every instance has it all
    # Every instance resolves every name to the same address; the addresses are distinct and
    # private (a /24 of 10/8 or 172.16/12), not loopback.
    assert addresses["algo-1"] == addresses["algo-2"] == addresses["algo-3"]
    ips = list(addresses["algo-1"].values())
    assert len(set(ips)) == 3 and not any(ip.startswith("127.") for ip in ips), ips
    # ShardedByS3Key: disjoint shards that together are the whole channel, round-robin by key.
    allfiles = sorted(f for files in shards.values() for f in files)
    assert allfiles == [f"part-{i:02d}.csv" for i in range(7)], shards
    assert shards["algo-1"] == ["part-00.csv", "part-03.csv", "part-06.csv"], shards
    assert shards["algo-2"] == ["part-01.csv", "part-04.csv"], shards
    # They reached each other through algo-1's name and port.
    assert "algo-1 heard from algo-2" in logs and "algo-1 heard from algo-3" in logs, logs
    # One model.tar.gz, merged from all three; on a name clash algo-1's copy wins, and the
    # log says so.
    members = model_members(storage, "probe3")
    assert {"algo-1.txt", "algo-2.txt", "algo-3.txt", "common.txt"} <= set(members), members
    assert members["common.txt"] == "algo-1\n"
    assert "model merge: common.txt" in logs, logs
    # Each instance is held to its type's limits (ml.m5.large: 2 vCPUs, 8 GiB, 4096 processes),
    # or says why not.
    for host in ("algo-1", "algo-2", "algo-3"):
        assert re.search(rf"probe3/{host}-\d+ trainyard: instance limits"
                         rf"(: 2 CPUs, 8 GiB memory, 4096 processes \(cgroup| not enforced: )",
                         logs), logs
    assert_nothing_left(server.data_dir)


@needs_root
def test_one_failing_instance_fails_the_job_and_stops_the_others(server, sm, tmp_path):
    from s3util import FileStorage
    storage = FileStorage(str(tmp_path / "store"))
    sm.create_training_job(**probe_request("fails", storage, 2, "--fail-on", "algo-2",
                                           "--sleep", "120"))
    d = wait_status(sm, "fails", timeout=120)
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("AlgorithmError"), d["FailureReason"]
    assert d["FailureReason"].endswith("(on algo-2)"), d["FailureReason"]
    # algo-1 was sleeping for two minutes: it is stopped, not waited for.
    assert_nothing_left(server.data_dir, timeout=30)
    logs = logs_of(server, "fails")
    assert "the job failed on another instance" in logs, logs
    assert not storage.keys(storage.uri("out/fails/output"))  # a failed job has no model


@needs_root
def test_stop_reaches_every_instance(server, sm, storage):
    sm.create_training_job(**probe_request("stop2", storage, 2, "--sleep", "120"))
    wait_for(lambda: logs_of(server, "stop2"),
             lambda logs: logs.count("sleeping 120") == 2, timeout=60, interval=0.2)
    sm.stop_training_job(TrainingJobName="stop2")
    d = wait_status(sm, "stop2", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped", d.get("FailureReason")
    # A stopped job still gets its (merged) model.
    assert {"algo-1.txt", "algo-2.txt"} <= set(model_members(storage, "stop2"))
    assert_nothing_left(server.data_dir)


@needs_root
def test_a_crashed_server_removes_what_it_left_when_it_starts_again(tmp_path):
    from s3util import FileStorage
    storage = FileStorage(str(tmp_path / "store"))
    srv = Server(str(tmp_path / "data")).start()
    try:
        sm = srv.boto3()
        sm.create_training_job(**probe_request("crash", storage, 2, "--sleep", "120"))
        wait_for(lambda: logs_of(srv, "crash"),
                 lambda logs: logs.count("sleeping 120") == 2, timeout=60, interval=0.2)
        assert any(n.startswith("ty-") for n in leftovers())
        # The server dies, and so do its agents (a machine-wide kill): what is left is the
        # network and nothing to re-adopt.
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        subprocess.run(["pkill", "-KILL", "-f", srv.data_dir], check=False)
        time.sleep(0.5)
        srv.start()
        assert_nothing_left(srv.data_dir)
        d = srv.boto3().describe_training_job(TrainingJobName="crash")
        assert d["TrainingJobStatus"] == "Failed"
        assert "restarted" in d["FailureReason"], d["FailureReason"]
    finally:
        srv.stop()


def test_loopback_network_when_namespaces_are_off(tmp_path):
    """network: loopback (what a server without namespaces falls back to): every instance gets
    its own 127.X.Y.n address and still finds the others by name."""
    from s3util import FileStorage
    storage = FileStorage(str(tmp_path / "store"))
    srv = Server(str(tmp_path / "data"), config=TEST_CONFIG + "network: loopback\n").start()
    try:
        sm = srv.boto3()
        sm.create_training_job(**probe_request("loop", storage, 2))
        d = wait_status(sm, "loop", timeout=120)
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        logs = logs_of(srv, "loop")
        ips = set(re.findall(r"probe: resolves algo-\d (\S+)", logs))
        assert len(ips) == 2 and all(ip.startswith("127.") for ip in ips), logs
        assert "algo-1 heard from algo-2" in logs, logs
        assert "interface lo" in logs
    finally:
        srv.stop()


def test_more_instances_than_the_machine_hosts_is_refused(server, sm, tmp_path):
    from s3util import FileStorage
    req = probe_request("toomany", FileStorage(str(tmp_path / "store")), 33)
    with pytest.raises(sm.exceptions.ResourceLimitExceeded) as e:
        sm.create_training_job(**req)
    assert "capacity" in str(e.value)


def ddp_request(name, storage):
    import yaml
    with open(os.path.join(EXAMPLE, "job.yaml")) as f:
        req = yaml.safe_load(f)
    # The spec's relative file:// URIs (the submit directory) resolve against the example.
    req = json.loads(json.dumps(req).replace("file://./", f"file://{EXAMPLE}/"))
    req["TrainingJobName"] = name
    # Room after the epoch-2 checkpoint for the interruption to land mid-training on a busy CI.
    req["HyperParameters"].update({"epochs": "10", "sleep-per-epoch": "0.7"})
    for ch in req["InputDataConfig"]:
        ch["DataSource"]["S3DataSource"]["S3Uri"] = storage.uri("data/" + ch["ChannelName"])
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    req["CheckpointConfig"]["S3Uri"] = storage.uri(f"ckpt/{name}/")
    return req


@needs_root
@pytest.mark.parametrize("storage", ["s3"], indirect=True)
def test_ddp_digits_on_two_instances_survives_a_spot_interruption(server, sm, storage):
    """examples/ddp-digits: DDP over gloo between two namespaces, interrupted once after a
    checkpoint; both instances restart together, resume from it and end in sync."""
    subprocess.run([os.path.join(EXAMPLE, "prepare.sh")], check=True, capture_output=True)
    storage.put_dir(os.path.join(EXAMPLE, "data"), storage.uri("data"))
    sm.create_training_job(**ddp_request("ddp", storage))
    wait_for(lambda: logs_of(server, "ddp"), lambda l: "checkpoint written: epoch 2" in l,
             timeout=120, interval=0.2)
    server.cli("spot", "interrupt", "ddp")
    d = wait_status(sm, "ddp", timeout=240)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    seq = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert seq.count("Interrupted") == 1, seq
    logs = logs_of(server, "ddp")
    streams = {line.split()[2] for line in logs.splitlines() if line.strip()}
    assert len(streams) == 4, streams  # two instances, two attempts
    assert re.search(r"train_multi_node: MASTER_ADDR=algo-1 MASTER_PORT=7777 WORLD_SIZE=2 "
                     r"NODE_RANK=1 RANK=1 LOCAL_RANK=0 GLOO_SOCKET_IFNAME=eth0", logs), logs
    resumed = re.findall(r"rank (\d)/2: resumed from epoch (\d+)", logs)
    assert sorted(r for r, _ in resumed) == ["0", "1"], resumed
    assert all(int(e) >= 2 for _, e in resumed), resumed
    assert logs.count("parameters in sync across 2 ranks: True") == 2, logs
    acc = float(re.search(r"final val_accuracy=([0-9.]+)", logs).group(1))
    assert acc > 0.9, acc
    # The model came from rank 0 through the merge; only rank 0's newest two checkpoints
    # are at the checkpoint URI (algo-2's restored copies neither came back nor deleted them).
    members = model_members(storage, "ddp")
    assert "model.pt" in members or any(m.endswith("model.pt") for m in members), members
    ckpts = [k for k in storage.keys(storage.uri("ckpt/ddp/")) if k.startswith("checkpoint-epoch")]
    assert ckpts == ["checkpoint-epoch-10.pt", "checkpoint-epoch-9.pt"], ckpts
    assert_nothing_left(server.data_dir)
