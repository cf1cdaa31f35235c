"""Every instance in its own network namespace, through the real binary and boto3: a
single-instance job reaches neither the server's API port (on 127.0.0.1, on its gateway, on the
host's own address) nor any other listener of the host, yet reaches the outside world through
NAT; an EnableNetworkIsolation job reaches its peers and nothing else; a job given the S3
store's credentials reaches the store (s3rver) and nothing else of the host; two servers on one
machine leave each other's networks and firewall tables alone.

"The outside world" is a network namespace this test makes (`tyt-*`, routed from the host like
a next-hop network), so the test needs no Internet."""
import hashlib
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

import s3util
from conftest import ROOT, TEST_CONFIG, Server, job_request, logs_of, wait_status

PROBE_DIR = os.path.join(ROOT, "tests", "e2e", "jobs", "netprobe")

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="network namespaces and nftables need root (CI runs as root)")


def run(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def nft_tables():
    return run("nft", "list", "tables").stdout


def host_address():
    """An address of this host that is not loopback and not one of Trainyard's bridges."""
    for line in run("ip", "-4", "-o", "addr", "show", "scope", "global").stdout.splitlines():
        words = line.split()
        if not words[1].startswith(("tyb-", "tyv-", "tyt")):
            return words[3].split("/")[0]
    pytest.skip("this host has no global IPv4 address")


class HostListener:
    """A TCP listener of the host that counts connections (and answers "HOST")."""

    def __init__(self, address):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.accepted.append(peer[0])
            try:
                conn.sendall(b"HOST")
            finally:
                conn.close()

    def close(self):
        self.sock.close()


class OutsideHost:
    """A stand-in for the Internet: a namespace behind a veth routed from the host, with a TCP
    server that answers each connection with the address it came from."""

    SERVER = ("import socket,sys\n"
              "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
              "print('ready', flush=True)\n"
              "while True:\n"
              "    c, p = s.accept(); c.sendall(p[0].encode()); c.close()\n")

    def __init__(self):
        r = random.randrange(1, 250)
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.ns = f"tyt-out-{tag}"
        self.link = f"tyto{tag}"
        self.host_ip = f"198.18.{r}.1"
        self.ip = f"198.18.{r}.2"
        self.port = 8080
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        run("ip", "addr", "add", self.host_ip + "/30", "dev", self.link)
        run("ip", "link", "set", self.link, "up")
        run("ip", "-n", self.ns, "addr", "add", self.ip + "/30", "dev", "eth0")
        run("ip", "-n", self.ns, "link", "set", "eth0", "up")
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c", self.SERVER,
             str(self.port)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def close(self):
        self.proc.kill()
        self.proc.wait()
        run("ip", "link", "del", self.link, check=False)
        run("ip", "netns", "del", self.ns, check=False)


@pytest.fixture
def outside():
    o = OutsideHost()
    yield o
    o.close()


@pytest.fixture
def listeners():
    ls = [HostListener("0.0.0.0"), HostListener("127.0.0.1")]
    yield ls
    for listener in ls:
        listener.close()


def probe_job(name, out_dir, probes=(), count=1, **env):
    """A job of `count` instances running net_probe.py from a file:// channel."""
    req = job_request(name, out_dir)
    req["ResourceConfig"]["InstanceCount"] = count
    req["InputDataConfig"] = [{
        "ChannelName": "probe",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                        "S3Uri": "file://" + PROBE_DIR + "/",
                                        "S3DataDistributionType": "FullyReplicated"}}}]
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = [
        "/bin/sh", "-c", 'exec /usr/bin/python3 "$SM_CHANNEL_PROBE/net_probe.py"']
    environment = {"PROBES": json.dumps([list(p) for p in probes])}
    environment.update({k: str(v) for k, v in env.items()})
    req["Environment"] = environment
    return req


