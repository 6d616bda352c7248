"""Data deletion jobs end to end against the real `interlog` binary, through boto3 and aws-cli.

* CreateDataDeletionJob on a CSV of user IDs removes those users' interactions, action interactions and user records
  from every dataset of the group: export jobs before and after, row by row; other users and groups keep theirs;
* DescribeDataDeletionJob: PENDING -> IN_PROGRESS -> COMPLETED with numDeleted, or FAILED with a failureReason
  (a missing file, a bad header, an https:// source interlog cannot read); user IDs read from S3 (moto);
* ListDataDeletionJobs newest first, by group, page by page;
* a location outside the caller's folder is refused before a job exists;
* the same through aws-cli (create-data-deletion-job, describe-data-deletion-job, list-data-deletion-jobs).

Sources are `file://` paths inside the import root (the server's `--import-dir`, as for import jobs), or `s3://`.
"""

from __future__ import annotations

import json
import time
import sys
import uuid
from pathlib import Path

import pytest
from botocore.config import Config

from conftest import new_account_dir
from test_control_plane import ROLE_ARN, avro, expect_error, export_job, fld, ok, read_csv
from test_put_records import action_interaction, make_shop
from test_s3_export import MOTO_SERVER, Moto, s3_env

REGION = "us-east-1"
ACCOUNT = "000000000000"
JOB_TIMEOUT = 60.0

INTERACTIONS_FIELDS = [fld("USER_ID", "string"), fld("ITEM_ID", "string"), fld("TIMESTAMP", "long")]


def _config() -> Config:
    return Config(retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False, proxies={},
                  connect_timeout=10, read_timeout=60)


@pytest.fixture(scope="module")
def import_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("import-root")


def import_dir() -> Path:
    """A new, empty folder in the root account's part of the import root."""
    d = IMPORT_ROOT[0] / ACCOUNT / uuid.uuid4().hex[:12]
    d.mkdir(parents=True)
    return d


IMPORT_ROOT: list[Path] = []


# A server per test (each world is a dataset group, and an account may hold five), reading its sources in the
# import root.
@pytest.fixture
def server(server_factory, import_root):
    IMPORT_ROOT[:] = [import_root]
    return server_factory(args=("--import-dir", str(import_root)))


@pytest.fixture
def p(server, boto3_session):
    return boto3_session.client("personalize", endpoint_url=server.endpoint, config=_config())


@pytest.fixture
def ev(server, boto3_session):
    return boto3_session.client("personalize-events", endpoint_url=server.endpoint, config=_config())


def world(p, ev, name: str) -> dict:
    """A group with Interactions (and its tracker), Users, Items, Actions and Action_Interactions datasets, holding
    data of the users u1, u2 and u3."""
    shop = make_shop(p, name)
    schema = ok(p.create_schema(name=f"{name}-interactions", schema=avro(INTERACTIONS_FIELDS)))["schemaArn"]
    interactions = ok(p.create_dataset(name=f"{name}-interactions", schemaArn=schema, datasetGroupArn=shop.group_arn,
                                       datasetType="Interactions"))["datasetArn"]
    tracking_id = ok(p.create_event_tracker(name=f"{name}-tracker", datasetGroupArn=shop.group_arn))["trackingId"]
    for user in ("u1", "u2", "u3"):
        ok(ev.put_events(trackingId=tracking_id, userId=user, sessionId=f"s-{user}", eventList=[
            {"eventId": f"{user}-e{n}", "eventType": "click", "itemId": f"i{n}", "sentAt": 1700000000 + n}
            for n in range(2)]))
    ok(ev.put_users(datasetArn=shop.users, users=[{"userId": u} for u in ("u1", "u2", "u3")]))
    ok(ev.put_items(datasetArn=shop.items,
                    items=[{"itemId": i, "properties": json.dumps({"price": 1.5})} for i in ("i0", "i1")]))
    ok(ev.put_action_interactions(trackingId=shop.tracking_id, actionInteractions=[
        action_interaction("a1", userId=u, eventId=f"{u}-a") for u in ("u1", "u2")]))
    return {"group": shop.group_arn, "interactions": interactions, "users": shop.users, "items": shop.items,
            "action_interactions": shop.action_interactions}


