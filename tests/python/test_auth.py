"""SigV4 authentication as the real clients see it: aws-cli v1 (the pinned 1.46.3) and boto3.

Every refusal is checked three ways: the error code exactly as the client reports it (aws-cli: exit 255 and
``An error occurred (<Code>) when calling the PutEvents operation: ...`` on stderr; boto3: ``ClientError``), the HTTP
status where the client exposes it, and an unchanged ``interlog export`` (nothing stored).

Manipulations after signing (body changed, Authorization header mangled) and a skewed signing clock are done inside
the clients: boto3 through its own event hooks and ``botocore.auth.get_current_datetime``; aws-cli through a small
wrapper around its entry point ``awscli.clidriver.main()`` run by the aws-cli venv's interpreter (``AWSCLI_HOOKED``).
"""

from __future__ import annotations

import json
import re
import shlex
import stat
import tomllib
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from unittest import mock

import boto3
import botocore
import botocore.auth
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, SIGNING_NAME, ServerPool, client_env,
                      requires_postgres, requires_sqlite)

ROOT_ACCOUNT = "000000000000"
WRONG_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGWRONG"
UNKNOWN_KEY_ID = "AKIDUNKNOWNKEY000001"

# A key of the root account that must present a session token (like STS credentials).
SESSION_KEY_ID = "ASIAINTERLOGSESSION1"
SESSION_SECRET = "sEsSiOnSeCrEtKeY/0123456789+abcdefghijk"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEAIaCXVzLWVhc3QtMSJHMEUCIQD/interlog+session+token=="
OTHER_TOKEN = "IQoJb3JpZ2luX2VjEAIaCXVzLWVhc3QtMSJHMEUCIQD/another+session+token=="

# Keys of two other accounts, which cannot use the root account's tracker.
ACCOUNT_KEYS = {
    "111111111111": ("AKIDACCOUNT111111111", "AcCoUnT111SeCrEt/aaaaaaaaaaaaaaaaaaaaaaaaa"),
    "222222222222": ("AKIDACCOUNT222222222", "AcCoUnT222SeCrEt/bbbbbbbbbbbbbbbbbbbbbbbbb"),
}

ALL_SECRETS = [SECRET_ACCESS_KEY, SESSION_SECRET, *(secret for _, secret in ACCOUNT_KEYS.values())]

MISMATCH_MESSAGE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                    "Secret Access Key and signing method. Consult the service documentation for details.")
UNRECOGNIZED_MESSAGE = "The security token included in the request is invalid."

AWSCLI_ERROR = re.compile(r"\A\nAn error occurred \((?P<code>[A-Za-z]+)\) when calling the PutEvents operation: "
                          r"(?P<message>.*)\n\Z", re.S)

# aws-cli's own entry point with two optional hooks, configured by the environment:
#   TEST_CLOCK_OFFSET_SECONDS  shift the SigV4 signing clock (botocore.auth.get_current_datetime)
#   TEST_TAMPER                body:OLD:NEW -- replace OLD by NEW in the signed body just before it is sent
#                              authorization -- drop SignedHeaders=... from the signed Authorization header
# A hook that finds nothing to change exits 3, so a test cannot pass by accident.
AWSCLI_HOOKED = r"""
import datetime, os, re, sys
import awscli.clidriver
import botocore.auth

offset = float(os.environ.get("TEST_CLOCK_OFFSET_SECONDS") or 0)
if offset:
    _real_now = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: _real_now(*a, **k) + datetime.timedelta(seconds=offset)

tamper = os.environ.get("TEST_TAMPER", "")

def give_up(why):
    sys.stderr.write("HOOK FAILED: " + why + "\n")
    sys.stderr.flush()
    os._exit(3)

def before_send(request, **kwargs):
    try:
        change(request)
    except Exception as e:
        give_up(repr(e))

def change(request):
    if tamper.startswith("body:"):
        _, old, new = tamper.split(":")
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        if old.encode() not in body:
            give_up("body has no " + old)
        request.body = body.replace(old.encode(), new.encode())
    elif tamper == "authorization":
        value = request.headers["Authorization"]
        value = value.decode() if isinstance(value, bytes) else value
        mangled = re.sub(r",\s*SignedHeaders=[^,]*", "", value)
        if mangled == value:
            give_up("no SignedHeaders in " + value)
        del request.headers["Authorization"]
        request.headers["Authorization"] = mangled
    elif tamper:
        give_up("unknown TEST_TAMPER " + tamper)

_create_clidriver = awscli.clidriver.create_clidriver

def create_clidriver():
    driver = _create_clidriver()
    driver.session.register("before-send.personalize-events.PutEvents", before_send)
    return driver

awscli.clidriver.create_clidriver = create_clidriver
sys.exit(awscli.clidriver.main())
"""


