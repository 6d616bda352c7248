"""Dataset export jobs to ``s3://`` against a real S3 no one here wrote: moto's server (``moto_server`` of the pinned
``moto[server]``), started by these tests on a free loopback port, reached through ``INTERLOG_S3_ENDPOINT_URL``.

* an export job to S3 whose object, read back with boto3, is byte for byte the file export of the same dataset; large
  enough to go up as a multipart upload (small parts: ``INTERLOG_S3_PART_SIZE``, moto's ``S3_UPLOAD_PART_MIN_SIZE``);
* a bucket that does not exist, denied access (moto enforcing IAM auth after ``INITIAL_NO_AUTH_ACTION_COUNT``
  requests) and an upload cut mid-way (a proxy that closes the connection and stops listening) each end in
  CREATE FAILED with a reason a person can act on, and no object is published;
* an existing object is never replaced; a Parquet job (tag ``interlog:format=parquet``) writes the file job's bytes.

Run on both engines (``INTERLOG_TEST_ENGINE``).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
ROLE_ARN = "arn:aws:iam::123456789012:role/interlog-export"
DATASET_ARN = "arn:aws:personalize:us-east-1:000000000000:dataset/default/INTERACTIONS"
# Credentials interlog signs S3 requests with (moto accepts any until it enforces auth).
S3_KEY_ID = "AKIDS3EXPORTTEST0001"
S3_SECRET = "s3ExportTestSecret000000000000000000000x"
# Parts of 16 KiB: the ~120 KB export below goes up as a multipart upload of several parts.
PART_SIZE = 16 * 1024
JOB_TIMEOUT = 90.0

pytestmark = pytest.mark.skipif(not MOTO_SERVER.exists(),
                                reason=f"moto_server not installed beside {sys.executable} "
                                       "(pip install -r tests/python/requirements-boto3.txt)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """One ``moto_server`` process on a free loopback port."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_dir / f"moto-{self.port}.log", "wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                assert self.proc.poll() is None, f"moto_server exited with {self.proc.returncode}"
                assert time.monotonic() < deadline, "moto_server did not listen within 60 s"
                time.sleep(0.1)

    def client(self, key: str = S3_KEY_ID, secret: str = S3_SECRET, url: str | None = None):
        return boto3.client("s3", endpoint_url=url or self.url, aws_access_key_id=key, aws_secret_access_key=secret,
                            region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, proxies={}, retries={"max_attempts": 1}))

    def iam(self):
        return boto3.client("iam", endpoint_url=self.url, aws_access_key_id=S3_KEY_ID,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1", config=Config(proxies={}))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto"), env={"S3_UPLOAD_PART_MIN_SIZE": "1024"})
    yield m
    m.stop()


