"""The Personalize control plane through boto3, end to end against the real `interlog` binary.

* every operation with a valid and an invalid input (one table);
* pagination over several pages of every listing, and tokens that were not issued for a listing;
* deletes refused while a resource is in use; the dataset-group quota; tags;
* a restart keeps every resource (and fails an export job it interrupted);
* dataset export jobs: the CSV column for column, PUT / ALL / BULK, destinations interlog cannot write to;
* two accounts that cannot see or write to each other's resources;
* CreateSchema's validation rules and PutEvents' property checking, one case per rule, each checking the error
  code and that the message names the field or key and the rule.

The same walkthrough through aws-cli is ``test_control_plane_awscli.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY, new_account_dir, signed_request

ACCOUNT = "000000000000"
REGION = "us-east-1"
ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:"
ROLE_ARN = "arn:aws:iam::123456789012:role/interlog-export"
NS = "com.amazonaws.personalize.schema"

DEFAULT_SCHEMA_ARN = ARN + "schema/default-interactions"
DEFAULT_GROUP_ARN = ARN + "dataset-group/default"
DEFAULT_DATASET_ARN = ARN + "dataset/default/INTERACTIONS"

# The second account of the cross-account test (keys file of `interlog serve --credentials-file`).
OTHER_ACCOUNT = "111122223333"
OTHER_KEY_ID = "AKIDINTERLOGPARTNER01"
OTHER_SECRET = "pArTnErSeCrEtKeY0000000000000000000000x1"
assert len(OTHER_SECRET) == 40

JOB_TIMEOUT = 30.0


# --------------------------------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------------------------------


def fld(name: str, avro_type, **attrs) -> dict:
    return {"name": name, "type": avro_type, **attrs}


def avro(fields: list[dict], name: str = "Interactions", **top) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": NS, "fields": fields, "version": "1.0", **top})


REQUIRED = [fld("USER_ID", "string"), fld("ITEM_ID", "string"), fld("TIMESTAMP", "long")]
# The schema of the issue: a categorical DEVICE (may be missing) and a numeric NUMBER_OF_RATINGS (always present).
CUSTOM_FIELDS = REQUIRED + [
    fld("EVENT_TYPE", "string"),
    fld("EVENT_VALUE", ["null", "float"]),
    fld("IMPRESSION", ["null", "string"]),
    fld("DEVICE", ["null", "string"], categorical=True),
    fld("NUMBER_OF_RATINGS", "int"),
]
CUSTOM_SCHEMA = avro(CUSTOM_FIELDS)
CUSTOM_HEADER = [f["name"] for f in CUSTOM_FIELDS]
# Only a nullable categorical DEVICE: leaves room for a 1001-character value inside the 1024-character properties.
DEVICE_ONLY_SCHEMA = avro(REQUIRED + [fld("EVENT_TYPE", "string"), fld("DEVICE", ["null", "string"], categorical=True)])


# --------------------------------------------------------------------------------------------------------------------
# Clients and helpers
# --------------------------------------------------------------------------------------------------------------------


def _session(key_id: str, secret: str, home: Path) -> boto3.session.Session:
    core = botocore.session.Session()
    core.set_config_variable("config_file", str(home / "no-config"))
    core.set_config_variable("credentials_file", str(home / "no-credentials"))
    return boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION,
                                 botocore_session=core)


def _config() -> Config:
    # One attempt: boto3 would otherwise retry LimitExceededException. No client-side parameter validation, so
    # every invalid input reaches the server.
    return Config(retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False, proxies={},
                  connect_timeout=10, read_timeout=60)


@pytest.fixture(scope="session")
def personalize(boto3_session):
    """``personalize(endpoint, session=None)`` -> a boto3 ``personalize`` client (one attempt, no param checks)."""

    def make(endpoint: str, session: boto3.session.Session | None = None):
        return (session or boto3_session).client("personalize", endpoint_url=endpoint, config=_config())

    return make


@pytest.fixture(scope="session")
def events(boto3_session):
    def make(endpoint: str, session: boto3.session.Session | None = None):
        return (session or boto3_session).client("personalize-events", endpoint_url=endpoint, config=_config())

    return make


def expect_error(code: str, call, *fragments: str, status: int = 400, **kwargs) -> str:
    """Calls ``call(**kwargs)``, asserts it fails with ``code`` and ``status`` and a message holding every fragment;
    returns the message."""
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response["Error"]
    message = error.get("Message", "")
    got_status = info.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (error["Code"], got_status) == (code, status), f"{error['Code']} ({got_status}): {message}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def ok(response: dict) -> dict:
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


@dataclass
class Pipeline:
    """A schema, a dataset group, its Interactions dataset and its event tracker."""

    name: str
    schema_arn: str
    group_arn: str
    dataset_arn: str
    tracker_arn: str
    tracking_id: str
    extra: dict = field(default_factory=dict)


def make_pipeline(p, name: str, schema: str = CUSTOM_SCHEMA, account: str = ACCOUNT) -> Pipeline:
    prefix = f"arn:aws:personalize:{REGION}:{account}:"
    schema_arn = ok(p.create_schema(name=f"{name}-schema", schema=schema))["schemaArn"]
    assert schema_arn == prefix + f"schema/{name}-schema"
    group_arn = ok(p.create_dataset_group(name=name))["datasetGroupArn"]
    assert group_arn == prefix + f"dataset-group/{name}"
    dataset_arn = ok(p.create_dataset(name=f"{name}-interactions", schemaArn=schema_arn, datasetGroupArn=group_arn,
                                      datasetType="Interactions"))["datasetArn"]
    assert dataset_arn == prefix + f"dataset/{name}/INTERACTIONS"
    tracker = ok(p.create_event_tracker(name=f"{name}-tracker", datasetGroupArn=group_arn))
    assert re.fullmatch(re.escape(prefix) + r"event-tracker/[0-9a-f]{8}", tracker["eventTrackerArn"]), tracker
    uuid.UUID(tracker["trackingId"])
    return Pipeline(name, schema_arn, group_arn, dataset_arn, tracker["eventTrackerArn"], tracker["trackingId"])


def event(event_id: str, sent_at, item: str | None = None, props: dict | None = None, event_type: str = "click",
          **members) -> dict:
    e = {"eventId": event_id, "eventType": event_type, "sentAt": sent_at, **members}
    if item is not None:
        e["itemId"] = item
    if props is not None:
        e["properties"] = props if isinstance(props, str) else json.dumps(props)
    return e


def put(ev, tracking_id: str, event_list: list[dict], user: str | None = "u1", session: str = "s1") -> dict:
    kwargs = {"trackingId": tracking_id, "sessionId": session, "eventList": event_list}
    if user is not None:
        kwargs["userId"] = user
    return ok(ev.put_events(**kwargs))


def wait_job(p, job_arn: str, timeout: float = JOB_TIMEOUT) -> tuple[dict, list[str]]:
    """Polls DescribeDatasetExportJob until ACTIVE or CREATE FAILED; returns the job and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = ok(p.describe_dataset_export_job(datasetExportJobArn=job_arn))["datasetExportJob"]
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("ACTIVE", "CREATE FAILED"):
            return job, seen
        assert time.monotonic() < deadline, f"export job still {job['status']} after {timeout}s: {job}"
        time.sleep(0.02)