# --------------------------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------------------------


def credentials_file_text() -> str:
    text = (f'[[key]]\naccess_key_id = "{SESSION_KEY_ID}"\nsecret_access_key = "{SESSION_SECRET}"\n'
            f'account_id = "{ROOT_ACCOUNT}"\nsession_token = "{SESSION_TOKEN}"\n')
    for account, (key_id, secret) in ACCOUNT_KEYS.items():
        text += f'\n[[key]]\naccess_key_id = "{key_id}"\nsecret_access_key = "{secret}"\naccount_id = "{account}"\n'
    return text


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """SigV4 on, the root key from the environment plus the keys file above; debug log so that every refusal is
    logged with its detail (canonical request, string to sign) -- which must still hold no secret."""
    base = tmp_path_factory.mktemp("auth-server")
    keys = base / "keys.toml"
    keys.write_text(credentials_file_text(), encoding="utf-8")
    pool = ServerPool(base)
    server = pool(args=("--credentials-file", str(keys)), env={"INTERLOG_LOG": "debug"})
    server.wait_for_stdout(r"\+ 3 keys from the credentials file")
    yield server
    pool.close()


# --------------------------------------------------------------------------------------------------------------------
# One PutEvents through a client, and what the client made of the answer
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    code: str | None = None
    message: str | None = None
    status: int | None = None  # HTTP status, where the client shows it (boto3)


@dataclass
class Attempt:
    key: str = ACCESS_KEY_ID
    secret: str = SECRET_ACCESS_KEY
    token: str | None = None
    unsigned: bool = False
    tamper: str | None = None  # "body" or "authorization"
    clock_offset: float = 0.0  # seconds added to the client's signing clock
    tracking_id: str | None = None  # default: the server's


def one_event(event_id: str) -> list[dict]:
    return [{"eventId": event_id, "eventType": "click", "itemId": "item-auth", "sentAt": 1700000000}]


def tampered(event_id: str) -> str:
    """The same-length event ID the body is changed to after signing."""
    return event_id[:-1] + ("X" if event_id[-1] != "X" else "Y")


def put_with_aws(run_cli, server, home: Path, event_id: str, a: Attempt) -> Outcome:
    env = client_env(home, {
        "AWS_ACCESS_KEY_ID": a.key, "AWS_SECRET_ACCESS_KEY": a.secret, "AWS_SESSION_TOKEN": a.token,
        "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
    })
    args = ["personalize-events", "put-events", "--endpoint-url", server.endpoint,
            "--tracking-id", a.tracking_id or server.tracking_id, "--session-id", f"session-{event_id}",
            "--event-list", json.dumps(one_event(event_id))]
    if a.unsigned:
        args.append("--no-sign-request")
    if a.tamper or a.clock_offset:
        if a.tamper == "body":
            env["TEST_TAMPER"] = f"body:{event_id}:{tampered(event_id)}"
        elif a.tamper:
            env["TEST_TAMPER"] = a.tamper
        if a.clock_offset:
            env["TEST_CLOCK_OFFSET_SECONDS"] = str(a.clock_offset)
        done = run_cli("aws-python", "-c", AWSCLI_HOOKED, *args, env=env)
    else:
        done = run_cli("aws", *args, env=env)
    assert "HOOK FAILED" not in done.stderr, done.stderr
    if done.returncode == 0:
        assert (done.stdout, done.stderr) == ("", ""), done
        return Outcome(True)
    assert done.returncode == 255, (done.returncode, done.stderr)
    m = AWSCLI_ERROR.match(done.stderr)
    assert m, f"unexpected aws-cli stderr: {done.stderr!r}"
    return Outcome(False, m.group("code"), m.group("message"))


