"""Parquet exports read back with pyarrow and compared with the CSV export value by value, for every dataset type
(Interactions, Items, Users, Actions, Action_Interactions) and every property type (string, categorical string, int,
long, float, double, boolean, nullable or not): through `interlog export --format parquet` (offline and through the
server's endpoint) and through an export job tagged ``interlog:format=parquet`` (docs/api.md).

Run on both engines (``INTERLOG_TEST_ENGINE``).
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, INTERLOG_BIN, SECRET_ACCESS_KEY, client_env, new_account_dir, parse_export, run_export
from test_control_plane import ROLE_ARN, avro, export_job, fld, ok
from test_put_records import TYPES, action_interaction, item, make_shop, props

pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install -r tests/python/requirements-boto3.txt)")
pq = pytest.importorskip("pyarrow.parquet")

INTERACTIONS_FIELDS = [
    fld("USER_ID", "string"),
    fld("ITEM_ID", "string"),
    fld("TIMESTAMP", "long"),
    fld("EVENT_TYPE", "string"),
    fld("EVENT_VALUE", ["null", "float"]),
    fld("IMPRESSION", ["null", "string"]),
    fld("RECOMMENDATION_ID", ["null", "string"]),
    fld("DEVICE", ["null", "string"], categorical=True),
    fld("RATING", ["null", "double"]),
    fld("VIEWS", ["null", "long"]),
    fld("PAGE", "int"),
    fld("PREMIUM", ["null", "boolean"]),
]
ARROW_TYPES = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "float": pa.float64(),
               "double": pa.float64(), "boolean": pa.bool_()}


def base_type(avro_type) -> str:
    return avro_type if isinstance(avro_type, str) else next(t for t in avro_type if t != "null")


def parsed(cell: str, avro_type: str):
    """What a CSV cell is as a typed value: an empty cell is a null."""
    if cell == "":
        return None
    if avro_type in ("int", "long"):
        return int(cell)
    if avro_type in ("float", "double"):
        return float(cell)
    if avro_type == "boolean":
        assert cell in ("true", "false"), cell
        return cell == "true"
    return cell


def assert_same(parquet: bytes, csv_rows: list[dict], fields: list[dict]):
    """The Parquet file has the schema's columns with their types and, row by row, the CSV's values."""
    table = pq.read_table(io.BytesIO(parquet))
    assert table.column_names == [f["name"] for f in fields]
    for f in fields:
        assert table.schema.field(f["name"]).type == ARROW_TYPES[base_type(f["type"])], f
        assert table.schema.field(f["name"]).nullable
    got = table.to_pylist()
    assert len(got) == len(csv_rows)
    for i, (row, csv_row) in enumerate(zip(got, csv_rows)):
        for f in fields:
            want = parsed(csv_row[f["name"]], base_type(f["type"]))
            value = row[f["name"]]
            if isinstance(want, float):
                assert isinstance(value, float) and math.isclose(value, want, rel_tol=0, abs_tol=0), (i, f, row)
            else:
                assert value == want and type(value) is type(want), (i, f["name"], value, want)


def p_client(boto3_session, server):
    return boto3_session.client("personalize", endpoint_url=server.endpoint,
                                config=Config(retries={"total_max_attempts": 1}, proxies={}))


def ev_client(boto3_session, server):
    return boto3_session.client("personalize-events", endpoint_url=server.endpoint,
                                config=Config(retries={"total_max_attempts": 1}, proxies={}))


@pytest.fixture(scope="module")
def world(module_server, boto3_session):
    """Every dataset type with data of every property type, on one server."""
    p, ev = p_client(boto3_session, module_server), ev_client(boto3_session, module_server)
    shop = make_shop(p, "pq")
    group = ok(p.create_dataset_group(name="pq-events"))["datasetGroupArn"]
    schema = ok(p.create_schema(name="pq-interactions", schema=avro(INTERACTIONS_FIELDS)))["schemaArn"]
    interactions = ok(p.create_dataset(name="pq-interactions", schemaArn=schema, datasetGroupArn=group,
                                       datasetType="Interactions"))["datasetArn"]
    tracker = ok(p.create_event_tracker(name="pq-tracker", datasetGroupArn=group))["trackingId"]
    events = []
    for i in range(40):
        e = {"eventId": f"e{i}", "eventType": "watch", "itemId": f"item,{i % 7}", "sentAt": 1_700_000_000 + i * 1.5,
             "properties": json.dumps({"page": i, **({"device": "phone|tv"} if i % 2 else {}),
                                       **({"rating": i / 3, "views": 2**40 + i, "premium": i % 3 == 0} if i % 4 else {})})}
        if i % 5:
            e["eventValue"] = i * 0.1
        if i % 3 == 0:
            e["impression"] = [f"item,{i % 7}", "ünï \"x\""]
            e["recommendationId"] = f"rid-{i}"
        events.append(e)
    for start in range(0, len(events), 10):
        ok(ev.put_events(trackingId=tracker, userId=f"u{start}", sessionId="s", eventList=events[start:start + 10]))
    ok(ev.put_events(trackingId=tracker, sessionId="anonymous", eventList=[
        {"eventId": "anon", "eventType": "watch", "itemId": "i", "sentAt": 1_700_000_500, "properties": '{"page": 0}'}]))
    ok(ev.put_items(datasetArn=shop.items, items=[
        item("i1", genres="Horror|Action", price="9.5", inStock=True, description="A film, \"quoted\", ✓"),
        item("i2", price=12),
        {"itemId": "ünï, code", "properties": props({"PRICE": 0.25, "in_stock": "false"})},
    ]))
    ok(ev.put_users(datasetArn=shop.users, users=[
        {"userId": "u1", "properties": props({"membership": "Member|Frequent shopper", "age": "45"})},
        {"userId": "u2"},
    ]))
    ok(ev.put_actions(datasetArn=shop.actions, actions=[
        {"actionId": "a1", "properties": props({"value": 100, "repeatFrequency": 7})},
        {"actionId": "a2", "properties": props({"value": "9007199254740993"})},
    ]))
    ok(ev.put_action_interactions(trackingId=shop.tracking_id, actionInteractions=[
        action_interaction("a1", "Taken", eventId="ai-1", userId="u1", recommendationId="RID-1",
                           impression=["a1", "a2"], properties={"device": "phone|tablet"}),
        action_interaction("a2", "Not Taken", eventId="ai-2", timestamp=1700000001.75),
    ]))
    datasets = {interactions: INTERACTIONS_FIELDS}
    for arn, (_, _, fields) in zip([shop.items, shop.users, shop.actions, shop.action_interactions], TYPES.values()):
        datasets[arn] = fields
    return p, datasets


def test_every_dataset_type_reads_back_as_the_csv(module_server, world):
    _, datasets = world
    for arn, fields in datasets.items():
        csv_rows = parse_export(run_export(module_server.data_dir, "csv", dataset_arn=arn), "csv")
        assert csv_rows, arn
        assert_same(run_export(module_server.data_dir, "parquet", dataset_arn=arn), csv_rows, fields)


def test_the_server_endpoint_exports_parquet(module_server, world, tmp_path):
    _, datasets = world
    arn = next(iter(datasets))
    cmd = [str(INTERLOG_BIN), "export", "--endpoint-url", module_server.endpoint, "--dataset-arn", arn,
           "--format", "parquet", "--output", "-"]
    done = subprocess.run(cmd, capture_output=True, timeout=120, env=client_env(tmp_path, {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "AWS_DEFAULT_REGION": "us-east-1"}))
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout == run_export(module_server.data_dir, "parquet", dataset_arn=arn)
    csv_rows = parse_export(run_export(module_server.data_dir, "csv", dataset_arn=arn), "csv")
    assert_same(done.stdout, csv_rows, datasets[arn])


def test_an_export_job_tagged_parquet_writes_parquet(module_server, world):
    p, datasets = world
    for arn, fields in datasets.items():
        out = new_account_dir()
        name = f"pq-{uuid.uuid4().hex[:10]}"
        job, _ = export_job(p, arn, name, out, tags=[{"tagKey": "interlog:format", "tagValue": "parquet"}])
        assert job["status"] == "ACTIVE", job
        assert sorted(f.name for f in out.iterdir()) == [f"{name}.parquet"]
        csv_rows = parse_export(run_export(module_server.data_dir, "csv", dataset_arn=arn), "csv")
        assert_same((out / f"{name}.parquet").read_bytes(), csv_rows, fields)
        tags = p.list_tags_for_resource(resourceArn=job["datasetExportJobArn"])["tags"]
        assert {"tagKey": "interlog:format", "tagValue": "parquet"} in tags


def test_an_unknown_format_tag_is_refused(module_server, world):
    p, datasets = world
    with pytest.raises(ClientError) as e:
        p.create_dataset_export_job(jobName="bad-format", datasetArn=next(iter(datasets)), roleArn=ROLE_ARN,
                                    jobOutput={"s3DataDestination": {"path": f"file://{new_account_dir()}/"}},
                                    tags=[{"tagKey": "interlog:format", "tagValue": "xlsx"}])
    assert e.value.response["Error"]["Code"] == "InvalidInputException"
    assert e.value.response["Error"]["Message"] == \
        "The tag interlog:format chooses the export's format: csv or parquet, not 'xlsx'"


def test_an_empty_dataset_is_a_parquet_file_with_its_columns(server, boto3_session):
    p = p_client(boto3_session, server)
    group = ok(p.create_dataset_group(name="empty"))["datasetGroupArn"]
    schema = ok(p.create_schema(name="empty-interactions", schema=avro(INTERACTIONS_FIELDS)))["schemaArn"]
    arn = ok(p.create_dataset(name="empty", schemaArn=schema, datasetGroupArn=group,
                              datasetType="Interactions"))["datasetArn"]
    assert_same(run_export(server.data_dir, "parquet", dataset_arn=arn), [], INTERACTIONS_FIELDS)
