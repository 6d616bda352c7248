"""PutItems, PutUsers, PutActions and PutActionInteractions end to end against the real `interlog` binary.

* items, users, actions and action interactions put with boto3 and with aws-cli, read back field by field through an
  export job (CreateDatasetExportJob) and through `interlog export --dataset-arn`;
* latest write wins for items, users and actions, across requests and across a restart (SIGTERM and SIGKILL); the first copy of an action
  interaction's eventId wins, and an eventId is generated when absent;
* every error type of the four operations, one table, each case leaving every dataset unchanged;
* the action-interaction tracker: exposed by DescribeDataset, usable with PutActionInteractions only, retired with its
  dataset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, INTERLOG_BIN, SECRET_ACCESS_KEY, new_account_dir, parse_export, \
    signed_request
from test_control_plane import ROLE_ARN, avro, export_job, fld, ok, read_csv

REGION = "us-east-1"
ACCOUNT = "000000000000"

ITEMS_FIELDS = [
    fld("ITEM_ID", "string"),
    fld("GENRES", ["null", "string"], categorical=True),
    fld("PRICE", "float"),
    fld("IN_STOCK", ["null", "boolean"]),
    fld("DESCRIPTION", ["null", "string"], textual=True),
]
USERS_FIELDS = [fld("USER_ID", "string"), fld("MEMBERSHIP", ["null", "string"], categorical=True),
                fld("AGE", ["null", "int"])]
ACTIONS_FIELDS = [fld("ACTION_ID", "string"), fld("VALUE", ["null", "long"]), fld("REPEAT_FREQUENCY", ["null", "int"])]
ACTION_INTERACTIONS_FIELDS = [
    fld("USER_ID", "string"),
    fld("ACTION_ID", "string"),
    fld("TIMESTAMP", "long"),
    fld("EVENT_TYPE", "string"),
    fld("IMPRESSION", ["null", "string"]),
    fld("RECOMMENDATION_ID", ["null", "string"]),
    fld("DEVICE", ["null", "string"], categorical=True),
]
TYPES = {
    "Items": ("ITEMS", "Items", ITEMS_FIELDS),
    "Users": ("USERS", "Users", USERS_FIELDS),
    "Actions": ("ACTIONS", "Actions", ACTIONS_FIELDS),
    "Action_Interactions": ("ACTION_INTERACTIONS", "ActionInteractions", ACTION_INTERACTIONS_FIELDS),
}


@dataclass
class Shop:
    """A dataset group with an Items, a Users, an Actions and an Action_Interactions dataset."""

    group_arn: str
    items: str
    users: str
    actions: str
    action_interactions: str
    tracking_id: str


def make_shop(p, name: str) -> Shop:
    group = ok(p.create_dataset_group(name=name))["datasetGroupArn"]
    arns = {}
    for api_type, (segment, schema_name, fields) in TYPES.items():
        schema = ok(p.create_schema(name=f"{name}-{segment.lower()}", schema=avro(fields, name=schema_name)))
        arn = ok(p.create_dataset(name=f"{name}-{segment.lower()}", schemaArn=schema["schemaArn"],
                                  datasetGroupArn=group, datasetType=api_type))["datasetArn"]
        assert arn == f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/{name}/{segment}"
        arns[segment] = arn
    described = ok(p.describe_dataset(datasetArn=arns["ACTION_INTERACTIONS"]))["dataset"]
    tracking_id = described["trackingId"]
    uuid.UUID(tracking_id)
    for segment in ("ITEMS", "USERS", "ACTIONS"):
        assert "trackingId" not in ok(p.describe_dataset(datasetArn=arns[segment]))["dataset"]
    return Shop(group, arns["ITEMS"], arns["USERS"], arns["ACTIONS"], arns["ACTION_INTERACTIONS"], tracking_id)


def _config() -> Config:
    return Config(retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False, proxies={},
                  connect_timeout=10, read_timeout=60)


@pytest.fixture(scope="module")
def p(module_server, boto3_session):
    return boto3_session.client("personalize", endpoint_url=module_server.endpoint, config=_config())


@pytest.fixture(scope="module")
def ev(module_server, boto3_session):
    return boto3_session.client("personalize-events", endpoint_url=module_server.endpoint, config=_config())


@pytest.fixture(scope="module")
def shop(p) -> Shop:
    return make_shop(p, "shop")


def props(d: dict) -> str:
    return json.dumps(d)


def item(item_id: str, **properties) -> dict:
    return {"itemId": item_id, "properties": props(properties)} if properties else {"itemId": item_id}


def action_interaction(action_id: str, event_type: str = "Taken", **members) -> dict:
    a = {"actionId": action_id, "sessionId": "s1", "timestamp": 1700000000, "eventType": event_type, **members}
    if isinstance(a.get("properties"), dict):
        a["properties"] = props(a["properties"])
    return a


def job_rows(p, dataset_arn: str) -> tuple[list[str], list[dict]]:
    """Header and rows of an export job of the dataset (CSV, written by the server)."""
    out = new_account_dir()
    name = f"records-{uuid.uuid4().hex[:12]}"
    job, _ = export_job(p, dataset_arn, name, out)
    assert job["status"] == "ACTIVE", job
    header, rows = read_csv(out / f"{name}.csv")
    return header, [dict(zip(header, r)) for r in rows]


def snapshot(export, server, shop: Shop) -> dict:
    """Every dataset of the shop as `interlog export --dataset-arn` reads it (jsonl: every stored member)."""
    return {arn: export(server.data_dir, "jsonl", dataset_arn=arn)
            for arn in (shop.items, shop.users, shop.actions, shop.action_interactions)}


# --------------------------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------------------------


def test_items_users_and_actions_read_back_field_by_field(module_server, p, ev, shop, export):
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
    expected = {
        shop.items: (["ITEM_ID", "GENRES", "PRICE", "IN_STOCK", "DESCRIPTION"], [
            {"ITEM_ID": "i1", "GENRES": "Horror|Action", "PRICE": "9.5", "IN_STOCK": "true",
             "DESCRIPTION": "A film, \"quoted\", ✓"},
            {"ITEM_ID": "i2", "GENRES": "", "PRICE": "12", "IN_STOCK": "", "DESCRIPTION": ""},
            {"ITEM_ID": "ünï, code", "GENRES": "", "PRICE": "0.25", "IN_STOCK": "false", "DESCRIPTION": ""},
        ]),
        shop.users: (["USER_ID", "MEMBERSHIP", "AGE"], [
            {"USER_ID": "u1", "MEMBERSHIP": "Member|Frequent shopper", "AGE": "45"},
            {"USER_ID": "u2", "MEMBERSHIP": "", "AGE": ""},
        ]),
        shop.actions: (["ACTION_ID", "VALUE", "REPEAT_FREQUENCY"], [
            {"ACTION_ID": "a1", "VALUE": "100", "REPEAT_FREQUENCY": "7"},
            {"ACTION_ID": "a2", "VALUE": "9007199254740993", "REPEAT_FREQUENCY": ""},
        ]),
    }
    for arn, (header, rows) in expected.items():
        got_header, got_rows = job_rows(p, arn)
        assert got_header == header, arn
        assert got_rows == rows, arn
        # `interlog export --dataset-arn` writes the same CSV as the export job.
        assert export(module_server.data_dir, "csv", dataset_arn=arn) == rows, arn
    lines = export(module_server.data_dir, "jsonl", dataset_arn=shop.users)
    assert [(line["userId"], line.get("properties")) for line in lines] == [
        ("u1", props({"membership": "Member|Frequent shopper", "age": "45"})), ("u2", None)]


def test_action_interactions_read_back_first_copy_wins_and_event_ids_are_generated(module_server, p, ev, shop,
                                                                                  export):
    t = shop.tracking_id
    ok(ev.put_action_interactions(trackingId=t, actionInteractions=[
        action_interaction("a1", "Taken", eventId="ai-1", userId="u1", recommendationId="RID-1",
                           impression=["a1", "a2"], properties={"device": "phone|tablet"}),
        action_interaction("a2", "Not Taken", eventId="ai-2", timestamp=1700000001.75),
        action_interaction("a3", "Viewed", userId="u2"),
    ]))
    # A retry with changed members: the first copy of each eventId wins.
    ok(ev.put_action_interactions(trackingId=t, actionInteractions=[
        action_interaction("changed", "Viewed", eventId="ai-1"),
        action_interaction("a4", "Viewed", eventId="ai-4", userId="u3"),
    ]))
    header, rows = job_rows(p, shop.action_interactions)
    assert header == [f["name"] for f in ACTION_INTERACTIONS_FIELDS]
    assert rows == [
        {"USER_ID": "u1", "ACTION_ID": "a1", "TIMESTAMP": "1700000000", "EVENT_TYPE": "Taken", "IMPRESSION": "a1|a2",
         "RECOMMENDATION_ID": "RID-1", "DEVICE": "phone|tablet"},
        {"USER_ID": "", "ACTION_ID": "a2", "TIMESTAMP": "1700000001", "EVENT_TYPE": "Not Taken", "IMPRESSION": "",
         "RECOMMENDATION_ID": "", "DEVICE": ""},
        {"USER_ID": "u2", "ACTION_ID": "a3", "TIMESTAMP": "1700000000", "EVENT_TYPE": "Viewed", "IMPRESSION": "",
         "RECOMMENDATION_ID": "", "DEVICE": ""},
        {"USER_ID": "u3", "ACTION_ID": "a4", "TIMESTAMP": "1700000000", "EVENT_TYPE": "Viewed", "IMPRESSION": "",
         "RECOMMENDATION_ID": "", "DEVICE": ""},
    ]
    assert export(module_server.data_dir, "csv", dataset_arn=shop.action_interactions) == rows
    lines = export(module_server.data_dir, "jsonl", dataset_arn=shop.action_interactions)
    assert [line["eventId"] for line in lines][:2] == ["ai-1", "ai-2"]
    uuid.UUID(lines[2]["eventId"])  # generated
    assert str(lines[1]["timestamp"]) == "1700000001.75", "the timestamp is kept with its precision"
    assert lines[0]["sessionId"] == "s1" and lines[0]["impression"] == ["a1", "a2"]


def test_undeclared_keys_of_records_and_action_interactions_are_kept_flagged_and_stored(server, boto3_session,
                                                                                        export):
    """Issue 10's rule on every Put*: an undeclared key is kept, the record flagged; the flag is stored with it
    (JSONL export), the CSV has no column for it, and each flagged record counts once in the stats."""
    p = boto3_session.client("personalize", endpoint_url=server.endpoint, config=_config())
    ev = boto3_session.client("personalize-events", endpoint_url=server.endpoint, config=_config())
    s = make_shop(p, "flags")

    def flags(schema: str, key: str, column: str) -> list[dict]:
        return [{"kind": "undeclaredProperty", "message": (
            f"properties key '{key}' matches no field of schema flags-{schema}; declare {column} (camelCase {key}) "
            "to use it")}]

    ok(ev.put_items(datasetArn=s.items, items=[item("i1", price=1, numberOfRatings="12"), item("i2", price=2)]))
    ok(ev.put_users(datasetArn=s.users, users=[{"userId": "u1", "properties": props({"shoeSize": "45"})}]))
    ok(ev.put_actions(datasetArn=s.actions, actions=[{"actionId": "a1", "properties": props({"value": 1,
                                                                                               "colour": "red"})}]))
    interactions = [action_interaction("a1", eventId="e1", properties={"mood": "good"}),
                    action_interaction("a1", eventId="e2")]
    ok(ev.put_action_interactions(trackingId=s.tracking_id, actionInteractions=interactions))
    # A retry of the flagged one is dropped at the door and not counted again.
    ok(ev.put_action_interactions(trackingId=s.tracking_id, actionInteractions=interactions[:1]))

    items = export(server.data_dir, "jsonl", dataset_arn=s.items)
    assert [(r["itemId"], r.get("flags")) for r in items] == [
        ("i1", flags("items", "numberOfRatings", "NUMBER_OF_RATINGS")), ("i2", None)]
    assert json.loads(items[0]["properties"]) == {"price": 1, "numberOfRatings": "12"}, "kept verbatim"
    assert export(server.data_dir, "csv", dataset_arn=s.items)[0] == {
        "ITEM_ID": "i1", "GENRES": "", "PRICE": "1", "IN_STOCK": "", "DESCRIPTION": ""}
    [user] = export(server.data_dir, "jsonl", dataset_arn=s.users)
    assert user["flags"] == flags("users", "shoeSize", "SHOE_SIZE")
    [action] = export(server.data_dir, "jsonl", dataset_arn=s.actions)
    assert action["flags"] == flags("actions", "colour", "COLOUR")
    stored = export(server.data_dir, "jsonl", dataset_arn=s.action_interactions)
    assert [(r["eventId"], r.get("flags")) for r in stored] == [
        ("e1", flags("action_interactions", "mood", "MOOD")), ("e2", None)]
    r = signed_request("GET", f"{server.endpoint}/_interlog/stats")
    assert r.status == 200, r
    assert r.json()["flagged"]["undeclaredProperty"] == 4, r.json()
    # Latest write wins, flags included: i1 rewritten without the key has no flag any more.
    ok(ev.put_items(datasetArn=s.items, items=[item("i1", price=3)]))
    server.restart()
    assert [r.get("flags") for r in export(server.data_dir, "jsonl", dataset_arn=s.items)] == [None, None]
    assert export(server.data_dir, "jsonl", dataset_arn=s.users)[0]["flags"] == flags("users", "shoeSize",
                                                                                     "SHOE_SIZE")


def test_latest_write_wins_across_requests_and_across_a_restart(server, boto3_session, export):
    p = boto3_session.client("personalize", endpoint_url=server.endpoint, config=_config())
    ev = boto3_session.client("personalize-events", endpoint_url=server.endpoint, config=_config())
    s = make_shop(p, "restart")
    ok(ev.put_items(datasetArn=s.items, items=[item("i1", price=1, genres="a"), item("i2", price=2),
                                               item("i1", price=3)]))
    ok(ev.put_items(datasetArn=s.items, items=[item("i2", price=4, genres="b")]))
    ok(ev.put_users(datasetArn=s.users, users=[{"userId": "u1", "properties": props({"age": 1})}]))
    ok(ev.put_actions(datasetArn=s.actions, actions=[{"actionId": "a1", "properties": props({"value": 1})}]))
    ok(ev.put_action_interactions(trackingId=s.tracking_id, actionInteractions=[
        action_interaction("a1", eventId="e1")]))
    before = export(server.data_dir, "csv", dataset_arn=s.items)
    assert before == [{"ITEM_ID": "i1", "GENRES": "", "PRICE": "3", "IN_STOCK": "", "DESCRIPTION": ""},
                      {"ITEM_ID": "i2", "GENRES": "b", "PRICE": "4", "IN_STOCK": "", "DESCRIPTION": ""}]
    server.restart()
    ev = boto3_session.client("personalize-events", endpoint_url=server.endpoint, config=_config())
    assert export(server.data_dir, "csv", dataset_arn=s.items) == before, "the latest writes survive a restart"
    ok(ev.put_items(datasetArn=s.items, items=[item("i1", price=5)]))
    ok(ev.put_users(datasetArn=s.users, users=[{"userId": "u1", "properties": props({"age": 2})}, {"userId": "u0"}]))
    ok(ev.put_actions(datasetArn=s.actions, actions=[{"actionId": "a1"}]))
    # The tracker survives the restart, and so does first-copy-wins.
    ok(ev.put_action_interactions(trackingId=s.tracking_id, actionInteractions=[
        action_interaction("retry", eventId="e1"), action_interaction("a2", eventId="e2")]))
    assert [r["PRICE"] for r in export(server.data_dir, "csv", dataset_arn=s.items)] == ["5", "4"]
    assert export(server.data_dir, "csv", dataset_arn=s.users) == [
        {"USER_ID": "u0", "MEMBERSHIP": "", "AGE": ""}, {"USER_ID": "u1", "MEMBERSHIP": "", "AGE": "2"}]
    assert export(server.data_dir, "csv", dataset_arn=s.actions) == [
        {"ACTION_ID": "a1", "VALUE": "", "REPEAT_FREQUENCY": ""}]
    assert [r["ACTION_ID"] for r in export(server.data_dir, "csv", dataset_arn=s.action_interactions)] == ["a1", "a2"]
    # A 200 means durable: what was acknowledged survives SIGKILL too, the latest write still winning.
    ok(ev.put_items(datasetArn=s.items, items=[item("i2", price=6), item("i3", price=7)]))
    server.restart(signal.SIGKILL)
    assert [(r["ITEM_ID"], r["PRICE"]) for r in export(server.data_dir, "csv", dataset_arn=s.items)] == [
        ("i1", "5"), ("i2", "6"), ("i3", "7")]


# --------------------------------------------------------------------------------------------------------------------
# Errors: each case leaves every dataset unchanged
# --------------------------------------------------------------------------------------------------------------------

BAD_ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/shop/NOPE"
OTHER_ACCOUNT_ARN = f"arn:aws:personalize:{REGION}:111122223333:dataset/shop/ITEMS"


def _cases(shop: Shop, default_tracking_id: str):
    """(name, operation, kwargs, code, status, message fragments)."""
    long_props = props({"description": "x" * 32000})
    return [
        ("items: unknown dataset", "put_items", dict(datasetArn=BAD_ARN, items=[item("i", price=1)]),
         "ResourceNotFoundException", 404, [BAD_ARN]),
        ("items: another account's dataset", "put_items", dict(datasetArn=OTHER_ACCOUNT_ARN, items=[item("i", price=1)]),
         "ResourceNotFoundException", 404, [OTHER_ACCOUNT_ARN]),
        ("items: a Users dataset", "put_items", dict(datasetArn=shop.users, items=[item("i", price=1)]),
         "InvalidInputException", 400, ["a Users dataset", "PutItems needs an Items dataset"]),
        ("users: an Items dataset", "put_users", dict(datasetArn=shop.items, users=[{"userId": "u"}]),
         "InvalidInputException", 400, ["an Items dataset", "PutUsers needs a Users dataset"]),
        ("actions: an Action_Interactions dataset", "put_actions",
         dict(datasetArn=shop.action_interactions, actions=[{"actionId": "a"}]),
         "InvalidInputException", 400, ["an Action_Interactions dataset", "PutActions needs an Actions dataset"]),
        ("items: malformed ARN", "put_items", dict(datasetArn="not-an-arn", items=[item("i", price=1)]),
         "InvalidInputException", 400, ["datasetArn", "pattern"]),
        ("items: missing datasetArn", "put_items", dict(items=[item("i", price=1)]),
         "InvalidInputException", 400, ["'datasetArn'", "must not be null"]),
        ("items: none", "put_items", dict(datasetArn=shop.items, items=[]),
         "InvalidInputException", 400, ["'items'", "greater than or equal to 1"]),
        ("items: eleven", "put_items", dict(datasetArn=shop.items, items=[item(f"i{n}", price=1) for n in range(11)]),
         "InvalidInputException", 400, ["'items'", "less than or equal to 10"]),
        ("items: empty itemId", "put_items", dict(datasetArn=shop.items, items=[{"itemId": "", "properties": "{}"}]),
         "InvalidInputException", 400, ["items.1.member.itemId", "greater than or equal to 1"]),
        ("items: 257-character itemId", "put_items", dict(datasetArn=shop.items, items=[item("i" * 257, price=1)]),
         "InvalidInputException", 400, ["items.1.member.itemId", "less than or equal to 256"]),
        ("items: properties not JSON", "put_items", dict(datasetArn=shop.items, items=[
            {"itemId": "i", "properties": "{price: 1"}]), "InvalidInputException", 400, ["items.1.member.properties"]),
        ("items: properties over 32000", "put_items", dict(datasetArn=shop.items, items=[
            {"itemId": "i", "properties": long_props}]),
         "InvalidInputException", 400, ["items.1.member.properties", "32000"]),
        ("items: required field missing", "put_items", dict(datasetArn=shop.items, items=[
            item("ok", price=1), item("i", genres="a")]),
         "InvalidInputException", 400, ["items.2.member.properties", "'price'", "PRICE"]),
        ("items: value of the wrong type", "put_items", dict(datasetArn=shop.items, items=[item("i", price="cheap")]),
         "InvalidInputException", 400, ["items.1.member.properties", "'price'", "PRICE"]),
        ("items: categorical value too long", "put_items", dict(datasetArn=shop.items, items=[
            item("i", price=1, genres="g" * 1001)]), "InvalidInputException", 400, ["'genres'", "1000"]),
        ("users: properties over 24000", "put_users", dict(datasetArn=shop.users, users=[
            {"userId": "u", "properties": props({"membership": "m" * 24000})}]),
         "InvalidInputException", 400, ["users.1.member.properties", "24000"]),
        ("users: int out of range", "put_users", dict(datasetArn=shop.users, users=[
            {"userId": "u", "properties": props({"age": 2 ** 31})}]),
         "InvalidInputException", 400, ["users.1.member.properties", "'age'"]),
        ("actions: missing actionId", "put_actions", dict(datasetArn=shop.actions, actions=[{"properties": "{}"}]),
         "InvalidInputException", 400, ["actions.1.member.actionId", "must not be null"]),
        ("action interactions: unknown tracker", "put_action_interactions", dict(
            trackingId="no-such-tracker", actionInteractions=[action_interaction("a")]),
         "ResourceNotFoundException", 404, ["no-such-tracker"]),
        ("action interactions: an event tracker's ID", "put_action_interactions", dict(
            trackingId=default_tracking_id, actionInteractions=[action_interaction("a")]),
         "InvalidInputException", 400, [default_tracking_id, "PutEvents"]),
        ("action interactions: missing sessionId", "put_action_interactions", dict(
            trackingId=shop.tracking_id, actionInteractions=[{"actionId": "a", "timestamp": 1, "eventType": "Taken"}]),
         "InvalidInputException", 400, ["actionInteractions.1.member.sessionId", "must not be null"]),
        ("action interactions: properties over 1024", "put_action_interactions", dict(
            trackingId=shop.tracking_id, actionInteractions=[
                action_interaction("a", properties={"device": "d" * 1024})]),
         "InvalidInputException", 400, ["actionInteractions.1.member.properties", "1024"]),
        ("action interactions: forbidden properties key", "put_action_interactions", dict(
            trackingId=shop.tracking_id, actionInteractions=[action_interaction("a", properties={"timestamp": 1})]),
         "InvalidInputException", 400, ["actionInteractions.1.member.properties", "timestamp"]),
        ("action interactions: the schema refuses a value", "put_action_interactions", dict(
            trackingId=shop.tracking_id, actionInteractions=[
                action_interaction("ok"), action_interaction("a", properties={"device": "d" * 1001})]),
         "InvalidInputException", 400, ["actionInteractions.2.member.properties", "'device'"]),
        ("action interactions: eleven", "put_action_interactions", dict(
            trackingId=shop.tracking_id, actionInteractions=[action_interaction(f"a{n}") for n in range(11)]),
         "InvalidInputException", 400, ["'actionInteractions'", "less than or equal to 10"]),
        ("events: the action-interaction tracker's ID", "put_events", dict(
            trackingId=shop.tracking_id, sessionId="s", eventList=[{"eventType": "click", "sentAt": 1}]),
         "InvalidInputException", 400, [shop.tracking_id]),
    ]


def test_every_error_type_and_constraint_leaves_the_store_unchanged(module_server, p, ev, shop, export):
    # Something in every dataset first, so "unchanged" means something.
    ok(ev.put_items(datasetArn=shop.items, items=[item("err-item", price=1)]))
    ok(ev.put_users(datasetArn=shop.users, users=[{"userId": "err-user"}]))
    ok(ev.put_actions(datasetArn=shop.actions, actions=[{"actionId": "err-action"}]))
    ok(ev.put_action_interactions(trackingId=shop.tracking_id, actionInteractions=[
        action_interaction("err-action", eventId="err-event")]))
    before = snapshot(export, module_server, shop)
    default_events = export(module_server.data_dir, "jsonl")
    failures = []
    for name, op, kwargs, code, status, fragments in _cases(shop, module_server.tracking_id):
        try:
            getattr(ev, op)(**kwargs)
        except ClientError as e:
            error = e.response["Error"]
            got = (error["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
            message = error.get("Message", "")
            if got != (code, status):
                failures.append(f"{name}: {got} {message}")
            missing = [f for f in fragments if f not in message]
            if missing:
                failures.append(f"{name}: {missing} not in {message!r}")
        else:
            failures.append(f"{name}: succeeded")
    assert not failures, "\n".join(failures)
    assert snapshot(export, module_server, shop) == before, "a refused request stores nothing"
    assert export(module_server.data_dir, "jsonl") == default_events


def test_a_dataset_still_being_created_is_in_use_then_active(server_factory, boto3_session, export):
    """`--activation-delay`: datasets report CREATE PENDING for a while, as on AWS; every Put* to one meanwhile
    gets ResourceInUseException (409; PutEvents, which models only InvalidInputException, 400) and stores
    nothing; then it turns ACTIVE by itself and the same calls succeed."""
    server = server_factory(args=("--activation-delay", "3"))
    p = boto3_session.client("personalize", endpoint_url=server.endpoint, config=_config())
    ev = boto3_session.client("personalize-events", endpoint_url=server.endpoint, config=_config())
    group = ok(p.create_dataset_group(name="slow"))["datasetGroupArn"]
    made = {}
    for api_type in ("Interactions", "Items", "Users", "Actions", "Action_Interactions"):
        if api_type == "Interactions":
            fields, schema_name = [fld("USER_ID", "string"), fld("ITEM_ID", "string"),
                                   fld("TIMESTAMP", "long")], "Interactions"
        else:
            _, schema_name, fields = TYPES[api_type]
        schema = ok(p.create_schema(name=f"slow-{api_type.lower()}", schema=avro(fields, name=schema_name)))
        made[api_type] = ok(p.create_dataset(name=f"slow-{api_type.lower()}", schemaArn=schema["schemaArn"],
                                             datasetGroupArn=group, datasetType=api_type))["datasetArn"]
    tracking_id = ok(p.create_event_tracker(name="slow", datasetGroupArn=group))["trackingId"]
    action_tracker = ok(p.describe_dataset(datasetArn=made["Action_Interactions"]))["dataset"]["trackingId"]
    assert {ok(p.describe_dataset(datasetArn=a))["dataset"]["status"] for a in made.values()} == {"CREATE PENDING"}
    listed = ok(p.list_datasets(datasetGroupArn=group))["datasets"]
    assert {d["status"] for d in listed} == {"CREATE PENDING"}
    calls = {
        "put_items": dict(datasetArn=made["Items"], items=[item("i1", price=1)]),
        "put_users": dict(datasetArn=made["Users"], users=[{"userId": "u1"}]),
        "put_actions": dict(datasetArn=made["Actions"], actions=[{"actionId": "a1"}]),
        "put_action_interactions": dict(trackingId=action_tracker, actionInteractions=[action_interaction("a1")]),
        "put_events": dict(trackingId=tracking_id, sessionId="s", userId="u1",
                           eventList=[{"eventType": "click", "itemId": "i1", "sentAt": 1700000000}]),
    }
    for op, kwargs in calls.items():
        with pytest.raises(ClientError) as info:
            getattr(ev, op)(**kwargs)
        error, status = info.value.response["Error"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]
        expected = ("InvalidInputException", 400) if op == "put_events" else ("ResourceInUseException", 409)
        assert (error["Code"], status) == expected, (op, error)
        assert "CREATE PENDING" in error["Message"] and "retry" in error["Message"], (op, error)
    assert all(export(server.data_dir, "jsonl", dataset_arn=a) == [] for a in made.values()), "nothing stored"
    deadline = time.monotonic() + 30
    while {ok(p.describe_dataset(datasetArn=a))["dataset"]["status"] for a in made.values()} != {"ACTIVE"}:
        assert time.monotonic() < deadline, "the datasets never turned ACTIVE"
        time.sleep(0.2)
    for op, kwargs in calls.items():
        deadline = time.monotonic() + 10
        while True:  # the cache follows the catalog within moments of the change
            try:
                ok(getattr(ev, op)(**kwargs))
                break
            except ClientError:
                assert time.monotonic() < deadline, op
                time.sleep(0.1)
    assert [r["itemId"] for r in export(server.data_dir, "jsonl", dataset_arn=made["Items"])] == ["i1"]
    # A dataset left pending by a stop turns ACTIVE after the next start (the delay is counted from creation).
    schema = ok(p.create_schema(name="slow-later", schema=avro(TYPES["Users"][2], name="Users")))
    other = ok(p.create_dataset_group(name="slow-later"))["datasetGroupArn"]
    late = ok(p.create_dataset(name="slow-later", schemaArn=schema["schemaArn"], datasetGroupArn=other,
                               datasetType="Users"))["datasetArn"]
    server.stop()
    server.start()
    p = boto3_session.client("personalize", endpoint_url=server.endpoint, config=_config())
    deadline = time.monotonic() + 30
    while ok(p.describe_dataset(datasetArn=late))["dataset"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "the dataset left pending never turned ACTIVE"
        time.sleep(0.2)


def test_a_deleted_dataset_is_not_found_and_its_tracker_retires(module_server, p, ev, export):
    group = ok(p.create_dataset_group(name="doomed"))["datasetGroupArn"]
    made = {}
    for api_type in ("Items", "Action_Interactions"):
        segment, schema_name, fields = TYPES[api_type]
        schema = ok(p.create_schema(name=f"doomed-{segment.lower()}", schema=avro(fields, name=schema_name)))
        made[api_type] = ok(p.create_dataset(name=f"doomed-{segment.lower()}", schemaArn=schema["schemaArn"],
                                             datasetGroupArn=group, datasetType=api_type))["datasetArn"]
    tracking_id = ok(p.describe_dataset(datasetArn=made["Action_Interactions"]))["dataset"]["trackingId"]
    ok(ev.put_items(datasetArn=made["Items"], items=[item("i1", price=1)]))
    ok(ev.put_action_interactions(trackingId=tracking_id, actionInteractions=[action_interaction("a1")]))
    for arn in made.values():
        ok(p.delete_dataset(datasetArn=arn))
    with pytest.raises(ClientError) as info:
        ev.put_items(datasetArn=made["Items"], items=[item("i2", price=1)])
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as info:
        ev.put_action_interactions(trackingId=tracking_id, actionInteractions=[action_interaction("a2")])
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException", "the tracker retired with its dataset"
    # A new dataset of the same type gets a new tracker and starts empty.
    segment, schema_name, fields = TYPES["Action_Interactions"]
    again = ok(p.create_dataset(name="doomed-again", schemaArn=f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/"
                                f"doomed-{segment.lower()}", datasetGroupArn=group,
                                datasetType="Action_Interactions"))["datasetArn"]
    new_tracking_id = ok(p.describe_dataset(datasetArn=again))["dataset"]["trackingId"]
    assert new_tracking_id != tracking_id
    assert export(module_server.data_dir, "csv", dataset_arn=again) == []
    ok(p.delete_dataset(datasetArn=again))


def test_export_through_the_server_by_dataset_arn_equals_the_store(module_server, ev, shop, export_raw, tmp_path):
    ok(ev.put_items(datasetArn=shop.items, items=[item("srv-1", price=1.5, genres="a|b")]))
    ok(ev.put_action_interactions(trackingId=shop.tracking_id, actionInteractions=[
        action_interaction("srv-a", eventId="srv-e", userId="srv-u")]))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    for arn in (shop.items, shop.action_interactions):
        for fmt in ("csv", "jsonl"):
            done = subprocess.run([str(INTERLOG_BIN), "export", "--endpoint-url", module_server.endpoint,
                                   "--dataset-arn", arn, "--format", fmt, "--output", "-"],
                                  capture_output=True, env=env, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout == export_raw(module_server.data_dir, fmt, dataset_arn=arn)
            assert parse_export(done.stdout, fmt), "something was exported"
    # Another account's (or no) dataset: refused, nothing written.
    done = subprocess.run([str(INTERLOG_BIN), "export", "--endpoint-url", module_server.endpoint,
                           "--dataset-arn", BAD_ARN, "--output", "-"], capture_output=True, env=env, timeout=60)
    assert done.returncode != 0 and done.stdout == b""
    assert b"ResourceNotFoundException" in done.stderr, done.stderr
    done = subprocess.run([str(INTERLOG_BIN), "export", "--endpoint-url", module_server.endpoint, "--dataset-arn",
                           shop.items, "--dataset-group", "shop", "--output", "-"], capture_output=True, env=env,
                          timeout=60)
    assert done.returncode == 2 and b"cannot be used with" in done.stderr, done.stderr


# --------------------------------------------------------------------------------------------------------------------
# aws-cli
# --------------------------------------------------------------------------------------------------------------------


def test_awscli_puts_records_and_action_interactions(module_server, aws, p, export):
    s = make_shop(p, "cli")
    ep = ("--endpoint-url", module_server.endpoint)
    aws("personalize-events", "put-items", *ep, "--dataset-arn", s.items, "--items",
        json.dumps([item("c1", price="1.25", genres="x|y"), item("c2", price=2)]))
    aws("personalize-events", "put-items", *ep, "--dataset-arn", s.items, "--items",
        'itemId=c2,properties=\'{"price": 7}\'')
    aws("personalize-events", "put-users", *ep, "--dataset-arn", s.users, "--users",
        json.dumps([{"userId": "cu1", "properties": props({"membership": "gold"})}]))
    aws("personalize-events", "put-actions", *ep, "--dataset-arn", s.actions, "--actions", "actionId=ca1")
    aws("personalize-events", "put-action-interactions", *ep, "--tracking-id", s.tracking_id,
        "--action-interactions", json.dumps([action_interaction("ca1", userId="cu1", eventId="cli-1")]))
    assert export(module_server.data_dir, "csv", dataset_arn=s.items) == [
        {"ITEM_ID": "c1", "GENRES": "x|y", "PRICE": "1.25", "IN_STOCK": "", "DESCRIPTION": ""},
        {"ITEM_ID": "c2", "GENRES": "", "PRICE": "7", "IN_STOCK": "", "DESCRIPTION": ""}]
    assert export(module_server.data_dir, "csv", dataset_arn=s.users) == [
        {"USER_ID": "cu1", "MEMBERSHIP": "gold", "AGE": ""}]
    assert export(module_server.data_dir, "csv", dataset_arn=s.actions) == [
        {"ACTION_ID": "ca1", "VALUE": "", "REPEAT_FREQUENCY": ""}]
    assert [r["USER_ID"] + "/" + r["ACTION_ID"] for r in
            export(module_server.data_dir, "csv", dataset_arn=s.action_interactions)] == ["cu1/ca1"]
    done = aws("personalize-events", "put-items", *ep, "--dataset-arn", s.users, "--items", "itemId=x", check=False)
    assert done.returncode == 255, done  # aws-cli v1: a service error exits 255
    assert "(InvalidInputException) when calling the PutItems operation" in done.stderr
    assert "PutItems needs an Items dataset" in done.stderr
    done = aws("personalize-events", "put-users", *ep, "--dataset-arn", BAD_ARN, "--users", "userId=x", check=False)
    assert done.returncode == 255, done  # aws-cli v1: a service error exits 255
    assert "(ResourceNotFoundException) when calling the PutUsers operation" in done.stderr
