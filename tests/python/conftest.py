"""Fixtures for the client conformance tests: the real `interlog` binary, the pinned aws-cli v1 and boto3.

Everything here talks to a real server process on a free loopback port with its own temporary data dir:

* ``Server``            -- one `interlog serve` process: start / stop (SIGTERM or SIGKILL) / restart on the same dir.
* ``server``            -- a fresh, started server for one test (``tmp_path`` data dir).
* ``server_factory``    -- start more servers (or restart on a given dir) inside one test; all killed at teardown.
* ``module_server``     -- one started server shared by the tests of a module that need no isolation.
* ``export``            -- ``export(data_dir, fmt, dataset_group=None, dataset_arn=None)`` -> parsed rows of
                         ``interlog export`` (jsonl dicts / csv dicts).
* ``export_raw``        -- the same export as bytes, for byte-identical comparisons.
* ``aws``               -- run the pinned aws-cli with a clean environment (no ~/.aws, fixed test key).
* ``events_client``     -- boto3 ``personalize-events`` client factory pointed at an endpoint.
* ``signed_post``       -- a raw HTTP POST signed with SigV4 (for bodies the SDKs refuse to send).
* ``run_cli``           -- run aws-cli, `interlog` or the aws-cli venv's python with a given environment
                         (``client_env(home, extra)`` builds a clean one).
* ``default_schema_flags`` -- the ``flags`` the JSONL export shows for an event with given ``properties`` on the
                         default schema (every key undeclared, docs/api.md), or None.
* ``account_dir``       -- ``account_dir(account="000000000000")``: a new folder inside the export root that every
                         server of the session gets as ``--export-dir``, under that account's part of it (the only
                         place a ``file://`` export destination of that account may point).

The server already gets ``INTERLOG_ACCESS_KEY_ID`` / ``INTERLOG_SECRET_ACCESS_KEY`` and every client signs with the
same key, so the suite keeps working once the server starts requiring SigV4.

Paths come from ``INTERLOG_BIN`` and ``AWS_CLI`` (defaults: ``<repo>/target/debug/interlog`` and
``<repo>/.venv-awscli/bin/aws``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[2]
INTERLOG_BIN = Path(os.environ.get("INTERLOG_BIN") or REPO / "target" / "debug" / "interlog")
AWS_CLI = Path(os.environ.get("AWS_CLI") or REPO / ".venv-awscli" / "bin" / "aws")

ACCESS_KEY_ID = "AKIDINTERLOGTEST0001"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYINTERLOG01"
assert len(SECRET_ACCESS_KEY) == 40
REGION = "us-east-1"
SIGNING_NAME = "personalize"

STARTUP_TIMEOUT = 60.0  # a cold debug binary on a busy 2-core box can be slow to come up
STOP_TIMEOUT = 20.0

CSV_HEADER = [
    "USER_ID",
    "ITEM_ID",
    "TIMESTAMP",
    "EVENT_TYPE",
    "EVENT_VALUE",
    "IMPRESSION",
    "RECOMMENDATION_ID",
    "EVENT_ATTRIBUTION_SOURCE",
]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# properties keys that request members fill on an Interactions dataset (and sessionId): never metadata, never flagged.
_MEMBER_KEYS = {"userid", "itemid", "timestamp", "eventtype", "eventvalue", "impression", "recommendationid",
                "eventattributionsource", "sessionid"}


def _field_for(key: str) -> str | None:
    """The schema field a properties key would name (numberOfRatings -> NUMBER_OF_RATINGS), None if no Avro name."""
    out, after_lower = [], False
    for c in key:
        if c.isascii() and c.isupper() and after_lower:
            out.append("_")
        after_lower = c.isascii() and (c.islower() or c.isdigit())
        out.append(c.upper() if c.isascii() else c)
    name = "".join(out)
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else None


def _camel(name: str) -> str:
    parts = [p.lower() for p in name.split("_") if p]
    return "".join([parts[0], *(p[:1].upper() + p[1:] for p in parts[1:])]) if parts else ""


def undeclared_flags(flags: list[dict] | None) -> list[dict] | None:
    """The ``undeclaredProperty`` flags of an exported event's ``flags`` (None when there are none): what the
    fidelity suites compare; the other kinds (docs/api.md, "Flags") are tested in test_flags.py."""
    kept = [f for f in flags or [] if f["kind"] == "undeclaredProperty"]
    return kept or None


def default_schema_flags(properties: str | None, schema: str = "default-interactions") -> list[dict] | None:
    """The ``flags`` of an exported event whose ``properties`` (JSON text) went to a schema declaring no metadata
    field, such as the default one: one per key, in key order (docs/api.md); None when there are none."""
    if properties is None:
        return None
    flags = []
    for key in sorted(json.loads(properties)):
        if key.replace("_", "").lower() in _MEMBER_KEYS:
            continue
        field = _field_for(key)
        reason = (f"declare {field} (camelCase {_camel(field)}) to use it" if field else
                  "no field can be named for it (field names are letters, digits and '_', not starting with a "
                  "digit), so it never reaches a model")
        flags.append({"kind": "undeclaredProperty",
                      "message": f"properties key '{key}' matches no field of schema {schema}; {reason}"})
    return flags or None

# Which store engine every server of the run uses: sqlite (the default, data in the data dir) or postgres (each data
# dir gets its own schema in INTERLOG_TEST_DATABASE_URL, so the same tests run once per engine; scripts/test does).
ENGINE = os.environ.get("INTERLOG_TEST_ENGINE", "sqlite")
DATABASE_URL = os.environ.get("INTERLOG_TEST_DATABASE_URL")
assert ENGINE in ("sqlite", "postgres"), f"INTERLOG_TEST_ENGINE={ENGINE!r}: sqlite or postgres"
assert ENGINE == "sqlite" or DATABASE_URL, "INTERLOG_TEST_ENGINE=postgres needs INTERLOG_TEST_DATABASE_URL"
_SCHEMAS: dict[Path, str] = {}


def database_url(data_dir: Path) -> str | None:
    """The PostgreSQL URL standing in for `data_dir` (its own schema, made on first use), or None on SQLite."""
    if ENGINE != "postgres":
        return None
    data_dir = Path(data_dir).resolve()
    if data_dir not in _SCHEMAS:
        schema = f"pytest_{os.getpid()}_{len(_SCHEMAS)}"
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", DATABASE_URL, "-c", f"CREATE SCHEMA {schema}"],
                       check=True, capture_output=True)
        _SCHEMAS[data_dir] = schema
    sep = "&" if "?" in DATABASE_URL else "?"
    return f"{DATABASE_URL}{sep}options=-csearch_path%3D{_SCHEMAS[data_dir]}"


def requires_postgres(reason: str):
    """Marks a test of a deployment sharing one PostgreSQL database: it runs on the PostgreSQL pass only."""
    return pytest.mark.skipif(ENGINE != "postgres", reason=f"PostgreSQL only: {reason}")


def requires_sqlite(reason: str):
    """Marks a test about the embedded store's files (the data dir on disk): it runs on the SQLite pass only."""
    return pytest.mark.skipif(ENGINE != "sqlite", reason=f"SQLite only: {reason}")


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas():
    yield
    for schema in _SCHEMAS.values():
        subprocess.run(["psql", "-q", DATABASE_URL, "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                       capture_output=True)


ROOT_ACCOUNT = "000000000000"
# The export root every server of the session is started with (``--export-dir``), set by ``_export_root``.
EXPORT_ROOT: Path | None = None


@pytest.fixture(scope="session", autouse=True)
def _export_root(tmp_path_factory):
    global EXPORT_ROOT
    EXPORT_ROOT = tmp_path_factory.mktemp("export-root")
    yield EXPORT_ROOT


def new_account_dir(account: str = ROOT_ACCOUNT) -> Path:
    """A new, empty folder under ``account``'s part of the session's export root."""
    assert EXPORT_ROOT is not None
    d = EXPORT_ROOT / account / uuid.uuid4().hex[:12]
    d.mkdir(parents=True)
    return d


@pytest.fixture(scope="session")
def account_dir():
    return new_account_dir


def pytest_report_header(config):
    return [f"interlog binary: {INTERLOG_BIN}", f"aws-cli: {AWS_CLI}", f"store engine: {ENGINE}"]


# --------------------------------------------------------------------------------------------------------------------
# Raw signed HTTP
# --------------------------------------------------------------------------------------------------------------------


class HttpResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HttpResponse({self.status}, {self.headers!r}, {self.body[:500]!r})"


def signed_request(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
                   timeout: float = 30.0) -> HttpResponse:
    """Sends one request signed with SigV4 (service ``personalize``) and the test key; never raises on 4xx/5xx."""
    headers = dict(headers or {})
    if method == "POST":
        headers.setdefault("Content-Type", "application/json")
    aws_request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), SIGNING_NAME, REGION).add_auth(aws_request)
    prepared = aws_request.prepare()
    request = urllib.request.Request(prepared.url, data=body if method != "GET" else None,
                                     headers=dict(prepared.headers.items()), method=method)
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return HttpResponse(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as e:
        return HttpResponse(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


# --------------------------------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------------------------------


class ServerStartError(Exception):
    def __init__(self, message: str, returncode: int | None, log: str):
        super().__init__(f"{message} (exit code {returncode})\n--- server log ---\n{log}")
        self.returncode = returncode
        self.log = log


def _server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERLOG_", "AWS_"))}
    if "INTERLOG_LOG" in os.environ:  # let a developer turn on debug logs for a run
        env["INTERLOG_LOG"] = os.environ["INTERLOG_LOG"]
    env["INTERLOG_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["INTERLOG_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    env["NO_COLOR"] = "1"
    for name, value in (extra or {}).items():  # a None value leaves the variable out (e.g. no root key)
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class Server:
    """One `interlog serve` on 127.0.0.1:0 with a given data dir. Can be stopped and started again on the same dir."""

    _counter = 0

    def __init__(self, data_dir: Path, log_dir: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 store_of: Path | None = None):
        self.data_dir = Path(data_dir)
        # On PostgreSQL, whose schema this server uses: its own, or another server's (a second node).
        self.store_of = Path(store_of) if store_of is not None else self.data_dir
        self.log_dir = Path(log_dir)
        self.args = tuple(args)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self.tracking_id: str | None = None
        self.dataset_group_arn: str | None = None
        self.bootstrap: str | None = None  # "created", "reusing" or "none" (--no-default-resources)
        self.banner_done = False  # the tracking ID line (the banner's last parsed line) was seen
        self.stdout_lines: list[str] = []
        self.log_path: Path | None = None
        self.starts = 0
        self._reader: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self, args: tuple[str, ...] | None = None) -> "Server":
        """Starts the process, parses its banner and waits until /_interlog/health answers 200."""
        assert not self.running, "server already running"
        if args is not None:
            self.args = tuple(args)
        Server._counter += 1
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"interlog-{Server._counter}.log"
        self.endpoint = self.tracking_id = self.dataset_group_arn = self.bootstrap = None
        self.banner_done = False
        self.stdout_lines = []
        export_dir = () if "--export-dir" in self.args or EXPORT_ROOT is None else ("--export-dir", str(EXPORT_ROOT))
        cmd = [str(INTERLOG_BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir), *export_dir,
               *self.args]
        if (url := database_url(self.store_of)) is not None:
            cmd += ["--database-url", url]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                         env=_server_env(self.env), text=True, encoding="utf-8", bufsize=1)
        lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._pump_stdout, args=(self.proc, lines), daemon=True)
        self._reader.start()

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.banner_done:
            try:
                line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                self._fail_start("no complete banner on stdout within the startup timeout")
            if line is None:  # stdout closed: the process is gone
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
                self._fail_start("the server exited before printing its banner")
            self._parse_banner_line(line)
        if self.endpoint is None or self.bootstrap is None:
            self._fail_start(f"incomplete banner: {self.stdout_lines!r}")

        while True:
            try:
                if self.health().status == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                self._fail_start("the server exited while waiting for /_interlog/health")
            if time.monotonic() > deadline:
                self._fail_start("/_interlog/health did not answer 200 in time")
            time.sleep(0.05)

    def _pump_stdout(self, proc: subprocess.Popen, lines: queue.Queue):
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.stdout_lines.append(line)
            lines.put(line)
        lines.put(None)

    def _parse_banner_line(self, line: str):
        if m := re.search(r"listening on (https?://\S+)", line):
            self.endpoint = m.group(1)
        elif m := re.match(r"dataset group:\s+(\S+) \((created|reusing)\)", line):
            self.dataset_group_arn, self.bootstrap = m.group(1), m.group(2)
        elif re.match(r"dataset group:\s+- \(none", line):  # --no-default-resources
            self.dataset_group_arn, self.bootstrap = None, "none"
        elif m := re.match(r"tracking ID:\s+(\S+)\s*$", line):
            self.tracking_id = None if m.group(1) == "-" else m.group(1)
            self.banner_done = True

    def _fail_start(self, why: str):
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
            rc = self.proc.returncode
            self._close_stdout()
        raise ServerStartError(f"interlog serve failed to start: {why}", rc, self.log())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Sends `sig` and waits for the exit; returns the exit code (negative = killed by that signal)."""
        assert self.proc is not None, "server was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                raise AssertionError(f"interlog did not exit within {timeout}s of signal {sig}\n{self.log()}")
        self._close_stdout()
        return self.proc.returncode

    def _close_stdout(self):
        # The reader thread sees EOF once the process is gone; close the pipe only after it finished.
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self.proc is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM, args: tuple[str, ...] | None = None) -> "Server":
        self.stop(sig)
        return self.start(args)

    def terminate_quietly(self):
        """Teardown: make sure the process is gone, whatever state it is in."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_stdout()

    # -- helpers -------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:] if self.log_path else ""
        except OSError:
            return ""

    def stderr_text(self) -> str:
        """Everything the server wrote on stderr (its log) so far, untruncated."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path else ""

    def wait_for_stdout(self, pattern: str, timeout: float = 10.0) -> str:
        """The first stdout line matching the regex ``pattern``, waiting for it (banner lines after the tracking ID
        may come a moment after ``start`` returned)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.stdout_lines):
                if re.search(pattern, line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no stdout line matching {pattern!r}: {self.stdout_lines!r}")
            time.sleep(0.02)

    def health(self) -> HttpResponse:
        if self.endpoint.startswith("https://"):
            # Only a readiness probe: the TLS tests check certificates with the real clients.
            import ssl
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                 urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
            with opener.open(f"{self.endpoint}/_interlog/health", timeout=2) as response:
                return HttpResponse(response.status, {}, response.read())
        return signed_request("GET", f"{self.endpoint}/_interlog/health", timeout=2)

    def post_events(self, body, timeout: float = 30.0, path: str = "/events",
                    content_type: str = "application/json") -> HttpResponse:
        """POST /events with a signed raw body (bytes sent as is; anything else JSON-encoded)."""
        if not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        return signed_request("POST", f"{self.endpoint}{path}", bytes(body), headers={"Content-Type": content_type},
                              timeout=timeout)


class ServerPool:
    def __init__(self, base: Path):
        self.base = base
        self.servers: list[Server] = []
        self.count = 0

    def __call__(self, data_dir: Path | None = None, args: tuple[str, ...] = (), start: bool = True,
                 env: dict[str, str] | None = None, node_of: "Server | None" = None) -> Server:
        """A new server; with ``node_of``, another node of that server's deployment (PostgreSQL only)."""
        self.count += 1
        data_dir = Path(data_dir) if data_dir is not None else self.base / f"data-{self.count}"
        store_of = node_of.store_of if node_of is not None else None
        server = Server(data_dir, self.base / "logs", args=args, env=env, store_of=store_of)
        self.servers.append(server)
        return server.start() if start else server

    def close(self):
        for s in self.servers:
            s.terminate_quietly()


@pytest.fixture
def server_factory(tmp_path):
    pool = ServerPool(tmp_path)
    yield pool
    pool.close()


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory) -> Server:
    pool = ServerPool(tmp_path_factory.mktemp("module-server"))
    yield pool()
    pool.close()