def boto3_client(endpoint: str, key: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY, token: str | None = None,
                 unsigned: bool = False, home: Path | None = None):
    """A personalize-events client with exactly these credentials, one attempt, no shared config files."""
    core = botocore.session.Session()
    core.set_config_variable("config_file", "/nonexistent/interlog-test/config")
    core.set_config_variable("credentials_file", "/nonexistent/interlog-test/credentials")
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                                    region_name=REGION, botocore_session=core)
    extra = {"signature_version": botocore.UNSIGNED} if unsigned else {}
    cfg = Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={}, connect_timeout=10,
                 read_timeout=60, **extra)
    return session.client("personalize-events", endpoint_url=endpoint, config=cfg)


def put_with_boto3(server, event_id: str, a: Attempt) -> Outcome:
    client = boto3_client(server.endpoint, a.key, a.secret, a.token, a.unsigned)
    changed = []

    def before_send(request, **kwargs):
        if a.tamper == "body":
            body = request.body if isinstance(request.body, bytes) else request.body.encode()
            assert event_id.encode() in body, body
            request.body = body.replace(event_id.encode(), tampered(event_id).encode())
            changed.append("body")
        elif a.tamper == "authorization":
            value = request.headers["Authorization"]
            value = value.decode() if isinstance(value, bytes) else value
            mangled = re.sub(r",\s*SignedHeaders=[^,]*", "", value)
            assert mangled != value, value
            del request.headers["Authorization"]
            request.headers["Authorization"] = mangled
            changed.append("authorization")

    client.meta.events.register("before-send.personalize-events.PutEvents", before_send)
    real_now = botocore.auth.get_current_datetime
    skewed = mock.patch.object(botocore.auth, "get_current_datetime",
                               lambda *args, **kw: real_now(*args, **kw) + timedelta(seconds=a.clock_offset))
    try:
        with skewed:
            response = client.put_events(trackingId=a.tracking_id or server.tracking_id,
                                         sessionId=f"session-{event_id}", eventList=one_event(event_id))
    except ClientError as e:
        assert changed == ([a.tamper] if a.tamper else []), "the hook did not change the request"
        return Outcome(False, e.response["Error"]["Code"], e.response["Error"]["Message"],
                       e.response["ResponseMetadata"]["HTTPStatusCode"])
    assert changed == ([a.tamper] if a.tamper else []), "the hook did not change the request"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    return Outcome(True, status=200)


@pytest.fixture
def put(run_cli, tmp_path):
    """``put(client, server, event_id, Attempt(...))`` -> Outcome, with ``client`` "aws" or "boto3"."""

    def put(client: str, server, event_id: str, attempt: Attempt) -> Outcome:
        if client == "aws":
            return put_with_aws(run_cli, server, tmp_path, event_id, attempt)
        return put_with_boto3(server, event_id, attempt)

    return put


def stored_ids(export, server) -> list[str]:
    return [row["eventId"] for row in export(server.data_dir, "jsonl")]


CLIENTS = ["aws", "boto3"]


# --------------------------------------------------------------------------------------------------------------------
# The root key, and every way of getting the signature wrong
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_right_key_succeeds(client, auth_server, put, export):
    event_id = f"auth-ok-{client}"
    assert put(client, auth_server, event_id, Attempt()) == Outcome(True, status=200 if client == "boto3" else None)
    rows = [r for r in export(auth_server.data_dir, "jsonl") if r["eventId"] == event_id]
    assert len(rows) == 1
    assert (rows[0]["sessionId"], rows[0]["eventType"], rows[0]["itemId"], rows[0]["sentAt"]) == \
        (f"session-{event_id}", "click", "item-auth", 1700000000)


