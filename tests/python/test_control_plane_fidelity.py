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


# --------------------------------------------------------------------------------------------------------------------
# aws: tags
# --------------------------------------------------------------------------------------------------------------------


def test_aws_tags_are_refused_everywhere_tags_are_taken(server_factory, personalize, events):
    server = server_factory(args=NO_DEFAULTS)
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "tagged")
    put(ev, w.tracking_id, [event("t-1", 1700000000, "i1", {"numberOfRatings": 1})])
    ok(p.tag_resource(resourceArn=w.group_arn, tags=[{"tagKey": "team", "tagValue": "recs"}]))
    bad_tags = [
        ([{"tagKey": "aws:cloudformation:stack-name", "tagValue": "v"}], "tags.1.member.tagKey"),
        ([{"tagKey": "ok", "tagValue": "v"}, {"tagKey": "AWS:x", "tagValue": "v"}], "tags.2.member.tagKey"),
        ([{"tagKey": "ok", "tagValue": "aws:value"}], "tags.1.member.tagValue"),
    ]
    schema2 = ok(p.create_schema(name="tagged-2", schema=CUSTOM_SCHEMA))["schemaArn"]
    group2 = ok(p.create_dataset_group(name="tagged-2"))["datasetGroupArn"]
    before = snapshot(p)
    out = new_account_dir()
    for tags, path in bad_tags:
        for call, kwargs in [
            (p.create_dataset_group, {"name": "never"}),
            (p.create_dataset, {"name": "never", "schemaArn": schema2, "datasetGroupArn": group2,
                                "datasetType": "Interactions"}),
            (p.create_event_tracker, {"name": "never", "datasetGroupArn": group2}),
            (p.create_dataset_export_job, {"jobName": "never", "datasetArn": w.dataset_arn, "roleArn": ROLE_ARN,
                                           "jobOutput": {"s3DataDestination": {"path": f"file://{out}/"}}}),
            (p.tag_resource, {"resourceArn": w.group_arn}),
        ]:
            message = expect_error("InvalidInputException", call, RESERVED, f"at '{path}'", tags=tags, **kwargs)
            assert message.startswith("1 validation error detected"), message
            assert "cloudformation" not in message and "aws:value" not in message, "tags are not echoed"
    message = expect_error("InvalidInputException", p.untag_resource, RESERVED, "at 'tagKeys.2.member'",
                           resourceArn=w.group_arn, tagKeys=["team", "aws:createdBy"])
    assert message.startswith("1 validation error detected"), message
    assert snapshot(p) == before, "a refused request changed nothing"
    assert ok(p.list_tags_for_resource(resourceArn=w.group_arn))["tags"] == [{"tagKey": "team", "tagValue": "recs"}]
    assert not list(out.iterdir())
    # Keys that only contain "aws" are fine.
    ok(p.tag_resource(resourceArn=w.group_arn, tags=[{"tagKey": "aws", "tagValue": "my:aws:value"}]))
    ok(p.untag_resource(resourceArn=w.group_arn, tagKeys=["aws"]))


# --------------------------------------------------------------------------------------------------------------------
# CreateDatasetGroup: roleArn with kmsKeyArn
# --------------------------------------------------------------------------------------------------------------------


def test_a_kms_key_and_its_role_come_together(server_factory, personalize):
    server = server_factory(args=NO_DEFAULTS)
    p = personalize(server.endpoint)
    for members, missing in [({"roleArn": ROLE_ARN}, "kmsKeyArn"), ({"kmsKeyArn": KMS_KEY_ARN}, "roleArn")]:
        message = expect_error("InvalidInputException", p.create_dataset_group, "roleArn", "kmsKeyArn",
                               f"{missing} is missing", name="half", **members)
        assert "together" in message, message
    assert ok(p.list_dataset_groups())["datasetGroups"] == []
    arn = ok(p.create_dataset_group(name="encrypted", roleArn=ROLE_ARN, kmsKeyArn=KMS_KEY_ARN))["datasetGroupArn"]
    group = ok(p.describe_dataset_group(datasetGroupArn=arn))["datasetGroup"]
    assert (group["roleArn"], group["kmsKeyArn"]) == (ROLE_ARN, KMS_KEY_ARN)
    plain = ok(p.describe_dataset_group(datasetGroupArn=ok(p.create_dataset_group(name="plain"))["datasetGroupArn"]))
    assert "roleArn" not in plain["datasetGroup"] and "kmsKeyArn" not in plain["datasetGroup"]