def export_job(p, dataset_arn: str, name: str, out_dir: Path, mode: str | None = None, path: str | None = None,
               **extra) -> tuple[dict, list[str]]:
    kwargs = {"jobName": name, "datasetArn": dataset_arn, "roleArn": ROLE_ARN,
              "jobOutput": {"s3DataDestination": {"path": path or f"file://{out_dir}/"}}, **extra}
    if mode is not None:
        kwargs["ingestionMode"] = mode
    arn = ok(p.create_dataset_export_job(**kwargs))["datasetExportJobArn"]
    assert re.fullmatch(rf"arn:aws:personalize:{REGION}:\d{{12}}:dataset-export-job/{name}", arn), arn
    return wait_job(p, arn)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of an export; every line must end in CRLF."""
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n"), raw[-50:]
    assert b"\n" not in raw.replace(b"\r\n", b""), "a line ends in a bare LF"
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    return rows[0], rows[1:]


def exported_rows(p, dataset_arn: str, out_dir: Path) -> list[dict]:
    """Runs an export job on the dataset and returns its rows as dicts."""
    name = f"check-{uuid.uuid4().hex[:12]}"
    job, _ = export_job(p, dataset_arn, name, out_dir)
    assert job["status"] == "ACTIVE", job
    header, rows = read_csv(out_dir / f"{name}.csv")
    return [dict(zip(header, r)) for r in rows]


def list_all(p, op: str, key: str, page_size: int | None = None, **filters) -> list[dict]:
    """Every item of a listing, following nextToken by hand."""
    items, token, pages = [], None, 0
    while True:
        kwargs = dict(filters)
        if page_size is not None:
            kwargs["maxResults"] = page_size
        if token is not None:
            kwargs["nextToken"] = token
        page = ok(getattr(p, op)(**kwargs))
        pages += 1
        assert pages < 1000
        items += page[key]
        if page_size is not None:
            assert len(page[key]) <= page_size
        token = page.get("nextToken")
        if token is None:
            return items
        assert page[key], "a page with a nextToken must not be empty"


def raw_control(endpoint: str, op: str, body: dict):
    """One JSON 1.1 call without boto3, to see the wire (numbers, status) as the server wrote it."""
    return signed_request("POST", endpoint + "/", json.dumps(body).encode(),
                          headers={"X-Amz-Target": f"AmazonPersonalize.{op}",
                                   "Content-Type": "application/x-amz-json-1.1"})


# --------------------------------------------------------------------------------------------------------------------
# Module-wide resources on the shared server
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p(module_server, personalize):
    return personalize(module_server.endpoint)


@pytest.fixture(scope="module")
def ev(module_server, events):
    return events(module_server.endpoint)


@pytest.fixture(scope="module")
def world(module_server, p, ev, tmp_path_factory) -> Pipeline:
    """The custom pipeline on the shared server, with a finished export job (groups: default + world)."""
    w = make_pipeline(p, "world")
    put(ev, w.tracking_id, [event("world-1", 1700000000, "i1", {"device": "phone", "numberOfRatings": 1})])
    out = new_account_dir()
    job, _ = export_job(p, w.dataset_arn, "world-export", out)
    assert job["status"] == "ACTIVE", job
    w.extra.update(job_arn=job["datasetExportJobArn"], out=out)
    return w


@pytest.fixture(scope="module")
def device_only(p, world) -> Pipeline:
    """A second pipeline whose only metadata field is a nullable categorical DEVICE (groups: default, world, this)."""
    return make_pipeline(p, "devices", DEVICE_ONLY_SCHEMA)


@pytest.fixture
def out_dir() -> Path:
    """A new folder of the root account's part of the export root (see conftest's ``account_dir``)."""
    return new_account_dir()


# --------------------------------------------------------------------------------------------------------------------
# What a fresh server holds
# --------------------------------------------------------------------------------------------------------------------


def test_first_start_resources_are_visible_through_the_list_operations(server, personalize):
    p = personalize(server.endpoint)
    assert [(s["name"], s["schemaArn"]) for s in ok(p.list_schemas())["schemas"]] == \
        [("default-interactions", DEFAULT_SCHEMA_ARN)]
    groups = ok(p.list_dataset_groups())["datasetGroups"]
    assert [(g["name"], g["datasetGroupArn"], g["status"]) for g in groups] == \
        [("default", DEFAULT_GROUP_ARN, "ACTIVE")]
    assert server.dataset_group_arn == DEFAULT_GROUP_ARN
    datasets = ok(p.list_datasets())["datasets"]
    assert [(d["name"], d["datasetArn"], d["datasetType"], d["status"]) for d in datasets] == \
        [("default-interactions", DEFAULT_DATASET_ARN, "Interactions", "ACTIVE")]
    trackers = ok(p.list_event_trackers())["eventTrackers"]
    assert [(t["name"], t["status"]) for t in trackers] == [("default-tracker", "ACTIVE")]
    assert re.fullmatch(re.escape(ARN) + r"event-tracker/[0-9a-f]{8}", trackers[0]["eventTrackerArn"])
    assert ok(p.list_dataset_export_jobs())["datasetExportJobs"] == []

    tracker = ok(p.describe_event_tracker(eventTrackerArn=trackers[0]["eventTrackerArn"]))["eventTracker"]
    assert tracker["trackingId"] == server.tracking_id
    assert (tracker["accountId"], tracker["datasetGroupArn"]) == (ACCOUNT, DEFAULT_GROUP_ARN)
    dataset = ok(p.describe_dataset(datasetArn=DEFAULT_DATASET_ARN))["dataset"]
    assert (dataset["schemaArn"], dataset["datasetGroupArn"]) == (DEFAULT_SCHEMA_ARN, DEFAULT_GROUP_ARN)
    schema = json.loads(ok(p.describe_schema(schemaArn=DEFAULT_SCHEMA_ARN))["schema"]["schema"])
    assert [f["name"] for f in schema["fields"]][:3] == ["USER_ID", "ITEM_ID", "TIMESTAMP"]
    assert not [f for f in schema["fields"] if f["name"] not in
                {"USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID",
                 "EVENT_ATTRIBUTION_SOURCE"}], "the default schema has no metadata fields"


def test_timestamps_are_epoch_seconds_with_milliseconds_on_the_wire(module_server):
    before = time.time()
    for op, body, key in [
        ("DescribeDatasetGroup", {"datasetGroupArn": DEFAULT_GROUP_ARN}, "datasetGroup"),
        ("DescribeSchema", {"schemaArn": DEFAULT_SCHEMA_ARN}, "schema"),
        ("DescribeDataset", {"datasetArn": DEFAULT_DATASET_ARN}, "dataset"),
    ]:
        r = raw_control(module_server.endpoint, op, body)
        assert r.status == 200 and r.headers["content-type"].startswith("application/x-amz-json-1.1"), r
        obj = json.loads(r.body, parse_float=Decimal)[key]
        for member in ("creationDateTime", "lastUpdatedDateTime"):
            value = obj[member]
            assert isinstance(value, (int, Decimal)), f"{op}.{member} is {value!r}, not a JSON number"
            assert -Decimal(value).as_tuple().exponent <= 3, f"{op}.{member} = {value} has more than milliseconds"
            assert before - 600 < float(value) <= time.time() + 1, (op, member, value)


# --------------------------------------------------------------------------------------------------------------------
# Every operation: a valid and an invalid input
# --------------------------------------------------------------------------------------------------------------------


def _temp_group(p, name: str) -> str:
    return ok(p.create_dataset_group(name=name))["datasetGroupArn"]


def _drop(p, *, tracker=None, dataset=None, group=None, schema=None):
    """Best-effort cleanup in dependency order (keeps the shared server under the dataset-group quota)."""
    for call, member, arn in [(p.delete_event_tracker, "eventTrackerArn", tracker),
                              (p.delete_dataset, "datasetArn", dataset),
                              (p.delete_dataset_group, "datasetGroupArn", group),
                              (p.delete_schema, "schemaArn", schema)]:
        if arn is not None:
            try:
                call(**{member: arn})
            except ClientError:
                pass


def valid_create_schema(p, ev, w, tmp):
    arn = ok(p.create_schema(name="valid-schema", schema=DEVICE_ONLY_SCHEMA))["schemaArn"]
    assert arn == ARN + "schema/valid-schema"
    described = ok(p.describe_schema(schemaArn=arn))["schema"]
    assert (described["name"], described["schema"]) == ("valid-schema", DEVICE_ONLY_SCHEMA)
    assert "domain" not in described
    arn = ok(p.create_schema(name="valid-schema-ecommerce", domain="ECOMMERCE",
                             schema=avro(REQUIRED + [fld("EVENT_TYPE", "string")])))["schemaArn"]
    assert ok(p.describe_schema(schemaArn=arn))["schema"]["domain"] == "ECOMMERCE"


def valid_describe_schema(p, ev, w, tmp):
    s = ok(p.describe_schema(schemaArn=w.schema_arn))["schema"]
    assert (s["name"], s["schemaArn"], s["schema"]) == ("world-schema", w.schema_arn, CUSTOM_SCHEMA)
    assert isinstance(s["creationDateTime"], datetime) and s["lastUpdatedDateTime"] >= s["creationDateTime"]


def valid_list_schemas(p, ev, w, tmp):
    arns = [s["schemaArn"] for s in ok(p.list_schemas(maxResults=100))["schemas"]]
    assert arns.index(DEFAULT_SCHEMA_ARN) < arns.index(w.schema_arn), "creation order"


def valid_delete_schema(p, ev, w, tmp):
    arn = ok(p.create_schema(name="doomed-schema", schema=CUSTOM_SCHEMA))["schemaArn"]
    assert ok(p.delete_schema(schemaArn=arn)) == {}
    expect_error("ResourceNotFoundException", p.describe_schema, "doomed-schema", schemaArn=arn)
    assert arn not in [s["schemaArn"] for s in ok(p.list_schemas())["schemas"]]


def valid_create_dataset_group(p, ev, w, tmp):
    r = ok(p.create_dataset_group(name="valid-group", domain="VIDEO_ON_DEMAND",
                                  tags=[{"tagKey": "team", "tagValue": "recs"}]))
    try:
        assert r == {"datasetGroupArn": ARN + "dataset-group/valid-group", "domain": "VIDEO_ON_DEMAND"}
        g = ok(p.describe_dataset_group(datasetGroupArn=r["datasetGroupArn"]))["datasetGroup"]
        assert (g["name"], g["status"], g["domain"]) == ("valid-group", "ACTIVE", "VIDEO_ON_DEMAND")
        assert ok(p.list_tags_for_resource(resourceArn=r["datasetGroupArn"]))["tags"] == \
            [{"tagKey": "team", "tagValue": "recs"}]
    finally:
        _drop(p, group=r["datasetGroupArn"])


def valid_describe_dataset_group(p, ev, w, tmp):
    g = ok(p.describe_dataset_group(datasetGroupArn=w.group_arn))["datasetGroup"]
    assert (g["name"], g["datasetGroupArn"], g["status"]) == ("world", w.group_arn, "ACTIVE")
    assert "domain" not in g


def valid_list_dataset_groups(p, ev, w, tmp):
    arns = [g["datasetGroupArn"] for g in ok(p.list_dataset_groups())["datasetGroups"]]
    assert arns[:2] == [DEFAULT_GROUP_ARN, w.group_arn]


def valid_delete_dataset_group(p, ev, w, tmp):
    arn = _temp_group(p, "doomed-group")
    assert ok(p.delete_dataset_group(datasetGroupArn=arn)) == {}
    expect_error("ResourceNotFoundException", p.describe_dataset_group, "doomed-group", datasetGroupArn=arn)


def valid_create_dataset(p, ev, w, tmp):
    group = _temp_group(p, "valid-dataset-group")
    schema = ok(p.create_schema(name="valid-users", schema=avro([fld("USER_ID", "string"), fld("AGE", "int")],
                                                                   name="Users")))["schemaArn"]
    dataset = None
    try:
        dataset = ok(p.create_dataset(name="valid-users", schemaArn=schema, datasetGroupArn=group,
                                      datasetType="users"))["datasetArn"]
        assert dataset == ARN + "dataset/valid-dataset-group/USERS"
        d = ok(p.describe_dataset(datasetArn=dataset))["dataset"]
        assert (d["name"], d["datasetType"], d["schemaArn"], d["datasetGroupArn"], d["status"]) == \
            ("valid-users", "Users", schema, group, "ACTIVE")
    finally:
        _drop(p, dataset=dataset, group=group, schema=schema)


def valid_describe_dataset(p, ev, w, tmp):
    d = ok(p.describe_dataset(datasetArn=w.dataset_arn))["dataset"]
    assert (d["name"], d["datasetType"], d["schemaArn"], d["datasetGroupArn"], d["status"]) == \
        ("world-interactions", "Interactions", w.schema_arn, w.group_arn, "ACTIVE")


def valid_list_datasets(p, ev, w, tmp):
    ds = ok(p.list_datasets(datasetGroupArn=w.group_arn))["datasets"]
    assert [(d["datasetArn"], d["datasetType"]) for d in ds] == [(w.dataset_arn, "Interactions")]


def valid_delete_dataset(p, ev, w, tmp):
    group = _temp_group(p, "doomed-dataset-group")
    try:
        arn = ok(p.create_dataset(name="doomed", schemaArn=w.schema_arn, datasetGroupArn=group,
                                  datasetType="Interactions"))["datasetArn"]
        assert ok(p.delete_dataset(datasetArn=arn)) == {}
        expect_error("ResourceNotFoundException", p.describe_dataset, "INTERACTIONS", datasetArn=arn)
        assert ok(p.list_datasets(datasetGroupArn=group))["datasets"] == []
    finally:
        _drop(p, group=group)


def valid_create_event_tracker(p, ev, w, tmp):
    group = _temp_group(p, "valid-tracker-group")
    tracker = None
    try:
        r = ok(p.create_event_tracker(name="valid-tracker", datasetGroupArn=group))
        tracker = r["eventTrackerArn"]
        assert re.fullmatch(re.escape(ARN) + r"event-tracker/[0-9a-f]{8}", tracker)
        t = ok(p.describe_event_tracker(eventTrackerArn=tracker))["eventTracker"]
        assert (t["name"], t["trackingId"], t["datasetGroupArn"], t["status"]) == \
            ("valid-tracker", r["trackingId"], group, "ACTIVE")
    finally:
        _drop(p, tracker=tracker, group=group)


def valid_describe_event_tracker(p, ev, w, tmp):
    t = ok(p.describe_event_tracker(eventTrackerArn=w.tracker_arn))["eventTracker"]
    assert t == {"name": "world-tracker", "eventTrackerArn": w.tracker_arn, "accountId": ACCOUNT,
                 "trackingId": w.tracking_id, "datasetGroupArn": w.group_arn, "status": "ACTIVE",
                 "creationDateTime": t["creationDateTime"], "lastUpdatedDateTime": t["lastUpdatedDateTime"]}


def valid_list_event_trackers(p, ev, w, tmp):
    ts = ok(p.list_event_trackers(datasetGroupArn=w.group_arn))["eventTrackers"]
    assert [(t["name"], t["eventTrackerArn"], t["status"]) for t in ts] == [("world-tracker", w.tracker_arn, "ACTIVE")]
    assert "trackingId" not in ts[0] and "accountId" not in ts[0], "summaries omit the tracking ID"


def valid_delete_event_tracker(p, ev, w, tmp):
    group = _temp_group(p, "doomed-tracker-group")
    try:
        dataset = ok(p.create_dataset(name="kept", schemaArn=w.schema_arn, datasetGroupArn=group,
                                      datasetType="Interactions"))["datasetArn"]
        r = ok(p.create_event_tracker(name="doomed-tracker", datasetGroupArn=group))
        assert ok(p.delete_event_tracker(eventTrackerArn=r["eventTrackerArn"])) == {}
        expect_error("ResourceNotFoundException", p.describe_event_tracker, eventTrackerArn=r["eventTrackerArn"])
        # The dataset stays; the tracking ID stops working.
        assert ok(p.describe_dataset(datasetArn=dataset))["dataset"]["status"] == "ACTIVE"
        expect_error("InvalidInputException", ev.put_events, r["trackingId"], trackingId=r["trackingId"],
                     sessionId="s", eventList=[event("gone-1", 1700000000, "i", {"numberOfRatings": 1})])
    finally:
        _drop(p, dataset=ARN + "dataset/doomed-tracker-group/INTERACTIONS", group=group)


def valid_create_dataset_export_job(p, ev, w, tmp):
    job, seen = export_job(p, w.dataset_arn, "valid-export", tmp, mode="ALL",
                           tags=[{"tagKey": "k", "tagValue": "v"}])
    assert job["status"] == "ACTIVE", job
    assert set(seen) <= {"CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"}, seen
    assert (tmp / "valid-export.csv").exists()


def valid_describe_dataset_export_job(p, ev, w, tmp):
    j = ok(p.describe_dataset_export_job(datasetExportJobArn=w.extra["job_arn"]))["datasetExportJob"]
    assert (j["jobName"], j["datasetArn"], j["ingestionMode"], j["roleArn"], j["status"]) == \
        ("world-export", w.dataset_arn, "PUT", ROLE_ARN, "ACTIVE")
    assert j["jobOutput"] == {"s3DataDestination": {"path": f"file://{w.extra['out']}/"}}
    assert "failureReason" not in j
    assert j["lastUpdatedDateTime"] >= j["creationDateTime"]


def valid_list_dataset_export_jobs(p, ev, w, tmp):
    jobs = ok(p.list_dataset_export_jobs(datasetArn=w.dataset_arn))["datasetExportJobs"]
    assert jobs[0]["datasetExportJobArn"] == w.extra["job_arn"] and jobs[0]["jobName"] == "world-export"
    assert ok(p.list_dataset_export_jobs(datasetArn=DEFAULT_DATASET_ARN))["datasetExportJobs"] == []


def valid_tag_resource(p, ev, w, tmp):
    assert ok(p.tag_resource(resourceArn=w.tracker_arn, tags=[{"tagKey": "env", "tagValue": "test"},
                                                               {"tagKey": "Équipe 2", "tagValue": ""}])) == {}
    tags = ok(p.list_tags_for_resource(resourceArn=w.tracker_arn))["tags"]
    assert {t["tagKey"]: t["tagValue"] for t in tags} == {"env": "test", "Équipe 2": ""}


def valid_untag_resource(p, ev, w, tmp):
    ok(p.tag_resource(resourceArn=w.dataset_arn,
                      tags=[{"tagKey": "a", "tagValue": "1"}, {"tagKey": "b", "tagValue": "2"}]))
    assert ok(p.untag_resource(resourceArn=w.dataset_arn, tagKeys=["a", "never-set"])) == {}
    assert ok(p.list_tags_for_resource(resourceArn=w.dataset_arn))["tags"] == [{"tagKey": "b", "tagValue": "2"}]


def valid_list_tags_for_resource(p, ev, w, tmp):
    assert ok(p.list_tags_for_resource(resourceArn=w.schema_arn))["tags"] == []
    assert ok(p.list_tags_for_resource(resourceArn=w.extra["job_arn"]))["tags"] == []


VALID = {name[len("valid_"):]: fn for name, fn in list(globals().items()) if name.startswith("valid_")}
OPERATIONS = ["create_schema", "describe_schema", "list_schemas", "delete_schema", "create_dataset_group",
              "describe_dataset_group", "list_dataset_groups", "delete_dataset_group", "create_dataset",
              "describe_dataset", "list_datasets", "delete_dataset", "create_event_tracker", "describe_event_tracker",
              "list_event_trackers", "delete_event_tracker", "create_dataset_export_job", "describe_dataset_export_job",
              "list_dataset_export_jobs", "tag_resource", "untag_resource", "list_tags_for_resource"]
assert sorted(VALID) == sorted(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_valid_input(operation, p, ev, world):
    VALID[operation](p, ev, world, new_account_dir())


# (operation, arguments (a function of the world pipeline), error code, fragments the message must hold)
INVALID = [
    ("create_schema", lambda w: {"name": "x y", "schema": CUSTOM_SCHEMA}, "InvalidInputException",
     ["Value 'x y' at 'name' failed to satisfy constraint", "regular expression pattern"]),
    ("create_schema", lambda w: {"name": "world-schema", "schema": CUSTOM_SCHEMA}, "ResourceAlreadyExistsException",
     ["world-schema"]),
    ("create_schema", lambda w: {"name": "no-schema"}, "InvalidInputException", ["at 'schema'", "must not be null"]),
    ("create_schema", lambda w: {"name": "bad-domain", "schema": CUSTOM_SCHEMA, "domain": "RETAIL"},
     "InvalidInputException", ["'RETAIL' at 'domain'", "enum value set"]),
    ("describe_schema", lambda w: {"schemaArn": "schema/world-schema"}, "InvalidInputException",
     ["at 'schemaArn'", "regular expression pattern"]),
    ("describe_schema", lambda w: {"schemaArn": ARN + "schema/nope"}, "ResourceNotFoundException",
     [ARN + "schema/nope"]),
    ("list_schemas", lambda w: {"maxResults": 0}, "InvalidInputException",
     ["at 'maxResults'", "greater than or equal to 1"]),
    ("list_schemas", lambda w: {"maxResults": 101}, "InvalidInputException",
     ["at 'maxResults'", "less than or equal to 100"]),
    ("list_schemas", lambda w: {"nextToken": "not-a-token"}, "InvalidNextTokenException", ["not-a-token"]),
    ("delete_schema", lambda w: {"schemaArn": ARN + "schema/nope"}, "ResourceNotFoundException", ["schema/nope"]),
    ("delete_schema", lambda w: {"schemaArn": "arn:aws:s3:::bucket"}, "InvalidInputException", ["at 'schemaArn'"]),
    ("create_dataset_group", lambda w: {"name": "g" * 64}, "InvalidInputException",
     ["at 'name'", "length less than or equal to 63"]),
    ("create_dataset_group", lambda w: {"name": "world"}, "ResourceAlreadyExistsException", ["world"]),
    ("create_dataset_group", lambda w: {"name": "bad-role", "roleArn": "arn:aws:iam::123:role/x"},
     "InvalidInputException", ["at 'roleArn'"]),
    ("create_dataset_group", lambda w: {"name": "bad-domain", "domain": "ecommerce"}, "InvalidInputException",
     ["'ecommerce' at 'domain'", "enum value set: [ECOMMERCE, VIDEO_ON_DEMAND]"]),
    ("create_dataset_group", lambda w: {"name": "bad-tags", "tags": [{"tagKey": "a*b", "tagValue": "v"}]},
     "InvalidInputException", ["at 'tags.1.member.tagKey'"]),
    ("describe_dataset_group", lambda w: {"datasetGroupArn": ARN + "dataset-group/nope"}, "ResourceNotFoundException",
     ["dataset-group/nope"]),
    ("describe_dataset_group", lambda w: {}, "InvalidInputException", ["at 'datasetGroupArn'", "must not be null"]),
    ("list_dataset_groups", lambda w: {"maxResults": -1}, "InvalidInputException", ["at 'maxResults'"]),
    ("delete_dataset_group", lambda w: {"datasetGroupArn": "dataset-group/world"}, "InvalidInputException",
     ["at 'datasetGroupArn'"]),
    ("delete_dataset_group", lambda w: {"datasetGroupArn": ARN + "dataset-group/nope"}, "ResourceNotFoundException",
     ["dataset-group/nope"]),
    ("create_dataset", lambda w: {"name": "d", "schemaArn": w.schema_arn, "datasetGroupArn": w.group_arn,
                                  "datasetType": "Movies"}, "InvalidInputException", ["'Movies' at 'datasetType'"]),
    ("create_dataset", lambda w: {"name": "d", "schemaArn": w.schema_arn, "datasetGroupArn": w.group_arn,
                                  "datasetType": "Items"}, "InvalidInputException",
     ["'Interactions'", "datasetType must match the schema name"]),
    ("create_dataset", lambda w: {"name": "d", "schemaArn": w.schema_arn, "datasetGroupArn": w.group_arn,
                                  "datasetType": "Interactions"}, "ResourceAlreadyExistsException",
     [ARN + "dataset/world/INTERACTIONS"]),
    ("create_dataset", lambda w: {"name": "d", "schemaArn": w.schema_arn, "datasetGroupArn": ARN + "dataset-group/nope",
                                  "datasetType": "Interactions"}, "ResourceNotFoundException", ["dataset-group/nope"]),
    ("create_dataset", lambda w: {"name": "d", "schemaArn": ARN + "schema/nope", "datasetGroupArn": w.group_arn,
                                  "datasetType": "Interactions"}, "ResourceNotFoundException", ["schema/nope"]),
    ("describe_dataset", lambda w: {"datasetArn": ARN + "dataset/world/USERS"}, "ResourceNotFoundException",
     ["dataset/world/USERS"]),
    ("list_datasets", lambda w: {"datasetGroupArn": "world"}, "InvalidInputException", ["at 'datasetGroupArn'"]),
    ("delete_dataset", lambda w: {"datasetArn": ARN + "dataset/world/ITEMS"}, "ResourceNotFoundException",
     ["dataset/world/ITEMS"]),
    ("create_event_tracker", lambda w: {"name": "second", "datasetGroupArn": w.group_arn},
     "ResourceAlreadyExistsException", [ARN + "dataset-group/world", "only one"]),
    ("create_event_tracker", lambda w: {"name": "t", "datasetGroupArn": ARN + "dataset-group/nope"},
     "ResourceNotFoundException", ["dataset-group/nope"]),
    ("create_event_tracker", lambda w: {"name": "-t", "datasetGroupArn": w.group_arn}, "InvalidInputException",
     ["'-t' at 'name'"]),
    ("describe_event_tracker", lambda w: {"eventTrackerArn": ARN + "event-tracker/deadbeef"},
     "ResourceNotFoundException", ["event-tracker/deadbeef"]),
    ("list_event_trackers", lambda w: {"maxResults": 1000}, "InvalidInputException", ["at 'maxResults'"]),
    ("delete_event_tracker", lambda w: {"eventTrackerArn": "event-tracker/deadbeef"}, "InvalidInputException",
     ["at 'eventTrackerArn'"]),
    ("delete_event_tracker", lambda w: {"eventTrackerArn": ARN + "event-tracker/deadbeef"},
     "ResourceNotFoundException", ["event-tracker/deadbeef"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": w.dataset_arn,
                                             "roleArn": "arn:aws:iam::123:role/x",
                                             "jobOutput": {"s3DataDestination": {"path": "file:///tmp/x/"}}},
     "InvalidInputException", ["at 'roleArn'"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": w.dataset_arn,
                                             "jobOutput": {"s3DataDestination": {"path": "file:///tmp/x/"}}},
     "InvalidInputException", ["at 'roleArn'", "must not be null"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": w.dataset_arn, "roleArn": ROLE_ARN},
     "InvalidInputException", ["at 'jobOutput'", "must not be null"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": w.dataset_arn, "roleArn": ROLE_ARN,
                                             "ingestionMode": "put",
                                             "jobOutput": {"s3DataDestination": {"path": "file:///tmp/x/"}}},
     "InvalidInputException", ["'put' at 'ingestionMode'", "[BULK, PUT, ALL]"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": w.dataset_arn, "roleArn": ROLE_ARN,
                                             "jobOutput": {"s3DataDestination": {"path": "ftp://host/dir/"}}},
     "InvalidInputException", ["at 'jobOutput.s3DataDestination.path'"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": w.dataset_arn, "roleArn": ROLE_ARN,
                                             "jobOutput": {"s3DataDestination": {"path": "file://relative/dir/"}}},
     "InvalidInputException", ["'file://relative/dir/' at 'jobOutput.s3DataDestination.path'", "file:///"]),
    ("create_dataset_export_job", lambda w: {"jobName": "j", "datasetArn": ARN + "dataset/nope/INTERACTIONS",
                                             "roleArn": ROLE_ARN,
                                             "jobOutput": {"s3DataDestination": {"path": "file:///tmp/x/"}}},
     "ResourceNotFoundException", ["dataset/nope/INTERACTIONS"]),
    ("create_dataset_export_job", lambda w: {"jobName": "world-export", "datasetArn": w.dataset_arn,
                                             "roleArn": ROLE_ARN,
                                             "jobOutput": {"s3DataDestination": {"path": "file:///tmp/x/"}}},
     "ResourceAlreadyExistsException", ["world-export"]),
    ("describe_dataset_export_job", lambda w: {"datasetExportJobArn": ARN + "dataset-export-job/nope"},
     "ResourceNotFoundException", ["dataset-export-job/nope"]),
    ("list_dataset_export_jobs", lambda w: {"datasetArn": "arn:aws:personalize:x"}, "InvalidInputException",
     ["at 'datasetArn'"]),
    ("list_dataset_export_jobs", lambda w: {"datasetArn": ARN + "dataset/world/USERS"}, "ResourceNotFoundException",
     ["dataset/world/USERS"]),
    ("tag_resource", lambda w: {"resourceArn": ARN + "dataset-group/nope", "tags": [{"tagKey": "k", "tagValue": "v"}]},
     "ResourceNotFoundException", ["dataset-group/nope"]),
    ("tag_resource", lambda w: {"resourceArn": w.group_arn, "tags": [{"tagKey": "k", "tagValue": "semi;colon"}]},
     "InvalidInputException", ["at 'tags.1.member.tagValue'"]),
    ("tag_resource", lambda w: {"resourceArn": w.group_arn}, "InvalidInputException",
     ["at 'tags'", "must not be null"]),
    ("untag_resource", lambda w: {"resourceArn": ARN + "schema/nope", "tagKeys": ["k"]}, "ResourceNotFoundException",
     ["schema/nope"]),
    ("untag_resource", lambda w: {"resourceArn": w.group_arn, "tagKeys": [""]}, "InvalidInputException",
     ["at 'tagKeys.1.member'"]),
    ("list_tags_for_resource", lambda w: {"resourceArn": "not-an-arn"}, "InvalidInputException",
     ["'not-an-arn' at 'resourceArn'"]),
    ("list_tags_for_resource", lambda w: {"resourceArn": ARN + "event-tracker/00000000"}, "ResourceNotFoundException",
     ["event-tracker/00000000"]),
]
assert {case[0] for case in INVALID} == set(OPERATIONS), set(OPERATIONS) - {case[0] for case in INVALID}


@pytest.mark.parametrize("operation, arguments, code, fragments", INVALID,
                         ids=[f"{c[0]}-{c[2].replace('Exception', '')}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_input(operation, arguments, code, fragments, p, world):
    kwargs = arguments(world)
    before = {op: list_all(p, op, key) for op, key in LISTINGS}
    expect_error(code, getattr(p, operation), *fragments, **kwargs)
    after = {op: list_all(p, op, key) for op, key in LISTINGS}
    assert before == after, "a refused request changed nothing"


def test_unsupported_operations_are_400_unknown_operation(module_server, p):
    """AWS's JSON 1.1 front ends answer an X-Amz-Target they do not serve with 400 UnknownOperationException."""
    for call, name in [(p.list_solutions, "ListSolutions"), (p.list_recipes, "ListRecipes")]:
        expect_error("UnknownOperationException", call, name, status=400)
    for target in ["AmazonPersonalize.CreateCampaign", "AmazonPersonalize.", "AmazonPersonalizeEvents.PutEvents",
                   "PutEvents", "amazonpersonalize.ListSchemas"]:
        r = signed_request("POST", module_server.endpoint + "/", json.dumps({"name": "c"}).encode(),
                           headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
        assert r.status == 400, (target, r)
        assert r.headers["x-amzn-errortype"] == "UnknownOperationException", (target, r)
        assert r.headers["content-type"] == "application/x-amz-json-1.1", (target, r)
        assert r.json()["__type"] == "UnknownOperationException", (target, r)
        assert target in r.json()["message"] or target.split(".", 1)[-1] in r.json()["message"], (target, r)
        assert set(r.json()) == {"__type", "message"}, r
    # A rest-json path that names no operation stays a 404.
    r = signed_request("POST", module_server.endpoint + "/no-such-operation", b"{}")
    assert (r.status, r.json()["__type"]) == (404, "UnknownOperationException"), r


# --------------------------------------------------------------------------------------------------------------------
# CreateDataset: the type against the schema and the group
# --------------------------------------------------------------------------------------------------------------------

ACTION_INTERACTIONS_SCHEMA = avro([fld("USER_ID", "string"), fld("ACTION_ID", "string"), fld("TIMESTAMP", "long"),
                                   fld("EVENT_TYPE", "string")], name="ActionInteractions")
ECOMMERCE_INTERACTIONS_SCHEMA = avro(REQUIRED + [fld("EVENT_TYPE", "string")])

ACTIONS_SCHEMA = avro([fld("ACTION_ID", "string"), fld("VALUE", ["null", "long"])], name="Actions")

# (id, schema, schema domain, group domain, datasetType,
#  expected (ARN segment, described type) | fragments of the InvalidInputException)
CREATE_DATASET = [
    ("lower-case", CUSTOM_SCHEMA, None, None, "interactions", ("INTERACTIONS", "Interactions")),
    ("upper-case", CUSTOM_SCHEMA, None, None, "INTERACTIONS", ("INTERACTIONS", "Interactions")),
    ("action-interactions", ACTION_INTERACTIONS_SCHEMA, None, None, "Action_Interactions",
     ("ACTION_INTERACTIONS", "Action_Interactions")),
    ("action-interactions-lower", ACTION_INTERACTIONS_SCHEMA, None, None, "action_interactions",
     ("ACTION_INTERACTIONS", "Action_Interactions")),
    ("actions", ACTIONS_SCHEMA, None, None, "Actions", ("ACTIONS", "Actions")),
    ("domain-schema-in-domain-group", ECOMMERCE_INTERACTIONS_SCHEMA, "ECOMMERCE", "ECOMMERCE", "Interactions",
     ("INTERACTIONS", "Interactions")),
    ("schema-name-is-not-a-type", ACTION_INTERACTIONS_SCHEMA, None, None, "ActionInteractions",
     ["'ActionInteractions' at 'datasetType'"]),
    ("type-differs-from-schema", CUSTOM_SCHEMA, None, None, "Users", ["'Interactions'", "must match the schema name"]),
    ("domain-schema-in-custom-group", ECOMMERCE_INTERACTIONS_SCHEMA, "ECOMMERCE", None, "Interactions",
     ["domain", "ECOMMERCE"]),
    ("custom-schema-in-domain-group", CUSTOM_SCHEMA, None, "VIDEO_ON_DEMAND", "Interactions",
     ["domain", "VIDEO_ON_DEMAND"]),
    ("other-domain", ECOMMERCE_INTERACTIONS_SCHEMA, "ECOMMERCE", "VIDEO_ON_DEMAND", "Interactions",
     ["ECOMMERCE", "VIDEO_ON_DEMAND"]),
    ("actions-in-domain-group", ACTIONS_SCHEMA, None, "ECOMMERCE", "Actions",
     ["Actions datasets cannot be created in the Domain dataset group"]),
]


@pytest.mark.parametrize("schema, schema_domain, group_domain, dataset_type, expected",
                         [c[1:] for c in CREATE_DATASET], ids=[c[0] for c in CREATE_DATASET])
def test_create_dataset_type_and_domain(schema, schema_domain, group_domain, dataset_type, expected, p, world,
                                        request):
    name = request.node.callspec.id
    schema_arn = ok(p.create_schema(name=f"type-{name}", schema=schema,
                                    **({"domain": schema_domain} if schema_domain else {})))["schemaArn"]
    group = ok(p.create_dataset_group(name=f"type-{name}",
                                      **({"domain": group_domain} if group_domain else {})))["datasetGroupArn"]
    try:
        if isinstance(expected, tuple):
            segment, described = expected
            arn = ok(p.create_dataset(name="d", schemaArn=schema_arn, datasetGroupArn=group,
                                      datasetType=dataset_type))["datasetArn"]
            assert arn == ARN + f"dataset/type-{name}/{segment}"
            assert ok(p.describe_dataset(datasetArn=arn))["dataset"]["datasetType"] == described
            assert [d["datasetType"] for d in ok(p.list_datasets(datasetGroupArn=group))["datasets"]] == [described]
            p.delete_dataset(datasetArn=arn)
        else:
            expect_error("InvalidInputException", p.create_dataset, *expected, name="d", schemaArn=schema_arn,
                         datasetGroupArn=group, datasetType=dataset_type)
            assert ok(p.list_datasets(datasetGroupArn=group))["datasets"] == []
    finally:
        _drop(p, group=group, schema=schema_arn)


def test_arns_carry_the_region_of_the_credential_scope(server, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    west = _session(ACCESS_KEY_ID, SECRET_ACCESS_KEY, home)
    p = west.client("personalize", endpoint_url=server.endpoint, region_name="eu-west-1", config=_config())
    arn = ok(p.create_schema(name="west", schema=CUSTOM_SCHEMA))["schemaArn"]
    assert arn == f"arn:aws:personalize:eu-west-1:{ACCOUNT}:schema/west"
    assert ok(p.describe_schema(schemaArn=arn))["schema"]["name"] == "west"
    group = ok(p.create_dataset_group(name="west"))["datasetGroupArn"]
    assert group == f"arn:aws:personalize:eu-west-1:{ACCOUNT}:dataset-group/west"
    # One endpoint: the first-start resources (us-east-1) are listed too.
    assert DEFAULT_SCHEMA_ARN in [s["schemaArn"] for s in ok(p.list_schemas())["schemas"]]


# --------------------------------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------------------------------

LISTINGS = [("list_schemas", "schemas"), ("list_dataset_groups", "datasetGroups"), ("list_datasets", "datasets"),
            ("list_event_trackers", "eventTrackers"), ("list_dataset_export_jobs", "datasetExportJobs")]
ARN_KEYS = {"schemas": "schemaArn", "datasetGroups": "datasetGroupArn", "datasets": "datasetArn",
            "eventTrackers": "eventTrackerArn", "datasetExportJobs": "datasetExportJobArn"}


def test_pages_follow_creation_order_and_the_last_page_has_no_token(server, personalize):
    p = personalize(server.endpoint)
    created = [ok(p.create_schema(name=f"page-{i}", schema=CUSTOM_SCHEMA))["schemaArn"] for i in range(3)]
    everything = [DEFAULT_SCHEMA_ARN, *created]

    first = ok(p.list_schemas(maxResults=2))
    assert [s["schemaArn"] for s in first["schemas"]] == everything[:2]
    token = first["nextToken"]
    assert isinstance(token, str) and 0 < len(token) <= 1500 and token.isascii()
    second = ok(p.list_schemas(maxResults=2, nextToken=token))
    assert [s["schemaArn"] for s in second["schemas"]] == everything[2:]
    assert "nextToken" not in second, "the last page carries no token"
    # The same token gives the same page again; with 3 a page, the last page holds one.
    assert ok(p.list_schemas(maxResults=2, nextToken=token))["schemas"] == second["schemas"]
    three = ok(p.list_schemas(maxResults=3))
    assert len(three["schemas"]) == 3
    rest = ok(p.list_schemas(maxResults=3, nextToken=three["nextToken"]))
    assert [s["schemaArn"] for s in rest["schemas"]] == everything[3:] and "nextToken" not in rest
    # Without maxResults (default 100) everything fits on one page.
    whole = ok(p.list_schemas())
    assert [s["schemaArn"] for s in whole["schemas"]] == everything and "nextToken" not in whole
    # boto3's paginator (PageSize = maxResults) sees the same list.
    pages = list(p.get_paginator("list_schemas").paginate(PaginationConfig={"PageSize": 1}))
    assert len(pages) == 4 and [s["schemaArn"] for pg in pages for s in pg["schemas"]] == everything


def test_default_page_size_is_100(server, personalize):
    p = personalize(server.endpoint)
    created = [ok(p.create_schema(name=f"many-{i:03d}", schema=CUSTOM_SCHEMA))["schemaArn"] for i in range(100)]
    first = ok(p.list_schemas())
    assert [s["schemaArn"] for s in first["schemas"]] == [DEFAULT_SCHEMA_ARN, *created[:99]]
    second = ok(p.list_schemas(nextToken=first["nextToken"]))
    assert [s["schemaArn"] for s in second["schemas"]] == created[99:] and "nextToken" not in second
    assert len(ok(p.list_schemas(maxResults=100))["schemas"]) == 100


def test_every_listing_pages_and_refuses_tokens_issued_for_another(server, personalize, events, out_dir):
    p, ev = personalize(server.endpoint), events(server.endpoint)
    a = make_pipeline(p, "pages-a")
    b = make_pipeline(p, "pages-b")
    put(ev, a.tracking_id, [event("pg-1", 1700000000, "i1", {"numberOfRatings": 1})])
    for i in range(3):
        assert export_job(p, a.dataset_arn, f"pages-job-{i}", out_dir)[0]["status"] == "ACTIVE"

    tokens = {}
    for op, key in LISTINGS:
        whole = ok(getattr(p, op)())[key]
        assert len(whole) >= 3, (op, whole)
        paged = list_all(p, op, key, page_size=1)
        assert paged == whole, f"{op}: one-by-one pages differ from the whole list"
        assert [x[ARN_KEYS[key]] for x in list_all(p, op, key, page_size=2)] == [x[ARN_KEYS[key]] for x in whole]
        tokens[op] = ok(getattr(p, op)(maxResults=1))["nextToken"]
    # Filters page too.
    assert [d["datasetArn"] for d in list_all(p, "list_datasets", "datasets", 1, datasetGroupArn=b.group_arn)] == \
        [b.dataset_arn]
    assert len(list_all(p, "list_dataset_export_jobs", "datasetExportJobs", 1, datasetArn=a.dataset_arn)) == 3

    for op, key in LISTINGS:
        for other_op, token in tokens.items():
            if other_op != op:
                expect_error("InvalidNextTokenException", getattr(p, op), nextToken=token)
        for bad in ["garbage", "00", tokens[op] + "7a", "dGhpcyBpcyBub3QgYSB0b2tlbg=="]:
            expect_error("InvalidNextTokenException", getattr(p, op), nextToken=bad)
        expect_error("InvalidInputException", getattr(p, op), "at 'nextToken'", nextToken="t" * 1501)


# --------------------------------------------------------------------------------------------------------------------
# Deleting what is in use; the dataset-group quota
# --------------------------------------------------------------------------------------------------------------------


def test_deletes_are_refused_while_in_use(server_factory, personalize, events, tmp_path):
    gate = tmp_path / "export-gate"
    server = server_factory(env={"INTERLOG_TEST_EXPORT_JOB_GATE": str(gate)})
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "busy")
    put(ev, w.tracking_id, [event("busy-1", 1700000000, "i1", {"numberOfRatings": 1})])

    expect_error("ResourceInUseException", p.delete_schema, w.schema_arn, w.dataset_arn, schemaArn=w.schema_arn)
    expect_error("ResourceInUseException", p.delete_dataset_group, w.group_arn, datasetGroupArn=w.group_arn)
    expect_error("ResourceInUseException", p.delete_schema, schemaArn=DEFAULT_SCHEMA_ARN)
    expect_error("ResourceInUseException", p.delete_dataset_group, datasetGroupArn=DEFAULT_GROUP_ARN)

    # A dataset being exported (the job is held in CREATE IN_PROGRESS).
    out = new_account_dir()
    arn = start_held_job(p, "held", w.dataset_arn, out, gate)
    expect_error("ResourceInUseException", p.delete_dataset, w.dataset_arn, arn, datasetArn=w.dataset_arn)
    gate.unlink()
    job, _ = wait_job(p, arn)
    assert job["status"] == "ACTIVE", job
    assert read_csv(out / "held.csv")[0] == CUSTOM_HEADER

    # Inner to outer, each delete is allowed once nothing uses the resource.
    ok(p.delete_event_tracker(eventTrackerArn=w.tracker_arn))
    # Deleting the tracker keeps the dataset, and the group still holds it.
    assert ok(p.describe_dataset(datasetArn=w.dataset_arn))["dataset"]["status"] == "ACTIVE"
    expect_error("ResourceInUseException", p.delete_dataset_group, w.dataset_arn, datasetGroupArn=w.group_arn)
    ok(p.delete_dataset(datasetArn=w.dataset_arn))
    ok(p.delete_dataset_group(datasetGroupArn=w.group_arn))
    ok(p.delete_schema(schemaArn=w.schema_arn))
    for call, kwargs in [(p.describe_schema, {"schemaArn": w.schema_arn}),
                         (p.describe_dataset_group, {"datasetGroupArn": w.group_arn}),
                         (p.describe_dataset, {"datasetArn": w.dataset_arn}),
                         (p.describe_event_tracker, {"eventTrackerArn": w.tracker_arn})]:
        expect_error("ResourceNotFoundException", call, **kwargs)


def test_group_with_only_a_tracker_is_in_use_and_the_tracker_waits_for_a_dataset(server, personalize, events):
    p, ev = personalize(server.endpoint), events(server.endpoint)
    group = _temp_group(p, "tracker-first")
    r = ok(p.create_event_tracker(name="early", datasetGroupArn=group))
    expect_error("ResourceInUseException", p.delete_dataset_group, r["eventTrackerArn"], datasetGroupArn=group)
    # No Interactions dataset yet: nothing to record into.
    expect_error("InvalidInputException", ev.put_events, "no Interactions dataset", trackingId=r["trackingId"],
                 sessionId="s", eventList=[event("early-1", 1700000000, "i1")])
    schema = ok(p.create_schema(name="tracker-first", schema=CUSTOM_SCHEMA))["schemaArn"]
    ok(p.create_dataset(name="late", schemaArn=schema, datasetGroupArn=group, datasetType="Interactions"))
    # Now the tracker records, checked against the dataset's schema.
    put(ev, r["trackingId"], [event("early-2", 1700000000, "i1", {"numberOfRatings": 3})])
    expect_error("InvalidInputException", ev.put_events, "properties must contain 'numberOfRatings'",
                 trackingId=r["trackingId"], sessionId="s", eventList=[event("early-3", 1700000000, "i1")])


def test_dataset_group_quota_is_five_including_the_default(server, personalize):
    p = personalize(server.endpoint)
    created = [_temp_group(p, f"quota-{i}") for i in range(4)]
    assert len(ok(p.list_dataset_groups())["datasetGroups"]) == 5
    message = expect_error("LimitExceededException", p.create_dataset_group, "5", name="quota-5")
    assert "quota" in message.lower() or "limit" in message.lower(), message
    expect_error("ResourceNotFoundException", p.describe_dataset_group, datasetGroupArn=ARN + "dataset-group/quota-5")
    assert len(ok(p.list_dataset_groups())["datasetGroups"]) == 5
    # Deleting one makes room again.
    ok(p.delete_dataset_group(datasetGroupArn=created[0]))
    assert ok(p.create_dataset_group(name="quota-5"))["datasetGroupArn"] == ARN + "dataset-group/quota-5"
    expect_error("LimitExceededException", p.create_dataset_group, name="quota-6")


def test_the_quota_holds_under_concurrent_creates(server, personalize):
    clients = [personalize(server.endpoint) for _ in range(8)]
    results: dict[int, str] = {}

    def create(i):
        try:
            clients[i].create_dataset_group(name=f"race-{i}")
            results[i] = "created"
        except ClientError as e:
            results[i] = e.response["Error"]["Code"]

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results.values()) == ["LimitExceededException"] * 4 + ["created"] * 4, results
    assert len(ok(clients[0].list_dataset_groups())["datasetGroups"]) == 5


