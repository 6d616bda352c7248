"""The bulk-data walkthrough, ``examples/bulk-walkthrough.sh``, run with the pinned aws-cli v1 against a fresh server
and moto's S3: a CSV of historical interactions imported from S3, live events put on top, the dataset exported to S3
as CSV and as Parquet, two users' data deleted by a data deletion job reading its user IDs from S3, and the dataset
exported again. Each export is read back from S3 and compared with the expected rows, row by row (the Parquet file
value by value with pyarrow).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACCESS_KEY_ID, AWS_CLI, REPO, SECRET_ACCESS_KEY
from test_s3_export import MOTO_SERVER, Moto, s3_env

SCRIPT = REPO / "examples" / "bulk-walkthrough.sh"
HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "DEVICE"]
HISTORY = [
    ["user-1", "item-1", "1690000000", "click", "phone"],
    ["user-1", "item-2", "1690000060", "purchase", "phone|tablet"],
    ["user-2", "item-1", "1690000120", "click", ""],
    ["user-3", "item-3", "1690000180", "click", "tablet"],
    ["user-4", "item-2", "1690000240", "click", ""],
]
LIVE = [
    ["user-1", "item-3", "1700000000", "click", "phone"],
    ["user-5", "item-1", "1700000060", "purchase", ""],
]

pytestmark = pytest.mark.skipif(not MOTO_SERVER.exists(), reason=f"moto_server not installed beside {sys.executable}")


def read_csv(raw: bytes) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    return rows[0], rows[1:]


def test_import_put_export_delete_export_with_aws_cli(server_factory, tmp_path, tmp_path_factory):
    moto = Moto(tmp_path_factory.mktemp("moto-walkthrough"))
    try:
        server = server_factory(args=("--no-default-resources",), env=s3_env(moto.url, tmp_path))
        home = tmp_path / "home"
        home.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "LC_ALL": "C.UTF-8",
            "AWS_CLI": str(AWS_CLI),
            "INTERLOG_ENDPOINT": server.endpoint,
            "S3_ENDPOINT": moto.url,
            "BUCKET": "walkthrough",
            "SUFFIX": "t1",
            "TIMEOUT": "60",
        }
        done = subprocess.run(["bash", str(SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, timeout=600)
        assert done.returncode == 0, f"the walkthrough failed ({done.returncode}):\n{done.stderr}"
        before_url, parquet_url, after_url = done.stdout.split()[-3:]
        assert "records deleted: 4" in done.stderr, done.stderr  # user-1's three events, user-2's one

        s3 = moto.client()

        def get(url: str) -> bytes:
            bucket, key = url.removeprefix("s3://").split("/", 1)
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

        header, before = read_csv(get(before_url))
        assert header == HEADER
        assert sorted(before) == sorted(HISTORY + LIVE)

        import pyarrow.parquet as pq
        table = pq.read_table(io.BytesIO(get(parquet_url)))
        assert table.column_names == HEADER
        columns = table.to_pydict()
        parquet_rows = [[("" if columns[c][i] is None else str(columns[c][i])) for c in HEADER]
                        for i in range(table.num_rows)]
        assert sorted(parquet_rows) == sorted(before), "the Parquet export holds the CSV export's values"

        header, after = read_csv(get(after_url))
        assert header == HEADER
        gone = {"user-1", "user-2"}
        assert sorted(after) == sorted(r for r in HISTORY + LIVE if r[0] not in gone)
    finally:
        moto.stop()