class CuttingProxy:
    """A TCP proxy to ``target`` that, once ``cut_after`` bytes went upstream, closes every connection and stops
    listening: an upload interrupted mid-way whose retries find nobody there."""

    def __init__(self, target_port: int, cut_after: int):
        self.target_port = target_port
        self.cut_after = cut_after
        self.sent = 0
        self.cut = threading.Event()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool):
        try:
            while True:
                data = src.recv(8192)
                if not data:
                    break
                dst.sendall(data)
                if counted:
                    with self.lock:
                        self.sent += len(data)
                        over = self.sent >= self.cut_after
                    if over:
                        self.close()
                        return
        except OSError:
            pass

    def close(self):
        self.cut.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def s3_env(endpoint: str, home: Path, **extra) -> dict[str, str]:
    """The server's S3 settings: endpoint, small parts, keys from the environment, no ~/.aws."""
    return {"INTERLOG_S3_ENDPOINT_URL": endpoint, "INTERLOG_S3_PART_SIZE": str(PART_SIZE),
            "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "HOME": str(home), **extra}


def personalize(server):
    return boto3.client("personalize", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY_ID,
                        aws_secret_access_key=SECRET_ACCESS_KEY, region_name="us-east-1",
                        config=Config(proxies={}, retries={"max_attempts": 1}))


def put_events(events_client, server, n: int):
    """``n`` events in calls of 10 (about 80 bytes of CSV each)."""
    ev = events_client(server.endpoint)
    for start in range(0, n, 10):
        batch = [{"eventId": f"e{i}", "eventType": "click", "itemId": f"item-{i % 97}", "sentAt": 1_700_000_000 + i,
                  "eventValue": i / 4, "impression": [f"item-{i % 97}", "other"]} for i in range(start, min(n, start + 10))]
        ev.put_events(trackingId=server.tracking_id, userId=f"user-{start % 31}", sessionId=f"s{start}", eventList=batch)


def run_job(p, name: str, path: str, tags: list[dict] | None = None) -> dict:
    kwargs = {"jobName": name, "datasetArn": DATASET_ARN, "roleArn": ROLE_ARN,
              "jobOutput": {"s3DataDestination": {"path": path}}}
    if tags:
        kwargs["tags"] = tags
    arn = p.create_dataset_export_job(**kwargs)["datasetExportJobArn"]
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        job = p.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED"):
            return job
        assert time.monotonic() < deadline, f"export job still {job['status']} after {JOB_TIMEOUT}s: {job}"
        time.sleep(0.05)


def new_bucket(s3) -> str:
    name = f"exports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_export_job_to_s3_is_the_file_export(server_factory, moto, events_client, account_dir, tmp_path):
    server = server_factory(env=s3_env(moto.url, tmp_path))
    put_events(events_client, server, 1500)
    s3 = moto.client()
    bucket = new_bucket(s3)
    p = personalize(server)

    job = run_job(p, "to-s3", f"s3://{bucket}/exports/")
    assert job["status"] == "ACTIVE", job
    out = account_dir()
    local = run_job(p, "to-file", f"file://{out}/")
    assert local["status"] == "ACTIVE", local

    body = s3.get_object(Bucket=bucket, Key="exports/to-s3.csv")["Body"].read()
    assert body == (out / "to-file.csv").read_bytes()
    assert len(body) > 4 * PART_SIZE, f"{len(body)} bytes: too small for a multipart upload of several parts"
    assert body.count(b"\r\n") == 1501
    assert keys(s3, bucket) == ["exports/to-s3.csv"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # A prefix without its trailing '/' is still a prefix; an existing object is never replaced.
    again = run_job(p, "to-s3-2", f"s3://{bucket}/exports")
    assert again["status"] == "ACTIVE", again
    assert s3.get_object(Bucket=bucket, Key="exports/to-s3-2.csv")["Body"].read() == body
    s3.put_object(Bucket=bucket, Key="taken/job.csv", Body=b"keep me")
    taken = run_job(p, "job", f"s3://{bucket}/taken/")
    assert taken["status"] == "CREATE FAILED"
    assert taken["failureReason"] == f"s3://{bucket}/taken/job.csv already exists and is not replaced: " \
                                     "choose another job name or path", taken
    assert s3.get_object(Bucket=bucket, Key="taken/job.csv")["Body"].read() == b"keep me"


def test_a_bucket_that_does_not_exist_fails_the_job(server_factory, moto, events_client, tmp_path):
    server = server_factory(env=s3_env(moto.url, tmp_path))
    put_events(events_client, server, 20)
    job = run_job(personalize(server), "nobucket", "s3://no-such-bucket-here/exports/")
    assert job["status"] == "CREATE FAILED", job
    assert job["failureReason"] == "The bucket no-such-bucket-here does not exist", job


def test_an_invalid_s3_path_is_refused_before_a_job_exists(server_factory, moto, tmp_path):
    server = server_factory(env=s3_env(moto.url, tmp_path))
    p = personalize(server)
    with pytest.raises(ClientError) as e:
        p.create_dataset_export_job(jobName="bad", datasetArn=DATASET_ARN, roleArn=ROLE_ARN,
                                    jobOutput={"s3DataDestination": {"path": "s3://Not_A_Bucket/x/"}})
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    assert "s3://Not_A_Bucket/x/ does not name a valid bucket" in e.value.response["Error"]["Message"]
    assert p.list_dataset_export_jobs()["datasetExportJobs"] == []


def test_no_credentials_fail_the_job_with_the_reason(server_factory, moto, events_client, tmp_path):
    env = s3_env(moto.url, tmp_path)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    server = server_factory(env=env)
    job = run_job(personalize(server), "nocreds", f"s3://{new_bucket(moto.client())}/x/")
    assert job["status"] == "CREATE FAILED", job
    assert job["failureReason"].startswith("Unable to locate credentials"), job


def test_credentials_from_the_shared_credentials_file(server_factory, moto, events_client, tmp_path):
    """The aws-cli chain: no key in the environment, the profile in ~/.aws/credentials."""
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {S3_KEY_ID}\naws_secret_access_key = {S3_SECRET}\n")
    env = s3_env(moto.url, tmp_path)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    server = server_factory(env=env)
    put_events(events_client, server, 10)
    s3 = moto.client()
    bucket = new_bucket(s3)
    job = run_job(personalize(server), "fromfile", f"s3://{bucket}/")
    assert job["status"] == "ACTIVE", job
    assert s3.get_object(Bucket=bucket, Key="fromfile.csv")["Body"].read().count(b"\r\n") == 11


def test_denied_access_fails_the_job(server_factory, events_client, tmp_path):
    """moto enforcing IAM auth: a user without a policy may not write, an unknown key is refused."""
    m = Moto(tmp_path, env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        s3, iam = m.client(), m.iam()
        bucket = new_bucket(s3)  # unauthenticated action 1
        iam.create_user(UserName="no-policy")  # 2
        key = iam.create_access_key(UserName="no-policy")["AccessKey"]  # 3; auth is enforced from here on
        for name, (key_id, secret) in {"nopolicy": (key["AccessKeyId"], key["SecretAccessKey"]),
                                       "unknownkey": (S3_KEY_ID, S3_SECRET)}.items():
            home = tmp_path / name
            home.mkdir()
            env = s3_env(m.url, home, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
            server = server_factory(env=env)
            put_events(events_client, server, 10)
            job = run_job(personalize(server), name, f"s3://{bucket}/exports/")
            assert job["status"] == "CREATE FAILED", job
            assert job["failureReason"].startswith(f"Access denied writing s3://{bucket}/exports/{name}.csv"), job
            assert S3_SECRET not in job["failureReason"] and key["SecretAccessKey"] not in job["failureReason"]
            server.stop()
    finally:
        m.stop()


def test_an_interrupted_upload_fails_the_job_and_publishes_nothing(server_factory, moto, events_client, tmp_path):
    s3 = moto.client()
    bucket = new_bucket(s3)
    # Cut after three parts went up: the multipart upload has begun, its next part finds nobody.
    proxy = CuttingProxy(moto.port, cut_after=3 * PART_SIZE + 4096)
    try:
        server = server_factory(env=s3_env(proxy.url, tmp_path))
        put_events(events_client, server, 1500)
        job = run_job(personalize(server), "cut", f"s3://{bucket}/exports/")
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert job["status"] == "CREATE FAILED", job
    reason = job["failureReason"]
    assert reason.startswith(f"The upload to s3://{bucket}/exports/cut.csv was interrupted: "), reason
    assert reason.endswith("Connection refused (os error 111) (after 3 retries); nothing was published"), reason
    assert keys(s3, bucket) == []


def test_a_parquet_export_job_to_s3_is_the_file_one(server_factory, moto, events_client, account_dir, tmp_path):
    """The ``interlog:format`` tag (docs/api.md) chooses Parquet for S3 destinations too."""
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed")
    server = server_factory(env=s3_env(moto.url, tmp_path))
    put_events(events_client, server, 300)
    s3 = moto.client()
    bucket = new_bucket(s3)
    p = personalize(server)
    tags = [{"tagKey": "interlog:format", "tagValue": "parquet"}]
    assert run_job(p, "pq", f"s3://{bucket}/out/", tags=tags)["status"] == "ACTIVE"
    out = account_dir()
    assert run_job(p, "pq-file", f"file://{out}/", tags=tags)["status"] == "ACTIVE"
    body = s3.get_object(Bucket=bucket, Key="out/pq.parquet")["Body"].read()
    assert body == (out / "pq-file.parquet").read_bytes()
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == 300
    assert table.column("TIMESTAMP").to_pylist()[:2] == [1_700_000_000, 1_700_000_001]
