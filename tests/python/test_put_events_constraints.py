"""Every PutEvents constraint, one table row each, sent as signed raw HTTP (the SDKs refuse most of these bodies).

Each rejected request must answer 400 with ``x-amzn-ErrorType: InvalidInputException``, the same ``__type`` in the
JSON body, and a message that names the member and the rule; the store must not change (checked after every row,
and once more for the whole table). Values at the limits must be accepted.
"""

from __future__ import annotations

import json
import re

import pytest


MISSING = object()
SESSION = "constraints-session"
MAX_EVENT_BYTES = 10 * 1024
FORBIDDEN_KEYS = ["userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression",
                  "TimeStamp", "USERID", "user_id", "Session_Id", "EVENT_TYPE", "recommendationid", "Impression"]
SECRET = "SENSITIVEVALUE"  # marker inside sensitive members: it must never be echoed in a message


def event(**overrides) -> dict:
    e = {"eventId": "rejected-event", "eventType": "click", "sentAt": 1700000000, "itemId": "item-1"}
    for key, value in overrides.items():
        if value is MISSING:
            e.pop(key, None)
        else:
            e[key] = value
    return e


def request(tracking_id: str, events: list | object = None, **overrides) -> dict:
    r = {"trackingId": tracking_id, "userId": "user-1", "sessionId": SESSION,
         "eventList": [event()] if events is None else events}
    for key, value in overrides.items():
        if value is MISSING:
            r.pop(key, None)
        else:
            r[key] = value
    return r


def one(**overrides):
    """A request whose only event has these overrides."""
    return lambda t: request(t, [event(**overrides)])


def second(**overrides):
    """A request whose second event has these overrides (the first is valid): checks the 1-based index."""
    return lambda t: request(t, [event(eventId="valid-first"), event(**overrides)])


def top(**overrides):
    return lambda t: request(t, **overrides)


def sized_event(n_bytes: int, event_id: str) -> dict:
    """A valid-looking event whose JSON (as json.dumps sends it) is exactly n_bytes: properties ≤ 1024 characters,
    made big on the wire by emoji, which ASCII-only JSON escapes as 12-byte surrogate pairs."""
    base = {"eventId": event_id, "eventType": "comment", "sentAt": 1700000000, "itemId": "item-1"}

    def build(emoji: int, pad: int) -> dict:
        return dict(base, properties=json.dumps({"note": "😀" * emoji + "a" * pad}, ensure_ascii=False))

    size = lambda e: len(json.dumps(e).encode())  # noqa: E731
    emoji = (n_bytes - size(build(0, 0))) // 12
    e = build(emoji, n_bytes - size(build(emoji, 0)))
    assert size(e) == n_bytes and len(e["properties"]) <= 1024, (size(e), len(e["properties"]))
    return e