REFUSALS = {
    # name: (attempt, code, HTTP status, message check)
    "wrong-secret": (Attempt(secret=WRONG_SECRET), "InvalidSignatureException", 403,
                     lambda m: m == MISMATCH_MESSAGE),
    "unknown-key": (Attempt(key=UNKNOWN_KEY_ID), "UnrecognizedClientException", 403,
                    lambda m: m == UNRECOGNIZED_MESSAGE),
    "unsigned": (Attempt(unsigned=True), "MissingAuthenticationTokenException", 403, lambda m: bool(m)),
    "body-changed-after-signing": (Attempt(tamper="body"), "InvalidSignatureException", 403,
                                   lambda m: m == MISMATCH_MESSAGE),
    "dated-20-minutes-ago": (Attempt(clock_offset=-20 * 60), "InvalidSignatureException", 403,
                             lambda m: m.startswith("Signature expired")),
    "dated-20-minutes-ahead": (Attempt(clock_offset=20 * 60), "InvalidSignatureException", 403,
                               lambda m: m.startswith("Signature not yet current")),
    "malformed-authorization": (Attempt(tamper="authorization"), "IncompleteSignatureException", 400,
                                lambda m: "SignedHeaders" in m),
}


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("client", CLIENTS)
def test_refused_requests(client, case, auth_server, put, export):
    attempt, code, status, message_ok = REFUSALS[case]
    event_id = f"auth-refused-{case}-{client}"
    before = export(auth_server.data_dir, "jsonl")

    outcome = put(client, auth_server, event_id, attempt)

    assert not outcome.ok, f"{case} was accepted"
    assert outcome.code == code, outcome
    assert message_ok(outcome.message), outcome.message
    if client == "boto3":
        assert outcome.status == status, outcome
    for secret in ALL_SECRETS + [WRONG_SECRET]:
        assert secret not in outcome.message
    assert export(auth_server.data_dir, "jsonl") == before, "a refused request stored something"


def test_export_endpoint_is_signed_and_health_is_open(auth_server):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(path: str, secret: str | None) -> tuple[int, dict, bytes]:
        url = f"{auth_server.endpoint}{path}"
        headers = {}
        if secret is not None:
            request = AWSRequest(method="GET", url=url)
            SigV4Auth(Credentials(ACCESS_KEY_ID, secret), SIGNING_NAME, REGION).add_auth(request)
            headers = dict(request.prepare().headers.items())
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    assert get("/_interlog/health", None)[0] == 200
    for secret, code in [(None, "MissingAuthenticationTokenException"), (WRONG_SECRET, "InvalidSignatureException")]:
        status, headers, body = get("/_interlog/export?format=jsonl", secret)
        assert status == 403, (status, body)
        assert headers.get("x-amzn-errortype", "").split(":")[0] == code
        assert json.loads(body)["__type"].split("#")[-1] == code
    status, _, body = get("/_interlog/export?format=jsonl", SECRET_ACCESS_KEY)
    assert status == 200, body


# --------------------------------------------------------------------------------------------------------------------
# Session credentials
# --------------------------------------------------------------------------------------------------------------------


SESSION_CASES = {
    "key-with-its-token": (Attempt(key=SESSION_KEY_ID, secret=SESSION_SECRET, token=SESSION_TOKEN), None),
    "key-without-token": (Attempt(key=SESSION_KEY_ID, secret=SESSION_SECRET), "UnrecognizedClientException"),
    "key-with-another-token": (Attempt(key=SESSION_KEY_ID, secret=SESSION_SECRET, token=OTHER_TOKEN),
                               "UnrecognizedClientException"),
    "root-key-with-a-token": (Attempt(token=SESSION_TOKEN), "UnrecognizedClientException"),
}


@pytest.mark.parametrize("case", list(SESSION_CASES))
@pytest.mark.parametrize("client", CLIENTS)
def test_session_credentials(client, case, auth_server, put, export):
    attempt, code = SESSION_CASES[case]
    event_id = f"auth-session-{case}-{client}"
    before = export(auth_server.data_dir, "jsonl")

    outcome = put(client, auth_server, event_id, attempt)

    after = export(auth_server.data_dir, "jsonl")
    if code is None:
        assert outcome.ok, outcome
        assert [r["eventId"] for r in after] == [r["eventId"] for r in before] + [event_id]
    else:
        assert (outcome.ok, outcome.code, outcome.message) == (False, code, UNRECOGNIZED_MESSAGE)
        if client == "boto3":
            assert outcome.status == 403
        assert after == before