# --------------------------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------------------------


def run_export(data_dir: Path, fmt: str = "jsonl", dataset_group: str | None = None,
               dataset_arn: str | None = None) -> bytes:
    url = database_url(data_dir)
    source = ["--database-url", url] if url else ["--data-dir", str(data_dir)]
    cmd = [str(INTERLOG_BIN), "export", *source, "--format", fmt, "--output", "-"]
    if dataset_group is not None:
        cmd += ["--dataset-group", dataset_group]
    if dataset_arn is not None:
        cmd += ["--dataset-arn", dataset_arn]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, env=_server_env())
    assert done.returncode == 0, f"interlog export failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
    return done.stdout


def parse_export(raw: bytes, fmt: str) -> list[dict]:
    """jsonl: one dict per line, numbers with a fraction or exponent as Decimal (exact); csv: DictReader rows."""
    text = raw.decode("utf-8")
    if fmt == "jsonl":
        return [json.loads(line, parse_float=Decimal) for line in text.split("\n") if line]
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    raise ValueError(fmt)


@pytest.fixture(scope="session")
def export_raw():
    return run_export


@pytest.fixture(scope="session")
def export():
    def export(data_dir: Path, fmt: str = "jsonl", dataset_group: str | None = None,
               dataset_arn: str | None = None) -> list[dict]:
        return parse_export(run_export(data_dir, fmt, dataset_group, dataset_arn), fmt)

    return export