# --------------------------------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------------------------------


def tag_dict(p, arn) -> dict:
    return {t["tagKey"]: t["tagValue"] for t in ok(p.list_tags_for_resource(resourceArn=arn))["tags"]}


def test_tags_on_every_kind_of_resource_and_the_limit_of_fifty(server, personalize, out_dir):
    p = personalize(server.endpoint)
    t = [{"tagKey": "owner", "tagValue": "recs"}]
    schema = ok(p.create_schema(name="tagged", schema=CUSTOM_SCHEMA))["schemaArn"]
    group = ok(p.create_dataset_group(name="tagged", tags=t))["datasetGroupArn"]
    dataset = ok(p.create_dataset(name="tagged", schemaArn=schema, datasetGroupArn=group, datasetType="Interactions",
                                  tags=t))["datasetArn"]
    tracker = ok(p.create_event_tracker(name="tagged", datasetGroupArn=group, tags=t))["eventTrackerArn"]
    job, _ = export_job(p, dataset, "tagged", out_dir, tags=t)
    for arn in (group, dataset, tracker, job["datasetExportJobArn"]):
        assert tag_dict(p, arn) == {"owner": "recs"}, arn
    assert tag_dict(p, schema) == {}
    ok(p.tag_resource(resourceArn=schema, tags=[{"tagKey": "kind", "tagValue": "avro"}]))
    assert tag_dict(p, schema) == {"kind": "avro"}

    # Tagging a key again replaces its value; untagging removes only the keys named.
    ok(p.tag_resource(resourceArn=group, tags=[{"tagKey": "owner", "tagValue": "search"},
                                               {"tagKey": "env", "tagValue": "dev"}]))
    assert tag_dict(p, group) == {"owner": "search", "env": "dev"}
    ok(p.untag_resource(resourceArn=group, tagKeys=["owner"]))
    assert tag_dict(p, group) == {"env": "dev"}

    # 50 keys are fine; a 51st is TooManyTagsException and changes nothing; replacing a value at 50 is fine.
    fifty = [{"tagKey": f"k{i:02d}", "tagValue": str(i)} for i in range(49)]
    ok(p.tag_resource(resourceArn=group, tags=fifty))
    assert len(tag_dict(p, group)) == 50
    expect_error("TooManyTagsException", p.tag_resource, "50", resourceArn=group,
                 tags=[{"tagKey": "one-more", "tagValue": "x"}])
    assert len(tag_dict(p, group)) == 50 and "one-more" not in tag_dict(p, group)
    ok(p.tag_resource(resourceArn=group, tags=[{"tagKey": "k00", "tagValue": "replaced"}]))
    assert tag_dict(p, group)["k00"] == "replaced"
    # Creating with 51 tags is refused and creates nothing.
    many = [{"tagKey": f"t{i}", "tagValue": "v"} for i in range(51)]
    expect_error("TooManyTagsException", p.create_dataset_group, name="too-many-tags", tags=many)
    expect_error("ResourceNotFoundException", p.describe_dataset_group,
                 datasetGroupArn=ARN + "dataset-group/too-many-tags")

    # Unknown resources.
    for arn in (ARN + "dataset-group/nope", ARN + "dataset-export-job/nope", ARN + "event-tracker/00000000"):
        expect_error("ResourceNotFoundException", p.tag_resource, arn, resourceArn=arn, tags=t)
        expect_error("ResourceNotFoundException", p.untag_resource, arn, resourceArn=arn, tagKeys=["owner"])
        expect_error("ResourceNotFoundException", p.list_tags_for_resource, arn, resourceArn=arn)


