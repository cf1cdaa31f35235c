"""Writes a small trial with the REAL smdebug PyTorch hook, and what smdebug's own trial reader
reads back from it (expected.json), for tests/debugger/smdebug_fixture_test.cc.

    eval "$(/work/shared/clients/setup.sh)"
    PYTHONPATH=$TY_SMDEBUG_PYTHONPATH /usr/bin/python3 tests/debugger/data/make_smdebug_fixtures.py \
        tests/debugger/data/smdebug_trial

The generated files are committed, so ctest needs neither Python nor smdebug.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn

import smdebug.pytorch as smd
from smdebug import modes
from smdebug.trials import create_trial


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def main(out):
    if os.path.exists(out):
        shutil.rmtree(out)
    torch.manual_seed(0)
    os.environ.pop("TRAINING_JOB_NAME", None)
    hook = smd.Hook(
        out_dir=out,
        save_config=smd.SaveConfig(save_interval=1),
        include_collections=["weights", "biases", "gradients", "losses", "relu_out"],
    )
    hook.get_collection("relu_out").include("relu_output")
    hook.get_collection("relu_out").reduction_config = smd.ReductionConfig(
        reductions=["mean", "max", "variance"], abs_reductions=["mean"], norms=["l2"], save_raw_tensor=False)
    net = Net()
    loss_fn = nn.CrossEntropyLoss()
    hook.register_module(net)
    hook.register_loss(loss_fn)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(8, 4)
    y = torch.randint(0, 2, (8,))
    hook.set_mode(modes.TRAIN)
    for _ in range(4):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    hook.set_mode(modes.EVAL)
    with torch.no_grad():
        for _ in range(2):
            loss_fn(net(x), y)
    hook.close()

    trial = create_trial(out)
    exp = {"steps": trial.steps(), "train_steps": trial.steps(mode=modes.TRAIN),
           "eval_steps": trial.steps(mode=modes.EVAL),
           "mode_of": {str(s): [trial.mode(s).name, trial.mode_step(s)] for s in trial.steps()},
           "tensor_names": trial.tensor_names(),
           "collections": {n: sorted(trial.tensor_names(collection=n)) for n in ["weights", "gradients", "losses"]},
           "values": {}, "reductions": {}}
    for name in trial.tensor_names():
        t = trial.tensor(name)
        for s in t.steps():
            try:
                v = t.value(s)
            except Exception:
                continue
            exp["values"].setdefault(name, {})[str(s)] = {
                "shape": list(np.shape(v)), "values": np.asarray(v, dtype=np.float64).ravel().tolist()}
    for name in trial.tensor_names(collection="relu_out"):
        t = trial.tensor(name)
        for s in t.steps():
            exp["reductions"].setdefault(name, {})[str(s)] = {
                f"{'abs_' if a else ''}{r}": float(v) for (r, a), v in t.reduction_values(s).items()}
    g = trial.tensor("gradient/Net_fc1.weight")
    exp["computed"] = {"gradient/Net_fc1.weight": {str(s): {
        "abs_mean": float(g.reduction_value(s, "mean", abs=True)),
        "variance": float(g.reduction_value(s, "variance")),
        "l2": float(g.reduction_value(s, "l2"))} for s in g.steps()}}
    with open(os.path.join(os.path.dirname(out.rstrip("/")), "smdebug_expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
