"""Dataset import jobs end to end, through boto3 and aws-cli against the real `interlog` binary (both engines):

* an import of each dataset type (interactions, items, users, actions, action interactions), read back by export
  jobs row by row;
* FULL (replaces the earlier bulk data, never the Put* data) and INCREMENTAL (adds; refused as a first import);
* imported interactions deduplicated with what is stored (the first copy wins);
* export jobs' ingestionMode after an import: BULK the imported rows, PUT the Put* rows, ALL both;
* one malformed-CSV test per rule (bad header, wrong type, too many columns, oversized field, bad UTF-8), each
  checking that failureReason names the file, the line and the rule and that nothing of the job is stored;
* sources: a file, a folder of .csv files in name order, and what is refused (outside the account's folder, a
  link, no import directory); ``s3://`` objects and prefixes from moto's server (skipped without ``moto_server``),
  a missing bucket failing the job with a reason;
* Describe / List / tags of import jobs, and a job a stop interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
import uuid
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import new_account_dir

ACCOUNT = "000000000000"
REGION = "us-east-1"
ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:"
ROLE_ARN = "arn:aws:iam::123456789012:role/interlog-import"
NS = "com.amazonaws.personalize.schema"
DEFAULT_SCHEMA_ARN = ARN + "schema/default-interactions"
JOB_TIMEOUT = 60.0


def avro(name: str, fields: list[dict]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": NS, "fields": fields, "version": "1.0"})


def fld(name: str, avro_type, **attrs) -> dict:
    return {"name": name, "type": avro_type, **attrs}


ITEMS_SCHEMA = avro("Items", [fld("ITEM_ID", "string"), fld("GENRES", ["null", "string"], categorical=True),
                              fld("PRICE", "float"), fld("IN_STOCK", ["null", "boolean"])])
USERS_SCHEMA = avro("Users", [fld("USER_ID", "string"), fld("AGE", "int")])
ACTIONS_SCHEMA = avro("Actions", [fld("ACTION_ID", "string"), fld("VALUE", ["null", "int"])])
ACTION_INTERACTIONS_SCHEMA = avro("ActionInteractions", [
    fld("USER_ID", "string"), fld("ACTION_ID", "string"), fld("TIMESTAMP", "long"), fld("EVENT_TYPE", "string"),
])
WITH_EVENT_ID_SCHEMA = avro("Interactions", [
    fld("EVENT_ID", ["null", "string"]), fld("USER_ID", "string"), fld("ITEM_ID", "string"),
    fld("TIMESTAMP", "long"), fld("EVENT_TYPE", "string"),
])
INTERACTIONS_HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,IMPRESSION"


def ok(response: dict) -> dict:
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _config() -> Config:
    return Config(retries={"total_max_attempts": 1}, parameter_validation=False)


@pytest.fixture(scope="session")
def import_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("import-root")


@pytest.fixture
def srv(server_factory, import_root):
    return server_factory(args=("--import-dir", str(import_root)))


@pytest.fixture
def p(srv, boto3_session):
    return boto3_session.client("personalize", endpoint_url=srv.endpoint, config=_config())


@pytest.fixture
def ev(srv, boto3_session):
    return boto3_session.client("personalize-events", endpoint_url=srv.endpoint, config=_config())


@pytest.fixture
def folder(import_root) -> Path:
    """A new folder in the root account's part of the import root."""
    d = import_root / ACCOUNT / uuid.uuid4().hex[:12]
    d.mkdir(parents=True)
    return d


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def dataset(p, group: str, dataset_type: str, schema: str | None) -> str:
    """A new dataset of a type in group `group` (made if missing), with a new schema (None: the default one)."""
    group_arn = ARN + f"dataset-group/{group}"
    try:
        ok(p.create_dataset_group(name=group))
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceAlreadyExistsException", e
    schema_arn = DEFAULT_SCHEMA_ARN
    if schema is not None:
        schema_arn = ok(p.create_schema(name=f"{group}-{dataset_type.lower()}", schema=schema))["schemaArn"]
    return ok(p.create_dataset(name=f"{group}-{dataset_type.lower()}", datasetGroupArn=group_arn,
                               datasetType=dataset_type, schemaArn=schema_arn))["datasetArn"]


