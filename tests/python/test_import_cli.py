"""`interlog import` end to end: CSV and JSON lines files into datasets of every type through a running server.

* an Interactions CSV (quoted fields, impressions, a metadata column) arrives whole; rows the file or the server
  refuses are listed in the report with their line numbers and the rest is stored;
* an import killed mid-way resumes from its checkpoint and stores every row exactly once;
* Items and Users (CSV and JSON lines) replace by ID, the last row of an ID winning;
* an export in JSON lines imports back into another dataset and exports the same CSV;
* a checkpoint of another import is refused, and ``--restart`` begins again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from botocore.config import Config

from conftest import ACCESS_KEY_ID, INTERLOG_BIN, REGION, SECRET_ACCESS_KEY, client_env, database_url, \
    new_account_dir, parse_export, run_export
from test_control_plane import avro, export_job, fld, ok, read_csv

INTERACTIONS = [fld("USER_ID", "string"), fld("ITEM_ID", "string"), fld("TIMESTAMP", "long"),
                fld("EVENT_TYPE", "string"), fld("IMPRESSION", ["null", "string"]),
                fld("NUMBER_OF_RATINGS", ["null", "int"])]
ITEMS = [fld("ITEM_ID", "string"), fld("GENRES", ["null", "string"], categorical=True), fld("PRICE", ["null", "float"])]
USERS = [fld("USER_ID", "string"), fld("AGE", ["null", "int"])]


@pytest.fixture
def p(server, boto3_session):
    cfg = Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={})
    return boto3_session.client("personalize", endpoint_url=server.endpoint, config=cfg)


def dataset(p, name: str, kind: str, fields: list[dict], tracker: bool = False) -> str:
    group = ok(p.create_dataset_group(name=name))["datasetGroupArn"]
    schema_name = {"Interactions": "Interactions", "Items": "Items", "Users": "Users"}[kind]
    schema = ok(p.create_schema(name=f"{name}-{kind.lower()}", schema=avro(fields, name=schema_name)))["schemaArn"]
    arn = ok(p.create_dataset(name=f"{name}-{kind.lower()}", schemaArn=schema, datasetGroupArn=group,
                              datasetType=kind))["datasetArn"]
    if tracker:
        ok(p.create_event_tracker(name=f"{name}-tracker", datasetGroupArn=group))
    return arn


def env(tmp_path: Path) -> dict[str, str]:
    return client_env(tmp_path, {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                                 "AWS_DEFAULT_REGION": REGION})


def run_import(server, tmp_path: Path, *args, check: bool | None = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(INTERLOG_BIN), "import", "--endpoint-url", server.endpoint, *map(str, args)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env(tmp_path), timeout=300)
    if check:
        assert done.returncode == 0, f"interlog import failed ({done.returncode}):\n{done.stderr}"
    return done


def exported(server, arn: str, fmt: str = "csv") -> list[dict]:
    return parse_export(run_export(server.data_dir, fmt, dataset_arn=arn), fmt)


def test_interactions_csv_is_stored_and_bad_rows_are_reported_by_line(server, p, tmp_path):
    arn = dataset(p, "imp-csv", "Interactions", INTERACTIONS, tracker=True)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION,NUMBER_OF_RATINGS"]
    expected = []
    for n in range(25):
        user, item = f"u{n % 4}", f"i{n}"
        impression = f"i{n}|i{n + 1}" if n % 2 else ""
        ratings = str(n) if n % 3 else ""
        item_cell = f'"{item},x"' if n == 7 else item
        lines.append(f"{user},{item_cell},{1_700_000_000 + n},click,{impression},{ratings}")
        expected.append({"USER_ID": user, "ITEM_ID": f"{item},x" if n == 7 else item,
                         "TIMESTAMP": str(1_700_000_000 + n), "EVENT_TYPE": "click", "IMPRESSION": impression,
                         "NUMBER_OF_RATINGS": ratings})
    lines.insert(5, "u1,bad-time,yesterday,click,,")       # line 6: refused by the file's reading
    lines.insert(10, "u2,bad-rating,1700000100,click,,many")  # line 11: refused by the server (not an int)
    source = tmp_path / "history.csv"
    source.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")

    done = run_import(server, tmp_path, source, "--dataset-arn", arn, check=False)
    assert done.returncode == 1, done.stderr
    assert "imported 25 rows" in done.stderr, done.stderr
    report = (tmp_path / "history.csv.rejected.txt").read_text(encoding="utf-8").splitlines()
    assert len(report) == 2, report
    assert report[0] == f"{source}:6: TIMESTAMP must be a number, not \"yesterday\""
    assert report[1].startswith(f"{source}:11: InvalidInputException: ") and "NUMBER_OF_RATINGS" in report[1], report
    assert not (tmp_path / "history.csv.import-state").exists()

    rows = exported(server, arn)
    key = lambda r: r["ITEM_ID"]  # noqa: E731
    got = sorted(({k: r[k] for k in expected[0]} for r in rows), key=key)
    assert got == sorted(expected, key=key)

    # The same file again stores nothing twice: every row's derived eventId is the same as before.
    run_import(server, tmp_path, source, "--dataset-arn", arn, "--report", tmp_path / "again.txt", check=False)
    assert len(exported(server, arn)) == 25


def test_a_killed_import_resumes_and_stores_every_row_once(server, p, tmp_path):
    arn = dataset(p, "imp-resume", "Interactions", INTERACTIONS, tracker=True)
    rows = 60_000
    source = tmp_path / "big.csv"
    with source.open("w", encoding="utf-8") as f:
        f.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION,NUMBER_OF_RATINGS\n")
        for n in range(rows):
            f.write(f"user{n // 10},item{n},{1_700_000_000 + n},view,,\n")
    state = tmp_path / "big.csv.import-state"
    cmd = [str(INTERLOG_BIN), "import", "--endpoint-url", server.endpoint, str(source), "--dataset-arn", arn]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env(tmp_path))
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert state.exists(), "the import ended before its first checkpoint could be interrupted"
    checkpoint = json.loads(state.read_text())
    assert 0 < checkpoint["sent"] < rows, checkpoint

    done = run_import(server, tmp_path, source, "--dataset-arn", arn)
    assert f"resuming the import at line {checkpoint['at']['lines'] + 1} of {source}" in done.stderr, done.stderr
    assert not state.exists()
    items = [r["ITEM_ID"] for r in exported(server, arn)]
    assert len(items) == rows and len(set(items)) == rows


def test_items_csv_and_users_json_lines_replace_by_id(server, p, tmp_path):
    items_arn = dataset(p, "imp-items", "Items", ITEMS)
    source = tmp_path / "items.csv"
    source.write_text("ITEM_ID,GENRES,PRICE\ni1,drama|comedy,9.5\ni2,,\ni1,horror,12\n", encoding="utf-8")
    run_import(server, tmp_path, source, "--dataset-arn", items_arn)
    got = sorted(exported(server, items_arn), key=lambda r: r["ITEM_ID"])
    assert got == [{"ITEM_ID": "i1", "GENRES": "horror", "PRICE": "12"},
                   {"ITEM_ID": "i2", "GENRES": "", "PRICE": ""}], got

    users_arn = dataset(p, "imp-users", "Users", USERS)
    source = tmp_path / "users.jsonl"
    source.write_text("\n".join(json.dumps(u) for u in [
        {"userId": "a", "properties": {"age": 30}},
        {"userId": "b", "properties": "{\"age\": \"41\"}"},
        {"userId": "a", "properties": {"age": 31}},
    ]) + "\n", encoding="utf-8")
    run_import(server, tmp_path, source, "--dataset-arn", users_arn)
    got = sorted(exported(server, users_arn), key=lambda r: r["USER_ID"])
    assert got == [{"USER_ID": "a", "AGE": "31"}, {"USER_ID": "b", "AGE": "41"}], got


def test_an_exported_dataset_imports_back_the_same(server, p, tmp_path):
    first = dataset(p, "imp-from", "Interactions", INTERACTIONS, tracker=True)
    source = tmp_path / "from.csv"
    source.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION,NUMBER_OF_RATINGS\n"
                      + "".join(f"u{n % 3},i{n},{1_700_000_000 + n},buy,i{n}|i9,{n}\n" for n in range(30)),
                      encoding="utf-8")
    run_import(server, tmp_path, source, "--dataset-arn", first)
    jsonl = tmp_path / "from.jsonl"
    jsonl.write_bytes(run_export(server.data_dir, "jsonl", dataset_arn=first))
    second = dataset(p, "imp-to", "Interactions", INTERACTIONS, tracker=True)
    run_import(server, tmp_path, jsonl, "--dataset-arn", second)
    key = lambda r: r["ITEM_ID"]  # noqa: E731
    assert sorted(exported(server, second), key=key) == sorted(exported(server, first), key=key)
    # JSON lines keep every member, eventIds included.
    ids = lambda arn: sorted(r["eventId"] for r in exported(server, arn, "jsonl"))  # noqa: E731
    assert ids(second) == ids(first)


def test_a_checkpoint_of_another_import_is_refused_until_restart(server, p, tmp_path):
    arn = dataset(p, "imp-other", "Items", ITEMS)
    source = tmp_path / "items.csv"
    source.write_text("ITEM_ID,GENRES,PRICE\ni1,a,1\n", encoding="utf-8")
    state = tmp_path / "items.csv.import-state"
    state.write_text(json.dumps({"version": 1, "dataset_arn": arn, "files": [[str(source), 999]], "file": 0,
                                 "at": {"offset": 0, "lines": 0}, "sent": 0, "rejected": 0}))
    done = run_import(server, tmp_path, source, "--dataset-arn", arn, check=False)
    assert done.returncode == 1
    assert "is the checkpoint of another import" in done.stderr and "--restart" in done.stderr, done.stderr
    run_import(server, tmp_path, source, "--dataset-arn", arn, "--restart")
    assert exported(server, arn) == [{"ITEM_ID": "i1", "GENRES": "a", "PRICE": "1"}]


def test_unknown_dataset_and_bad_header_fail_before_anything_is_sent(server, p, tmp_path):
    source = tmp_path / "items.csv"
    source.write_text("GENRES,PRICE\na,1\n", encoding="utf-8")
    arn = dataset(p, "imp-header", "Items", ITEMS)
    done = run_import(server, tmp_path, source, "--dataset-arn", arn, check=False)
    assert done.returncode == 1
    assert f"{source}:1: the header lacks the ITEM_ID column" in done.stderr, done.stderr
    missing = arn.replace("imp-header", "no-such-group")
    done = run_import(server, tmp_path, source, "--dataset-arn", missing, check=False)
    assert done.returncode == 1 and "ResourceNotFoundException" in done.stderr, done.stderr
    assert exported(server, arn) == []


def test_a_data_dir_import_stores_csv_rows_as_imported_data(server, p, tmp_path, boto3_session):
    """Straight into the store (no server on a SQLite data dir; beside the nodes on PostgreSQL): the import jobs'
    checks, rows marked BULK, the bad row reported by line, a repeat stores nothing twice."""
    arn = dataset(p, "imp-local", "Interactions", INTERACTIONS, tracker=True)
    source = tmp_path / "local.csv"
    source.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION,NUMBER_OF_RATINGS\r\n"
                      "u1,i1,1700000000,click,i1|i2,4\r\n\r\nu1,i2,soon,click,,\r\nu2,i3,1700000002,view,,\r\n",
                      encoding="utf-8")
    url = database_url(server.data_dir)
    destination = ["--database-url", url] if url else ["--data-dir", str(server.data_dir)]
    cmd = [str(INTERLOG_BIN), "import", *destination, str(source), "--dataset-arn", arn]
    if url is None:
        # One process per SQLite data dir: the running server's lock refuses a second writer.
        busy = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env(tmp_path))
        assert busy.returncode == 1 and "another interlog server is using this data dir" in busy.stderr, busy.stderr
        server.stop()
    for _ in range(2):
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env(tmp_path),
                              timeout=120)
        assert done.returncode == 1, done.stderr
        assert "imported 2 rows" in done.stderr, done.stderr
    report = (tmp_path / "local.csv.rejected.txt").read_text(encoding="utf-8").splitlines()
    assert report == [f"{source}:4: column TIMESTAMP: " + report[0].split("column TIMESTAMP: ", 1)[1]], report
    rows = sorted((r["USER_ID"], r["ITEM_ID"], r["TIMESTAMP"], r["IMPRESSION"], r["NUMBER_OF_RATINGS"])
                  for r in exported(server, arn))
    assert rows == [("u1", "i1", "1700000000", "i1|i2", "4"), ("u2", "i3", "1700000002", "", "")]
    if url is None:
        server.start()  # on a new port
        p = boto3_session.client("personalize", endpoint_url=server.endpoint,
                                 config=Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={}))
    # Imported data: an export job in BULK mode holds it, one in PUT mode does not.
    for mode, expected in (("BULK", 2), ("PUT", 0), ("ALL", 2)):
        out = new_account_dir()
        job, _ = export_job(p, arn, f"local-{mode.lower()}", out, mode=mode)
        assert job["status"] == "ACTIVE", job
        assert len(read_csv(out / f"local-{mode.lower()}.csv")[1]) == expected, mode
