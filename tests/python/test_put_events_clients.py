"""PutEvents through the real clients (aws-cli v1 and boto3), read back with `interlog export` (jsonl and csv).

Every test uses its own sessionId and eventIds on one shared server and compares, field by field, what the client
put on the wire with what both export formats give back.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from conftest import default_schema_flags, undeclared_flags


CSV_HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID",
              "EVENT_ATTRIBUTION_SOURCE"]

JSONL_MEMBERS = {
    "eventId", "sessionId", "userId", "eventType", "eventValue", "itemId", "properties", "sentAt",
    "recommendationId", "impression", "metricAttribution", "receivedAt", "flags",
}
OPTIONAL_EVENT_MEMBERS = ("eventValue", "itemId", "properties", "recommendationId", "impression", "metricAttribution")


def csv_number(d: Decimal) -> str:
    """How the export writes EVENT_VALUE: shortest form, no trailing '.0' (4.5 -> '4.5', 4 -> '4')."""
    d = Decimal(str(d))
    return str(int(d)) if d == d.to_integral_value() else str(d.normalize())


def expected_jsonl(session_id: str, user_id: str | None, wire_event: dict) -> dict:
    """The JSONL object for one event exactly as it went over the wire (numbers as Decimal), minus receivedAt."""
    row = {"eventId": wire_event["eventId"], "sessionId": session_id, "eventType": wire_event["eventType"],
           "sentAt": Decimal(str(wire_event["sentAt"]))}
    if user_id is not None:
        row["userId"] = user_id
    for member in OPTIONAL_EVENT_MEMBERS:
        if member in wire_event:
            row[member] = wire_event[member]
    if "eventValue" in row:
        row["eventValue"] = Decimal(str(row["eventValue"]))
    return row


def expected_csv(user_id: str | None, wire_event: dict) -> dict:
    sent_at = Decimal(str(wire_event["sentAt"]))
    return {
        "USER_ID": user_id or "",
        "ITEM_ID": wire_event.get("itemId", ""),
        "TIMESTAMP": str(int(sent_at // 1)),  # floor
        "EVENT_TYPE": wire_event["eventType"],
        "EVENT_VALUE": csv_number(wire_event["eventValue"]) if "eventValue" in wire_event else "",
        "IMPRESSION": "|".join(wire_event.get("impression", [])),
        "RECOMMENDATION_ID": wire_event.get("recommendationId", ""),
        "EVENT_ATTRIBUTION_SOURCE": wire_event.get("metricAttribution", {}).get("eventAttributionSource", ""),
    }


def session_rows(export, data_dir, session_id: str) -> list[tuple[dict, dict]]:
    """(jsonl row, csv row) pairs of one session, in arrival order. Both exports list events in the same order."""
    jsonl = export(data_dir, "jsonl")
    rows = export(data_dir, "csv")
    assert len(jsonl) == len(rows), "jsonl and csv exports disagree on the number of events"
    return [(j, c) for j, c in zip(jsonl, rows) if j["sessionId"] == session_id]


def assert_exported(export, server, session_id, user_id, wire_events, sent_between=None):
    pairs = session_rows(export, server.data_dir, session_id)
    assert [j["eventId"] for j, _ in pairs] == [e["eventId"] for e in wire_events]
    for (j, c), wire in zip(pairs, wire_events):
        assert set(j) <= JSONL_MEMBERS, f"unexpected members in {j}"
        received_at = j.pop("receivedAt")
        # The default schema declares no metadata field: every properties key is kept and flagged.
        assert undeclared_flags(j.pop("flags", None)) == default_schema_flags(wire.get("properties")), j
        assert j == expected_jsonl(session_id, user_id, wire)
        if sent_between is not None:
            lo, hi = sent_between
            assert lo - 1 <= received_at <= hi + 1, (received_at, sent_between)
        assert c == expected_csv(user_id, wire)
    return pairs


# --------------------------------------------------------------------------------------------------------------------
# aws-cli v1
# --------------------------------------------------------------------------------------------------------------------


def test_awscli_json_syntax(module_server, aws, export):
    s = module_server
    given = [
        {"eventId": "cli-json-1", "eventType": "click", "sentAt": 1700000000, "itemId": "i1", "eventValue": 4.5,
         "properties": json.dumps({"numberOfRatings": "12", "genre": "a|b"}), "recommendationId": "RID-1",
         "impression": ["i1", "i2", "i3"], "metricAttribution": {"eventAttributionSource": "newsletter"}},
        # aws-cli v1 truncates fractions and converts ISO 8601 to integer epoch seconds before sending.
        {"eventId": "cli-json-2", "eventType": "view", "sentAt": "1700000100.75"},
        {"eventId": "cli-json-3", "eventType": "rate", "sentAt": "2023-11-14T22:13:20.999Z", "eventValue": 3},
    ]
    before = time.time()
    done = aws("personalize-events", "put-events", "--endpoint-url", s.endpoint, "--tracking-id", s.tracking_id,
               "--user-id", "cli-user-1", "--session-id", "cli-json-session", "--event-list", json.dumps(given))
    after = time.time()
    assert done.stdout == ""  # PutEvents answers 200 with an empty body; the CLI prints nothing

    wire = [dict(given[0]), dict(given[1], sentAt=1700000100), dict(given[2], sentAt=1700000000)]
    pairs = assert_exported(export, s, "cli-json-session", "cli-user-1", wire, (before, after))
    # Integer seconds on the wire: nothing after the decimal point survives.
    assert [j["sentAt"] % 1 for j, _ in pairs] == [0, 0, 0]
    assert pairs[0][1]["IMPRESSION"] == "i1|i2|i3" and pairs[0][1]["EVENT_VALUE"] == "4.5"


def test_awscli_shorthand_syntax(module_server, aws, export):
    s = module_server
    first = ("eventId=cli-sh-1,eventType=click,sentAt=1700000000,itemId=i1,eventValue=4.5,impression=a,b,c,"
             "properties='{\"numberOfRatings\": \"12\"}',recommendationId=RID-sh,"
             "metricAttribution={eventAttributionSource=partner site}")
    second = "eventId=cli-sh-2,eventType=view,sentAt=2023-11-14T22:13:21Z,itemId=i2"
    done = aws("personalize-events", "put-events", "--endpoint-url", s.endpoint, "--tracking-id", s.tracking_id,
               "--session-id", "cli-shorthand-session", "--event-list", first, second)
    assert done.stdout == ""

    wire = [
        {"eventId": "cli-sh-1", "eventType": "click", "sentAt": 1700000000, "itemId": "i1", "eventValue": 4.5,
         "impression": ["a", "b", "c"], "properties": '{"numberOfRatings": "12"}', "recommendationId": "RID-sh",
         "metricAttribution": {"eventAttributionSource": "partner site"}},
        {"eventId": "cli-sh-2", "eventType": "view", "sentAt": 1700000001, "itemId": "i2"},
    ]
    assert_exported(export, s, "cli-shorthand-session", None, wire)


def test_awscli_event_list_and_tracking_id_from_files(module_server, aws, export, export_raw, tmp_path):
    s = module_server
    events = [
        {"eventId": "cli-file-1", "eventType": "purchase", "sentAt": 1700000200, "itemId": 'café, "☕"',
         "eventValue": 19.99, "impression": ["x|y?", "z"]},
        {"eventId": "cli-file-2", "eventType": "click", "sentAt": 1700000201,
         "properties": json.dumps({"numberOfRatings": 13, "note": "ünï"}, ensure_ascii=False)},
    ]
    (tmp_path / "events.json").write_text(json.dumps(events, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "tracking-id.txt").write_text(s.tracking_id, encoding="utf-8")  # no newline: it is read verbatim
    aws("personalize-events", "put-events", "--endpoint-url", s.endpoint, "--tracking-id", "file://tracking-id.txt",
        "--user-id", "üser-2", "--session-id", "cli-file-session", "--event-list", "file://events.json", cwd=tmp_path)

    pairs = assert_exported(export, s, "cli-file-session", "üser-2", events)
    assert pairs[0][1]["IMPRESSION"] == "x|y?|z"
    # The CSV is UTF-8 with CRLF line ends and csv-module quoting.
    raw = export_raw(s.data_dir, "csv").decode("utf-8")
    assert raw.startswith(",".join(CSV_HEADER) + "\r\n")
    assert '\r\nüser-2,"café, ""☕""",1700000200,purchase,19.99,x|y?|z,,\r\n' in raw
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")