def exported(p, dataset_arn: str, column: str) -> list[str]:
    """The values of one column of an export job of the dataset, in file order."""
    out = new_account_dir()
    name = f"rows-{uuid.uuid4().hex[:12]}"
    job, _ = export_job(p, dataset_arn, name, out)
    assert job["status"] == "ACTIVE", job
    header, rows = read_csv(out / f"{name}.csv")
    return [dict(zip(header, r))[column] for r in rows]


def user_file(text: str, name: str = "users.csv") -> Path:
    path = import_dir() / name
    path.write_text(text, encoding="utf-8")
    return path


def wait_deletion(p, arn: str) -> tuple[dict, list[str]]:
    """Polls DescribeDataDeletionJob until COMPLETED or FAILED; returns the job and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        job = ok(p.describe_data_deletion_job(dataDeletionJobArn=arn))["dataDeletionJob"]
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("COMPLETED", "FAILED"):
            return job, seen
        assert time.monotonic() < deadline, f"data deletion job still {job['status']}: {job}"
        time.sleep(0.02)


def create(p, group: str, name: str, location: str) -> str:
    arn = ok(p.create_data_deletion_job(jobName=name, datasetGroupArn=group, roleArn=ROLE_ARN,
                                        dataSource={"dataLocation": location}))["dataDeletionJobArn"]
    assert arn == f"arn:aws:personalize:{REGION}:{ACCOUNT}:data-deletion-job/{name}"
    return arn


def test_a_deletion_job_removes_the_users_from_every_dataset_of_the_group(p, ev):
    w = world(p, ev, "erase")
    other = world(p, ev, "keep")
    assert exported(p, w["interactions"], "USER_ID") == ["u1", "u1", "u2", "u2", "u3", "u3"]
    assert exported(p, w["users"], "USER_ID") == ["u1", "u2", "u3"]
    assert exported(p, w["action_interactions"], "USER_ID") == ["u1", "u2"]

    source = user_file("USER_ID\nu1\n\"u3\"\nnobody\n")
    arn = create(p, w["group"], "erase-u1-u3", f"file://{source}")
    job, seen = wait_deletion(p, arn)
    assert job["status"] == "COMPLETED", job
    assert set(seen) <= {"PENDING", "IN_PROGRESS", "COMPLETED"} and seen[-1] == "COMPLETED", seen
    # 4 interactions, 1 action interaction and 2 user records.
    assert job["numDeleted"] == 7, job
    assert job["jobName"] == "erase-u1-u3" and job["datasetGroupArn"] == w["group"] and job["roleArn"] == ROLE_ARN
    assert job["dataSource"] == {"dataLocation": f"file://{source}"}
    assert "failureReason" not in job
    assert job["lastUpdatedDateTime"] >= job["creationDateTime"]

    assert exported(p, w["interactions"], "USER_ID") == ["u2", "u2"]
    assert exported(p, w["users"], "USER_ID") == ["u2"]
    assert exported(p, w["action_interactions"], "USER_ID") == ["u2"]
    assert exported(p, w["items"], "ITEM_ID") == ["i0", "i1"], "items belong to no user"
    assert exported(p, other["interactions"], "USER_ID") == ["u1", "u1", "u2", "u2", "u3", "u3"], "another group"
    assert exported(p, other["users"], "USER_ID") == ["u1", "u2", "u3"]

    # Listing: newest first, by group, page by page.
    second = create(p, w["group"], "erase-again", f"file://{source}")
    again, _ = wait_deletion(p, second)
    assert (again["status"], again["numDeleted"]) == ("COMPLETED", 0), again
    listed = ok(p.list_data_deletion_jobs(datasetGroupArn=w["group"]))["dataDeletionJobs"]
    assert [j["dataDeletionJobArn"] for j in listed] == [second, arn]
    assert set(listed[0]) == {"dataDeletionJobArn", "datasetGroupArn", "jobName", "status", "creationDateTime",
                              "lastUpdatedDateTime"}, listed[0]
    first_page = ok(p.list_data_deletion_jobs(datasetGroupArn=w["group"], maxResults=1))
    assert [j["dataDeletionJobArn"] for j in first_page["dataDeletionJobs"]] == [second]
    rest = ok(p.list_data_deletion_jobs(datasetGroupArn=w["group"], maxResults=1, nextToken=first_page["nextToken"]))
    assert [j["dataDeletionJobArn"] for j in rest["dataDeletionJobs"]] == [arn] and "nextToken" not in rest
    assert not ok(p.list_data_deletion_jobs(datasetGroupArn=other["group"]))["dataDeletionJobs"]
    everything = [j["dataDeletionJobArn"] for j in ok(p.list_data_deletion_jobs())["dataDeletionJobs"]]
    assert everything[:2] == [second, arn], everything
    expect_error("ResourceAlreadyExistsException", create, "erase-u1-u3", p=p, group=w["group"],
                 name="erase-u1-u3", location=f"file://{source}")
    expect_error("ResourceNotFoundException", p.describe_data_deletion_job, "data-deletion-job/none",
                 dataDeletionJobArn=f"arn:aws:personalize:{REGION}:{ACCOUNT}:data-deletion-job/none")


@pytest.mark.parametrize("case, text, reason", [
    ("missing", None, "'{dir}/absent.csv' does not exist"),
    ("header", "ITEM_ID\nu1\n", "users.csv, line 1: the header is 'ITEM_ID'; it must be USER_ID"),
    ("columns", "USER_ID\nu1\nu2,extra\n", "users.csv, line 3: 2 columns"),
])
def test_a_file_that_cannot_be_used_fails_the_job_with_its_reason(p, ev, case, text, reason):
    w = world(p, ev, f"fail-{case}")
    if text is None:
        d = import_dir()
        location = f"file://{d}/absent.csv"
        reason = reason.format(dir=d.name)
    else:
        location = f"file://{user_file(text)}"
    job, seen = wait_deletion(p, create(p, w["group"], f"fail-{case}", location))
    assert job["status"] == "FAILED" and seen[-1] == "FAILED", job
    assert reason in job["failureReason"], job["failureReason"]
    assert "numDeleted" not in job
    listed = ok(p.list_data_deletion_jobs(datasetGroupArn=w["group"]))["dataDeletionJobs"]
    assert listed[0]["failureReason"] == job["failureReason"]
    assert exported(p, w["interactions"], "USER_ID") == ["u1", "u1", "u2", "u2", "u3", "u3"], "nothing was deleted"


def test_sources_interlog_cannot_read_are_refused_or_fail(p, ev, tmp_path, server_factory, boto3_session):
    # A server without --import-dir takes no file:// source at all.
    bare = boto3_session.client("personalize", endpoint_url=server_factory().endpoint, config=_config())
    ids = user_file("USER_ID\nu1\n")
    expect_error("InvalidInputException", create, "interlog serve --import-dir DIR", p=bare,
                 group=ok(bare.create_dataset_group(name="bare"))["datasetGroupArn"], name="no-root",
                 location=f"file://{ids}")
    w = world(p, ev, "sources")
    outside = tmp_path / "users.csv"
    outside.write_text("USER_ID\nu1\n")
    expect_error("InvalidInputException", create, "outside this account's folder", p=p, group=w["group"],
                 name="outside", location=f"file://{outside}")
    expect_error("InvalidInputException", create, "dataSource.dataLocation", p=p, group=w["group"], name="ftp",
                 location="ftp://bucket/users.csv")
    expect_error("InvalidInputException", create, "dataSource.dataLocation", p=p, group=w["group"],
                 name="no-bucket", location="s3://")
    job, _ = wait_deletion(p, create(p, w["group"], "from-http", "https://example.com/users.csv"))
    assert job["status"] == "FAILED" and "https://example.com/users.csv is neither" in job["failureReason"], job
    expect_error("ResourceNotFoundException", create, "dataset-group/none", p=p, name="no-group",
                 group=f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset-group/none", location="s3://b/u.csv")
    assert not [j for j in ok(p.list_data_deletion_jobs(datasetGroupArn=w["group"]))["dataDeletionJobs"]
                if j["jobName"] in ("outside", "ftp", "no-bucket")], "a refused job is never created"


@pytest.mark.skipif(not MOTO_SERVER.exists(), reason=f"moto_server not installed beside {sys.executable}")
def test_user_ids_are_read_from_s3(server_factory, boto3_session, tmp_path, tmp_path_factory):
    """An s3:// key, then a prefix of two objects, on moto's S3; a missing bucket and an empty prefix fail the job."""
    moto = Moto(tmp_path_factory.mktemp("moto-deletion"))
    try:
        server = server_factory(env=s3_env(moto.url, tmp_path))
        p = boto3_session.client("personalize", endpoint_url=server.endpoint, config=_config())
        ev = boto3_session.client("personalize-events", endpoint_url=server.endpoint, config=_config())
        w = world(p, ev, "s3-users")
        s3 = moto.client()
        s3.create_bucket(Bucket="deletions")
        s3.put_object(Bucket="deletions", Key="one/users.csv", Body=b"USER_ID\r\nu1\r\n")
        s3.put_object(Bucket="deletions", Key="two/a.csv", Body=b"USER_ID\nu2\n")
        s3.put_object(Bucket="deletions", Key="two/b.csv", Body=b"USER_ID\nu3\n\nu9,x\n")

        job, _ = wait_deletion(p, create(p, w["group"], "s3-key", "s3://deletions/one/users.csv"))
        assert job["status"] == "COMPLETED", job
        assert exported(p, w["interactions"], "USER_ID") == ["u2", "u2", "u3", "u3"]

        job, _ = wait_deletion(p, create(p, w["group"], "s3-prefix", "s3://deletions/two/"))
        assert job["status"] == "FAILED", job
        assert job["failureReason"] == "s3://deletions/two/b.csv, line 4: 2 columns; the file has one column, USER_ID"
        assert exported(p, w["interactions"], "USER_ID") == ["u2", "u2", "u3", "u3"], "a failed job deletes nothing"
        s3.put_object(Bucket="deletions", Key="two/b.csv", Body=b"USER_ID\nu3\n")
        job, _ = wait_deletion(p, create(p, w["group"], "s3-prefix-again", "s3://deletions/two/"))
        assert job["status"] == "COMPLETED", job
        assert exported(p, w["interactions"], "USER_ID") == []

        job, _ = wait_deletion(p, create(p, w["group"], "s3-empty", "s3://deletions/nothing-here/"))
        assert job["status"] == "FAILED" and job["failureReason"] == "No object of user IDs is at s3://deletions/nothing-here/", job
        job, _ = wait_deletion(p, create(p, w["group"], "s3-no-bucket", "s3://no-such-bucket/users.csv"))
        assert job["status"] == "FAILED" and "no-such-bucket" in job["failureReason"], job
    finally:
        moto.stop()


