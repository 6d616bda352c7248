"""HTTPS (``interlog serve --tls-cert FILE --tls-key FILE``) as the real clients see it, against a certificate
authority each test run makes with ``trustme``:

* aws-cli v1 and ``interlog put-events`` with ``--ca-bundle`` (and ``AWS_CA_BUNDLE``, and ``ca_bundle`` in the
  profile), with ``--no-verify-ssl`` (both print urllib3's InsecureRequestWarning), and with neither (both refuse
  the unknown issuer with the same message);
* boto3 with ``verify=<ca file>``, ``verify=False`` and the default;
* every accepted event is stored once, nothing refused is.
"""

from __future__ import annotations

import re
import uuid
import warnings
from pathlib import Path

import botocore.exceptions
import pytest
import trustme
from botocore.config import Config

from conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, client_env

WARNING = ("InsecureRequestWarning: Unverified HTTPS request is being made to host '127.0.0.1'. Adding certificate "
           "verification is strongly advised. See: https://urllib3.readthedocs.io/en/latest/advanced-usage.html"
           "#tls-warnings")
UNKNOWN_ISSUER = ("SSL validation failed for {url}/events [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                  "unable to get local issuer certificate (_ssl.c:1006)")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(server, CA bundle path, another CA's bundle path) for a server with a certificate for 127.0.0.1 and localhost."""
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        with open(d / "cert.pem", "ab") as f:
            f.write(extra.bytes())
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(d / "other-ca.pem"))
    return d


@pytest.fixture(scope="module")
def tls_server(tls, tmp_path_factory):
    from conftest import ServerPool
    pool = ServerPool(tmp_path_factory.mktemp("tls-server"))
    server = pool(args=("--tls-cert", str(tls / "cert.pem"), "--tls-key", str(tls / "key.pem")))
    yield server
    pool.close()


def put_events_argv(server, session: str, event_id: str, *extra: str) -> list[str]:
    events = f'[{{"eventId": "{event_id}", "eventType": "click", "itemId": "i1", "sentAt": 1700000000}}]'
    return ["--endpoint-url", server.endpoint, "--tracking-id", server.tracking_id, "--session-id", session,
            "--event-list", events, *extra]


def run_both(run_cli, tmp_path: Path, argv: list[str], **env: str | None):
    """aws-cli and `interlog put-events` with the same argv and environment (one attempt each)."""
    home = tmp_path / f"home-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    environment = client_env(home, {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                                    "AWS_DEFAULT_REGION": REGION, "AWS_MAX_ATTEMPTS": "1", **env})
    aws = run_cli("aws", "personalize-events", "put-events", *argv, env=environment)
    ours = run_cli("interlog", "put-events", *argv, env=environment)
    return aws, ours


def stored_sessions(export, server) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in export(server.data_dir):
        counts[row["sessionId"]] = counts.get(row["sessionId"], 0) + 1
    return counts


def test_the_server_speaks_https(tls_server):
    assert tls_server.endpoint.startswith("https://127.0.0.1:"), tls_server.endpoint
    assert any("listening on https://" in line for line in tls_server.stdout_lines)


def test_ca_bundle_verifies_the_server_in_both_clients(tls_server, tls, run_cli, export, tmp_path):
    aws, ours = run_both(run_cli, tmp_path, put_events_argv(tls_server, "tls-bundle", "b-1", "--ca-bundle",
                                                            str(tls / "ca.pem")))
    assert (aws.returncode, aws.stderr) == (0, ""), aws.stderr
    assert (ours.returncode, ours.stderr) == (0, ""), ours.stderr
    # AWS_CA_BUNDLE and the profile's ca_bundle do the same as the option.
    aws, ours = run_both(run_cli, tmp_path, put_events_argv(tls_server, "tls-env", "e-1"),
                         AWS_CA_BUNDLE=str(tls / "ca.pem"))
    assert (aws.returncode, ours.returncode) == (0, 0), (aws.stderr, ours.stderr)
    config = tmp_path / "config"
    config.write_text(f"[default]\nca_bundle = {tls / 'ca.pem'}\n")
    aws, ours = run_both(run_cli, tmp_path, put_events_argv(tls_server, "tls-profile", "p-1"),
                         AWS_CONFIG_FILE=str(config))
    assert (aws.returncode, ours.returncode) == (0, 0), (aws.stderr, ours.stderr)
    counts = stored_sessions(export, tls_server)
    # Each pair sent the same eventId, which is stored once.
    assert (counts.get("tls-bundle"), counts.get("tls-env"), counts.get("tls-profile")) == (1, 1, 1), counts