def test_awscli_shows_server_validation_error(module_server, aws, export):
    s = module_server
    before = export(s.data_dir, "jsonl")
    done = aws("personalize-events", "put-events", "--endpoint-url", s.endpoint, "--tracking-id", s.tracking_id,
               "--session-id", "cli-error-session", "--event-list",
               json.dumps([{"eventId": "cli-err-1", "eventType": "t" * 257, "sentAt": 1700000000}]), check=False)
    assert done.returncode == 255, done
    assert "InvalidInputException" in done.stderr
    assert "eventList.1.member.eventType" in done.stderr
    assert "Member must have length less than or equal to 256" in done.stderr
    assert export(s.data_dir, "jsonl") == before


# --------------------------------------------------------------------------------------------------------------------
# boto3
# --------------------------------------------------------------------------------------------------------------------


def test_boto3_all_fields(module_server, events_client, export):
    s = module_server
    client = events_client(s.endpoint)
    sent_at = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc)
    event = {
        "eventId": "boto-all-1", "eventType": "watch", "eventValue": 0.25, "itemId": "movie-42",
        "properties": json.dumps({"numberOfRatings": "12", "device": "tv"}), "sentAt": sent_at,
        "recommendationId": "RID-12345678-1234-1234-1234-abcdefghijkl", "impression": ["movie-41", "movie-42"],
        "metricAttribution": {"eventAttributionSource": "email campaign #7"},
    }
    before = time.time()
    response = client.put_events(trackingId=s.tracking_id, userId="boto-user", sessionId="boto-all-session",
                                 eventList=[event, {"eventId": "boto-all-2", "eventType": "stop",
                                                    "sentAt": datetime(2023, 11, 14, 22, 13, 21, tzinfo=timezone.utc)}])
    after = time.time()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200

    # boto3 sends the microseconds: 1700000000.123456 on the wire, kept exactly; TIMESTAMP is its floor.
    wire = [dict(event, sentAt=Decimal("1700000000.123456"), eventValue=Decimal("0.25")),
            {"eventId": "boto-all-2", "eventType": "stop", "sentAt": 1700000001}]
    pairs = assert_exported(export, s, "boto-all-session", "boto-user", wire, (before, after))
    (first_json, first_csv), _ = pairs
    assert first_json["sentAt"] == Decimal("1700000000.123456")
    assert first_csv["TIMESTAMP"] == "1700000000"
    assert first_csv["EVENT_VALUE"] == "0.25"
    assert first_json["properties"] == event["properties"]  # the string exactly as sent


