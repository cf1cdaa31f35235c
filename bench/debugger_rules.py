#!/usr/bin/env python3
"""Debugger rule throughput: our C++ rules (bench/debugger_rules.cc) against the real smdebug
trial reader running the same rule logic in Python, over the same files, in one run; plus the
lag from a step's files landing to its evaluation.

    eval "$(/work/shared/clients/setup.sh)"
    PYTHONPATH=$TY_SMDEBUG_PYTHONPATH /usr/bin/python3 bench/debugger_rules.py [--steps N] [--layers L]

The trial is written by the REAL smdebug PyTorch hook (save_interval=1, gradients collection):
N steps x 2L gradient tensors (weight and bias of L Linear(64, 64) layers, batch 32).
Rule logic, both sides: VanishingGradient (abs mean of each gradient < 1e-7, from
reduction_value(step, "mean", abs=True)) and ExplodingTensor over the gradients collection
(every value finite), every step. Python: smdebug's create_trial + a plain loop (no
invoke_rule/wait_for_steps overhead, so a generous baseline). Both include reading the index.
Env: DEBUGGER_RULES_BIN (default build/debugger_rules; `ninja -C build debugger_rules`).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_trial(out, steps, layers):
    import torch
    import torch.nn as nn
    import smdebug.pytorch as smd

    os.environ.pop("TRAINING_JOB_NAME", None)
    torch.manual_seed(0)
    mods = []
    for _ in range(layers):
        lin = nn.Linear(64, 64)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")  # healthy: no rule fires
        nn.init.zeros_(lin.bias)
        mods += [lin, nn.ReLU()]
    net = nn.Sequential(*mods)
    hook = smd.Hook(out_dir=out, save_config=smd.SaveConfig(save_interval=1),
                    include_collections=["gradients"])
    hook.register_module(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(32, 64)
    for _ in range(steps):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    hook.close()


def python_rules(path):
    import numpy as np
    from smdebug.trials import create_trial

    t0, c0 = time.perf_counter(), time.process_time()
    trial = create_trial(path)
    names = trial.tensor_names(collection="gradients")
    tensors = 0
    fired = {"vanishing": None, "exploding": None}
    for step in trial.steps():
        for n in names:
            t = trial.tensor(n)
            if fired["vanishing"] is None and t.reduction_value(step, "mean", abs=True) < 1e-7:
                fired["vanishing"] = step
            tensors += 1
        for n in names:
            v = trial.tensor(n).value(step)
            if fired["exploding"] is None and not np.isfinite(v).all():
                fired["exploding"] = step
            tensors += 1
    return {"steps": len(trial.steps()), "tensors": tensors,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "fired": fired}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", help="write the trial here and keep it")
    args = ap.parse_args()
    os.environ["SMDEBUG_TRAINING_END_DELAY_REFRESH"] = "0"  # no 1 s sleep in create_trial
    binary = os.environ.get("DEBUGGER_RULES_BIN", os.path.join(ROOT, "build", "debugger_rules"))
    work = tempfile.mkdtemp(prefix="ty-bench-debugger-")
    try:
        trial = args.keep or os.path.join(work, "trial")
        t0 = time.perf_counter()
        write_trial(trial, args.steps, args.layers)
        print(f"trial written by smdebug in {time.perf_counter() - t0:.1f} s: {args.steps} steps x "
              f"{2 * args.layers} gradients", file=sys.stderr)
        cpp, py = [], []
        for _ in range(args.repeats):  # interleaved
            out = subprocess.run([binary, "eval", trial, "1"], check=True, capture_output=True, text=True)
            cpp.append(json.loads(out.stdout))
            py.append(python_rules(trial))
        c = min(cpp, key=lambda r: r["seconds"])
        p = min(py, key=lambda r: r["seconds"])
        c_cpu = min(r["cpu_seconds"] for r in cpp)
        p_cpu = min(r["cpu_seconds"] for r in py)
        lag = json.loads(subprocess.run([binary, "lag", trial, work], check=True, capture_output=True,
                                        text=True).stdout)
        c_rate = c["tensors"] / c["seconds"]
        p_rate = p["tensors"] / p["seconds"]
        print(f"{'':28}{'tensors':>9}{'wall s':>10}{'tensors/s':>12}{'CPU s':>9}{'tensors/CPU s':>15}")
        for label, r, cpu in (("C++ rules (trainyard)", c, c_cpu), ("smdebug trial (Python)", p, p_cpu)):
            print(f"{label:28}{r['tensors']:>9}{r['seconds']:>10.3f}{r['tensors'] / r['seconds']:>12.0f}"
                  f"{cpu:>9.3f}{r['tensors'] / cpu:>15.0f}")
        print(f"ratio (C++/Python): wall {c_rate / p_rate:.1f}x, CPU "
              f"{(c['tensors'] / c_cpu) / (p['tensors'] / p_cpu):.1f}x   "
              f"(results: C++ {c['vanishing']}/{c['exploding']}, "
              f"Python fired {p['fired']})")
        print(f"lag from a step's index file landing to its evaluation (no poll interval): "
              f"p50 {lag['lag_ms_p50']:.2f} ms, p99 {lag['lag_ms_p99']:.2f} ms, "
              f"max {lag['lag_ms_max']:.2f} ms over {lag['steps']} steps")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
