"""S3MediaStorage against the moto server over HTTP: uploads, URLs, presigned forms, ACLs."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from media_pipeline.fingerprint.reader import full_object_sha256
from media_pipeline.settings import Settings
from media_pipeline.storage import (
    AclNotSupported,
    ExpiryTooLong,
    ObjectExists,
    ObjectNotFound,
    S3MediaStorage,
    StorageError,
    UnsafeKey,
    ensure_bucket,
    key_in_namespace,
    make_client,
)
from media_pipeline.storage.media_storage import content_disposition, decode_policy
from media_pipeline_tests.http_server import Request, Response, serve

MiB = 1024 * 1024
SECRET = "sEcReT/k3y+Only-For-This-Test-9f8e7d6c"
ACCESS_KEY = "AKIATESTSTORAGE0001"


@pytest.fixture(scope="module")
def shared_client(s3_endpoint: str) -> Any:
    """One client for the module (creating boto3 clients is slow); buckets differ per test."""
    return make_client(Settings(endpoint_url=s3_endpoint, access_key_id=ACCESS_KEY,
                                secret_access_key=SECRET))


@pytest.fixture
def store_settings(settings: Settings) -> Settings:
    return replace(settings, access_key_id=ACCESS_KEY, secret_access_key=SECRET,
                   multipart_threshold=5 * MiB)


@pytest.fixture
def s3_client(store_settings: Settings, shared_client: Any) -> Any:
    """Overrides the shared fixture: the module's client, with this test's bucket created."""
    ensure_bucket(shared_client, store_settings.bucket, store_settings.region)
    return shared_client


@pytest.fixture
def storage(store_settings: Settings, s3_client: Any) -> S3MediaStorage:
    return S3MediaStorage(store_settings, s3_client)


def pending_uploads(client: Any, bucket: str) -> list[Any]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def object_keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def anonymous_status(url: str) -> int:
    """GET without any signature, as a browser would."""
    return httpx.get(url).status_code


class ChunkyReader:
    """A non-seekable stream that hands out small pieces and can fail or act midway."""

    def __init__(self, data: bytes, *, piece: int = 700_000, fail_after: int | None = None,
                 on_pass: tuple[int, Any] | None = None) -> None:
        self._data = data
        self._pos = 0
        self._piece = piece
        self._fail_after = fail_after
        self._on_pass = on_pass

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("disk read error in the middle of the upload")
        if self._on_pass is not None and self._pos >= self._on_pass[0]:
            action, self._on_pass = self._on_pass[1], None
            action()
        size = self._piece if size < 0 else min(size, self._piece)
        out = self._data[self._pos:self._pos + size]
        self._pos += len(out)
        return out


def big_data(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# -- uploads -----------------------------------------------------------------------------------


def test_small_upload_round_trips_with_its_sha256(storage: S3MediaStorage, s3_client: Any,
                                                  store_settings: Settings) -> None:
    data = b"%PDF-1.4 small file\n" * 10
    result = storage.upload(io.BytesIO(data), "docs/abc/report.pdf",
                            content_type="application/pdf", metadata={"uploaded-by": "alice"})
    sha = hashlib.sha256(data).hexdigest()
    assert (result.key, result.size, result.sha256) == ("docs/abc/report.pdf", len(data), sha)
    assert result.etag == hashlib.md5(data).hexdigest()
    assert result.content_type == "application/pdf" and result.version_id is None
    head = s3_client.head_object(Bucket=store_settings.bucket, Key=result.key,
                                 ChecksumMode="ENABLED")
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {"uploaded-by": "alice"}
    # The full-object checksum is what the fingerprint stage reuses as the file hash.
    assert full_object_sha256(head) == sha
    out = io.BytesIO()
    assert storage.download(result.key, out) == len(data)
    assert out.getvalue() == data
    body = storage.open(result.key)
    try:
        assert body.read() == data
    finally:
        body.close()


def test_multipart_upload_round_trips(storage: S3MediaStorage, s3_client: Any,
                                      store_settings: Settings) -> None:
    data = big_data(12 * MiB)
    result = storage.upload(ChunkyReader(data), "video/x1/clip.mp4",  # type: ignore[arg-type]
                            content_type="video/mp4")
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.etag.endswith("-2")  # 8 MiB + 4 MiB parts
    head = s3_client.head_object(Bucket=store_settings.bucket, Key=result.key,
                                 ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data) and head["ContentType"] == "video/mp4"
    # No SHA-256 is claimed for the object: the pipeline hashes the content itself.
    assert full_object_sha256(head) is None
    out = io.BytesIO()
    assert storage.download(result.key, out) == len(data)
    assert out.getvalue() == data
    assert pending_uploads(s3_client, store_settings.bucket) == []


def test_upload_at_exactly_the_threshold_is_one_put(storage: S3MediaStorage) -> None:
    data = big_data(5 * MiB)
    result = storage.upload(io.BytesIO(data), "ns/t/exact.bin",
                            content_type="application/octet-stream")
    assert "-" not in result.etag and result.size == len(data)


@pytest.mark.parametrize(("visibility", "status", "public"),
                         [("private", 403, False), ("internal", 403, False), ("public", 200, True)])
def test_upload_visibility_sets_the_acl(storage: S3MediaStorage, visibility: str, status: int,
                                        public: bool) -> None:
    key = f"ns/v/{visibility}.txt"
    storage.upload(io.BytesIO(b"hello"), key, content_type="text/plain", visibility=visibility)
    assert anonymous_status(storage.public_url(key)) == status
    assert storage.object_acl_is_public(key) is public


def test_multipart_public_upload_is_public(storage: S3MediaStorage) -> None:
    key = "ns/v/big-public.bin"
    storage.upload(io.BytesIO(big_data(6 * MiB)), key, content_type="application/octet-stream",
                   visibility="public")
    assert storage.object_acl_is_public(key)
    assert anonymous_status(storage.public_url(key)) == 200


def test_upload_never_overwrites(storage: S3MediaStorage, s3_client: Any,
                                 store_settings: Settings) -> None:
    storage.upload(io.BytesIO(b"first"), "ns/a/x.txt", content_type="text/plain")
    with pytest.raises(ObjectExists, match="already exists"):
        storage.upload(io.BytesIO(b"second"), "ns/a/x.txt", content_type="text/plain")
    with pytest.raises(ObjectExists, match="already exists"):
        storage.upload(io.BytesIO(big_data(6 * MiB)), "ns/a/x.txt", content_type="text/plain")
    body = s3_client.get_object(Bucket=store_settings.bucket, Key="ns/a/x.txt")["Body"].read()
    assert body == b"first"
    assert pending_uploads(s3_client, store_settings.bucket) == []


def test_multipart_loses_a_race_without_overwriting(storage: S3MediaStorage, s3_client: Any,
                                                    store_settings: Settings) -> None:
    """Another writer creates the key while our parts upload: the conditional completion
    refuses, the upload is aborted, the other writer's object stays."""
    bucket, key = store_settings.bucket, "ns/race/x.bin"

    def other_writer() -> None:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"the other writer")

    reader = ChunkyReader(big_data(12 * MiB), on_pass=(9 * MiB, other_writer))
    with pytest.raises(ObjectExists):
        storage.upload(reader, key, content_type="application/octet-stream")  # type: ignore[arg-type]
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"the other writer"
    assert pending_uploads(s3_client, bucket) == []


