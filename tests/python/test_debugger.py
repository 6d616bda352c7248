"""Issue 15: the live event debugger at ``/_interlog/ui`` in a real browser, and the history endpoint.

The browser test drives headless Chromium (Debian's ``chromium``; ``scripts/test`` installs it where apt works) with
``playwright-core`` from ``tests/js`` (``executablePath`` is the system's Chromium: no browser download). It signs in,
puts events with aws-cli and sees them within one second, sees a rejected request with its error type, message and
member, a flagged event with its reason, the counts, the tail's filter and the user's history, and stores a
screenshot under ``target/test-artifacts/``. Without Chromium it is skipped with a printed line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ACCESS_KEY_ID, AWS_CLI, INTERLOG_BIN, REGION, REPO, SECRET_ACCESS_KEY, signed_request

JS_DIR = REPO / "tests" / "js"
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "target" / "test-artifacts"


def client_environment(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "LC_ALL": "C.UTF-8",
    }


def test_the_debugger_in_a_browser(server, tmp_path):
    if CHROMIUM is None:
        print("SKIPPED the debugger's browser test: chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    if NODE is None or not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        print("SKIPPED the debugger's browser test: playwright-core is not installed (npm ci in tests/js)")
        pytest.skip("playwright-core is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"debugger-{os.environ.get('INTERLOG_TEST_ENGINE', 'sqlite')}.png"
    env = client_environment(tmp_path)
    env.update({
        "DEBUGGER_URL": f"{server.endpoint}/_interlog/ui",
        "ACCESS_KEY_ID": ACCESS_KEY_ID,
        "SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "TRACKING_ID": server.tracking_id,
        "CHROMIUM": CHROMIUM,
        "AWS_CLI": str(AWS_CLI),
        "SCREENSHOT": str(screenshot),
    })
    done = subprocess.run([NODE, str(JS_DIR / "debugger.mjs")], cwd=JS_DIR, env=env, capture_output=True, text=True,
                          timeout=180)
    print(done.stdout)
    assert done.returncode == 0, f"the browser test failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert screenshot.stat().st_size > 10_000


def put(aws, server, user: str, session: str, events: list[dict]):
    aws("personalize-events", "put-events", "--endpoint-url", server.endpoint, "--tracking-id", server.tracking_id,
        "--user-id", user, "--session-id", session, "--event-list", json.dumps(events))


def test_history_is_signed_newest_first_and_through_the_cli(server, aws, tmp_path):
    put(aws, server, "u1", "s1", [{"eventId": "a1", "eventType": "click", "itemId": "i1", "sentAt": 1700000001},
                                  {"eventId": "a2", "eventType": "view", "itemId": "i2", "sentAt": 1700000002,
                                   "properties": '{"numberOfRatings": "12"}'}])
    put(aws, server, "u2", "s1", [{"eventId": "b1", "eventType": "click", "sentAt": 1700000003}])
    url = f"{server.endpoint}/_interlog/v1/events?trackingId={server.tracking_id}"
    r = signed_request("GET", f"{url}&userId=u1")
    assert r.status == 200, r
    events = r.json()["events"]
    assert [e["eventId"] for e in events] == ["a2", "a1"]
    assert events[0]["properties"] == '{"numberOfRatings": "12"}'
    assert events[0]["flags"][0]["kind"] == "undeclaredProperty"
    assert events[1]["flags"] == [] and events[1]["itemId"] == "i1" and events[1]["sentAt"] == 1700000001
    assert events[0]["userId"] == "u1" and events[0]["sessionId"] == "s1" and events[0]["receivedAt"] > 1.7e9
    r = signed_request("GET", f"{url}&sessionId=s1&limit=2")
    assert [e["eventId"] for e in r.json()["events"]] == ["b1", "a2"]

    # Bad queries get the AWS error shape with a reason; an unsigned one is refused.
    for query, status in (("&userId=u1&sessionId=s1", 400), ("", 400), ("&userId=u1&limit=0", 400)):
        r = signed_request("GET", url + query)
        assert (r.status, r.json()["__type"]) == (status, "InvalidInputException"), r
    r = signed_request("GET", f"{server.endpoint}/_interlog/v1/events?trackingId=nope&userId=u1")
    assert (r.status, r.json()["__type"]) == (404, "ResourceNotFoundException")
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}&userId=u1", timeout=10)
        raise AssertionError("an unsigned history request was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 403

    env = client_environment(tmp_path)
    done = subprocess.run([str(INTERLOG_BIN), "events", "--endpoint-url", server.endpoint, "--tracking-id",
                           server.tracking_id, "--user-id", "u1", "--limit", "1"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [e["eventId"] for e in json.loads(done.stdout)["events"]] == ["a2"]
    done = subprocess.run([str(INTERLOG_BIN), "events", "--endpoint-url", server.endpoint, "--tracking-id", "nope",
                           "--session-id", "s1"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ResourceNotFoundException" in done.stderr, done
