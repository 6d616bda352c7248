"""`interlog put-events` and `interlog export --endpoint-url` end to end against `interlog serve` with SigV4 on.

`interlog put-events` is aws-cli's `personalize-events put-events` reimplemented, so it is checked two ways: what it
stores for every input style (read back with `interlog export --data-dir`, field by field), and that it stores the
same events as the pinned aws-cli given the very same argv and environment (two servers with the same tracking ID,
compared by their exports). Credentials come from the environment or from a profile in a temporary ``~/.aws``.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, ServerPool, client_env, default_schema_flags, \
    parse_export, undeclared_flags

PROFILE = "interlog-cli-test"
WRONG_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGWRONG"
MISMATCH_MESSAGE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                    "Secret Access Key and signing method. Consult the service documentation for details.")
JSONL_MEMBERS = {
    "eventId", "sessionId", "userId", "eventType", "eventValue", "itemId", "properties", "sentAt",
    "recommendationId", "impression", "metricAttribution", "receivedAt", "flags",
}
GENERATED = object()  # an eventId the server generates (a UUID)


# --------------------------------------------------------------------------------------------------------------------
# Environments: credentials from variables, or from a profile in ~/.aws
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> dict[str, Path]:
    """``empty``: no ~/.aws at all. ``profile``: ~/.aws whose [default] holds an unknown key (so a run that ignores
    the profile fails) and whose [interlog-cli-test] holds the right key, its region only in ~/.aws/config."""
    empty = tmp_path_factory.mktemp("home-empty")
    profile = tmp_path_factory.mktemp("home-profile")
    (profile / ".aws").mkdir()
    (profile / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDNOTKNOWNTOSERVER\naws_secret_access_key = not-the-secret\n\n"
        f"[{PROFILE}]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n",
        encoding="utf-8")
    (profile / ".aws" / "config").write_text(
        f"[default]\nregion = eu-west-1\n\n[profile {PROFILE}]\nregion = {REGION}\noutput = json\n", encoding="utf-8")
    return {"empty": empty, "profile": profile}


def env_credentials(homes, secret: str = SECRET_ACCESS_KEY, **extra) -> dict[str, str]:
    return client_env(homes["empty"], {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": secret,
                                       "AWS_DEFAULT_REGION": REGION, **extra})


CREDENTIALS = ["env", "--profile", "AWS_PROFILE"]


def credentials(homes, how: str) -> tuple[dict[str, str], list[str]]:
    """(environment, extra argv) for one way of giving the credentials."""
    if how == "env":
        return env_credentials(homes), []
    if how == "--profile":
        return client_env(homes["profile"]), ["--profile", PROFILE]
    if how == "AWS_PROFILE":
        return client_env(homes["profile"], {"AWS_PROFILE": PROFILE}), []
    raise ValueError(how)


# --------------------------------------------------------------------------------------------------------------------
# Input styles: argv, the files it refers to, and the events it must store
# --------------------------------------------------------------------------------------------------------------------


def row(event_id, session_id, event_type, sent_at, user_id=None, **members) -> dict:
    """One expected JSONL object without receivedAt (numbers compare exactly: Decimal/int)."""
    r = {"eventId": event_id, "sessionId": session_id, "eventType": event_type, "sentAt": sent_at, **members}
    if user_id is not None:
        r["userId"] = user_id
    return r


def style_shorthand(tracking_id: str, s: str, cwd: Path):
    first = (f"eventId={s}-1,eventType=click,sentAt=1700000000,itemId=i1,eventValue=4.5,impression=a,b,c,"
             "properties='{\"numberOfRatings\": \"12\"}',recommendationId=RID-sh,"
             "metricAttribution={eventAttributionSource=partner site}")
    second = f"eventId={s}-2,eventType=view,sentAt=2023-11-14T22:13:21Z,itemId=i2"
    argv = ["--tracking-id", tracking_id, "--session-id", s, "--user-id", "sh-user", "--event-list", first, second]
    return argv, [
        row(f"{s}-1", s, "click", 1700000000, "sh-user", itemId="i1", eventValue=Decimal("4.5"),
            impression=["a", "b", "c"], properties='{"numberOfRatings": "12"}', recommendationId="RID-sh",
            metricAttribution={"eventAttributionSource": "partner site"}),
        row(f"{s}-2", s, "view", 1700000001, "sh-user", itemId="i2"),
    ]


JSON_EVENTS = [
    {"eventType": "click", "sentAt": 1700000000, "itemId": "i1", "eventValue": 0.25,
     "properties": json.dumps({"numberOfRatings": "12", "genre": "a|b"}), "recommendationId": "RID-1",
     "impression": ["i1", "i2", "i3"], "metricAttribution": {"eventAttributionSource": "newsletter"}},
    # aws-cli v1 sends integer epoch seconds: fractions are truncated, ISO 8601 converted.
    {"eventType": "view", "sentAt": 1700000100.75},
    {"eventType": "rate", "sentAt": "1700000200.5", "eventValue": 3},
    {"eventType": "rate", "sentAt": "2023-11-14T22:13:20.999Z", "eventValue": -1.5e-3},
]


def json_expected(s: str, user_id: str | None, ids: list) -> list[dict]:
    e0 = JSON_EVENTS[0]
    return [
        row(ids[0], s, "click", 1700000000, user_id, itemId="i1", eventValue=Decimal("0.25"),
            properties=e0["properties"], recommendationId="RID-1", impression=["i1", "i2", "i3"],
            metricAttribution={"eventAttributionSource": "newsletter"}),
        row(ids[1], s, "view", 1700000100, user_id),
        row(ids[2], s, "rate", 1700000200, user_id, eventValue=3),
        row(ids[3], s, "rate", 1700000000, user_id, eventValue=Decimal("-0.0015")),
    ]


def with_ids(s: str, events: list[dict]) -> tuple[list[dict], list]:
    """Gives every other event an eventId (the others get generated ones)."""
    ids = [f"{s}-{i}" if i % 2 == 0 else GENERATED for i in range(len(events))]
    return [dict(e, eventId=i) if i is not GENERATED else dict(e) for e, i in zip(events, ids)], ids


def style_json(tracking_id: str, s: str, cwd: Path):
    events, ids = with_ids(s, JSON_EVENTS)
    argv = ["--tracking-id", tracking_id, "--session-id", s, "--user-id", "json-user",
            "--event-list", json.dumps(events)]
    return argv, json_expected(s, "json-user", ids)


def style_file(tracking_id: str, s: str, cwd: Path):
    events = [
        {"eventId": f"{s}-1", "eventType": "purchase", "sentAt": 1700000200, "itemId": 'café, "☕"',
         "eventValue": 19.99, "impression": ["x|y?", "z"]},
        {"eventId": f"{s}-2", "eventType": "click", "sentAt": 1700000201,
         "properties": json.dumps({"numberOfRatings": 13, "note": "ünï"}, ensure_ascii=False)},
    ]
    (cwd / f"{s}-events.json").write_text(json.dumps(events, ensure_ascii=False), encoding="utf-8")
    (cwd / f"{s}-tracking-id.txt").write_text(tracking_id, encoding="utf-8")
    argv = ["--tracking-id", f"file://{s}-tracking-id.txt", "--user-id", "üser-2", "--session-id", s,
            "--event-list", f"file://{s}-events.json"]
    return argv, [
        row(f"{s}-1", s, "purchase", 1700000200, "üser-2", itemId='café, "☕"', eventValue=Decimal("19.99"),
            impression=["x|y?", "z"]),
        row(f"{s}-2", s, "click", 1700000201, "üser-2", properties=events[1]["properties"]),
    ]


def style_cli_input_json(tracking_id: str, s: str, cwd: Path):
    events, ids = with_ids(s, JSON_EVENTS)
    document = {"trackingId": tracking_id, "userId": "input-user", "sessionId": s, "eventList": events}
    return ["--cli-input-json", json.dumps(document)], json_expected(s, "input-user", ids)


def style_cli_input_json_file(tracking_id: str, s: str, cwd: Path):
    """From a file, with --session-id and --user-id on the command line: the command line wins."""
    events, ids = with_ids(s, JSON_EVENTS)
    document = {"trackingId": tracking_id, "userId": "file-user", "sessionId": "not-this-session",
                "eventList": events}
    (cwd / f"{s}-input.json").write_text(json.dumps(document), encoding="utf-8")
    argv = ["--cli-input-json", f"file://{s}-input.json", "--session-id", s, "--user-id", "argv-user"]
    return argv, json_expected(s, "argv-user", ids)


STYLES = {
    "shorthand": style_shorthand,
    "json": style_json,
    "file": style_file,
    "cli-input-json": style_cli_input_json,
    "cli-input-json-file": style_cli_input_json_file,
}


def session_rows(export, data_dir: Path, session_id: str) -> list[dict]:
    return [r for r in export(data_dir, "jsonl") if r["sessionId"] == session_id]


def assert_stored(rows: list[dict], expected: list[dict], received_between: tuple[float, float]):
    assert len(rows) == len(expected), rows
    lo, hi = received_between
    for got, want in zip(rows, expected):
        got = dict(got)
        assert set(got) <= JSONL_MEMBERS, got
        received_at = got.pop("receivedAt")
        # The default schema declares no metadata field: every properties key is kept and flagged.
        assert undeclared_flags(got.pop("flags", None)) == default_schema_flags(want.get("properties")), got
        assert lo - 1 <= received_at <= hi + 1, (received_at, received_between)
        if want["eventId"] is GENERATED:
            assert str(uuid.UUID(got["eventId"])) == got["eventId"], got["eventId"]
            want = dict(want, eventId=got["eventId"])
        assert got == want


# --------------------------------------------------------------------------------------------------------------------
# interlog put-events: every input style, every way of giving credentials
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", CREDENTIALS)
@pytest.mark.parametrize("style", list(STYLES))
def test_put_events_stores_exactly_the_events(style, how, module_server, homes, run_cli, export, tmp_path):
    s = module_server
    session = f"ilcli-{style}-{how.strip('-')}"
    argv, expected = STYLES[style](s.tracking_id, session, tmp_path)
    env, cred_argv = credentials(homes, how)

    before = time.time()
    done = run_cli("interlog", "put-events", "--endpoint-url", s.endpoint, *argv, *cred_argv, env=env, cwd=tmp_path)
    after = time.time()

    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done
    assert_stored(session_rows(export, s.data_dir, session), expected, (before, after))


def test_the_profile_is_what_signs(module_server, homes, run_cli, export, tmp_path):
    """Counterpart of the profile cases above: the same home without a profile uses [default] (an unknown key)."""
    s = module_server
    argv, _ = style_shorthand(s.tracking_id, "ilcli-default-profile", tmp_path)
    done = run_cli("interlog", "put-events", "--endpoint-url", s.endpoint, *argv, env=client_env(homes["profile"]))
    assert done.returncode == 255, done
    assert "(UnrecognizedClientException)" in done.stderr
    assert session_rows(export, s.data_dir, "ilcli-default-profile") == []


# --------------------------------------------------------------------------------------------------------------------
# Same argv, same result as aws-cli
# --------------------------------------------------------------------------------------------------------------------


TWIN_TRACKING_ID = "7d1f0c2e-1c5b-4f0e-9a53-interlogtwin"


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """Two empty servers with the same tracking ID: one for interlog, one for aws-cli."""
    pool = ServerPool(tmp_path_factory.mktemp("twins"))
    pair = {c: pool(args=("--default-tracking-id", TWIN_TRACKING_ID)) for c in ("interlog", "aws")}
    yield pair
    pool.close()


def comparable(rows: list[dict]) -> list[dict]:
    """JSONL rows without what legitimately differs between two servers: receivedAt and generated eventIds."""
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k != "receivedAt"}
        try:
            uuid.UUID(r["eventId"])
            r["eventId"] = "<generated>"
        except ValueError:
            pass
        out.append(r)
    return out


@pytest.mark.parametrize("endpoint_from, styles", [
    ("--endpoint-url", list(STYLES)),
    # The endpoint from the environment instead: argv byte-identical (two styles suffice, aws-cli is slow).
    ("AWS_ENDPOINT_URL", ["shorthand", "cli-input-json-file"]),
    ("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", ["json", "file"]),
])
def test_same_argv_same_events_as_awscli(endpoint_from, styles, twins, homes, run_cli, export, export_raw, tmp_path):
    """Input styles through both programs with identical argv, files and environment (only the endpoint differs);
    the stored events must be the same, including aws-cli's integer sentAt."""
    sessions = []
    expected_count = 0
    for style in styles:
        session = f"twin-{endpoint_from}-{style}"
        sessions.append(session)
        argv, expected = STYLES[style](TWIN_TRACKING_ID, session, tmp_path)
        expected_count += len(expected)
        for client, server in twins.items():
            extra = {} if endpoint_from == "--endpoint-url" else {endpoint_from: server.endpoint}
            endpoint_argv = ["--endpoint-url", server.endpoint] if endpoint_from == "--endpoint-url" else []
            program = ["interlog"] if client == "interlog" else ["aws", "personalize-events"]
            done = run_cli(*program, "put-events", *endpoint_argv, *argv, env=env_credentials(homes, **extra),
                           cwd=tmp_path)
            assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), (client, style, done)

    rows = {c: [r for r in export(s.data_dir, "jsonl") if r["sessionId"] in sessions] for c, s in twins.items()}
    assert len(rows["aws"]) == expected_count
    assert comparable(rows["interlog"]) == comparable(rows["aws"])
    # aws-cli v1 sends whole seconds only; interlog must too.
    assert all(r["sentAt"] == int(r["sentAt"]) for r in rows["interlog"])
    # Both servers got the same requests in the same order (every parametrization of this test): the CSV exports,
    # which hold neither eventId nor receivedAt, are byte-identical.
    assert export_raw(twins["interlog"].data_dir, "csv") == export_raw(twins["aws"].data_dir, "csv")