def test_tags_go_with_their_resource(server, personalize, out_dir):
    """A resource created again under a deleted one's ARN starts without the old tags."""
    p = personalize(server.endpoint)
    t = [{"tagKey": "generation", "tagValue": "first"}]
    schema = ok(p.create_schema(name="reborn", schema=CUSTOM_SCHEMA))["schemaArn"]
    group = ok(p.create_dataset_group(name="reborn", tags=t))["datasetGroupArn"]
    dataset = ok(p.create_dataset(name="reborn", schemaArn=schema, datasetGroupArn=group,
                                  datasetType="Interactions", tags=t))["datasetArn"]
    job, _ = export_job(p, dataset, "reborn-job", out_dir, tags=t)
    ok(p.tag_resource(resourceArn=schema, tags=t))

    ok(p.delete_dataset(datasetArn=dataset))  # also removes the dataset's export jobs
    expect_error("ResourceNotFoundException", p.describe_dataset_export_job,
                 datasetExportJobArn=job["datasetExportJobArn"])
    ok(p.delete_dataset_group(datasetGroupArn=group))
    ok(p.delete_schema(schemaArn=schema))

    assert ok(p.create_schema(name="reborn", schema=CUSTOM_SCHEMA))["schemaArn"] == schema
    assert ok(p.create_dataset_group(name="reborn"))["datasetGroupArn"] == group
    assert ok(p.create_dataset(name="reborn", schemaArn=schema, datasetGroupArn=group,
                               datasetType="Interactions"))["datasetArn"] == dataset
    again, _ = export_job(p, dataset, "reborn-job", out_dir)
    assert again["datasetExportJobArn"] == job["datasetExportJobArn"]
    for arn in (schema, group, dataset, job["datasetExportJobArn"]):
        assert tag_dict(p, arn) == {}, f"{arn} kept the tags of the deleted resource"


