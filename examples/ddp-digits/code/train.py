"""Digits MLP trained with DistributedDataParallel over gloo, one process per instance.

The model of examples/digits and examples/spot-digits, trained data-parallel across the
instances of a multi-node job. train_multi_node.py (the job's sagemaker_program) turns
what SageMaker gives each instance into torch.distributed's env:// variables (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GLOO_SOCKET_IFNAME) and then runs this script.
Without WORLD_SIZE in the environment it trains alone (world size 1).

Every rank reads the full channel (FullyReplicated) and trains on its own shard of each
epoch: torch's DistributedSampler, seeded by (seed, epoch), so the shards are disjoint
and every rank takes the same number of steps. DDP averages the gradients.

Checkpoints: at the end of every epoch rank 0 alone writes checkpoint-epoch-<E>.pt
(model, optimizer, epoch, hyperparameters) into the checkpoint directory, atomically
(temporary file, fsync, rename), and keeps the newest 2. On start every rank looks for
the newest readable checkpoint in its own checkpoint directory; rank 0's choice is the
one resumed, and a rank whose directory lacks that exact file gets rank 0's copy over
the process group. Resumption is exact: an interrupted run ends with the weights of an
uninterrupted one with the same world size.

SIGTERM (spot interruption notice, StopTrainingJob) on any rank: all ranks stop
together after the next epoch-end checkpoint and exit 0.

Hyperparameters (--key value arguments, as the SageMaker training toolkit passes them):
  --epochs N (20)   --batch-size N (32, per rank)   --lr X (0.01, Adam)
  --hidden N (64)   --seed N (1)
  --sleep-per-epoch X (0)   seconds to sleep after each epoch's checkpoint, so that a
                            test can interrupt the job between two checkpoints
  --dist-timeout S (300)    gloo timeout: connecting to the master, and each collective

Paths (from the environment, so the script also runs outside /opt/ml):
  data         --train / --validation, else $SM_CHANNEL_TRAIN / $SM_CHANNEL_VALIDATION
  model        --model-dir, else $SM_MODEL_DIR, else /opt/ml/model
  checkpoints  --checkpoint-dir, else $CHECKPOINT_DIR, else "LocalPath" of
               $SM_INPUT_CONFIG_DIR/checkpointconfig.json, else /opt/ml/checkpoints

Logs ("rank R/W: " lines are printed by every rank, the others by rank 0 only):
  rank R/W: process group up (gloo, ...)
  rank R/W: resumed from epoch K (<file>, local copy | copy from rank 0)
     or     rank R/W: no checkpoint found, starting from scratch
  epoch=E train_loss=X val_accuracy=Y          (MetricDefinitions)
  checkpoint written: epoch E (<path>)
  rank R/W: SIGTERM on N of W ranks: stopping after the epoch E checkpoint   (then exit 0)
  rank R/W: parameters in sync across W ranks: True (sha256 <hex>)   (False: exit 3)
  final val_accuracy=Y
  final weights sha256 <hex>
  saved model to <dir> (epochs E, T s in this run)

Output (rank 0): $SM_MODEL_DIR/model.pt (state_dict), $SM_MODEL_DIR/weights.sha256.
"""
import signal

_stop_requested = False


def _on_sigterm(signum, frame):
    # Only a flag: the ranks agree on stopping at the next epoch end (see main).
    global _stop_requested
    _stop_requested = True


# Installed before the slow imports, so a notice that arrives while torch loads is not lost.
signal.signal(signal.SIGTERM, _on_sigterm)

import argparse  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402

N_FEATURES = 64
N_CLASSES = 10
CHECKPOINT_FORMAT = "ddp-digits/1"
CHECKPOINT_RE = re.compile(r"^checkpoint-epoch-(\d+)\.pt$")
KEEP_CHECKPOINTS = 2
# A checkpoint written with other values of these is refused (exit 2) rather than resumed
# into a different run; epochs may grow, and the world size may change.
RESUME_KEYS = ("batch_size", "lr", "hidden", "seed")
EXIT_BAD_CHECKPOINT = 2
EXIT_OUT_OF_SYNC = 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="digits MLP, DistributedDataParallel over gloo")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sleep-per-epoch", type=float, default=0.0)
    p.add_argument("--dist-timeout", type=float, default=300.0)
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN",
                                                     "/opt/ml/input/data/train"))
    p.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION",
                                                          "/opt/ml/input/data/validation"))
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    p.add_argument("--checkpoint-dir", default=None)
    # Unknown arguments are ignored, as with many SageMaker scripts.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print("ignoring unknown arguments: %s" % " ".join(unknown), flush=True)
    if args.epochs < 1 or args.batch_size < 1 or args.sleep_per_epoch < 0 or args.dist_timeout <= 0:
        p.error("epochs and batch-size must be >= 1, sleep-per-epoch >= 0, dist-timeout > 0")
    if args.checkpoint_dir is None:
        args.checkpoint_dir = os.environ.get("CHECKPOINT_DIR") or checkpoint_dir_from_config()
    return args


