"""Issue 15, "Flags, not silent drops": every accepted-but-suspicious PutEvents event is kept, answered 200 and
flagged with its reason -- stored on the event (JSONL export), counted in ``GET /_interlog/stats`` ``flagged`` and in
``GET /_interlog/metrics`` -- one test per reason, through boto3, on whichever engine the run uses (scripts/test runs
SQLite and PostgreSQL). The reasons and their limits are stated in docs/api.md ("Flags").
"""

from __future__ import annotations

import time

import pytest

from conftest import signed_request

NOW = time.time


def stats(server) -> dict:
    r = signed_request("GET", f"{server.endpoint}/_interlog/stats")
    assert r.status == 200, r
    return r.json()["flagged"]


def metric(server, reason: str) -> float:
    """``interlog_events_flagged_total`` of the server's default tracker for ``reason``."""
    r = signed_request("GET", f"{server.endpoint}/_interlog/metrics")
    assert r.status == 200, r
    want = f'reason="{reason}"'
    total = 0.0
    for line in r.body.decode().splitlines():
        if line.startswith("interlog_events_flagged_total{") and want in line and server.tracking_id in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def put(server, events_client, events: list[dict], session_id: str = "flag-session", user_id: str | None = "u-1"):
    client = events_client(server.endpoint, max_attempts=1)
    extra = {"userId": user_id} if user_id is not None else {}
    response = client.put_events(trackingId=server.tracking_id, sessionId=session_id, eventList=events, **extra)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def event(event_id: str, **members) -> dict:
    return {"eventId": event_id, "eventType": "click", "itemId": "item-1", "sentAt": NOW(), **members}


def flags_of(export, server, event_id: str) -> list[dict] | None:
    rows = [r for r in export(server.data_dir, "jsonl") if r["eventId"] == event_id]
    assert len(rows) == 1, rows
    return rows[0].get("flags")


def assert_flagged(server, export, event_id: str, kind: str, message_part: str, count: int = 1):
    flags = flags_of(export, server, event_id)
    assert flags is not None and [f["kind"] for f in flags] == [kind], flags
    assert message_part in flags[0]["message"], flags
    assert stats(server)[kind] == count
    assert metric(server, kind) == count
    others = {k: v for k, v in stats(server).items() if k != kind}
    assert set(others.values()) == {0}, others


def test_sent_at_in_the_future_past_the_tolerated_skew(server, events_client, export):
    # 4 minutes ahead is clock skew (tolerated: 5 minutes); an hour ahead is flagged.
    put(server, events_client, [event("skew", sentAt=NOW() + 240), event("future", sentAt=NOW() + 3600)])
    assert flags_of(export, server, "skew") is None
    assert_flagged(server, export, "future", "sentAtInFuture", "ahead of the server's clock")


def test_sent_at_before_2000(server, events_client, export):
    put(server, events_client, [event("y2k", sentAt=946684800), event("old", sentAt=946684799)])
    assert flags_of(export, server, "y2k") is None
    assert_flagged(server, export, "old", "sentAtBefore2000", "before 2000-01-01")


@pytest.mark.parametrize("member", ["sessionId", "userId"])
def test_null_or_undefined_ids(server, events_client, export, member):
    placeholder = {"sessionId": "NULL", "userId": "undefined"}[member]
    ids = {"session_id": "s-real", "user_id": "u-real", **{
        {"sessionId": "session_id", "userId": "user_id"}[member]: placeholder}}
    put(server, events_client, [event("placeholder")], **ids)
    put(server, events_client, [event("lookalike")], session_id="null-ish", user_id="nullable")
    assert flags_of(export, server, "lookalike") is None
    assert_flagged(server, export, "placeholder", "placeholderId", f"{member} is \"null\" or \"undefined\"")


def test_impression_without_the_item(server, events_client, export):
    put(server, events_client, [event("shown", impression=["item-0", "item-1"]),
                                event("not-shown", impression=["item-0", "item-2"])])
    assert flags_of(export, server, "shown") is None
    assert_flagged(server, export, "not-shown", "itemNotInImpression", "not in the impression list")


def test_duplicate_event_id_dropped_is_counted(server, events_client, export):
    put(server, events_client, [event("dup"), event("dup")])
    put(server, events_client, [event("dup", eventType="retry")])
    rows = [r for r in export(server.data_dir, "jsonl") if r["eventId"] == "dup"]
    assert [(r["eventType"], r.get("flags")) for r in rows] == [("click", None)], "the first copy wins, unflagged"
    assert stats(server)["duplicateEventId"] == 2
    assert metric(server, "duplicateEventId") == 2