def test_multipart_is_aborted_when_the_stream_fails(storage: S3MediaStorage, s3_client: Any,
                                                    store_settings: Settings) -> None:
    reader = ChunkyReader(big_data(12 * MiB), fail_after=9 * MiB)  # after the first part
    with pytest.raises(OSError, match="disk read error"):
        storage.upload(reader, "ns/f/broken.bin",  # type: ignore[arg-type]
                       content_type="application/octet-stream")
    assert object_keys(s3_client, store_settings.bucket) == []
    assert pending_uploads(s3_client, store_settings.bucket) == []


@pytest.mark.parametrize("size", [100, 12 * MiB], ids=["single", "multipart"])
def test_content_not_matching_the_given_sha256_is_not_stored(
        storage: S3MediaStorage, s3_client: Any, store_settings: Settings, size: int) -> None:
    data = big_data(size)
    with pytest.raises(StorageError, match="does not match"):
        storage.upload(io.BytesIO(data), "ns/s/x.bin", content_type="application/octet-stream",
                       sha256=hashlib.sha256(b"something else").hexdigest())
    assert object_keys(s3_client, store_settings.bucket) == []
    assert pending_uploads(s3_client, store_settings.bucket) == []
    ok = storage.upload(io.BytesIO(data), "ns/s/x.bin", content_type="application/octet-stream",
                        sha256=hashlib.sha256(data).hexdigest().upper())
    assert ok.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [3 * MiB, 12 * MiB], ids=["single", "multipart"])
