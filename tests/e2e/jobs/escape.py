"""A training script that tries to get out of its sandbox, the way an attacker would, and
reports each attempt as one line `escape: <name> refused|ESCAPED <detail>` (tests/e2e/
test_escape.py asserts every one is refused and that the host is unchanged).

Paths it goes after come in the environment: ESCAPE_DATA_DIR (the server's data dir),
ESCAPE_CREDENTIALS, ESCAPE_OTHER_TREE (another job's instance tree), ESCAPE_CHANNEL
(this job's read-only channel inside /opt/ml), ESCAPE_HOST_PID (a host process to signal).
It then writes model/, output/data/ and a checkpoint, and exits 0, so the agent still packs and
syncs what an unprivileged process wrote.
"""
import ctypes
import ctypes.util
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
HOST = socket.gethostname()

MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
MNT_DETACH = 2
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
SYS_PIVOT_ROOT, SYS_INIT_MODULE, SYS_KEXEC_LOAD, SYS_BPF = 155, 175, 246, 321
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206

results = []


def report(name, escaped, detail=""):
    results.append((name, escaped))
    print(f"escape: {name} {'ESCAPED' if escaped else 'refused'} {detail}".rstrip(), flush=True)


def call(rc):
    """A libc call's outcome: (True, "") on success, (False, "ERRNO") on failure."""
    if rc == 0 or (rc > 0):
        return True, ""
    return False, errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def attempt(name, fn):
    try:
        ok, detail = fn()
    except OSError as e:
        ok, detail = False, errno.errorcode.get(e.errno, str(e.errno))
    except Exception as e:  # noqa: BLE001 - report whatever stopped it
        ok, detail = False, type(e).__name__
    report(name, ok, detail)


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = (r.stderr or r.stdout).strip().splitlines()
    return r.returncode == 0, lines[-1] if lines else f"exit {r.returncode}"


def mount(src, target, fstype, flags):
    return call(libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(),
                           ctypes.c_ulong(flags), None))


def write_file(path, text="escaped\n"):
    with open(path, "w") as f:
        f.write(text)
    return True, path


def read_secret(path):
    """Readable and non-empty counts as an escape; a hidden (empty) directory does not."""
    if os.path.isdir(path):
        entries = os.listdir(path)
        return bool(entries), f"{len(entries)} entries"
    with open(path, "rb") as f:
        data = f.read()
    return bool(data), f"{len(data)} bytes"


channel = os.environ.get("ESCAPE_CHANNEL", "/opt/ml/input/data/train")

# The mount family.
attempt("remount-channel-rw", lambda: mount(None, channel, None, MS_REMOUNT | MS_BIND))
attempt("remount-channel-rw-cmd", lambda: sh(["mount", "-o", "remount,bind,rw", channel]))
attempt("write-into-channel", lambda: write_file(os.path.join(channel, "escaped.txt")))
attempt("chmod-channel-file", lambda: (os.chmod(os.path.join(channel, sorted(os.listdir(channel))[0]),
                                                0o777), (True, ""))[1])
attempt("umount-tmp", lambda: call(libc.umount2(b"/tmp", MNT_DETACH)))
attempt("umount-tmp-cmd", lambda: sh(["umount", "/tmp"]))
attempt("umount-opt-ml", lambda: call(libc.umount2(b"/opt/ml", MNT_DETACH)))
attempt("remount-root-rw", lambda: mount(None, "/", None, MS_REMOUNT | MS_BIND))
attempt("remount-root-rw-cmd", lambda: sh(["mount", "-o", "remount,bind,rw", "/"]))
attempt("write-etc", lambda: write_file("/etc/trainyard-escape-marker"))
attempt("write-usr", lambda: write_file("/usr/trainyard-escape-marker"))
attempt("mount-tmpfs", lambda: mount("none", "/mnt", "tmpfs", 0))
attempt("mount-proc", lambda: mount("proc", "/mnt", "proc", 0))
attempt("bind-host-root", lambda: mount("/", "/opt/ml/model", None, MS_BIND))
attempt("pivot-root", lambda: call(libc.syscall(SYS_PIVOT_ROOT, b"/opt/ml", b"/opt/ml/code")))
attempt("chroot", lambda: call(libc.chroot(b"/tmp")))

# Devices, modules, kernel.
attempt("mknod-char", lambda: (os.mknod("/tmp/mem", 0o600 | 0o020000, os.makedev(1, 1)),
                               (True, ""))[1])
attempt("mknod-block", lambda: (os.mknod("/tmp/disk", 0o600 | 0o060000, os.makedev(8, 0)),
                                (True, ""))[1])
