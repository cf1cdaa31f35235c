"""A small seeded PyTorch training run with a debugger hook: ours or the real smdebug.

    train.py --lib ours|smdebug --out DIR [--config JSON] [--steps N] [--eval-steps M]
             [--record FILE.npz] [--ckpt-at k,...] [--explicit] [--die-after S] [--model mlp|cnn]

With --config the hook comes from Hook.create_from_json_file(path) (its LocalPath is replaced
by --out); otherwise from a save_interval=1 weights+biases+gradients+losses config. --record
writes what the script itself saw (parameters at each forward, gradients, losses, scalars) for
the tests to compare with what the trial reader returns. --ckpt-at saves a checkpoint file into
$CHECKPOINT_CONFIG_FILE_PATH's LocalPath after those global steps (and with --explicit calls
hook.on_checkpoint_saved()); --die-after S ends the process abruptly after global step S
(os._exit: no close, no atexit), as a spot interruption does.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=["ours", "smdebug"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--eval-steps", type=int, default=0)
    ap.add_argument("--record")
    ap.add_argument("--ckpt-at", default="")
    ap.add_argument("--explicit", action="store_true")
    ap.add_argument("--die-after", type=int)
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--extras", action="store_true", help="also save_tensor() a bf16 tensor each train step")
    a = ap.parse_args()

    if a.lib == "ours":
        from trainyard_debugger import Hook, SaveConfig, modes
    else:
        from smdebug.pytorch import Hook, SaveConfig
        from smdebug import modes

    torch.manual_seed(0)
    model = Net() if a.model == "mlp" else ConvNet()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if a.config:
        with open(a.config) as f:
            cfg = json.load(f)
        cfg["LocalPath"] = a.out
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        hook = Hook.create_from_json_file(path)
        os.unlink(path)
    else:
        hook = Hook(out_dir=a.out, save_config=SaveConfig(save_interval=1),
                    include_collections=["weights", "biases", "gradients", "losses"])
    hook.register_module(model)
    hook.register_loss(loss_fn)

    cp_dir = None
    if os.environ.get("CHECKPOINT_CONFIG_FILE_PATH"):
        with open(os.environ["CHECKPOINT_CONFIG_FILE_PATH"]) as f:
            cp_dir = json.load(f)["LocalPath"]
        os.makedirs(cp_dir, exist_ok=True)
        # One file per checkpoint (ckpt_<step>.pt): smdebug's scan sees a new name; a rewrite
        # of the same name with the same size would escape it (ours also compares mtimes).
        found = sorted((int(f[5:-3]), f) for f in os.listdir(cp_dir) if f.startswith("ckpt_"))
        if found:
            state = torch.load(os.path.join(cp_dir, found[-1][1]))
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            torch.manual_seed(1000 + state["step"])
    ckpt_at = {int(x) for x in a.ckpt_at.split(",") if x}

    shape = (16, 6) if a.model == "mlp" else (16, 1, 8, 8)
    rec = {}
    name = type(model).__name__

    def one_step(train):
        x = torch.randn(*shape)
        y = torch.randint(0, 3, (16,))
        params = {"%s_%s" % (name, n): p.detach().clone().numpy() for n, p in model.named_parameters()}
        custom = None
        if a.extras and train:
            custom = (x.flatten()[:5] * 3).to(torch.bfloat16)
            hook.save_tensor("custom/bf16", custom, "custom")
        out = model(x)
        loss = loss_fn(out, y)
        step = hook.step  # the forward pre-hook has advanced it
        for k, v in params.items():
            rec["%d/%s" % (step, k)] = v
        rec["%d/CrossEntropyLoss_output_0" % step] = loss.detach().numpy()
        if custom is not None:
            rec["%d/custom/bf16" % step] = custom.float().numpy()
        hook.save_scalar("loss_scalar", float(loss))
        rec["%d/scalar/loss_scalar" % step] = np.array([float(loss)])
        if train:
            opt.zero_grad()
            loss.backward()
            for n, p in model.named_parameters():
                rec["%d/gradient/%s_%s" % (step, name, n)] = p.grad.detach().clone().numpy()
            opt.step()
        return step

    for _ in range(a.steps):
        hook.set_mode(modes.TRAIN)
        step = one_step(True)
        if step in ckpt_at and cp_dir:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step},
                       os.path.join(cp_dir, "ckpt_%d.pt" % step))
            if a.explicit:
                hook.on_checkpoint_saved()
        if a.die_after is not None and step >= a.die_after:
            if a.record:
                np.savez(a.record, **rec)
            sys.stdout.flush()
            os._exit(0)
        if a.eval_steps:
            hook.set_mode(modes.EVAL)
            with torch.no_grad():
                for _ in range(a.eval_steps):
                    one_step(False)
    hook.close()
    if a.record:
        np.savez(a.record, **rec)


if __name__ == "__main__":
    main()