def test_uploads_over_max_file_size_are_refused(store_settings: Settings, s3_client: Any,
                                                size: int) -> None:
    storage = S3MediaStorage(replace(store_settings, max_file_size=2 * MiB), s3_client)
    with pytest.raises(ValueError, match="MAX_FILE_SIZE"):
        storage.upload(io.BytesIO(big_data(size)), "ns/l/x.bin",
                       content_type="application/octet-stream")
    assert object_keys(s3_client, store_settings.bucket) == []
    assert pending_uploads(s3_client, store_settings.bucket) == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": "../x.txt"}, UnsafeKey),
        ({"key": "ns/../x.txt"}, UnsafeKey),
        ({"key": "x.txt"}, UnsafeKey),
        ({"visibility": "world"}, ValueError),
        ({"content_type": "text/plain\r\nX-Evil: 1"}, ValueError),
        ({"content_type": ""}, ValueError),
        ({"metadata": {"note": "héllo"}}, ValueError),
        ({"metadata": {"bad name": "x"}}, ValueError),
        ({"sha256": "abc"}, ValueError),
    ],
    ids=lambda v: repr(v),
)
def test_bad_upload_arguments_store_nothing(storage: S3MediaStorage, s3_client: Any,
                                            store_settings: Settings, kwargs: dict[str, Any],
                                            error: type[Exception]) -> None:
    args: dict[str, Any] = {"key": "ns/a/x.txt", "content_type": "text/plain", **kwargs}
    key = args.pop("key")
    with pytest.raises(error):
        storage.upload(io.BytesIO(b"data"), key, **args)
    assert object_keys(s3_client, store_settings.bucket) == []


def test_a_text_stream_is_refused(storage: S3MediaStorage, s3_client: Any,
                                  store_settings: Settings) -> None:
    with pytest.raises(TypeError, match="binary file object"):
        storage.upload(io.StringIO("text"), "ns/a/x.txt",  # type: ignore[arg-type]
                       content_type="text/plain")
    assert object_keys(s3_client, store_settings.bucket) == []


def test_exists_delete_and_missing_objects(storage: S3MediaStorage) -> None:
    storage.upload(io.BytesIO(b"x"), "ns/d/x.txt", content_type="text/plain")
    assert storage.exists("ns/d/x.txt")
    assert not storage.exists("ns/d/other.txt")
    storage.delete("ns/d/x.txt")
    assert not storage.exists("ns/d/x.txt")
    storage.delete("ns/d/x.txt")  # absent: still fine
    with pytest.raises(ObjectNotFound, match="no such object"):
        storage.download("ns/d/x.txt", io.BytesIO())
    with pytest.raises(ObjectNotFound):
        storage.set_visibility("ns/d/x.txt", "public")


