"""SigV4 authentication of the API, with raw HTTP requests signed by botocore's own signer."""

import datetime
import http.client
import json
import os
import shutil
import stat
import subprocess
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import trainyard_bin

UTC = datetime.timezone.utc
LIST_BODY = b'{"MaxResults": 5}'


class _TimedSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth that signs as of a chosen moment (botocore reads the clock itself)."""

    def __init__(self, credentials, service, region, when):
        super().__init__(credentials, service, region)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime(botocore.auth.SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)


def sign(server, body=LIST_BODY, target="SageMaker.ListTrainingJobs", key=None, secret=None,
         service="sagemaker", region=None, when=None):
    """Returns the headers botocore would send for this request."""
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=server.url + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    creds = botocore.credentials.Credentials(key or server.creds["aws_access_key_id"],
                                             secret or server.creds["aws_secret_access_key"])
    when = when or datetime.datetime.now(UTC).replace(tzinfo=None)
    _TimedSigV4Auth(creds, service, region or server.region, when).add_auth(req)
    return dict(req.headers.items())


def send(server, headers, body=LIST_BODY, method="POST", path="/"):
    u = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        text = res.read().decode()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, text
    finally:
        conn.close()


def assert_aws_error(result, error_type, status=400):
    code, headers, text = result
    body = json.loads(text)
    assert body["__type"] == error_type, body
    assert isinstance(body["message"], str) and body["message"], body
    assert code == status, (code, body)
    assert headers.get("x-amzn-requestid"), headers
    assert headers.get("x-amzn-errortype", "").split(":")[0] == error_type, headers
    assert headers.get("content-type", "").startswith("application/x-amz-json-1.1"), headers
    return body["message"]


def test_signed_request_is_served(server):
    code, headers, text = send(server, sign(server))
    assert code == 200, text
    assert json.loads(text) == {"TrainingJobSummaries": []}
    assert headers.get("x-amzn-requestid")
    assert "x-amzn-errortype" not in headers


def test_missing_authorization(server):
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": "SageMaker.ListTrainingJobs"}
    result = send(server, headers)
    assert result[0] in (400, 403)
    msg = assert_aws_error(result, "MissingAuthenticationTokenException", status=result[0])
    assert "Authentication Token" in msg


def test_unknown_access_key(server):
    headers = sign(server, key="AKIAUNKNOWNKEY000000", secret="whatever")
    msg = assert_aws_error(send(server, headers), "UnrecognizedClientException")
    assert msg == "The security token included in the request is invalid."


def test_wrong_secret(server):
    headers = sign(server, secret=server.creds["aws_secret_access_key"] + "x")
    msg = assert_aws_error(send(server, headers), "InvalidSignatureException")
    assert msg.startswith("The request signature we calculated does not match"), msg


def test_tampered_body_and_headers(server):
    headers = sign(server, body=b'{"MaxResults": 5}')
    msg = assert_aws_error(send(server, headers, body=b'{"MaxResults": 6}'),
                           "InvalidSignatureException")
    assert msg.startswith("The request signature we calculated does not match"), msg
    # A signed header changed after signing: the target.
    headers = sign(server, body=b'{"Resource": "TrainingJob"}', target="SageMaker.Search")
    headers["X-Amz-Target"] = "SageMaker.ListTrainingJobs"
    assert_aws_error(send(server, headers, body=b'{"Resource": "TrainingJob"}'),
                     "InvalidSignatureException")
    # A mangled signature.
    headers = sign(server)
    headers["Authorization"] = headers["Authorization"][:-4] + "0000"
    assert_aws_error(send(server, headers), "InvalidSignatureException")


def test_expired_signature(server):
    when = datetime.datetime.now(UTC).replace(tzinfo=None) - datetime.timedelta(minutes=6)
    msg = assert_aws_error(send(server, sign(server, when=when)), "InvalidSignatureException")
    assert msg.startswith("Signature expired"), msg
    assert when.strftime("%Y%m%dT%H%M%SZ") in msg
    # Within the 5-minute window it is fine.
    when = datetime.datetime.now(UTC).replace(tzinfo=None) - datetime.timedelta(minutes=4)
    assert send(server, sign(server, when=when))[0] == 200
    # Too far in the future is refused as well.
    when = datetime.datetime.now(UTC).replace(tzinfo=None) + datetime.timedelta(minutes=6)
    assert_aws_error(send(server, sign(server, when=when)), "InvalidSignatureException")


def test_wrong_service_scope(server):
    msg = assert_aws_error(send(server, sign(server, service="logs")), "InvalidSignatureException")
    assert "'sagemaker'" in msg, msg


def test_malformed_authorization_header(server):
    headers = sign(server)
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=garbage"
    code, h, text = send(server, headers)
    body = json.loads(text)
    assert code == 400 and body["__type"] in ("IncompleteSignatureException",
                                              "InvalidSignatureException"), body
    assert h.get("x-amzn-requestid") and h.get("x-amzn-errortype") == body["__type"]


def test_credentials_file_is_private_and_has_the_profile(server):
    path = server.credentials_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = open(path).read()
    assert "[trainyard]" in text.splitlines()
    assert server.creds["aws_access_key_id"] and server.creds["aws_secret_access_key"]


def _apply_exports(lines, base):
    env = dict(base)
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = v.strip("'\"")
        elif line.startswith("unset "):
            for k in line.split()[1:]:
                env.pop(k, None)
        elif line and not line.startswith("#"):
            raise AssertionError(f"unexpected line from `trainyard env`: {line!r}")
    return env


def test_env_exports_drive_new_boto3_without_endpoint_url(server):
    res = subprocess.run([trainyard_bin(), "env", "--data-dir", server.data_dir],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base["AWS_ACCESS_KEY_ID"] = "AKIASHOULDBEUNSET000"  # `env` must unset stray keys
    base["AWS_SECRET_ACCESS_KEY"] = "nope"
    env = _apply_exports(res.stdout.splitlines(), base)
    assert env["AWS_ENDPOINT_URL"] == server.url
    assert "AWS_ACCESS_KEY_ID" not in env
    env["AWS_CONFIG_FILE"] = "/dev/null"
    python = shutil.which("python3", path=env.get("PATH"))
    assert python and os.path.realpath(python) != os.path.realpath("/usr/bin/python3"), python
    script = ("import boto3, json\n"
              "c = boto3.client('sagemaker')\n"
              "r = c.list_training_jobs()\n"
              "print(json.dumps({'n': len(r['TrainingJobSummaries']), 'url': c.meta.endpoint_url,"
              " 'v': boto3.__version__}))\n")
    out = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["n"] == 0
    assert info["url"].rstrip("/") == server.url.rstrip("/")
    assert tuple(int(x) for x in info["v"].split(".")[:2]) >= (1, 28)


def test_env_without_server_fails_clearly(tmp_path):
    res = subprocess.run([trainyard_bin(), "env", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "no running server" in res.stderr


def _sagemaker(server, key, secret, token=None):
    import boto3
    import botocore.config
    return boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        region_name=server.region).client(
            "sagemaker", endpoint_url=server.url,
            config=botocore.config.Config(retries={"max_attempts": 1}))


def _refused_token(client):
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.list_training_jobs()
    err = e.value.response["Error"]
    assert err["Code"] == "UnrecognizedClientException", err
    assert err["Message"] == "The security token included in the request is invalid.", err


def test_security_tokens_are_checked(tmp_path):
    # Issue 10 (F9): a bogus X-Amz-Security-Token on long-term keys was accepted. Now a token is
    # refused on keys without one (as AWS does), and must match where the credentials file
    # configures aws_session_token.
    from conftest import Server
    data = tmp_path / "data"
    data.mkdir()
    creds = data / "credentials"
    creds.write_text("[trainyard]\n"
                     "aws_access_key_id = AKIATYE2ELONGTERM001\n"
                     "aws_secret_access_key = long-term-secret\n"
                     "[temporary]\n"
                     "aws_access_key_id = ASIATYE2ETEMPORARY01\n"
                     "aws_secret_access_key = temporary-secret\n"
                     "aws_session_token = the/session+token==\n")
    creds.chmod(0o600)
    server = Server(str(data)).start()
    try:
        long_term = ("AKIATYE2ELONGTERM001", "long-term-secret")
        temporary = ("ASIATYE2ETEMPORARY01", "temporary-secret")
        assert "TrainingJobSummaries" in _sagemaker(server, *long_term).list_training_jobs()
        _refused_token(_sagemaker(server, *long_term, token="bogus"))
        assert "TrainingJobSummaries" in _sagemaker(
            server, *temporary, token="the/session+token==").list_training_jobs()
        _refused_token(_sagemaker(server, *temporary, token="the/session+token=="[:-1]))
        _refused_token(_sagemaker(server, *temporary))
        assert server.proc.poll() is None
    finally:
        server.stop()
