"""Multi-node wrapper: SageMaker's view of the cluster -> torch.distributed env://, then train.py.

The job's sagemaker_program. SageMaker (and Trainyard) start this once on every instance
(algo-1 ... algo-N) with the hyperparameters as arguments; it derives the variables
torch.distributed's env:// rendezvous reads, logs them, and replaces itself with
`python3 train.py <the same arguments>` (exec: same process, so SIGTERM from the
platform reaches train.py directly).

  hosts, current host  $SM_HOSTS (JSON list) and $SM_CURRENT_HOST, else "hosts" and
                       "current_host" of $SM_INPUT_CONFIG_DIR/resourceconfig.json
                       (default /opt/ml/input/config)
  MASTER_ADDR          $SM_MASTER_ADDR, else the first host (hosts are listed in the same
                       order on every instance, so all agree)
  MASTER_PORT          $SM_MASTER_PORT, else 7777 (the port SageMaker's own launchers use)
  WORLD_SIZE           hosts x processes per host (1: one CPU process per instance)
  NODE_RANK, RANK      index of the current host in hosts
  LOCAL_RANK           0; LOCAL_WORLD_SIZE 1
  GLOO_SOCKET_IFNAME   $SM_NETWORK_INTERFACE_NAME (else resourceconfig.json's
                       "network_interface_name") when that interface exists here with an
                       IPv4 address; otherwise unset, and gloo uses the address the host
                       name resolves to

Before exec it waits (up to 60 s) for MASTER_ADDR to resolve: instance names may appear
in DNS a little after the instance starts. Exits 1 with a reason when the cluster
description is missing or inconsistent, or the master never resolves.

Log lines (prefix "train_multi_node: "):
  hosts [...] (from SM_HOSTS|resourceconfig.json), current host algo-N
  MASTER_ADDR=... MASTER_PORT=... WORLD_SIZE=... NODE_RANK=... RANK=... LOCAL_RANK=0
      GLOO_SOCKET_IFNAME=...   (one line)
  master <name> resolves to <address>
  exec /usr/bin/python3 .../train.py <arguments>
"""
import fcntl
import json
import os
import socket
import struct
import sys
import time

DEFAULT_MASTER_PORT = 7777
PROCESSES_PER_HOST = 1  # CPU: one process per instance; torch uses the cores within it
RESOLVE_TIMEOUT_S = 60
LOG = "train_multi_node: "


def _resource_config(environ):
    config_dir = environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
    path = os.path.join(config_dir, "resourceconfig.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        return {}, path
    except (OSError, ValueError) as e:
        raise ValueError("cannot read %s: %s" % (path, e))
    if not isinstance(config, dict):
        raise ValueError("%s: not a JSON object" % path)
    return config, path


def interface_has_ipv4(name):
    """True when network interface `name` exists here and has an IPv4 address (gloo needs one)."""
    if not name or not os.path.exists(os.path.join("/sys/class/net", name)):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            siocgifaddr = 0x8915
            fcntl.ioctl(s.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode()))
            return True
        except OSError:
            return False


def distributed_env(environ, interface_ok=interface_has_ipv4):
    """(variables to set, log lines) for this instance. ValueError says what is wrong."""
    notes = []
    config, config_path = None, None

    def config_value(key):
        nonlocal config, config_path
        if config is None:
            config, config_path = _resource_config(environ)
        return config.get(key)

    if environ.get("SM_HOSTS"):
        try:
            hosts = json.loads(environ["SM_HOSTS"])
        except ValueError as e:
            raise ValueError("SM_HOSTS is not JSON: %s" % e)
        hosts_from = "SM_HOSTS"
    else:
        hosts = config_value("hosts")
        hosts_from = config_path
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ValueError("no list of hosts: set SM_HOSTS or provide %s with \"hosts\""
                         % (config_path or "resourceconfig.json"))
    if len(set(hosts)) != len(hosts):
        raise ValueError("hosts %s name an instance twice" % hosts)
    current = environ.get("SM_CURRENT_HOST") or config_value("current_host")
    if current not in hosts:
        raise ValueError("the current host %r is not one of the hosts %s" % (current, hosts))
    node_rank = hosts.index(current)
    notes.append("hosts %s (from %s), current host %s" % (json.dumps(hosts), hosts_from, current))
    # Cross-checks only: the list itself is the authority every instance shares.
    if environ.get("SM_CURRENT_HOST_RANK") not in (None, "", str(node_rank)):
        notes.append("warning: SM_CURRENT_HOST_RANK=%s, but %s is host %d of the list; using %d"
                     % (environ["SM_CURRENT_HOST_RANK"], current, node_rank, node_rank))
    if environ.get("SM_HOST_COUNT") not in (None, "", str(len(hosts))):
        notes.append("warning: SM_HOST_COUNT=%s, but %d hosts are listed"
                     % (environ["SM_HOST_COUNT"], len(hosts)))

    port = environ.get("SM_MASTER_PORT") or str(DEFAULT_MASTER_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("SM_MASTER_PORT=%r is not a port number" % port)
    env = {
        "MASTER_ADDR": environ.get("SM_MASTER_ADDR") or hosts[0],
        "MASTER_PORT": port,
        "WORLD_SIZE": str(len(hosts) * PROCESSES_PER_HOST),
        "NODE_RANK": str(node_rank),
        "RANK": str(node_rank * PROCESSES_PER_HOST),
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": str(PROCESSES_PER_HOST),
    }
    iface = environ.get("SM_NETWORK_INTERFACE_NAME") or config_value("network_interface_name")
    if iface and interface_ok(iface):
        env["GLOO_SOCKET_IFNAME"] = iface
    elif iface:
        notes.append("interface %s has no IPv4 address here: GLOO_SOCKET_IFNAME not set" % iface)
    notes.append(" ".join("%s=%s" % (k, env.get(k, "-")) for k in (
        "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "RANK", "LOCAL_RANK",
        "GLOO_SOCKET_IFNAME")))
    return env, notes


def wait_for_name(name, port, timeout_s):
    """The first address `name` resolves to, retrying until timeout_s; None if it never does."""
    deadline = time.time() + timeout_s
    while True:
        try:
            return socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][4][0]
        except socket.gaierror:
            if time.time() >= deadline:
                return None
            time.sleep(1)


def main():
    try:
        env, notes = distributed_env(os.environ)
    except ValueError as e:
        print(LOG + "error: %s" % e, file=sys.stderr, flush=True)
        return 1
    for line in notes:
        print(LOG + line, flush=True)
    address = wait_for_name(env["MASTER_ADDR"], int(env["MASTER_PORT"]), RESOLVE_TIMEOUT_S)
    if address is None:
        print(LOG + "error: master %s did not resolve within %d s"
              % (env["MASTER_ADDR"], RESOLVE_TIMEOUT_S), file=sys.stderr, flush=True)
        return 1
    print(LOG + "master %s resolves to %s" % (env["MASTER_ADDR"], address), flush=True)
    os.environ.update(env)
    train = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
    argv = [sys.executable, train] + sys.argv[1:]
    print(LOG + "exec " + " ".join(argv), flush=True)
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    sys.exit(main())
