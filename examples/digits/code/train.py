"""Train a small MLP on the digits data set: a SageMaker PyTorch-estimator-style script.

Runs unchanged on SageMaker (PyTorch framework container) and on Trainyard:
hyperparameters arrive as command-line arguments (--epochs 20 --lr 0.01 ...),
channels and output locations come from the SM_* environment variables.

Input:  $SM_CHANNEL_TRAIN/*.csv, $SM_CHANNEL_VALIDATION/*.csv
        (no header; label in the first column, then 64 pixel values in 0..1)
Output: $SM_MODEL_DIR/model.pt (state_dict), $SM_MODEL_DIR/metrics.json,
        $SM_OUTPUT_DATA_DIR/confusion_matrix.csv
Logs:   "epoch=N train_loss=X validation_accuracy=Y;" per epoch, matched by the
        job's MetricDefinitions, and "final validation_accuracy=Y" at the end.
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

N_FEATURES = 64
N_CLASSES = 10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="digits MLP")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    p.add_argument("--validation",
                   default=os.environ.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    p.add_argument("--output-data-dir",
                   default=os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    # Unknown arguments are ignored, as with many SageMaker scripts: the
    # platform may pass hyperparameters this script does not use.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print("ignoring unknown arguments: %s" % " ".join(unknown), flush=True)
    return args


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
    return (pred == y).float().mean().item(), pred


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    X_train, y_train = load_channel(args.train)
    X_val, y_val = load_channel(args.validation)
    print("loaded train=%d validation=%d rows; epochs=%d batch_size=%d lr=%g hidden=%d"
          % (len(y_train), len(y_val), args.epochs, args.batch_size, args.lr, args.hidden), flush=True)

    model = build_model(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)

    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(y_train), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i:i + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        accuracy, _ = evaluate(model, X_val, y_val)
        print("epoch=%d train_loss=%.4f validation_accuracy=%.4f;" % (epoch, total / count, accuracy),
              flush=True)

    accuracy, pred = evaluate(model, X_val, y_val)
    elapsed = time.time() - started

    os.makedirs(args.model_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pt"))
    with open(os.path.join(args.model_dir, "metrics.json"), "w") as f:
        json.dump({"validation_accuracy": round(accuracy, 4), "epochs": args.epochs,
                   "batch_size": args.batch_size, "lr": args.lr, "hidden": args.hidden,
                   "seed": args.seed, "train_rows": len(y_train), "validation_rows": len(y_val),
                   "seconds": round(elapsed, 2)}, f, indent=2)
        f.write("\n")

    os.makedirs(args.output_data_dir, exist_ok=True)
    cm = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    for t, p in zip(y_val.tolist(), pred.tolist()):
        cm[t, p] += 1
    with open(os.path.join(args.output_data_dir, "confusion_matrix.csv"), "w") as f:
        f.write("true\\pred," + ",".join(str(c) for c in range(N_CLASSES)) + "\n")
        for t in range(N_CLASSES):
            f.write(str(t) + "," + ",".join(str(v) for v in cm[t]) + "\n")

    print("final validation_accuracy=%.4f" % accuracy, flush=True)
    print("saved model to %s (%.1f s)" % (args.model_dir, elapsed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