# --------------------------------------------------------------------------------------------------------------------
# One violation per missing member
# --------------------------------------------------------------------------------------------------------------------


def test_a_missing_role_arn_is_one_violation(server_factory, personalize):
    server = server_factory()
    p = personalize(server.endpoint)
    out = new_account_dir()
    message = expect_error("InvalidInputException", p.create_dataset_export_job, jobName="j",
                           datasetArn=f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset/default/INTERACTIONS",
                           jobOutput={"s3DataDestination": {"path": f"file://{out}/"}})
    assert message == ("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: "
                       "Member must not be null"), message
    message = expect_error("InvalidInputException", p.create_dataset_group)
    assert message == ("1 validation error detected: Value null at 'name' failed to satisfy constraint: "
                       "Member must not be null"), message


# --------------------------------------------------------------------------------------------------------------------
# ResourceAlreadyExistsException names the holder
# --------------------------------------------------------------------------------------------------------------------


def test_already_exists_names_the_resource_that_holds_the_name(server_factory, personalize, tmp_path):
    server = server_factory(args=NO_DEFAULTS)
    home = tmp_path / "eu-home"
    home.mkdir()
    east, west = personalize(server.endpoint), personalize(server.endpoint, in_region("eu-west-1", home))
    eu = f"arn:aws:personalize:eu-west-1:{ACCOUNT}:"
    us = f"arn:aws:personalize:us-east-1:{ACCOUNT}:"
    schema = ok(west.create_schema(name="held", schema=CUSTOM_SCHEMA))["schemaArn"]
    group = ok(west.create_dataset_group(name="held"))["datasetGroupArn"]
    dataset = ok(west.create_dataset(name="held", schemaArn=schema, datasetGroupArn=group,
                                     datasetType="Interactions"))["datasetArn"]
    tracker = ok(west.create_event_tracker(name="held", datasetGroupArn=group))["eventTrackerArn"]
    assert (schema, group, dataset) == (eu + "schema/held", eu + "dataset-group/held", eu + "dataset/held/INTERACTIONS")
    out = new_account_dir()
    job = ok(west.create_dataset_export_job(jobName="held", datasetArn=dataset, roleArn=ROLE_ARN,
                                            jobOutput={"s3DataDestination": {"path": f"file://{out}/"}}))
    job = job["datasetExportJobArn"]
    assert job == eu + "dataset-export-job/held"
    wait_job(west, job)
    before = snapshot(east)
    for call, kwargs, holder in [
        (east.create_schema, {"name": "held", "schema": CUSTOM_SCHEMA}, schema),
        (east.create_dataset_group, {"name": "held"}, group),
        (east.create_dataset, {"name": "again", "schemaArn": schema, "datasetGroupArn": group,
                               "datasetType": "Interactions"}, dataset),
        (east.create_event_tracker, {"name": "again", "datasetGroupArn": group}, tracker),
        (east.create_dataset_export_job, {"jobName": "held", "datasetArn": dataset, "roleArn": ROLE_ARN,
                                          "jobOutput": {"s3DataDestination": {"path": f"file://{out}/"}}}, job),
    ]:
        message = expect_error("ResourceAlreadyExistsException", call, holder, **kwargs)
        assert us not in message, f"names an ARN that does not exist: {message}"
    assert snapshot(east) == before
    # In the caller's own region, the holder is the ARN it would have made.
    message = expect_error("ResourceAlreadyExistsException", west.create_schema, schema, name="held",
                           schema=CUSTOM_SCHEMA)
    assert message == f"A schema named held already exists ({schema})", message


# --------------------------------------------------------------------------------------------------------------------
# Export jobs per account
# --------------------------------------------------------------------------------------------------------------------


def create_job(p, name: str, dataset_arn: str, out: Path) -> str:
    return ok(p.create_dataset_export_job(jobName=name, datasetArn=dataset_arn, roleArn=ROLE_ARN,
                                          jobOutput={"s3DataDestination": {"path": f"file://{out}/"}}))[
        "datasetExportJobArn"]