def wait_import(p, arn: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        job = ok(p.describe_dataset_import_job(datasetImportJobArn=arn))["datasetImportJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED"):
            return job
        assert job["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS"), job
        assert time.monotonic() < deadline, f"import job still {job['status']}: {job}"
        time.sleep(0.02)


def start_import(p, dataset_arn: str, location: str, name: str | None = None, mode: str | None = None,
                 **extra) -> str:
    kwargs = {"jobName": name or f"imp-{uuid.uuid4().hex[:10]}", "datasetArn": dataset_arn,
              "dataSource": {"dataLocation": location}, "roleArn": ROLE_ARN, **extra}
    if mode is not None:
        kwargs["importMode"] = mode
    arn = ok(p.create_dataset_import_job(**kwargs))["datasetImportJobArn"]
    assert re.fullmatch(rf"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset-import-job/{kwargs['jobName']}", arn)
    return arn


def run_import(p, dataset_arn: str, location: str, **kwargs) -> dict:
    return wait_import(p, start_import(p, dataset_arn, location, **kwargs))


def export(p, dataset_arn: str, mode: str = "ALL") -> tuple[list[str], list[list[str]]]:
    """Header and rows of an export job of `dataset_arn` in `mode`."""
    out = new_account_dir()
    name = f"exp-{uuid.uuid4().hex[:10]}"
    arn = ok(p.create_dataset_export_job(jobName=name, datasetArn=dataset_arn, roleArn=ROLE_ARN, ingestionMode=mode,
                                         jobOutput={"s3DataDestination": {"path": f"file://{out}/"}}))
    arn = arn["datasetExportJobArn"]
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        job = ok(p.describe_dataset_export_job(datasetExportJobArn=arn))["datasetExportJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job["status"] == "ACTIVE", job
    rows = list(csv.reader(io.StringIO((out / f"{name}.csv").read_text("utf-8"), newline="")))
    return rows[0], rows[1:]


def put_events(ev, tracking_id: str, events: list[dict], user: str = "live-user"):
    ok(ev.put_events(trackingId=tracking_id, userId=user, sessionId="s1", eventList=events))


def tracker(p, group: str) -> str:
    return ok(p.create_event_tracker(name=f"{group}-tracker",
                                     datasetGroupArn=ARN + f"dataset-group/{group}"))["trackingId"]


# --------------------------------------------------------------------------------------------------------------------
# Interactions: BULK / PUT / ALL, FULL / INCREMENTAL, deduplication
# --------------------------------------------------------------------------------------------------------------------


def test_an_interactions_import_is_bulk_data_beside_the_put_events(p, ev, folder):
    ds = dataset(p, "shop", "Interactions", None)
    tid = tracker(p, "shop")
    put_events(ev, tid, [{"eventId": "live-1", "eventType": "click", "sentAt": 1_600_000_000, "itemId": "p1"}])
    write(folder, "history.csv", f"{INTERACTIONS_HEADER}\n"
          "u1,i1,1700000000,click,4.5,i1|i2|i3\n"
          "u2,i2,1700000100,purchase,,\n"
          "u1,i1,1700000000,click,4.5,i1|i2|i3\n")  # the same row twice is one event
    job = run_import(p, ds, f"file://{folder}/history.csv")
    assert job["status"] == "ACTIVE", job
    assert "failureReason" not in job
    header, bulk = export(p, ds, "BULK")
    assert header == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
                      "RECOMMENDATION_ID", "EVENT_ATTRIBUTION_SOURCE"]
    assert bulk == [["u1", "i1", "1700000000", "click", "4.5", "i1|i2|i3", "", ""],
                    ["u2", "i2", "1700000100", "purchase", "", "", "", ""]]
    _, put = export(p, ds, "PUT")
    assert put == [["live-user", "p1", "1600000000", "click", "", "", "", ""]]
    _, everything = export(p, ds, "ALL")
    assert sorted(everything) == sorted(put + bulk)
    # Live events after the import are PUT data, and the bulk rows stay.
    put_events(ev, tid, [{"eventId": "live-2", "eventType": "view", "sentAt": 1_600_000_001, "itemId": "p2"}])
    assert len(export(p, ds, "PUT")[1]) == 2
    assert export(p, ds, "BULK")[1] == bulk


def test_full_replaces_the_earlier_bulk_data_and_incremental_adds_to_it(p, ev, folder):
    ds = dataset(p, "modes", "Interactions", None)
    tid = tracker(p, "modes")
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE"
    write(folder, "a.csv", f"{header}\nu,a1,1,click\nu,a2,2,click\n")
    write(folder, "b.csv", f"{header}\nu,b1,3,click\nu,a1,1,click\n")
    write(folder, "c.csv", f"{header}\nu,c1,4,click\n")
    # A first import cannot be INCREMENTAL (the model: "you can only specify FULL").
    with pytest.raises(ClientError) as e:
        start_import(p, ds, f"file://{folder}/a.csv", mode="INCREMENTAL")
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    assert "must be FULL" in e.value.response["Error"]["Message"]
    put_events(ev, tid, [{"eventId": "live", "eventType": "view", "sentAt": 9, "itemId": "p"}])
    items = lambda rows: sorted(r[1] for r in rows)  # noqa: E731
    job = run_import(p, ds, f"file://{folder}/a.csv")  # FULL is the default
    assert (job["status"], job["importMode"]) == ("ACTIVE", "FULL")
    assert items(export(p, ds, "BULK")[1]) == ["a1", "a2"]
    job = run_import(p, ds, f"file://{folder}/b.csv", mode="INCREMENTAL")
    assert (job["status"], job["importMode"]) == ("ACTIVE", "INCREMENTAL")
    assert items(export(p, ds, "BULK")[1]) == ["a1", "a2", "b1"], "added, the repeated row once"
    assert run_import(p, ds, f"file://{folder}/c.csv", mode="FULL")["status"] == "ACTIVE"
    assert items(export(p, ds, "BULK")[1]) == ["c1"], "FULL replaced every earlier bulk row"
    assert items(export(p, ds, "PUT")[1]) == ["p"], "and none of the Put* data"
    assert items(export(p, ds, "ALL")[1]) == ["c1", "p"]


def test_imported_interactions_deduplicate_with_what_is_stored(p, ev, folder):
    ds = dataset(p, "dedup", "Interactions", WITH_EVENT_ID_SCHEMA)
    tid = tracker(p, "dedup")
    put_events(ev, tid, [{"eventId": "e1", "eventType": "click", "sentAt": 100, "itemId": "stored"}])
    write(folder, "events.csv", "EVENT_ID,USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
          "e1,u,imported,100,click\n"
          "e2,u,new,101,click\n"
          "e2,u,again,102,click\n")
    assert run_import(p, ds, f"file://{folder}/events.csv")["status"] == "ACTIVE"
    header, rows = export(p, ds, "ALL")
    assert header == ["EVENT_ID", "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
    # e1 was stored first: its stored copy wins; e2's first imported copy wins over its second.
    assert rows == [["", "live-user", "stored", "100", "click"], ["e2", "u", "new", "101", "click"]]
    assert export(p, ds, "BULK")[1] == [["e1", "u", "imported", "100", "click"], ["e2", "u", "new", "101", "click"]]


# --------------------------------------------------------------------------------------------------------------------
# The other dataset types
# --------------------------------------------------------------------------------------------------------------------


def test_items_users_actions_and_action_interactions_are_imported(p, ev, folder):
    items = dataset(p, "types", "Items", ITEMS_SCHEMA)
    users = dataset(p, "types", "Users", USERS_SCHEMA)
    actions = dataset(p, "types", "Actions", ACTIONS_SCHEMA)
    action_events = dataset(p, "types", "Action_Interactions", ACTION_INTERACTIONS_SCHEMA)
    ok(ev.put_items(datasetArn=items, items=[{"itemId": "put-item", "properties": json.dumps({"price": 1.5})}]))
    write(folder, "items.csv", "item_id,GENRES,PRICE,IN_STOCK\n"
          "i1,horror|comedy,4.5,true\n"
          "i2,,3,\n"
          "i1,drama,5,false\n")  # the later row of an ID wins, as in put_records
    write(folder, "users.csv", "USER_ID,AGE\nu1,35\nu2,41\n")
    write(folder, "actions.csv", "ACTION_ID,VALUE\na1,100\na2,\n")
    write(folder, "action_interactions.csv", "USER_ID,ACTION_ID,TIMESTAMP,EVENT_TYPE\nu1,a1,1700000000,Taken\n"
          "u2,a2,1700000001,Not Taken\n")
    for arn, name in [(items, "items"), (users, "users"), (actions, "actions"),
                      (action_events, "action_interactions")]:
        job = run_import(p, arn, f"file://{folder}/{name}.csv")
        assert job["status"] == "ACTIVE", job
    assert export(p, items, "ALL") == (["ITEM_ID", "GENRES", "PRICE", "IN_STOCK"],
                                       [["i1", "drama", "5", "false"], ["i2", "", "3", ""], ["put-item", "", "1.5", ""]])
    assert export(p, items, "BULK")[1] == [["i1", "drama", "5", "false"], ["i2", "", "3", ""]]
    assert export(p, items, "PUT")[1] == [["put-item", "", "1.5", ""]]
    assert export(p, users, "ALL") == (["USER_ID", "AGE"], [["u1", "35"], ["u2", "41"]])
    assert export(p, actions, "ALL") == (["ACTION_ID", "VALUE"], [["a1", "100"], ["a2", ""]])
    assert export(p, action_events, "BULK") == (
        ["USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"],
        [["u1", "a1", "1700000000", "Taken"], ["u2", "a2", "1700000001", "Not Taken"]])
    # A Put* write of an imported ID replaces it, and the row is PUT data from then on.
    ok(ev.put_items(datasetArn=items, items=[{"itemId": "i2", "properties": json.dumps({"price": 9})}]))
    assert export(p, items, "BULK")[1] == [["i1", "drama", "5", "false"]]


# --------------------------------------------------------------------------------------------------------------------
# Malformed files: one test per rule
# --------------------------------------------------------------------------------------------------------------------

GOOD = "u1,i1,1700000000,click,,\nu2,i2,1700000001,click,,\n"
MALFORMED = [
    # (case, file bytes, line, fragments of the reason)
    ("bad-header", (INTERACTIONS_HEADER + ",COLOUR\n" + GOOD).encode(), 1,
     ["line 1 (the header)", "'COLOUR', is not a field of the schema"]),
    ("wrong-type", (INTERACTIONS_HEADER + "\n" + GOOD + "u3,i3,yesterday,click,,\n").encode(), 4,
     ["line 4, column TIMESTAMP", "must be an integer"]),
    ("too-many-columns", (INTERACTIONS_HEADER + "\n" + GOOD + "u3,i3,1700000002,click,,,extra\n").encode(), 4,
     ["line 4", "too many columns: the row has 7 fields, the header 6"]),
    ("oversized-field", (INTERACTIONS_HEADER + "\n" + GOOD + f"u3,{'x' * 257},1700000002,click,,\n").encode(), 4,
     ["line 4, column ITEM_ID", "has 257 characters; at most 256"]),
    ("bad-utf8", (INTERACTIONS_HEADER + "\n" + GOOD).encode() + b"u\xff3,i3,1700000002,click,,\n", 4,
     ["line 4, column USER_ID", "not valid UTF-8"]),
    # Spreadsheets save CRLF line ends (so do interlog's exports) and blank lines: lines are still counted exactly.
    ("crlf-and-blank-lines", (INTERACTIONS_HEADER + "\r\n" + GOOD.replace("\n", "\r\n") + "\r\n"
                              + "u3,i3,yesterday,click,,\r\n").encode(), 5,
     ["line 5, column TIMESTAMP", "must be an integer"]),
]


@pytest.mark.parametrize("case,data,line,fragments", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_fails_the_job_naming_file_line_and_rule_and_stores_nothing(p, ev, folder, case, data,
                                                                                    line, fragments):
    ds = dataset(p, "bad", "Interactions", None)
    tid = tracker(p, "bad")
    put_events(ev, tid, [{"eventId": "live", "eventType": "view", "sentAt": 5, "itemId": "p"}])
    write(folder, f"{case}.csv", data)
    job = run_import(p, ds, f"file://{folder}/{case}.csv")
    assert job["status"] == "CREATE FAILED", job
    reason = job["failureReason"]
    assert reason.startswith(f"{case}.csv: line {line}"), reason
    for fragment in fragments:
        assert fragment in reason, reason
    assert str(folder) not in reason, "no server path in the reason"
    # The good rows before the bad line were not stored either.
    assert export(p, ds, "BULK")[1] == []
    assert [r[1] for r in export(p, ds, "ALL")[1]] == ["p"]
    summary = ok(p.list_dataset_import_jobs(datasetArn=ds))["datasetImportJobs"][0]
    assert (summary["status"], summary["failureReason"]) == ("CREATE FAILED", reason)


# --------------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------------


def test_a_folder_is_every_csv_file_in_it_in_name_order(p, folder):
    ds = dataset(p, "folder", "Items", ITEMS_SCHEMA)
    write(folder, "2-later.csv", "ITEM_ID,PRICE\ni1,2\ni3,3\n")
    write(folder, "1-first.csv", "ITEM_ID,PRICE,GENRES\ni1,1,a\ni2,1,b\n")
    write(folder, "notes.txt", "not,a,csv\n")
    (folder / "deeper").mkdir()
    write(folder / "deeper", "0.csv", "ITEM_ID,PRICE\nhidden,1\n")
    assert run_import(p, ds, f"file://{folder}/")["status"] == "ACTIVE"
    # 2-later.csv came second, so its i1 wins; the folder below and the .txt file are not read.
    assert export(p, ds, "BULK")[1] == [["i1", "", "2", ""], ["i2", "b", "1", ""], ["i3", "", "3", ""]]
    # A failure in the second file names that file; nothing of the first is stored.
    write(folder, "3-broken.csv", "ITEM_ID,PRICE\ni9,cheap\n")
    job = run_import(p, ds, f"file://{folder}", mode="INCREMENTAL")
    assert job["status"] == "CREATE FAILED"
    assert job["failureReason"].startswith("3-broken.csv: line 2: "), job
    assert "must be a finite number" in job["failureReason"]
    assert len(export(p, ds, "BULK")[1]) == 3


def test_sources_the_server_refuses(p, folder, import_root, server_factory, boto3_session):
    ds = dataset(p, "refused", "Interactions", None)
    write(folder, "ok.csv", f"{INTERACTIONS_HEADER}\n{GOOD}")
    other = import_root / "111122223333"
    other.mkdir(exist_ok=True)
    write(other, "theirs.csv", f"{INTERACTIONS_HEADER}\n{GOOD}")
    os.symlink(folder / "ok.csv", folder / "link.csv")
    cases = [
        (f"file://{other}/theirs.csv", "outside this account's folder"),
        (f"file://{folder}/link.csv", "symbolic link"),
        (f"file://{folder}/missing.csv", "does not exist"),
        (f"file://{folder}/../{folder.name}/ok.csv", "'..'"),
        ("ftp://bucket/x.csv", "Member must satisfy regular expression pattern"),
    ]
    for location, fragment in cases:
        with pytest.raises(ClientError) as e:
            start_import(p, ds, location)
        assert e.value.response["Error"]["Code"] == "InvalidInputException", location
        assert fragment in e.value.response["Error"]["Message"], (location, e.value.response["Error"]["Message"])
    assert ok(p.list_dataset_import_jobs(datasetArn=ds))["datasetImportJobs"] == [], "a refused source is no job"
    # A location S3 cannot name is refused before a job exists.
    with pytest.raises(ClientError) as e:
        start_import(p, ds, "s3://B!/history/")
    assert "does not name a valid bucket" in e.value.response["Error"]["Message"]
    # A server without --import-dir takes no file:// source.
    bare = server_factory()
    p2 = boto3_session.client("personalize", endpoint_url=bare.endpoint, config=_config())
    with pytest.raises(ClientError) as e:
        start_import(p2, ARN + "dataset/default/INTERACTIONS", f"file://{folder}/ok.csv")
    assert "--import-dir" in e.value.response["Error"]["Message"]


# --------------------------------------------------------------------------------------------------------------------
# Describe, List, tags, a running job, a stop
# --------------------------------------------------------------------------------------------------------------------


def test_describe_list_and_tags_follow_the_model(p, folder):
    ds = dataset(p, "described", "Users", USERS_SCHEMA)
    write(folder, "users.csv", "USER_ID,AGE\nu1,3\n")
    arn = start_import(p, ds, f"file://{folder}/users.csv", name="users-1", publishAttributionMetricsToS3=True,
                       tags=[{"tagKey": "team", "tagValue": "data"}])
    job = wait_import(p, arn)
    assert set(job) == {"jobName", "datasetImportJobArn", "datasetArn", "dataSource", "roleArn", "status",
                        "creationDateTime", "lastUpdatedDateTime", "importMode", "publishAttributionMetricsToS3"}
    assert (job["jobName"], job["datasetArn"], job["dataSource"], job["roleArn"], job["importMode"]) == (
        "users-1", ds, {"dataLocation": f"file://{folder}/users.csv"}, ROLE_ARN, "FULL")
    assert job["publishAttributionMetricsToS3"] is True
    assert job["lastUpdatedDateTime"] >= job["creationDateTime"]
    assert ok(p.list_tags_for_resource(resourceArn=arn))["tags"] == [{"tagKey": "team", "tagValue": "data"}]
    ok(p.tag_resource(resourceArn=arn, tags=[{"tagKey": "b", "tagValue": "2"}]))
    assert len(ok(p.list_tags_for_resource(resourceArn=arn))["tags"]) == 2
    arn2 = start_import(p, ds, f"file://{folder}/users.csv", name="users-2", mode="INCREMENTAL")
    wait_import(p, arn2)
    listed = ok(p.list_dataset_import_jobs(datasetArn=ds, maxResults=1))
    assert len(listed["datasetImportJobs"]) == 1 and "nextToken" in listed
    summary = listed["datasetImportJobs"][0]
    assert set(summary) == {"datasetImportJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime",
                            "importMode"}
    rest = ok(p.list_dataset_import_jobs(datasetArn=ds, nextToken=listed["nextToken"]))["datasetImportJobs"]
    assert sorted(j["jobName"] for j in listed["datasetImportJobs"] + rest) == ["users-1", "users-2"]
    assert len(ok(p.list_dataset_import_jobs())["datasetImportJobs"]) == 2
    with pytest.raises(ClientError) as e:
        start_import(p, ds, f"file://{folder}/users.csv", name="users-1")
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        p.describe_dataset_import_job(datasetImportJobArn=ARN + "dataset-import-job/nope")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        p.create_dataset_import_job(jobName="j", datasetArn=ds, dataSource={})
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    assert "dataSource.dataLocation" in e.value.response["Error"]["Message"]


def test_a_job_a_stop_interrupted_fails_after_the_restart_and_the_dataset_can_be_imported_again(
        server_factory, import_root, boto3_session, tmp_path, folder):
    gate = tmp_path / "gate"
    gate.write_text("hold")
    srv = server_factory(args=("--import-dir", str(import_root)), env={"INTERLOG_TEST_IMPORT_JOB_GATE": str(gate)})
    p = boto3_session.client("personalize", endpoint_url=srv.endpoint, config=_config())
    ds = dataset(p, "stopped", "Users", USERS_SCHEMA)
    write(folder, "users.csv", "USER_ID,AGE\nu1,3\n")
    arn = start_import(p, ds, f"file://{folder}/users.csv")
    deadline = time.monotonic() + JOB_TIMEOUT
    while ok(p.describe_dataset_import_job(datasetImportJobArn=arn))["datasetImportJob"]["status"] != \
            "CREATE IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # A second import of the dataset waits for the first.
    with pytest.raises(ClientError) as e:
        start_import(p, ds, f"file://{folder}/users.csv")
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"
    srv.kill()
    gate.unlink()
    srv.start()
    p = boto3_session.client("personalize", endpoint_url=srv.endpoint, config=_config())
    job = ok(p.describe_dataset_import_job(datasetImportJobArn=arn))["datasetImportJob"]
    assert job["status"] == "CREATE FAILED"
    assert "stopped while the job was running" in job["failureReason"]
    assert run_import(p, ds, f"file://{folder}/users.csv")["status"] == "ACTIVE"
    assert export(p, ds, "BULK")[1] == [["u1", "3"]]


def test_aws_cli_imports_and_describes(srv, aws, folder, p):
    ds = dataset(p, "cli", "Interactions", None)
    write(folder, "cli.csv", f"{INTERACTIONS_HEADER}\nu1,i1,1700000000,click,,\n")
    done = aws("personalize", "create-dataset-import-job", "--endpoint-url", srv.endpoint, "--job-name", "cli-job",
               "--dataset-arn", ds, "--data-source", f"dataLocation=file://{folder}/cli.csv", "--role-arn", ROLE_ARN,
               "--import-mode", "FULL")
    arn = json.loads(done.stdout)["datasetImportJobArn"]
    job = wait_import(p, arn)
    assert job["status"] == "ACTIVE", job
    done = aws("personalize", "describe-dataset-import-job", "--endpoint-url", srv.endpoint,
               "--dataset-import-job-arn", arn)
    described = json.loads(done.stdout)["datasetImportJob"]
    assert (described["status"], described["importMode"], described["jobName"]) == ("ACTIVE", "FULL", "cli-job")
    done = aws("personalize", "list-dataset-import-jobs", "--endpoint-url", srv.endpoint, "--dataset-arn", ds)
    assert [j["jobName"] for j in json.loads(done.stdout)["datasetImportJobs"]] == ["cli-job"]
    assert export(p, ds, "BULK")[1] == [["u1", "i1", "1700000000", "click", "", "", "", ""]]


# --------------------------------------------------------------------------------------------------------------------
# s3:// sources, against moto's server (test_s3_export.py starts it the same way)
# --------------------------------------------------------------------------------------------------------------------


def test_s3_objects_and_prefixes_are_imported(server_factory, import_root, boto3_session, tmp_path):
    from test_s3_export import MOTO_SERVER, Moto, s3_env

    if not MOTO_SERVER.exists():
        pytest.skip(f"moto_server not installed beside {MOTO_SERVER.parent} "
                    "(pip install -r tests/python/requirements-boto3.txt)")
    moto = Moto(tmp_path)
    try:
        s3 = moto.client()
        s3.create_bucket(Bucket="history")
        s3.put_object(Bucket="history", Key="users/2.csv", Body=b"USER_ID,AGE\nu2,41\nu1,36\n")
        s3.put_object(Bucket="history", Key="users/1.csv", Body=b"USER_ID,AGE\nu1,35\n")
        s3.put_object(Bucket="history", Key="users/readme.txt", Body=b"not imported")
        s3.put_object(Bucket="history", Key="bad.csv", Body=b"USER_ID,AGE\nu3,old\n")
        srv = server_factory(args=("--import-dir", str(import_root)), env=s3_env(moto.url, tmp_path))
        p = boto3_session.client("personalize", endpoint_url=srv.endpoint, config=_config())
        ds = dataset(p, "s3", "Users", USERS_SCHEMA)
        job = run_import(p, ds, "s3://history/users/")
        assert job["status"] == "ACTIVE", job
        # 1.csv then 2.csv: the later u1 wins; the .txt object is not read.
        assert export(p, ds, "BULK")[1] == [["u1", "36"], ["u2", "41"]]
        job = run_import(p, ds, "s3://history/bad.csv", mode="INCREMENTAL")
        assert job["status"] == "CREATE FAILED"
        assert job["failureReason"].startswith("bad.csv: line 2"), job
        assert "must be an integer" in job["failureReason"]
        job = run_import(p, ds, "s3://no-such-bucket/users/", mode="INCREMENTAL")
        assert job["status"] == "CREATE FAILED"
        assert "no-such-bucket" in job["failureReason"], job
        assert export(p, ds, "BULK")[1] == [["u1", "36"], ["u2", "41"]], "failed jobs stored nothing"
    finally:
        moto.stop()
