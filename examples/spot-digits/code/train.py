"""Digits MLP with checkpoints and exact resumption: a managed-spot-training script.

The same model as examples/digits, written the way a SageMaker PyTorch script is
written for EnableManagedSpotTraining: it checkpoints into the CheckpointConfig
LocalPath, resumes from the newest checkpoint it finds there on start, and on
SIGTERM (spot interruption notice, StopTrainingJob) finishes the current step,
writes a checkpoint and exits. Resumption is exact: a run interrupted any number
of times ends with bit-identical weights to an uninterrupted run (compare
weights.sha256).

Hyperparameters (command-line arguments, as the SageMaker training toolkit passes
them: --key value):
  --epochs N             (20)     --batch-size N (32)   --lr X (0.01)
  --hidden N             (64)     --seed N (1)
  --checkpoint-every N   (10)     steps between periodic checkpoints (0: only at
                                  epoch ends and on SIGTERM)
  --checkpoint-style S   (last)   last:  one file, last.ckpt, overwritten each time
                                  epoch: checkpoint-epoch-<E>-step-<S>.pt, newest 2 kept
  --sleep-per-step X     (0)      seconds to sleep after each step (makes the run
                                  slow enough to interrupt at a chosen point)

Paths (always derived from the environment, so the script also runs without the
/opt/ml sandbox):
  train / validation data  --train / --validation, else $SM_CHANNEL_TRAIN /
                           $SM_CHANNEL_VALIDATION, else ../data/{train,validation}
                           next to this script (standalone runs)
  model                    --model-dir, else $SM_MODEL_DIR, else <run-dir>/model
  checkpoints              --checkpoint-dir, else "LocalPath" of
                           $SM_INPUT_CONFIG_DIR/checkpointconfig.json, else
                           /opt/ml/checkpoints on the platform ($SM_MODEL_DIR set),
                           else <run-dir>/checkpoints
  <run-dir>                --run-dir, default /tmp/spot-digits (standalone only)

Logs:
  exactly one of
    "resumed from checkpoint <file> at epoch E step S (global step G)"
    "no checkpoint found, starting from scratch"
  per epoch "epoch=E train_loss=X val_accuracy=Y" (matched by MetricDefinitions)
  on SIGTERM "SIGTERM received: checkpoint written at global step G"
  at the end "final val_accuracy=Y" and "final weights sha256 <hex>"

A checkpoint's (epoch E, step S) is the position reached: S steps of epoch E are
done (S == steps per epoch: the epoch is complete, its line printed); G counts all
steps done. Training continues with the next step.

Output: $SM_MODEL_DIR/model.pt (state_dict), $SM_MODEL_DIR/weights.sha256.
"""
import signal

_stop_requested = False


def _on_sigterm(signum, frame):
    # Only set a flag: the training loop finishes the step it is in, writes a
    # checkpoint and exits (see main).
    global _stop_requested
    _stop_requested = True


# Installed before the slow imports, so a notice that arrives while torch loads
# is not lost (the default action would end the process without a checkpoint).
signal.signal(signal.SIGTERM, _on_sigterm)

import argparse  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

N_FEATURES = 64
N_CLASSES = 10
CHECKPOINT_FORMAT = "spot-digits/1"
LAST_FILE = "last.ckpt"
EPOCH_FILE_RE = re.compile(r"^checkpoint-epoch-(\d+)-step-(\d+)\.pt$")
KEEP_EPOCH_FILES = 2
# Hyperparameters a checkpoint must agree on to be resumed exactly (epochs may grow).
RESUME_KEYS = ("batch_size", "lr", "hidden", "seed", "train_rows")


def parse_args(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description="digits MLP with exact checkpoint/resume")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--checkpoint-style", choices=("last", "epoch"), default="last")
    p.add_argument("--sleep-per-step", type=float, default=0.0)
    # Paths: see the module docstring.
    p.add_argument("--run-dir", default="/tmp/spot-digits")
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    p.add_argument("--checkpoint-dir", default=None)
    data = os.path.normpath(os.path.join(here, "..", "data"))
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN",
                                                     os.path.join(data, "train")))
    p.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION",
                                                          os.path.join(data, "validation")))
    # Unknown arguments are ignored, as with many SageMaker scripts.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print("ignoring unknown arguments: %s" % " ".join(unknown), flush=True)
    if (args.epochs < 1 or args.batch_size < 1 or args.checkpoint_every < 0
            or args.sleep_per_step < 0):
        p.error("epochs and batch-size must be >= 1, checkpoint-every and sleep-per-step >= 0")
    on_platform = "SM_MODEL_DIR" in os.environ
    if args.model_dir is None:
        args.model_dir = os.path.join(args.run_dir, "model")
    if args.checkpoint_dir is None:
        args.checkpoint_dir = checkpoint_dir_from_env(
            "/opt/ml/checkpoints" if on_platform else os.path.join(args.run_dir, "checkpoints"))
    return args


