"""Issue 11, items 1, 6 and 7, against the embedded S3 server and a real catalog: nobody claims a
namespace that already holds files, reads check who asks, and deduplication never reveals a
file the uploader may not see."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from media_pipeline.access import PermissionDenied
from media_pipeline.catalog import Catalog
from media_pipeline.cli import main as cli
from media_pipeline.errors import UnknownMedia
from media_pipeline.library import MediaLibrary
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.stages import (
    commit_inventory,
    fingerprint_pending,
    take_inventory,
)
from media_pipeline.storage.s3 import grants_are_public
from media_pipeline_tests.app_fixtures import audit_rows, bucket_keys, png_bytes
from media_pipeline_tests.fixtures_s3 import env_for

PAYROLL = "hr/payroll-2024.png"


def namespace_rows(settings: Settings) -> list[str]:
    with Catalog.open(settings.catalog_location) as catalog:
        return [r[0] for r in catalog.con.execute("SELECT namespace FROM namespaces").fetchall()]


@pytest.fixture
def discovered(settings: Settings, s3_client: Any) -> Settings:
    """The inventory has catalogued hr/payroll-2024.png and a top-level logo.png."""
    for key in (PAYROLL, "logo.png"):
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=png_bytes(seed=len(key)),
                             ContentType="image/png")
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    fingerprint_pending(settings, s3_client)
    return replace(settings, admins=frozenset({"ops"}))


def test_nobody_claims_a_namespace_that_holds_files(discovered: Settings,
                                                    s3_client: Any) -> None:
    settings = discovered
    lib = MediaLibrary(settings, s3_client)
    payroll = media_id_for(settings.bucket, PAYROLL)
    for name in ("hr", "default"):
        with pytest.raises(PermissionDenied, match="MEDIA_PIPELINE_ADMINS"):
            lib.create_namespace(name, "mallory")
    assert namespace_rows(settings) == []
    # Without the namespace, mallory has no role: no URL, no public ACL, no delete; to her the
    # file does not exist.
    for attempt in (lambda: lib.url(payroll, "mallory"),
                    lambda: lib.set_visibility(payroll, "public", "mallory"),
                    lambda: lib.delete(payroll, "mallory", force=True),
                    lambda: lib.get_references(payroll, "mallory")):
        with pytest.raises(UnknownMedia, match="no media file with id"):
            attempt()
    public_url = lib.storage.public_url(PAYROLL)
    assert httpx.get(public_url).status_code == 403
    acl = s3_client.get_object_acl(Bucket=settings.bucket, Key=PAYROLL)
    assert not grants_are_public(acl["Grants"])
    with Catalog.open(settings.catalog_location) as catalog:
        row = catalog.application.media_row(payroll)
    assert row is not None and row["status"] == "active" and not row["is_deleted"]
    assert "namespace.create" not in [a["action"] for a in audit_rows(settings)]

    # A namespace only the bucket knows (not catalogued yet) is refused too.
    s3_client.put_object(Bucket=settings.bucket, Key="legal/contract.pdf", Body=b"%PDF-1.4")
    with pytest.raises(PermissionDenied, match="already holds files"):
        lib.create_namespace("legal", "mallory")

    # The global admin creates it and hands it over; an empty new namespace is anyone's.
    lib.create_namespace("hr", "ops")
    lib.add_member("hr", "alice", "admin", "ops")
    assert lib.url(payroll, "alice").startswith(settings.endpoint_url or "")
    assert lib.create_namespace("mallory-notes", "mallory")["created_by"] == "mallory"


def test_the_cli_refuses_a_claim_in_one_line(discovered: Settings) -> None:
    env = {**env_for(discovered), "MEDIA_PIPELINE_ADMINS": "ops"}
    result = CliRunner().invoke(cli, ["namespaces", "create", "hr", "--user", "mallory"],
                                env=env)
    assert result.exit_code == 1
    assert result.output.startswith("error:") and result.output.count("\n") == 1
    assert "MEDIA_PIPELINE_ADMINS" in result.output
    assert namespace_rows(discovered) == []


@pytest.fixture
def blog(settings: Settings, s3_client: Any) -> MediaLibrary:
    lib = MediaLibrary(settings, s3_client)
    lib.create_namespace("blog", "alice")
    for user, role in (("ed", "editor"), ("eve", "editor"), ("vic", "viewer")):
        lib.add_member("blog", user, role, "alice")
    return lib


def test_references_are_read_only_by_those_who_may_see_the_file(
        blog: MediaLibrary, settings: Settings) -> None:
    private = blog.upload("blog", io.BytesIO(png_bytes(seed=5)), "salary.png", "ed",
                          visibility="private")
    blog.add_reference(private.media_id, "webpage", "secret-launch", "ed")
    assert blog.get_references(private.media_id, "ed") == {"webpage": ["secret-launch"]}
    assert blog.get_references(private.media_id, "alice") == {"webpage": ["secret-launch"]}
    for user in ("eve", "vic", "outsider"):
        with pytest.raises(UnknownMedia):
            blog.get_references(private.media_id, user)
    # eve may delete by role, and learns only that the file is used, not where.
    outcome = blog.delete_outcome(private.media_id, "eve")
    assert outcome.refused and outcome.references == {} and outcome.hidden_references == 1
    assert "secret-launch" not in repr(outcome)


def test_references_are_changed_only_by_those_who_may_see_the_file(
        blog: MediaLibrary, settings: Settings) -> None:
    """Hostile review of issue 11, finding 5: eve (editor, not the owner) probed where ed's
    private file is used ("already recorded" vs "added"), stripped its reference and deleted
    it while webpage 42 still used it."""
    private = blog.upload("blog", io.BytesIO(png_bytes(seed=6)), "salary.png", "ed",
                          visibility="private")
    blog.add_reference(private.media_id, "webpage", "42", "ed")
    refusals = []
    for attempt in (lambda: blog.add_reference(private.media_id, "webpage", "42", "eve"),
                    lambda: blog.add_reference(private.media_id, "webpage", "43", "eve"),
                    lambda: blog.remove_reference(private.media_id, "webpage", "42", "eve"),
                    lambda: blog.remove_reference(private.media_id, "webpage", "99", "eve")):
        with pytest.raises(UnknownMedia) as refused:
            attempt()
        refusals.append(str(refused.value))
    # The same refusal whether or not the reference exists: nothing to probe.
    assert len(set(refusals)) == 1, refusals
    assert blog.get_references(private.media_id, "ed") == {"webpage": ["42"]}
    outcome = blog.delete_outcome(private.media_id, "eve")
    assert outcome.refused and not outcome.deleted
    assert not blog.get(private.media_id, "ed").is_deleted
    # Who may see the file still may: the owner and the namespace's admin.
    assert blog.add_reference(private.media_id, "webpage", "43", "ed") is True
    assert blog.remove_reference(private.media_id, "webpage", "43", "alice") is True


def test_dedup_never_returns_another_owners_private_file(
        blog: MediaLibrary, settings: Settings, s3_client: Any) -> None:
    data = png_bytes(seed=9)
    mine = blog.upload("blog", io.BytesIO(data), "Q3 layoffs.png", "ed", visibility="private")
    theirs = blog.upload("blog", io.BytesIO(data), "Q3 layoffs.png", "eve")
    assert theirs.owner == "eve" and not theirs.deduplicated
    assert theirs.media_id != mine.media_id and theirs.key != mine.key
    shown = json.dumps(theirs.to_dict(), default=str)
    assert mine.key not in shown and mine.media_id not in shown
    eve_audit = json.dumps([a for a in audit_rows(settings) if a["actor"] == "eve"])
    assert mine.key not in eve_audit and mine.media_id not in eve_audit
    assert bucket_keys(s3_client, settings.bucket) == sorted([mine.key, theirs.key])

    again = blog.upload("blog", io.BytesIO(data), "copy.png", "eve")
    assert again.deduplicated and again.media_id == theirs.media_id
    # Once ed's copy is internal, eve may see it and the oldest copy is returned.
    blog.set_visibility(mine.media_id, "internal", "ed")
    assert blog.upload("blog", io.BytesIO(data), "x.png", "eve").media_id == mine.media_id
    assert blog.upload("blog", io.BytesIO(data), "y.png", "alice").media_id == mine.media_id


def odd_spellings(media_id: str) -> list[str]:
    return [media_id.upper(), "{" + media_id + "}", media_id.replace("-", ""),
            "urn:uuid:" + media_id, " " + media_id, media_id + "\n", media_id[:-1],
            "not-a-uuid", "' OR 1=1 --"]


def test_odd_spellings_of_a_private_files_id_give_others_nothing(
        blog: MediaLibrary, settings: Settings) -> None:
    """Hostile review of fast-calls: the one-query file context casts the id in SQL, the
    checks parse it in Python; no spelling gets another user past them."""
    private = blog.upload("blog", io.BytesIO(png_bytes(seed=7)), "salary.png", "ed",
                          visibility="private")
    blog.add_reference(private.media_id, "webpage", "42", "ed")
    blog.create_namespace("shop", "mallory")
    for spelling in odd_spellings(private.media_id):
        for user in ("eve", "vic", "outsider", "mallory"):
            attempts: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
                (blog.add_reference, (spelling, "webpage", "43", user), {}),
                (blog.remove_reference, (spelling, "webpage", "42", user), {}),
                (blog.get_references, (spelling, user), {}),
                (blog.url, (spelling, user), {}),
                (blog.delete, (spelling, user), {"force": True})]
            if user != "eve":  # deleting and restoring are by role: eve is an editor
                attempts += [(blog.delete, (spelling, user), {}),
                             (blog.restore, (spelling, user), {})]
            for method, args, kwargs in attempts:
                with pytest.raises((PermissionDenied, UnknownMedia)):
                    method(*args, **kwargs)
    assert blog.get_references(private.media_id, "ed") == {"webpage": ["42"]}
    assert not blog.get(private.media_id, "ed").is_deleted