# --------------------------------------------------------------------------------------------------------------------
# Export jobs
# --------------------------------------------------------------------------------------------------------------------

# What the export test puts, and the rows it expects (CUSTOM_HEADER order).
EXPORT_EVENTS_U1 = [
    event("x-1", 1700000000.9, "i1", {"device": "phone", "numberOfRatings": 12}, eventValue=2.5,
          impression=["i1", "i2"], recommendationId="rec-1"),
    event("x-2", 1700000100, "i2", {"DEVICE": 'phone, "big"|tv', "NUMBER_OF_RATINGS": "7"}, event_type="view"),
    event("x-3", 1700000200, "i3", {"number_of_ratings": 0}, event_type="purchase"),
]
# The same eventId again, different content: the first copy wins.
EXPORT_DUPLICATE = [event("x-1", 1700000999, "i9", {"device": "tablet", "numberOfRatings": 99})]
EXPORT_EVENTS_U2 = [event("x-4", 1700000300, "i4", {"device": "tv", "numberOfRatings": 5},
                          metricAttribution={"eventAttributionSource": "email"})]
EXPECTED_ROWS = [
    ["u1", "i1", "1700000000", "click", "2.5", "i1|i2", "phone", "12"],
    ["u1", "i2", "1700000100", "view", "", "", 'phone, "big"|tv', "7"],
    ["u1", "i3", "1700000200", "purchase", "", "", "", "0"],
    ["u2", "i4", "1700000300", "click", "", "", "tv", "5"],
]