# --------------------------------------------------------------------------------------------------------------------
# aws-cli v1
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aws_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("aws-home")


@pytest.fixture(scope="session")
def aws(aws_home):
    """``aws(*args, cwd=None, check=True)`` -> CompletedProcess (text). Empty HOME, env credentials only."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(aws_home),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(aws_home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws_home / "no-credentials"),
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
    }

    def aws(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(AWS_CLI), *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, encoding="utf-8", env=env, cwd=cwd or aws_home, timeout=120)
        if check:
            assert done.returncode == 0, f"aws {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr}"
        return done

    return aws


# --------------------------------------------------------------------------------------------------------------------
# boto3
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def boto3_session(tmp_path_factory):
    """One boto3 session with explicit keys and no shared config/credentials files (create clients from one thread)."""
    home = tmp_path_factory.mktemp("boto3-home")
    core = botocore.session.Session()
    core.set_config_variable("config_file", str(home / "no-config"))
    core.set_config_variable("credentials_file", str(home / "no-credentials"))
    return boto3.session.Session(aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
                                 region_name=REGION, botocore_session=core)


@pytest.fixture(scope="session")
def events_client(boto3_session):
    """``events_client(endpoint_url, max_attempts=3, **config)`` -> a boto3 personalize-events client."""

    def make(endpoint_url: str, max_attempts: int = 3, **config):
        settings = {"connect_timeout": 10, "read_timeout": 60, **config}
        cfg = Config(retries={"mode": "standard", "total_max_attempts": max_attempts}, proxies={}, **settings)
        return boto3_session.client("personalize-events", endpoint_url=endpoint_url, config=cfg)

    return make


@pytest.fixture(scope="session")
def signed_post():
    """``signed_post(url, body)`` -> HttpResponse: a SigV4-signed raw POST."""

    def post(url: str, body) -> HttpResponse:
        if not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        return signed_request("POST", url, bytes(body))

    return post


# --------------------------------------------------------------------------------------------------------------------
# Command-line clients with a chosen environment (aws-cli, `interlog put-events` / `interlog export`)
# --------------------------------------------------------------------------------------------------------------------


def client_env(home: Path, extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """A clean client environment: PATH, locale, ``HOME`` (a temp dir whose ``.aws`` the test controls) and nothing
    else of AWS's; ``extra`` adds variables (a None value leaves one out)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_EC2_METADATA_DISABLED": "true",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "NO_COLOR": "1",
    }
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def awscli_python() -> str:
    """The interpreter of the pinned aws-cli (its script's shebang), to run aws-cli's entry point in a wrapper."""
    first = AWS_CLI.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    assert first.startswith("#!"), f"{AWS_CLI} has no shebang"
    return first[2:].strip().split()[0]


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(program, *args, env=..., cwd=None, binary=False)`` -> CompletedProcess (text), never checked.

    ``program``: ``"aws"`` (the pinned aws-cli), ``"interlog"`` (the binary under test) or ``"aws-python"`` (the
    aws-cli venv's interpreter, for wrappers around ``awscli.clidriver.main()``). ``env`` is the whole environment
    (see ``client_env``)."""
    programs = {"aws": [str(AWS_CLI)], "interlog": [str(INTERLOG_BIN)], "aws-python": [awscli_python()]}

    def run(program: str, *args, env: dict[str, str], cwd: Path | None = None, timeout: float = 120,
            binary: bool = False) -> subprocess.CompletedProcess:
        text = {} if binary else {"text": True, "encoding": "utf-8"}  # binary: stdout/stderr bytes, CRLF kept
        return subprocess.run([*programs[program], *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                              env=env, cwd=cwd or env.get("HOME"), timeout=timeout, **text)

    return run
