"""The user-facing walkthrough, ``examples/awscli-walkthrough.sh``, run with the pinned aws-cli v1 against a fresh
server: schema with a categorical and a numeric field, dataset group, Interactions dataset, event tracker,
``put-events`` with properties (JSON and shorthand syntax), an export job to ``file://``, polled with
``describe-dataset-export-job`` until ACTIVE; then an Items and a Users dataset with metadata fields of their own,
``put-items`` (one item put twice: the later write wins) and ``put-users``, and an export job of each. Every CSV it
writes is compared with the expected rows column for column. The script runs twice against the same server, as a
user re-running it would.

The boto3 counterpart (and every error case) is ``test_control_plane.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ACCESS_KEY_ID, AWS_CLI, REGION, REPO, SECRET_ACCESS_KEY

SCRIPT = REPO / "examples" / "awscli-walkthrough.sh"
ARN = f"arn:aws:personalize:{REGION}:000000000000:"

HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "DEVICE", "NUMBER_OF_RATINGS"]
# What the script's three put-events say, as dataset rows: event-1 and event-2 in JSON syntax (numberOfRatings as a
# number and as a numeric string), event-3 in shorthand syntax with no device and the key spelled NUMBER_OF_RATINGS.
ROWS = [
    {"USER_ID": "user-1", "ITEM_ID": "item-1", "TIMESTAMP": "1700000000", "EVENT_TYPE": "click", "EVENT_VALUE": "4.5",
     "IMPRESSION": "", "DEVICE": "phone", "NUMBER_OF_RATINGS": "12"},
    {"USER_ID": "user-1", "ITEM_ID": "item-2", "TIMESTAMP": "1700000060", "EVENT_TYPE": "view", "EVENT_VALUE": "",
     "IMPRESSION": "item-2|item-3|item-4", "DEVICE": "phone|tablet", "NUMBER_OF_RATINGS": "3"},
    {"USER_ID": "user-1", "ITEM_ID": "item-3", "TIMESTAMP": "1700000120", "EVENT_TYPE": "purchase", "EVENT_VALUE": "",
     "IMPRESSION": "", "DEVICE": "", "NUMBER_OF_RATINGS": "7"},
]

ITEMS_HEADER = ["ITEM_ID", "GENRES", "PRICE"]
# item-2 was put twice: the shorthand put-items replaced it whole (no genres any more).
ITEMS_ROWS = [
    {"ITEM_ID": "item-1", "GENRES": "Horror|Action", "PRICE": "9.99"},
    {"ITEM_ID": "item-2", "GENRES": "", "PRICE": "3.75"},
    {"ITEM_ID": "item-3", "GENRES": "", "PRICE": "12"},
]
USERS_HEADER = ["USER_ID", "MEMBERSHIP", "AGE"]
USERS_ROWS = [
    {"USER_ID": "user-1", "MEMBERSHIP": "Member|Frequent shopper", "AGE": "45"},
    {"USER_ID": "user-2", "MEMBERSHIP": "Guest", "AGE": ""},
]


def walkthrough_env(home: Path, endpoint: str, out_dir: Path, suffix: str | None) -> dict[str, str]:
    """A clean environment like the ``aws`` fixture's: credentials in the environment, no ~/.aws."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "AWS_CLI": str(AWS_CLI),
        "INTERLOG_ENDPOINT": endpoint,
        "OUT_DIR": str(out_dir),
        "TIMEOUT": "30",
    }
    if suffix is not None:
        env["SUFFIX"] = suffix
    return env