def checkpoint_dir_from_config():
    """CheckpointConfig.LocalPath as the platform announces it, else SageMaker's default."""
    config_dir = os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
    path = os.path.join(config_dir, "checkpointconfig.json")
    try:
        with open(path) as f:
            local = json.load(f).get("LocalPath")
        if local:
            return local
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError) as e:
        print("warning: cannot read %s: %s" % (path, e), flush=True)
    return "/opt/ml/checkpoints"


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


def weights_sha256(state_dict):
    h = hashlib.sha256()
    for tensor in state_dict.values():
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---- checkpoint files -------------------------------------------------------

def checkpoint_files(directory):
    """[(epoch, path)] of the checkpoint files in directory, oldest first (numeric order)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), os.path.join(directory, n))
             for n, m in ((n, CHECKPOINT_RE.match(n)) for n in names) if m]
    return sorted(found)


def read_newest(directory):
    """(epoch, file name, bytes, checkpoint) of the newest readable checkpoint, or None.

    A file that does not load (damaged, or not ours) is reported and the next older one
    is tried.
    """
    for epoch, path in reversed(checkpoint_files(directory)):
        try:
            with open(path, "rb") as f:
                data = f.read()
            ckpt = torch.load(io.BytesIO(data), map_location="cpu")
            if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("not a %s checkpoint" % CHECKPOINT_FORMAT)
            return epoch, os.path.basename(path), data, ckpt
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped
            print("warning: cannot load checkpoint %s: %s" % (path, e), flush=True)
    return None


def save_checkpoint(directory, ckpt):
    """Writes checkpoint-epoch-<E>.pt atomically and keeps the newest KEEP_CHECKPOINTS."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "checkpoint-epoch-%d.pt" % ckpt["epoch"])
    # The temporary name does not match CHECKPOINT_RE, so a reader (this script after a
    # kill, or the platform's checkpoint sync) never takes a half-written file for one.
    tmp = os.path.join(directory, ".checkpoint-epoch-%d.pt.tmp" % ckpt["epoch"])
    with open(tmp, "wb") as f:
        torch.save(ckpt, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for _, old in checkpoint_files(directory)[:-KEEP_CHECKPOINTS]:
        try:
            os.remove(old)
        except FileNotFoundError:
            pass
    return path


# ---- distributed ------------------------------------------------------------

def init_distributed(timeout_s):
    """Joins the process group described by the env:// variables; (rank, world size)."""
    timeout = datetime.timedelta(seconds=timeout_s)
    if "WORLD_SIZE" not in os.environ:
        # On its own: a group of one, no network.
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1,
                                timeout=timeout)
    else:
        dist.init_process_group("gloo", init_method="env://", timeout=timeout)
    return dist.get_rank(), dist.get_world_size()