def results(log):
    """{"<name>": "open ..." | "closed ..."} from the PROBE lines of a job's log (all instances)."""
    out = {}
    for line in log.splitlines():
        at = line.find("PROBE ")
        if at >= 0:
            _, name, result = line[at:].split(" ", 2)
            out.setdefault(name, []).append(result)
    return out


def api_port(server):
    return urllib.parse.urlparse(server.url).port


def host_probes(server, listeners):
    port = api_port(server)
    return [("api_loopback", "127.0.0.1", port),
            ("api_gateway", "GATEWAY", port),
            ("api_hostaddr", "HOSTADDR", port),
            ("listener_gateway", "GATEWAY", listeners[0].port),
            ("listener_hostaddr", "HOSTADDR", listeners[0].port),
            ("listener_loopback", "127.0.0.1", listeners[1].port)]


def assert_all_closed(found, names):
    for name in names:
        assert name in found, (name, found)
        for r in found[name]:
            assert r.startswith("closed"), (name, r)


def test_single_instance_job_reaches_the_outside_but_nothing_of_the_host(
        tmp_path, listeners, outside):
    server = Server(str(tmp_path / "data")).start()
    try:
        sm = server.boto3()
        probes = host_probes(server, listeners) + [("outside", outside.ip, outside.port)]
        # The same by raw socket: a hand-made SYN gets no answer from the host (dropped before
        # its TCP stack), while the outside answers (so the raw probe itself works).
        raw = [("api_gateway", "GATEWAY", api_port(server)),
               ("api_hostaddr", "HOSTADDR", api_port(server)),
               ("outside", outside.ip, outside.port)]
        sm.create_training_job(**probe_job("net-single", str(tmp_path / "out"), probes,
                                           HOSTADDR=host_address(),
                                           RAW_PROBES=json.dumps([list(p) for p in raw])))
        d = wait_status(sm, "net-single")
        log = logs_of(server, "net-single")
        assert d["TrainingJobStatus"] == "Completed", (d.get("FailureReason"), log)
        assert "own namespace" in log and "the outside world through NAT" in log, log
        found = results(log)
        assert_all_closed(found, [p[0] for p in probes if p[0] != "outside"])
        # Out through NAT: the outside sees the host's address, not the instance's.
        assert found["outside"] == ["open " + outside.host_ip], found
        assert listeners[0].accepted == [] and listeners[1].accepted == []
        raw_results = {line.split()[1]: line.split()[2]
                       for line in (ln[ln.find("RAW "):] for ln in log.splitlines() if "RAW " in ln)}
        if raw_results.get("outside") == "unavailable":
            # A sandbox without CAP_NET_RAW: no raw socket at all, which holds too.
            assert raw_results.get("api_gateway") == "unavailable", log
        else:
            assert raw_results.get("outside") == "answered", log
            assert raw_results.get("api_gateway") == "silent", log
            assert raw_results.get("api_hostaddr") == "silent", log
        # The server's own firewall table is there while it runs, and gone after.
        assert "trainyard_" in nft_tables()
    finally:
        server.stop()


def test_isolated_job_reaches_its_peer_and_nothing_else(tmp_path, listeners, outside):
    server = Server(str(tmp_path / "data")).start()
    try:
        sm = server.boto3()
        probes = host_probes(server, listeners) + [("outside", outside.ip, outside.port)]
        sm.create_training_job(EnableNetworkIsolation=True,
                               **probe_job("net-isolated", str(tmp_path / "out"), probes,
                                           count=2, LISTEN_ON="algo-2:7000",
                                           HOSTADDR=host_address()))
        d = wait_status(sm, "net-isolated")
        log = logs_of(server, "net-isolated")
        assert d["TrainingJobStatus"] == "Completed", (d.get("FailureReason"), log)
        assert d["EnableNetworkIsolation"] is True
        assert "nothing outside (EnableNetworkIsolation)" in log, log
        assert "PEER open algo-2" in log, log
        found = results(log)
        assert_all_closed(found, [p[0] for p in probes])
        assert len(found["outside"]) == 2  # both instances tried
        assert listeners[0].accepted == [] and listeners[1].accepted == []
    finally:
        server.stop()


