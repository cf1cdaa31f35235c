#!/usr/bin/env python3
"""`trainyard storage sync` against `aws s3 sync` (/usr/bin/aws v2 and the pyenv aws v1), side by
side in one run, uploading to s3rver on loopback.

Cases (full / --quick):
  big     1 GiB as one file            / 128 MiB
  medium  100 x 10 MiB                 / 20 x 10 MiB
  small   10,000 x 10 KiB              / 1,000 x 10 KiB
  resync  one file of `small` changed (same size, new bytes), sync again to the prefix that tool
          filled in `small`; each tool must upload exactly that one file (checked)
Every run of big/medium/small uploads to a fresh prefix; the tools take turns (the order rotates
each round so none always runs on a warmer server). Wall time is measured around the process,
peak RSS comes from wait4(2) on that one child (ru_maxrss). Medians of -n runs.
Floors, measured with curl 7.88 (C, --aws-sigv4, keep-alive) against the same s3rver: the small
set PUT with 16 parallel transfers, and one full ListObjectsV2 walk of it (1000 keys a page).
Data and s3rver's directory live under one temp dir (same file system), removed at the end.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, trainyard_bin  # noqa: E402

MiB = 1 << 20
KiB = 1 << 10
BUCKET = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3rver(data_dir, port, log_path):
    script = os.path.join(ROOT, "scripts", "s3rver.sh")
    path = subprocess.run(["bash", script, "path"], capture_output=True, text=True)
    if path.returncode != 0:
        subprocess.run(["bash", script, "install"], check=True)
        path = subprocess.run(["bash", script, "path"], capture_output=True, text=True, check=True)
    env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
    log = open(log_path, "ab")
    proc = subprocess.Popen([path.stdout.strip(), "-d", data_dir, "-a", "127.0.0.1", "-p",
                             str(port), "--silent"], stdout=log, stderr=log, env=env)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"s3rver exited ({proc.returncode}); see {log_path}")
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("s3rver did not start listening within 20 s")


def write_random(path, size, block):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def make_sets(root, quick):
    """Returns {case: (dir, count, size)} with the files written."""
    spec = {"big": (1, 128 * MiB if quick else 1024 * MiB),
            "medium": (20 if quick else 100, 10 * MiB),
            "small": (1000 if quick else 10000, 10 * KiB)}
    sets = {}
    for case, (count, size) in spec.items():
        d = os.path.join(root, "data", case)
        os.makedirs(d)
        for i in range(count):
            # Distinct bytes per file (no dedup anywhere can help); 8 MiB blocks of urandom,
            # rotated, keep generation of the 1 GiB file to a few seconds.
            block = os.urandom(min(size, 8 * MiB))
            write_random(os.path.join(d, f"f{i:05d}.bin"), size, block)
        sets[case] = (d, count, size)
    return sets


class Tool:
    def __init__(self, name, argv_prefix, quiet_flag, endpoint):
        self.name = name
        self.argv_prefix = argv_prefix
        self.quiet_flag = quiet_flag
        self.endpoint = endpoint

    def sync_argv(self, src, dst, quiet=True):
        argv = self.argv_prefix + ["sync", src, dst, "--endpoint-url", self.endpoint]
        return argv + ([self.quiet_flag] if quiet else [])


def run_measured(argv, env, capture=False):
    """Runs argv; returns (seconds, peak RSS KiB, returncode, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    out = b""
    err = b""
    if capture:
        out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(f"!! {' '.join(argv)} exited {proc.returncode}:\n{err.decode()[-2000:]}\n")
    return secs, ru.ru_maxrss, proc.returncode, out.decode()


def objects_under(s3_dir, prefix):
    """s3rver's on-disk count of objects under bucket/prefix (its files end in ._S3rver_object)."""
    n = 0
    for _, _, files in os.walk(os.path.join(s3_dir, BUCKET, prefix)):
        n += sum(1 for f in files if f.endswith("._S3rver_object"))
    return n


def curl_floors(tmp, s3_dir, endpoint, small_dir, count):
    """PUT of the small set with curl --parallel 16, then a paginated listing of it."""
    cfg = os.path.join(tmp, "curl.cfg")
    with open(cfg, "w") as f:
        for name in sorted(os.listdir(small_dir)):
            f.write(f'upload-file = "{os.path.join(small_dir, name)}"\n'
                    f'url = "{endpoint}/{BUCKET}/floor/{name}"\noutput = "/dev/null"\n')
    sig = ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "S3RVER:S3RVER",
           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "--parallel", "--parallel-max", "16", "-K", cfg] + sig,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    put = time.perf_counter() - t0
    assert objects_under(s3_dir, "floor") == count
    names = sorted(os.listdir(small_dir))
    t0 = time.perf_counter()
    pages = 0
    for start in range(0, count, 1000):
        q = f"list-type=2&prefix=floor%2F&max-keys=1000"
        if start:
            q += f"&start-after=floor%2F{names[start - 1]}"
        subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", f"{endpoint}/{BUCKET}?{q}"] + sig,
                       check=True)
        pages += 1
    listing = time.perf_counter() - t0
    shutil.rmtree(os.path.join(s3_dir, BUCKET, "floor"), ignore_errors=True)
    return put, listing, pages