def test_wrong_secret_fails_like_awscli(module_server, homes, run_cli, export, tmp_path):
    s = module_server
    before = export(s.data_dir, "jsonl")
    argv, _ = style_json(s.tracking_id, "ilcli-wrong-secret", tmp_path)
    env = env_credentials(homes, secret=WRONG_SECRET)
    ours = run_cli("interlog", "put-events", "--endpoint-url", s.endpoint, *argv, env=env)
    theirs = run_cli("aws", "personalize-events", "put-events", "--endpoint-url", s.endpoint, *argv, env=env)
    assert theirs.returncode == 255
    assert theirs.stderr == ("\nAn error occurred (InvalidSignatureException) when calling the PutEvents operation: "
                             f"{MISMATCH_MESSAGE}\n")
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert export(s.data_dir, "jsonl") == before


def test_no_region_fails_like_awscli(module_server, homes, run_cli, tmp_path):
    """AWS_REGION is not read by aws-cli v1 (only AWS_DEFAULT_REGION): with nothing else, both refuse to run."""
    s = module_server
    argv, _ = style_shorthand(s.tracking_id, "ilcli-no-region", tmp_path)
    env = env_credentials(homes, AWS_DEFAULT_REGION=None, AWS_REGION=REGION)
    ours = run_cli("interlog", "put-events", "--endpoint-url", s.endpoint, *argv, env=env)
    theirs = run_cli("aws", "personalize-events", "put-events", "--endpoint-url", s.endpoint, *argv, env=env)
    assert theirs.returncode == 255 and "You must specify a region" in theirs.stderr, theirs
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