def test_job_with_store_credentials_reaches_the_store_and_nothing_else(
        tmp_path, listeners, s3rver):
    config = TEST_CONFIG + "storage:\n  pass_credentials_to_jobs: true\n"
    server = Server(str(tmp_path / "data"), config=config).start()
    try:
        sm = server.boto3()
        probes = host_probes(server, listeners) + [
            ("store_direct", "127.0.0.1", s3rver.port),
            ("store_hostaddr_other_port", "HOSTADDR", listeners[0].port)]
        sm.create_training_job(**probe_job("net-store", str(tmp_path / "out"), probes,
                                           STORE_BUCKET=s3util.BUCKET, HOSTADDR=host_address()))
        d = wait_status(sm, "net-store")
        log = logs_of(server, "net-store")
        assert d["TrainingJobStatus"] == "Completed", (d.get("FailureReason"), log)
        store_lines = [line for line in log.splitlines() if "STORE " in line]
        assert store_lines and "STORE ok" in store_lines[0], log
        # The job was given the store at its gateway, not at the host's 127.0.0.1.
        assert f":{s3rver.port}" in store_lines[0] and "127.0.0.1" not in store_lines[0], log
        assert_all_closed(results(log), [p[0] for p in probes])
        assert listeners[0].accepted == [] and listeners[1].accepted == []
    finally:
        server.stop()


def server_id(server):
    return hashlib.sha256(os.path.realpath(server.data_dir).encode()).hexdigest()[:8]


def job_netns(server, arn, count):
    key = hashlib.sha256(f"{server_id(server)} {arn}".encode()).hexdigest()[:8]
    return {f"ty-{key}-{n}" for n in range(1, count + 1)}


def netns_names():
    return {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line}


def test_two_servers_leave_each_others_networks_alone(tmp_path, listeners):
    a = Server(str(tmp_path / "a")).start()
    b = None
    try:
        sm_a = a.boto3()
        # A's job waits while server B starts (and sweeps), runs a job and stops (and removes its
        # table); then A's instances still reach each other and still not the host.
        arn = sm_a.create_training_job(**probe_job(
            "net-a", str(tmp_path / "out-a"), host_probes(a, listeners), count=2,
            LISTEN_ON="algo-2:7000", PRE_SLEEP=8, HOSTADDR=host_address()))["TrainingJobArn"]
        wait_status(sm_a, "net-a", statuses=("InProgress",))
        deadline = time.time() + 30
        while time.time() < deadline and not job_netns(a, arn, 2) <= netns_names():
            time.sleep(0.1)
        assert job_netns(a, arn, 2) <= netns_names()
        assert f"trainyard_{server_id(a)}" in nft_tables()

        b = Server(str(tmp_path / "b")).start()
        assert f"trainyard_{server_id(b)}" in nft_tables()
        sm_b = b.boto3()
        sm_b.create_training_job(**probe_job("net-b", str(tmp_path / "out-b"),
                                             host_probes(b, listeners), HOSTADDR=host_address()))
        db = wait_status(sm_b, "net-b")
        assert db["TrainingJobStatus"] == "Completed", db.get("FailureReason")
        b.stop()
        assert f"trainyard_{server_id(b)}" not in nft_tables()
        b = None
        assert job_netns(a, arn, 2) <= netns_names()
        assert f"trainyard_{server_id(a)}" in nft_tables()

        da = wait_status(sm_a, "net-a")
        log = logs_of(a, "net-a")
        assert da["TrainingJobStatus"] == "Completed", (da.get("FailureReason"), log)
        assert "PEER open algo-2" in log, log
        assert_all_closed(results(log), [p[0] for p in host_probes(a, listeners)])
        assert listeners[0].accepted == [] and listeners[1].accepted == []
    finally:
        if b is not None:
            b.stop()
        a.stop()
    assert f"trainyard_{server_id(a)}" not in nft_tables()