@pytest.fixture
def exported(server, personalize, events) -> tuple:
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "exp")
    put(ev, w.tracking_id, EXPORT_EVENTS_U1, user="u1", session="s1")
    put(ev, w.tracking_id, EXPORT_DUPLICATE, user="u1", session="s1")
    put(ev, w.tracking_id, EXPORT_EVENTS_U2, user="u2", session="s2")
    return p, w


@pytest.mark.parametrize("mode", [None, "PUT", "ALL"])
def test_export_job_writes_the_dataset_csv_column_for_column(mode, exported, out_dir):
    p, w = exported
    job, seen = export_job(p, w.dataset_arn, f"csv-{mode or 'default'}", out_dir, mode=mode)
    assert job["status"] == "ACTIVE", job
    assert job["ingestionMode"] == (mode or "PUT")
    assert seen[-1] == "ACTIVE" and set(seen) <= {"CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"}, seen
    header, rows = read_csv(out_dir / f"csv-{mode or 'default'}.csv")
    assert header == CUSTOM_HEADER
    assert len(rows) == len(EXPECTED_ROWS), rows
    for got, want in zip(rows, EXPECTED_ROWS):
        assert dict(zip(header, got)) == dict(zip(header, want))
    assert sorted(os.listdir(out_dir)) == [f"csv-{mode or 'default'}.csv"], "no partial files left behind"


def test_bulk_export_has_only_the_header(exported, out_dir):
    p, w = exported
    job, _ = export_job(p, w.dataset_arn, "bulk", out_dir, mode="BULK")
    assert (job["status"], job["ingestionMode"]) == ("ACTIVE", "BULK")
    assert (out_dir / "bulk.csv").read_bytes() == (",".join(CUSTOM_HEADER) + "\r\n").encode()


def test_export_of_the_default_dataset_has_the_default_columns(server, personalize, events, out_dir):
    p, ev = personalize(server.endpoint), events(server.endpoint)
    put(ev, server.tracking_id, [event("d-1", 1700000000, "i1", recommendationId="r1",
                                       metricAttribution={"eventAttributionSource": "src"})], user=None, session="anon")
    job, _ = export_job(p, DEFAULT_DATASET_ARN, "default-export", out_dir)
    header, rows = read_csv(out_dir / "default-export.csv")
    assert header == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
                      "RECOMMENDATION_ID", "EVENT_ATTRIBUTION_SOURCE"]
    assert rows == [["", "i1", "1700000000", "click", "", "", "r1", "src"]]


# s3:// destinations are written (test_s3_export.py, against moto); http(s) ones fail the job.
@pytest.mark.parametrize("path", ["http://minio.example.com/bucket/", "https://minio.example.com/bucket/"])
def test_export_to_an_http_location_fails_with_a_reason(path, module_server, p, world):
    name = "remote-" + re.sub(r"[^a-z0-9]", "", path.split(":")[0])
    arn = ok(p.create_dataset_export_job(jobName=name, datasetArn=world.dataset_arn, roleArn=ROLE_ARN,
                                         jobOutput={"s3DataDestination": {"path": path}}))["datasetExportJobArn"]
    job, _ = wait_job(p, arn)
    assert job["status"] == "CREATE FAILED", job
    reason = job["failureReason"]
    assert "s3://" in reason and "file:///" in reason and path in reason, reason
    listed = [j for j in ok(p.list_dataset_export_jobs(datasetArn=world.dataset_arn))["datasetExportJobs"]
              if j["datasetExportJobArn"] == arn]
    assert listed[0]["status"] == "CREATE FAILED" and listed[0]["failureReason"] == job["failureReason"]


def test_export_to_a_directory_the_server_cannot_create_is_refused_with_a_reason(p, world):
    out = new_account_dir()
    blocker = out / "a-file"
    blocker.write_text("not a directory")
    expect_error("InvalidInputException", p.create_dataset_export_job, "a-file", "not a folder",
                 jobName="unwritable", datasetArn=world.dataset_arn, roleArn=ROLE_ARN,
                 jobOutput={"s3DataDestination": {"path": f"file://{blocker}/sub/"}})
    # Refused at once: no job was made.
    expect_error("ResourceNotFoundException", p.describe_dataset_export_job,
                 datasetExportJobArn=ARN + "dataset-export-job/unwritable")


def test_export_job_names_are_unique(module_server, p, world):
    out = new_account_dir()
    expect_error("ResourceAlreadyExistsException", p.create_dataset_export_job, "world-export",
                 jobName="world-export", datasetArn=DEFAULT_DATASET_ARN, roleArn=ROLE_ARN,
                 jobOutput={"s3DataDestination": {"path": f"file://{out}/"}})
    assert not (out / "world-export.csv").exists()
    # The original job is untouched.
    j = ok(p.describe_dataset_export_job(datasetExportJobArn=world.extra["job_arn"]))["datasetExportJob"]
    assert (j["datasetArn"], j["status"]) == (world.dataset_arn, "ACTIVE")


@pytest.mark.parametrize("sent, cell", [("12", "12"), ("\"12\"", "12"), ("12.0", "12"), ("\" 13 \"", "13"),
                                        ("\"014\"", "14")],
                         ids=["int", "numeric-string", "integral-float", "padded-string", "leading-zero"])
def test_exported_int_cells_hold_the_coerced_int(sent, cell, server, personalize, events, out_dir):
    """PutEvents accepts `12`, `"12"`, `12.0`, `" 13 "` and `"014"` for an int field because each is that int
    (Python's json writes 12.0 for a float); the dataset CSV must hold the int, as an import of an int column
    expects, not the text that was sent."""
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "coerce")
    put(ev, w.tracking_id, [event("c-1", 1700000000, "i1", '{"numberOfRatings": %s}' % sent)])
    assert [r["NUMBER_OF_RATINGS"] for r in exported_rows(p, w.dataset_arn, out_dir)] == [cell]


# --------------------------------------------------------------------------------------------------------------------
# Restart
# --------------------------------------------------------------------------------------------------------------------


def snapshot(p) -> dict:
    """Every resource through every list, describe and tag operation."""
    snap = {}
    for op, key in LISTINGS:
        items = list_all(p, op, key)
        snap[op] = items
        for item in items:
            arn = item[ARN_KEYS[key]]
            describe = {"schemas": lambda a: p.describe_schema(schemaArn=a),
                        "datasetGroups": lambda a: p.describe_dataset_group(datasetGroupArn=a),
                        "datasets": lambda a: p.describe_dataset(datasetArn=a),
                        "eventTrackers": lambda a: p.describe_event_tracker(eventTrackerArn=a),
                        "datasetExportJobs": lambda a: p.describe_dataset_export_job(datasetExportJobArn=a)}[key]
            snap[arn] = ok(describe(arn))
            snap["tags " + arn] = ok(p.list_tags_for_resource(resourceArn=arn))
    return snap


def test_restart_keeps_every_resource(server, personalize, events, out_dir):
    p, ev = personalize(server.endpoint), events(server.endpoint)
    a = make_pipeline(p, "keep")
    b = make_pipeline(p, "keep-devices", DEVICE_ONLY_SCHEMA)
    ok(p.create_schema(name="keep-users", domain="ECOMMERCE",
                       schema=avro([fld("USER_ID", "string"), fld("AGE", "int")], name="Users")))
    ok(p.create_dataset_group(name="keep-vod", domain="VIDEO_ON_DEMAND", roleArn=ROLE_ARN,
                              kmsKeyArn="arn:aws:kms:us-east-1:123456789012:key/abc",
                              tags=[{"tagKey": "team", "tagValue": "video"}]))
    ok(p.tag_resource(resourceArn=a.tracker_arn, tags=[{"tagKey": "env", "tagValue": "prod"}]))
    put(ev, a.tracking_id, [event("keep-1", 1700000000, "i1", {"device": "phone", "numberOfRatings": 1})])
    export_job(p, a.dataset_arn, "keep-put", out_dir)
    export_job(p, b.dataset_arn, "keep-bulk", out_dir, mode="BULK")
    export_job(p, a.dataset_arn, "keep-failed", out_dir, path="https://bucket.example.com/x/")
    before = snapshot(p)
    assert len(before["list_dataset_groups"]) == 4 and len(before["list_dataset_export_jobs"]) == 3

    server.restart()
    p, ev = personalize(server.endpoint), events(server.endpoint)
    after = snapshot(p)
    assert after == before

    # The trackers still route, with their schemas' checks.
    put(ev, a.tracking_id, [event("keep-2", 1700000001, "i2", {"numberOfRatings": 2})])
    expect_error("InvalidInputException", ev.put_events, "properties key 'numberOfRatings' (field NUMBER_OF_RATINGS",
                 trackingId=a.tracking_id, sessionId="s",
                 eventList=[event("keep-3", 1700000002, "i3", {"numberOfRatings": "three"})])
    put(ev, b.tracking_id, [event("keep-4", 1700000003, "i4", {"device": "tv"})])
    # Names are still taken, and the quota still counts the groups from before the restart.
    expect_error("ResourceAlreadyExistsException", p.create_schema, name="keep-schema", schema=CUSTOM_SCHEMA)
    ok(p.create_dataset_group(name="keep-5th"))
    expect_error("LimitExceededException", p.create_dataset_group, name="keep-6th")
    rows = exported_rows(p, a.dataset_arn, out_dir)
    assert [r["ITEM_ID"] for r in rows] == ["i1", "i2"]


def start_held_job(p, name: str, dataset_arn: str, out: Path, gate: Path) -> str:
    """Starts an export job that stays CREATE IN_PROGRESS while ``gate`` exists (the server runs with
    ``INTERLOG_TEST_EXPORT_JOB_GATE`` naming it); removing the gate lets the job go on."""
    gate.write_text("held")
    arn = ok(p.create_dataset_export_job(jobName=name, datasetArn=dataset_arn, roleArn=ROLE_ARN,
                                         jobOutput={"s3DataDestination": {"path": f"file://{out}/"}}))
    arn = arn["datasetExportJobArn"]
    deadline = time.monotonic() + JOB_TIMEOUT
    while (status := ok(p.describe_dataset_export_job(datasetExportJobArn=arn))["datasetExportJob"]["status"]) \
            == "CREATE PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert status == "CREATE IN_PROGRESS"
    return arn