def impressions(total_joined: int, count: int) -> list[str]:
    """`count` item IDs whose '|'-joined length is exactly total_joined."""
    chars = total_joined - (count - 1)
    sizes = [chars // count + (1 if i < chars % count else 0) for i in range(count)]
    return [f"{i:03d}".ljust(size, "x") for i, size in enumerate(sizes)]


def props_of_length(n: int) -> str:
    p = json.dumps({"filler": "f" * (n - 14)})
    assert len(p) == n
    return p


LEN_MAX = "Member must have length less than or equal to {}"
LEN_MIN = "Member must have length greater than or equal to 1"
NOT_NULL = "Member must not be null"
PATTERN = r"Member must satisfy regular expression pattern"

# (id, body builder: tracking_id -> dict | bytes, required regexes in the message, value that must not be echoed)
CASES = [
    ("missing-trackingId", top(trackingId=MISSING), [r"Value null at 'trackingId'", NOT_NULL], None),
    ("missing-sessionId", top(sessionId=MISSING), [r"Value null at 'sessionId'", NOT_NULL], None),
    ("missing-eventList", top(eventList=MISSING), [r"Value null at 'eventList'", NOT_NULL], None),
    ("missing-eventType", one(eventType=MISSING), [r"Value null at 'eventList\.1\.member\.eventType'", NOT_NULL], None),
    ("missing-sentAt", second(sentAt=MISSING), [r"Value null at 'eventList\.2\.member\.sentAt'", NOT_NULL], None),
    ("trackingId-257", top(trackingId="t" * 257), [r"at 'trackingId'", LEN_MAX.format(256)], None),
    ("userId-0", top(userId=""), [r"Value at 'userId' failed", LEN_MIN], None),
    ("userId-257", top(userId=SECRET + "u" * 243), [r"Value at 'userId' failed", LEN_MAX.format(256)], SECRET),
    ("sessionId-257", top(sessionId="s" * 257), [r"at 'sessionId'", LEN_MAX.format(256)], None),
    ("eventId-0", one(eventId=""), [r"at 'eventList\.1\.member\.eventId'", LEN_MIN], None),
    ("eventId-257", one(eventId="e" * 257), [r"at 'eventList\.1\.member\.eventId'", LEN_MAX.format(256)], None),
    ("eventType-257", second(eventType="t" * 257), [r"at 'eventList\.2\.member\.eventType'", LEN_MAX.format(256)],
     None),
    ("itemId-257", one(itemId=SECRET + "i" * 243),
     [r"Value at 'eventList\.1\.member\.itemId' failed", LEN_MAX.format(256)], SECRET),
    ("recommendationId-41", one(recommendationId="r" * 41),
     [r"at 'eventList\.1\.member\.recommendationId'", LEN_MAX.format(40)], None),
    ("properties-0", one(properties=""), [r"at 'eventList\.1\.member\.properties'", LEN_MIN], None),
    ("properties-1025", one(properties=props_of_length(1025)),
     [r"Value at 'eventList\.1\.member\.properties' failed", LEN_MAX.format(1024)], None),
    ("eventList-0", top(eventList=[]), [r"at 'eventList'", LEN_MIN], None),
    ("eventList-11", lambda t: request(t, [event(eventId=f"e{i}") for i in range(11)]),
     [r"at 'eventList'", LEN_MAX.format(10)], None),
    ("impression-0", one(impression=[]), [r"at 'eventList\.1\.member\.impression'", LEN_MIN], None),
    ("impression-26", one(impression=[f"i{i}" for i in range(26)]),
     [r"at 'eventList\.1\.member\.impression'", LEN_MAX.format(25)], None),
    ("impression-entry-257", one(impression=["ok", SECRET + "x" * 243]),
     [r"Value at 'eventList\.1\.member\.impression\.2\.member' failed", LEN_MAX.format(256)], SECRET),
    ("impression-entry-0", one(impression=["ok", ""]),
     [r"at 'eventList\.1\.member\.impression\.2\.member'", LEN_MIN], None),
    ("impression-joined-1001", one(impression=impressions(1001, 4)),
     [r"at 'eventList\.1\.member\.impression'", r"1000"], None),
    ("eventValue-NaN", one(eventValue="NaN"), [r"at 'eventList\.1\.member\.eventValue'", r"finite"], None),
    ("eventValue-Infinity", one(eventValue="Infinity"), [r"at 'eventList\.1\.member\.eventValue'", r"finite"], None),
    ("eventValue--Infinity", second(eventValue="-Infinity"), [r"at 'eventList\.2\.member\.eventValue'", r"finite"],
     None),
    ("eventValue-abc", second(eventValue="abc"), [r"eventList(\.2\.member\.|\[1\]\.)eventValue", r"number"], None),
    ("eventValue-boolean", one(eventValue=True), [r"eventList(\.1\.member\.|\[0\]\.)eventValue", r"number"], None),
    ("sentAt-string", second(sentAt="1700000000"), [r"eventList(\.2\.member\.|\[1\]\.)sentAt", r"number"], None),
    ("sentAt-milliseconds", one(sentAt=1700000000000), [r"at 'eventList\.1\.member\.sentAt'", r"millisecond"], None),
    ("properties-not-json", one(properties="{numberOfRatings: 12"),
     [r"eventList\.1\.member\.properties", r"Error parsing properties json"], None),
    ("properties-json-array", one(properties='["numberOfRatings", "12"]'),
     [r"eventList\.1\.member\.properties", r"Error parsing properties json"], None),
    ("properties-double-encoded", one(properties=json.dumps(json.dumps({"numberOfRatings": "12"}))),
     [r"eventList\.1\.member\.properties", r"Error parsing properties json"], None),
    ("properties-object-not-string", one(properties={"numberOfRatings": "12"}),
     [r"eventList(\.1\.member\.|\[0\]\.)properties", r"string"], None),
    *[
        (f"properties-forbidden-{key}", one(properties=json.dumps({"numberOfRatings": "12", key: "x"})),
         [r"eventList\.1\.member\.properties", re.escape(f"'{key}'")], None)
        for key in FORBIDDEN_KEYS
    ],
    ("metricAttribution-no-source", one(metricAttribution={}),
     [r"Value null at 'eventList\.1\.member\.metricAttribution\.eventAttributionSource'", NOT_NULL], None),
    ("attributionSource-non-ascii", one(metricAttribution={"eventAttributionSource": "café"}),
     [r"at 'eventList\.1\.member\.metricAttribution\.eventAttributionSource'", PATTERN], None),
    ("attributionSource-all-spaces", one(metricAttribution={"eventAttributionSource": "   "}),
     [r"at 'eventList\.1\.member\.metricAttribution\.eventAttributionSource'", PATTERN], None),
    ("attributionSource-empty", one(metricAttribution={"eventAttributionSource": ""}),
     [r"at 'eventList\.1\.member\.metricAttribution\.eventAttributionSource'", PATTERN], None),
    ("attributionSource-control-char", one(metricAttribution={"eventAttributionSource": "a\tb"}),
     [r"at 'eventList\.1\.member\.metricAttribution\.eventAttributionSource'", PATTERN], None),
    ("attributionSource-1025", one(metricAttribution={"eventAttributionSource": "a" * 1025}),
     [r"at 'eventList\.1\.member\.metricAttribution\.eventAttributionSource'", LEN_MAX.format(1024)], None),
    ("event-over-10KB", lambda t: request(t, [event(eventId="ok"), sized_event(MAX_EVENT_BYTES + 1, "big")]),
     [r"eventList\.2\.member", r"10 ?KB|10240"], None),
    ("body-not-json", lambda t: b"trackingId=" + t.encode() + b"&sessionId=s", [r"JSON"], None),
    ("body-truncated", lambda t: json.dumps(request(t)).encode()[:-3], [r"JSON|EOF"], None),
    ("body-empty", lambda t: b"", [r"JSON"], None),
    ("body-json-array", lambda t: b"[]", [r"JSON|object"], None),
    ("body-json-string", lambda t: json.dumps(json.dumps(request(t))).encode(), [r"JSON|object"], None),
    ("body-json-null", lambda t: b"null", [r"JSON|object"], None),
    ("trackingId-not-string", top(trackingId=12345), [r"trackingId", r"string"], None),
    ("eventList-object", top(eventList={"1": event()}), [r"eventList", r"sequence|list|array"], None),
    ("event-null", lambda t: request(t, [event(eventId="ok"), None]), [r"eventList(\.2\.member|\[1\])"], None),
    ("impression-string", one(impression="a|b"), [r"eventList(\.1\.member\.|\[0\]\.)impression", r"sequence|list|array"],
     None),
    ("trackingId-unknown", top(trackingId="00000000-0000-4000-8000-00000000dead"),
     [r"trackingId", r"00000000-0000-4000-8000-00000000dead"], None),
]


@pytest.fixture(scope="module")
def baseline(module_server, export_raw):
    """One stored event, then the exports every rejected request must leave unchanged."""
    r = module_server.post_events(request(module_server.tracking_id, [event(eventId="seed-event")]))
    assert r.status == 200, r
    return {fmt: export_raw(module_server.data_dir, fmt) for fmt in ("jsonl", "csv")}


def assert_invalid_input(response, patterns, hidden=None):
    assert response.status == 400, response
    assert response.headers.get("x-amzn-errortype") == "InvalidInputException", response
    assert response.headers.get("content-type", "").startswith("application/json"), response
    assert response.headers.get("x-amzn-requestid"), response
    body = response.json()
    assert body["__type"] == "InvalidInputException", body
    message = body["message"]
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not found in message {message!r}"
    if hidden is not None:
        assert hidden not in message, f"sensitive value echoed: {message!r}"
    return message


@pytest.mark.parametrize("build, patterns, hidden", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_constraint_is_enforced(module_server, baseline, export_raw, build, patterns, hidden):
    s = module_server
    before = {fmt: export_raw(s.data_dir, fmt) for fmt in ("jsonl", "csv")}
    response = s.post_events(build(s.tracking_id))
    assert_invalid_input(response, patterns, hidden)
    assert {fmt: export_raw(s.data_dir, fmt) for fmt in ("jsonl", "csv")} == before, "a rejected request stored data"


def test_whole_table_stored_nothing(module_server, baseline, export_raw):
    """Runs after the table (file order): the store is byte-identical to what it was before the first row."""
    assert {fmt: export_raw(module_server.data_dir, fmt) for fmt in ("jsonl", "csv")} == baseline


@pytest.mark.parametrize("bad_position", [1, 2])
def test_one_invalid_event_rejects_the_whole_request(module_server, baseline, export_raw, bad_position):
    s = module_server
    before = export_raw(s.data_dir, "jsonl")
    events = [event(eventId=f"batch-valid-{bad_position}")]
    events.insert(bad_position - 1, event(eventId=f"batch-invalid-{bad_position}", eventType=""))
    response = s.post_events(request(s.tracking_id, events))
    assert_invalid_input(response, [rf"at 'eventList\.{bad_position}\.member\.eventType'", LEN_MIN])
    assert export_raw(s.data_dir, "jsonl") == before


def test_every_violation_is_listed(module_server, baseline, export_raw):
    s = module_server
    before = export_raw(s.data_dir, "jsonl")
    body = request(s.tracking_id, [event(eventType=MISSING), event(recommendationId="r" * 41)], sessionId=MISSING)
    message = assert_invalid_input(s.post_events(body), [
        r"^3 validation errors detected: ",
        r"Value null at 'sessionId' failed to satisfy constraint: Member must not be null",
        r"Value null at 'eventList\.1\.member\.eventType' failed to satisfy constraint: Member must not be null",
        r"at 'eventList\.2\.member\.recommendationId' failed to satisfy constraint: " + LEN_MAX.format(40),
    ])
    assert message.count("; ") == 2, message
    assert export_raw(s.data_dir, "jsonl") == before


# --------------------------------------------------------------------------------------------------------------------
# JSON arrays where the model has structures: serde would read them positionally; the service must not.
# --------------------------------------------------------------------------------------------------------------------

POSITIONAL = [
    ("request-as-array", lambda t: [t, "positional-user", "positional-session",
                                    [{"eventId": "positional-1", "eventType": "click", "sentAt": 1700000000}]],
     r"JSON|object"),
    ("event-as-array", lambda t: request(t, [["positional-2", "click", None, None, None, 1700000000, None, None, None]]),
     r"eventList(\.1\.member|\[0\])"),
    ("metricAttribution-as-array", one(eventId="positional-3", metricAttribution=["newsletter"]),
     r"metricAttribution"),
]


@pytest.mark.parametrize("build, member", [c[1:] for c in POSITIONAL], ids=[c[0] for c in POSITIONAL])
def test_json_array_in_place_of_a_structure_is_rejected(server, export, build, member):
    response = server.post_events(build(server.tracking_id))
    stored = export(server.data_dir, "jsonl")
    assert response.status == 400, f"{response}; stored: {stored}"
    assert_invalid_input(response, [member])
    assert stored == []


# --------------------------------------------------------------------------------------------------------------------
# The limits themselves are allowed.
# --------------------------------------------------------------------------------------------------------------------


def test_values_at_every_limit_are_accepted(server, export):
    user_id = "😀" * 256  # 256 code points (512 UTF-16 units): lengths count characters
    session_id = "s" * 256
    props = props_of_length(1024)
    impression = impressions(1000, 25)
    source = " " + "~" * 1022 + " "  # printable ASCII, spaces allowed around at least one visible character
    events = [
        {"eventId": f"{i:02d}".ljust(256, "e"), "eventType": "t" * 256, "itemId": "i" * 256, "sentAt": 1e11,
         "eventValue": -1.5, "properties": props, "recommendationId": "r" * 40, "impression": impression,
         "metricAttribution": {"eventAttributionSource": source}}
        for i in range(10)
    ]
    response = server.post_events(request(server.tracking_id, events, userId=user_id, sessionId=session_id))
    assert response.status == 200, response
    assert response.body == b""

    rows = export(server.data_dir, "jsonl")
    assert [r["eventId"] for r in rows] == [e["eventId"] for e in events]
    for row in rows:
        assert row["userId"] == user_id and row["sessionId"] == session_id
        assert row["properties"] == props and row["impression"] == impression
        assert row["metricAttribution"] == {"eventAttributionSource": source}
        assert row["sentAt"] == 100000000000 and row["eventValue"] == -1.5
    csv_rows = export(server.data_dir, "csv")
    assert len(csv_rows) == 10
    assert csv_rows[0]["USER_ID"] == user_id
    assert csv_rows[0]["IMPRESSION"] == "|".join(impression) and len(csv_rows[0]["IMPRESSION"]) == 1000
    assert csv_rows[0]["TIMESTAMP"] == "100000000000"


def test_event_of_exactly_10_kb_is_accepted(server, export):
    e = sized_event(MAX_EVENT_BYTES, "exactly-10kb")
    response = server.post_events(request(server.tracking_id, [e]))
    assert response.status == 200, response
    rows = export(server.data_dir, "jsonl")
    assert [(r["eventId"], r["properties"]) for r in rows] == [("exactly-10kb", e["properties"])]