def test_boto3_without_event_id_gets_generated_uuids(module_server, events_client, export):
    s = module_server
    client = events_client(s.endpoint)
    t = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    client.put_events(trackingId=s.tracking_id, sessionId="boto-noid-session",
                      eventList=[{"eventType": "a", "sentAt": t, "itemId": "n1"},
                                 {"eventType": "b", "sentAt": t, "itemId": "n2"},
                                 {"eventType": "c", "sentAt": t, "itemId": "n3"}])
    client.put_events(trackingId=s.tracking_id, sessionId="boto-noid-session",
                      eventList=[{"eventType": "a", "sentAt": t, "itemId": "n1"}])

    pairs = session_rows(export, s.data_dir, "boto-noid-session")
    assert [j["itemId"] for j, _ in pairs] == ["n1", "n2", "n3", "n1"]  # identical events are all kept
    assert [j["eventType"] for j, _ in pairs] == ["a", "b", "c", "a"]
    ids = [j["eventId"] for j, _ in pairs]
    assert len(set(ids)) == 4
    for event_id in ids:
        assert str(uuid.UUID(event_id)) == event_id  # canonical lower-case hyphenated UUID text
    assert all(j["sentAt"] == 1700000000 and "userId" not in j for j, _ in pairs)
    assert all(c["USER_ID"] == "" for _, c in pairs)