def restore(args, rank, tag):
    """(checkpoint, where it came from) of rank 0's newest, or (None, None); all ranks call it."""
    found = read_newest(args.checkpoint_dir)
    mine = None if found is None else (found[0], found[1], hashlib.sha256(found[2]).hexdigest())
    views = [None] * dist.get_world_size()
    dist.all_gather_object(views, mine)
    chosen = views[0]
    if chosen is None:
        others = [r for r, v in enumerate(views) if v is not None]
        if rank == 0 and others:
            print("warning: rank 0 has no checkpoint but ranks %s do; rank 0 decides: "
                  "starting from scratch" % others, flush=True)
        print("%s: no checkpoint found, starting from scratch" % tag, flush=True)
        return None, None
    # Ranks whose newest file is not byte for byte rank 0's get rank 0's copy.
    if any(v != chosen for v in views):
        box = [found[2] if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        if mine != chosen:
            found = (chosen[0], chosen[1], box[0], torch.load(io.BytesIO(box[0]),
                                                               map_location="cpu"))
    source = "local copy" if mine == chosen else "copy from rank 0"
    return found[3], "%s, %s" % (chosen[1], source)


def params_in_sync(model, tag, world):
    """Gathers every rank's weights digest; True when all equal. All ranks call it."""
    digest = weights_sha256(model.state_dict())
    digests = [None] * world
    dist.all_gather_object(digests, digest)
    same = len(set(digests)) == 1
    print("%s: parameters in sync across %d ranks: %s (sha256 %s)" % (tag, world, same, digest),
          flush=True)
    if not same:
        print("%s: digests by rank: %s" % (tag, digests), flush=True)
    return same


# ---- training ---------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    # One thread (the model is too small to gain from more) and deterministic kernels:
    # with gloo's fixed reduction order, runs are then bit-for-bit repeatable.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # Bad data fails this rank before it joins the group.
    X_train, y_train = load_channel(args.train)
    X_val, y_val = load_channel(args.validation)

    t = time.time()
    rank, world = init_distributed(args.dist_timeout)
    tag = "rank %d/%d" % (rank, world)
    print("%s: process group up (gloo, MASTER_ADDR=%s MASTER_PORT=%s GLOO_SOCKET_IFNAME=%s, "
          "%.1f s)" % (tag, os.environ.get("MASTER_ADDR", "-"), os.environ.get("MASTER_PORT", "-"),
                       os.environ.get("GLOO_SOCKET_IFNAME", "-"), time.time() - t), flush=True)

    hps = {"batch_size": args.batch_size, "lr": args.lr, "hidden": args.hidden,
           "seed": args.seed, "epochs": args.epochs, "world_size": world}
    sampler = DistributedSampler(range(len(y_train)), num_replicas=world, rank=rank,
                                 shuffle=True, seed=args.seed)
    if rank == 0:
        print("loaded train=%d validation=%d rows; world_size=%d shard=%d rows "
              "steps_per_epoch=%d epochs=%d batch_size=%d (per rank) lr=%g checkpoints=%s"
              % (len(y_train), len(y_val), world, len(sampler),
                 -(-len(sampler) // args.batch_size), args.epochs, args.batch_size, args.lr,
                 args.checkpoint_dir), flush=True)

    torch.manual_seed(args.seed)
    model = build_model(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ckpt, origin = restore(args, rank, tag)
    done = 0  # epochs completed
    if ckpt is not None:
        saved = ckpt["hyperparameters"]
        bad = [k for k in RESUME_KEYS if saved.get(k) != hps[k]]
        if bad:
            # Every rank holds the same checkpoint and arguments, so all ranks exit here.
            print("%s: error: the checkpoint was written with different %s; use a fresh "
                  "checkpoint location" % (tag, ", ".join("%s=%s" % (k, saved.get(k))
                                                          for k in bad)), flush=True)
            return EXIT_BAD_CHECKPOINT
        if rank == 0 and saved.get("world_size") != world:
            print("warning: the checkpoint was written by %s ranks, resuming with %d"
                  % (saved.get("world_size"), world), flush=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        done = ckpt["epoch"]
        print("%s: resumed from epoch %d (%s)" % (tag, done, origin), flush=True)
    # Load first, then wrap: DDP broadcasts rank 0's parameters to the others.
    ddp = DistributedDataParallel(model)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(done + 1, args.epochs + 1):
        sampler.set_epoch(epoch)
        shard = torch.tensor(list(sampler))
        loss_sum, seen = 0.0, 0
        for start in range(0, len(shard), args.batch_size):
            idx = shard[start:start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(ddp(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        totals = torch.tensor([loss_sum, float(seen)], dtype=torch.float64)
        dist.all_reduce(totals)
        if rank == 0:
            accuracy = evaluate(model, X_val, y_val)
            print("epoch=%d train_loss=%.4f val_accuracy=%.4f"
                  % (epoch, totals[0].item() / totals[1].item(), accuracy), flush=True)
            path = save_checkpoint(args.checkpoint_dir, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch, "hyperparameters": hps,
                "model": model.state_dict(), "optimizer": optimizer.state_dict()})
            print("checkpoint written: epoch %d (%s)" % (epoch, path), flush=True)
        deadline = time.time() + args.sleep_per_epoch
        while not _stop_requested and time.time() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.time())))
        # Every rank learns whether any rank got SIGTERM, so they stop together (a rank
        # leaving alone would leave the others blocked in the next all_reduce).
        stop = torch.tensor([1 if _stop_requested else 0])
        dist.all_reduce(stop)
        if stop.item() and epoch < args.epochs:
            print("%s: SIGTERM on %d of %d ranks: stopping after the epoch %d checkpoint"
                  % (tag, stop.item(), world, epoch), flush=True)
            return 0

    in_sync = params_in_sync(model, tag, world)
    if rank == 0 and in_sync:
        accuracy = evaluate(model, X_val, y_val)
        state = model.state_dict()
        digest = weights_sha256(state)
        os.makedirs(args.model_dir, exist_ok=True)
        torch.save(state, os.path.join(args.model_dir, "model.pt"))
        with open(os.path.join(args.model_dir, "weights.sha256"), "w") as f:
            f.write(digest + "\n")
        print("final val_accuracy=%.4f" % accuracy, flush=True)
        print("final weights sha256 %s" % digest, flush=True)
        print("saved model to %s (epochs %d, %.1f s in this run)"
              % (args.model_dir, args.epochs, time.time() - started), flush=True)
    return 0 if in_sync else EXIT_OUT_OF_SYNC


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without running destructors. In torch 1.13, tearing down DDP's Reducer (and
    # with it the gloo process group) on the main thread holds the GIL while joining
    # gloo's worker threads, and a worker that is still freeing its last tensor needs the
    # GIL: a deadlock at exit in about 1 run in 5 here (pytorch/pytorch#56297).
    # dist.destroy_process_group() does not avoid it; nothing is left to flush or sync.
    os._exit(code)