def statuses(p) -> dict[str, str]:
    return {j["jobName"]: j["status"] for j in list_all(p, "list_dataset_export_jobs", "datasetExportJobs")}


def test_at_most_five_export_jobs_run_per_account(server_factory, personalize, events, tmp_path):
    gate = tmp_path / "export-gate"
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\naccess_key_id = "{OTHER_KEY_ID}"\nsecret_access_key = "{OTHER_SECRET}"\n'
                    f'account_id = "{OTHER_ACCOUNT}"\n')
    server = server_factory(args=("--credentials-file", str(keys)), env={"INTERLOG_TEST_EXPORT_JOB_GATE": str(gate)})
    p, ev = personalize(server.endpoint), events(server.endpoint)
    w = make_pipeline(p, "busy")
    put(ev, w.tracking_id, [event("busy-1", 1700000000, "i1", {"numberOfRatings": 1})])
    out = new_account_dir()
    start_held_job(p, "job-0", w.dataset_arn, out, gate)
    for i in range(1, 5):
        create_job(p, f"job-{i}", w.dataset_arn, out)
    assert set(statuses(p).values()) <= {"CREATE PENDING", "CREATE IN_PROGRESS"}, statuses(p)
    before = snapshot(p)
    sixth = out / "sixth"
    message = expect_error("LimitExceededException", p.create_dataset_export_job, "5", jobName="job-5",
                           datasetArn=w.dataset_arn, roleArn=ROLE_ARN,
                           jobOutput={"s3DataDestination": {"path": f"file://{sixth}/"}})
    assert "quota" in message, message
    assert snapshot(p) == before, "the refused job stored nothing"
    assert not sixth.exists(), "nor made its destination"
    expect_error("ResourceNotFoundException", p.describe_dataset_export_job,
                 datasetExportJobArn=f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-export-job/job-5")

    # The quota is per account: another account still has all five.
    home = tmp_path / "other-home"
    home.mkdir()
    other = personalize(server.endpoint, _session(OTHER_KEY_ID, OTHER_SECRET, home))
    o = make_pipeline(other, "theirs", account=OTHER_ACCOUNT)
    create_job(other, "theirs-0", o.dataset_arn, new_account_dir(OTHER_ACCOUNT))

    # Ended jobs leave room.
    gate.unlink()
    for name in [f"job-{i}" for i in range(5)]:
        job, _ = wait_job(p, f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-export-job/{name}")
        assert job["status"] == "ACTIVE", job
    job, _ = export_job(p, w.dataset_arn, "job-5", out)
    assert job["status"] == "ACTIVE", job


def racing_creates(clients, dataset_arn: str, out: Path, n: int) -> dict[int, str]:
    results: dict[int, str] = {}

    def create(i):
        try:
            create_job(clients[i % len(clients)], f"race-{i}", dataset_arn, out)
            results[i] = "created"
        except ClientError as e:
            results[i] = e.response["Error"]["Code"]

    threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_the_export_job_quota_holds_under_concurrent_creates(server_factory, personalize, tmp_path):
    gate = tmp_path / "export-gate"
    gate.write_text("held")
    server = server_factory(env={"INTERLOG_TEST_EXPORT_JOB_GATE": str(gate)})
    clients = [personalize(server.endpoint) for _ in range(10)]
    w = make_pipeline(clients[0], "race")
    results = racing_creates(clients, w.dataset_arn, new_account_dir(), 10)
    assert sorted(results.values()) == ["LimitExceededException"] * 5 + ["created"] * 5, results
    assert len(statuses(clients[0])) == 5
    gate.unlink()


@requires_postgres("two nodes of one deployment")
def test_the_export_job_quota_holds_across_nodes(server_factory, personalize, tmp_path):
    gate = tmp_path / "export-gate"
    gate.write_text("held")
    env = {"INTERLOG_TEST_EXPORT_JOB_GATE": str(gate)}
    first = server_factory(env=env)
    second = server_factory(env=env, node_of=first)
    clients = [personalize(s.endpoint) for s in (first, second) for _ in range(5)]
    w = make_pipeline(clients[0], "nodes")
    results = racing_creates(clients, w.dataset_arn, new_account_dir(), 12)
    assert sorted(results.values()) == ["LimitExceededException"] * 7 + ["created"] * 5, results
    assert len(statuses(clients[5])) == 5
    gate.unlink()