def checkpoint_dir_from_env(fallback):
    """CheckpointConfig.LocalPath as the platform announces it in checkpointconfig.json."""
    config_dir = os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
    path = os.path.join(config_dir, "checkpointconfig.json")
    try:
        with open(path) as f:
            local = json.load(f).get("LocalPath")
        if local:
            return local
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        print("warning: cannot read %s: %s" % (path, e), flush=True)
    return fallback


def load_channel(path):
    files = sorted(glob.glob(os.path.join(path, "**", "*.csv"), recursive=True))
    if not files:
        raise FileNotFoundError("no .csv files in channel directory %s" % path)
    data = np.concatenate([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    if data.shape[1] != N_FEATURES + 1:
        raise ValueError("%s: expected %d columns, got %d" % (path, N_FEATURES + 1, data.shape[1]))
    y = torch.from_numpy(data[:, 0].astype(np.int64))
    X = torch.from_numpy(data[:, 1:].astype(np.float32))
    return X, y


def build_model(hidden):
    return nn.Sequential(
        nn.Linear(N_FEATURES, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, N_CLASSES),
    )


def evaluate(model, X, y):
    model.eval()
    with torch.no_grad():
        pred = model(X).argmax(dim=1)
    model.train()
    return (pred == y).float().mean().item()


def epoch_permutation(seed, epoch, n):
    """The data order of an epoch: a function of (seed, epoch) only, so it can be recomputed."""
    gen = torch.Generator().manual_seed(seed * 1000003 + epoch)
    return torch.randperm(n, generator=gen)


def weights_sha256(state_dict):
    h = hashlib.sha256()
    for tensor in state_dict.values():
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---- checkpoint files -------------------------------------------------------

def epoch_files(directory):
    """[(epoch, step, path)] of the epoch-style files, oldest first (numeric order)."""
    found = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        m = EPOCH_FILE_RE.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), os.path.join(directory, name)))
    found.sort()
    return found


def candidates(directory, style):
    if style == "last":
        path = os.path.join(directory, LAST_FILE)
        return [path] if os.path.isfile(path) else []
    return [path for _, _, path in reversed(epoch_files(directory))]


def load_newest(directory, style):
    """The newest readable checkpoint of this style: (path, dict) or (None, None).

    A file cut short (the process was killed while writing it) is reported and
    skipped; with style epoch the next older file is tried.
    """
    for path in candidates(directory, style):
        try:
            ckpt = torch.load(path, map_location="cpu")
            if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("not a %s checkpoint" % CHECKPOINT_FORMAT)
            return path, ckpt
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped
            print("warning: cannot load checkpoint %s (cut short or damaged?): %s" % (path, e),
                  flush=True)
    return None, None


def save_checkpoint(directory, style, ckpt):
    os.makedirs(directory, exist_ok=True)
    if style == "last":
        # Written in place, as most training scripts do; Trainyard uploads a file
        # once it is closed, so a half-written file never reaches the checkpoint store.
        path = os.path.join(directory, LAST_FILE)
        torch.save(ckpt, path)
        return path
    path = os.path.join(directory, "checkpoint-epoch-%d-step-%d.pt" % (ckpt["epoch"], ckpt["step"]))
    torch.save(ckpt, path)
    # Keep the newest KEEP_EPOCH_FILES; the platform mirrors the deletions.
    for _, _, old in epoch_files(directory)[:-KEEP_EPOCH_FILES]:
        try:
            os.remove(old)
        except FileNotFoundError:
            pass
    return path