attempt("init-module", lambda: call(libc.syscall(SYS_INIT_MODULE, None, 0, b"")))
attempt("kexec-load", lambda: call(libc.syscall(SYS_KEXEC_LOAD, 0, 0, None, 0)))
attempt("bpf", lambda: call(libc.syscall(SYS_BPF, 0, None, 0)))


def sysctl():
    path = "/proc/sys/vm/swappiness"
    with open(path) as f:
        current = f.read()
    return write_file(path, current)  # the same value: harmless should it ever succeed


attempt("write-sysctl", sysctl)
attempt("write-sysctl-hostname", lambda: write_file("/proc/sys/kernel/hostname", HOST))
attempt("sysrq-trigger", lambda: write_file("/proc/sysrq-trigger", "h"))


def cgroup_write():
    # Leave the instance's cgroup: move ourselves to the root of every hierarchy.
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu",
                 "/sys/fs/cgroup"):
        for name in ("cgroup.procs", "tasks"):
            p = os.path.join(root, name)
            if os.path.exists(p):
                try:
                    write_file(p, f"{os.getpid()}\n")
                    return True, p
                except OSError:
                    pass
    return False, "EROFS/EACCES everywhere"


attempt("cgroup-move-to-root", cgroup_write)
attempt("cgroup-mkdir", lambda: (os.mkdir("/sys/fs/cgroup/memory/trainyard-escape"), (True, ""))[1]
        if os.path.isdir("/sys/fs/cgroup/memory") else
        (os.mkdir("/sys/fs/cgroup/trainyard-escape"), (True, ""))[1])

# Namespaces.
attempt("unshare-user", lambda: call(libc.unshare(CLONE_NEWUSER)))
attempt("unshare-mount", lambda: call(libc.unshare(CLONE_NEWNS)))
attempt("unshare-cmd", lambda: sh(["unshare", "-Urm", "true"]))


# ptrace: a child it forked, and the sandbox's init.
def ptrace(pid, request):
    return call(libc.ptrace(ctypes.c_long(request), ctypes.c_long(pid), None, None))


child = subprocess.Popen(["sleep", "30"])
attempt("ptrace-attach-child", lambda: ptrace(child.pid, PTRACE_ATTACH))
attempt("ptrace-seize-child", lambda: ptrace(child.pid, PTRACE_SEIZE))
attempt("ptrace-attach-init", lambda: ptrace(1, PTRACE_ATTACH))
attempt("process-vm-readv", lambda: call(libc.process_vm_readv(child.pid, None, 0, None, 0, 0)))
attempt("read-child-mem", lambda: read_secret(f"/proc/{child.pid}/mem"))
child.kill()
child.wait()

# Secrets by path.
for name, var in (("read-data-dir", "ESCAPE_DATA_DIR"), ("read-credentials", "ESCAPE_CREDENTIALS"),
                  ("read-other-job-tree", "ESCAPE_OTHER_TREE")):
    path = os.environ.get(var, "")
    attempt(name, lambda path=path: read_secret(path))
attempt("read-root", lambda: read_secret("/root"))
attempt("read-root-trainyard", lambda: read_secret("/root/.trainyard"))

# Signals outside the PID namespace: the host process by its host pid, then every process.
host_pid = int(os.environ.get("ESCAPE_HOST_PID", "0") or 0)


def kill_host():
    os.kill(host_pid, signal.SIGKILL)  # a host pid names nothing (or something else) in here
    return True, "signalled"


def host_processes():
    seen = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"trainyard" in f.read():
                    seen.append(p)
        except OSError:
            pass
    return bool(seen), f"{len(seen)} trainyard processes visible"


attempt("kill-host-pid", kill_host)
attempt("see-host-processes", host_processes)
try:
    os.kill(-1, signal.SIGKILL)  # reaches only this namespace's processes (none but us)
except OSError:
    pass

# What a job is meant to write: model, output data, a checkpoint; owned by the sandbox's uid.
os.makedirs("/opt/ml/model", exist_ok=True)
with open(f"/opt/ml/model/escape-{HOST}.json", "w") as f:
    json.dump({name: escaped for name, escaped in results}, f)
os.makedirs("/opt/ml/output/data", exist_ok=True)
with open(f"/opt/ml/output/data/escape-{HOST}.txt", "w") as f:
    f.write("written inside\n")
os.makedirs("/opt/ml/checkpoints", exist_ok=True)
with open(f"/opt/ml/checkpoints/ckpt-{HOST}.txt", "w") as f:
    f.write("checkpoint\n")
time.sleep(0.5)  # let the checkpoint sync see it before the final sync
escaped = [name for name, e in results if e]
print(f"escape: summary {len(results)} attempts, {len(escaped)} escaped {escaped}", flush=True)
print(f"escape: uid {os.getuid()} gid {os.getgid()}", flush=True)
sys.exit(0)
