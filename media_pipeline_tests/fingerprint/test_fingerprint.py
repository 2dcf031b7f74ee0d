"""Fingerprinting against a real S3 endpoint: hashes, metadata, pHash, corpus, fragments, memory."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import pytest
from PIL import Image

from media_pipeline import corpus
from media_pipeline.corpus import KINDS, CorpusFile, encode, generate_corpus, photo
from media_pipeline.fingerprint import reader
from media_pipeline.fingerprint.phash import _DCT, hamming, perceptual_hash
from media_pipeline.fingerprint.reader import (
    fingerprint_object,
    fingerprint_objects,
    full_object_sha256,
    write_fragment,
)
from media_pipeline.fingerprint.sniff import SNIFF_BYTES
from media_pipeline.records import (
    FINGERPRINT_COLUMNS,
    FingerprintResult,
    PendingObject,
    media_id_for,
)
from media_pipeline.settings import Settings
from media_pipeline.storage import RetryCounter
from media_pipeline_tests.fixtures_s3 import upload

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sample() -> list[CorpusFile]:
    return generate_corpus()



def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the corpus ------------------------------------------------------------------------------


def test_corpus_has_every_kind_and_odd_keys(sample: list[CorpusFile]) -> None:
    assert len(sample) >= 200
    assert {f.kind for f in sample} == set(KINDS)
    keys = [f.key for f in sample]
    assert len(set(keys)) == len(keys)
    assert {k.split("/", 1)[0] for k in keys} == set(corpus.NAMESPACES)
    for fragment in (" ", "+", "%", "é", "日本"):
        assert any(fragment in k for k in keys), fragment
    formats = {Image.open(io.BytesIO(f.data)).format for f in sample if f.kind == "photo"}
    assert formats == {"JPEG", "PNG", "WEBP"}
    assert sum(1 for f in sample if f.kind == "pdf" and f.note != "1 pages") >= 1
    assert sum(len(f.data) for f in sample) < 8 * MiB  # uploads in seconds


def test_corpus_is_deterministic(sample: list[CorpusFile]) -> None:
    assert generate_corpus(seed=7) == sample
    other = generate_corpus(seed=8, count=corpus.minimum_corpus_size())
    assert [f.data for f in other] != [f.data for f in sample[: len(other)]]
    with pytest.raises(ValueError):
        generate_corpus(count=10)


def test_corpus_duplicates_are_exact_copies(sample: list[CorpusFile]) -> None:
    by_key = {f.key: f for f in sample}
    duplicates = [f for f in sample if f.kind == "duplicate"]
    assert duplicates
    for dup in duplicates:
        assert dup.original is not None and dup.original != dup.key
        assert dup.data == by_key[dup.original].data


def test_full_corpus_round_trip(
    sample: list[CorpusFile], s3_client: Any, settings: Settings
) -> None:
    pending = [upload(s3_client, settings, f.key, f.data, f.content_type) for f in sample]
    seen: list[FingerprintResult] = []
    results = {
        r.media_id: r
        for r in fingerprint_objects(s3_client, pending, settings, workers=4, on_result=seen.append)
    }
    assert len(results) == len(sample) == len(seen)
    by_key = {f.key: results[media_id_for(settings.bucket, f.key)] for f in sample}

    for f in sample:
        result = by_key[f.key]
        expected = "quarantined" if f.kind == "hostile" else "active"
        assert result.status == expected, (f.key, result.quarantine_reason, result.error)
        assert result.file_hash == sha256(f.data)
        assert result.hash_source == "computed"
        assert result.bytes_read == len(f.data)
        assert result.declared_content_type == f.content_type
        json.dumps(result.metadata)  # JSON as-is

    # Exact duplicates agree on the hash; near-duplicates are within the configured distance.
    for f in sample:
        if f.kind in ("duplicate", "near-duplicate"):
            assert f.original is not None
            copy, original = by_key[f.key], by_key[f.original]
            assert copy.phash is not None and original.phash is not None
            distance = hamming(copy.phash, original.phash)
            if f.kind == "duplicate":
                assert copy.file_hash == original.file_hash and distance == 0
            else:
                assert copy.file_hash != original.file_hash
                assert distance <= settings.near_duplicate_distance, (f.note, distance)

    # Distinct photos are never near-duplicates of each other.
    photos = [by_key[f.key].phash for f in sample if f.kind in ("photo", "exif-photo")]
    assert all(p is not None for p in photos)
    closest = min(hamming(a, b) for a, b in itertools.combinations(photos, 2))  # type: ignore[arg-type]
    assert closest > settings.near_duplicate_distance


def test_metadata_of_each_kind(
    sample: list[CorpusFile], s3_client: Any, settings: Settings
) -> None:
    picks = {
        "exif-photo": next(f for f in sample if f.kind == "exif-photo"),
        "png": next(f for f in sample if f.kind == "photo" and f.key.endswith(".png")),
        "webp": next(f for f in sample if f.kind == "photo" and f.key.endswith(".webp")),
        "gif": next(f for f in sample if f.kind == "gif"),
        "animated-gif": next(f for f in sample if f.kind == "animated-gif"),
        "pdf": next(f for f in sample if f.kind == "pdf" and f.note == "3 pages"),
        "svg": next(f for f in sample if f.kind == "svg"),
        "text": next(f for f in sample if f.kind == "text"),
    }
    pending = {
        name: upload(s3_client, settings, f.key, f.data, f.content_type)
        for name, f in picks.items()
    }
    r = {name: fingerprint_object(s3_client, obj, settings) for name, obj in pending.items()}

    for name, result in r.items():
        assert result.status == "active", (name, result)
        assert result.etag == pending[name].etag

    exif = r["exif-photo"]
    assert (exif.content_type, exif.width, exif.height) == ("image/jpeg", 240, 180)
    assert exif.metadata["format"] == "JPEG"
    assert exif.metadata["camera_make"] in {"Canon", "NIKON CORPORATION", "Apple"}
    assert exif.metadata["camera_model"]
    assert exif.metadata["orientation"] in {1, 3, 6, 8}
    assert str(exif.metadata["exif_datetime_original"])[4] == ":"
    with Image.open(io.BytesIO(picks["exif-photo"].data)) as image:
        tags = image.getexif()
        assert exif.metadata["camera_model"] == tags[272]
        assert exif.metadata["orientation"] == tags[274]

    assert (r["png"].content_type, r["png"].width, r["png"].height) == ("image/png", 160, 120)
    assert r["webp"].content_type == "image/webp" and r["webp"].metadata["format"] == "WEBP"
    assert r["gif"].metadata["animated"] is False and r["gif"].metadata["frames"] == 1
    assert r["animated-gif"].metadata["animated"] is True
    assert r["animated-gif"].metadata["frames"] == 4
    assert (r["pdf"].content_type, r["pdf"].page_count) == ("application/pdf", 3)
    assert r["pdf"].phash is None
    assert (r["svg"].content_type, r["svg"].width, r["svg"].height) == ("image/svg+xml", 120, 80)
    assert r["svg"].phash is None
    assert r["text"].content_type == "text/plain" and r["text"].metadata == {}
    for name in ("exif-photo", "png", "webp", "gif", "animated-gif"):
        value = r[name].phash
        assert value is not None and 0 <= value < 2**64


# --- hashes ----------------------------------------------------------------------------------


def test_s3_sha256_checksum_is_reused_and_the_rest_not_read(
    s3_client: Any, settings: Settings
) -> None:
    text = b"a line of plain text\n" * 10_000  # 210 KB, needs no metadata
    obj = upload(
        s3_client, settings, "notes/big.txt", text, "text/plain", ChecksumAlgorithm="SHA256"
    )
    result = fingerprint_object(s3_client, obj, settings)
    assert (result.status, result.hash_source) == ("active", "s3-checksum")
    assert result.file_hash == sha256(text)
    assert result.bytes_read <= SNIFF_BYTES < len(text)

    image = encode(photo(np.random.default_rng(3)), "PNG")
    obj = upload(s3_client, settings, "img/a.png", image, "image/png", ChecksumAlgorithm="SHA256")
    result = fingerprint_object(s3_client, obj, settings)
    assert (result.hash_source, result.file_hash) == ("s3-checksum", sha256(image))
    assert result.bytes_read == len(image)  # read anyway: it needs metadata
    assert (result.width, result.height) == (240, 180)


def test_multipart_composite_checksum_is_not_a_content_hash(
    s3_client: Any, settings: Settings
) -> None:
    key, parts = "big/multipart.bin.txt", [b"a" * (5 * MiB), b"b" * MiB]
    upload_id = s3_client.create_multipart_upload(
        Bucket=settings.bucket, Key=key, ChecksumAlgorithm="SHA256"
    )["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        part = s3_client.upload_part(
            Bucket=settings.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
        )
        done.append(
            {"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]}
        )
    s3_client.complete_multipart_upload(
        Bucket=settings.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    obj = PendingObject(media_id_for(settings.bucket, key), settings.bucket, key, 6 * MiB, "x")
    result = fingerprint_object(s3_client, obj, settings)
    assert result.hash_source == "computed"
    assert result.file_hash == sha256(b"".join(parts))
    assert result.etag.endswith("-2")  # the ETag of a multipart object is not an MD5 of it


def test_full_object_sha256_rules() -> None:
    digest = hashlib.sha256(b"x").digest()
    b64 = base64.b64encode(digest).decode()
    assert full_object_sha256({"ChecksumSHA256": b64}) == digest.hex()
    assert (
        full_object_sha256({"ChecksumSHA256": b64, "ChecksumType": "FULL_OBJECT"}) == digest.hex()
    )
    assert full_object_sha256({"ChecksumSHA256": b64, "ChecksumType": "COMPOSITE"}) is None
    assert full_object_sha256({"ChecksumSHA256": f"{b64}-3"}) is None
    assert full_object_sha256({"ChecksumSHA256": "not base64!"}) is None
    assert full_object_sha256({"ChecksumSHA256": base64.b64encode(b"short").decode()}) is None
    assert full_object_sha256({"ETag": '"' + hashlib.md5(b"x").hexdigest() + '"'}) is None
    # A multipart object whose server omits the composite marker (moto): not the content's hash.
    assert full_object_sha256({"ChecksumSHA256": b64, "ETag": '"abc-2"'}) is None
    assert full_object_sha256(
        {"ChecksumSHA256": b64, "ETag": '"abc-2"', "ChecksumType": "FULL_OBJECT"}
    ) == digest.hex()


# --- failures in a batch ---------------------------------------------------------------------


def test_deleted_object_is_missing_and_the_batch_goes_on(
    s3_client: Any, settings: Settings
) -> None:
    pending = [
        upload(s3_client, settings, f"batch/note-{i}.txt", f"note {i}\n".encode(), "text/plain")
        for i in range(12)
    ]
    s3_client.delete_object(Bucket=settings.bucket, Key="batch/note-5.txt")
    counter = RetryCounter()
    results = {
        r.media_id: r for r in fingerprint_objects(s3_client, pending, settings, counter=counter)
    }
    assert len(results) == 12
    for i, obj in enumerate(pending):
        result = results[obj.media_id]
        if i == 5:
            assert (result.status, result.file_hash, result.error) == ("missing", None, None)
        else:
            assert result.status == "active"
            assert result.file_hash == sha256(f"note {i}\n".encode())


def test_other_client_errors_become_error_results(s3_client: Any, settings: Settings) -> None:
    good = upload(s3_client, settings, "ok.txt", b"fine\n", "text/plain")
    bad = PendingObject(media_id_for("no-such-bucket-xyz", "k"), "no-such-bucket-xyz", "k", 1, "e")
    results = {r.media_id: r for r in fingerprint_objects(s3_client, [bad, good], settings)}
    assert results[good.media_id].status == "active"
    assert results[bad.media_id].status == "error"
    assert "NoSuchBucket" in (results[bad.media_id].error or "")


def test_in_flight_work_is_bounded(s3_client: Any, settings: Settings) -> None:
    pulled = 0

    def lazy() -> Iterator[PendingObject]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield PendingObject(f"id-{i}", settings.bucket, f"absent/{i}", 1, "e")

    stream = cast(
        Generator[FingerprintResult, None, None],
        fingerprint_objects(s3_client, lazy(), settings, workers=2),
    )
    first = next(stream)
    assert first.status == "missing"
    assert pulled <= 4  # 2 * workers, not 1000 futures
    rest = list(itertools.islice(stream, 20))
    assert pulled <= 4 + 1 + 20
    stream.close()  # stopping early cancels the rest
    assert len(rest) == 20 and pulled < 1000


# --- memory ----------------------------------------------------------------------------------


class SpoolSpy:
    """Records the spools the reader creates (and whether they moved to disk)."""

    def __init__(self) -> None:
        self.spools: list[Any] = []
        self.rolled: list[bool] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        spy = self

        class Spool(tempfile.SpooledTemporaryFile[bytes]):
            def close(self) -> None:
                spy.rolled.append(bool(getattr(self, "_rolled")))  # noqa: B009
                super().close()

            def __exit__(self, *exc: object) -> None:
                self.close()

        spool = Spool(*args, **kwargs)
        self.spools.append(spool)
        return spool


@pytest.fixture
def spool_spy(monkeypatch: pytest.MonkeyPatch) -> SpoolSpy:
    spy = SpoolSpy()
    monkeypatch.setattr(reader, "SpooledTemporaryFile", spy)
    return spy


def test_large_object_without_metadata_is_streamed_not_kept(
    s3_client: Any, settings: Settings, spool_spy: SpoolSpy
) -> None:
    data = b"0123456789abcdef" * (4 * MiB)  # 64 MiB of text
    obj = upload(s3_client, settings, "big/log.txt", data, "text/plain")
    reads: list[int] = []
    real_get = s3_client.get_object

    def counting_get(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        body = response["Body"]
        real_read = body.read

        def read(amt: int | None = None) -> bytes:
            chunk = real_read(amt)
            reads.append(len(chunk))
            return chunk

        body.read = read
        return response

    s3_client.get_object = counting_get
    result = fingerprint_object(s3_client, obj, settings)
    assert result.status == "active"
    assert result.file_hash == sha256(data)
    assert result.bytes_read == len(data)
    assert spool_spy.spools == []  # never held, in memory or on disk
    assert max(reads) <= reader.CHUNK_SIZE  # no read ever asked for the whole body


def test_large_image_spills_to_disk_and_oversized_ones_are_not_kept(
    s3_client: Any, settings: Settings, spool_spy: SpoolSpy
) -> None:
    small_png = encode(photo(np.random.default_rng(4)), "PNG")
    data = small_png + b"\0" * (20 * MiB)  # trailing bytes after IEND: still a valid PNG
    obj = upload(s3_client, settings, "big/poster.png", data, "image/png")
    result = fingerprint_object(s3_client, obj, settings)
    assert (result.status, result.width, result.height) == ("active", 240, 180)
    assert result.file_hash == sha256(data)
    assert len(spool_spy.spools) == 1 and spool_spy.rolled == [True]  # over 16 MiB: on disk

    tight = replace(settings, max_file_size=MiB)
    result = fingerprint_object(s3_client, obj, tight)
    assert result.status == "quarantined" and result.quarantine_reason is not None
    assert result.quarantine_reason.startswith("size ")
    assert result.file_hash == sha256(data)  # still hashed, by streaming
    assert len(spool_spy.spools) == 1  # no second spool


# --- pHash -----------------------------------------------------------------------------------


def test_dct_matrix_is_orthonormal() -> None:
    assert np.allclose(_DCT @ _DCT.T, np.eye(32))


def test_phash_near_duplicates_close_and_unrelated_far() -> None:
    rng = np.random.default_rng(11)
    originals = [photo(rng, 320, 240) for _ in range(12)]
    hashes = [perceptual_hash(im) for im in originals]
    for image, value in zip(originals, hashes, strict=True):
        assert 0 <= value < 2**64
        assert perceptual_hash(image) == value  # deterministic
        half = image.resize((160, 120), Image.Resampling.LANCZOS)
        q40 = Image.open(io.BytesIO(encode(image, "JPEG", quality=40)))
        assert hamming(value, perceptual_hash(half)) <= 6
        assert hamming(value, perceptual_hash(q40)) <= 6
    distances = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(distances) > 10
    assert 24 <= sum(distances) / len(distances) <= 40  # about half the bits


def test_phash_handles_odd_modes() -> None:
    rgba = photo(np.random.default_rng(5)).convert("RGBA")
    assert perceptual_hash(rgba) == perceptual_hash(rgba.convert("RGB"))  # opaque: same pixels
    for image in (
        Image.new("L", (10, 10), 0),  # flat
        Image.new("I;16", (40, 30), 1000),
        Image.new("1", (64, 64), 1),
        photo(np.random.default_rng(6)).convert("CMYK"),
        photo(np.random.default_rng(6)).quantize(16),
    ):
        assert 0 <= perceptual_hash(image) < 2**64


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0001) == 2


# --- fragments -------------------------------------------------------------------------------


def test_write_fragment_round_trips_through_duckdb(tmp_path: Path) -> None:
    results = [
        FingerprintResult(
            media_id="m1",
            etag="e1",
            status="active",
            file_hash="ab" * 32,
            hash_source="computed",
            content_type="image/jpeg",
            declared_content_type="image/jpeg",
            phash=2**64 - 1,
            width=640,
            height=480,
            metadata={"format": "JPEG", "animated": False, "note": "é"},
            bytes_read=1234,
        ),
        FingerprintResult(media_id="m2", etag="e2", status="missing"),
        FingerprintResult(
            media_id="m3",
            etag="e3",
            status="quarantined",
            quarantine_reason="empty file",
            page_count=3,
            phash=2**63 + 5,
        ),
        FingerprintResult(media_id="m4", etag="e4", status="error", error="AccessDenied: no"),
    ]
    path = tmp_path / "frag" / "part-1.parquet"
    assert write_fragment(iter(results), path) == 4
    assert [p.name for p in path.parent.iterdir()] == ["part-1.parquet"]  # no temp file left

    relation = duckdb.sql(f"select * from read_parquet('{path}') order by media_id")
    assert relation is not None
    assert tuple(relation.columns) == FINGERPRINT_COLUMNS
    types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    assert types["phash"] == "UBIGINT"
    assert types["width"] == types["bytes_read"] == "BIGINT"
    assert types["metadata"] == "VARCHAR"
    rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    for row, original in zip(rows, results, strict=True):
        expected = original.to_row()
        assert json.loads(row.pop("metadata")) == expected.pop("metadata")
        assert row == expected

    empty = tmp_path / "empty.parquet"
    assert write_fragment([], empty) == 0
    assert duckdb.execute(f"select count(*) from read_parquet('{empty}')").fetchall() == [(0,)]


def test_write_fragment_failure_leaves_nothing(tmp_path: Path) -> None:
    def broken() -> Iterator[FingerprintResult]:
        yield FingerprintResult(media_id="m1", etag="e", status="active")
        raise RuntimeError("source failed")

    path = tmp_path / "f.parquet"
    with pytest.raises(RuntimeError):
        write_fragment(broken(), path, batch_size=1)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_png_crc_is_quarantined(s3_client: Any, settings: Settings) -> None:
    data = bytearray(encode(photo(np.random.default_rng(9)), "PNG"))
    data[40] ^= 0xFF  # inside the first IDAT: CRC and zlib stream both broken
    result = fingerprint_object(
        s3_client, upload(s3_client, settings, "img/bad.png", bytes(data), "image/png"), settings
    )
    assert result.status == "quarantined"
    assert result.quarantine_reason is not None
    assert result.quarantine_reason.startswith("corrupt image: ")


def test_stream_broken_mid_read_is_an_error_and_cleans_up(
    s3_client: Any, settings: Settings, spool_spy: SpoolSpy
) -> None:
    data = encode(photo(np.random.default_rng(12)), "PNG") + b"\0" * (3 * MiB)
    obj = upload(s3_client, settings, "img/flaky.png", data, "image/png")
    real_get = s3_client.get_object

    def flaky_get(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        body = response["Body"]

        def broken_chunks(chunk_size: int) -> Iterator[bytes]:
            yield body.read(chunk_size)
            raise ConnectionResetError("connection reset by peer")

        body.iter_chunks = broken_chunks
        return response

    s3_client.get_object = flaky_get
    result = fingerprint_object(s3_client, obj, settings)
    assert result.status == "error"
    assert result.error is not None and "connection reset" in result.error
    assert result.file_hash is None
    # The body is read again (it broke off every time here); every spool was closed.
    assert len(spool_spy.spools) == reader.BODY_READ_ATTEMPTS
    assert len(spool_spy.rolled) == reader.BODY_READ_ATTEMPTS