# -- signed and public URLs --------------------------------------------------------------------


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_signed_get_url_is_sigv4_and_fetches_the_bytes(storage: S3MediaStorage,
                                                       store_settings: Settings) -> None:
    storage.upload(io.BytesIO(b"secret bytes"), "ns/u/x.txt", content_type="text/plain")
    assert anonymous_status(storage.public_url("ns/u/x.txt")) == 403
    url = storage.generate_signed_url("ns/u/x.txt", expires=900)
    q = query_of(url)
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Expires"] == "900"
    access_key, day, region, service, terminator = q["X-Amz-Credential"].split("/")
    assert (access_key, region, service, terminator) == (
        ACCESS_KEY, store_settings.region, "s3", "aws4_request")
    assert day == q["X-Amz-Date"][:8]
    assert q["X-Amz-SignedHeaders"] == "host"
    assert len(q["X-Amz-Signature"]) == 64
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"secret bytes"


def test_signed_url_expiry_is_bounded(storage: S3MediaStorage, store_settings: Settings,
                                     s3_client: Any) -> None:
    week = 7 * 24 * 3600
    assert query_of(storage.generate_signed_url("ns/u/x.txt", expires=week))[
        "X-Amz-Expires"] == str(week)
    with pytest.raises(ExpiryTooLong, match="604800"):
        storage.generate_signed_url("ns/u/x.txt", expires=week + 1)
    for bad in (0, -5):
        with pytest.raises(ValueError, match="at least 1 second"):
            storage.generate_signed_url("ns/u/x.txt", expires=bad)
    with pytest.raises(ValueError, match="whole number"):
        storage.generate_signed_url("ns/u/x.txt", expires=1.5)  # type: ignore[arg-type]
    short = S3MediaStorage(replace(store_settings, signed_url_max_expiry=600), s3_client)
    assert short.generate_signed_url("ns/u/x.txt", expires=600)
    with pytest.raises(ExpiryTooLong, match="600"):
        short.generate_signed_url("ns/u/x.txt", expires=601)
    with pytest.raises(ExpiryTooLong):
        short.presigned_put("ns/u/y.txt", content_type="text/plain", expires=601)


def test_signed_url_method_is_restricted(storage: S3MediaStorage) -> None:
    assert "X-Amz-Signature" in storage.generate_signed_url("ns/u/x.txt", method="head_object")
    with pytest.raises(ValueError, match="presigned_put"):
        storage.generate_signed_url("ns/u/x.txt", method="delete_object")


def test_download_name_sets_the_content_disposition(storage: S3MediaStorage) -> None:
    storage.upload(io.BytesIO(b"x"), "ns/u/abc.pdf", content_type="application/pdf")
    url = storage.generate_signed_url("ns/u/abc.pdf", download_name="Rapport d'été.pdf")
    disposition = query_of(url)["response-content-disposition"]
    assert disposition == content_disposition("Rapport d'été.pdf")
    assert disposition.startswith('attachment; filename="Rapport d\'ete.pdf"')
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Rapport d'été.pdf"
    header = httpx.get(url).headers["content-disposition"]
    assert header == disposition  # S3 answers with the signed value


@pytest.mark.parametrize(
    ("name", "ascii_name"),
    [("写真.jpeg", "download.jpeg"), ("ü", "u"), ("notes", "notes"), ("..", "download")],
)
def test_download_names_have_an_ascii_fallback(name: str, ascii_name: str) -> None:
    value = content_disposition(name)
    assert value.startswith(f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'')
    assert value.isascii()


@pytest.mark.parametrize(
    "name", ['evil"\r\nSet-Cookie: a=b.pdf', "../../etc/passwd", "..", "\x00"],
    ids=lambda v: repr(v))
def test_download_names_cannot_inject_headers_or_paths(name: str) -> None:
    value = content_disposition(name)
    assert "\r" not in value and "\n" not in value and "/" not in value
    assert value.count('"') == 2


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("cdn.example.com", "https://cdn.example.com/blog/a%20b/caf%C3%A9%23.png"),
        ("https://cdn.example.com/", "https://cdn.example.com/blog/a%20b/caf%C3%A9%23.png"),
        ("http://example.com/media", "http://example.com/media/blog/a%20b/caf%C3%A9%23.png"),
    ],
)
def test_public_url_on_a_custom_domain(settings: Settings, domain: str, expected: str) -> None:
    storage = S3MediaStorage(replace(settings, custom_domain=domain), client=object())
    assert storage.public_url("blog/a b/café#.png") == expected