def run_walkthrough(home: Path, endpoint: str, out_dir: Path, suffix: str | None = None,
                    cwd: Path | None = None) -> tuple[Path, str]:
    """Runs the script; returns the interactions CSV path it printed and its stderr (the narration), after checking
    the items and users CSVs it printed after it column for column."""
    done = subprocess.run(["bash", str(SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          encoding="utf-8", env=walkthrough_env(home, endpoint, out_dir, suffix),
                          cwd=cwd or home, timeout=240)
    assert done.returncode == 0, f"walkthrough failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3, f"the walkthrough printed {lines!r}, not three CSV paths:\n{done.stderr}"
    interactions, items, users = map(Path, lines)
    assert items.name.startswith("walkthrough-items-export-") and users.name.startswith("walkthrough-users-export-")
    assert_csv(items, ITEMS_HEADER, ITEMS_ROWS)
    assert_csv(users, USERS_HEADER, USERS_ROWS)
    return interactions, done.stderr


def assert_csv(path: Path, header: list[str] = HEADER, expected: list[dict] = ROWS):
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends"
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert rows[0] == header, "the header is the schema's field names, in schema order"
    assert len(rows) - 1 == len(expected), rows
    for i, (got, want) in enumerate(zip(rows[1:], expected)):
        for column, value in zip(header, got):
            assert value == want[column], f"{path.name} row {i + 1} column {column}: {value!r} != {want[column]!r}"


def test_the_script_is_a_strict_bash_script():
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") and os.access(SCRIPT, os.X_OK)
    assert "\nset -euo pipefail\n" in text
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_awscli_walkthrough_exports_the_expected_csv_and_runs_twice(server, aws, aws_home, account_dir):
    out_dir = account_dir() / "exports"  # the script makes it
    csv_path, narration = run_walkthrough(aws_home, server.endpoint, out_dir, suffix="t1")
    assert csv_path == out_dir / "walkthrough-export-t1.csv"
    assert_csv(csv_path)
    assert "export job is ACTIVE" in narration
    assert sorted(os.listdir(out_dir)) == ["walkthrough-export-t1.csv", "walkthrough-items-export-t1.csv",
                                           "walkthrough-users-export-t1.csv"]

    # What the script made, seen through aws-cli.
    job = json.loads(aws("personalize", "describe-dataset-export-job", "--endpoint-url", server.endpoint,
                         "--dataset-export-job-arn", ARN + "dataset-export-job/walkthrough-export-t1").stdout)
    job = job["datasetExportJob"]
    assert (job["status"], job["ingestionMode"], job["datasetArn"]) == \
        ("ACTIVE", "PUT", ARN + "dataset/walkthrough-group-t1/INTERACTIONS")
    assert job["jobOutput"]["s3DataDestination"]["path"] == f"file://{out_dir}/"
    # aws-cli v1 prints timestamps as they came: epoch seconds with milliseconds.
    assert isinstance(job["creationDateTime"], (int, float)) and job["lastUpdatedDateTime"] >= job["creationDateTime"]
    assert abs(job["creationDateTime"] - time.time()) < 600

    # The same script again, with its default suffix, into the same directory: new resources, the same rows.
    second, _ = run_walkthrough(aws_home, server.endpoint, out_dir)
    assert second.parent == out_dir and second != csv_path
    assert re.fullmatch(r"walkthrough-export-[A-Za-z0-9_-]+\.csv", second.name), second.name
    assert_csv(second)
    assert_csv(csv_path)  # the first export is untouched

    # aws-cli pages through list-* on its own; --max-results asks for one page.
    trackers = json.loads(aws("personalize", "list-event-trackers", "--endpoint-url", server.endpoint,
                              "--page-size", "1").stdout)["eventTrackers"]
    assert [t["name"] for t in trackers][0] == "default-tracker"
    assert sorted(t["name"] for t in trackers)[1:] == sorted(
        ["walkthrough-tracker-t1", second.name.replace("walkthrough-export-", "walkthrough-tracker-")[:-4]])
    one = json.loads(aws("personalize", "list-schemas", "--endpoint-url", server.endpoint,
                         "--max-results", "1").stdout)
    assert [s["name"] for s in one["schemas"]] == ["default-interactions"] and one["nextToken"]


@pytest.mark.parametrize("bad_endpoint", ["http://127.0.0.1:9"])
def test_the_walkthrough_stops_at_the_first_failure(bad_endpoint, aws_home, tmp_path):
    """`set -e`: nothing after a failed call runs, and no CSV path is printed."""
    done = subprocess.run(["bash", str(SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          encoding="utf-8", env={**walkthrough_env(aws_home, bad_endpoint, tmp_path / "o", "x"),
                                                 "AWS_MAX_ATTEMPTS": "1"},
                          cwd=aws_home, timeout=120)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "creating schema" in done.stderr and "creating dataset group" not in done.stderr, done.stderr
