"""Trainyard on a real Slurm cluster (`launcher: slurm`), end to end with boto3 and the real
binary: scripts/slurm.sh brings up munge, slurmctld and two slurmd nodes (n1, n2) on this
machine, with a preemptible `spot` partition and an `ondemand` one over both nodes, each job on
whole nodes. The tests: the digits example completes; DDP runs on 2 nodes and its ranks agree; a
spot job preempted by an on-demand job shows Interrupted, resumes from its checkpoint and ends
with the uninterrupted run's weights (and `trainyard spot interrupt` goes through Slurm too);
MaxWait expires while Slurm keeps a job pending; stop; a killed server re-adopts its running
Slurm job and cancels one whose record is gone; slurmctld killed mid-job fails the job clearly
(last: it restarts slurmctld). After every test no Slurm job of the test's server, no agent
process and no namespace is left.

Needs root and Slurm (installed by scripts/slurm.sh if missing); skipped with a message when
either is impossible, unless TY_REQUIRE_SLURM=1 (./test.sh as root, i.e. CI), where that fails.
"""
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time

import pytest
import yaml

import s3util
from conftest import ROOT, Server, job_request, logs_of, wait_for, wait_status

SLURM_SH = os.path.join(ROOT, "scripts", "slurm.sh")
EXAMPLES = os.path.join(ROOT, "examples")
COUNTER = os.path.join(ROOT, "tests", "e2e", "jobs", "counter.py")
REQUIRED = os.environ.get("TY_REQUIRE_SLURM") == "1"
# Slurm's final job states.
ENDED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL",
         "DEADLINE", "OUT_OF_MEMORY"}


def _unavailable(reason):
    if REQUIRED:
        pytest.fail(f"Slurm tests required (TY_REQUIRE_SLURM=1) but {reason}")
    pytest.skip(reason)