def test_public_url_on_the_endpoint_and_on_aws(settings: Settings) -> None:
    on_endpoint = S3MediaStorage(settings, client=object())
    assert on_endpoint.public_url("ns/x~y.png") == (
        f"{settings.endpoint_url}/{settings.bucket}/ns/x~y.png")
    aws = replace(settings, endpoint_url=None, region="eu-west-1", bucket="media-assets")
    assert S3MediaStorage(aws, client=object()).public_url("ns/a+b.png") == (
        "https://media-assets.s3.eu-west-1.amazonaws.com/ns/a%2Bb.png")
    dotted = replace(aws, bucket="media.example.com")
    assert S3MediaStorage(dotted, client=object()).public_url("ns/x.png") == (
        "https://s3.eu-west-1.amazonaws.com/media.example.com/ns/x.png")


def test_a_client_that_does_not_sign_sigv4_is_refused(settings: Settings) -> None:
    sigv2 = boto3.client("s3", endpoint_url=settings.endpoint_url, region_name="us-east-1",
                         aws_access_key_id="a", aws_secret_access_key="b",
                         config=Config(signature_version="s3"))
    with pytest.raises(ValueError, match="SigV4"):
        S3MediaStorage(settings, client=sigv2)


# -- presigned PUT and POST --------------------------------------------------------------------


def test_presigned_put_uploads_once(storage: S3MediaStorage, s3_client: Any,
                                    store_settings: Settings) -> None:
    put = storage.presigned_put("ns/p/photo.png", content_type="image/png", expires=120,
                                content_length=9)
    assert put["method"] == "PUT"
    assert put["headers"] == {"Content-Type": "image/png", "If-None-Match": "*",
                              "Content-Length": "9", "x-amz-acl": "private"}
    q = query_of(put["url"])
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and q["X-Amz-Expires"] == "120"
    assert set(q["X-Amz-SignedHeaders"].split(";")) == {
        "content-length", "content-type", "host", "if-none-match", "x-amz-acl"}
    response = httpx.put(put["url"], content=b"png bytes", headers=put["headers"])
    assert response.status_code == 200
    head = s3_client.head_object(Bucket=store_settings.bucket, Key="ns/p/photo.png")
    assert head["ContentType"] == "image/png" and head["ContentLength"] == 9
    assert not storage.object_acl_is_public("ns/p/photo.png")
    again = httpx.put(put["url"], content=b"other byt", headers=put["headers"])
    assert again.status_code == 412  # If-None-Match: * - no overwrite
    assert s3_client.get_object(Bucket=store_settings.bucket,
                                Key="ns/p/photo.png")["Body"].read() == b"png bytes"


@pytest.mark.parametrize(
    ("key", "kwargs", "error"),
    [
        ("../x.png", {}, UnsafeKey),
        ("ns/p/x.png", {"content_length": 0}, ValueError),
        ("ns/p/x.png", {"content_length": 200 * MiB}, ValueError),
        ("ns/p/x.png", {"content_type": "image/png\nx"}, ValueError),
    ],
    ids=lambda v: repr(v),
)
def test_presigned_put_refuses_bad_arguments(storage: S3MediaStorage, key: str,
                                             kwargs: dict[str, Any],
                                             error: type[Exception]) -> None:
    args: dict[str, Any] = {"content_type": "image/png", **kwargs}
    with pytest.raises(error):
        storage.presigned_put(key, **args)