def test_no_verify_ssl_warns_like_awscli(tls_server, run_cli, export, tmp_path):
    aws, ours = run_both(run_cli, tmp_path, put_events_argv(tls_server, "tls-noverify", "n-1", "--no-verify-ssl"))
    assert (aws.returncode, ours.returncode) == (0, 0), (aws.stderr, ours.stderr)
    assert WARNING in aws.stderr, aws.stderr
    assert ours.stderr == WARNING + "\n", ours.stderr
    assert stored_sessions(export, tls_server).get("tls-noverify") == 1


@pytest.mark.parametrize("how", ["no bundle", "another CA", "missing file"])
def test_an_unverified_server_is_refused_like_awscli(how, tls_server, tls, run_cli, export, tmp_path):
    extra = {"no bundle": [], "another CA": ["--ca-bundle", str(tls / "other-ca.pem")],
             "missing file": ["--ca-bundle", str(tmp_path / "missing.pem")]}[how]
    session = f"tls-refused-{how.replace(' ', '-')}"
    aws, ours = run_both(run_cli, tmp_path, put_events_argv(tls_server, session, "r-1", *extra))
    assert (aws.returncode, ours.returncode) == (255, 255), (aws.stderr, ours.stderr)
    expected = (f"\nSSL validation failed for {tls_server.endpoint}/events [Errno 2] No such file or directory\n"
                if how == "missing file" else "\n" + UNKNOWN_ISSUER.format(url=tls_server.endpoint) + "\n")
    assert aws.stderr == expected, aws.stderr
    assert ours.stderr == expected, ours.stderr
    assert session not in stored_sessions(export, tls_server)


def boto3_client(boto3_session, endpoint: str, verify):
    cfg = Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={}, connect_timeout=10,
                 read_timeout=30)
    return boto3_session.client("personalize-events", endpoint_url=endpoint, config=cfg, verify=verify)


def event(event_id: str) -> list[dict]:
    return [{"eventId": event_id, "eventType": "click", "itemId": "i1", "sentAt": 1700000000}]


def test_boto3_verify_options(tls_server, tls, boto3_session, export):
    client = boto3_client(boto3_session, tls_server.endpoint, str(tls / "ca.pem"))
    client.put_events(trackingId=tls_server.tracking_id, sessionId="boto3-ca", eventList=event("boto3-ca"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = boto3_client(boto3_session, tls_server.endpoint, False)
        client.put_events(trackingId=tls_server.tracking_id, sessionId="boto3-noverify", eventList=event("boto3-nv"))
    assert any("Unverified HTTPS request" in str(w.message) for w in caught), [str(w.message) for w in caught]
    for verify in (None, str(tls / "other-ca.pem")):
        client = boto3_client(boto3_session, tls_server.endpoint, verify)
        with pytest.raises(botocore.exceptions.SSLError) as info:
            client.put_events(trackingId=tls_server.tracking_id, sessionId="boto3-refused",
                              eventList=event("boto3-refused"))
        assert re.search(r"CERTIFICATE_VERIFY_FAILED", str(info.value)), info.value
    counts = stored_sessions(export, tls_server)
    assert (counts.get("boto3-ca"), counts.get("boto3-noverify"), counts.get("boto3-refused")) == (1, 1, None), counts


def test_plain_http_to_the_https_port_gets_no_answer(tls_server):
    import socket
    host, port = tls_server.endpoint.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /_interlog/health HTTP/1.1\r\nhost: x\r\n\r\n")
        data = s.recv(4096)
    assert not data.startswith(b"HTTP/1.1 200"), data
