"""examples/spot-digits through boto3: a spot job interrupted three times at
random points resumes from its checkpoint each time and ends with a model
identical to the same job run without interruptions."""
import io
import os
import random
import subprocess
import tarfile
import threading
import time

import yaml

from conftest import ROOT, logs_of, wait_for, wait_status

EXAMPLE = os.path.join(ROOT, "examples", "spot-digits")


def absolutize(node):
    """The spec's relative file:// URIs (and the submit directory) resolve against the example."""
    if isinstance(node, dict):
        return {k: absolutize(v) for k, v in node.items()}
    if isinstance(node, list):
        return [absolutize(v) for v in node]
    if isinstance(node, str):
        for prefix in ("file://./", '"file://./'):
            if node.startswith(prefix):
                quote = '"' if node.startswith('"') else ""
                rest = node[len(prefix):].rstrip('"')
                return f'{quote}file://{os.path.join(EXAMPLE, rest)}{quote}'
    return node


def request(name, storage, style):
    with open(os.path.join(EXAMPLE, "job.yaml")) as f:
        req = absolutize(yaml.safe_load(f))
    req["TrainingJobName"] = name
    req["HyperParameters"].update({"epochs": "4", "sleep-per-step": "0.03",
                                   "checkpoint-style": f'"{style}"'})
    for ch in req["InputDataConfig"]:
        ch["DataSource"]["S3DataSource"]["S3Uri"] = storage.uri("data/" + ch["ChannelName"])
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    req["CheckpointConfig"]["S3Uri"] = storage.uri(f"ckpt/{name}/")
    return req


def weights_sha(storage, name):
    data = storage.get_bytes(storage.uri(f"out/{name}/output/model.tar.gz"))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return t.extractfile("weights.sha256").read().decode().split()[0]


def test_interrupted_spot_digits_ends_with_the_uninterrupted_model(server, sm, storage):
    """Channels, checkpoints and the model in the store under test (file:// or s3rver)."""
    subprocess.run([os.path.join(EXAMPLE, "prepare.sh")], check=True, capture_output=True)
    storage.put_dir(os.path.join(EXAMPLE, "data"), storage.uri("data"))
    sm.create_training_job(**request("reference", storage, "last"))
    sm.create_training_job(**request("interrupted", storage, "last"))
    sm.create_training_job(**request("interrupted-epochs", storage, "epoch"))
    def interrupt(name, times, seed):
        rng = random.Random(seed)
        for i in range(times):
            wait_for(lambda: logs_of(server, name),
                     lambda l: l.count("resumed from checkpoint") + l.count("no checkpoint found") == i + 1,
                     timeout=60)
            time.sleep(rng.uniform(0.3, 2.0))  # a random point of the attempt
            server.cli("spot", "interrupt", name)

    seed = random.randrange(1 << 30)
    print("interruption seed", seed)
    threads = [threading.Thread(target=interrupt, args=("interrupted", 3, seed)),
               threading.Thread(target=interrupt, args=("interrupted-epochs", 2, seed + 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("reference", "interrupted", "interrupted-epochs"):
        d = wait_status(sm, name, timeout=240)
        assert d["TrainingJobStatus"] == "Completed", (name, d.get("FailureReason"))
    logs = logs_of(server, "interrupted")
    assert logs.count("resumed from checkpoint") == 3, logs
    assert logs.count("SIGTERM received: checkpoint written at global step") >= 1
    reference = weights_sha(storage, "reference")
    assert weights_sha(storage, "interrupted") == reference
    assert weights_sha(storage, "interrupted-epochs") == reference
    # The epoch-numbered style keeps its newest two files, mirrored at the URI.
    files = storage.keys(storage.uri("ckpt/interrupted-epochs/"))
    assert len([f for f in files if f.startswith("checkpoint-epoch-")]) <= 2, files
    d = sm.describe_training_job(TrainingJobName="interrupted")
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]].count("Interrupted") == 3
