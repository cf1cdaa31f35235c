"""Reads a trial with the REAL smdebug (run under TY_SMDEBUG_PYTHONPATH) and dumps what it saw.

    read_trial.py TRIAL OUT_PREFIX   -> OUT_PREFIX.json (collections, steps) + OUT_PREFIX.npz
npz keys: "<global step>/<tensor name>" for raw values and
"<global step>/<tensor name>/<reduction>/<abs 0|1>" for saved reductions.
"""
import json
import sys

import numpy as np
from smdebug import modes
from smdebug.exceptions import TensorUnavailableForStep
from smdebug.trials import create_trial


def main():
    trial_dir, out = sys.argv[1], sys.argv[2]
    tr = create_trial(trial_dir)
    info = {
        "steps": tr.steps(),
        "mode_steps": {m.name: tr.steps(mode=m) for m in (modes.TRAIN, modes.EVAL)},
        "global_to_mode": {},
        "collections": {n: sorted(c.tensor_names) for n, c in tr.collections().items()},
        "tensor_names": sorted(tr.tensor_names()),
        "reductions": {},
    }
    for s in tr.steps():
        mode, mode_step = tr.mode_modestep(s)
        info["global_to_mode"][str(s)] = [mode.name, mode_step]
    arrays = {}
    for name in tr.tensor_names():
        t = tr.tensor(name)
        reds = {}
        for s in t.steps():
            try:
                arrays["%d/%s" % (s, name)] = t.value(s)
            except TensorUnavailableForStep:
                pass  # only reductions saved at this step
            got = t.reduction_values(s)
            for (red, abs_), v in got.items():
                arrays["%d/%s/%s/%d" % (s, name, red, int(abs_))] = v
                reds.setdefault(s, []).append([red, bool(abs_)])
        if reds:
            info["reductions"][name] = {str(k): sorted(v) for k, v in reds.items()}
    with open(out + ".json", "w") as f:
        json.dump(info, f)
    np.savez(out + ".npz", **arrays)


if __name__ == "__main__":
    main()