def test_a_job_interrupted_by_a_stop_is_failed_at_the_next_start(server_factory, personalize, tmp_path):
    gate = tmp_path / "export-gate"
    server = server_factory(env={"INTERLOG_TEST_EXPORT_JOB_GATE": str(gate)})
    p = personalize(server.endpoint)
    out = new_account_dir()
    arn = start_held_job(p, "cut-short", DEFAULT_DATASET_ARN, out, gate)
    server.kill()
    server.start()
    p = personalize(server.endpoint)
    job = ok(p.describe_dataset_export_job(datasetExportJobArn=arn))["datasetExportJob"]
    assert job["status"] == "CREATE FAILED", job
    assert "stopped" in job["failureReason"], job["failureReason"]
    assert not (out / "cut-short.csv").exists()
    gate.unlink()
    # The dataset is free again.
    job, _ = export_job(p, DEFAULT_DATASET_ARN, "after-restart", out)
    assert job["status"] == "ACTIVE"


# --------------------------------------------------------------------------------------------------------------------
# Two accounts
# --------------------------------------------------------------------------------------------------------------------


def test_accounts_cannot_see_or_write_to_each_others_resources(server_factory, personalize, events, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\naccess_key_id = "{OTHER_KEY_ID}"\nsecret_access_key = "{OTHER_SECRET}"\n'
                    f'account_id = "{OTHER_ACCOUNT}"\n')
    server = server_factory(args=("--credentials-file", str(keys)))
    home = tmp_path / "other-home"
    home.mkdir()
    other = _session(OTHER_KEY_ID, OTHER_SECRET, home)
    pa, eva = personalize(server.endpoint), events(server.endpoint)
    pb, evb = personalize(server.endpoint, other), events(server.endpoint, other)

    a = make_pipeline(pa, "shared")
    b = make_pipeline(pb, "shared", account=OTHER_ACCOUNT)  # the same names in another account
    assert a.tracker_arn != b.tracker_arn and a.tracking_id != b.tracking_id
    assert ok(pb.describe_event_tracker(eventTrackerArn=b.tracker_arn))["eventTracker"]["accountId"] == OTHER_ACCOUNT

    # Each writes to its own tracker only; another account's tracking ID is answered like an unknown one.
    put(eva, a.tracking_id, [event("acct-a", 1700000000, "ia", {"numberOfRatings": 1})], user="ua")
    put(evb, b.tracking_id, [event("acct-b", 1700000000, "ib", {"numberOfRatings": 2})], user="ub")
    for ev, foreign in [(eva, b.tracking_id), (evb, a.tracking_id), (evb, server.tracking_id)]:
        expect_error("InvalidInputException", ev.put_events, foreign, trackingId=foreign, sessionId="s",
                     eventList=[event("intruder", 1700000000, "ix", {"numberOfRatings": 9})])

    # Neither describes, lists, tags, deletes or uses the other's resources.
    out_dirs = {ACCOUNT: new_account_dir(ACCOUNT), OTHER_ACCOUNT: new_account_dir(OTHER_ACCOUNT)}
    for client, mine, theirs, account in [(pa, a, b, ACCOUNT), (pb, b, a, OTHER_ACCOUNT)]:
        for call, member, arn in [(client.describe_schema, "schemaArn", theirs.schema_arn),
                                  (client.describe_dataset_group, "datasetGroupArn", theirs.group_arn),
                                  (client.describe_dataset, "datasetArn", theirs.dataset_arn),
                                  (client.describe_event_tracker, "eventTrackerArn", theirs.tracker_arn),
                                  (client.delete_event_tracker, "eventTrackerArn", theirs.tracker_arn),
                                  (client.delete_dataset, "datasetArn", theirs.dataset_arn),
                                  (client.list_tags_for_resource, "resourceArn", theirs.group_arn),
                                  (client.list_datasets, "datasetGroupArn", theirs.group_arn)]:
            expect_error("ResourceNotFoundException", call, **{member: arn})
        expect_error("ResourceNotFoundException", client.tag_resource, resourceArn=theirs.tracker_arn,
                     tags=[{"tagKey": "k", "tagValue": "v"}])
        expect_error("ResourceNotFoundException", client.create_dataset, name="x", schemaArn=theirs.schema_arn,
                     datasetGroupArn=mine.group_arn, datasetType="Users")
        expect_error("ResourceNotFoundException", client.create_event_tracker, name="x",
                     datasetGroupArn=theirs.group_arn)
        expect_error("ResourceNotFoundException", client.create_dataset_export_job, jobName="steal",
                     datasetArn=theirs.dataset_arn, roleArn=ROLE_ARN,
                     jobOutput={"s3DataDestination": {"path": f"file://{out_dirs[account]}/"}})
        # Nor writes into the other's export folder.
        expect_error("InvalidInputException", client.create_dataset_export_job, "outside this account's folder",
                     jobName="plant", datasetArn=mine.dataset_arn, roleArn=ROLE_ARN,
                     jobOutput={"s3DataDestination": {"path": f"file://{out_dirs[theirs_account(account)]}/"}})
    assert not any(d.joinpath(n).exists() for d in out_dirs.values() for n in ("steal.csv", "plant.csv"))

    # Listings hold only the caller's own resources.
    for client, account in [(pa, ACCOUNT), (pb, OTHER_ACCOUNT)]:
        for op, key in LISTINGS:
            arns = [x[ARN_KEYS[key]] for x in list_all(client, op, key)]
            assert all(f":{account}:" in arn for arn in arns), (account, op, arns)
    assert [t["name"] for t in list_all(pb, "list_event_trackers", "eventTrackers")] == ["shared-tracker"]
    assert {t["name"] for t in list_all(pa, "list_event_trackers", "eventTrackers")} == \
        {"default-tracker", "shared-tracker"}

    # And each dataset holds only its own account's event.
    assert [r["USER_ID"] for r in exported_rows(pa, a.dataset_arn, out_dirs[ACCOUNT])] == ["ua"]
    assert [r["USER_ID"] for r in exported_rows(pb, b.dataset_arn, out_dirs[OTHER_ACCOUNT])] == ["ub"]


def theirs_account(account: str) -> str:
    return OTHER_ACCOUNT if account == ACCOUNT else ACCOUNT


# --------------------------------------------------------------------------------------------------------------------
# CreateSchema validation: one case per rule
# --------------------------------------------------------------------------------------------------------------------

# (id, schema text, domain, fragments: the field (or the schema) named, and the rule)
SCHEMA_RULES = [
    ("not-json", '{"type": "record", "name": "Interactions", "fields": [}', None, ["not valid JSON"]),
    ("not-a-record", json.dumps({"type": "enum", "name": "Interactions", "symbols": ["A"]}), None,
     ['"type" is "enum"', 'must be "record"']),
    ("name-not-a-dataset-type", avro(REQUIRED, name="Movies"), None,
     ["'Movies' is not a dataset type", "Interactions, Items, Users, Actions, ActionInteractions"]),
    ("nested-type", avro(REQUIRED + [fld("TAGS", {"type": "array", "items": "string"})]), None,
     ["Schema field 'TAGS'", "complex type (array)", "flat"]),
    ("nested-record", avro(REQUIRED + [fld("ADDR", {"type": "record", "name": "A", "fields": []})]), None,
     ["Schema field 'ADDR'", "complex type (record)"]),
    ("unsupported-type", avro(REQUIRED + [fld("BLOB", "bytes")]), None,
     ["Schema field 'BLOB'", '"bytes"', "allowed types are string, int, long, float, double, boolean"]),
    ("union-of-two-types", avro(REQUIRED + [fld("MIXED", ["string", "int"])]), None,
     ["Schema field 'MIXED'", "union", 'together with "null"']),
    ("invalid-field-name", avro(REQUIRED + [fld("MY-FIELD", "string")]), None,
     ["'MY-FIELD'", "not a valid Avro name"]),
    ("required-field-missing", avro(REQUIRED[:2]), None, ["requires the field 'TIMESTAMP'", '"long"']),
    ("required-field-wrong-type", avro(REQUIRED[:2] + [fld("TIMESTAMP", "string")]), None,
     ["Schema field 'TIMESTAMP'", 'must have type "long"', 'it has type "string"']),
    ("required-field-nullable", avro([fld("USER_ID", ["null", "string"])] + REQUIRED[1:]), None,
     ["Schema field 'USER_ID'", "must not be nullable"]),
    ("reserved-field-wrong-type", avro(REQUIRED + [fld("EVENT_VALUE", ["null", "string"])]), None,
     ["Schema field 'EVENT_VALUE'", 'must have type "float"']),
    ("event-type-categorical", avro(REQUIRED + [fld("EVENT_TYPE", "string", categorical=True)]), None,
     ["Schema field 'EVENT_TYPE'", "must not be categorical"]),
    ("reserved-name-misspelled", avro(REQUIRED + [fld("Event_Type", "string")]), None,
     ["Schema field 'Event_Type'", "must be spelled 'EVENT_TYPE'"]),
    ("categorical-not-string", avro(REQUIRED + [fld("NUMBER_OF_RATINGS", "int", categorical=True)]), None,
     ["Schema field 'NUMBER_OF_RATINGS'", "only string fields can be categorical"]),
    ("categorical-not-boolean", avro(REQUIRED + [fld("DEVICE", "string", categorical="true")]), None,
     ["Schema field 'DEVICE'", '"categorical": "true"', "must be true or false"]),
    ("textual-outside-items", avro(REQUIRED + [fld("NOTES", ["null", "string"], textual=True)]), None,
     ["Schema field 'NOTES'", "only Items schemas support textual fields"]),
    ("textual-not-string", avro([fld("ITEM_ID", "string"), fld("PRICE", "float", textual=True)], name="Items"), None,
     ["Schema field 'PRICE'", "only string fields can be textual"]),
    ("two-textual-items-fields", avro([fld("ITEM_ID", "string"), fld("TITLE", "string", textual=True),
                                       fld("DESCRIPTION", "string", textual=True)], name="Items"), None,
     ["2 textual fields (TITLE, DESCRIPTION)", "at most 1"]),
    ("names-collide-without-underscores", avro(REQUIRED + [fld("GENRES_FIELD_1", "string", categorical=True),
                                                           fld("GENRESFIELD1", "string", categorical=True)]), None,
     ["'GENRES_FIELD_1' and 'GENRESFIELD1'", "same name once '_' is removed and case ignored"]),
    ("duplicate-field", avro(REQUIRED + [fld("DEVICE", "string"), fld("DEVICE", "string")]), None,
     ["Schema field 'DEVICE' is defined twice"]),
    ("too-many-interactions-metadata", avro(REQUIRED + [fld(f"M{i}", "int") for i in range(6)]), None,
     ["6 metadata fields (M0, M1, M2, M3, M4, M5)", "at most 5"]),
    ("users-without-metadata", avro([fld("USER_ID", "string")], name="Users"), None,
     ["needs at least one metadata field", "USER_ID"]),
    ("schema-too-long", avro(REQUIRED + [fld("DEVICE", "string", doc="d" * 20000)]), None,
     ["the maximum is 20000"]),
    ("domain-requires-event-type", avro(REQUIRED), "ECOMMERCE",
     ["ECOMMERCE Interactions schema requires the field 'EVENT_TYPE'"]),
    ("action-interactions-with-domain", ACTION_INTERACTIONS_SCHEMA, "VIDEO_ON_DEMAND",
     ["ActionInteractions schemas cannot have a domain"]),
    ("empty-fields", avro([]), None, ['"fields" is empty']),
]

