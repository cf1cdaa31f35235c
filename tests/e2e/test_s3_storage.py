"""s3:// storage end to end: channels (S3Prefix and ManifestFile), artifacts and errors, through
the real binary and boto3, on file:// and on a real s3rver (the `storage` fixture), plus what
only S3 has (a missing bucket, a refused access key, credentials handed to the job)."""
import io
import json
import os
import re
import tarfile

import pytest

import s3util
from conftest import TEST_CONFIG, Server, job_request, logs_of, wait_status

# Lists the channel's files with their contents, then copies them into the model.
LIST_SCRIPT = (
    'cd "$SM_CHANNEL_TRAIN" && find . -type f | LC_ALL=C sort | while read -r f; do '
    'echo "file $f: $(cat "$f")"; done; cp -r . /opt/ml/model/; echo out > /opt/ml/output/data/o.txt')

ODD_KEYS = {"a.csv": b"1", "dir/b c.csv": b"2", "dir/d+e.csv": b"3", "dir/\u00e9t\u00e9.csv": b"4"}


def put_files(storage, uri, files):
    for key, data in files.items():
        storage.put_bytes(uri.rstrip("/") + "/" + key, data)


def channel(uri, data_type="S3Prefix", distribution="FullyReplicated"):
    return [{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": data_type, "S3Uri": uri, "S3DataDistributionType": distribution}}}]


def tar_names(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return sorted(n for n in t.getnames() if n != ".")


def test_channels_and_artifacts(server, sm, storage):
    put_files(storage, storage.uri("data"), ODD_KEYS)
    req = job_request("chan", "/unused", LIST_SCRIPT, InputDataConfig=channel(storage.uri("data")))
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    sm.create_training_job(**req)
    d = wait_status(sm, "chan")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "chan")
    for key, data in ODD_KEYS.items():
        assert f"file ./{key}: {data.decode()}" in logs, logs
    model_uri = storage.uri("out/chan/output/model.tar.gz")
    assert d["ModelArtifacts"]["S3ModelArtifacts"] == model_uri
    names = tar_names(storage.get_bytes(model_uri))
    assert [n.lstrip("./") for n in names if n.endswith(".csv")] == sorted(ODD_KEYS)
    assert tar_names(storage.get_bytes(storage.uri("out/chan/output/output.tar.gz"))) == ["o.txt"]


def test_uncompressed_output_lands_as_objects(server, sm, storage):
    from test_api import raw_call  # Debian's boto3 predates OutputDataConfig.CompressionType
    put_files(storage, storage.uri("data"), {"x/y.txt": b"why"})
    req = job_request("flat", "/unused", LIST_SCRIPT, InputDataConfig=channel(storage.uri("data")))
    req["OutputDataConfig"] = {"S3OutputPath": storage.uri("out"), "CompressionType": "NONE"}
    status, body = raw_call(server, "CreateTrainingJob", req)
    assert status == 200, body
    d = wait_status(sm, "flat")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert storage.keys(storage.uri("out/flat/output")) == ["data/o.txt", "model/x/y.txt"]
    assert storage.get_bytes(storage.uri("out/flat/output/model/x/y.txt")) == b"why"


def test_manifest_channel_gets_exactly_the_listed_objects(server, sm, storage):
    put_files(storage, storage.uri("pool"), {"one.csv": b"1", "sub/two.csv": b"2", "not.csv": b"n"})
    manifest = [{"prefix": storage.uri("pool/")}, "one.csv", "sub/two.csv"]
    storage.put_bytes(storage.uri("train.manifest"), json.dumps(manifest).encode())
    req = job_request("manifest", "/unused", LIST_SCRIPT,
                      InputDataConfig=channel(storage.uri("train.manifest"), "ManifestFile"))
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    sm.create_training_job(**req)
    d = wait_status(sm, "manifest")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    logs = logs_of(server, "manifest")
    assert "file ./one.csv: 1" in logs and "file ./sub/two.csv: 2" in logs, logs
    assert "not.csv" not in logs


def test_missing_data_fails_with_the_aws_message(server, sm, storage):
    uri = storage.uri("nothing-here")
    req = job_request("nodata", "/unused", "true", InputDataConfig=channel(uri))
    req["OutputDataConfig"]["S3OutputPath"] = storage.uri("out")
    sm.create_training_job(**req)
    d = wait_status(sm, "nodata")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source.'), d


def test_missing_bucket_is_named_in_the_failure_reason(server, sm, tmp_path):
    req = job_request("nobucket", str(tmp_path), "true",
                      InputDataConfig=channel("s3://no-such-bucket-here/data"))
    sm.create_training_job(**req)
    d = wait_status(sm, "nobucket")
    assert d["TrainingJobStatus"] == "Failed"
    assert "no-such-bucket-here" in d["FailureReason"], d["FailureReason"]
    # Output to a missing bucket fails the job after training, with the bucket named.
    req = job_request("nobucketout", str(tmp_path), "true")
    req["OutputDataConfig"]["S3OutputPath"] = "s3://no-such-bucket-here/out"
    sm.create_training_job(**req)
    d = wait_status(sm, "nobucketout")
    assert d["TrainingJobStatus"] == "Failed"
    assert "no-such-bucket-here" in d["FailureReason"], d["FailureReason"]


def test_refused_access_key_reaches_the_failure_reason(tmp_path, s3rver):
    # s3rver checks the access key id (not the signature): a key it does not know is refused.
    srv = Server(str(tmp_path / "data"), config=TEST_CONFIG + "storage:\n  s3:\n    access_key_id: NOTMINE\n"
                                    "    secret_access_key: whatever\n").start()
    try:
        sm = srv.boto3()
        s3rver.client.put_object(Bucket=s3util.BUCKET, Key="refused/a.csv", Body=b"1")
        req = job_request("refused", str(tmp_path), "true",
                          InputDataConfig=channel(f"s3://{s3util.BUCKET}/refused"))
        sm.create_training_job(**req)
        d = wait_status(sm, "refused")
        assert d["TrainingJobStatus"] == "Failed"
        reason = d["FailureReason"]
        assert "InvalidAccessKeyId" in reason or "Access Denied" in reason, reason
        assert "credentials" in reason and "server config" in reason, reason
        assert "whatever" not in reason  # never the secret
    finally:
        srv.stop()


@pytest.mark.parametrize("passed", [False, True])
def test_training_process_gets_store_credentials_only_when_configured(tmp_path, s3rver, passed):
    config = TEST_CONFIG + "storage:\n  pass_credentials_to_jobs: true\n" if passed else None
    srv = Server(str(tmp_path / "data"), config=config).start()
    try:
        sm = srv.boto3()
        # The job lists the bucket itself with boto3 when it has the endpoint and keys.
        s3rver.client.put_object(Bucket=s3util.BUCKET, Key="jobsees/k.txt", Body=b"k")
        script = (
            "import os\n"
            "print('endpoint', os.environ.get('AWS_ENDPOINT_URL_S3'))\n"
            "print('has key', 'AWS_ACCESS_KEY_ID' in os.environ)\n"
            "if 'AWS_ACCESS_KEY_ID' in os.environ:\n"
            "    import boto3\n"
            "    s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3'])\n"
            "    r = s3.list_objects_v2(Bucket='%s', Prefix='jobsees/')\n"
            "    print('listed', [o['Key'] for o in r['Contents']])\n" % s3util.BUCKET)
        s3rver.client.put_object(Bucket=s3util.BUCKET, Key=f"jobscript-{passed}/s.py",
                                 Body=script.encode())
        req = job_request("creds", str(tmp_path), "/usr/bin/python3 $SM_CHANNEL_TRAIN/s.py",
                          InputDataConfig=channel(f"s3://{s3util.BUCKET}/jobscript-{passed}"))
        sm.create_training_job(**req)
        d = wait_status(sm, "creds")
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        logs = logs_of(srv, "creds")
        if passed:
            # In its own network namespace the job reaches the store at its gateway (DNAT to
            # s3rver's 127.0.0.1); without namespaces (not root) at the store's own address.
            endpoint = re.search(r"endpoint (\S+)", logs).group(1)
            assert endpoint.startswith("http://") and endpoint.endswith(f":{s3rver.port}"), logs
            if os.geteuid() == 0:
                assert endpoint != s3rver.endpoint, logs
            assert "listed ['jobsees/k.txt']" in logs, logs
        else:
            assert "endpoint None" in logs and "has key False" in logs, logs
    finally:
        srv.stop()
