"""PutItems, PutUsers, PutActions and PutActionInteractions through the AWS SDK for JavaScript v3 (tests/js,
`put_records.mjs`) against the real `interlog` binary, read back field by field through `interlog export
--dataset-arn`; the SDK's view of the errors (the modelled exception names and HTTP statuses), each leaving the
datasets unchanged.

Skipped with a printed reason when node or the SDK (`npm ci` in tests/js, which scripts/test runs) is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import ACCESS_KEY_ID, REPO, SECRET_ACCESS_KEY
from test_put_records import _config, make_shop, props

JS_DIR = REPO / "tests" / "js"
NODE = shutil.which("node")


def run_js(server, operation: str, request: dict) -> dict:
    if NODE is None or not (JS_DIR / "node_modules" / "@aws-sdk" / "client-personalize-events").is_dir():
        pytest.skip("the AWS SDK for JavaScript v3 is not installed: node and `npm ci` in tests/js (scripts/test does)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(server.data_dir.parent),
           "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    arg = json.dumps({"endpoint": server.endpoint, "operation": operation, "input": request})
    done = subprocess.run([NODE, str(JS_DIR / "put_records.mjs"), arg], cwd=JS_DIR, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"node failed ({done.returncode}):\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def js_shop(module_server, boto3_session):
    p = boto3_session.client("personalize", endpoint_url=module_server.endpoint, config=_config())
    return make_shop(p, "jsshop")


def snapshot(export, server, shop) -> dict:
    return {arn: export(server.data_dir, "jsonl", dataset_arn=arn)
            for arn in (shop.items, shop.users, shop.actions, shop.action_interactions)}


def test_records_and_action_interactions_read_back_field_by_field(module_server, js_shop, export):
    s = js_shop
    assert run_js(module_server, "PutItems", {"datasetArn": s.items, "items": [
        {"itemId": "i1", "properties": props({"genres": "Horror|Action", "price": "9.5", "inStock": True})},
        {"itemId": "i2", "properties": props({"price": 12})},
        {"itemId": "i1", "properties": props({"price": 3, "description": "replaced, \"quoted\""})},
    ]}) == {"status": 200}
    assert run_js(module_server, "PutUsers", {"datasetArn": s.users, "users": [
        {"userId": "u1", "properties": props({"membership": "Member", "age": "45"})}, {"userId": "u2"},
    ]}) == {"status": 200}
    assert run_js(module_server, "PutActions", {"datasetArn": s.actions, "actions": [
        {"actionId": "a1", "properties": props({"value": 100, "repeatFrequency": 7})},
    ]}) == {"status": 200}
    assert run_js(module_server, "PutActionInteractions", {"trackingId": s.tracking_id, "actionInteractions": [
        {"eventId": "js-1", "actionId": "a1", "userId": "u1", "sessionId": "s1", "timestamp": 1700000000,
         "eventType": "Taken", "recommendationId": "RID-1", "impression": ["a1", "a2"],
         "properties": props({"device": "phone"})},
        {"eventId": "js-1", "actionId": "changed", "sessionId": "s1", "timestamp": 1700000005, "eventType": "Viewed"},
        {"eventId": "js-2", "actionId": "a2", "sessionId": "s2", "timestamp": 1700000001, "eventType": "Not Taken"},
    ]}) == {"status": 200}

    assert export(module_server.data_dir, "csv", dataset_arn=s.items) == [
        {"ITEM_ID": "i1", "GENRES": "", "PRICE": "3", "IN_STOCK": "", "DESCRIPTION": "replaced, \"quoted\""},
        {"ITEM_ID": "i2", "GENRES": "", "PRICE": "12", "IN_STOCK": "", "DESCRIPTION": ""},
    ], "the latest write of i1 in the request wins"
    assert export(module_server.data_dir, "csv", dataset_arn=s.users) == [
        {"USER_ID": "u1", "MEMBERSHIP": "Member", "AGE": "45"}, {"USER_ID": "u2", "MEMBERSHIP": "", "AGE": ""}]
    assert export(module_server.data_dir, "csv", dataset_arn=s.actions) == [
        {"ACTION_ID": "a1", "VALUE": "100", "REPEAT_FREQUENCY": "7"}]
    assert export(module_server.data_dir, "csv", dataset_arn=s.action_interactions) == [
        {"USER_ID": "u1", "ACTION_ID": "a1", "TIMESTAMP": "1700000000", "EVENT_TYPE": "Taken",
         "IMPRESSION": "a1|a2", "RECOMMENDATION_ID": "RID-1", "DEVICE": "phone"},
        {"USER_ID": "", "ACTION_ID": "a2", "TIMESTAMP": "1700000001", "EVENT_TYPE": "Not Taken", "IMPRESSION": "",
         "RECOMMENDATION_ID": "", "DEVICE": ""},
    ], "the first copy of js-1 wins"
    lines = export(module_server.data_dir, "jsonl", dataset_arn=s.action_interactions)
    assert [(line["eventId"], line["sessionId"]) for line in lines] == [("js-1", "s1"), ("js-2", "s2")]


@pytest.mark.parametrize("operation,request_of,error,status", [
    ("PutItems", lambda s: {"datasetArn": s.items.replace("/ITEMS", "/NOPE"), "items": [{"itemId": "x"}]},
     "ResourceNotFoundException", 404),
    ("PutItems", lambda s: {"datasetArn": s.users, "items": [{"itemId": "x"}]}, "InvalidInputException", 400),
    ("PutUsers", lambda s: {"datasetArn": s.users, "users": [{"userId": "x", "properties": props({"age": "old"})}]},
     "InvalidInputException", 400),
    ("PutActions", lambda s: {"datasetArn": s.actions, "actions": [{"actionId": "x" * 257}]},
     "InvalidInputException", 400),
    ("PutActionInteractions", lambda s: {"trackingId": "00000000-0000-0000-0000-000000000000", "actionInteractions": [
        {"actionId": "a", "sessionId": "s", "timestamp": 1700000000, "eventType": "Taken"}]},
     "ResourceNotFoundException", 404),
], ids=["unknown-dataset", "wrong-type", "bad-value", "id-too-long", "unknown-tracker"])
def test_errors_reach_the_sdk_as_modelled_exceptions_and_store_nothing(module_server, js_shop, export, operation,
                                                                       request_of, error, status):
    before = snapshot(export, module_server, js_shop)
    got = run_js(module_server, operation, request_of(js_shop))
    assert (got.get("error"), got.get("status")) == (error, status), got
    assert got["message"], got
    assert snapshot(export, module_server, js_shop) == before
