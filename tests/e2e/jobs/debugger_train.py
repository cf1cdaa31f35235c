"""A small PyTorch training script for the debugger tests: a deep sigmoid stack whose gradients
vanish, or a healthy ReLU network, trained on data drawn from the step number (so a resumed run
sees exactly the batches an uninterrupted one does).

The hook is built the zero-code way SageMaker scripts use: from /opt/ml/input/config/
debughookconfig.json, which the platform writes from DebugHookConfig (with the rules'
collections merged in). `--hook trainyard` uses the project's own hook (python/trainyard_debugger,
on PYTHONPATH under the built-in runtime); `--hook smdebug` the real smdebug library, shipped in
the job's source_dir as any user without a Debugger container would.

Checkpoints: every --checkpoint-every steps the model, optimizer and next step go to the
checkpoint directory (atomically), and the hook is told (on_checkpoint_saved), so a resumed run
continues both the training and the hook's step counter from there.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--model", default="healthy", choices=["healthy", "deep-sigmoid"])
p.add_argument("--steps", type=int, default=40)
p.add_argument("--checkpoint-every", type=int, default=5)
p.add_argument("--sleep", type=float, default=0.05)
p.add_argument("--hook", default="trainyard", choices=["trainyard", "smdebug", "none"])
p.add_argument("--lr", type=float, default=0.05)
args, _ = p.parse_known_args()

torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self, kind):
        super().__init__()
        if kind == "deep-sigmoid":
            layers = []
            for _ in range(24):
                layers += [nn.Linear(16, 16), nn.Sigmoid()]
            self.body = nn.Sequential(*layers)
        else:
            self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.body(x))


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(32, 16, generator=g)
    y = (x[:, :4].argmax(dim=1))  # a learnable target
    return x, y


def checkpoint_dir():
    path = os.environ.get("CHECKPOINT_CONFIG_FILE_PATH", "/opt/ml/input/config/checkpointconfig.json")
    try:
        with open(path) as f:
            return json.load(f).get("LocalPath", "/opt/ml/checkpoints")
    except OSError:
        return None


model = Net(args.model)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()
start = 0
ckpt = checkpoint_dir()
ckpt_file = os.path.join(ckpt, "model.pt") if ckpt else None
if ckpt_file and os.path.exists(ckpt_file):
    state = torch.load(ckpt_file)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    start = state["next_step"]
    print(f"resumed from checkpoint at step {start}", flush=True)
else:
    print("no checkpoint found", flush=True)

hook = None
if args.hook == "trainyard":
    from trainyard_debugger import Hook
    hook = Hook.create_from_json_file()
elif args.hook == "smdebug":
    from smdebug.pytorch import Hook
    hook = Hook.create_from_json_file()
if hook is not None:
    hook.register_module(model)
    hook.register_loss(loss_fn)
    print(f"debugger hook: {type(hook).__module__}", flush=True)

for step in range(start, args.steps):
    x, y = batch(step)
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    print(f"step {step} loss={loss.item():.6f}", flush=True)
    if ckpt_file and (step + 1) % args.checkpoint_every == 0:
        tmp = ckpt_file + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "next_step": step + 1}, tmp)
        os.replace(tmp, ckpt_file)
        if hook is not None and hasattr(hook, "on_checkpoint_saved"):
            hook.on_checkpoint_saved()
        print(f"checkpoint at step {step + 1}", flush=True)
    time.sleep(args.sleep)

if hook is not None and hasattr(hook, "close"):
    hook.close()
with open(os.path.join(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"), "weights.txt"), "w") as f:
    f.write(repr([t.sum().item() for t in model.state_dict().values()]))
print("training done", flush=True)
