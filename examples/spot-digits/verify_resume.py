#!/usr/bin/python3
"""Check, without Trainyard, that code/train.py resumes exactly.

For each checkpoint style (last, epoch):
  reference  one uninterrupted run                                  -> sha A
  sigterm    SIGTERM at N random points, restarted each time with the same
             checkpoint directory; every restart must resume at the global step
             the SIGTERM line reported, and the final sha must equal A
  sigkill    SIGKILL at M random points (no final checkpoint: the restart resumes
             from the last periodic one) -> sha must equal A
and the two styles' reference shas must agree. With style epoch, no more than 2
checkpoint files may be left after any run.

Exit status 0 when every check passes. Usage:
  examples/spot-digits/verify_resume.py [--seed N] [--epochs 4] [--sigterms 3] [--sigkills 2]
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "code", "train.py")
PYTHON = "/usr/bin/python3"

START_RE = re.compile(r"^(no checkpoint found, starting from scratch|resumed from checkpoint (\S+) "
                      r"at epoch (\d+) step (\d+) \(global step (\d+)\))$")
SIGTERM_RE = re.compile(r"^SIGTERM received: checkpoint written at global step (\d+)$")
SHA_RE = re.compile(r"^final weights sha256 ([0-9a-f]{64})$")
EPOCH_FILE_RE = re.compile(r"^checkpoint-epoch-(\d+)-step-(\d+)\.pt$")


class Failure(Exception):
    pass


class Run:
    """One train.py process; its stdout is collected by a thread."""

    def __init__(self, args, workdir, style, log_path):
        self.lines = []
        self.started_training = threading.Event()
        self.t0 = time.time()
        self.t_start = None
        self.t_end = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        cmd = [PYTHON, TRAIN,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--lr", str(args.lr), "--seed", "1",
               "--checkpoint-every", str(args.checkpoint_every), "--checkpoint-style", style,
               "--sleep-per-step", str(args.sleep_per_step),
               "--train", os.path.join(args.data, "train"),
               "--validation", os.path.join(args.data, "validation"),
               "--model-dir", os.path.join(workdir, "model"),
               "--checkpoint-dir", os.path.join(workdir, "checkpoints")]
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self.log.write(line + "\n")
            self.log.flush()
            if START_RE.match(line):
                self.t_start = time.time()
                self.started_training.set()
            if SHA_RE.match(line):
                self.t_end = time.time()
        self.started_training.set()  # also on an early exit

    def wait(self, timeout=300):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join()
        self.log.close()
        return rc

    def match(self, regex):
        for line in self.lines:
            m = regex.match(line)
            if m:
                return m
        return None

    def resumed_at(self):
        m = self.match(START_RE)
        if not m:
            raise Failure("no start line in output:\n" + "\n".join(self.lines[-20:]))
        return 0 if m.group(5) is None else int(m.group(5))

    def warnings(self):
        return [line for line in self.lines if line.startswith("warning:")]

    def sha(self):
        m = self.match(SHA_RE)
        return m.group(1) if m else None


def epoch_file_count(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sum(1 for n in os.listdir(d) if EPOCH_FILE_RE.match(n)) if os.path.isdir(d) else 0


def check_files(style, workdir, what):
    if style == "epoch":
        count = epoch_file_count(workdir)
        if count > 2:
            raise Failure("%s: %d epoch checkpoint files left (at most 2 expected)" % (what, count))


def reference(args, root, style):
    workdir = os.path.join(root, style, "reference")
    os.makedirs(workdir)
    log = os.path.join(workdir, "log.txt")
    t = time.time()
    run = Run(args, workdir, style, log)
    rc = run.wait()
    if rc != 0 or run.resumed_at() != 0 or not run.sha():
        raise Failure("[%s] reference run failed (exit %d), see %s" % (style, rc, log))
    check_files(style, workdir, "[%s] reference" % style)
    seconds = time.time() - t
    training = run.t_end - run.t_start
    print("[%s] reference: uninterrupted run, sha %s (%.1f s, of which training %.1f s)"
          % (style, run.sha(), seconds, training), flush=True)
    return run.sha(), training


def interrupted(args, root, style, sig, count, training_seconds, rng, expect):
    """Interrupt at `count` random global steps, restarting each time, then finish."""
    name = "sigterm" if sig == signal.SIGTERM else "sigkill"
    workdir = os.path.join(root, style, name)
    os.makedirs(workdir)
    log = os.path.join(workdir, "log.txt")
    steps_per_epoch = -(-args.train_rows // args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    seconds_per_step = training_seconds / total_steps
    # Random points of the training, as global steps (at least 3 steps apart),
    # turned into a delay after each (re)start from the step it resumed at.
    while True:
        targets = sorted(rng.randrange(2, total_steps * 9 // 10) for _ in range(count))
        if all(b - a >= 3 for a, b in zip(targets, targets[1:])):
            break
    expected_resume = 0  # SIGTERM: exactly; SIGKILL: at most this
    t = time.time()
    for i, target in enumerate(targets, 1):
        run = Run(args, workdir, style, log)
        run.started_training.wait(120)
        resumed = run.resumed_at()
        problem = None
        if sig == signal.SIGTERM and resumed != expected_resume:
            problem = "expected %d" % expected_resume
        periodic = resumed % args.checkpoint_every == 0 or resumed % steps_per_epoch == 0
        if sig == signal.SIGKILL and (resumed > expected_resume or not periodic):
            problem = "expected a periodic or epoch-end checkpoint at most %d" % expected_resume
        if problem:
            run.proc.kill()
            raise Failure("[%s] %s run %d resumed at global step %d, %s (see %s)"
                          % (style, name, i, resumed, problem, log))
        for w in run.warnings():
            print("[%s] %s run %d: %s" % (style, name, i, w), flush=True)
        delay = max(0.02, (target - resumed) * seconds_per_step)
        time.sleep(delay)
        if run.proc.poll() is not None:
            raise Failure("[%s] %s run %d ended before the signal (exit %s)"
                          % (style, name, i, run.proc.returncode))
        run.proc.send_signal(sig)
        rc = run.wait()
        if sig == signal.SIGTERM:
            m = run.match(SIGTERM_RE)
            if rc != 0 or not m:
                raise Failure("[%s] run %d: after SIGTERM expected exit 0 and the SIGTERM line, "
                              "got exit %d (see %s)" % (style, i, rc, log))
            expected_resume = int(m.group(1))
            print("[%s] sigterm run %d: resumed at global step %d, SIGTERM after %.2f s "
                  "(aimed at step %d) -> exit 0, checkpoint written at global step %d"
                  % (style, i, resumed, delay, target, expected_resume), flush=True)
        else:
            if rc != -signal.SIGKILL:
                raise Failure("[%s] run %d: expected death by SIGKILL, got exit %d"
                              % (style, i, rc))
            print("[%s] sigkill run %d: resumed at global step %d, SIGKILL after %.2f s "
                  "(aimed at step %d)" % (style, i, resumed, delay, target), flush=True)
            # The kill lands near the target; the next run resumes before it.
            expected_resume = target + 5
        check_files(style, workdir, "[%s] %s run %d" % (style, name, i))
    run = Run(args, workdir, style, log)
    rc = run.wait()
    resumed = run.resumed_at()
    if rc != 0 or not run.sha():
        raise Failure("[%s] final %s run failed (exit %d), see %s" % (style, name, rc, log))
    if sig == signal.SIGTERM and resumed != expected_resume:
        raise Failure("[%s] final run resumed at global step %d, expected %d"
                      % (style, resumed, expected_resume))
    for w in run.warnings():
        print("[%s] %s final run: %s" % (style, name, w), flush=True)
    check_files(style, workdir, "[%s] final %s run" % (style, name))
    verdict = "OK (= reference)" if run.sha() == expect else "MISMATCH (reference %s)" % expect
    print("[%s] %s final run: resumed at global step %d, ran to the end: sha %s %s "
          "(%d runs, %.1f s)"
          % (style, name, resumed, run.sha(), verdict, count + 1, time.time() - t),
          flush=True)
    if run.sha() != expect:
        raise Failure("[%s] %s: weights differ from the uninterrupted run (logs in %s)"
                      % (style, name, workdir))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=None,
                    help="for the interruption points (default: random)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--checkpoint-every", type=int, default=10)
    ap.add_argument("--sleep-per-step", type=float, default=0.02)
    ap.add_argument("--sigterms", type=int, default=3)
    ap.add_argument("--sigkills", type=int, default=2)
    ap.add_argument("--styles", default="last,epoch")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs, checkpoints)")
    args = ap.parse_args()

    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    rng = random.Random(args.seed)
    train_csv = os.path.join(args.data, "train", "train.csv")
    if not os.path.isfile(train_csv):
        subprocess.run([os.path.join(HERE, "prepare.sh")], check=True)
    with open(train_csv) as f:
        args.train_rows = sum(1 for line in f if line.strip())
    root = tempfile.mkdtemp(prefix="spot-digits-verify-")
    print("verify_resume: seed %d, epochs %d, batch-size %d, checkpoint-every %d, "
          "sleep-per-step %g; work dir %s"
          % (args.seed, args.epochs, args.batch_size, args.checkpoint_every, args.sleep_per_step,
             root), flush=True)
    t = time.time()
    ok = False
    try:
        shas = {}
        for style in args.styles.split(","):
            sha, training = reference(args, root, style)
            shas[style] = sha
            interrupted(args, root, style, signal.SIGTERM, args.sigterms, training, rng, sha)
            interrupted(args, root, style, signal.SIGKILL, args.sigkills, training, rng, sha)
        if len(set(shas.values())) != 1:
            raise Failure("the styles' reference runs differ: %s" % shas)
        ok = True
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
    finally:
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("verify_resume: %s in %.1f s (seed %d)%s"
          % ("PASS" if ok else "FAIL", time.time() - t, args.seed,
             "" if ok and not args.keep else "; logs in " + root), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
