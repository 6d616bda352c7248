"""Durability and identity: restarts (SIGTERM and SIGKILL), eventId deduplication, concurrent clients, bootstrap.

Each test owns its server and data dir (``server`` / ``server_factory``), because they stop and start it.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import default_schema_flags, undeclared_flags


BASE_TIME = 1700000000
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGKILL, id="SIGKILL")]


def expected_exit(sig: int) -> int:
    return 0 if sig == signal.SIGTERM else -sig  # SIGTERM is a graceful stop; SIGKILL shows as -9 in Python


def make_events(prefix: str, n: int, **fields) -> list[dict]:
    return [dict({"eventId": f"{prefix}-{i:03d}", "eventType": "click", "itemId": f"item-{i}",
                  "sentAt": BASE_TIME + i, "eventValue": float(i)}, **fields) for i in range(n)]


def put_all(client, tracking_id: str, events: list[dict], session_id: str = "durability-session",
            user_id: str = "durability-user"):
    for i in range(0, len(events), 10):
        response = client.put_events(trackingId=tracking_id, sessionId=session_id, userId=user_id,
                                     eventList=events[i:i + 10])
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def ids(rows: list[dict]) -> list[str]:
    return [r["eventId"] for r in rows]


# --------------------------------------------------------------------------------------------------------------------
# Restarts
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", SIGNALS)
def test_events_survive_a_restart(server, events_client, export, export_raw, sig):
    first = make_events(f"restart-{sig.name}-a", 25)
    put_all(events_client(server.endpoint), server.tracking_id, first)
    exported_while_running = {fmt: export_raw(server.data_dir, fmt) for fmt in ("jsonl", "csv")}
    tracking_id = server.tracking_id

    assert server.stop(sig) == expected_exit(sig), server.log()
    assert {fmt: export_raw(server.data_dir, fmt) for fmt in ("jsonl", "csv")} == exported_while_running

    server.start()
    assert (server.bootstrap, server.tracking_id) == ("reusing", tracking_id)
    assert {fmt: export_raw(server.data_dir, fmt) for fmt in ("jsonl", "csv")} == exported_while_running

    second = make_events(f"restart-{sig.name}-b", 5)
    put_all(events_client(server.endpoint), server.tracking_id, second)
    rows = export(server.data_dir, "jsonl")
    assert ids(rows) == ids(first + second)
    assert [r["eventValue"] for r in rows] == [e["eventValue"] for e in first + second]
    assert [r["itemId"] for r in rows] == [e["itemId"] for e in first + second]
    assert len(export(server.data_dir, "csv")) == 30


@pytest.mark.parametrize("sig", SIGNALS)
def test_acknowledged_events_survive_a_stop_under_load(server, events_client, export, sig):
    """Writers keep putting while the server is stopped: every acknowledged event must be in the store."""
    writers = 6
    clients = [events_client(server.endpoint, max_attempts=1, connect_timeout=2, read_timeout=20)
               for _ in range(writers)]
    acked: list[set[str]] = [set() for _ in range(writers)]
    attempted: list[set[str]] = [set() for _ in range(writers)]
    stop = threading.Event()

    def write(w: int):
        n = 0
        while not stop.is_set():
            batch = [{"eventId": f"load-{w}-{n:05d}-{k}", "eventType": "view", "sentAt": BASE_TIME + n}
                     for k in range(10)]
            attempted[w].update(e["eventId"] for e in batch)
            try:
                clients[w].put_events(trackingId=server.tracking_id, sessionId=f"load-{w}", eventList=batch)
            except Exception:  # the server went away: stop writing
                return
            acked[w].update(e["eventId"] for e in batch)
            n += 1

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while sum(map(len, acked)) < 2000 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        rc = server.stop(sig)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert rc == expected_exit(sig), server.log()

    all_acked = set().union(*acked)
    assert len(all_acked) >= 2000
    exported = ids(export(server.data_dir, "jsonl"))
    assert len(exported) == len(set(exported)), "an eventId was exported twice"
    missing = all_acked - set(exported)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert set(exported) <= set().union(*attempted)

    server.start()  # the store opens again after either kind of stop
    assert server.bootstrap == "reusing"
    assert set(ids(export(server.data_dir, "jsonl"))) == set(exported)


def test_restart_reuses_dataset_group_and_tracking_id(server_factory):
    server = server_factory()
    assert server.bootstrap == "created"
    tracking_id, group = server.tracking_id, server.dataset_group_arn
    assert str(uuid.UUID(tracking_id)) == tracking_id  # a random UUID when none is configured
    assert group == "arn:aws:personalize:us-east-1:000000000000:dataset-group/default"

    for sig in (signal.SIGTERM, signal.SIGKILL):
        server.restart(sig)
        assert (server.bootstrap, server.tracking_id, server.dataset_group_arn) == ("reusing", tracking_id, group)
        assert any(line.endswith("(reusing)") for line in server.stdout_lines), server.stdout_lines
        response = server.post_events({"trackingId": tracking_id, "sessionId": "s",
                                       "eventList": [{"eventType": "click", "sentAt": BASE_TIME}]})
        assert response.status == 200, response

    other = server_factory()  # a fresh data dir gets its own random tracking ID
    assert other.bootstrap == "created" and other.tracking_id != tracking_id


def test_default_tracking_id_fixes_the_tracking_id(server_factory, events_client, export):
    fixed = "interlog-test-tracker-0001"
    a = server_factory(args=("--default-tracking-id", fixed))
    b = server_factory(args=("--default-tracking-id", fixed))
    assert (a.bootstrap, a.tracking_id) == ("created", fixed)
    assert (b.bootstrap, b.tracking_id) == ("created", fixed)  # the same ID on every fresh data dir

    put_all(events_client(a.endpoint), fixed, make_events("fixed", 3))
    assert ids(export(a.data_dir, "jsonl")) == ["fixed-000", "fixed-001", "fixed-002"]
    assert export(b.data_dir, "jsonl") == []

    a.restart(args=())  # without the flag the stored ID stays
    assert (a.bootstrap, a.tracking_id) == ("reusing", fixed)
    a.restart(args=("--default-tracking-id", fixed))
    assert (a.bootstrap, a.tracking_id) == ("reusing", fixed)
    put_all(events_client(a.endpoint), fixed, make_events("fixed-again", 1))
    assert ids(export(a.data_dir, "jsonl")) == ["fixed-000", "fixed-001", "fixed-002", "fixed-again-000"]

    # Asking for another ID on a data dir that already has one must not silently hand out the old one.
    a.stop()
    with pytest.raises(Exception) as failed:
        a.start(args=("--default-tracking-id", "some-other-tracker"))
    assert getattr(failed.value, "returncode", None) not in (None, 0), failed.value
    assert fixed in failed.value.log


# --------------------------------------------------------------------------------------------------------------------
# eventId deduplication: the first copy wins
# --------------------------------------------------------------------------------------------------------------------


def first_copy(event_id: str) -> dict:
    return {"eventId": event_id, "eventType": "first", "itemId": "item-first", "eventValue": 1.0,
            "sentAt": BASE_TIME, "properties": '{"copy": "1"}', "impression": ["a"],
            "metricAttribution": {"eventAttributionSource": "first-source"}}


def later_copy(event_id: str) -> dict:
    return {"eventId": event_id, "eventType": "second", "itemId": "item-second", "eventValue": 2.0,
            "sentAt": BASE_TIME + 99, "recommendationId": "RID-2"}


def assert_only_first_copy(export, data_dir, event_id: str, session_id: str, others: list[str]):
    rows = export(data_dir, "jsonl")
    assert sorted(ids(rows)) == sorted([event_id, *others])
    (row,) = [r for r in rows if r["eventId"] == event_id]
    row.pop("receivedAt")
    # The first copy's flags come with it (its properties key is undeclared), none of a later copy's.
    assert undeclared_flags(row.pop("flags")) == default_schema_flags(first_copy(event_id)["properties"])
    assert row == dict(first_copy(event_id), sessionId=session_id, userId="durability-user")
    csv_rows = export(data_dir, "csv")
    assert len(csv_rows) == len(rows)
    assert csv_rows[ids(rows).index(event_id)] == {
        "USER_ID": "durability-user", "ITEM_ID": "item-first", "TIMESTAMP": str(BASE_TIME), "EVENT_TYPE": "first",
        "EVENT_VALUE": "1", "IMPRESSION": "a", "RECOMMENDATION_ID": "", "EVENT_ATTRIBUTION_SOURCE": "first-source"}


def test_duplicate_event_id_in_one_request(server, events_client, export):
    client = events_client(server.endpoint)
    response = client.put_events(trackingId=server.tracking_id, sessionId="dup-one", userId="durability-user",
                                 eventList=[first_copy("dup-1"), {"eventId": "other-1", "eventType": "x",
                                                                  "sentAt": BASE_TIME}, later_copy("dup-1")])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert_only_first_copy(export, server.data_dir, "dup-1", "dup-one", ["other-1"])


def test_duplicate_event_id_in_two_requests(server, events_client, export):
    client = events_client(server.endpoint)
    client.put_events(trackingId=server.tracking_id, sessionId="dup-two", userId="durability-user",
                      eventList=[first_copy("dup-2")])
    response = client.put_events(trackingId=server.tracking_id, sessionId="dup-two-later", userId="durability-user",
                                 eventList=[later_copy("dup-2"), {"eventId": "other-2", "eventType": "x",
                                                                  "sentAt": BASE_TIME},
                                            {"eventId": "DUP-2", "eventType": "x", "sentAt": BASE_TIME}])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200  # a duplicate is not an error
    # eventIds compare exactly: "DUP-2" is another event.
    assert_only_first_copy(export, server.data_dir, "dup-2", "dup-two", ["other-2", "DUP-2"])


@pytest.mark.parametrize("sig", SIGNALS)
def test_duplicate_event_id_across_a_restart(server, events_client, export, sig):
    events_client(server.endpoint).put_events(trackingId=server.tracking_id, sessionId="dup-restart",
                                              userId="durability-user", eventList=[first_copy("dup-3")])
    server.restart(sig)
    client = events_client(server.endpoint)
    for _ in range(2):  # a retry after the restart, twice
        response = client.put_events(trackingId=server.tracking_id, sessionId="dup-restart-later",
                                     userId="durability-user", eventList=[later_copy("dup-3")])
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert_only_first_copy(export, server.data_dir, "dup-3", "dup-restart", [])
    server.restart(signal.SIGTERM)  # and the answer does not change after yet another restart
    assert_only_first_copy(export, server.data_dir, "dup-3", "dup-restart", [])


# --------------------------------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------------------------------


def test_concurrent_clients_lose_nothing_and_duplicate_nothing(server, events_client, export):
    n_clients, calls, per_call = 50, 20, 10
    # One client per thread; clients are created up front from one session (boto3 sessions are not thread-safe).
    clients = [events_client(server.endpoint, max_attempts=1, max_pool_connections=2) for _ in range(n_clients)]
    start = threading.Barrier(n_clients)
    errors: list[str] = []

    def run(c: int):
        start.wait()
        try:
            for call in range(calls):
                events = [{"eventId": f"conc-{c:02d}-{call:02d}-{k}", "eventType": "click",
                           "itemId": f"item-{c}-{call}-{k}", "eventValue": float(k),
                           "sentAt": datetime.fromtimestamp(BASE_TIME + call * per_call + k, tz=timezone.utc)}
                          for k in range(per_call)]
                clients[c].put_events(trackingId=server.tracking_id, userId=f"user-{c:02d}",
                                      sessionId=f"conc-session-{c:02d}", eventList=events)
        except Exception as e:  # reported below; a single failure fails the test
            errors.append(f"client {c}: {e!r}")

    threads = [threading.Thread(target=run, args=(c,)) for c in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "clients hung"
    assert not errors, errors[:5]

    rows = export(server.data_dir, "jsonl")
    exported = ids(rows)
    expected = {f"conc-{c:02d}-{call:02d}-{k}" for c in range(n_clients) for call in range(calls)
                for k in range(per_call)}
    assert len(exported) == len(set(exported)), "duplicated events"
    assert set(exported) == expected, f"lost {len(expected - set(exported))}, unexpected {set(exported) - expected}"
    assert len(rows) == n_clients * calls * per_call == 10_000

    for c in range(n_clients):  # each client's events are stored in the order it sent them, with its fields
        mine = [r for r in rows if r["sessionId"] == f"conc-session-{c:02d}"]
        assert ids(mine) == sorted(e for e in expected if e.startswith(f"conc-{c:02d}-"))
        assert all(r["userId"] == f"user-{c:02d}" for r in mine)
        assert [r["sentAt"] for r in mine] == list(range(BASE_TIME, BASE_TIME + calls * per_call))
        assert [r["itemId"] for r in mine] == [f"item-{c}-{call}-{k}" for call in range(calls)
                                               for k in range(per_call)]

    csv_rows = export(server.data_dir, "csv")
    assert len(csv_rows) == 10_000
    assert [(r["USER_ID"], r["ITEM_ID"], int(r["TIMESTAMP"])) for r in csv_rows] == \
        [(r["userId"], r["itemId"], int(r["sentAt"])) for r in rows]