def test_a_finished_deletion_job_goes_with_its_group(p):
    group = ok(p.create_dataset_group(name="short-lived"))["datasetGroupArn"]
    source = user_file("USER_ID\nu1\n")
    arn = create(p, group, "short-lived-job", f"file://{source}")
    job, _ = wait_deletion(p, arn)
    assert (job["status"], job["numDeleted"]) == ("COMPLETED", 0), job
    ok(p.delete_dataset_group(datasetGroupArn=group))
    expect_error("ResourceNotFoundException", p.describe_data_deletion_job, dataDeletionJobArn=arn)


def test_aws_cli_runs_a_deletion_job(server, p, ev, aws):
    w = world(p, ev, "cli")
    source = user_file("USER_ID\nu2\n")
    endpoint = ("--endpoint-url", server.endpoint)
    created = json.loads(aws("personalize", "create-data-deletion-job", *endpoint, "--job-name", "cli-erase",
                             "--dataset-group-arn", w["group"], "--role-arn", ROLE_ARN,
                             "--data-source", f"dataLocation=file://{source}").stdout)
    arn = created["dataDeletionJobArn"]
    wait_deletion(p, arn)
    described = json.loads(aws("personalize", "describe-data-deletion-job", *endpoint,
                               "--data-deletion-job-arn", arn).stdout)["dataDeletionJob"]
    assert (described["status"], described["numDeleted"]) == ("COMPLETED", 4), described
    listed = json.loads(aws("personalize", "list-data-deletion-jobs", *endpoint,
                            "--dataset-group-arn", w["group"]).stdout)["dataDeletionJobs"]
    assert [j["jobName"] for j in listed] == ["cli-erase"]
    assert exported(p, w["interactions"], "USER_ID") == ["u1", "u1", "u3", "u3"]
    assert exported(p, w["users"], "USER_ID") == ["u1", "u3"]
    assert exported(p, w["action_interactions"], "USER_ID") == ["u1"]
    failed = aws("personalize", "create-data-deletion-job", *endpoint, "--job-name", "cli-bad",
                 "--dataset-group-arn", w["group"], "--role-arn", ROLE_ARN,
                 "--data-source", "dataLocation=file:///etc/passwd", check=False)
    assert failed.returncode != 0 and "InvalidInputException" in failed.stderr, failed.stderr
