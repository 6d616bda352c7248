"""Issue 10: ``properties`` keys the dataset's schema does not declare are kept and flagged, as AWS accepts them.

The PutEvents documentation's own example, ``{"numberOfRatings": "12"}``, sent on the default tracker of a fresh
server (whose default schema declares no metadata field) through aws-cli, boto3 and the AWS SDK for JavaScript v3:
answered 200, stored with its properties exactly as sent (JSONL export, offline and over HTTP), absent from the
schema-shaped CSV, flagged once in ``GET /_interlog/stats`` and in a warning line. With ``--strict-properties`` it is
refused with InvalidInputException and nothing of the request is stored. A declared key with a bad value is still
refused. The rule is stated in docs/api.md ("Undeclared properties keys").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, CSV_HEADER, REPO, SECRET_ACCESS_KEY, ServerStartError, parse_export, \
    signed_request

DOCUMENTED = '{"numberOfRatings": "12"}'
FLAG = ("properties key 'numberOfRatings' matches no field of schema default-interactions; declare "
        "NUMBER_OF_RATINGS (camelCase numberOfRatings) to use it")
FLAGS = [{"kind": "undeclaredProperty", "message": FLAG}]
SENT_AT = 1700000000
# Every kind GET /_interlog/stats counts (docs/api.md, Flags), zeros included.
FLAG_KINDS = ("undeclaredProperty", "sentAtInFuture", "sentAtBefore2000", "placeholderId", "itemNotInImpression",
              "duplicateEventId")


def flagged(undeclared: int) -> dict:
    """The stats' ``flagged`` member when only undeclared keys were flagged, less ``duplicateEventId`` (a client's
    retry of a request whose answer it lost counts there, as it should)."""
    return {kind: undeclared if kind == "undeclaredProperty" else 0 for kind in FLAG_KINDS if kind != "duplicateEventId"}


def flagged_of(server) -> dict:
    return {k: v for k, v in stats(server)["flagged"].items() if k != "duplicateEventId"}

JS_DIR = REPO / "tests" / "js"
NODE = shutil.which("node")


def one_attempt(events_client, server):
    return events_client(server.endpoint, max_attempts=1)


def stats(server) -> dict:
    r = signed_request("GET", f"{server.endpoint}/_interlog/stats")
    assert r.status == 200, r
    return r.json()


def http_export(server, fmt: str) -> list[dict]:
    r = signed_request("GET", f"{server.endpoint}/_interlog/export?format={fmt}")
    assert r.status == 200, r
    return parse_export(r.body, fmt)


def documented_event(event_id: str) -> dict:
    return {"eventId": event_id, "eventType": "rate", "itemId": "item-1", "sentAt": SENT_AT,
            "properties": DOCUMENTED}


def assert_kept_and_flagged_once(server, export, event_id: str):
    """The one event is stored with its properties verbatim and its flag, everywhere it can be read back."""
    for rows in (export(server.data_dir, "jsonl"), http_export(server, "jsonl")):
        assert [(r["eventId"], r["properties"], r.get("flags")) for r in rows] == [(event_id, DOCUMENTED, FLAGS)]
    csv_rows = export(server.data_dir, "csv")
    assert list(csv_rows[0]) == CSV_HEADER, "the CSV has the schema's columns only"
    assert [(r["ITEM_ID"], r["EVENT_TYPE"]) for r in csv_rows] == [("item-1", "rate")]
    assert flagged_of(server) == flagged(1)
    log = server.stderr_text()
    assert "flagged events were stored but will not reach a model" in log and FLAG in log, log[-3000:]
    assert '"12"' not in log, "a property value never reaches the log"


# --------------------------------------------------------------------------------------------------------------------
# The documented example, through each client
# --------------------------------------------------------------------------------------------------------------------


def test_documented_example_through_aws_cli_is_kept_and_flagged(server, aws, export):
    done = aws("personalize-events", "put-events", "--endpoint-url", server.endpoint,
               "--tracking-id", server.tracking_id, "--session-id", "s1", "--user-id", "u1",
               "--event-list", json.dumps([documented_event("doc-cli")]))
    assert done.returncode == 0 and done.stdout.strip() == "", done
    assert_kept_and_flagged_once(server, export, "doc-cli")


def test_documented_example_through_boto3_is_kept_and_flagged_once(server, events_client, export):
    ev = one_attempt(events_client, server)
    kwargs = {"trackingId": server.tracking_id, "sessionId": "s1", "userId": "u1",
              "eventList": [documented_event("doc-boto3")]}
    assert ev.put_events(**kwargs)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # A client's retry of the same event is dropped at the door and not counted again.
    assert ev.put_events(**kwargs)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert stats(server)["duplicatesDropped"] == 1
    assert_kept_and_flagged_once(server, export, "doc-boto3")


def run_js(server, events: list[dict]) -> dict:
    if NODE is None or not (JS_DIR / "node_modules" / "@aws-sdk" / "client-personalize-events").is_dir():
        pytest.skip("the AWS SDK for JavaScript v3 is not installed: node and `npm ci` in tests/js (scripts/test does)")
    request = {"endpoint": server.endpoint, "trackingId": server.tracking_id, "sessionId": "s1", "userId": "u1",
               "events": events}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(server.data_dir.parent),
           "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    done = subprocess.run([NODE, str(JS_DIR / "put_events.mjs"), json.dumps(request)], cwd=JS_DIR, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"node failed ({done.returncode}):\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_documented_example_through_the_javascript_sdk_is_kept_and_flagged(server, export):
    assert run_js(server, [documented_event("doc-js")]) == {"status": 200}
    assert_kept_and_flagged_once(server, export, "doc-js")


# --------------------------------------------------------------------------------------------------------------------
# Strict mode and the alias
# --------------------------------------------------------------------------------------------------------------------


def assert_refused_and_nothing_stored(server, export, outcomes: list[tuple[str, str, int]]):
    """Each (error code, message, index of the event with the undeclared key)."""
    for code, message, index in outcomes:
        assert code == "InvalidInputException", (code, message)
        assert f"eventList.{index}.member.properties" in message, message
        assert ("properties key 'numberOfRatings' matches no field of schema default-interactions (it has no metadata "
                "fields); declare NUMBER_OF_RATINGS (camelCase numberOfRatings) to use it") in message, message
    assert export(server.data_dir, "jsonl") == []
    s = stats(server)
    assert (s["eventsStored"], s["flagged"]) == (0, dict(flagged(0), duplicateEventId=0)), s


def test_strict_properties_refuses_the_documented_example_and_stores_nothing(server_factory, aws, events_client,
                                                                             export):
    server = server_factory(args=("--strict-properties",))
    outcomes = []
    with pytest.raises(ClientError) as info:
        one_attempt(events_client, server).put_events(
            trackingId=server.tracking_id, sessionId="s1",
            eventList=[{"eventId": "ok", "eventType": "click", "sentAt": SENT_AT}, documented_event("doc-boto3")])
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The undeclared key is the second event's: the message names it, and the good first event is not stored either.
    outcomes.append((error["Code"], error["Message"], 2))
    done = aws("personalize-events", "put-events", "--endpoint-url", server.endpoint,
               "--tracking-id", server.tracking_id, "--session-id", "s1",
               "--event-list", json.dumps([documented_event("doc-cli")]), check=False)
    assert done.returncode != 0
    assert "(InvalidInputException)" in done.stderr, done.stderr
    outcomes.append(("InvalidInputException", done.stderr, 1))
    if NODE is not None and (JS_DIR / "node_modules").is_dir():
        js = run_js(server, [documented_event("doc-js")])
        assert js["status"] == 400, js
        outcomes.append((js["error"], js["message"], 1))
    assert_refused_and_nothing_stored(server, export, outcomes)


def test_strict_properties_from_the_environment(server_factory, events_client, export):
    server = server_factory(env={"INTERLOG_STRICT_PROPERTIES": "true"})
    with pytest.raises(ClientError) as info:
        one_attempt(events_client, server).put_events(trackingId=server.tracking_id, sessionId="s1",
                                                       eventList=[documented_event("doc-env")])
    error = info.value.response["Error"]
    assert_refused_and_nothing_stored(server, export, [(error["Code"], error["Message"], 1)])


def test_allow_unknown_properties_is_an_alias_of_the_default(server_factory, events_client, export):
    server = server_factory(args=("--allow-unknown-properties",))
    one_attempt(events_client, server).put_events(trackingId=server.tracking_id, sessionId="s1", userId="u1",
                                                  eventList=[documented_event("doc-alias")])
    assert_kept_and_flagged_once(server, export, "doc-alias")


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_strict_and_allow_together_stop_start_up_naming_both(server_factory, how):
    if how == "flags":
        server = server_factory(args=("--strict-properties", "--allow-unknown-properties"), start=False)
    else:
        server = server_factory(env={"INTERLOG_STRICT_PROPERTIES": "true",
                                     "INTERLOG_ALLOW_UNKNOWN_PROPERTIES": "true"}, start=False)
    with pytest.raises(ServerStartError) as info:
        server.start()
    assert info.value.returncode not in (0, None)
    assert "--strict-properties (INTERLOG_STRICT_PROPERTIES)" in info.value.log, info.value.log
    assert "--allow-unknown-properties (INTERLOG_ALLOW_UNKNOWN_PROPERTIES)" in info.value.log
    assert "give only one of the two" in info.value.log


# --------------------------------------------------------------------------------------------------------------------
# Mixed requests and declared keys
# --------------------------------------------------------------------------------------------------------------------


def test_a_good_event_and_one_with_an_undeclared_key_are_both_stored(server, events_client, export):
    one_attempt(events_client, server).put_events(
        trackingId=server.tracking_id, sessionId="s1", userId="u1",
        eventList=[{"eventId": "good", "eventType": "click", "itemId": "item-0", "sentAt": SENT_AT},
                   documented_event("flagged")])
    rows = {r["eventId"]: r for r in export(server.data_dir, "jsonl")}
    assert set(rows) == {"good", "flagged"}
    assert "flags" not in rows["good"] and "properties" not in rows["good"]
    assert (rows["flagged"]["properties"], rows["flagged"]["flags"]) == (DOCUMENTED, FLAGS)
    assert flagged_of(server) == flagged(1)
    assert stats(server)["eventsStored"] == 2


RATED_SCHEMA = json.dumps({
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
               {"name": "NUMBER_OF_RATINGS", "type": ["null", "int"]}],
})


def test_declared_keys_are_still_checked_beside_undeclared_ones(server, boto3_session, events_client, export):
    cfg = Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={})
    p = boto3_session.client("personalize", endpoint_url=server.endpoint, config=cfg)
    schema_arn = p.create_schema(name="rated-schema", schema=RATED_SCHEMA)["schemaArn"]
    group_arn = p.create_dataset_group(name="rated")["datasetGroupArn"]
    p.create_dataset(name="rated-interactions", schemaArn=schema_arn, datasetGroupArn=group_arn,
                     datasetType="Interactions")
    tracking_id = p.create_event_tracker(name="rated-tracker", datasetGroupArn=group_arn)["trackingId"]
    ev = one_attempt(events_client, server)

    def event(event_id, props):
        return {"eventId": event_id, "eventType": "rate", "itemId": "item-1", "sentAt": SENT_AT,
                "properties": json.dumps(props)}

    # A declared key whose value does not fit its type is refused, undeclared key or not, with the whole request.
    with pytest.raises(ClientError) as info:
        ev.put_events(trackingId=tracking_id, sessionId="s1", userId="u1",
                      eventList=[event("fine", {"numberOfRatings": 3}),
                                 event("bad", {"numberOfRatings": "many", "colour": "red"})])
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidInputException"
    assert "eventList.2.member.properties" in error["Message"]
    assert "properties key 'numberOfRatings' (field NUMBER_OF_RATINGS, [\"null\", \"int\"]) must be an integer" \
        in error["Message"], error["Message"]
    assert "colour" not in error["Message"], "only refusals are reported; the undeclared key was not one"
    assert export(server.data_dir, "jsonl", dataset_group="rated") == []

    ev.put_events(trackingId=tracking_id, sessionId="s1", userId="u1",
                  eventList=[event("kept", {"numberOfRatings": "12", "colour": "red"})])
    [row] = export(server.data_dir, "jsonl", dataset_group="rated")
    assert json.loads(row["properties"]) == {"numberOfRatings": "12", "colour": "red"}
    assert row["flags"] == [{"kind": "undeclaredProperty", "message": (
        "properties key 'colour' matches no field of schema rated-schema; declare COLOUR (camelCase colour) to use it")}]
    [csv_row] = export(server.data_dir, "csv", dataset_group="rated")
    assert csv_row == {"USER_ID": "u1", "ITEM_ID": "item-1", "TIMESTAMP": str(SENT_AT), "EVENT_TYPE": "rate",
                       "NUMBER_OF_RATINGS": "12"}