# --------------------------------------------------------------------------------------------------------------------
# Keys of other accounts
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("account", list(ACCOUNT_KEYS))
@pytest.mark.parametrize("client", CLIENTS)
def test_other_accounts_cannot_use_the_root_tracker(client, account, auth_server, put, export):
    key_id, secret = ACCOUNT_KEYS[account]
    event_id = f"auth-cross-{account}-{client}"
    before = export(auth_server.data_dir, "jsonl")

    outcome = put(client, auth_server, event_id, Attempt(key=key_id, secret=secret))

    assert (outcome.ok, outcome.code) == (False, "InvalidInputException"), outcome
    if client == "boto3":
        assert outcome.status == 400
    # Indistinguishable from a tracking ID that does not exist at all (for the same key).
    bogus = str(uuid.uuid4())
    unknown = put_with_boto3(auth_server, event_id + "-bogus", Attempt(key=key_id, secret=secret, tracking_id=bogus))
    assert (unknown.ok, unknown.code, unknown.status) == (False, "InvalidInputException", 400)
    assert outcome.message.replace(auth_server.tracking_id, "<id>") == unknown.message.replace(bogus, "<id>")
    assert ROOT_ACCOUNT not in outcome.message
    assert export(auth_server.data_dir, "jsonl") == before


# --------------------------------------------------------------------------------------------------------------------
# No secret in the server's log
# --------------------------------------------------------------------------------------------------------------------


def test_no_secret_in_the_server_log(auth_server, put):
    """Runs every kind of refusal once more (raw boto3, fast) and then reads the server's whole stderr, which also
    holds the log of every test above (the module's server runs with INTERLOG_LOG=debug)."""
    for i, (attempt, _, _, _) in enumerate(REFUSALS.values()):
        assert not put("boto3", auth_server, f"auth-log-{i}", attempt).ok
    for key_id, secret in [(SESSION_KEY_ID, SESSION_SECRET), *ACCOUNT_KEYS.values()]:
        assert not put("boto3", auth_server, "auth-log-wrong", Attempt(key=key_id, secret=WRONG_SECRET)).ok
    assert put("boto3", auth_server, "auth-log-ok", Attempt()).ok

    log = auth_server.stderr_text()
    assert "InvalidSignatureException" in log, "the refusals were not logged at all: is stderr captured?"
    assert "The Canonical String for this request should have been" in log  # the debug detail is there
    for secret in ALL_SECRETS:
        assert secret not in log, "a secret access key appears in the server log"
    assert SECRET_ACCESS_KEY not in "\n".join(auth_server.stdout_lines)  # from the environment: never printed


# --------------------------------------------------------------------------------------------------------------------
# --no-auth and INTERLOG_AUTH=off
# --------------------------------------------------------------------------------------------------------------------


def banner_command(server, after: str) -> list[str]:
    """The command printed on the line after ``after`` in the banner, split like a shell would."""
    lines = server.stdout_lines
    server.wait_for_stdout(r"interlog export")  # the last banner line
    return shlex.split(lines[lines.index(after) + 1])