# (id, schema, domain): accepted.
SCHEMAS_ACCEPTED = [
    ("the-issue-schema", CUSTOM_SCHEMA, None),
    ("docs-interactions", avro(REQUIRED + [fld("EVENT_TYPE", "string"), fld("EVENT_VALUE", ["float", "null"]),
                                           fld("LOCATION", "string", categorical=True),
                                           fld("DEVICE", ["string", "null"], categorical=True),
                                           fld("IMPRESSION", "string")]), None),
    ("five-metadata-fields", avro(REQUIRED + [fld(f"M{i}", "double") for i in range(5)]), None),
    ("users", avro([fld("USER_ID", "string"), fld("AGE", "int"), fld("GENDER", "string", categorical=True)],
                   name="Users"), None),
    ("items", avro([fld("ITEM_ID", "string"), fld("GENRES", ["null", "string"], categorical=True),
                    fld("CREATION_TIMESTAMP", "long"), fld("DESCRIPTION", ["null", "string"], textual=True)],
                   name="Items"), None),
    ("actions", avro([fld("ACTION_ID", "string"), fld("VALUE", ["null", "long"])], name="Actions"), None),
    ("action-interactions", ACTION_INTERACTIONS_SCHEMA, None),
    ("ecommerce-interactions", ECOMMERCE_INTERACTIONS_SCHEMA, "ECOMMERCE"),
    ("long-hand-types", avro(REQUIRED + [fld("SCORE", {"type": "double"}), fld("FLAG", ["null", "boolean"])]), None),
]


@pytest.mark.parametrize("text, domain, fragments", [c[1:] for c in SCHEMA_RULES], ids=[c[0] for c in SCHEMA_RULES])
def test_create_schema_refuses(text, domain, fragments, p, request):
    name = "bad-" + request.node.callspec.id
    kwargs = {"domain": domain} if domain else {}
    expect_error("InvalidInputException", p.create_schema, *fragments, name=name, schema=text, **kwargs)
    expect_error("ResourceNotFoundException", p.describe_schema, schemaArn=ARN + f"schema/{name}")


@pytest.mark.parametrize("text, domain", [c[1:] for c in SCHEMAS_ACCEPTED], ids=[c[0] for c in SCHEMAS_ACCEPTED])
def test_create_schema_accepts(text, domain, p, request):
    name = "good-" + request.node.callspec.id
    kwargs = {"domain": domain} if domain else {}
    arn = ok(p.create_schema(name=name, schema=text, **kwargs))["schemaArn"]
    s = ok(p.describe_schema(schemaArn=arn))["schema"]
    assert (s["name"], s["schema"], s.get("domain")) == (name, text, domain)


# --------------------------------------------------------------------------------------------------------------------
# PutEvents properties against the schema: one case per rule
# --------------------------------------------------------------------------------------------------------------------

FIELDS_LISTED = "its metadata fields are DEVICE (device), NUMBER_OF_RATINGS (numberOfRatings)"
CATEGORICAL_1000 = ("abcd|" * 200)[:999] + "e"
assert len(CATEGORICAL_1000) == 1000 and CATEGORICAL_1000.count("|") == 199

# (id, pipeline: "world" | "devices" | "default", properties (dict, raw JSON text or None),
#  expected: {column: cell} when accepted, or the fragments of the refusal)
PROPERTY_CASES = [
    ("camelCase", "world", {"device": "phone", "numberOfRatings": 12}, {"DEVICE": "phone", "NUMBER_OF_RATINGS": "12"}),
    ("UPPER_SNAKE", "world", {"DEVICE": "tablet", "NUMBER_OF_RATINGS": 3},
     {"DEVICE": "tablet", "NUMBER_OF_RATINGS": "3"}),
    ("snake_case", "world", {"device": "tv", "number_of_ratings": 4}, {"DEVICE": "tv", "NUMBER_OF_RATINGS": "4"}),
    ("numeric-string-for-int", "world", {"numberOfRatings": "12"}, {"DEVICE": "", "NUMBER_OF_RATINGS": "12"}),
    ("nullable-field-null", "world", {"device": None, "numberOfRatings": 5}, {"DEVICE": "", "NUMBER_OF_RATINGS": "5"}),
    ("multi-valued-categorical", "world", {"device": "phone|tv", "numberOfRatings": 6},
     {"DEVICE": "phone|tv", "NUMBER_OF_RATINGS": "6"}),
    ("categorical-1000-chars", "devices", {"device": CATEGORICAL_1000}, {"DEVICE": CATEGORICAL_1000}),
    ("categorical-1000-non-ascii-chars", "devices", '{"device": "%s"}' % ("é" * 1000), {"DEVICE": "é" * 1000}),
    ("categorical-1001-chars", "devices", {"device": CATEGORICAL_1000 + "f"},
     ["properties key 'device' (field DEVICE", "categorical and has 1001 characters", "at most 1000",
      "'|' separators included"]),
    # Undeclared keys are kept and flagged (docs/api.md, test_undeclared_properties.py): no column, no refusal.
    ("undeclared-key", "world", {"devise": "phone", "numberOfRatings": 1}, {"DEVICE": "", "NUMBER_OF_RATINGS": "1"}),
    ("undeclared-key-default-schema", "default", {"numberOfRatings": 1}, {"USER_ID": "u1"}),
    ("wrong-type-string-for-int", "world", {"numberOfRatings": "abc"},
     ["properties key 'numberOfRatings' (field NUMBER_OF_RATINGS, \"int\")", "must be an integer",
      "non-numeric string"]),
    ("wrong-type-fraction-for-int", "world", {"numberOfRatings": 1.5},
     ["'numberOfRatings' (field NUMBER_OF_RATINGS", "must be an integer, not a number with a fraction"]),
    ("wrong-type-boolean-for-int", "world", {"NUMBER_OF_RATINGS": True},
     ["'NUMBER_OF_RATINGS' (field NUMBER_OF_RATINGS", "not a boolean"]),
    ("int-out-of-range", "world", {"numberOfRatings": 2 ** 31},
     ["'numberOfRatings' (field NUMBER_OF_RATINGS", "out of range"]),
    ("wrong-type-object-for-string", "world", {"device": {"os": "ios"}, "numberOfRatings": 1},
     ["'device' (field DEVICE", "must be a string, not an object"]),
    ("missing-required-metadata", "world", {"device": "phone"},
     ["properties must contain 'numberOfRatings'", "field NUMBER_OF_RATINGS", "not a union with \"null\""]),
    ("no-properties-at-all", "world", None, ["properties must contain 'numberOfRatings'"]),
    ("null-for-required", "world", {"numberOfRatings": None},
     ["'numberOfRatings' (field NUMBER_OF_RATINGS", "must not be null"]),
    ("two-spellings-of-one-field", "world", {"numberOfRatings": 1, "number_of_ratings": 2},
     ["both set field NUMBER_OF_RATINGS"]),
]


@pytest.mark.parametrize("pipeline, props, expected", [c[1:] for c in PROPERTY_CASES],
                         ids=[c[0] for c in PROPERTY_CASES])
def test_put_events_properties(pipeline, props, expected, module_server, p, ev, world, device_only, tmp_path,
                               request):
    case = request.node.callspec.id
    target = {"world": world, "devices": device_only}.get(pipeline)
    tracking_id = target.tracking_id if target else module_server.tracking_id
    dataset_arn = target.dataset_arn if target else DEFAULT_DATASET_ARN
    item = f"item-{case}"
    e = event(f"prop-{case}", 1700000000, item, props)
    if isinstance(expected, dict):
        put(ev, tracking_id, [e])
        row = [r for r in exported_rows(p, dataset_arn, new_account_dir()) if r["ITEM_ID"] == item]
        assert len(row) == 1
        assert {k: row[0][k] for k in expected} == expected
    else:
        expect_error("InvalidInputException", ev.put_events, "eventList.1.member.properties", *expected,
                     trackingId=tracking_id, sessionId="s1", userId="u1", eventList=[e])
        assert not [r for r in exported_rows(p, dataset_arn, new_account_dir()) if r["ITEM_ID"] == item], "refused, not stored"


def test_legacy_item_id_and_event_value_in_properties_are_not_metadata(p, ev, world, tmp_path):
    put(ev, world.tracking_id, [event("legacy-1", 1700000000, None,
                                      {"itemId": "item-legacy", "eventValue": "2.5", "numberOfRatings": 8})])
    rows = [r for r in exported_rows(p, world.dataset_arn, new_account_dir()) if r["ITEM_ID"] == "item-legacy"]
    assert [(r["EVENT_VALUE"], r["DEVICE"], r["NUMBER_OF_RATINGS"]) for r in rows] == [("2.5", "", "8")]


def test_strict_properties_refuses_undeclared_keys_listing_the_schema_fields(server_factory, personalize, events,
                                                                             out_dir):
    server = server_factory(args=("--strict-properties",))
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "strict")
    expect_error("InvalidInputException", ev.put_events, "eventList.2.member.properties",
                 f"properties key 'devise' matches no field of schema strict-schema ({FIELDS_LISTED}); declare DEVISE "
                 "(camelCase devise) to use it",
                 trackingId=w.tracking_id, sessionId="s",
                 eventList=[event("s-1", 1700000000, "i1", {"numberOfRatings": 1}),
                            event("s-2", 1700000000, "i2", {"devise": "x", "numberOfRatings": 1})])
    put(ev, w.tracking_id, [event("s-3", 1700000000, "i3", {"device": "tv", "numberOfRatings": 1})])
    assert [r["ITEM_ID"] for r in exported_rows(p, w.dataset_arn, out_dir)] == ["i3"], "nothing of the refused request"


def test_allow_unknown_properties_keeps_checking_the_declared_fields(server_factory, personalize, events, out_dir):
    # The old flag is an alias of the default: undeclared keys kept and flagged, declared ones still checked.
    server = server_factory(env={"INTERLOG_ALLOW_UNKNOWN_PROPERTIES": "true"})
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "lenient")
    put(ev, w.tracking_id, [event("l-1", 1700000000, "i1", {"devise": "x", "device": "tv", "numberOfRatings": 1})])
    put(ev, server.tracking_id, [event("l-2", 1700000000, "i2", {"anything": "goes"})])
    expect_error("InvalidInputException", ev.put_events, "'numberOfRatings' (field NUMBER_OF_RATINGS",
                 trackingId=w.tracking_id, sessionId="s",
                 eventList=[event("l-3", 1700000000, "i3", {"devise": "x", "numberOfRatings": "abc"})])
    expect_error("InvalidInputException", ev.put_events, "properties must contain 'numberOfRatings'",
                 trackingId=w.tracking_id, sessionId="s", eventList=[event("l-4", 1700000000, "i4", {"devise": "x"})])
    name = "lenient-export"
    job, _ = export_job(p, w.dataset_arn, name, out_dir)
    header, rows = read_csv(out_dir / f"{name}.csv")
    assert header == CUSTOM_HEADER, "undeclared keys get no column"
    assert rows == [["u1", "i1", "1700000000", "click", "", "", "tv", "1"]]


def test_one_bad_event_refuses_the_whole_request_and_every_problem_is_listed(p, ev, world, tmp_path):
    good = event("batch-1", 1700000000, "item-batch-1", {"numberOfRatings": 1})
    flagged = event("batch-2", 1700000000, "item-batch-2", {"colour": "red", "numberOfRatings": 1})
    bad_value = event("batch-3", 1700000000, "item-batch-3", {"numberOfRatings": "many"})
    missing = event("batch-4", 1700000000, "item-batch-4", {"device": "tv"})
    message = expect_error("InvalidInputException", ev.put_events, "2 validation errors detected",
                           "at 'eventList.3.member.properties'", "'numberOfRatings' (field NUMBER_OF_RATINGS",
                           "at 'eventList.4.member.properties'", "properties must contain 'numberOfRatings'",
                           trackingId=world.tracking_id, sessionId="s1", eventList=[good, flagged, bad_value, missing])
    assert "eventList.1" not in message and "eventList.2" not in message, "an undeclared key is not a refusal"
    items = {r["ITEM_ID"] for r in exported_rows(p, world.dataset_arn, new_account_dir())}
    assert not items & {"item-batch-1", "item-batch-2", "item-batch-3", "item-batch-4"}, \
        "nothing of a refused request is stored, the flagged event included"
