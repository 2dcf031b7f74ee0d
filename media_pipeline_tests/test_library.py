"""MediaLibrary against the moto S3 server and a real DuckDB catalog: uploads (valid, refused for
each validation reason, duplicate), URLs per visibility and status, ACLs, tags, collections,
audit rows and secrets."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_pipeline.access import PermissionDenied
from media_pipeline.catalog import Catalog
from media_pipeline.catalog.application import ApplicationStore
from media_pipeline.library import (
    MediaLibrary,
    MediaUnavailable,
    UnknownMedia,
    ValidationFailed,
)
from media_pipeline.settings import Settings
from media_pipeline.stages import (
    commit_inventory,
    fingerprint_pending,
    take_inventory,
)
from media_pipeline.stages.ingest import ingest_keys
from media_pipeline.storage.media_storage import S3MediaStorage
from media_pipeline_tests.app_fixtures import (
    CLEAN_SVG,
    SCRIPT_SVG,
    audit_rows,
    bucket_keys,
    catalog_counts,
    catalog_text,
    jpeg_bytes,
    pdf_bytes,
    png_bytes,
)


def make_library(settings: Settings, client: Any) -> MediaLibrary:
    lib = MediaLibrary(settings, client=client)
    lib.create_namespace("blog", "alice")
    lib.add_member("blog", "ed", "editor", "alice")
    lib.add_member("blog", "vic", "viewer", "alice")
    return lib


@pytest.fixture
def lib(settings: Settings, s3_client: Any) -> MediaLibrary:
    return make_library(settings, s3_client)


# -- uploads ---------------------------------------------------------------------------------------


def test_upload_stores_validates_and_registers_the_file(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    data = png_bytes()
    media = lib.upload("blog", io.BytesIO(data), "Holiday Photo.png", "ed")

    assert media.status == "active" and not media.deduplicated
    assert media.namespace == "blog" and media.key.startswith("blog/")
    assert media.content_type == "image/png" and media.file_size == len(data)
    assert (media.width, media.height) == (64, 48) and media.phash is not None
    assert media.owner == "ed" and media.visibility == "private"
    assert media.original_filename == "Holiday Photo.png"
    assert media.file_hash == hashlib.sha256(data).hexdigest()
    assert bucket_keys(s3_client, settings.bucket) == [media.key]
    head = s3_client.head_object(Bucket=settings.bucket, Key=media.key)
    assert head["ContentType"] == "image/png"
    assert head["ETag"].strip('"') == media.etag
    assert [(a["actor"], a["action"], a["media_id"]) for a in audit_rows(settings)][-1] == (
        "ed", "upload", media.media_id)


def test_upload_from_a_path_and_documents(lib: MediaLibrary, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes(3))
    media = lib.upload("blog", path, path.name, "alice", visibility="internal")
    assert media.content_type == "application/pdf" and media.page_count == 3
    assert media.visibility == "internal"
    svg = lib.upload("blog", io.BytesIO(CLEAN_SVG), "logo.svg", "alice")
    assert svg.content_type == "image/svg+xml" and (svg.width, svg.height) == (10, 20)


def test_a_later_inventory_sees_the_uploaded_file_unchanged(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    media = lib.upload("blog", io.BytesIO(jpeg_bytes()), "a.jpg", "ed")
    take_inventory(settings, s3_client)
    diff = commit_inventory(settings)
    assert (diff.new, diff.changed, diff.unchanged, diff.missing) == (0, 0, 1, 0)
    assert fingerprint_pending(settings, s3_client).objects == 0
    assert lib.get(media.media_id, "ed").status == "active"


@pytest.mark.parametrize(
    ("filename", "content", "overrides", "reason"),
    [
        ("empty.txt", b"", {}, "empty file"),
        ("big.txt", b"x" * 5000, {"max_file_size": 4096}, "over the 4.0 KiB limit"),
        # mtime=0: the same bytes (and test id) in every pytest-xdist worker
        ("archive.gz", gzip.compress(b"hello" * 100, mtime=0), {},
         "type application/gzip not allowed"),
        ("photo.jpg", png_bytes(), {}, "extension .jpg but content is image/png"),
        ("bomb.png", png_bytes(100, 100), {"max_image_pixels": 5000},
         "image has 10000 pixels (limit 5000)"),
        ("broken.png", png_bytes()[:200], {}, "corrupt image"),
        ("evil.svg", SCRIPT_SVG, {}, "SVG contains <script>"),
    ],
)
def test_invalid_uploads_are_refused_and_nothing_is_stored(
    settings: Settings, s3_client: Any, filename: str, content: bytes,
    overrides: dict[str, Any], reason: str,
) -> None:
    settings = replace(settings, **overrides)
    lib = make_library(settings, s3_client)
    before = catalog_counts(settings)
    with pytest.raises(ValidationFailed) as raised:
        lib.upload("blog", io.BytesIO(content), filename, "ed")
    assert reason in raised.value.reason
    assert isinstance(raised.value, ValueError)
    assert bucket_keys(s3_client, settings.bucket) == []
    after = catalog_counts(settings)
    assert after["media_files"] == before["media_files"] == 0
    assert after["audit_log"] == before["audit_log"] + 1
    refused = audit_rows(settings)[-1]
    assert refused["action"] == "upload.refused" and refused["actor"] == "ed"
    assert reason in refused["details"]["reason"]


def test_an_oversized_file_on_disk_is_refused_before_it_is_read(
    settings: Settings, s3_client: Any, tmp_path: Path
) -> None:
    lib = make_library(replace(settings, max_file_size=1024), s3_client)
    path = tmp_path / "large.txt"
    path.write_bytes(b"y" * 3000)
    with pytest.raises(ValidationFailed, match=r"size 2.9 KiB over the 1.0 KiB limit"):
        lib.upload("blog", path, path.name, "ed")
    assert bucket_keys(s3_client, settings.bucket) == []


def test_the_same_content_twice_is_stored_once(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    data = png_bytes(seed=3)
    first = lib.upload("blog", io.BytesIO(data), "one.png", "ed")
    second = lib.upload("blog", io.BytesIO(data), "copy of one.png", "alice")
    assert second.deduplicated and second.media_id == first.media_id
    assert second.key == first.key
    assert bucket_keys(s3_client, settings.bucket) == [first.key]
    assert catalog_counts(settings)["media_files"] == 1
    last = audit_rows(settings)[-1]
    assert (last["actor"], last["action"], last["media_id"]) == (
        "alice", "upload.deduplicated", first.media_id)
    # Another namespace is another team: its own copy.
    lib.create_namespace("shop", "ed")
    other = lib.upload("shop", io.BytesIO(data), "one.png", "ed")
    assert other.media_id != first.media_id and not other.deduplicated
    assert len(bucket_keys(s3_client, settings.bucket)) == 2


def test_an_upload_the_pipeline_catalogues_before_it_registers_keeps_its_owner(
    lib: MediaLibrary, settings: Settings, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sensor's run HEADs and fingerprints the new key between the upload's PUT and its
    # catalog write: the row is there, active, with the same content and no owner.
    real_upload = S3MediaStorage.upload

    def upload_then_ingest(self: S3MediaStorage, source: Any, key: str, **kwargs: Any) -> Any:
        result = real_upload(self, source, key, **kwargs)
        ingest_keys(settings, [key], client=s3_client)
        return result

    monkeypatch.setattr(S3MediaStorage, "upload", upload_then_ingest)
    # An admin of the namespace: the duplicate check sees every file of it, this one too.
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=21)), "race.png", "alice",
                       visibility="private")
    assert not media.deduplicated and media.owner == "alice"
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        row = catalog.application.media_row(media.media_id)
    assert row is not None and (row["owner"], row["visibility"], row["status"]) == (
        "alice", "private", "active")
    assert [r["action"] for r in audit_rows(settings)].count("upload") == 1


def test_a_catalog_failure_after_the_s3_write_leaves_no_orphan(
    lib: MediaLibrary, settings: Settings, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ApplicationStore, row: dict[str, Any]) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ApplicationStore, "register_upload", broken)
    before = catalog_counts(settings)
    with pytest.raises(RuntimeError, match="disk full"):
        lib.upload("blog", io.BytesIO(png_bytes(seed=9)), "x.png", "ed")
    assert bucket_keys(s3_client, settings.bucket) == []
    assert catalog_counts(settings) == before


def test_upload_into_an_unknown_namespace_or_with_a_bad_visibility(lib: MediaLibrary) -> None:
    with pytest.raises(UnknownMedia, match="no namespace 'nope'"):
        lib.upload("nope", io.BytesIO(b"hello"), "a.txt", "alice")
    with pytest.raises(ValueError, match="visibility must be"):
        lib.upload("blog", io.BytesIO(b"hello"), "a.txt", "alice", visibility="secret")


# -- URLs and visibility -------------------------------------------------------------------------


def anonymous_get(url: str) -> int:
    return httpx.get(url, timeout=10).status_code


def test_urls_follow_visibility_and_acls_follow_the_catalog(
    lib: MediaLibrary, settings: Settings
) -> None:
    public = lib.upload("blog", io.BytesIO(png_bytes(seed=1)), "p.png", "ed",
                        visibility="public")
    private = lib.upload("blog", io.BytesIO(png_bytes(seed=2)), "q.png", "ed")

    public_url = lib.url(public.media_id, None)
    assert "X-Amz-Signature" not in public_url
    assert anonymous_get(public_url) == 200
    # The private object's plain URL is refused by S3; its signed URL works.
    plain = lib.storage.public_url(private.key)
    assert anonymous_get(plain) == 403
    signed = lib.url(private.media_id, "ed", expires=60)
    assert "X-Amz-Signature" in signed and anonymous_get(signed) == 200
    with pytest.raises(UnknownMedia):  # to anonymous it does not exist
        lib.url(private.media_id, None)

    lib.set_visibility(private.media_id, "public", "ed")
    assert anonymous_get(plain) == 200
    lib.set_visibility(public.media_id, "internal", "alice")
    assert anonymous_get(public_url) == 403
    assert lib.get(public.media_id, "vic").visibility == "internal"
    assert "X-Amz-Signature" in lib.url(public.media_id, "vic")
    actions = [(a["actor"], a["action"], a["details"]) for a in audit_rows(settings)][-2:]
    assert actions == [("ed", "visibility.set", {"from": "private", "to": "public"}),
                       ("alice", "visibility.set", {"from": "public", "to": "internal"})]


def test_download_urls_name_the_original_file(lib: MediaLibrary) -> None:
    media = lib.upload("blog", io.BytesIO(pdf_bytes()), "Annual report.pdf", "ed",
                       visibility="public")
    url = lib.url(media.media_id, "vic", download=True)
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert "Annual" in response.headers.get("content-disposition", "")


def test_quarantined_files_never_get_a_url(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    s3_client.put_object(Bucket=settings.bucket, Key="blog/evil.svg", Body=SCRIPT_SVG,
                         ContentType="image/svg+xml")
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    from media_pipeline.records import media_id_for

    media_id = media_id_for(settings.bucket, "blog/evil.svg")
    pending = lib.get(media_id, "alice")
    assert pending.status == "pending"
    with pytest.raises(MediaUnavailable, match="not validated yet"):
        lib.url(media_id, "alice")
    fingerprint_pending(settings, s3_client)
    assert lib.get(media_id, "alice").status == "quarantined"
    with pytest.raises(MediaUnavailable, match="quarantined"):
        lib.url(media_id, "alice")
    # Anyone else learns nothing about the file, not even that it is quarantined.
    with pytest.raises(UnknownMedia):  # to anonymous it does not exist
        lib.url(media_id, None)
    with pytest.raises(MediaUnavailable):
        lib.set_visibility(media_id, "public", "alice")
    assert lib.get(media_id, "alice").visibility == "private"


def test_missing_and_unknown_files(lib: MediaLibrary, settings: Settings, s3_client: Any) -> None:
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=4)), "gone.png", "ed",
                       visibility="public")
    s3_client.delete_object(Bucket=settings.bucket, Key=media.key)
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    with pytest.raises(MediaUnavailable, match="missing"):
        lib.url(media.media_id, "ed")
    with pytest.raises(UnknownMedia):
        lib.url(str(uuid.uuid4()), "ed")
    with pytest.raises(UnknownMedia, match="not a media id"):
        lib.url("../../etc/passwd", "ed")
    assert isinstance(UnknownMedia("x"), LookupError)


def test_signed_url_expiry_is_bounded(lib: MediaLibrary) -> None:
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=5)), "e.png", "ed")
    with pytest.raises(ValueError):
        lib.url(media.media_id, "ed", expires=8 * 24 * 3600)


def test_presign_upload_checks_type_and_size(lib: MediaLibrary, settings: Settings) -> None:
    form = lib.presign_upload("blog", "photo.png", "image/png", 1234, "ed", expires=600)
    assert form["method"] == "POST" and form["key"].startswith("blog/")
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1234] in conditions
    assert ["starts-with", "$key", "blog/"] in conditions
    assert {"Content-Type": "image/png"} in conditions or \
        ["eq", "$Content-Type", "image/png"] in conditions
    posted = httpx.post(form["url"], data=form["fields"],
                        files={"file": ("photo.png", png_bytes(seed=6), "image/png")}, timeout=10)
    assert posted.status_code in (200, 201, 204), posted.text
    result = lib.presign_upload("blog", "photo.png", "image/png", 1234, "ed", expires=600,
                                method="PUT")
    assert result["method"] == "PUT" and result["key"].startswith("blog/")
    assert result["headers"]["Content-Type"] == "image/png"
    assert result["headers"]["Content-Length"] == "1234"
    put = httpx.put(result["url"], content=png_bytes(seed=6)[:1234].ljust(1234, b"\0"),
                    headers=result["headers"], timeout=10)
    assert put.status_code == 200
    last = audit_rows(settings)[-1]
    assert (last["actor"], last["action"], last["details"]["key"]) == (
        "ed", "upload.presigned", result["key"])
    with pytest.raises(ValueError, match="not allowed"):
        lib.presign_upload("blog", "x.exe", "application/x-msdownload", 10, "ed")
    with pytest.raises(ValueError, match="extension .png but content is image/jpeg"):
        lib.presign_upload("blog", "x.png", "image/jpeg", 10, "ed")
    with pytest.raises(ValueError, match="over the"):
        lib.presign_upload("blog", "x.png", "image/png", settings.max_file_size + 1, "ed")
    with pytest.raises(ValueError, match="positive"):
        lib.presign_upload("blog", "x.png", "image/png", 0, "ed")


# -- tags ------------------------------------------------------------------------------------------


def test_manual_tags_are_namespaced_and_audited(lib: MediaLibrary, settings: Settings) -> None:
    a = lib.upload("blog", io.BytesIO(png_bytes(seed=7)), "a.png", "ed", visibility="internal")
    b = lib.upload("blog", io.BytesIO(png_bytes(seed=8)), "b.png", "ed", visibility="internal")
    lib.add_tag(a.media_id, "  Summer   Sale ", "ed")
    tags = lib.add_tag(b.media_id, "summer sale", "ed")
    # One spelling per namespace: the first one written.
    assert [(t["tag"], t["source"]) for t in tags] == [("Summer Sale", "manual")]
    assert [t["tag"] for t in lib.tags(a.media_id, "vic")] == ["Summer Sale"]
    lib.add_tag(a.media_id, "beach", "ed")
    assert [t["tag"] for t in lib.remove_tag(a.media_id, "SUMMER SALE", "ed")] == ["beach"]
    with pytest.raises(UnknownMedia, match="no tag"):
        lib.remove_tag(a.media_id, "nothing", "ed")
    with pytest.raises(ValueError, match="empty"):
        lib.add_tag(a.media_id, "   ", "ed")
    actions = [(x["actor"], x["action"], x["details"].get("tag")) for x in audit_rows(settings)
               if x["action"].startswith("tag.")]
    assert actions == [("ed", "tag.add", "Summer Sale"), ("ed", "tag.add", "Summer Sale"),
                       ("ed", "tag.add", "beach"), ("ed", "tag.remove", "SUMMER SALE")]


def test_ai_tags_show_with_confidence_and_give_way_to_manual_ones(
    lib: MediaLibrary, settings: Settings
) -> None:
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=10)), "cat.png", "ed")
    with Catalog.open(settings.catalog_location) as catalog:
        catalog.ai.apply_ai(
            [{"file_hash": media.file_hash, "title": "A cat", "tags": '["cat", "pet"]',
              "text": None, "labels": "[]", "scores": "{}", "backend": "local"}],
            [(media.file_hash or "", "cat", 0.91, "labels"),
             (media.file_hash or "", "pet", 0.8, "labels")])
    tags = lib.tags(media.media_id, "ed")
    assert [(t["tag"], t["source"], t["confidence"]) for t in tags] == [
        ("cat", "ai", 0.91), ("pet", "ai", 0.8)]
    tags = lib.add_tag(media.media_id, "Cat", "ed")
    assert [(t["tag"], t["source"]) for t in tags] == [("Cat", "manual"), ("pet", "ai")]


# -- collections -----------------------------------------------------------------------------------


def test_collections_keep_their_order(lib: MediaLibrary, settings: Settings) -> None:
    files = [lib.upload("blog", io.BytesIO(png_bytes(seed=20 + i)), f"{i}.png", "ed",
                        visibility="internal") for i in range(4)]
    ids = [f.media_id for f in files]
    coll = lib.create_collection("blog", "Front page", "ed", visibility="internal")
    for media_id in ids[:3]:
        lib.add_to_collection(coll.collection_id, media_id, "ed")
    shown = lib.add_to_collection(coll.collection_id, ids[3], "ed", position=0)
    assert [i.media.media_id for i in shown.items] == [ids[3], ids[0], ids[1], ids[2]]
    assert [i.position for i in shown.items] == [0, 1, 2, 3]
    shown = lib.remove_from_collection(coll.collection_id, ids[0], "ed")
    assert [i.media.media_id for i in shown.items] == [ids[3], ids[1], ids[2]]
    assert [i.position for i in shown.items] == [0, 1, 2]
    shown = lib.reorder(coll.collection_id, [ids[2], ids[3], ids[1]], "ed")
    assert [i.media.media_id for i in lib.collection(coll.collection_id, "vic").items] == [
        ids[2], ids[3], ids[1]]
    with pytest.raises(ValueError, match="exactly once"):
        lib.reorder(coll.collection_id, [ids[2], ids[3]], "ed")
    with pytest.raises(ValueError, match="already in the collection"):
        lib.add_to_collection(coll.collection_id, ids[2], "ed")
    with pytest.raises(ValueError, match="already has a collection"):
        lib.create_collection("blog", "front page", "ed")
    assert [c["items"] for c in lib.collections("blog", "vic")] == [3]
    actions = [a["action"] for a in audit_rows(settings) if a["action"].startswith("collection")]
    assert actions == ["collection.create"] + ["collection.add"] * 4 + [
        "collection.remove", "collection.reorder"]


def test_collections_hold_files_of_their_namespace_only(lib: MediaLibrary) -> None:
    lib.create_namespace("shop", "alice")
    other = lib.upload("shop", io.BytesIO(png_bytes(seed=30)), "o.png", "alice")
    coll = lib.create_collection("blog", "Mine", "alice")
    with pytest.raises(ValueError, match="namespace 'shop'"):
        lib.add_to_collection(coll.collection_id, other.media_id, "alice")
    assert lib.collection(coll.collection_id, "alice").items == ()


def test_a_collection_shows_each_user_only_what_they_may_see(lib: MediaLibrary) -> None:
    public = lib.upload("blog", io.BytesIO(png_bytes(seed=40)), "pub.png", "ed",
                        visibility="public")
    secret = lib.upload("blog", io.BytesIO(png_bytes(seed=41)), "sec.png", "ed")
    coll = lib.create_collection("blog", "Mixed", "ed", visibility="public")
    lib.add_to_collection(coll.collection_id, public.media_id, "ed")
    lib.add_to_collection(coll.collection_id, secret.media_id, "ed")
    assert len(lib.collection(coll.collection_id, "ed").items) == 2
    assert len(lib.collection(coll.collection_id, "alice").items) == 2
    assert [i.media.media_id for i in lib.collection(coll.collection_id, "vic").items] == [
        public.media_id]
    assert [i.media.media_id for i in lib.collection(coll.collection_id, None).items] == [
        public.media_id]
    private = lib.create_collection("blog", "Drafts", "ed")
    with pytest.raises(UnknownMedia, match="no collection"):
        lib.collection(private.collection_id, "vic")
    with pytest.raises(UnknownMedia, match="no collection"):
        lib.collection(private.collection_id, None)
    assert [c["name"] for c in lib.collections("blog", "vic")] == ["Mixed"]
    assert [c["name"] for c in lib.collections("blog", "ed")] == ["Drafts", "Mixed"]


# -- namespaces and members ------------------------------------------------------------------------


def test_namespaces_members_and_the_last_admin(lib: MediaLibrary, settings: Settings) -> None:
    assert [(m["user_id"], m["role"]) for m in lib.members("blog", "vic")] == [
        ("alice", "admin"), ("ed", "editor"), ("vic", "viewer")]
    assert lib.namespaces("vic") == [
        {"namespace": "blog", "default_visibility": "private", "role": "viewer"}]
    with pytest.raises(ValueError, match="already exists"):
        lib.create_namespace("blog", "ed")
    with pytest.raises(ValueError):
        lib.create_namespace("../etc", "ed")
    with pytest.raises(ValueError, match="last admin"):
        lib.remove_member("blog", "alice", "alice")
    with pytest.raises(ValueError, match="last admin"):
        lib.add_member("blog", "alice", "viewer", "alice")
    lib.add_member("blog", "vic", "admin", "alice")
    lib.remove_member("blog", "alice", "vic")
    assert [m["user_id"] for m in lib.members("blog", "vic")] == ["ed", "vic"]
    with pytest.raises(UnknownMedia, match="not a member"):
        lib.remove_member("blog", "alice", "vic")
    with pytest.raises(ValueError, match="unknown role"):
        lib.add_member("blog", "zed", "owner", "vic")
    actions = [(a["actor"], a["action"]) for a in audit_rows(settings)]
    assert actions == [("alice", "namespace.create"), ("alice", "member.add"),
                       ("alice", "member.add"), ("alice", "member.add"),
                       ("vic", "member.remove")]


def test_a_namespace_default_visibility_applies_to_uploads(lib: MediaLibrary) -> None:
    lib.create_namespace("press", "alice", default_visibility="public")
    media = lib.upload("press", io.BytesIO(png_bytes(seed=50)), "kit.png", "alice")
    assert media.visibility == "public"
    assert anonymous_get(lib.url(media.media_id, None)) == 200


def test_global_admins_are_admin_everywhere(settings: Settings, s3_client: Any) -> None:
    lib = make_library(replace(settings, admins=frozenset({"ops"})), s3_client)
    lib.add_member("blog", "new", "viewer", "ops")
    assert {n["namespace"]: n["role"] for n in lib.namespaces("ops")} == {"blog": "admin"}


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_stay_out_of_the_catalog_and_the_logs(
    settings: Settings, s3_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    settings = replace(settings, secret_access_key=secret)
    caplog.set_level(logging.DEBUG)
    lib = make_library(settings, None)
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=60)), "s.png", "ed")
    lib.url(media.media_id, "ed")
    lib.presign_upload("blog", "t.png", "image/png", 10, "ed")
    lib.add_tag(media.media_id, "x", "ed")
    with pytest.raises(ValidationFailed):
        lib.upload("blog", io.BytesIO(b""), "e.txt", "ed")
    lib.set_visibility(media.media_id, "public", "ed")
    assert secret not in catalog_text(settings)
    assert secret not in caplog.text
    assert secret not in repr(lib.settings) and secret not in repr(media)


def test_buckets_without_acls_refuse_public_and_record_private(
    settings: Settings, s3_client: Any
) -> None:
    from media_pipeline.storage.media_storage import AclNotSupported
    from media_pipeline_tests.app_fixtures import NoAclProxy

    proxy = NoAclProxy(settings.endpoint_url or "")
    try:
        settings = replace(settings, endpoint_url=proxy.url)
        lib = make_library(settings, None)
        media = lib.upload("blog", io.BytesIO(png_bytes(seed=70)), "n.png", "ed")
        before = catalog_counts(settings)
        with pytest.raises(MediaUnavailable, match="does not support object ACLs"):
            lib.set_visibility(media.media_id, "public", "ed")
        assert catalog_counts(settings) == before
        assert lib.get(media.media_id, "ed").visibility == "private"

        assert lib.set_visibility(media.media_id, "internal", "ed").visibility == "internal"
        assert audit_rows(settings)[-1]["action"] == "visibility.set"
        assert "X-Amz-Signature" in lib.url(media.media_id, "vic")

        with pytest.raises(AclNotSupported):
            lib.upload("blog", io.BytesIO(png_bytes(seed=71)), "pub.png", "ed",
                       visibility="public")
        assert len(bucket_keys(s3_client, settings.bucket)) == 1
        assert catalog_counts(settings)["media_files"] == 1
    finally:
        proxy.close()


def test_the_example_in_docs_api_md_runs(
    settings: Settings, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    doc = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S)
    assert code is not None
    for name, value in {
        "AWS_S3_ENDPOINT_URL": settings.endpoint_url or "", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_STORAGE_BUCKET_NAME": settings.bucket,
        "MEDIA_PIPELINE_HOME": str(settings.home),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "team-photo.png").write_bytes(png_bytes(seed=99))
    exec(compile(code.group(1), "docs/api.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    key, rest = printed[0].split(".png ", 1)
    assert re.fullmatch(r"blog/[0-9a-f]{12}/Team photo", key)
    assert rest == "image/png active bob"
    assert printed[1:] == ["SVG contains <script>", "[('team', 'manual', None)]",
                           "[(0, 'Team photo.png')]"]
    assert len(bucket_keys(s3_client, settings.bucket)) == 1


def test_soft_deleted_files_still_get_urls(lib: MediaLibrary, settings: Settings) -> None:
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=80)), "old.png", "ed")
    # What the lifecycle's soft delete appends (that API is not part of this module).
    with Catalog.open(settings.catalog_location) as catalog:
        catalog.con.execute("INSERT INTO media_deletions VALUES (?, true, now(), 'ed', "
                            "'delete', NULL)", [media.media_id])
    url = lib.url(media.media_id, "ed")
    assert httpx.get(url, timeout=10).status_code == 200


def test_unusable_file_names_fail_before_anything_is_read(lib: MediaLibrary) -> None:
    class Unreadable(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the content was read")

    with pytest.raises(ValueError, match="control character"):
        lib.upload("blog", Unreadable(), "bad\x07name.png", "ed")
    with pytest.raises(ValueError, match="file name is required"):
        lib.upload("blog", Unreadable(), "photos/", "ed")


def test_uploading_a_missing_file_again_brings_its_row_back(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    data = png_bytes(seed=81)
    media = lib.upload("blog", io.BytesIO(data), "back.png", "ed")
    s3_client.delete_object(Bucket=settings.bucket, Key=media.key)
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    assert lib.get(media.media_id, "ed").status == "missing"
    # The same uploader, name and bytes: the same key (the uploader is part of it).
    again = lib.upload("blog", io.BytesIO(data), "back.png", "ed")
    assert again.media_id == media.media_id and again.status == "active"
    assert again.first_seen == media.first_seen and again.owner == "ed"
    assert catalog_counts(settings)["media_files"] == 1
    assert bucket_keys(s3_client, settings.bucket) == [media.key]


def test_the_same_file_still_here_but_deleted_is_not_uploaded_over(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    data = png_bytes(seed=82)
    media = lib.upload("blog", io.BytesIO(data), "kept.png", "ed")
    with Catalog.open(settings.catalog_location) as catalog:
        catalog.con.execute("INSERT INTO media_deletions VALUES (?, true, now(), 'ed', "
                            "'delete', NULL)", [media.media_id])
    with pytest.raises(ValueError, match="restore it instead"):
        lib.upload("blog", io.BytesIO(data), "kept.png", "ed")
    head = s3_client.head_object(Bucket=settings.bucket, Key=media.key)
    assert head["ETag"].strip('"') == media.etag


def test_only_an_admin_accepts_a_scan_drop_and_it_is_audited(
        settings: Settings, s3_client: Any, tmp_path: Path) -> None:
    from media_pipeline.references.index import scan_sources
    from media_pipeline_tests.lifecycle_helpers import ADMIN, audit

    empty = tmp_path / "empty"  # a source whose content vanished: its first scan is suspect
    empty.mkdir()
    config = tmp_path / "sources.yaml"
    config.write_text(f"sources:\n  - {{name: site, type: files, root: {empty}, "
                      "content_type: page}\n")
    s = replace(settings, content_sources=config, admins=frozenset({ADMIN}))
    assert [o.state for o in scan_sources(s, workers=1)] == ["suspect"]
    lib = MediaLibrary(s, client=s3_client)

    with pytest.raises(PermissionDenied, match="only admins"):
        lib.accept_scan_drop("site", "ed")
    assert audit(s, "references.scan_drop_accepted") == []

    outcome = lib.accept_scan_drop("site", ADMIN)
    assert outcome.source == "site" and outcome.state == "accepted"
    assert [a["actor"] for a in audit(s, "references.scan_drop_accepted")] == [ADMIN]


def test_an_upload_made_while_a_listing_ran_is_not_called_missing(
    lib: MediaLibrary, settings: Settings, s3_client: Any
) -> None:
    # The listing is taken, then a file is uploaded, then the listing is committed: the file
    # is not in the listing, yet it exists (the concurrency harness found this race).
    take_inventory(settings, s3_client)
    media = lib.upload("blog", io.BytesIO(png_bytes(seed=7)), "during.png", "ed")
    diff = commit_inventory(settings)
    assert diff.missing == 0
    assert lib.get(media.media_id, "ed").status == "active"