# ---- training ---------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    # Bit-exact results: one thread (no reduction-order differences), deterministic kernels.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    print("paths: train=%s validation=%s model=%s checkpoints=%s"
          % (args.train, args.validation, args.model_dir, args.checkpoint_dir), flush=True)
    X_train, y_train = load_channel(args.train)
    X_val, y_val = load_channel(args.validation)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / args.batch_size)
    hps = {"batch_size": args.batch_size, "lr": args.lr, "hidden": args.hidden,
           "seed": args.seed, "train_rows": n, "epochs": args.epochs}
    print("loaded train=%d validation=%d rows; epochs=%d batch_size=%d lr=%g hidden=%d seed=%d "
          "steps_per_epoch=%d checkpoint_every=%d checkpoint_style=%s"
          % (n, len(y_val), args.epochs, args.batch_size, args.lr, args.hidden, args.seed,
             steps_per_epoch, args.checkpoint_every, args.checkpoint_style), flush=True)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = build_model(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    # The position: `step` steps of `epoch` are done, `global_step` in all;
    # loss_sum/seen accumulate the epoch's train_loss; perm is the epoch's data order.
    epoch, step, global_step = 1, 0, 0
    loss_sum, seen = 0.0, 0
    perm = None

    path, ckpt = load_newest(args.checkpoint_dir, args.checkpoint_style)
    if ckpt is not None:
        saved = ckpt["hyperparameters"]
        bad = [k for k in RESUME_KEYS if saved.get(k) != hps[k]]
        if bad:
            print("error: checkpoint %s was written with different %s (%s); use a fresh "
                  "checkpoint location" % (path, ", ".join(bad),
                                           ", ".join("%s=%s" % (k, saved.get(k)) for k in bad)),
                  flush=True)
            return 2
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        epoch, step, global_step = ckpt["epoch"], ckpt["step"], ckpt["global_step"]
        loss_sum, seen = ckpt["loss_sum"], ckpt["seen"]
        perm = ckpt["perm"]
        torch.set_rng_state(ckpt["torch_rng"])
        np.random.set_state(ckpt["numpy_rng"])
        random.setstate(ckpt["python_rng"])
        print("resumed from checkpoint %s at epoch %d step %d (global step %d)"
              % (path, epoch, step, global_step), flush=True)
    else:
        print("no checkpoint found, starting from scratch", flush=True)

    def checkpoint():
        return save_checkpoint(args.checkpoint_dir, args.checkpoint_style, {
            "format": CHECKPOINT_FORMAT,
            "hyperparameters": hps,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch, "step": step, "global_step": global_step,
            "steps_per_epoch": steps_per_epoch,
            "loss_sum": loss_sum, "seen": seen,
            "perm": perm,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        })

    while True:
        epoch_done = step >= steps_per_epoch
        if epoch_done and epoch >= args.epochs:
            break
        if _stop_requested:
            checkpoint()
            print("SIGTERM received: checkpoint written at global step %d" % global_step,
                  flush=True)
            # Exit 0, as many SageMaker spot examples do: the platform sent the
            # interruption notice (or the stop), so it knows this exit is an
            # interruption and not the end of training; Trainyard treats any exit
            # after a notice as one, and restarts the job with this checkpoint.
            return 0
        if epoch_done:
            epoch, step, loss_sum, seen, perm = epoch + 1, 0, 0.0, 0, None
        if perm is None:
            perm = epoch_permutation(args.seed, epoch, n)

        idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(X_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(idx)
        seen += len(idx)
        step += 1
        global_step += 1
        if args.sleep_per_step > 0:
            time.sleep(args.sleep_per_step)

        if step == steps_per_epoch:
            accuracy = evaluate(model, X_val, y_val)
            print("epoch=%d train_loss=%.4f val_accuracy=%.4f" % (epoch, loss_sum / seen, accuracy),
                  flush=True)
            checkpoint()
        elif args.checkpoint_every and global_step % args.checkpoint_every == 0:
            checkpoint()

    accuracy = evaluate(model, X_val, y_val)
    state = model.state_dict()
    digest = weights_sha256(state)
    os.makedirs(args.model_dir, exist_ok=True)
    torch.save(state, os.path.join(args.model_dir, "model.pt"))
    with open(os.path.join(args.model_dir, "weights.sha256"), "w") as f:
        f.write(digest + "\n")
    print("final val_accuracy=%.4f" % accuracy, flush=True)
    print("final weights sha256 %s" % digest, flush=True)
    print("saved model to %s after %d steps (%.1f s in this run)"
          % (args.model_dir, global_step, time.time() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
