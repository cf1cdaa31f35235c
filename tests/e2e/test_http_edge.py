"""The HTTP edge holds against hostile networks: idle and slow-header connections do not starve
API callers, pipelined requests are all answered in order, and an oversized header gets an AWS
error. Through the real binary with boto3 (Debian's 1.26).

Connections are spread over several loopback source addresses (all of 127/8 is this machine) so
that the server's default per-client limit (1,024) holds them; a test asserts answers, never
timings."""
import os
import resource
import select
import socket
import threading
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import TEST_CONFIG, Server, job_request, wait_for, wait_status

HEAD_TIMEOUT_S = 2
IDLE = 2000
SLOW = 100


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    config = TEST_CONFIG + f"http:\n  head_timeout_seconds: {HEAD_TIMEOUT_S}\n"
    s = Server(str(tmp_path_factory.mktemp("edge") / "data"), config=config).start()
    yield s
    s.stop()


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def host_port(srv):
    u = urllib.parse.urlparse(srv.url)
    return u.hostname, u.port


def connect(srv, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(host_port(srv))
    return s


def closed_by_peer(sock):
    """True if the server closed the connection (EOF or reset); never blocks."""
    poller = select.poll()  # select() cannot take descriptors above 1023
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def open_sockets(pid):
    fd_dir = f"/proc/{pid}/fd"
    n = 0
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


class SlowHeaderClients:
    """SLOW connections that send a request head one byte a second and never finish it; each
    one the server drops is replaced, as an attacker would."""

    HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: SageMaker.ListTrainingJobs\r\n"

    def __init__(self, srv, source="127.0.0.6"):
        self.srv, self.source = srv, source
        self.socks = [(connect(srv, source), 0) for _ in range(SLOW)]
        self.dropped = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(1.0):
            next_socks = []
            for sock, sent in self.socks:
                if closed_by_peer(sock):
                    self.dropped += 1
                    sock.close()
                    sock, sent = connect(self.srv, self.source), 0
                try:
                    sock.send(self.HEAD[sent % len(self.HEAD):][:1])
                    sent += 1
                except OSError:
                    pass
                next_socks.append((sock, sent))
            self.socks = next_socks

    def close(self):
        self.stop.set()
        self.thread.join()
        for sock, _ in self.socks:
            sock.close()


def test_api_answers_under_idle_and_slow_header_connections(srv, tmp_path):
    sm = srv.boto3()
    sm.create_training_job(**job_request("edge-done", str(tmp_path), command="echo hi"))
    wait_status(sm, "edge-done", ("Completed",))
    base = open_sockets(srv.proc.pid)

    idle = []
    slow = None
    try:
        for i in range(IDLE):
            idle.append(connect(srv, f"127.0.0.{2 + i % 4}"))  # 500 per address
        slow = SlowHeaderClients(srv)
        # The server holds them all (it accepted them; none waits in the backlog).
        wait_for(lambda: open_sockets(srv.proc.pid), lambda n: n >= base + IDLE + SLOW,
                 timeout=60)
        # A job whose agent must report through the same edge meanwhile.
        sm.create_training_job(**job_request("edge-during", str(tmp_path),
                                             command="sleep 2; echo during"))

        d = sm.describe_training_job(TrainingJobName="edge-done")
        assert d["TrainingJobStatus"] == "Completed"
        names = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
        assert {"edge-done", "edge-during"} <= set(names)
        assert wait_status(sm, "edge-during")["TrainingJobStatus"] == "Completed"

        # The head deadline dropped slow clients, and their replacements, and still the API
        # answers.
        wait_for(lambda: slow.dropped, lambda n: n >= SLOW, timeout=60)
        d = sm.describe_training_job(TrainingJobName="edge-during")
        assert d["TrainingJobStatus"] == "Completed"
        # Idle connections are not slow ones: they are still open (the idle timeout is 60 s).
        assert not any(closed_by_peer(s) for s in idle[:200])
    finally:
        if slow is not None:
            slow.close()
        for s in idle:
            s.close()


def signed_describe(srv, name):
    body = ('{"TrainingJobName": "%s"}' % name).encode()
    host, port = host_port(srv)
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": "SageMaker.DescribeTrainingJob"}
    req = botocore.awsrequest.AWSRequest(method="POST", url=srv.url + "/", data=body,
                                         headers=headers)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(
        srv.creds["aws_access_key_id"], srv.creds["aws_secret_access_key"]),
        "sagemaker", srv.region).add_auth(req)
    lines = ["POST / HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_responses(sock, count):
    buf, out = b"", []
    sock.settimeout(60)
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            length = 0
            for line in head.split("\r\n")[1:]:
                k, v = line.split(":", 1)
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(buf) >= end + 4 + length:
                out.append((int(head.split()[1]), buf[end + 4:end + 4 + length].decode()))
                buf = buf[end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(out)} responses"
        buf += chunk
    return out


def test_pipelined_requests_are_all_answered_in_order(srv, tmp_path):
    sm = srv.boto3()
    for name in ("edge-pipe-a", "edge-pipe-b"):
        sm.create_training_job(**job_request(name, str(tmp_path), command="true"))
    payload = b"".join(signed_describe(srv, n)
                       for n in ("edge-pipe-a", "edge-pipe-missing", "edge-pipe-b"))
    sock = connect(srv, "127.0.0.1")
    try:
        sock.sendall(payload)  # three requests in one write
        (s1, b1), (s2, b2), (s3, b3) = read_responses(sock, 3)
    finally:
        sock.close()
    assert s1 == 200 and '"TrainingJobName":"edge-pipe-a"' in b1.replace(" ", ""), b1
    assert s2 == 400 and "ValidationException" in b2 and "not found" in b2, b2
    assert s3 == 200 and '"TrainingJobName":"edge-pipe-b"' in b3.replace(" ", ""), b3
    for name in ("edge-pipe-a", "edge-pipe-b"):
        wait_status(sm, name)


def test_oversized_authorization_header_gets_an_aws_error(srv):
    sm = srv.boto3()

    def inflate(request, **kwargs):
        del request.headers["Authorization"]
        request.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=" + "x" * (200 * 1024)

    sm.meta.events.register("before-send.sagemaker.ListTrainingJobs", inflate)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.list_training_jobs()
    res = e.value.response
    assert res["ResponseMetadata"]["HTTPStatusCode"] == 431, res
    assert res["Error"]["Code"] == "RequestHeaderFieldsTooLargeException", res
    assert "32768 bytes" in res["Error"]["Message"], res
    assert res["ResponseMetadata"]["RequestId"], res
    # The server is fine, and the next call with a normal header succeeds.
    assert "TrainingJobSummaries" in srv.boto3().list_training_jobs()
