"""Issue 11, items 2 and 3, against the embedded S3 server: an SVG whose script is built by XML
entities is refused by uploads and quarantined by the pipeline with the same reason, and a
quarantined object is no longer served by a public ACL someone left on it."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from media_pipeline.catalog import Catalog
from media_pipeline.cli import main as cli
from media_pipeline.library import MediaLibrary, ValidationFailed
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.stages import ingest_keys
from media_pipeline.storage.s3 import ACLS_DISABLED, grants_are_public
from media_pipeline_tests.app_fixtures import (
    ENTITY_SCRIPT_SVG,
    SCRIPT_SVG,
    SPLIT_JAVASCRIPT_SVG,
    audit_rows,
    bucket_keys,
    png_bytes,
)
from media_pipeline_tests.fixtures_s3 import env_for

DOCTYPE = "SVG has a DOCTYPE (DTDs and entities are refused)"


def media(settings: Settings, key: str) -> dict[str, Any]:
    with Catalog.open(settings.catalog_location) as catalog:
        row = catalog.application.media_row(media_id_for(settings.bucket, key))
    assert row is not None
    return row


def anonymous_get(settings: Settings, key: str) -> int:
    url = f"{settings.endpoint_url}/{settings.bucket}/{key}"
    return httpx.get(url).status_code


@pytest.mark.parametrize("svg", [ENTITY_SCRIPT_SVG, SPLIT_JAVASCRIPT_SVG],
                         ids=["parameter-entity-script", "split-javascript-url"])
def test_entity_built_svg_is_refused_on_upload_and_quarantined_in_the_pipeline(
        settings: Settings, s3_client: Any, svg: bytes) -> None:
    lib = MediaLibrary(settings, s3_client)
    lib.create_namespace("site", "alice")
    with pytest.raises(ValidationFailed) as refused:
        lib.upload("site", io.BytesIO(svg), "logo.svg", "alice")
    assert refused.value.reason == DOCTYPE
    assert bucket_keys(s3_client, settings.bucket) == []
    assert [a["details"]["reason"] for a in audit_rows(settings)
            if a["action"] == "upload.refused"] == [DOCTYPE]

    # The same bytes put straight into the bucket: the pipeline applies the same rule.
    s3_client.put_object(Bucket=settings.bucket, Key="site/logo.svg", Body=svg,
                         ContentType="image/svg+xml")
    result = ingest_keys(settings, ["site/logo.svg"], s3_client)
    assert result.quarantined == 1
    row = media(settings, "site/logo.svg")
    assert (row["status"], row["quarantine_reason"]) == ("quarantined", DOCTYPE)


def test_quarantine_closes_a_public_acl(settings: Settings, s3_client: Any) -> None:
    key = "site/icons/evil.svg"
    s3_client.put_object(Bucket=settings.bucket, Key=key, Body=SCRIPT_SVG,
                         ContentType="image/svg+xml", ACL="public-read")
    assert anonymous_get(settings, key) == 200  # uploaded elsewhere, public

    result = ingest_keys(settings, [key], s3_client)
    assert (result.quarantined, result.public_closed) == (1, 1)
    row = media(settings, key)
    assert row["status"] == "quarantined" and row["visibility"] == "private"
    assert row["metadata"]["public_access"] == "closed"
    assert anonymous_get(settings, key) == 403
    acl = s3_client.get_object_acl(Bucket=settings.bucket, Key=key)
    assert not grants_are_public(acl["Grants"])
    logged = [a for a in audit_rows(settings) if a["action"] == "quarantine"]
    assert [(a["actor"], a["media_id"]) for a in logged] == [
        ("system", media_id_for(settings.bucket, key))]
    assert logged[0]["details"] == {"reason": "SVG contains <script>", "key": key,
                                    "public_access": "closed"}


def test_a_bucket_without_acls_is_reported(settings: Settings, s3_client: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    key = "site/icons/evil.svg"
    s3_client.put_object(Bucket=settings.bucket, Key=key, Body=SCRIPT_SVG,
                         ContentType="image/svg+xml", ACL="public-read")
    s3_client.put_bucket_ownership_controls(
        Bucket=settings.bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    with caplog.at_level(logging.WARNING, logger="media_pipeline.fingerprint.reader"):
        ingest_keys(settings, [key], s3_client)
    assert media(settings, key)["metadata"]["public_access"] == ACLS_DISABLED
    assert any(key in r.getMessage() and "may still be public" in r.getMessage()
               for r in caplog.records)


def test_health_lists_objects_public_in_s3_but_not_in_the_catalog(
        settings: Settings, s3_client: Any) -> None:
    keys = ["site/a.png", "site/b.png"]
    for i, key in enumerate(keys):
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=png_bytes(seed=i),
                             ContentType="image/png")
    ingest_keys(settings, keys, s3_client)
    env = env_for(settings)
    ok = CliRunner().invoke(cli, ["health", "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    # Made public behind the catalog's back.
    s3_client.put_object_acl(Bucket=settings.bucket, Key="site/b.png", ACL="public-read")
    bad = CliRunner().invoke(cli, ["health", "--json"], env=env)
    assert bad.exit_code == 1
    checks = {c["check"]: c for c in json.loads(bad.output)["checks"]}
    assert not checks["public_exposure"]["passed"]
    assert "site/b.png" in checks["public_exposure"]["detail"]
    assert "site/a.png" not in checks["public_exposure"]["detail"]


def _png_with_script() -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("c", "<script>alert(document.domain)</script>")
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


PI_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
          b"<?x > <img src=x onerror=alert(document.domain)> ?><rect width=\"9\" height=\"9\"/>"
          b"</svg>")


@pytest.mark.parametrize(
    ("key", "body", "declared", "reason"),
    [
        # Hostile review of issue 11, finding 2: objects put into the bucket outside the app
        # with a Content-Type the public URL would serve them with.
        ("web/avatar.png", _png_with_script(), "text/html",
         "declared Content-Type text/html is active content (content is image/png)"),
        ("web/long.txt", b"notes " * 1600 + b"\n<script>alert(document.domain)</script>\n",
         "text/html; charset=utf-8",
         "declared Content-Type text/html is active content (content is text/plain)"),
        ("web/pi.svg", PI_SVG, "text/html",
         "declared Content-Type text/html is active content (content is image/svg+xml)"),
        ("web/x.png", png_bytes(seed=3), "application/xhtml+xml",
         "declared Content-Type application/xhtml+xml is active content (content is image/png)"),
        ("web/y.png", png_bytes(seed=4), "text/plain",
         "declared Content-Type text/plain but content is image/png"),
        ("web/z.png", png_bytes(seed=8), "video/mp4",
         "declared Content-Type video/mp4 but content is image/png"),
        # Agreeing in kind, or undeclared (served as a download): active.
        ("web/ok.png", png_bytes(seed=5), "image/png", None),
        ("web/ok2.png", png_bytes(seed=6), "image/jpeg", None),
        ("web/ok3.png", png_bytes(seed=7), "binary/octet-stream", None),
        ("web/ok.svg", PI_SVG, "image/svg+xml", None),
    ],
)
def test_a_declared_content_type_that_would_run_is_quarantined(
        settings: Settings, s3_client: Any, key: str, body: bytes, declared: str,
        reason: str | None) -> None:
    s3_client.put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType=declared,
                         ACL="public-read")
    ingest_keys(settings, [key], s3_client)
    row = media(settings, key)
    assert (row["status"], row["quarantine_reason"]) == (
        ("quarantined", reason) if reason else ("active", None))
    assert anonymous_get(settings, key) == (403 if reason else 200)


def test_signed_urls_serve_the_checked_type_not_the_stored_one(
        settings: Settings, s3_client: Any) -> None:
    lib = MediaLibrary(settings, s3_client)
    lib.create_namespace("web", "alice")
    png = lib.upload("web", io.BytesIO(_png_with_script()), "avatar.png", "alice")
    assert png.content_type == "image/png"
    notes = b"notes " * 1600 + b"\n<script>alert(1)</script>\n"  # sniffed text/plain
    text = lib.upload("web", io.BytesIO(notes), "notes.txt", "alice")
    # Someone with bucket access rewrites the stored Content-Type after the check.
    for media_file in (png, text):
        s3_client.copy_object(Bucket=settings.bucket, Key=media_file.key,
                              CopySource={"Bucket": settings.bucket, "Key": media_file.key},
                              ContentType="text/html", MetadataDirective="REPLACE")
    assert s3_client.head_object(Bucket=settings.bucket, Key=png.key)["ContentType"] == (
        "text/html")
    for media_file, served in ((png, "image/png"), (text, "text/plain")):
        answer = httpx.get(lib.url(media_file.media_id, "alice"))
        assert answer.status_code == 200
        assert answer.headers["content-type"] == served
        assert "content-disposition" not in answer.headers  # shown, not downloaded
    downloaded = httpx.get(lib.url(png.media_id, "alice", download=True))
    assert downloaded.headers["content-type"] == "image/png"
    assert downloaded.headers["content-disposition"].startswith("attachment;")
    # A type browsers would not simply display is served as an attachment.
    answer = httpx.get(lib.storage.generate_signed_url(text.key, 60,
                                                       content_type="application/json"))
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"] == "attachment"
