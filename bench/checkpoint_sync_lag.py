#!/usr/bin/env python3
"""Checkpoint sync lag: how long after a training script closes a checkpoint file the file is
committed at CheckpointConfig.S3Uri (file://), against copying the same file right after close.

A spot job (no interruption) runs this script with `--writer` under /usr/bin/python3. It reads
LocalPath from checkpointconfig.json, then
  1. baseline: for each size, a few times: writes a file outside the checkpoint dir (next to it,
     same file system, never synced), closes it, times `cp` of it to a fresh name, then the
     fsync(2) of the copy (the sync fsyncs each object before its rename), prints both;
  2. writes files of the given sizes (shuffled, each size REPS times) into LocalPath, each under
     a distinct name, written in 1 MiB chunks and closed, printing time.time() right after
     close, with PAUSE seconds between files; then idles TAIL seconds so the last files go
     through the continuous sync rather than the final flush at exit.
The driver reads those lines from the job's log. Lag per file = st_ctime of the stored file
(rename(2) sets it when the upload commits; ext4 stamps with the coarse clock, ~4 ms at HZ=250)
- the close time. Goal: p95 under 1 s for files under 100 MB.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

SIZES = {"1K": 1 << 10, "1M": 1 << 20, "10M": 10 << 20, "50M": 50 << 20, "99M": 99 << 20}


def write_file(path, size, block):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left > 0:
            n = os.write(fd, block[:min(left, len(block))])
            left -= n
    finally:
        os.close(fd)
    return time.time()


def writer(a):
    with open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "checkpointconfig.json")) as f:
        local = json.load(f)["LocalPath"]
    block = os.urandom(1 << 20)
    labels = a.sizes.split(",")
    scratch = os.path.join(os.path.dirname(local.rstrip("/")), "bench-cp-baseline")
    os.makedirs(scratch, exist_ok=True)
    for rep in range(a.base_reps):
        for label in labels:
            src = os.path.join(scratch, f"src-{label}-{rep}")
            dst = os.path.join(scratch, f"dst-{label}-{rep}")
            write_file(src, SIZES[label], block)
            t0 = time.time()
            subprocess.run(["cp", src, dst], check=True)
            t1 = time.time()
            fd = os.open(dst, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            t2 = time.time()
            print(f"BASE {label} {(t1 - t0) * 1000:.3f} {(t2 - t0) * 1000:.3f}", flush=True)
            os.unlink(src)
            os.unlink(dst)
            time.sleep(a.pause)
    order = [label for label in labels for _ in range(a.reps)]
    random.Random(a.seed).shuffle(order)
    for i, label in enumerate(order):
        name = f"sample-{i:03d}-{label}.bin"
        t = write_file(os.path.join(local, name), SIZES[label], block)
        print(f"CLOSE {name} {label} {SIZES[label]} {t:.6f}", flush=True)
        time.sleep(a.pause)
    time.sleep(a.tail)
    print("DONE", flush=True)


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import shutil
    from _common import Client, Server, med, pct  # botocore: only the driver needs it

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1K,1M,10M,50M,99M", help=f"of {','.join(SIZES)}")
    ap.add_argument("--reps", type=int, default=8, help="files per size")
    ap.add_argument("--base-reps", type=int, default=3, help="baseline copies per size")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between files")
    ap.add_argument("--tail", type=float, default=3.0, help="seconds the job idles at the end")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--isolation", default="auto", help="server --isolation (auto|bwrap|none)")
    ap.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.writer:
        return writer(a)

    base = tempfile.mkdtemp(prefix="ty-bench-sync-")
    data = os.path.join(base, "data")
    os.makedirs(data)
    uri_dir = os.path.join(base, "ckpt")
    out_dir = os.path.join(base, "out")
    config = ('images:\n  - match: "bench/python:*"\n    command: ["/usr/bin/python3"]\n'
              'capacity: {"*": 8}\nspot: {seed: 1, notice_seconds: 5, price_fraction: 0.3}\n')
    srv = Server(config, ["--isolation", a.isolation], data_dir=data).start()
    name = f"synclag-{int(time.time() * 1000) % 100000}"
    try:
        c = Client(srv.url, srv.creds)
        # The writer reaches the job as a channel: the sandbox hides the host's /tmp, where
        # a checkout may live.
        argv = ["/bin/sh", "-c",
                'exec /usr/bin/python3 "$SM_CHANNEL_BENCH/' + os.path.basename(__file__) + '" "$@"',
                "sh", "--writer", "--sizes", a.sizes,
                "--reps", str(a.reps), "--base-reps", str(a.base_reps), "--pause", str(a.pause),
                "--tail", str(a.tail), "--seed", str(a.seed)]
        req = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": "bench/python:1",
                                       "TrainingInputMode": "File", "ContainerEntrypoint": argv},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "file://" + out_dir},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {"S3Uri": "file://" + uri_dir + "/"},
            "InputDataConfig": [{
                "ChannelName": "bench",
                "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                    "S3Uri": "file://" + os.path.dirname(os.path.abspath(__file__))}}}],
        }
        total = sum(SIZES[s] for s in a.sizes.split(",")) * a.reps
        print(f"checkpoint_sync_lag: {a.reps} file(s) per size {a.sizes} ({total / 2**20:.0f} MiB "
              f"in all), {a.pause} s apart; baseline {a.base_reps} per size; isolation "
              f"{a.isolation}; under {base}")
        st, body = c.call("CreateTrainingJob", req)
        assert st == 200, body
        deadline = time.time() + 600
        while True:
            st, d = c.call("DescribeTrainingJob", {"TrainingJobName": name})
            if d.get("TrainingJobStatus") in ("Completed", "Failed", "Stopped"):
                break
            assert time.time() < deadline, "job did not finish"
            time.sleep(0.5)
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        events, after = [], 0
        while True:
            st, lb = c.call("GetTrainingJobLogs", {"TrainingJobName": name, "AfterSeq": after},
                            target_prefix="Trainyard")
            if not lb.get("Events"):
                break
            events += [e["Message"] for e in lb["Events"]]
            after = lb["NextSeq"]
        for e in events:
            if e.startswith("trainyard: ") and "checkpoint sync" in e:
                print("  job log: " + e)
        cp, cpf, lag, missing = {}, {}, {}, []
        for e in events:
            f = e.split()
            if f[0] == "BASE":
                cp.setdefault(f[1], []).append(float(f[2]))
                cpf.setdefault(f[1], []).append(float(f[3]))
            elif f[0] == "CLOSE":
                fname, label, size, closed = f[1], f[2], int(f[3]), float(f[4])
                try:
                    s = os.stat(os.path.join(uri_dir, fname))
                except FileNotFoundError:
                    missing.append(fname)
                    continue
                if s.st_size != size:
                    missing.append(fname + f" (size {s.st_size} != {size})")
                    continue
                lag.setdefault(label, []).append(s.st_ctime_ns / 1e6 - closed * 1000)
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(f"{'size':6s} {'n':>3s} {'lag p50':>9s} {'p95':>9s} {'max':>9s} {'cp p50':>9s} "
          f"{'cp+fsync p50':>13s} {'p50 - cp+fsync':>15s}")
    rows = [(label, lag.get(label, []), cp.get(label, []), cpf.get(label, []))
            for label in a.sizes.split(",")]
    all_lag = [x for label in lag for x in lag[label]]
    for label, ls, cs, cfs in rows:
        print(f"{label:6s} {len(ls):3d} {med(ls):7.1f}ms {pct(ls, 95):7.1f}ms "
              f"{max(ls, default=float('nan')):7.1f}ms {med(cs):7.1f}ms {med(cfs):11.1f}ms "
              f"{med(ls) - med(cfs):13.1f}ms")
    print(f"{'all':6s} {len(all_lag):3d} {med(all_lag):7.1f}ms {pct(all_lag, 95):7.1f}ms "
          f"{max(all_lag, default=float('nan')):7.1f}ms")
    if missing:
        print(f"NOT STORED (or torn): {missing}")
    ok = pct(all_lag, 95) < 1000 and not missing
    print(f"RESULT checkpoint_sync_lag overall p50 {med(all_lag):.0f} ms, p95 "
          f"{pct(all_lag, 95):.0f} ms, max {max(all_lag, default=float('nan')):.0f} ms "
          f"(n={len(all_lag)}, missing {len(missing)}); goal p95 < 1 s: "
          f"{'MET' if ok else 'NOT MET'}")
    for label, ls, cs, cfs in rows:
        print(f"RESULT checkpoint_sync_lag {label}: lag p50 {med(ls):.0f} / "
              f"p95 {pct(ls, 95):.0f} / "
              f"max {max(ls, default=float('nan')):.0f} ms vs cp {med(cs):.1f} ms, cp+fsync "
              f"{med(cfs):.1f} ms")


if __name__ == "__main__":
    main()