def test_presigned_post_policy_pins_every_condition(storage: S3MediaStorage,
                                                    store_settings: Settings) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    post = storage.presigned_post("blog", filename="../My Photo.png", content_types=["image/png"],
                                  max_size=5000, expires=600)
    after = datetime.now(UTC)
    key = post["key"]
    assert key_in_namespace(key, "blog") and key.endswith("/My Photo.png")
    assert len(key.split("/")[1]) == 12
    fields = post["fields"]
    assert fields["key"] == key and fields["Content-Type"] == "image/png"
    assert fields["acl"] == "private"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    access_key, day, region, service, terminator = fields["x-amz-credential"].split("/")
    assert (access_key, region, service, terminator) == (
        ACCESS_KEY, store_settings.region, "s3", "aws4_request")
    assert day == fields["x-amz-date"][:8]
    policy = decode_policy(fields["policy"])
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(seconds=599) <= expiration <= after + timedelta(seconds=600)
    assert post["expires_at"] == policy["expiration"]
    conditions = policy["conditions"]
    expected: list[Any] = [
        {"bucket": store_settings.bucket},
        {"key": key},
        ["starts-with", "$key", "blog/"],
        ["eq", "$Content-Type", "image/png"],
        ["content-length-range", 1, 5000],
        {"acl": "private"},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": fields["x-amz-credential"]},
        {"x-amz-date": fields["x-amz-date"]},
    ]
    assert sorted(map(repr, conditions)) == sorted(map(repr, expected))
    # Every form field except the signature and the policy is covered by a condition.
    covered = {next(iter(c)) if isinstance(c, dict) else c[1].lstrip("$")
               for c in conditions if isinstance(c, dict) or c[0] != "content-length-range"}
    assert set(fields) - {"policy", "x-amz-signature"} <= covered


def test_presigned_post_uploads_into_the_namespace(storage: S3MediaStorage, s3_client: Any,
                                                   store_settings: Settings) -> None:
    post = storage.presigned_post("blog", filename="photo.png", content_types=["image/png"],
                                  max_size=1000)
    response = httpx.post(post["url"], data=post["fields"],
                          files={"file": ("photo.png", b"\x89PNG fake", "image/png")})
    assert response.status_code == 204, response.text
    assert object_keys(s3_client, store_settings.bucket) == [post["key"]]
    head = s3_client.head_object(Bucket=store_settings.bucket, Key=post["key"])
    assert head["ContentType"] == "image/png"
    assert not storage.object_acl_is_public(post["key"])
    second = storage.presigned_post("blog", filename="photo.png", content_types=["image/png"],
                                    max_size=1000)
    assert second["key"] != post["key"]  # same name, new random segment


