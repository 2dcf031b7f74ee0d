"""`media-pipeline unpurge` on a versioned bucket (moto), and `health`'s purge_undo row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.catalog import Catalog
from media_pipeline.cli import main
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    EDITOR,
    add_member,
    catalog_files,
    cli_env,
    object_keys,
    row,
)

KEY = "blog/gone.txt"


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return cli_env(settings)


def purged(env: dict[str, str], settings: Settings, s3_client: Any, versioned: bool) -> str:
    if versioned:
        s3_client.put_bucket_versioning(Bucket=settings.bucket,
                                        VersioningConfiguration={"Status": "Enabled"})
    [media_id] = catalog_files(settings, s3_client, [KEY]).values()
    add_member(settings, "blog", EDITOR, "editor")
    assert run(env, "delete", media_id, "--user", EDITOR).exit_code == 0
    done = run(env, "purge")
    assert done.exit_code == 0, done.output
    assert KEY not in object_keys(s3_client, settings)
    return media_id


def test_unpurge_brings_the_file_back_on_a_versioned_bucket(
        env: dict[str, str], settings: Settings, s3_client: Any) -> None:
    media_id = purged(env, settings, s3_client, versioned=True)
    etag = row(settings, media_id)["etag"]
    not_admin = run(env, "unpurge", media_id, "--user", EDITOR)
    assert not_admin.exit_code == 1 and "needs admin" in not_admin.output
    back = run(env, "unpurge", media_id, "--user", ADMIN, "--json")
    assert back.exit_code == 0, back.output
    assert len(json.loads(back.output)["removed_markers"]) == 1
    head = s3_client.head_object(Bucket=settings.bucket, Key=KEY)
    assert head["ETag"].strip('"') == etag.strip('"')
    state = row(settings, media_id)
    assert state["status"] == "active" and not state["is_deleted"]
    with Catalog.open(settings.catalog_location) as catalog:
        [(actor,)] = catalog.con.execute(
            "SELECT actor FROM audit_log WHERE action = 'unpurge'").fetchall()
    assert actor == ADMIN
    again = run(env, "unpurge", media_id, "--user", ADMIN)
    assert again.exit_code == 1 and "is not purged" in again.output


def test_unpurge_refuses_after_a_new_upload_at_the_key(
        env: dict[str, str], settings: Settings, s3_client: Any) -> None:
    media_id = purged(env, settings, s3_client, versioned=True)
    s3_client.put_object(Bucket=settings.bucket, Key=KEY, Body=b"another file")
    refused = run(env, "unpurge", media_id, "--user", ADMIN)
    assert refused.exit_code == 1 and "uploaded at blog/gone.txt since" in refused.output
    body = s3_client.get_object(Bucket=settings.bucket, Key=KEY)["Body"].read()
    assert body == b"another file"


def test_unpurge_names_a_newer_upload_even_when_it_was_deleted_again(
        env: dict[str, str], settings: Settings, s3_client: Any) -> None:
    media_id = purged(env, settings, s3_client, versioned=True)
    s3_client.put_object(Bucket=settings.bucket, Key=KEY, Body=b"another file")
    s3_client.delete_object(Bucket=settings.bucket, Key=KEY)  # a marker above it again
    before = s3_client.list_object_versions(Bucket=settings.bucket, Prefix=KEY)
    refused = run(env, "unpurge", media_id, "--user", ADMIN)
    assert refused.exit_code == 1
    assert "a newer object was uploaded at blog/gone.txt since the purge" in refused.output
    after = s3_client.list_object_versions(Bucket=settings.bucket, Prefix=KEY)
    assert len(after["DeleteMarkers"]) == len(before["DeleteMarkers"]) == 2  # nothing changed
    assert row(settings, media_id)["status"] == "purged"


def test_unpurge_refuses_when_the_purge_was_permanent(
        env: dict[str, str], settings: Settings, s3_client: Any) -> None:
    media_id = purged(env, settings, s3_client, versioned=False)
    refused = run(env, "unpurge", media_id, "--user", ADMIN)
    assert refused.exit_code == 1 and "not versioned" in refused.output
    health = run(env, "health", "--json")
    [undo] = [c for c in json.loads(health.output)["checks"] if c["check"] == "purge_undo"]
    assert undo["warn"] and "purges are permanent" in undo["detail"]


def test_unpurge_refuses_after_a_purge_of_every_version(
        env: dict[str, str], settings: Settings, s3_client: Any) -> None:
    env["MEDIA_PIPELINE_PURGE_VERSIONS"] = "all"
    media_id = purged(env, settings, s3_client, versioned=True)
    refused = run(env, "unpurge", media_id, "--user", ADMIN)
    assert refused.exit_code == 1 and "PURGE_VERSIONS=all" in refused.output
    health = run(env, "health", "--json")
    [undo] = [c for c in json.loads(health.output)["checks"] if c["check"] == "purge_undo"]
    assert undo["warn"] and undo["versioning"] == "Enabled"