class Cluster:
    """The cluster of scripts/slurm.sh: its SLURM_CONF and the Slurm tools run against it."""

    def __init__(self, conf):
        self.conf = conf
        self.dir = os.path.dirname(os.path.dirname(conf))
        self.env = dict(os.environ, SLURM_CONF=conf)

    def run(self, *args, check=True, timeout=30):
        res = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{args} failed ({res.returncode}): {res.stdout}{res.stderr}")
        return res

    def jobs(self, prefix, states="all"):
        """[(job id, name, state, nodes, node list, reason)] of the jobs named <prefix>...,
        finished ones included (MinJobAge keeps them for 5 minutes)."""
        out = self.run("squeue", "-h", "--states", states, "-o", "%i|%j|%T|%D|%N|%r").stdout
        rows = [tuple(line.split("|")) for line in out.splitlines() if line.strip()]
        return [r for r in rows if r[1].startswith(prefix)]

    def live_jobs(self, prefix):
        """The jobs named <prefix>... that have not ended."""
        return [r for r in self.jobs(prefix) if r[2] not in ENDED]

    def up(self):
        res = subprocess.run([SLURM_SH, "up"], capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr

    def ctld_pid(self):
        with open(os.path.join(self.dir, "run", "slurmctld.pid")) as f:
            return int(f.read().strip())


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        _unavailable("the Slurm tests need root (slurmd runs jobs as root; CI runs as root)")
    was_up = subprocess.run([SLURM_SH, "status"], capture_output=True).returncode == 0
    res = subprocess.run([SLURM_SH, "up"], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        if not os.path.exists("/usr/sbin/slurmctld") or "apt-get install" in res.stderr:
            _unavailable("Slurm is not installed and could not be installed: " + res.stderr)
        pytest.fail("scripts/slurm.sh up failed:\n" + res.stdout + res.stderr)
    env = subprocess.run([SLURM_SH, "env"], capture_output=True, text=True, check=True).stdout
    conf = re.search(r"SLURM_CONF=(\S+)", env).group(1)
    yield Cluster(conf)
    # A cluster someone else started (a developer's) is left as it was found.
    if not was_up:
        subprocess.run([SLURM_SH, "down"], capture_output=True, timeout=120)


def slurm_config(cluster, port, prefix):
    return f"""
images:
  - match: "trainyard-test/shell:*"
    command: ["/bin/sh", "-c", "echo 'image default entrypoint ran with:' \\"$@\\"", "sh"]
launcher: slurm
slurm:
  spot_partition: spot
  on_demand_partition: ondemand
  server_url: http://127.0.0.1:{port}
  slurm_conf: {cluster.conf}
  job_name_prefix: {prefix}
  timeout_seconds: 10
  instance_types:
    ml.m5.large: {{cpus: 1}}
    ml.m5.xlarge: {{cpus: 1}}
"""


SERVERS = [0]


class SlurmServer(Server):
    """A `trainyard server` with `launcher: slurm` on a port fixed before it starts (the nodes
    reach it at slurm.server_url), naming its Slurm jobs <prefix>..."""

    def __init__(self, data_dir, cluster):
        SERVERS[0] += 1
        self.cluster = cluster
        self.port = s3util.free_port()
        self.prefix = f"tye2e{os.getpid()}n{SERVERS[0]}-"
        super().__init__(data_dir, config=slurm_config(cluster, self.port, self.prefix))

    def start(self):
        try:
            return super().start(listen=f"127.0.0.1:{self.port}")
        except AssertionError:
            with open(self.log_path, errors="replace") as f:
                log = f.read()
            self.stop()
            # Until the Slurm launcher is built in, there is nothing to test.
            if "unknown config key 'launcher'" in log:
                pytest.skip("this trainyard build has no Slurm launcher (launcher: slurm)")
            raise AssertionError("the server did not start:\n" + log[-3000:])


def agent_processes(data_dir):
    """Processes (other than servers) whose command line names the data dir: agents, the
    training processes they run, srun, the batch script."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if data_dir in cmd and " server " not in cmd:
            found.append(f"pid {pid}: {cmd[:200]}")
    return found


def namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("ty-")}


def leftovers(srv, netns_before):
    left = [f"slurm job {r}" for r in srv.cluster.live_jobs(srv.prefix)]
    left += agent_processes(srv.data_dir)
    left += [f"netns {n}" for n in namespaces() - netns_before]
    return left


def assert_nothing_left(srv, netns_before, timeout=30):
    wait_for(lambda: leftovers(srv, netns_before), lambda left: left == [], timeout=timeout,
             interval=0.3)


@pytest.fixture
def server(tmp_path, cluster):
    """Replaces conftest's server: the same, with launcher: slurm. After the test, nothing of
    its jobs is left in Slurm or on the machine (checked before the server stops, since a
    stopped server leaves its running Slurm jobs for the next one to re-adopt)."""
    before = namespaces()
    srv = SlurmServer(str(tmp_path / "data"), cluster).start()
    yield srv
    try:
        left = leftovers(srv, before)
        if left:
            time.sleep(5)
            left = leftovers(srv, before)
    finally:
        srv.stop()
        for r in cluster.live_jobs(srv.prefix):
            cluster.run("scancel", r[0], check=False)
    assert left == [], left


@pytest.fixture
def sm(server):
    return server.boto3()


def from_example(example, name, replace_relative=True):
    """examples/<example>/job.yaml as a request, its relative file:// URIs made absolute."""
    folder = os.path.join(EXAMPLES, example)
    with open(os.path.join(folder, "job.yaml")) as f:
        req = yaml.safe_load(f)
    req = json.loads(json.dumps(req).replace("file://./", f"file://{folder}/"))
    req["TrainingJobName"] = name
    return req


def model_tar(storage, name):
    data = storage.get_bytes(storage.uri(f"out/{name}/output/model.tar.gz"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name.lstrip("./"): tar.extractfile(m).read()
                for m in tar.getmembers() if m.isfile()}


def secondary_statuses(d):
    return [t["Status"] for t in d["SecondaryStatusTransitions"]]


def shell_job(name, tmp_path, command, spot=False, max_wait=None, max_runtime=600, count=1):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    req = job_request(name, str(out), command=command)
    req["ResourceConfig"]["InstanceCount"] = count
    req["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime}
    if spot:
        req["EnableManagedSpotTraining"] = True
        req["StoppingCondition"]["MaxWaitTimeInSeconds"] = max_wait or max_runtime
    return req


# A shell training process that says when it starts and when it is told to stop.
SPIN = ("trap 'echo got SIGTERM; exit 0' TERM; echo spinning; "
        "while :; do sleep 0.2; done")


def test_the_cluster_has_two_nodes_and_on_demand_preempts_spot(cluster, tmp_path):
    """Plain Slurm, no Trainyard: what the tests below rely on. `srun -N2` runs once on each
    node; an on-demand job that needs a spot job's nodes preempts it, and the spot job's tasks
    get SIGTERM first (the interruption notice) while the on-demand job waits."""
    out = cluster.run("srun", "-N2", "-l", "sh", "-c", "echo $SLURMD_NODENAME").stdout
    assert sorted(line.split(": ")[1] for line in out.splitlines()) == ["n1", "n2"], out
    marks = tmp_path / "marks"
    marks.mkdir()
    task = tmp_path / "task.sh"
    task.write_text("#!/bin/sh\n"
                    f"trap 'touch {marks}/term-$SLURM_PROCID; exit 0' TERM\n"
                    f"touch {marks}/start-$SLURM_PROCID\n"
                    "while :; do sleep 0.1; done\n")
    task.chmod(0o755)
    prefix = f"tye2eplain{os.getpid()}-"
    try:
        spot = cluster.run("sbatch", "--parsable", "--no-requeue", "-p", "spot", "-N2",
                           "-J", prefix + "spot", "-o", str(tmp_path / "spot.out"),
                           "--wrap", f"exec srun {task}").stdout.strip()
        wait_for(lambda: sorted(os.listdir(marks)), lambda m: m == ["start-0", "start-1"],
                 timeout=30)
        cluster.run("sbatch", "--parsable", "-p", "ondemand", "-N2", "-J", prefix + "od",
                    "-o", str(tmp_path / "od.out"), "--wrap", "echo on-demand ran")
        wait_for(lambda: cluster.jobs(prefix), lambda rows: [r[2] for r in rows if
                 r[1] == prefix + "od"] == ["COMPLETED"], timeout=60, interval=0.3)
        assert sorted(os.listdir(marks)) == ["start-0", "start-1", "term-0", "term-1"]
        assert (tmp_path / "od.out").read_text() == "on-demand ran\n"
        state = [r[2] for r in cluster.jobs(prefix) if r[0] == spot]
        assert state in (["COMPLETED"], ["PREEMPTED"]), state
    finally:
        for r in cluster.live_jobs(prefix):
            cluster.run("scancel", r[0], check=False)


def test_digits_example_completes_on_slurm(server, sm, cluster, tmp_path):
    subprocess.run([os.path.join(EXAMPLES, "digits", "prepare.sh")], check=True,
                   capture_output=True)
    req = from_example("digits", "digits")
    req["OutputDataConfig"]["S3OutputPath"] = "file://" + str(tmp_path / "store" / "out")
    sm.create_training_job(**req)
    d = wait_status(sm, "digits", timeout=180)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "digits")
    acc = float(re.findall(r"validation_accuracy=([0-9.]+)", logs)[-1])
    assert acc >= 0.9, logs
    members = model_tar(s3util.FileStorage(str(tmp_path / "store")), "digits")
    assert "model.pt" in members, members.keys()
    # It ran as one Slurm job of one node, in the on-demand partition, and that job ended.
    jobs = cluster.jobs(server.prefix)
    assert len(jobs) == 1 and jobs[0][1].startswith(server.prefix + "digits"), jobs
    assert jobs[0][2] == "COMPLETED" and jobs[0][3] == "1", jobs


def test_ddp_example_runs_on_two_nodes_and_its_ranks_agree(server, sm, cluster, tmp_path):
    folder = os.path.join(EXAMPLES, "ddp-digits")
    subprocess.run([os.path.join(folder, "prepare.sh")], check=True, capture_output=True)
    req = from_example("ddp-digits", "ddp")
    req["HyperParameters"].update({"epochs": "10", "sleep-per-epoch": "0"})
    req["EnableManagedSpotTraining"] = False
    req["StoppingCondition"].pop("MaxWaitTimeInSeconds")
    req["OutputDataConfig"]["S3OutputPath"] = "file://" + str(tmp_path / "store" / "out")
    req["CheckpointConfig"]["S3Uri"] = "file://" + str(tmp_path / "store" / "ckpt") + "/"
    sm.create_training_job(**req)
    d = wait_status(sm, "ddp", timeout=180)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "ddp")
    streams = {line.split()[2] for line in logs.splitlines() if line.strip()}
    assert sorted(s.split("/")[1].rsplit("-", 1)[0] for s in streams) == ["algo-1", "algo-2"]
    assert re.search(r"RANK=1 .*WORLD_SIZE=2|WORLD_SIZE=2 .*RANK=1", logs), logs
    assert "parameters in sync across 2 ranks: True" in logs, logs
    assert float(re.search(r"final val_accuracy=([0-9.]+)", logs).group(1)) > 0.9
    # One Slurm job over both nodes.
    jobs = cluster.jobs(server.prefix)
    assert len(jobs) == 1 and jobs[0][3] == "2" and jobs[0][4] == "n[1-2]", jobs


def spot_digits_request(name, storage, spot):
    req = from_example("spot-digits", name)
    req["HyperParameters"].update({"epochs": "6", "sleep-per-step": "0.05"})
    for ch in req["InputDataConfig"]:
        ch["DataSource"]["S3DataSource"]["S3Uri"] = storage.uri("data/" + ch["ChannelName"])
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    req["CheckpointConfig"]["S3Uri"] = storage.uri(f"ckpt/{name}/")
    if not spot:
        req["EnableManagedSpotTraining"] = False
        req["StoppingCondition"].pop("MaxWaitTimeInSeconds")
    return req


def weights_sha(storage, name):
    return model_tar(storage, name)["weights.sha256"].decode().split()[0]


def test_spot_job_preempted_by_on_demand_resumes_with_the_uninterrupted_weights(
        server, sm, cluster, tmp_path, s3rver):
    """A spot job holds one node; an on-demand job that needs both preempts it (Slurm's SIGTERM
    + GraceTime is the notice): Interrupted, then resumed from the synced checkpoint once the
    nodes are free. Then `trainyard spot interrupt` interrupts it again, through Slurm. Its final
    weights equal an on-demand run's of the same job (which queues behind the preemptor)."""
    storage = s3util.S3Storage(s3rver, f"slurm-spot-{int(time.time() * 1000)}")
    folder = os.path.join(EXAMPLES, "spot-digits")
    subprocess.run([os.path.join(folder, "prepare.sh")], check=True, capture_output=True)
    storage.put_dir(os.path.join(folder, "data"), storage.uri("data"))
    sm.create_training_job(**spot_digits_request("spot", storage, spot=True))
    # Preempt only after a checkpoint reached the store (the resume must have one to use).
    wait_for(lambda: storage.keys(storage.uri("ckpt/spot/")), lambda keys: keys != [],
             timeout=120, interval=0.3)
    sm.create_training_job(**shell_job("preemptor", tmp_path, "echo preemptor ran; sleep 2",
                                       count=2))
    sm.create_training_job(**spot_digits_request("reference", storage, spot=False))
    d = wait_for(lambda: sm.describe_training_job(TrainingJobName="spot"),
                 lambda d: "Interrupted" in secondary_statuses(d), timeout=60, interval=0.2)
    # The preemptor ran while the spot job waited for its nodes, then the spot job resumed.
    wait_for(lambda: logs_of(server, "spot"), lambda l: "resumed from checkpoint" in l,
             timeout=120, interval=0.3)
    assert wait_status(sm, "preemptor", timeout=60)["TrainingJobStatus"] == "Completed"
    assert "preemptor ran" in logs_of(server, "preemptor")
    # The fault-injection CLI interrupts through Slurm, like a preemption (the resumed attempt
    # has most of its epochs still to go).
    server.cli("spot", "interrupt", "spot")
    d = wait_status(sm, "spot", timeout=180)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    seq = secondary_statuses(d)
    assert seq.count("Interrupted") == 2, seq
    logs = logs_of(server, "spot")
    assert logs.count("resumed from checkpoint") == 2, logs
    # Each time the agent had the notice (Slurm's SIGTERM) and synced the checkpoints.
    assert logs.count("spot interruption: the instance is going away; checkpoints synced") == 2
    ref = wait_status(sm, "reference", timeout=180)
    assert ref["TrainingJobStatus"] == "Completed", ref.get("FailureReason")
    assert weights_sha(storage, "spot") == weights_sha(storage, "reference")
    # Each attempt was a Slurm job of its own (resubmitted, never requeued by Slurm): the
    # first was preempted in the spot partition.
    spot_jobs = [r for r in cluster.jobs(server.prefix) if "-spot-" in r[1]]
    assert len(spot_jobs) == seq.count("Interrupted") + 1, spot_jobs
    # Pending in Slurm's queue, not billed: billable time is below the training time.
    assert d["BillableTimeInSeconds"] <= d["TrainingTimeInSeconds"]


def test_max_wait_expires_while_slurm_keeps_the_job_pending_and_stop(server, sm, cluster,
                                                                      tmp_path):
    """An on-demand job holds both nodes; a spot job waits in Slurm's queue with Slurm's reason
    in its status message until MaxWait ends it. Then StopTrainingJob stops the on-demand job:
    its training process gets SIGTERM, the job is Stopped, and its Slurm job is gone."""
    sm.create_training_job(**shell_job("holder", tmp_path, SPIN, count=2))
    wait_for(lambda: logs_of(server, "holder"), lambda l: l.count("spinning") == 2, timeout=60,
             interval=0.2)
    sm.create_training_job(**shell_job("waiter", tmp_path, "echo never", spot=True,
                                       max_runtime=5, max_wait=15))
    d = wait_for(lambda: sm.describe_training_job(TrainingJobName="waiter"),
                 lambda d: d["SecondaryStatusTransitions"] and "Waiting for spot capacity" in
                 d["SecondaryStatusTransitions"][-1].get("StatusMessage", ""), timeout=20)
    message = d["SecondaryStatusTransitions"][-1]["StatusMessage"]
    assert re.search(r"Waiting for spot capacity: .*(Resources|Priority)", message), message
    assert d["TrainingJobStatus"] == "InProgress"
    d = wait_status(sm, "waiter", timeout=40)
    assert d["TrainingJobStatus"] == "Stopped", d.get("FailureReason")
    assert d["SecondaryStatus"] == "MaxWaitTimeExceeded"
    assert "TrainingTimeInSeconds" not in d  # it never ran
    assert "never" not in logs_of(server, "waiter")
    wait_for(lambda: [r for r in cluster.live_jobs(server.prefix) if "waiter" in r[1]],
             lambda live: live == [], timeout=20)
    # Stop.
    sm.stop_training_job(TrainingJobName="holder")
    d = wait_status(sm, "holder", timeout=60)
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "Stopped", d
    assert logs_of(server, "holder").count("got SIGTERM") == 2
    wait_for(lambda: cluster.live_jobs(server.prefix), lambda live: live == [], timeout=30)


def test_a_restarted_server_readopts_its_slurm_job_and_cancels_one_without_a_record(
        server, sm, cluster, tmp_path):
    count_to = ("echo started; i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo tick $i; "
                "sleep 0.5; done; echo finished")
    sm.create_training_job(**shell_job("survivor", tmp_path, count_to))
    wait_for(lambda: logs_of(server, "survivor"), lambda l: "tick 2" in l, timeout=60,
             interval=0.2)
    running = cluster.live_jobs(server.prefix)
    assert len(running) == 1 and running[0][2] == "RUNNING", running
    # A Slurm job with this server's name prefix that no record of it knows.
    ghost = cluster.run("sbatch", "--parsable", "--no-requeue", "-p", "ondemand", "-N1",
                        "-J", server.prefix + "ghost-1", "-o", "/dev/null",
                        "--wrap", "sleep 300").stdout.strip().split(";")[0]
    server.stop(signal.SIGKILL)
    time.sleep(1)  # agents' reports fail meanwhile; the job keeps running in Slurm
    server.start()
    sm = server.boto3()
    d = wait_status(sm, "survivor", timeout=90)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert "finished" in logs_of(server, "survivor")
    # Re-adopted, not run again: the same single Slurm job, started once.
    jobs = [r for r in cluster.jobs(server.prefix) if "survivor" in r[1]]
    assert [r[0] for r in jobs] == [running[0][0]], jobs
    assert logs_of(server, "survivor").count("started") == 1
    wait_for(lambda: [r for r in cluster.jobs(server.prefix) if r[0] == ghost],
             lambda rows: rows and rows[0][2] == "CANCELLED", timeout=60, interval=0.5)


def test_slurmctld_killed_mid_job_fails_the_job_clearly(server, sm, cluster, tmp_path):
    """Runs last: it kills slurmctld, then brings it back (scripts/slurm.sh up) for whatever
    runs after."""
    sm.create_training_job(**shell_job("orphaned", tmp_path, SPIN))
    wait_for(lambda: logs_of(server, "orphaned"), lambda l: "spinning" in l, timeout=60,
             interval=0.2)
    os.kill(cluster.ctld_pid(), signal.SIGKILL)
    try:
        d = wait_status(sm, "orphaned", timeout=150)
        assert d["TrainingJobStatus"] == "Failed", d
        assert "slurm" in d.get("FailureReason", "").lower(), d.get("FailureReason")
    finally:
        cluster.up()
    # Once Slurm is back, the job's Slurm job does not outlive it (the fixture checks too).
    wait_for(lambda: cluster.live_jobs(server.prefix), lambda live: live == [], timeout=60,
             interval=0.5)
