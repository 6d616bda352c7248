"""Control-plane fidelity found by running other people's code against interlog (issue 13), and the export-job quota
(issue 11), end to end through boto3 against the real binary:

* ``--no-default-resources`` / ``INTERLOG_NO_DEFAULT_RESOURCES``: a fresh server's account is empty;
* tag keys and values beginning with ``aws:`` are refused wherever tags are taken;
* CreateDatasetGroup's ``roleArn`` and ``kmsKeyArn`` come together;
* a missing required member is one violation;
* ResourceAlreadyExistsException names the resource that holds the name (another region's too);
* at most 5 export jobs pending or in progress per account, also under concurrent creates.
"""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY, ServerStartError, new_account_dir, requires_postgres
from test_control_plane import (ACCOUNT, CUSTOM_SCHEMA, LISTINGS, OTHER_ACCOUNT, OTHER_KEY_ID, OTHER_SECRET, ROLE_ARN,
                                _config, _session, event, expect_error, export_job, list_all, make_pipeline, ok, put,
                                start_held_job, wait_job)
from test_control_plane import personalize, events  # noqa: F401  (fixtures)

NO_DEFAULTS = ("--no-default-resources",)
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RESERVED = "must not begin with 'aws:'"


def snapshot(p) -> dict:
    """Every listing of the account, for "nothing changed" checks."""
    return {op: list_all(p, op, key) for op, key in LISTINGS}


def in_region(region: str, home: Path) -> boto3.session.Session:
    core = botocore.session.Session()
    core.set_config_variable("config_file", str(home / "no-config"))
    core.set_config_variable("credentials_file", str(home / "no-credentials"))
    return boto3.session.Session(aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
                                 region_name=region, botocore_session=core)


# --------------------------------------------------------------------------------------------------------------------
# --no-default-resources
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_default_resources_leaves_a_fresh_account_empty(how, server_factory, personalize):
    if how == "flag":
        server = server_factory(args=NO_DEFAULTS)
    else:
        server = server_factory(env={"INTERLOG_NO_DEFAULT_RESOURCES": "true"})
    assert (server.bootstrap, server.dataset_group_arn, server.tracking_id) == ("none", None, None)
    assert "dataset group: - (none: --no-default-resources)" in server.stdout_lines
    assert "tracking ID:   -" in server.stdout_lines
    p = personalize(server.endpoint)
    for op, key in LISTINGS:
        assert ok(getattr(p, op)())[key] == [], op
    # All five dataset-group slots are the caller's.
    for i in range(5):
        ok(p.create_dataset_group(name=f"mine-{i}"))
    expect_error("LimitExceededException", p.create_dataset_group, name="mine-5")
    # A restart creates nothing either.
    server.restart()
    p = personalize(server.endpoint)
    assert server.bootstrap == "none"
    assert [g["name"] for g in ok(p.list_dataset_groups())["datasetGroups"]] == [f"mine-{i}" for i in range(5)]
    assert ok(p.list_schemas())["schemas"] == [] and ok(p.list_event_trackers())["eventTrackers"] == []


def test_no_default_resources_on_a_store_that_has_them_reports_them(server_factory, personalize):
    server = server_factory()
    tracking_id = server.tracking_id
    server.restart(args=NO_DEFAULTS)
    assert (server.bootstrap, server.tracking_id) == ("reusing", tracking_id)
    assert [g["name"] for g in ok(personalize(server.endpoint).list_dataset_groups())["datasetGroups"]] == ["default"]


def test_no_default_resources_refuses_a_default_tracking_id(server_factory):
    with pytest.raises(ServerStartError) as info:
        server_factory(args=(*NO_DEFAULTS, "--default-tracking-id", "fixed"))
    assert info.value.returncode == 2
    assert "--default-tracking-id" in info.value.log and "--no-default-resources" in info.value.log
