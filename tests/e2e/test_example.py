"""The main job: examples/digits through `trainyard run` with an embedded server."""

import os
import re
import subprocess
import tarfile

from conftest import ROOT, trainyard_bin


def test_digits_example_runs_end_to_end(tmp_path):
    example = os.path.join(ROOT, "examples", "digits")
    subprocess.run([os.path.join(example, "prepare.sh")], check=True, capture_output=True)
    env = dict(os.environ, TRAINYARD_HOME=str(tmp_path / "home"))
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"):
        env.pop(k, None)
    res = subprocess.run([trainyard_bin(), "run", os.path.join(example, "job.yaml"), "--follow",
                          "--name", "digits-e2e-" + str(os.getpid())],
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "started an embedded server" in out
    # Status transitions and log lines are printed as they happen.
    for status in ("Downloading", "Training", "Uploading", "Completed"):
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d " + status + " - ", out), status
    assert "epoch=1 " in out
    acc = float(re.search(r"validation:accuracy = ([0-9.]+)", out).group(1))
    assert acc >= 0.9, out
    artifact = re.search(r"Model artifacts: file://(\S+)", out).group(1)
    with tarfile.open(artifact) as t:
        names = t.getnames()
    assert "model.pt" in names and "metrics.json" in names
    # No process of the job is left behind by the embedded server.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "home") not in ps