@pytest.mark.parametrize("how", ["--no-auth", "INTERLOG_AUTH=off"])
def test_auth_off(how, server_factory, run_cli, export, tmp_path):
    if how == "--no-auth":
        server = server_factory(args=("--no-auth",))
    else:
        server = server_factory(env={"INTERLOG_AUTH": "off"})
    auth_line = server.wait_for_stdout(r"^auth:")
    assert re.match(r"auth:\s+OFF\b", auth_line), auth_line
    log = server.stderr_text()
    assert "WARNING: authentication is OFF" in log, log
    assert server.endpoint in log  # which endpoint is open to anyone

    # No credentials at all in the client's environment.
    env = client_env(tmp_path, {"AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    done = run_cli("aws", "personalize-events", "put-events", "--no-sign-request", "--endpoint-url", server.endpoint,
                   "--tracking-id", server.tracking_id, "--session-id", "noauth-session",
                   "--event-list", json.dumps(one_event("noauth-aws")), env=env)
    assert done.returncode == 0, (done.stderr, server.returncode, server.log())

    # The banner's own example command works as printed.
    command = banner_command(server, "Record an event:")
    assert command[:3] == ["aws", "personalize-events", "put-events"] and "--no-sign-request" in command, command
    done = run_cli("aws", *command[1:], env=env)
    assert done.returncode == 0, (done.stderr, server.returncode, server.log())

    assert put_with_boto3(server, "noauth-boto3", Attempt(unsigned=True)).ok
    rows = export(server.data_dir, "jsonl")
    assert [r["eventId"] for r in rows[:1] + rows[2:]] == ["noauth-aws", "noauth-boto3"]
    assert (rows[1]["sessionId"], rows[1]["eventType"], rows[1]["itemId"]) == ("session-1", "click", "item-1")


def test_auth_is_on_by_default(server, put, export):
    """The counterpart of the test above: the default server refuses the very same unsigned request."""
    outcome = put("boto3", server, "default-unsigned", Attempt(unsigned=True))
    assert (outcome.ok, outcome.code) == (False, "MissingAuthenticationTokenException")
    assert re.match(r"auth:\s+SigV4, root key " + ACCESS_KEY_ID + r" from INTERLOG_ACCESS_KEY_ID",
                    server.wait_for_stdout(r"^auth:"))
    assert "WARNING" not in server.stderr_text()
    assert export(server.data_dir, "jsonl") == []


# --------------------------------------------------------------------------------------------------------------------
# A generated root key
# --------------------------------------------------------------------------------------------------------------------


@requires_sqlite("the generated key is kept in the data dir's root-credentials file")
def test_generated_root_key(server_factory, run_cli, export, tmp_path):
    no_root_key = {"INTERLOG_ACCESS_KEY_ID": None, "INTERLOG_SECRET_ACCESS_KEY": None}
    server = server_factory(env=no_root_key)
    server.wait_for_stdout(r"interlog export")
    stdout = list(server.stdout_lines)
    creds_path = server.data_dir / "root-credentials"

    # The file: owner-only, TOML with the key, its secret and the root account.
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600, oct(creds_path.stat().st_mode)
    creds_bytes = creds_path.read_bytes()
    creds = tomllib.loads(creds_bytes.decode("utf-8"))
    key_id, secret = creds["access_key_id"], creds["secret_access_key"]
    assert creds["account_id"] == ROOT_ACCOUNT
    assert key_id.startswith("AKIA") and len(secret) >= 40, creds.keys()

    auth_line = next(line for line in stdout if line.startswith("auth:"))
    assert key_id in auth_line and str(creds_path) in auth_line, auth_line

    # The printed `aws configure set` lines, run as printed with the pinned aws-cli into an empty HOME.
    configure = [shlex.split(line) for line in stdout if line.strip().startswith("aws configure set ")]
    assert [c[3] for c in configure] == ["aws_access_key_id", "aws_secret_access_key", "region"], stdout
    assert [c[4] for c in configure] == [key_id, secret, REGION]
    home = tmp_path / "home"
    home.mkdir()
    env = client_env(home)
    for command in configure:
        assert command[0] == "aws" and command[-2:] == ["--profile", "interlog"], command
        done = run_cli("aws", *command[1:], env=env)
        assert done.returncode == 0, (done.stderr, server.returncode, server.log())
    assert "[interlog]" in (home / ".aws" / "credentials").read_text()

    # ... then the banner's example command (it says --profile interlog) records an event.
    put_command = banner_command(server, "Record an event:")
    assert "--profile" in put_command and put_command[put_command.index("--profile") + 1] == "interlog"
    done = run_cli("aws", *put_command[1:], env=env)
    assert done.returncode == 0, (done.stderr, server.returncode, server.log())
    # ... and the banner's export command reads it back with the same profile.
    export_command = banner_command(server, "Read them back:")
    assert export_command[:2] == ["interlog", "export"] and "--profile" in export_command, export_command
    done = run_cli("interlog", *export_command[1:], "--format", "jsonl", env=env)
    assert done.returncode == 0, (done.stderr, server.returncode, server.log())
    assert [json.loads(line)["itemId"] for line in done.stdout.splitlines()] == ["item-1"]
    # The suite's usual key means nothing to this server.
    done = run_cli("aws", "personalize-events", "put-events", "--endpoint-url", server.endpoint, "--tracking-id",
                   server.tracking_id, "--session-id", "s", "--event-list", json.dumps(one_event("gen-x")),
                   env=client_env(home, {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                                         "AWS_DEFAULT_REGION": REGION}))
    assert done.returncode == 255 and "(UnrecognizedClientException)" in done.stderr, done.stderr

    # A restart reuses the key: same file, same key, the secret not printed again, the profile still works.
    first_log = server.stderr_text()
    server.restart()
    server.wait_for_stdout(r"interlog export")
    assert creds_path.read_bytes() == creds_bytes
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    auth_line = server.wait_for_stdout(r"^auth:")
    assert re.fullmatch(rf"auth:\s+SigV4, root key {key_id} \(in {re.escape(str(creds_path))}\)", auth_line), \
        auth_line
    assert secret not in "\n".join(server.stdout_lines)
    done = run_cli("aws", "personalize-events", "put-events", "--profile", "interlog", "--endpoint-url",
                   server.endpoint, "--tracking-id", server.tracking_id, "--session-id", "gen-session",
                   "--event-list", json.dumps(one_event("gen-after-restart")), env=env)
    assert done.returncode == 0, (done.stderr, server.returncode, server.log())
    assert [r["itemId"] for r in export(server.data_dir, "jsonl")] == ["item-1", "item-auth"]

    for log in (first_log, server.stderr_text()):
        assert secret not in log, "the generated secret appears in the server log"


@requires_postgres("nodes of one deployment share the root key through the database")
def test_generated_root_key_is_shared_by_every_node(server_factory, run_cli, export, tmp_path):
    no_root_key = {"INTERLOG_ACCESS_KEY_ID": None, "INTERLOG_SECRET_ACCESS_KEY": None}
    first = server_factory(env=no_root_key)
    first.wait_for_stdout(r"interlog export")
    auth_line = next(line for line in first.stdout_lines if line.startswith("auth:"))
    assert "new root key" in auth_line and "kept in the database" in auth_line, auth_line
    assert not (first.data_dir / "root-credentials").exists(), "a shared store keeps no key file"
    configure = [shlex.split(line) for line in first.stdout_lines if line.strip().startswith("aws configure set ")]
    assert [c[3] for c in configure] == ["aws_access_key_id", "aws_secret_access_key", "region"], first.stdout_lines
    key_id, secret = configure[0][4], configure[1][4]

    # A second node on the same database takes the same key and does not print its secret.
    second = server_factory(env=no_root_key, node_of=first)
    auth_line = second.wait_for_stdout(r"^auth:")
    assert re.fullmatch(rf"auth:\s+SigV4, root key {key_id} \(kept in the database\)", auth_line), auth_line
    assert secret not in "\n".join(second.stdout_lines)
    assert second.tracking_id == first.tracking_id, "the default resources exist once"

    home = tmp_path / "home"
    home.mkdir()
    env = client_env(home)
    for command in configure:
        done = run_cli("aws", *command[1:], env=env)
        assert done.returncode == 0, done.stderr
    for i, node in enumerate((first, second)):
        done = run_cli("aws", "personalize-events", "put-events", "--profile", "interlog", "--endpoint-url",
                       node.endpoint, "--tracking-id", node.tracking_id, "--session-id", "shared-key",
                       "--event-list", json.dumps(one_event(f"shared-key-{i}")), env=env)
        assert done.returncode == 0, (done.stderr, node.log())
    assert sorted(r["eventId"] for r in export(first.data_dir, "jsonl")) == ["shared-key-0", "shared-key-1"]
    # A restart of the first node reuses the stored key.
    first.restart()
    auth_line = first.wait_for_stdout(r"^auth:")
    assert key_id in auth_line and "new root key" not in auth_line, auth_line
    for log in (first.stderr_text(), second.stderr_text()):
        assert secret not in log, "the generated secret appears in a server log"
