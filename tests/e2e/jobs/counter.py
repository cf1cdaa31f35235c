"""A tiny checkpointing training script for the spot end-to-end tests.

Counts steps, saving {"step": n} to <checkpoint dir>/state.json after each
step, and resumes from it. SIGTERM (stop or spot interruption notice) saves a
last checkpoint and exits 0, as SageMaker's spot examples do. Options:
  --steps N --sleep S        how much work, how slowly
  --blob-mb M                also rewrite <checkpoint dir>/blob.bin (M MiB,
                             every byte = the step number % 251) each step
  --delete-after-write       write then delete scratch.bin each step
  --ignore-sigterm           keep counting after SIGTERM (to be killed)
"""
import argparse
import json
import os
import signal
import sys
import time


def checkpoint_dir():
    cfg_dir = os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
    try:
        with open(os.path.join(cfg_dir, "checkpointconfig.json")) as f:
            return json.load(f)["LocalPath"]
    except OSError:
        return "/opt/ml/checkpoints"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sleep", type=float, default=0.2)
    p.add_argument("--blob-mb", type=int, default=0)
    p.add_argument("--delete-after-write", action="store_true")
    p.add_argument("--ignore-sigterm", action="store_true")
    args = p.parse_args()
    ckpt = checkpoint_dir()
    os.makedirs(ckpt, exist_ok=True)
    state_path = os.path.join(ckpt, "state.json")
    step = 0
    if os.path.exists(state_path):
        with open(state_path) as f:
            step = json.load(f)["step"]
        print(f"resumed from checkpoint at step {step}", flush=True)
    else:
        print("no checkpoint found, starting from scratch", flush=True)

    stopping = []
    if not args.ignore_sigterm:
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def save(n):
        with open(state_path, "w") as f:
            json.dump({"step": n}, f)
        if args.blob_mb:
            with open(os.path.join(ckpt, "blob.bin"), "wb") as f:
                chunk = bytes([n % 251]) * (1 << 20)
                for _ in range(args.blob_mb):
                    f.write(chunk)

    while step < args.steps:
        time.sleep(args.sleep)
        step += 1
        save(step)
        if args.delete_after_write:
            scratch = os.path.join(ckpt, "scratch.bin")
            with open(scratch, "wb") as f:
                f.write(os.urandom(1 << 20))
            os.unlink(scratch)
        print(f"step {step} checkpoint written at {time.time():.3f}", flush=True)
        if stopping:
            print(f"SIGTERM received: checkpoint written at step {step}", flush=True)
            return 0
    model_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    with open(os.path.join(model_dir, "result.json"), "w") as f:
        json.dump({"steps": step}, f)
    print(f"done after {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