def test_boto3_legacy_item_id_and_event_value_in_properties(module_server, events_client, export):
    s = module_server
    client = events_client(s.endpoint)
    t = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    legacy = json.dumps({"itemId": "choc-panama", "eventValue": "4", "numRatings": 0})
    client.put_events(trackingId=s.tracking_id, userId="legacy-user", sessionId="boto-legacy-session", eventList=[
        {"eventId": "legacy-1", "eventType": "rating", "sentAt": t, "properties": legacy},
        {"eventId": "legacy-2", "eventType": "rating", "sentAt": t, "properties": legacy, "itemId": "top-level",
         "eventValue": 1.5},
    ])
    (j1, c1), (j2, c2) = session_rows(export, s.data_dir, "boto-legacy-session")
    assert (j1["itemId"], j1["eventValue"], j1["properties"]) == ("choc-panama", 4, legacy)
    assert (c1["ITEM_ID"], c1["EVENT_VALUE"]) == ("choc-panama", "4")
    assert (j2["itemId"], j2["eventValue"]) == ("top-level", Decimal("1.5"))  # the top-level members win
    assert (c2["ITEM_ID"], c2["EVENT_VALUE"]) == ("top-level", "1.5")


def test_boto3_decodes_validation_error(module_server, events_client, export):
    s = module_server
    client = events_client(s.endpoint, max_attempts=1)
    before = export(s.data_dir, "jsonl")
    with pytest.raises(client.exceptions.InvalidInputException) as raised:
        client.put_events(trackingId=s.tracking_id, sessionId="boto-error-session", eventList=[
            {"eventId": "boto-err-1", "eventType": "ok", "sentAt": 1700000000},
            {"eventId": "boto-err-2", "eventType": "ok", "sentAt": 1700000000, "recommendationId": "r" * 41},
        ])
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidInputException"
    assert "eventList.2.member.recommendationId" in error["Message"]
    assert "Member must have length less than or equal to 40" in error["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert export(s.data_dir, "jsonl") == before


def test_boto3_unknown_tracking_id(module_server, events_client, export):
    s = module_server
    client = events_client(s.endpoint, max_attempts=1)
    bogus = str(uuid.uuid4())
    with pytest.raises(client.exceptions.InvalidInputException) as raised:
        client.put_events(trackingId=bogus, sessionId="boto-bogus-session",
                          eventList=[{"eventType": "x", "sentAt": 1700000000}])
    assert bogus in raised.value.response["Error"]["Message"]
    assert not session_rows(export, s.data_dir, "boto-bogus-session")


def test_boto3_endpoint_url_with_a_path_prefix(module_server, events_client, export):
    """rest-json appends /events to the endpoint's path: http://host:port/some/prefix -> POST /some/prefix/events."""
    s = module_server
    client = events_client(s.endpoint + "/some/prefix")
    client.put_events(trackingId=s.tracking_id, sessionId="boto-prefix-session",
                      eventList=[{"eventId": "prefix-1", "eventType": "click", "sentAt": 1700000000}])
    assert [j["eventId"] for j, _ in session_rows(export, s.data_dir, "boto-prefix-session")] == ["prefix-1"]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-amz-json-1.1",
                                          "application/octet-stream", "text/plain; charset=utf-8"])
def test_any_request_content_type_is_accepted(module_server, export, content_type):
    """SDK generations differ in the Content-Type they send for rest-json; the server must not depend on it."""
    s = module_server
    session = f"content-type-{content_type}"
    body = {"trackingId": s.tracking_id, "sessionId": session,
            "eventList": [{"eventId": f"ct-{content_type}", "eventType": "click", "sentAt": 1.7e9}]}
    response = s.post_events(body, content_type=content_type)
    assert (response.status, response.body) == (200, b""), response
    ((row, csv_row),) = session_rows(export, s.data_dir, session)
    assert (row["eventId"], row["sentAt"], csv_row["TIMESTAMP"]) == (f"ct-{content_type}", 1700000000, "1700000000")
