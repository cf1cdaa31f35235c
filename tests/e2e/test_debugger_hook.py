"""Our PyTorch debugger hook (python/trainyard_debugger) against the REAL smdebug.

No server: small seeded CPU models, each training run in its own /usr/bin/python3 subprocess
(debugger_hook/train.py), our package on PYTHONPATH or smdebug's (from ../shared/clients/setup.sh;
the test process itself never imports smdebug). Tests that need smdebug skip with a message
when that folder is absent; the config and wire tests run anyway.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PKG = os.path.join(ROOT, "python")
TRAIN = os.path.join(HERE, "debugger_hook", "train.py")
READ = os.path.join(HERE, "debugger_hook", "read_trial.py")
CLIENTS = os.environ.get("TY_CLIENTS") or os.path.join(os.path.dirname(ROOT), "shared", "clients")
PY = "/usr/bin/python3"  # Debian's, with torch 1.13 (smdebug's interpreter too)

sys.path.insert(0, PKG)
sys.path.insert(0, os.path.join(HERE, "debugger_hook"))
from compare import diff_trials, masked_records  # noqa: E402
import trainyard_debugger as td  # noqa: E402
from trainyard_debugger import _wire  # noqa: E402
from trainyard_debugger.modes import ModeKeys  # noqa: E402


@pytest.fixture(scope="module")
def smdebug_path():
    if not os.path.isdir(CLIENTS):
        pytest.skip(f"the real clients folder {CLIENTS} is absent (set TY_CLIENTS to its path): "
                    "no real smdebug to compare with")
    res = subprocess.run([os.path.join(CLIENTS, "setup.sh")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{CLIENTS}/setup.sh failed:\n{res.stderr}"
    m = re.search(r"^export TY_SMDEBUG_PYTHONPATH=(.*)$", res.stdout, re.M)
    assert m, res.stdout
    return m.group(1)


def _env(pythonpath, cwd, extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRAINING_JOB_NAME", "SMDEBUG_CONFIG_FILE_PATH", "CHECKPOINT_CONFIG_FILE_PATH",
                        "USE_SMDEBUG")}
    # The same hash seed for both libraries: set iteration decides the collections JSON order.
    env.update(PYTHONPATH=pythonpath, PYTHONHASHSEED="0", HOME=str(cwd))
    env.update(extra or {})
    return env


def train_all(runs, cwd, smdebug_path=None):
    """Runs independent trainings side by side: [(lib, out, args, env), ...]."""
    procs = []
    for lib, out, args, env in runs:
        pp = PKG if lib == "ours" else smdebug_path
        procs.append((lib, subprocess.Popen(
            [PY, TRAIN, "--lib", lib, "--out", str(out)] + [str(a) for a in args], cwd=cwd,
            env=_env(pp, cwd, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for lib, p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"{lib} training failed:\n{out[-3000:]}\n{err[-3000:]}"


def train(lib, out, cwd, smdebug_path=None, args=(), env=None):
    train_all([(lib, out, args, env)], cwd, smdebug_path)


def read_trial(trial, cwd, smdebug_path):
    out = os.path.join(str(cwd), "read-" + os.path.basename(str(trial)))
    res = subprocess.run([PY, READ, str(trial), out], cwd=cwd, env=_env(smdebug_path, cwd),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"smdebug could not read {trial}:\n{res.stderr[-3000:]}"
    with open(out + ".json") as f:
        info = json.load(f)
    return info, dict(np.load(out + ".npz"))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


# A config that exercises the save-step union, per-mode keys, collection overrides, reductions
# and a relu regex collection (spec §2.2-2.4).
SPARSE = {
    "LocalPath": "replaced",
    "HookParameters": {"save_interval": "2", "save_steps": "3", "eval.save_interval": "3"},
    "CollectionConfigurations": [
        {"CollectionName": "weights",
         "CollectionParameters": {"reductions": "min,max,mean,std,variance,l1_norm,l2_norm,abs_max,abs_l2_norm",
                                  "save_raw_tensor": "true"}},
        {"CollectionName": "biases", "CollectionParameters": {"reductions": "sum,prod,abs_mean"}},
        {"CollectionName": "gradients"},
        {"CollectionName": "losses"},
        {"CollectionName": "relu_output",
         "CollectionParameters": {"include_regex": ".*relu_output", "train.save_interval": "1", "end_step": "3"}},
        {"CollectionName": "custom", "CollectionParameters": {"include_regex": "^custom/"}},
    ],
}


def test_real_smdebug_reads_what_our_hook_writes(tmp_path, smdebug_path):
    # Collection-level save_raw_tensor as a string is refused by smdebug's own parser (spec §2.4
    # pitfall), not by ours. (No save_shape here: smdebug's index reader lets a step's shape entry
    # replace its location entry, so it loses the raw value; the byte test covers save_shape.)
    cfg = write_json(tmp_path / "cfg.json", SPARSE)
    trial = tmp_path / "trial"
    train("ours", trial, tmp_path, args=["--config", cfg, "--steps", 5, "--eval-steps", 2, "--extras",
                                         "--record", tmp_path / "rec.npz"])
    rec = dict(np.load(tmp_path / "rec.npz"))
    info, got = read_trial(trial, tmp_path, smdebug_path)

    # 5 train steps, each followed by 2 eval steps: train mode step k is global step 3k. A
    # step appears when some collection saved in it.
    g2m = {int(k): tuple(v) for k, v in info["global_to_mode"].items()}
    assert info["mode_steps"] == {"TRAIN": [0, 1, 2, 3, 4], "EVAL": [0, 3, 6, 9]}
    assert {g: m for g, m in g2m.items() if m[0] == "TRAIN"} == {3 * k: ("TRAIN", k) for k in range(5)}
    assert g2m[1] == ("EVAL", 0) and g2m[14] == ("EVAL", 9)
    assert info["steps"] == sorted(g2m)

    def saved_steps(name, mode):
        return sorted(g2m[int(k.split("/", 1)[0])][1] for k in got
                      if k.split("/", 1)[1] == name and g2m[int(k.split("/", 1)[0])][0] == mode)

    # Union of save_steps and the interval; eval.save_interval only for EVAL; the absolute
    # mode step modulus; gradients never in EVAL; losses always.
    assert saved_steps("Net_fc1.weight", "TRAIN") == [0, 2, 3, 4]
    assert saved_steps("Net_fc1.weight", "EVAL") == [0, 3, 6, 9]
    assert saved_steps("gradient/Net_fc1.weight", "TRAIN") == [0, 2, 3, 4]
    assert saved_steps("gradient/Net_fc1.weight", "EVAL") == []
    # relu_output: train.save_interval=1 and end_step=3 (exclusive) override the hook's, and
    # the hook's save_steps=[3] still adds step 3 (save_steps ignore the range); EVAL inherits
    # the hook's eval.save_interval=3 and save_steps=[3], with end_step 3.
    assert saved_steps("relu_output_0", "TRAIN") == [0, 1, 2, 3]
    assert saved_steps("relu_output_0", "EVAL") == [0, 3]
    assert saved_steps("CrossEntropyLoss_output_0", "TRAIN") == [0, 2, 3, 4]

    colls = info["collections"]
    assert colls["weights"] == ["Net_fc1.weight", "Net_fc2.weight"]
    assert colls["biases"] == ["Net_fc1.bias", "Net_fc2.bias"]
    assert colls["gradients"] == sorted("gradient/Net_%s" % p for p in
                                        ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    assert colls["losses"] == ["CrossEntropyLoss_output_0"]
    assert colls["relu_output"] == ["relu_output_0"]
    # hook.save_tensor() of a bf16 tensor: saved upcast to float32 (numpy has no bfloat16).
    assert colls["custom"] == ["custom/bf16"]
    assert saved_steps("custom/bf16", "TRAIN") == [0, 1, 2, 3, 4]
    assert got["3/custom/bf16"].dtype == np.float32

    # Every raw value the reader returns equals what the script saw, bit for bit.
    # (A scalar saved in a step that writes nothing waits for the next step that does, as in
    # smdebug; only step 0's is compared.)
    raw = {k: v for k, v in got.items() if k.count("/") <= 2 and not re.search(r"/\d$", k)
           and ("scalar/" not in k or k.startswith("0/"))}
    assert len(raw) > 40
    for k, v in raw.items():
        if "relu_output" in k:
            continue  # the script does not record activations
        assert k in rec, k
        assert v.dtype == rec[k].dtype and np.array_equal(v, rec[k]), k
    assert np.array_equal(raw["0/Net_fc1.weight"], rec["0/Net_fc1.weight"])
    assert raw["0/CrossEntropyLoss_output_0"].shape == ()  # 0-d loss
    assert raw["0/scalar/loss_scalar"].shape == (1,)  # a Python float becomes [1]

    # Reductions, recomputed with torch's semantics (var/std unbiased, norms via torch.norm).
    import torch
    checked = 0
    for k, v in got.items():
        m = re.match(r"^(\d+)/(.*)/(\w+)/([01])$", k)
        if not m or not m.group(2).startswith(("Net_", "gradient/")):
            continue
        step, name, red, ab = m.groups()
        x = torch.from_numpy(rec["%s/%s" % (step, name)])
        if ab == "1":
            x = torch.abs(x)
        want = (torch.norm(x, p=int(red[1])) if red in ("l1", "l2")
                else getattr(torch.Tensor, "var" if red == "variance" else red)(x)).numpy()
        assert np.array_equal(v, want), k
        checked += 1
    assert checked >= 4 * 9 * 2
    reds = info["reductions"]["Net_fc1.weight"]["0"]
    assert sorted(map(tuple, reds)) == sorted([("min", False), ("max", False), ("mean", False), ("std", False),
                                               ("variance", False), ("l1", False), ("l2", False),
                                               ("max", True), ("l2", True)])
    assert info["reductions"]["Net_fc1.bias"]["0"] == [["mean", True], ["prod", False], ["sum", False]]
    assert (trial / "training_job_end.ts").exists()
    assert not (trial / "claim.smd").exists()


# (The constructor path without a JSON config is compared byte for byte in the resume test.)
BYTE_CASES = {
    "config-cnn": (["--model", "cnn"], {
        "LocalPath": "x",
        "HookParameters": {"save_interval": "2", "eval.save_interval": "1", "save_steps": "1,3",
                           "reductions": "mean,abs_max,l2_norm"},
        "CollectionConfigurations": [
            {"CollectionName": "weights",
             "CollectionParameters": {"reductions": "min,max,variance,std,abs_l1_norm",
                                      "save_raw_tensor": True, "save_shape": True}},
            {"CollectionName": "gradients"}, {"CollectionName": "losses"},
            {"CollectionName": "relu_output",
             "CollectionParameters": {"include_regex": ".*relu_output", "train.save_interval": "1",
                                      "end_step": "3"}},
            {"CollectionName": "relu_input", "CollectionParameters": {"include_regex": ".*relu_input",
                                                                      "save_steps": "2"}},
            {"CollectionName": "biases", "CollectionParameters": {"reductions": "sum,prod,mean"}}]}),
    "save-all-mlp": ([], {"LocalPath": "x", "HookParameters": {"save_all": "true", "save_interval": "1",
                                                                 "include_regex": "fc1"}}),
}


@pytest.mark.parametrize("case", sorted(BYTE_CASES))
def test_byte_for_byte_with_smdebug(tmp_path, smdebug_path, case):
    args, cfg = BYTE_CASES[case]
    args = list(args) + ["--steps", 4, "--eval-steps", 2]
    if cfg:
        args += ["--config", write_json(tmp_path / "cfg.json", cfg)]
    train_all([("ours", tmp_path / "ours", args, None), ("smdebug", tmp_path / "sm", args, None)],
              tmp_path, smdebug_path)
    for d in ("ours", "sm"):
        # The claim is removed at close; the end marker is placed (no TRAINING_JOB_NAME).
        assert not (tmp_path / d / "claim.smd").exists()
        assert (tmp_path / d / "training_job_end.ts").read_bytes() == b""
    events = sorted((tmp_path / "sm" / "events").rglob("*.tfevents"))
    assert len(events) == 12  # every global step: the scalar forces a file
    assert diff_trials(tmp_path / "ours", tmp_path / "sm") == []
    # Index and collections JSON are equal byte for byte (no masking at all).
    for rel in ["collections/000000000/worker_0_collections.json"] + [
            os.path.relpath(p, tmp_path / "sm") for p in (tmp_path / "sm" / "index").rglob("*.json")]:
        assert (tmp_path / "ours" / rel).read_bytes() == (tmp_path / "sm" / rel).read_bytes(), rel

    # The comparison can fail: one changed tensor byte, one changed index byte.
    ev = events[2]
    ours_ev = tmp_path / "ours" / ev.relative_to(tmp_path / "sm")
    data = bytearray(ours_ev.read_bytes())
    data[-5] ^= 1  # the last byte of the last record's payload
    ours_ev.write_bytes(bytes(data))
    assert any("record" in d for d in diff_trials(tmp_path / "ours", tmp_path / "sm"))


def test_wire_constants_and_records():
    assert _wire.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert _wire.FOOTER == bytes.fromhex("b3c02d06")  # masked_crc32c(b"0x12345678"), spec §1.4
    rec = _wire.frame_record(b"abc")
    assert rec[:8] == struct.pack("<Q", 3) and rec[12:15] == b"abc" and rec[-4:] == _wire.FOOTER
    assert struct.unpack("<I", rec[8:12])[0] == _wire.masked_crc32c(rec[:8])
    t = _wire.encode_tensor(np.zeros((2, 3), np.float32), "w")
    assert b"w_2" in t and b"w_3" in t and t[:2] == b"\x08\x01"
    assert _wire.encode_tensor(np.array(1.5, np.float32), "l")[:4] == b"\x08\x01\x12\x00"  # shape []
    # A whole record: the pieces' join has the announced length and frames one payload; the
    # content of a non-contiguous array is written in C order.
    arr = np.arange(6, dtype=np.int64).reshape(2, 3).T
    parts, n = _wire.record_parts(1.0, 7, "t", arr, 1, 7)
    whole = b"".join(bytes(p) for p in parts)
    assert len(whole) == n and masked_records(whole)[0][:12] == whole[:12]
    assert np.ascontiguousarray(arr).tobytes() in whole and b"t_3" in whole and b"t_2" in whole


def test_package_imports_neither_protobuf_nor_smdebug(tmp_path):
    code = ("import sys, trainyard_debugger, trainyard_debugger.pytorch; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('google', 'smdebug', 'tensorboard')); "
            "assert not bad, bad; print('ok')")
    res = subprocess.run([PY, "-c", code], env=_env(PKG, tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def _steps(save_config, mode, n):
    return [s for s in range(n) if save_config.should_save_step(mode, s)]


def test_save_config_semantics():
    # spec §2.2 examples: save_steps is a union with the interval; modulus on the absolute step.
    assert _steps(td.SaveConfig(save_steps=[3, 7]), ModeKeys.TRAIN, 1001) == [0, 3, 7, 500, 1000]
    assert _steps(td.SaveConfig(save_interval=100, start_step=150), ModeKeys.TRAIN, 401) == [200, 300, 400]
    assert _steps(td.SaveConfig(save_interval=2, end_step=6), ModeKeys.EVAL, 10) == [0, 2, 4]  # end exclusive
    sc = td.SaveConfig(mode_save_configs={ModeKeys.TRAIN: td.SaveConfigMode(save_interval=3)})
    sc.merge_default_save_config(td.SaveConfig(save_interval=5))
    assert _steps(sc, ModeKeys.TRAIN, 10) == [0, 3, 6, 9] and _steps(sc, ModeKeys.EVAL, 11) == [0, 5, 10]
    with pytest.raises(ValueError):
        td.SaveConfigMode(save_steps=["x"])


def test_reduction_config_parsing():
    rc = td.ReductionConfig.from_dict({"reductions": "min, abs_max,l1_norm,abs_l2_norm,variance",
                                       "save_raw_tensor": "true"})
    assert (rc.reductions, rc.abs_reductions, rc.norms, rc.abs_norms) == (
        ["min", "variance"], ["max"], ["l1"], ["l2"])
    assert rc.save_raw_tensor is True and rc.save_shape is False
    assert rc.to_json_dict() == {"save_raw_tensor": True, "reductions": "min,variance,l1_norm,abs_max,abs_l2_norm",
                                 "save_shape": False}
    with pytest.raises(ValueError, match="median"):
        td.ReductionConfig.from_dict({"reductions": "median"})


def test_create_from_json_file(tmp_path, monkeypatch):
    for k in ("SMDEBUG_CONFIG_FILE_PATH", "USE_SMDEBUG", "CHECKPOINT_CONFIG_FILE_PATH", "TRAINING_JOB_NAME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CHECKPOINT_CONFIG_FILE_PATH", str(tmp_path / "absent.json"))
    # No file at the env path -> no hook (the zero-code-change path).
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", str(tmp_path / "none.json"))
    assert td.Hook.create_from_json_file() is None
    with pytest.raises(FileNotFoundError):
        td.Hook.create_from_json_file(str(tmp_path / "none.json"))  # explicit path must exist
    cfg = {"LocalPath": str(tmp_path / "out"),
           "HookParameters": {"save_interval": "10", "train.save_interval": "4", "eval.save_steps": "1, 2",
                              "end_step": "100", "reductions": "mean,abs_l1_norm", "include_regex": "fc1,fc2",
                              "include_workers": "all"},
           "CollectionConfigurations": [
               {"CollectionName": "weights"},
               {"CollectionName": "relu_output",
                "CollectionParameters": {"include_regex": ".*relu_output", "save_interval": "7",
                                         "predict.start_step": "3", "save_histogram": "false"}}]}
    path = write_json(tmp_path / "hook.json", cfg)
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", path)
    monkeypatch.setenv("USE_SMDEBUG", "0")
    assert td.Hook.create_from_json_file() is None  # USE_SMDEBUG=0 disables it
    monkeypatch.delenv("USE_SMDEBUG")
    monkeypatch.setattr(td.hook, "_current_hook", None)
    hook = td.get_hook(create_if_not_exists=True)  # smdebug's get_hook(): built from the config
    assert hook is not None and td.get_hook() is hook
    assert hook.out_dir == str(tmp_path / "out") and hook.save_all_workers
    assert sorted(hook.include_collections) == ["default", "losses", "relu_output", "weights"]
    assert hook.get_collection("default").include_regex == ["fc1", "fc2"]
    sc = hook.save_config
    assert _steps(sc, ModeKeys.TRAIN, 13) == [0, 4, 8, 12]  # train.save_interval wins for TRAIN
    assert _steps(sc, ModeKeys.EVAL, 21) == [0, 1, 2, 10, 20]  # bare interval + eval.save_steps
    assert _steps(sc, ModeKeys.GLOBAL, 111) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]  # end_step 100
    assert hook.reduction_config.reductions == ["mean"] and hook.reduction_config.abs_norms == ["l1"]
    relu = hook.get_collection("relu_output")
    assert relu.include_regex == [".*relu_output"] and relu.save_histogram is False
    # The collection's keys override the hook's; the hook's fill in the rest per mode.
    assert _steps(relu.save_config, ModeKeys.TRAIN, 30) == [0, 7, 14, 21, 28]
    assert relu.save_config.get_save_config(ModeKeys.EVAL).save_steps == [1, 2]
    assert _steps(relu.save_config, ModeKeys.PREDICT, 15) == [7, 14]
    assert relu.save_config.get_save_config(ModeKeys.GLOBAL).end_step == 100
    hook.close()
    bad = write_json(tmp_path / "bad.json", {"CollectionConfigurations": [{"CollectionParameters": {}}]})
    with pytest.raises(ValueError, match="CollectionName"):
        td.Hook.create_from_json_file(bad)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        td.Hook.create_from_json_file(str(tmp_path / "junk.json"))


STATE_KEYS = ["training-run", "latest-global-step-saved", "latest-global-step-seen", "latest-mode-step"]


def _cp_env(tmp_path, name):
    cfg = write_json(tmp_path / ("cpconfig-%s.json" % name), {"LocalPath": str(tmp_path / ("cp-" + name))})
    return {"CHECKPOINT_CONFIG_FILE_PATH": cfg}


def _index_steps(trial):
    return sorted(int(p.name.split("_")[0]) for p in (trial / "index").rglob("*.json"))


def test_state_store_scan_resume_agrees_with_smdebug(tmp_path, smdebug_path):
    """Checkpoint after step 2 (found by the directory scan at the next step boundary), killed
    after step 4, resumed in a new process; then each library resumes from the OTHER's
    metadata.json, and both resumed trials are equal byte for byte."""
    train_all([(lib, tmp_path / ("run1-" + lib), ["--steps", 6, "--ckpt-at", 2, "--die-after", 4],
                _cp_env(tmp_path, lib)) for lib in ("ours", "smdebug")], tmp_path, smdebug_path)
    for lib in ("ours", "smdebug"):
        # Step 3's files appeared when step 4 started; step 4's never did (no close).
        assert _index_steps(tmp_path / ("run1-" + lib)) == [0, 1, 2, 3]
    ours_meta = (tmp_path / "cp-ours" / "metadata.json").read_bytes()
    assert ours_meta == (tmp_path / "cp-smdebug" / "metadata.json").read_bytes()
    states = json.loads(ours_meta)
    assert [list(s) for s in states] == [STATE_KEYS]
    assert states[0] == {"training-run": 0, "latest-global-step-saved": 2, "latest-global-step-seen": 2,
                         "latest-mode-step": {"GLOBAL": 2, "TRAIN": 2}}
    assert not list((tmp_path / "cp-ours").glob("*.tmp"))
    # Swap the checkpoint dirs: smdebug resumes from our metadata.json, ours from smdebug's.
    shutil.copytree(tmp_path / "cp-ours", tmp_path / "cp-x-smdebug")
    shutil.copytree(tmp_path / "cp-smdebug", tmp_path / "cp-x-ours")
    train_all([(lib, tmp_path / ("run2-" + lib), ["--steps", 3, "--ckpt-at", 4], _cp_env(tmp_path, "x-" + lib))
               for lib in ("ours", "smdebug")], tmp_path, smdebug_path)
    for lib in ("ours", "smdebug"):
        # The first step written is seen + 1; nothing at or before the checkpoint again.
        assert _index_steps(tmp_path / ("run2-" + lib)) == [3, 4, 5]
    first = json.loads((tmp_path / "run2-ours" / "index" / "000000000" / "000000000003_worker_0.json").read_text())
    assert first["meta"]["mode"] == "TRAIN" and first["meta"]["mode_step"] == 3
    assert diff_trials(tmp_path / "run2-ours", tmp_path / "run2-smdebug") == []
    # Both recorded the second checkpoint (a new file) the same way, training-run now 1.
    m_ours = (tmp_path / "cp-x-ours" / "metadata.json").read_bytes()
    assert m_ours == (tmp_path / "cp-x-smdebug" / "metadata.json").read_bytes()
    assert json.loads(m_ours)[-1] == {"training-run": 1, "latest-global-step-saved": 4,
                                      "latest-global-step-seen": 4,
                                      "latest-mode-step": {"GLOBAL": 4, "TRAIN": 4}}


def test_state_store_explicit_checkpoint_and_overwrite(tmp_path, smdebug_path):
    """hook.on_checkpoint_saved() records the state at once: a process killed right after its
    checkpoint (before any later step boundary, so before any scan) still resumes at step + 1.
    The resumed run writes into the same out_dir (a killed process's claim.smd is taken over):
    steps up to the checkpoint stay as they were, later steps are overwritten consistently."""
    # Control: scan only, killed right after the checkpoint -> no state recorded.
    env = _cp_env(tmp_path, "ex")
    trial = tmp_path / "trial"
    train_all([("ours", tmp_path / "ctl", ["--steps", 6, "--ckpt-at", 2, "--die-after", 2], _cp_env(tmp_path, "ctl")),
               ("ours", trial, ["--steps", 6, "--ckpt-at", 2, "--explicit", "--die-after", 4,
                                "--record", tmp_path / "rec1.npz"], env)], tmp_path)
    assert (tmp_path / "cp-ctl" / "ckpt_2.pt").exists()
    assert not (tmp_path / "cp-ctl" / "metadata.json").exists()
    states = json.loads((tmp_path / "cp-ex" / "metadata.json").read_text())
    # One state: the scan at the next boundary sees nothing new after the explicit call.
    assert states == [{"training-run": 0, "latest-global-step-saved": 2, "latest-global-step-seen": 2,
                       "latest-mode-step": {"GLOBAL": 2, "TRAIN": 2}}]
    assert (trial / "claim.smd").exists()  # left behind by the killed process
    before = {p: p.read_bytes() for p in trial.rglob("*") if p.is_file() and "00000000000" in p.name
              and int(p.name.split("_")[0]) <= 2}
    step3 = (trial / "events" / "000000000003" / "000000000003_worker_0.tfevents").read_bytes()
    assert len(before) == 6

    train("ours", trial, tmp_path, env=env, args=["--steps", 3, "--record", tmp_path / "rec2.npz"])
    assert _index_steps(trial) == [0, 1, 2, 3, 4, 5]
    assert {p: p.read_bytes() for p in before} == before  # nothing at or before the checkpoint rewritten
    assert (trial / "events" / "000000000003" / "000000000003_worker_0.tfevents").read_bytes() != step3
    assert not (trial / "claim.smd").exists()
    info, got = read_trial(trial, tmp_path, smdebug_path)
    rec1, rec2 = dict(np.load(tmp_path / "rec1.npz")), dict(np.load(tmp_path / "rec2.npz"))
    assert info["mode_steps"]["TRAIN"] == [0, 1, 2, 3, 4, 5]
    for k in ("0/Net_fc1.weight", "2/gradient/Net_fc2.bias", "2/CrossEntropyLoss_output_0"):
        assert np.array_equal(got[k], rec1[k]), k
    for k in ("3/Net_fc1.weight", "3/gradient/Net_fc2.bias", "3/CrossEntropyLoss_output_0",
              "5/CrossEntropyLoss_output_0"):
        assert np.array_equal(got[k], rec2[k]), k
    # Step 3 starts from the restored checkpoint (same weights as the lost attempt's step 3) but
    # sees other data after the restart: its loss and gradients are the resumed run's.
    assert np.array_equal(rec1["3/Net_fc1.weight"], rec2["3/Net_fc1.weight"])
    for k in ("3/gradient/Net_fc2.bias", "3/CrossEntropyLoss_output_0"):
        assert not np.array_equal(rec1[k], rec2[k]), k


def test_state_store_scan_and_explicit_step(tmp_path, monkeypatch):
    from trainyard_debugger.state_store import StateStore
    cp = tmp_path / "cp"
    cp.mkdir()
    store = StateStore(str(cp))
    assert not store.checkpoint_changed()  # empty
    (cp / "x.pt.sagemaker-uploaded").write_bytes(b"1")
    (cp / "metadata.json").write_text("[]")
    assert not store.checkpoint_changed()  # ignored names
    (cp / "sub").mkdir()
    (cp / "sub" / "a.pt").write_bytes(b"12")
    assert store.checkpoint_changed() and not store.checkpoint_changed()
    os.utime(cp / "sub" / "a.pt", ns=(1, 1))  # same name and size, rewritten: smdebug misses this
    assert store.checkpoint_changed()

    # A file renamed away between the listing and its stat (SageMaker's uploader does that) is
    # skipped, not an error.
    (cp / "gone.pt").write_bytes(b"x")
    real_scandir = os.scandir

    class Vanishing:
        def __init__(self, d):
            self.it = real_scandir(d)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def __iter__(self):
            for e in self.it:
                if e.name == "gone.pt":
                    os.unlink(e.path)
                yield e

    monkeypatch.setattr(os, "scandir", Vanishing)
    assert store.checkpoint_changed() is False  # gone.pt vanished: the same files as before
    monkeypatch.setattr(os, "scandir", real_scandir)

    import torch
    monkeypatch.setenv("CHECKPOINT_CONFIG_FILE_PATH", write_json(tmp_path / "cpc.json", {"LocalPath": str(cp)}))
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    (cp / "metadata.json").unlink()
    hook = td.Hook(out_dir=str(tmp_path / "out"), save_config=td.SaveConfig(save_interval=1))
    model = torch.nn.Linear(2, 1)
    hook.register_module(model)
    hook.set_mode(td.modes.TRAIN)
    for _ in range(5):
        model(torch.ones(1, 2)).sum().backward()
    hook.set_mode(td.modes.EVAL)
    model(torch.ones(1, 2))
    hook.set_mode(td.modes.TRAIN)
    model(torch.ones(1, 2)).sum().backward()
    assert hook.step == 6 and hook.mode_steps[ModeKeys.TRAIN] == 5
    hook.on_checkpoint_saved(4)  # the checkpoint holds the model after global step 4
    with pytest.raises(ValueError):
        hook.on_checkpoint_saved(7)
    hook.close()
    states = json.loads((cp / "metadata.json").read_text())
    assert states[-1]["latest-global-step-seen"] == 4
    assert states[-1]["latest-mode-step"] == {"GLOBAL": 4, "TRAIN": 3, "EVAL": 0}
    resumed = td.Hook(out_dir=str(tmp_path / "out2"))
    assert (resumed.step, resumed.training_run) == (4, 1)
    assert resumed.mode_steps == {ModeKeys.GLOBAL: 4, ModeKeys.TRAIN: 3, ModeKeys.EVAL: 0}
    resumed.close()
    (cp / "metadata.json").write_text('[{"training-run": "x"}]')
    with pytest.raises(ValueError, match="malformed state"):
        td.Hook(out_dir=str(tmp_path / "out3"))


def test_hook_error_disables_the_hook_not_training(tmp_path, monkeypatch, capfd):
    import torch
    for k in ("CHECKPOINT_CONFIG_FILE_PATH", "TY_DEBUGGER_RAISE", "TRAINING_JOB_NAME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CHECKPOINT_CONFIG_FILE_PATH", str(tmp_path / "absent.json"))
    hook = td.Hook(out_dir=str(tmp_path / "out"), include_collections=["broken"])
    hook.get_collection("broken")  # no regex, no tensor names: refused when collections are prepared
    model = torch.nn.Linear(2, 1)
    hook.register_module(model)
    for _ in range(2):
        model(torch.ones(1, 2)).sum().backward()  # training goes on
    assert "hook disabled after an error" in capfd.readouterr().err
    assert hook._failed
    hook.close()
    monkeypatch.setenv("TY_DEBUGGER_RAISE", "1")
    hook2 = td.Hook(out_dir=str(tmp_path / "out2"), include_collections=["broken"])
    hook2.get_collection("broken")
    model2 = torch.nn.Linear(2, 1)
    hook2.register_module(model2)
    with pytest.raises(ValueError, match="broken"):
        model2(torch.ones(1, 2))
    hook2.close()
    with pytest.raises(ValueError, match="finished trial"):
        td.Hook(out_dir=str(tmp_path / "out"))  # training_job_end.ts is there
