#!/usr/bin/python3
"""Checks examples/ddp-digits without Trainyard: 2 instances as 2 processes on this machine.

Each "instance" (algo-1, algo-2) runs code/train_multi_node.py with the variables a
multi-node SageMaker job gives it (SM_HOSTS, SM_CURRENT_HOST, SM_MASTER_ADDR/PORT,
SM_NETWORK_INTERFACE_NAME, SM_CHANNEL_*, SM_MODEL_DIR, ...) and its own /opt/ml-like
directory; the master address is overridden to 127.0.0.1 and the interface is lo, so
nothing leaves loopback and /etc/hosts is untouched. The checkpoint directory of each
instance is passed in CHECKPOINT_DIR.

  1. the wrapper's variable mapping, table-driven (no torch, no processes)
  2. reference: an uninterrupted 2-rank run; both ranks report their parameters in sync
  3. SIGKILL both ranks just after rank 0 wrote the epoch-1 checkpoint
  4. restart: both ranks resume from rank 0's newest checkpoint (algo-2's own checkpoint
     directory is empty, so it gets rank 0's copy); SIGTERM to algo-2 alone after the
     next checkpoint: both ranks stop after that epoch and exit 0
  5. the platform restores the checkpoints on every instance (copy algo-1's to algo-2's);
     restart: both resume from their local copy and finish, in sync, with exactly the
     reference's weights

Exits 0 only if every check passes; prints the timings. Needs Debian's python3-torch and
python3-sklearn (the data is made by ./prepare.sh when missing).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CODE = os.path.join(HERE, "code")
PYTHON = "/usr/bin/python3"
HOSTS = ["algo-1", "algo-2"]

sys.path.insert(0, CODE)
sys.dont_write_bytecode = True  # no __pycache__ in the example's code directory
import train_multi_node  # noqa: E402

RESUMED_RE = re.compile(r"^rank (\d)/2: resumed from epoch (\d+) "
                        r"\((\S+), (local copy|copy from rank 0)\)$")
SCRATCH_RE = re.compile(r"^rank \d/2: no checkpoint found, starting from scratch$")
CKPT_RE = re.compile(r"^checkpoint written: epoch (\d+) ")
SYNC_RE = re.compile(r"^rank \d/2: parameters in sync across 2 ranks: (True|False) "
                     r"\(sha256 ([0-9a-f]{64})\)$")
STOP_RE = re.compile(r"^rank \d/2: SIGTERM on (\d) of 2 ranks: "
                     r"stopping after the epoch (\d+) checkpoint$")
SHA_RE = re.compile(r"^final weights sha256 ([0-9a-f]{64})$")
ACC_RE = re.compile(r"^final val_accuracy=([0-9.]+)$")


class Failure(Exception):
    pass


# ---- 1. the wrapper's mapping -------------------------------------------------

def check_wrapper(tmp):
    config_dir = os.path.join(tmp, "config")
    os.makedirs(config_dir)
    with open(os.path.join(config_dir, "resourceconfig.json"), "w") as f:
        json.dump({"current_host": "algo-3", "hosts": ["algo-1", "algo-2", "algo-3"],
                   "network_interface_name": "eth1"}, f)
    base = {"SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2",
            "SM_NETWORK_INTERFACE_NAME": "eth0", "SM_MASTER_ADDR": "algo-1",
            "SM_MASTER_PORT": "7777", "SM_HOST_COUNT": "2", "SM_CURRENT_HOST_RANK": "1"}
    only_config = {"SM_INPUT_CONFIG_DIR": config_dir}
    # (name, environment, interfaces that exist, expected variables or the error's words)
    cases = [
        ("SageMaker's variables", base, {"eth0"},
         dict(MASTER_ADDR="algo-1", MASTER_PORT="7777", WORLD_SIZE="2", NODE_RANK="1",
              RANK="1", LOCAL_RANK="0", GLOO_SOCKET_IFNAME="eth0")),
        ("no SM_MASTER_*: first host, port 7777",
         {k: v for k, v in base.items() if not k.startswith("SM_MASTER")}, {"eth0"},
         dict(MASTER_ADDR="algo-1", MASTER_PORT="7777", RANK="1")),
        ("master override, as in this check", dict(base, SM_MASTER_ADDR="127.0.0.1",
                                                   SM_MASTER_PORT="29500"), {"eth0"},
         dict(MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")),
        ("interface absent: no GLOO_SOCKET_IFNAME", base, set(),
         dict(GLOO_SOCKET_IFNAME=None, WORLD_SIZE="2")),
        ("resourceconfig.json only", only_config, {"eth1"},
         dict(MASTER_ADDR="algo-1", WORLD_SIZE="3", RANK="2", NODE_RANK="2",
              GLOO_SOCKET_IFNAME="eth1")),
        ("SM_HOSTS wins over resourceconfig.json", dict(base, **only_config), {"eth0"},
         dict(WORLD_SIZE="2", RANK="1", GLOO_SOCKET_IFNAME="eth0")),
        ("rank is the host's index, algo-10 listed before algo-2",
         {"SM_HOSTS": '["algo-1","algo-10","algo-2"]', "SM_CURRENT_HOST": "algo-2"}, set(),
         dict(RANK="2", WORLD_SIZE="3", MASTER_ADDR="algo-1")),
        ("current host not listed", dict(base, SM_CURRENT_HOST="algo-9"), set(),
         "not one of the hosts"),
        ("nothing given", {"SM_INPUT_CONFIG_DIR": os.path.join(tmp, "none")}, set(),
         "no list of hosts"),
        ("bad port", dict(base, SM_MASTER_PORT="http"), set(), "not a port number"),
    ]
    for name, environ, interfaces, want in cases:
        try:
            env, _ = train_multi_node.distributed_env(environ, interfaces.__contains__)
        except ValueError as e:
            if isinstance(want, str) and want in str(e):
                continue
            raise Failure("wrapper, %s: unexpected error %s" % (name, e))
        if isinstance(want, str):
            raise Failure("wrapper, %s: expected an error (%s), got %s" % (name, want, env))
        for key, value in want.items():
            if env.get(key) != value:
                raise Failure("wrapper, %s: %s=%r, expected %r (all: %s)"
                              % (name, key, env.get(key), value, env))
    print("1. wrapper: %d mapping cases pass" % len(cases), flush=True)


# ---- running the two instances -------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """One rank: train_multi_node.py in its own /opt/ml-like directory; stdout collected."""

    def __init__(self, root, rank, port, data, train_args, verbose):
        self.host = HOSTS[rank]
        self.dir = os.path.join(root, self.host)
        self.lines = []
        self.cond = threading.Condition()
        self.verbose = verbose
        config = os.path.join(self.dir, "input", "config")
        for d in (config, os.path.join(self.dir, "model"),
                  os.path.join(self.dir, "output", "data")):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(config, "resourceconfig.json"), "w") as f:
            json.dump({"current_host": self.host, "hosts": HOSTS,
                       "network_interface_name": "lo"}, f)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SM_", "MASTER_", "GLOO_")) and
               k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "CHECKPOINT_DIR")}
        env.update({
            "SM_HOSTS": json.dumps(HOSTS), "SM_CURRENT_HOST": self.host,
            "SM_NETWORK_INTERFACE_NAME": "lo", "SM_MASTER_ADDR": "127.0.0.1",
            "SM_MASTER_PORT": str(port), "SM_HOST_COUNT": "2", "SM_CURRENT_HOST_RANK": str(rank),
            "SM_NUM_CPUS": "1", "SM_INPUT_CONFIG_DIR": config,
            "SM_CHANNEL_TRAIN": os.path.join(data, "train"),
            "SM_CHANNEL_VALIDATION": os.path.join(data, "validation"),
            "SM_MODEL_DIR": os.path.join(self.dir, "model"),
            "SM_OUTPUT_DATA_DIR": os.path.join(self.dir, "output", "data"),
            "CHECKPOINT_DIR": self.checkpoints(),
            "PYTHONUNBUFFERED": "1",
        })
        self.log = open(os.path.join(self.dir, "log.txt"), "a")
        argv = [PYTHON, os.path.join(CODE, "train_multi_node.py")] + train_args
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=CODE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def checkpoints(self):
        return os.path.join(self.dir, "checkpoints")

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.log.write(line + "\n")
            self.log.flush()
            if self.verbose:
                print("    [%s] %s" % (self.host, line), flush=True)
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait_line(self, regex, timeout=120):
        """The first match of regex in the output, waiting for it; Failure at exit or timeout."""
        deadline = time.time() + timeout
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        raise Failure("%s exited (%s) without a line matching %r; see %s"
                                      % (self.host, self.proc.wait(), regex.pattern, self.log.name))
                    m = regex.match(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.time()
                if left <= 0:
                    raise Failure("%s: no line matching %r within %d s; see %s"
                                  % (self.host, regex.pattern, timeout, self.log.name))
                self.cond.wait(left)

    def matches(self, regex):
        return [m for m in (regex.match(line) for line in self.lines if line is not None) if m]

    def wait(self, timeout=120):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("%s did not exit within %d s; see %s"
                          % (self.host, timeout, self.log.name))
        self.reader.join()
        self.log.close()
        return rc


class Cluster:
    """Both ranks of one job attempt."""

    def __init__(self, root, data, train_args, verbose):
        port = free_port()
        self.t0 = time.time()
        self.ranks = [Instance(root, r, port, data, train_args, verbose) for r in range(2)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for inst in self.ranks:  # only on failure are any left running
            if inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()

    def wait(self):
        rcs = [inst.wait() for inst in self.ranks]
        return rcs, time.time() - self.t0


def newest_checkpoint(directory):
    if not os.path.isdir(directory):
        return 0
    epochs = [int(m.group(1)) for m in (re.match(r"^checkpoint-epoch-(\d+)\.pt$", n)
                                        for n in os.listdir(directory)) if m]
    return max(epochs) if epochs else 0


def check_finished(cluster, rcs, what, rank1_newest):
    """(sha, accuracy) of a finished run; rank1_newest: the newest checkpoint algo-2 was given."""
    if rcs != [0, 0]:
        raise Failure("%s: exit codes %s, expected [0, 0]" % (what, rcs))
    digests = set()
    for inst in cluster.ranks:
        sync = inst.matches(SYNC_RE)
        if len(sync) != 1 or sync[0].group(1) != "True":
            raise Failure("%s: %s did not report its parameters in sync: %s"
                          % (what, inst.host, [m.group(0) for m in sync]))
        digests.add(sync[0].group(2))
    if len(digests) != 1:
        raise Failure("%s: the ranks report different digests %s" % (what, digests))
    rank0, rank1 = cluster.ranks
    sha, acc = rank0.matches(SHA_RE), rank0.matches(ACC_RE)
    if not sha or not acc or sha[0].group(1) not in digests:
        raise Failure("%s: rank 0 printed no final sha/accuracy matching the sync line" % what)
    if not os.path.isfile(os.path.join(rank0.dir, "model", "model.pt")):
        raise Failure("%s: no model.pt in algo-1's model directory" % what)
    if os.listdir(os.path.join(rank1.dir, "model")):
        raise Failure("%s: algo-2 wrote into its model directory (only rank 0 should)" % what)
    if newest_checkpoint(rank1.checkpoints()) != rank1_newest:
        raise Failure("%s: algo-2 wrote checkpoints (only rank 0 should)" % what)
    return sha[0].group(1), float(acc[0].group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--sleep-per-epoch", type=float, default=0.3,
                    help="in the runs that get interrupted")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--verbose", action="store_true", help="stream the ranks' output")
    args = ap.parse_args()
    if args.epochs < 4:
        ap.error("--epochs must be >= 4 (two interruptions and a finish)")
    if not os.path.isfile(os.path.join(args.data, "train", "train.csv")):
        subprocess.run([os.path.join(HERE, "prepare.sh")], check=True)
    root = tempfile.mkdtemp(prefix="ddp-digits-check-")
    train = ["--epochs", str(args.epochs), "--batch-size", "32", "--lr", "0.01",
             "--dist-timeout", "60"]
    slow = train + ["--sleep-per-epoch", str(args.sleep_per_epoch)]
    t_all = time.time()
    ok = False
    try:
        check_wrapper(root)

        ref_root = os.path.join(root, "reference")
        with Cluster(ref_root, args.data, train, args.verbose) as c:
            rcs, seconds = c.wait()
        ref_sha, acc = check_finished(c, rcs, "reference", 0)
        print("2. reference: 2 ranks, %d epochs, in sync, val_accuracy %.4f, sha %s... (%.1f s)"
              % (args.epochs, acc, ref_sha[:12], seconds), flush=True)

        job = os.path.join(root, "interrupted")
        with Cluster(job, args.data, slow, args.verbose) as c:
            rank0, rank1 = c.ranks
            for inst in c.ranks:
                inst.wait_line(SCRATCH_RE)
            rank0.wait_line(re.compile(r"^checkpoint written: epoch 1 "))
            for inst in c.ranks:
                inst.proc.send_signal(signal.SIGKILL)
            rcs, seconds = c.wait()
        if rcs != [-signal.SIGKILL] * 2:
            raise Failure("SIGKILL run: exit codes %s" % rcs)
        killed_at = newest_checkpoint(rank0.checkpoints())
        print("3. SIGKILL to both ranks after the epoch-1 checkpoint: newest checkpoint epoch %d "
              "(%.1f s)" % (killed_at, seconds), flush=True)

        with Cluster(job, args.data, slow, args.verbose) as c:
            rank0, rank1 = c.ranks
            resumed = [inst.wait_line(RESUMED_RE) for inst in c.ranks]
            if [int(m.group(2)) for m in resumed] != [killed_at] * 2:
                raise Failure("restart 1: resumed %s, expected epoch %d on both"
                              % ([m.group(0) for m in resumed], killed_at))
            if [m.group(4) for m in resumed] != ["local copy", "copy from rank 0"]:
                raise Failure("restart 1: expected algo-2 to get rank 0's copy: %s"
                              % [m.group(0) for m in resumed])
            rank0.wait_line(re.compile(r"^checkpoint written: epoch %d " % (killed_at + 1)))
            rank1.proc.send_signal(signal.SIGTERM)
            rcs, seconds = c.wait()
        stops = [inst.matches(STOP_RE) for inst in c.ranks]
        stopped_at = newest_checkpoint(rank0.checkpoints())
        if rcs != [0, 0] or not all(len(s) == 1 for s in stops):
            raise Failure("SIGTERM run: exit codes %s, stop lines %s, expected 0 and one each"
                          % (rcs, stops))
        if {(int(s[0].group(1)), int(s[0].group(2))) for s in stops} != {(1, stopped_at)}:
            raise Failure("SIGTERM run: stop lines %s, newest checkpoint %d"
                          % ([s[0].group(0) for s in stops], stopped_at))
        print("4. restart: both ranks %s; SIGTERM to algo-2 after the epoch-%d checkpoint: "
              "both stopped after epoch %d, exit 0 (%.1f s)"
              % ("resumed from epoch %d (algo-2 from rank 0's copy)" % killed_at,
                 killed_at + 1, stopped_at, seconds), flush=True)

        # What the platform does before a restart: every instance gets the checkpoints.
        shutil.rmtree(rank1.checkpoints(), ignore_errors=True)
        shutil.copytree(rank0.checkpoints(), rank1.checkpoints())
        with Cluster(job, args.data, train, args.verbose) as c:
            rcs, seconds = c.wait()
        resumed = [inst.matches(RESUMED_RE) for inst in c.ranks]
        if [[(int(m.group(2)), m.group(4)) for m in r] for r in resumed] != \
                [[(stopped_at, "local copy")]] * 2:
            raise Failure("restart 2: resumed lines %s, expected epoch %d from the local copy"
                          % ([[m.group(0) for m in r] for r in resumed], stopped_at))
        sha, acc = check_finished(c, rcs, "restart 2", stopped_at)
        if sha != ref_sha:
            raise Failure("restart 2: final weights %s differ from the reference's %s"
                          % (sha, ref_sha))
        print("5. restart: both ranks resumed from epoch %d (local copy), finished in sync, "
              "val_accuracy %.4f, sha %s... = reference (%.1f s)"
              % (stopped_at, acc, sha[:12], seconds), flush=True)
        ok = True
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
    finally:
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("local_check: %s in %.1f s%s" % ("PASS" if ok else "FAIL", time.time() - t_all,
                                            "" if ok and not args.keep else "; logs in " + root),
          flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