def fmt_s(x):
    return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.0f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sets (smoke run)")
    ap.add_argument("-n", type=int, default=None, help="runs per tool and case (default 3; quick 1)")
    ap.add_argument("--cases", default="big,medium,small,resync")
    ap.add_argument("--tools", default="trainyard,aws-v2,aws-v1")
    ap.add_argument("--no-floors", action="store_true", help="skip the curl floor measurements")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, s3rver dir, logs)")
    a = ap.parse_args()
    n = a.n or (1 if a.quick else 3)
    cases = a.cases.split(",")
    if "resync" in cases and "small" not in cases:
        sys.exit("resync needs the small case (it re-syncs the prefixes small filled)")

    tmp = tempfile.mkdtemp(prefix="ty-s3bench-")
    s3_dir = os.path.join(tmp, "s3rver")
    os.makedirs(s3_dir)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_s3rver(s3_dir, port, os.path.join(tmp, "s3rver.log"))
    # A clean AWS environment: s3rver's keys, no config or credentials files of the user's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.path.join(tmp, "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "no-credentials"))

    v1 = shutil.which("aws")
    try:  # the pyenv shim costs ~100 ms a call: run the real script
        v1 = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True,
                            check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    all_tools = {
        "trainyard": Tool("trainyard", [trainyard_bin(), "storage"], "--quiet", endpoint),
        "aws-v2": Tool("aws-v2", ["/usr/bin/aws", "s3"], "--quiet", endpoint),
        "aws-v1": Tool("aws-v1", [v1, "s3"], "--quiet", endpoint),
    }
    tools = [all_tools[t] for t in a.tools.split(",")]
    try:
        for t in tools:
            ver = subprocess.run(t.argv_prefix[:1] + ["--version"], capture_output=True, text=True,
                                 env=env)
            print(f"  {t.name}: {t.argv_prefix[0]} ({(ver.stdout or ver.stderr).strip()})")
        subprocess.run([trainyard_bin(), "storage", "mb", f"s3://{BUCKET}", "--endpoint-url", endpoint],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        t0 = time.perf_counter()
        sets = make_sets(tmp, a.quick)
        print(f"  data sets written in {time.perf_counter() - t0:.1f} s under {tmp}")

        results = {}  # (case, tool) -> [(secs, rss_kib)]
        last_prefix = {}  # tool -> prefix of its last `small` run
        ok = True
        for case in [c for c in cases if c != "resync"]:
            d, count, size = sets[case]
            for r in range(n):
                order = tools[r % len(tools):] + tools[:r % len(tools)]
                for t in order:
                    prefix = f"{case}/{t.name}/{r}"
                    secs, rss, rc, _ = run_measured(t.sync_argv(d, f"s3://{BUCKET}/{prefix}/"), env)
                    stored = objects_under(s3_dir, prefix)
                    if rc != 0 or stored != count:
                        ok = False
                        print(f"!! {case} {t.name} run {r}: exit {rc}, {stored}/{count} objects stored")
                    results.setdefault((case, t.name), []).append((secs, rss))
                    print(f"  {case:7s} run {r} {t.name:9s} {fmt_s(secs):>9s}  peak RSS {rss / 1024:7.1f} MiB")
                    prev = last_prefix.get((case, t.name))
                    if prev:
                        shutil.rmtree(os.path.join(s3_dir, BUCKET, prev), ignore_errors=True)
                    last_prefix[(case, t.name)] = prefix
            for t in tools:  # free the disk; `small` stays for resync
                if case != "small":
                    shutil.rmtree(os.path.join(s3_dir, BUCKET, last_prefix[(case, t.name)]),
                                  ignore_errors=True)

        if "resync" in cases:
            d, count, size = sets["small"]
            names = sorted(os.listdir(d))
            for r in range(n):
                victim = os.path.join(d, names[(r * 7919) % len(names)])
                write_random(victim, size, os.urandom(size))
                order = tools[r % len(tools):] + tools[:r % len(tools)]
                for t in order:
                    prefix = last_prefix[("small", t.name)]
                    secs, rss, rc, out = run_measured(
                        t.sync_argv(d, f"s3://{BUCKET}/{prefix}/", quiet=False), env, capture=True)
                    uploads = [l for l in out.splitlines() if "upload:" in l]
                    if rc != 0 or len(uploads) != 1 or os.path.basename(victim) not in uploads[0]:
                        ok = False
                        print(f"!! resync {t.name} run {r}: exit {rc}, uploads {uploads[:3]} "
                              f"(expected just {os.path.basename(victim)})")
                    results.setdefault(("resync", t.name), []).append((secs, rss))
                    print(f"  resync  run {r} {t.name:9s} {fmt_s(secs):>9s}  peak RSS {rss / 1024:7.1f} MiB")

        floors = None
        if not a.no_floors and "small" in sets:
            floors = curl_floors(tmp, s3_dir, endpoint, sets["small"][0], sets["small"][1])

        # The table.
        labels = {"big": f"{sets['big'][2] // MiB} MiB x 1",
                  "medium": f"{sets['medium'][1]} x {sets['medium'][2] // MiB} MiB",
                  "small": f"{sets['small'][1]:,} x {sets['small'][2] // KiB} KiB",
                  "resync": f"re-sync, 1 of {sets['small'][1]:,} changed"}
        print()
        print(f"s3rver on loopback, median of {n} run(s); time (peak RSS)")
        head = f"| case | " + " | ".join(t.name for t in tools) + " | speedup vs faster AWS CLI | goal |"
        print(head)
        print("|" + "---|" * (len(tools) + 3))
        summary = []
        for case in cases:
            row = []
            med = {}
            for t in tools:
                xs = results.get((case, t.name), [])
                if not xs:
                    row.append("-")
                    continue
                med[t.name] = statistics.median(s for s, _ in xs)
                rss = max(m for _, m in xs) / 1024
                row.append(f"{fmt_s(med[t.name])} ({rss:.0f} MiB)")
            aws = [med[k] for k in ("aws-v2", "aws-v1") if k in med]
            speedup = ""
            goal = ""
            if "trainyard" in med and aws:
                sp = min(aws) / med["trainyard"]
                speedup = f"{sp:.2f}x"
                met = sp >= 2 and (case != "resync" or med["trainyard"] < 1.0)
                goal = ("MET" if met else "NOT MET") + (" (2x; < 1 s)" if case == "resync" else " (2x)")
                summary.append(f"RESULT s3_sync {case} ({labels[case]}): trainyard {fmt_s(med['trainyard'])}, "
                               f"faster aws {fmt_s(min(aws))}, {speedup} {goal}")
            print(f"| {labels[case]} | " + " | ".join(row) + f" | {speedup} | {goal} |")
        if floors:
            put, listing, pages = floors
            cnt = sets["small"][1]
            print(f"\nfloors (curl 7.88, same s3rver): PUT {cnt:,} x 10 KiB, 16 parallel: {fmt_s(put)} "
                  f"({cnt / put:.0f} req/s); ListObjectsV2 of {cnt:,} keys ({pages} page{'s' if pages > 1 else ''}): {fmt_s(listing)}")
            summary.append(f"RESULT s3_sync floors: curl PUT {cnt} small {fmt_s(put)}, list {fmt_s(listing)}")
        print()
        for line in summary:
            print(line)
        if not ok:
            print("RESULT s3_sync: some runs FAILED (see '!!' lines)")
            return 1
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