@pytest.mark.parametrize(
    ("namespace", "kwargs", "match"),
    [
        ("blog", {"content_types": ["image/png", "image/jpeg"]}, "exactly one content type"),
        ("blog", {"content_types": []}, "exactly one content type"),
        ("blog", {"content_types": ["application/x-msdownload"]}, "ALLOWED_FILE_TYPES"),
        ("blog", {"max_size": 0}, "max_size"),
        ("blog", {"max_size": 100 * MiB + 1}, "MAX_FILE_SIZE"),
        ("blog", {"expires": 8 * 24 * 3600}, "longer than"),
        ("../blog", {}, "namespace"),
        ("blog", {"filename": ".."}, "no usable characters"),
    ],
    ids=lambda v: repr(v),
)
def test_presigned_post_refuses_bad_arguments(storage: S3MediaStorage, namespace: str,
                                              kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"filename": "x.png", "content_types": ["image/png"],
                            "max_size": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        storage.presigned_post(namespace, **args)


def test_a_single_content_type_string_is_accepted(storage: S3MediaStorage) -> None:
    post = storage.presigned_post("blog", filename="x.png", content_types="image/png",
                                  max_size=10)
    assert post["fields"]["Content-Type"] == "image/png"


def test_no_acl_is_sent_to_a_bucket_with_acls_disabled(store_settings: Settings,
                                                       s3_client: Any) -> None:
    """AWS refuses any ACL but bucket-owner-full-control on such buckets, so presigned uploads
    must not pin one (moto records the setting but does not enforce it)."""
    bucket = store_settings.bucket + "-owner"
    s3_client.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced")
    storage = S3MediaStorage(replace(store_settings, bucket=bucket), s3_client)
    post = storage.presigned_post("blog", filename="x.png", content_types=["image/png"],
                                  max_size=10)
    assert "acl" not in post["fields"]
    assert all(not (isinstance(c, dict) and "acl" in c)
               for c in decode_policy(post["fields"]["policy"])["conditions"])
    put = storage.presigned_put("blog/a/x.png", content_type="image/png")
    assert "x-amz-acl" not in put["headers"]
    assert "x-amz-acl" not in query_of(put["url"])["X-Amz-SignedHeaders"]


def test_acl_changes_are_refused_on_a_bucket_with_acls_disabled(store_settings: Settings,
                                                                s3_client: Any) -> None:
    """moto accepts ACLs on such a bucket; AWS refuses them. We ask the bucket's ownership
    controls first, so the answer is the same on both: AclNotSupported, nothing changed."""
    bucket = store_settings.bucket + "-owner"
    s3_client.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced")
    storage = S3MediaStorage(replace(store_settings, bucket=bucket), s3_client)
    storage.upload(io.BytesIO(b"x"), "blog/a/private.png", content_type="image/png")
    storage.upload(io.BytesIO(b"x"), "blog/a/internal.png", content_type="image/png",
                   visibility="internal")
    with pytest.raises(AclNotSupported, match="make an object public"):
        storage.upload(io.BytesIO(b"x"), "blog/a/public.png", content_type="image/png",
                       visibility="public")
    assert object_keys(s3_client, bucket) == ["blog/a/internal.png", "blog/a/private.png"]
    for visibility in ("public", "private"):
        with pytest.raises(AclNotSupported, match=f"make an object {visibility}.*CDN"):
            storage.set_visibility("blog/a/private.png", visibility)
    assert not storage.object_acl_is_public("blog/a/private.png")


# -- visibility / ACLs -------------------------------------------------------------------------


def grants_to_everyone(client: Any, bucket: str, key: str) -> set[str]:
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return {g["Permission"] for g in grants
            if g["Grantee"].get("URI") == "http://acs.amazonaws.com/groups/global/AllUsers"}


def test_set_visibility_both_ways(storage: S3MediaStorage, s3_client: Any,
                                  store_settings: Settings) -> None:
    key, bucket = "ns/acl/x.txt", store_settings.bucket
    storage.upload(io.BytesIO(b"x"), key, content_type="text/plain")
    assert grants_to_everyone(s3_client, bucket, key) == set()
    storage.set_visibility(key, "public")
    assert grants_to_everyone(s3_client, bucket, key) == {"READ"}
    assert storage.object_acl_is_public(key) and anonymous_status(storage.public_url(key)) == 200
    storage.set_visibility(key, "internal")
    assert grants_to_everyone(s3_client, bucket, key) == set()
    assert anonymous_status(storage.public_url(key)) == 403
    storage.set_visibility(key, "public")
    storage.set_visibility(key, "private")
    assert not storage.object_acl_is_public(key)
    with pytest.raises(ValueError, match="visibility"):
        storage.set_visibility(key, "everyone")


ACL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessControlListNotSupported'
             b"</Code><Message>The bucket does not allow ACLs</Message>"
             b"<RequestId>R1</RequestId></Error>")
DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
          b"<Message>Access Denied</Message><RequestId>R2</RequestId></Error>")


class AclDisabledS3:
    """Answers like S3 on a bucket with Object Ownership 'bucket owner enforced': any request
    that sets an ACL gets 400 AccessControlListNotSupported; nothing is stored."""

    requests: list[tuple[str, str, Message]] = []

    @classmethod
    def answer(cls, request: Request) -> Response:
        cls.requests.append((request.method, request.path, request.headers))
        sets_acl = "acl" in request.query or "x-amz-acl" in request.headers
        # Anything else (e.g. reading the ownership controls) is denied, as for a user
        # without s3:GetBucketOwnershipControls: the ACL request itself must be refused.
        status, body = (400, ACL_ERROR) if request.method == "PUT" and sets_acl else (403, DENIED)
        return Response(status, body, {"Content-Type": "application/xml"})


