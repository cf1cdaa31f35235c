"""What an instance's network reaches, for tests/e2e/test_network_isolation.py.

Environment (all optional):
  PROBES        JSON list of [name, host, port]: a TCP connect to each, printed as
                "PROBE <name> open" or "PROBE <name> closed <why>". host "GATEWAY" is this
                instance's default gateway; "HOSTADDR" the address in HOSTADDR.
  RAW_PROBES    the same list, tried with a raw socket too: a hand-made TCP SYN, printed as
                "RAW <name> answered <flags>" (a SYN-ACK or RST came back) or "RAW <name> silent"
                (or "RAW <name> unavailable <why>" when raw sockets cannot be opened).
  LISTEN_ON     "algo-2:7000": that instance listens on the port and answers one connection
                with its host name, before any probe runs elsewhere (peers wait for it).
  PRE_SLEEP     seconds to wait first.
  STORE_BUCKET  list this bucket through AWS_ENDPOINT_URL_S3 with the job's credentials and
                print "STORE ok <n keys>" or "STORE failed <why>".
"""
import json
import os
import socket
import struct
import sys
import time


def gateway():
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    return None


def probe(host, port, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            try:
                data = s.recv(64)
            except OSError:
                data = b""
            return "open " + data.decode(errors="replace").strip().replace(" ", "_")
    except OSError as e:
        return "closed " + (type(e).__name__ + ":" + str(e)).replace(" ", "_")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def raw_syn(host, port, timeout=1.5):
    """Sends a TCP SYN to host:port through a raw socket (no connect(), no TCP stack on our side)
    and waits for any TCP answer from host:port."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    except OSError as e:
        return "unavailable " + str(e).replace(" ", "_")
    with sock:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect((host, port))
        src = probe.getsockname()[0]
        probe.close()
        sport = 40000 + os.getpid() % 20000
        header = struct.pack("!HHLLBBHHH", sport, port, 12345, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = struct.pack("!4s4sBBH", socket.inet_aton(src), socket.inet_aton(host), 0,
                             socket.IPPROTO_TCP, len(header))
        header = header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]
        sock.sendto(header, (host, 0))
        deadline = time.time() + timeout
        while time.time() < deadline:
            sock.settimeout(max(0.01, deadline - time.time()))
            try:
                packet, addr = sock.recvfrom(65535)
            except socket.timeout:
                break
            ihl = (packet[0] & 0x0F) * 4
            tcp = packet[ihl:ihl + 20]
            if addr[0] != host or len(tcp) < 14:
                continue
            s_port, d_port = struct.unpack("!HH", tcp[:4])
            if s_port == port and d_port == sport:
                return "answered flags=0x%02x" % tcp[13]
        return "silent"


def main():
    me = os.environ.get("SM_CURRENT_HOST", "?")
    time.sleep(float(os.environ.get("PRE_SLEEP", "0")))
    print("NETPROBE host", me, "gateway", gateway(), flush=True)
    listen = os.environ.get("LISTEN_ON")
    if listen:
        host, port = listen.split(":")
        if host == me:
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("0.0.0.0", int(port)))
            srv.listen(8)
            srv.settimeout(60)
            conn, peer = srv.accept()
            conn.sendall(me.encode())
            conn.close()
            print("LISTENER served", peer[0], flush=True)
        else:
            # The peer's listener comes up within a few seconds; its one connection is this.
            deadline = time.time() + 30
            result = probe(host, int(port), 1)
            while time.time() < deadline and not result.startswith("open"):
                time.sleep(0.2)
                result = probe(host, int(port), 1)
            print("PEER", result, flush=True)
    for name, host, port in json.loads(os.environ.get("PROBES", "[]")):
        if host == "GATEWAY":
            host = gateway()
        elif host == "HOSTADDR":
            host = os.environ["HOSTADDR"]
        if host is None:
            print("PROBE", name, "closed no_gateway", flush=True)
            continue
        print("PROBE", name, probe(host, int(port)), flush=True)
    for name, host, port in json.loads(os.environ.get("RAW_PROBES", "[]")):
        if host == "GATEWAY":
            host = gateway()
        elif host == "HOSTADDR":
            host = os.environ["HOSTADDR"]
        print("RAW", name, raw_syn(host, int(port)), flush=True)
    bucket = os.environ.get("STORE_BUCKET")
    if bucket:
        try:
            import boto3
            import botocore.config
            s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
                              region_name=os.environ.get("AWS_REGION", "us-east-1"),
                              config=botocore.config.Config(
                                  connect_timeout=3, read_timeout=5,
                                  s3={"addressing_style": "path"},
                                  retries={"max_attempts": 1}))
            n = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
            print("STORE ok", n, os.environ["AWS_ENDPOINT_URL_S3"], flush=True)
        except Exception as e:  # noqa: BLE001 - the test reads what failed
            print("STORE failed", type(e).__name__, str(e).replace(" ", "_")[:200], flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