# --------------------------------------------------------------------------------------------------------------------
# interlog export --endpoint-url
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export_server(tmp_path_factory):
    """A server with a few events of every shape in it."""
    pool = ServerPool(tmp_path_factory.mktemp("export-server"))
    server = pool()
    events = [dict(e, eventId=f"exp-{i}") for i, e in enumerate(JSON_EVENTS)]
    for session in ("exp-a", "exp-b"):
        response = server.post_events({"trackingId": server.tracking_id, "userId": "exp-user", "sessionId": session,
                                       "eventList": [dict(e, eventId=f"{session}-{e['eventId']}",
                                                          sentAt=1700000000.5) for e in events]})
        assert response.status == 200, response
    yield server
    pool.close()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("how", CREDENTIALS)
@pytest.mark.parametrize("output", ["file", "stdout"])
def test_export_through_the_server_equals_the_data_dir(output, how, fmt, export_server, homes, run_cli, export_raw,
                                                       tmp_path):
    s = export_server
    env, cred_argv = credentials(homes, how)
    target = tmp_path / f"out.{fmt}"
    done = run_cli("interlog", "export", "--endpoint-url", s.endpoint, *cred_argv, "--format", fmt,
                   "--output", str(target) if output == "file" else "-", env=env, binary=True)
    assert done.returncode == 0, done.stderr
    got = target.read_bytes() if output == "file" else done.stdout
    if output == "file":
        assert done.stdout == b""
    expected = export_raw(s.data_dir, fmt)
    assert len(parse_export(expected, fmt)) == 8
    assert got == expected


@pytest.mark.parametrize("case", ["wrong-secret", "unsigned", "unknown-profile-key"])
def test_export_refused(case, export_server, homes, run_cli, tmp_path):
    s = export_server
    target = tmp_path / "out.csv"
    argv = ["export", "--endpoint-url", s.endpoint, "--output", str(target)]
    if case == "wrong-secret":
        env, code, message = env_credentials(homes, secret=WRONG_SECRET), "InvalidSignatureException", MISMATCH_MESSAGE
    elif case == "unsigned":
        env, code, message = env_credentials(homes), "MissingAuthenticationTokenException", None
        argv.append("--no-sign-request")
    else:  # [default] of the profile home: a key the server does not know
        env, code, message = client_env(homes["profile"]), "UnrecognizedClientException", \
            "The security token included in the request is invalid."
    done = run_cli("interlog", *argv, env=env)
    assert done.returncode == 1, done
    assert done.stderr.startswith(f"interlog: the server answered 403 ({code}): "), done.stderr
    if message is not None:
        assert done.stderr.rstrip("\n") == f"interlog: the server answered 403 ({code}): {message}"
    assert WRONG_SECRET not in done.stderr
    assert not target.exists(), "a refused export created its output file"
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either