@pytest.fixture
def acl_disabled_endpoint() -> Iterator[str]:
    AclDisabledS3.requests = []
    with serve(AclDisabledS3.answer) as server:
        yield server.url


def test_acl_disabled_bucket_raises_acl_not_supported(acl_disabled_endpoint: str,
                                                      store_settings: Settings) -> None:
    settings = replace(store_settings, endpoint_url=acl_disabled_endpoint, bucket="owned")
    storage = S3MediaStorage(settings)
    with pytest.raises(AclNotSupported) as raised:
        storage.set_visibility("ns/a/x.png", "public")
    message = str(raised.value)
    assert "ACLs disabled" in message and "CDN" in message and "bucket policy" in message
    assert SECRET not in message
    with pytest.raises(AclNotSupported, match="make an object private"):
        storage.set_visibility("ns/a/x.png", "private")
    with pytest.raises(AclNotSupported, match="make an object public"):
        storage.upload(io.BytesIO(b"x"), "ns/a/y.png", content_type="image/png",
                       visibility="public")
    methods = [(m, urlsplit(p).path, urlsplit(p).query) for m, p, _ in AclDisabledS3.requests]
    assert ("PUT", "/owned/ns/a/x.png", "acl") in methods
    assert ("PUT", "/owned/ns/a/y.png", "") in methods
    # Denied once, then not asked again: one request for the three calls.
    assert methods.count(("GET", "/owned", "ownershipControls")) == 1


# -- secrets -----------------------------------------------------------------------------------


def test_the_secret_key_never_leaks(storage: S3MediaStorage, store_settings: Settings,
                                    s3_client: Any) -> None:
    assert SECRET not in repr(storage) and SECRET not in str(storage)
    assert SECRET not in repr(vars(storage).get("settings"))
    storage.upload(io.BytesIO(b"x"), "ns/k/x.txt", content_type="text/plain")
    urls = [
        storage.generate_signed_url("ns/k/x.txt", download_name="x.txt"),
        storage.presigned_put("ns/k/y.txt", content_type="text/plain")["url"],
    ]
    post = storage.presigned_post("ns", filename="x.png", content_types=["image/png"],
                                  max_size=10)
    for url in urls:
        assert SECRET not in url and SECRET not in unquote(url)
        assert query_of(url)["X-Amz-Credential"].startswith(ACCESS_KEY + "/")
    assert SECRET not in repr(post) and SECRET not in decode_policy(post["fields"]["policy"])
    errors: list[Exception] = []
    missing_bucket = S3MediaStorage(replace(store_settings, bucket="no-such-bucket-here"),
                                    s3_client)
    for action in (
        lambda: missing_bucket.upload(io.BytesIO(b"x"), "ns/a/x.txt", content_type="text/plain"),
        lambda: missing_bucket.download("ns/a/x.txt", io.BytesIO()),
        lambda: missing_bucket.set_visibility("ns/a/x.txt", "public"),
    ):
        with pytest.raises(StorageError) as raised:
            action()
        errors.append(raised.value)
    assert "no-such-bucket-here" in str(errors[0])
    for error in errors:
        assert SECRET not in str(error) and SECRET not in repr(error)
        assert SECRET not in repr(error.__cause__)


def test_unreachable_endpoint_is_a_storage_error_without_secrets(store_settings: Settings) -> None:
    from media_pipeline.storage.embedded import free_port

    dead = replace(store_settings, endpoint_url=f"http://127.0.0.1:{free_port()}")
    storage = S3MediaStorage(dead, client=boto3.client(
        "s3", endpoint_url=dead.endpoint_url, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                      connect_timeout=2)))
    with pytest.raises(StorageError, match="failed") as raised:
        storage.exists("ns/a/x.txt")
    assert SECRET not in str(raised.value)
