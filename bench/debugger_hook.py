"""Debugger hook overhead, side by side in one process: the training step time of a small MLP
and a small CNN on CPU with (a) no hook, (b) our hook (python/trainyard_debugger) saving weights,
biases and gradients every step, (c) the real smdebug hook with the same config.

usage: /usr/bin/python3 bench/debugger_hook.py [--reps R] [--steps S] [--models mlp,cnn]
(Debian's python: torch 1.13; smdebug from ../shared/clients, found like the tests find it;
without it, (c) is left out.) Repetitions are interleaved (a, b, c in a rotating order, S steps
each, R times) so drifting load hits all three alike. Prints a Markdown table: median and p90
step time, the ratio of medians against (a), and the bytes each hook wrote per step.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
CLIENTS = os.environ.get("TY_CLIENTS") or os.path.join(os.path.dirname(ROOT), "shared", "clients")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def smdebug_path():
    if not os.path.isdir(CLIENTS):
        return None
    out = subprocess.run([os.path.join(CLIENTS, "setup.sh")], capture_output=True, text=True).stdout
    m = re.search(r"^export TY_SMDEBUG_PYTHONPATH=(.*)$", out, re.M)
    return m.group(1).split(":") if m else None


def make_model(kind):
    if kind == "mlp":  # 784-128-64-10: ~109k parameters, ~0.9 MB of weights+gradients a step
        return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)), (64, 784)
    # 2 convs + a linear on 28x28: ~26k parameters, but convolutions dominate the compute
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10)), (64, 1, 28, 28)


class Variant:
    def __init__(self, name, kind, hook_factory, out_dir):
        torch.manual_seed(0)
        self.name, self.out_dir = name, out_dir
        self.model, self.shape = make_model(kind)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.loss = nn.CrossEntropyLoss()
        self.hook = hook_factory(out_dir) if hook_factory else None
        if self.hook:
            self.hook.register_module(self.model)
        self.times = []
        self.steps = 0

    def run(self, n):
        for _ in range(n):
            x = torch.randn(*self.shape)
            y = torch.randint(0, 10, (self.shape[0],))
            t0 = time.perf_counter()
            self.opt.zero_grad()
            self.loss(self.model(x), y).backward()
            self.opt.step()
            self.times.append(time.perf_counter() - t0)
            self.steps += 1

    def written(self):
        total = 0
        for d, _, files in os.walk(self.out_dir):
            total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
        return total


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--models", default="mlp,cnn")
    a = ap.parse_args()

    import trainyard_debugger as ours
    sm = None
    extra = smdebug_path()
    if extra:
        sys.path[:0] = extra
        import smdebug.pytorch as sm  # noqa: F811
    else:
        print("(no %s: the smdebug column is left out)" % CLIENTS, file=sys.stderr)

    base = tempfile.mkdtemp(prefix="ty-bench-hook-")
    cfg = dict(include_collections=["weights", "biases", "gradients"])
    rows = []
    try:
        for kind in a.models.split(","):
            variants = [Variant("(a) no hook", kind, None, os.path.join(base, kind + "-none")),
                        Variant("(b) trainyard_debugger", kind,
                                lambda d: ours.Hook(out_dir=d, save_config=ours.SaveConfig(save_interval=1), **cfg),
                                os.path.join(base, kind + "-ours"))]
            if sm:
                variants.append(Variant("(c) smdebug", kind,
                                        lambda d: sm.Hook(out_dir=d, save_config=sm.SaveConfig(save_interval=1), **cfg),
                                        os.path.join(base, kind + "-smdebug")))
            for v in variants:
                v.run(3)  # warm-up (first allocations, hook preparation), not counted
                v.times.clear()
            for rep in range(a.reps):
                for i in range(len(variants)):
                    variants[(rep + i) % len(variants)].run(a.steps)
            for v in variants:
                if v.hook:
                    v.hook.close()
            base_med = statistics.median(variants[0].times)
            for v in variants:
                med = statistics.median(v.times)
                per_step = v.written() / v.steps if v.hook else 0
                rows.append((kind, v.name, med * 1e3, pct(v.times, 90) * 1e3, med / base_med, per_step / 1e3))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("| model | variant | median step ms | p90 ms | ratio to (a) | KB written/step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %.2f | %.2f | %.2fx | %.0f |" % r)
    print("\n%d reps x %d steps per variant, interleaved; torch %s, %d threads" % (
        a.reps, a.steps, torch.__version__, torch.get_num_threads()))


if __name__ == "__main__":
    main()
