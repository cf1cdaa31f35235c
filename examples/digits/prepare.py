#!/usr/bin/python3
"""Write the digits data set as SageMaker-style CSV channels.

Uses scikit-learn's bundled load_digits() (8x8 images, 1797 rows, no download),
shuffles with a fixed seed, splits 80/20 and writes, next to this file:
    data/train/train.csv             (label, 64 pixels in 0..1; no header)
    data/validation/validation.csv
Idempotent: does nothing when both files exist (pass --force to rewrite).
"""
import argparse
import os
import sys

SEED = 20240601


def write_csv(path, X, y):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for label, row in zip(y, X):
            f.write(str(int(label)) + "," + ",".join("%.4g" % v for v in row) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rewrite existing files")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    args = ap.parse_args()

    train_csv = os.path.join(args.out, "train", "train.csv")
    val_csv = os.path.join(args.out, "validation", "validation.csv")
    if not args.force and os.path.isfile(train_csv) and os.path.isfile(val_csv):
        print("prepare: data present in %s" % args.out)
        return 0

    import numpy as np  # imported late: the idempotent path stays fast
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data.astype(np.float64) / 16.0  # pixels are 0..16
    y = digits.target
    order = np.random.RandomState(SEED).permutation(len(y))
    X, y = X[order], y[order]
    n_train = int(round(len(y) * 0.8))
    write_csv(train_csv, X[:n_train], y[:n_train])
    write_csv(val_csv, X[n_train:], y[n_train:])
    print("prepare: wrote %d train and %d validation rows to %s" % (n_train, len(y) - n_train, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
