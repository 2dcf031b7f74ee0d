"""Write S3 Inventory reports in AWS's format: for tests, demos and benchmarks.

No S3-compatible server we run (moto, MinIO) generates inventory reports, so the reader could only
be tested against files shaped exactly like AWS's: a dated folder with manifest.json and
manifest.checksum, data files under ``data/``, CSV keys URL-encoded the way AWS does it (Java's
``URLEncoder``: space → ``+``, ``/`` → ``%2F``, ``+`` → ``%2B``), Parquet keys as they are.

:func:`write_inventory_report` takes objects from Python (small reports, exact control);
:func:`write_synthetic_csv_inventory` makes millions of rows with SQL for benchmarks.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from media_pipeline.inventory.manifest import CHECKSUM_NAME, MANIFEST_NAME

CSV_SCHEMA_ALL_VERSIONS = (
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, "
    "StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus"
)
CSV_SCHEMA_CURRENT = (
    "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, "
    "ReplicationStatus, EncryptionStatus"
)

_OBJECT_FIELDS = (
    "key",
    "size",
    "etag",
    "last_modified",
    "version_id",
    "is_latest",
    "is_delete_marker",
    "storage_class",
)


@dataclass
class WrittenReport:
    """Where a generated report went. ``location`` is what ``read_inventory`` takes."""

    location: str
    folder: str
    manifest_key: str  # S3 key, or local file path
    checksum_key: str
    data_keys: list[str] = field(default_factory=list)  # S3 keys, or local file paths
    rows: int = 0


@dataclass(frozen=True)
class _Obj:
    key: str
    size: int | None
    etag: str | None
    last_modified: datetime | None
    version_id: str | None
    is_latest: bool
    is_delete_marker: bool
    storage_class: str | None


def aws_url_encode(key: str) -> str:
    """Encode a key as S3 Inventory CSV does (application/x-www-form-urlencoded, UTF-8)."""
    return quote_plus(key, safe="*").replace("~", "%7E")


def _normalize(obj: Any) -> _Obj:
    if isinstance(obj, Mapping):
        values = {name: obj.get(name) for name in _OBJECT_FIELDS}
    elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        values = dict(zip(_OBJECT_FIELDS, obj, strict=False))
    else:  # an S3Object-like record
        values = {name: getattr(obj, name, None) for name in _OBJECT_FIELDS}
    is_dm = bool(values.get("is_delete_marker") or False)
    latest = values.get("is_latest")
    size = values.get("size")
    return _Obj(
        key=str(values["key"]),
        size=None if is_dm or size is None else int(size),
        etag=None if is_dm else (str(values.get("etag") or "").strip('"') or None),
        last_modified=values.get("last_modified") or datetime(2024, 1, 1, tzinfo=UTC),
        version_id=values.get("version_id"),
        is_latest=True if latest is None else bool(latest),
        is_delete_marker=is_dm,
        storage_class=None if is_dm else (values.get("storage_class") or "STANDARD"),
    )


def _iso(ts: datetime | None) -> str:
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _chunks(items: Iterable[_Obj], size: int) -> Iterator[list[_Obj]]:
    chunk: list[_Obj] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _csv_bytes(source_bucket: str, rows: list[_Obj], all_versions: bool) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for o in rows:
        size = "" if o.size is None else str(o.size)
        tail = [
            size,
            _iso(o.last_modified),
            o.etag or "",
            o.storage_class or "",
            "false",
            "",
            "SSE-S3",
        ]
        if all_versions:
            head = [
                source_bucket,
                aws_url_encode(o.key),
                o.version_id or "",
                "true" if o.is_latest else "false",
                "true" if o.is_delete_marker else "false",
            ]
        else:
            head = [source_bucket, aws_url_encode(o.key)]
        writer.writerow(head + tail)
    return gzip.compress(text.getvalue().encode("utf-8"), compresslevel=6)


_PARQUET_SCHEMA_ALL = pa.schema(
    [
        pa.field("bucket", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("is_latest", pa.bool_()),
        pa.field("is_delete_marker", pa.bool_()),
        pa.field("size", pa.int64()),
        pa.field("last_modified_date", pa.timestamp("ms")),
        pa.field("e_tag", pa.string()),
        pa.field("storage_class", pa.string()),
        pa.field("is_multipart_uploaded", pa.bool_()),
    ]
)
_PARQUET_CURRENT_DROP = ("version_id", "is_latest", "is_delete_marker")


def _parquet_schema(all_versions: bool) -> pa.Schema:
    if all_versions:
        return _PARQUET_SCHEMA_ALL
    return pa.schema([f for f in _PARQUET_SCHEMA_ALL if f.name not in _PARQUET_CURRENT_DROP])


def _parquet_message(schema: pa.Schema) -> str:
    """The ``fileSchema`` string AWS puts in a Parquet manifest (a Parquet message type)."""
    kinds = {
        pa.string(): "binary {name} (UTF8)",
        pa.bool_(): "boolean {name}",
        pa.int64(): "int64 {name}",
        pa.timestamp("ms"): "int64 {name} (TIMESTAMP_MILLIS)",
    }
    fields = [
        ("required " if not f.nullable else "optional ") + kinds[f.type].format(name=f.name) + ";"
        for f in schema
    ]
    return "message s3.inventory {  " + "  ".join(fields) + "}"


def _parquet_bytes(source_bucket: str, rows: list[_Obj], all_versions: bool) -> bytes:
    schema = _parquet_schema(all_versions)
    data: dict[str, list[Any]] = {
        "bucket": [source_bucket] * len(rows),
        "key": [o.key for o in rows],
        "version_id": [o.version_id for o in rows],
        "is_latest": [o.is_latest for o in rows],
        "is_delete_marker": [o.is_delete_marker for o in rows],
        "size": [o.size for o in rows],
        "last_modified_date": [
            None
            if o.last_modified is None
            else (
                o.last_modified
                if o.last_modified.tzinfo is None
                else o.last_modified.astimezone(UTC).replace(tzinfo=None)
            )
            for o in rows
        ],
        "e_tag": [o.etag for o in rows],
        "storage_class": [o.storage_class for o in rows],
        "is_multipart_uploaded": [False] * len(rows),
    }
    table = pa.table({f.name: data[f.name] for f in schema}, schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out, compression="snappy")
    return out.getvalue()


class _Sink:
    """Writes report files to a local destination root or to an S3 bucket + prefix."""

    def __init__(self, dest: Path | tuple[Any, str, str]):
        if isinstance(dest, tuple):
            self.client, self.bucket, prefix = dest
            self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
            self.root: Path | None = None
        else:
            self.client, self.bucket, self.prefix = None, "", ""
            self.root = Path(dest)

    def key(self, rel: str) -> str:
        """The key in the destination 'bucket' (what the manifest records)."""
        return self.prefix + rel

    def put(self, rel: str, data: bytes) -> str:
        if self.root is not None:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return str(path)
        self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data)
        return self.key(rel)

    def location(self, source_bucket: str, config_id: str) -> str:
        if self.root is not None:
            return str(self.root / source_bucket / config_id)
        return f"s3://{self.bucket}/{self.key(f'{source_bucket}/{config_id}/')}"


def _manifest_bytes(
    sink: _Sink,
    source_bucket: str,
    created: datetime,
    fmt: str,
    file_schema: str,
    files: list[dict[str, Any]],
) -> bytes:
    dest_bucket = sink.bucket or "local-inventory"
    doc = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{dest_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(created.timestamp() * 1000)),
        "fileFormat": fmt,
        "fileSchema": file_schema,
        "files": files,
    }
    return json.dumps(doc, indent=4).encode("utf-8")


def _finish(
    sink: _Sink,
    source_bucket: str,
    config_id: str,
    created: datetime,
    fmt: str,
    file_schema: str,
    files: list[dict[str, Any]],
    data_keys: list[str],
    rows: int,
) -> WrittenReport:
    """Write manifest.json, then manifest.checksum last (AWS's completion marker)."""
    folder = created.astimezone(UTC).strftime("%Y-%m-%dT%H-%MZ")
    base = f"{source_bucket}/{config_id}/{folder}"
    manifest = _manifest_bytes(sink, source_bucket, created, fmt, file_schema, files)
    manifest_key = sink.put(f"{base}/{MANIFEST_NAME}", manifest)
    checksum = hashlib.md5(manifest, usedforsecurity=False).hexdigest().encode() + b"\n"
    checksum_key = sink.put(f"{base}/{CHECKSUM_NAME}", checksum)
    return WrittenReport(
        location=sink.location(source_bucket, config_id),
        folder=folder,
        manifest_key=manifest_key,
        checksum_key=checksum_key,
        data_keys=data_keys,
        rows=rows,
    )


def write_inventory_report(
    dest: Path | tuple[Any, str, str],
    source_bucket: str,
    objects: Iterable[Any],
    *,
    fmt: str = "CSV",
    all_versions: bool = False,
    config_id: str = "daily",
    created: datetime | None = None,
    rows_per_file: int = 100_000,
) -> WrittenReport:
    """Write one AWS-format inventory report of ``objects`` for ``source_bucket``.

    ``dest`` is the destination root: a local folder, or ``(client, bucket, prefix)`` for S3; the
    report goes under ``<dest>/<source_bucket>/<config_id>/``. Objects are dicts, tuples in the
    order (key, size, etag, last_modified, version_id, is_latest, is_delete_marker,
    storage_class), or records with those attributes. ``all_versions`` writes the VersionId /
    IsLatest / IsDeleteMarker columns; otherwise the report holds current versions only.
    """
    if fmt not in ("CSV", "Parquet"):
        raise ValueError(f"fmt must be 'CSV' or 'Parquet', got {fmt!r}")
    created = created or datetime.now(UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    sink = _Sink(dest)
    files: list[dict[str, Any]] = []
    data_keys: list[str] = []
    rows = 0
    suffix = ".csv.gz" if fmt == "CSV" else ".parquet"
    for chunk in _chunks((_normalize(o) for o in objects), max(1, rows_per_file)):
        if fmt == "CSV":
            data = _csv_bytes(source_bucket, chunk, all_versions)
        else:
            data = _parquet_bytes(source_bucket, chunk, all_versions)
        rel = f"{source_bucket}/{config_id}/data/{uuid.uuid4()}{suffix}"
        data_keys.append(sink.put(rel, data))
        files.append(
            {
                "key": sink.key(rel),
                "size": len(data),
                "MD5checksum": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            }
        )
        rows += len(chunk)
    if fmt == "CSV":
        schema = CSV_SCHEMA_ALL_VERSIONS if all_versions else CSV_SCHEMA_CURRENT
    else:
        schema = _parquet_message(_parquet_schema(all_versions))
    return _finish(sink, source_bucket, config_id, created, fmt, schema, files, data_keys, rows)


# -- the fast path for millions of rows -------------------------------------------------------

_GZIP_BLOCK = 32 * 1024 * 1024


def _gzip_member(block: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    return compressor.compress(block) + compressor.flush()


def _gzip_parallel(src: Path, dest: Path, workers: int) -> tuple[int, str]:
    """gzip ``src`` into ``dest`` as concatenated members compressed on several threads.

    A gzip file may hold several members; every reader (gzip, zcat, DuckDB) decompresses them as
    one stream. zlib releases the GIL, so this is ~workers times faster than one ``gzip.open``.
    Returns (size, md5 hex) of the compressed file, hashed while writing.
    """
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with (
        src.open("rb") as fh,
        dest.open("wb") as out,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        pending: list[Any] = []

        def flush_one() -> None:
            nonlocal size
            data = pending.pop(0).result()
            digest.update(data)
            out.write(data)
            size += len(data)

        while block := fh.read(_GZIP_BLOCK):
            pending.append(pool.submit(_gzip_member, block))
            if len(pending) > workers:
                flush_one()
        while pending:
            flush_one()
    return size, digest.hexdigest()


def synthetic_kept_rows(rows: int, all_versions: bool) -> tuple[int, int, int]:
    """(current objects, non-current versions, delete markers) a synthetic report holds."""
    if not all_versions:
        return rows, 0, 0
    markers = sum(1 for _ in range(49, rows, 50))
    noncurrent = sum(1 for i in range(19, rows, 20) if i % 50 != 49)
    return rows - markers - noncurrent, noncurrent, markers


def write_synthetic_csv_inventory(
    dest: Path,
    source_bucket: str,
    rows: int,
    *,
    changed_fraction: float = 0.0,
    seed: int = 0,
    all_versions: bool = False,
    config_id: str = "daily",
    created: datetime | None = None,
    files: int = 1,
    key_prefix: str = "media/",
    workers: int | None = None,
) -> WrittenReport:
    """Generate a large CSV.gz inventory report with SQL, for benchmarks.

    Row ``i`` describes object ``i``: its key (URL-encoded, with spaces, and every 101st key with
    ``+``, ``%`` and non-ASCII characters), size and ETag depend only on ``i``, so two reports
    with the same ``rows`` describe the same bucket. ``changed_fraction`` of the objects, picked
    by ``seed``, get a different ETag and size: a report "the day after". With
    ``all_versions``, every 20th row is a non-current version of the previous object and every
    50th a delete marker (see :func:`synthetic_kept_rows`).

    DuckDB writes uncompressed CSV quickly in parallel; its own gzip writer is single-threaded
    and ~5x slower, so compression is done here on several threads.
    """
    created = created or datetime.now(UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    workers = workers or max(1, os.cpu_count() or 1)
    sink = _Sink(Path(dest))
    assert sink.root is not None
    data_dir = sink.root / source_bucket / config_id / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    threshold = int(max(0.0, min(1.0, changed_fraction)) * 1_000_000)
    prefix_sql = "'" + key_prefix.replace("'", "''") + "'"
    bucket_sql = "'" + source_bucket.replace("'", "''") + "'"
    # k = the object a row describes (a non-current version row describes the previous object).
    obj = "CASE WHEN i % 20 = 19 AND i % 50 <> 49 THEN i - 1 ELSE i END" if all_versions else "i"
    changed = f"(hash(k, {int(seed)}) % 1000000 < {threshold})"
    version_cols = ""
    if all_versions:
        version_cols = """
            md5('version-' || i::VARCHAR) AS version_id,
            CASE WHEN i % 20 = 19 AND i % 50 <> 49 THEN 'false' ELSE 'true' END AS is_latest,
            CASE WHEN i % 50 = 49 THEN 'true' ELSE 'false' END AS is_delete_marker,"""
    marker = "i % 50 = 49" if all_versions else "false"
    columns = f"""
        SELECT {bucket_sql} AS bucket,
               replace(url_encode(CASE WHEN k % 101 = 0
                   THEN printf('%sdocs/C++ notes é 100%% %d.pdf', {prefix_sql}, k)
                   ELSE printf('%s%03d/%s/photo %d.jpg', {prefix_sql}, k % 997,
                               substr(md5(k::VARCHAR), 1, 8), k) END), '%20', '+') AS key,
               {version_cols}
               CASE WHEN {marker} THEN NULL
                    ELSE (1000 + (hash(k) % 5000000) + CASE WHEN {changed} THEN 7 ELSE 0 END)
                         ::VARCHAR END AS size,
               strftime(TIMESTAMP '2024-01-01' + to_seconds(k % 31536000),
                        '%Y-%m-%dT%H:%M:%S.000Z') AS last_modified,
               CASE WHEN {marker} THEN NULL
                    WHEN {changed} THEN md5('changed-' || k::VARCHAR || '-' || {int(seed)})
                    ELSE md5(k::VARCHAR) END AS etag,
               CASE WHEN {marker} THEN NULL WHEN k % 10 = 0 THEN 'STANDARD_IA'
                    ELSE 'STANDARD' END AS storage_class,
               'false' AS is_multipart_uploaded, '' AS replication_status,
               'SSE-S3' AS encryption_status
    """

    def select(start: int, stop: int) -> str:
        return f"{columns} FROM (SELECT i, {obj} AS k FROM range({start}, {stop}) t(i))"

    per_file = -(-rows // max(1, files))
    manifest_files: list[dict[str, Any]] = []
    data_keys: list[str] = []
    con = duckdb.connect()
    try:
        for n in range(max(1, files)):
            start, stop = n * per_file, min(rows, (n + 1) * per_file)
            if start >= stop and n > 0:
                break
            name = f"{uuid.uuid4()}.csv.gz"
            plain = data_dir / f".{name}.csv"
            final = data_dir / name
            try:
                con.execute(
                    f"COPY ({select(start, stop)}) TO "
                    f"'{str(plain).replace(chr(39), chr(39) * 2)}' "
                    "(FORMAT csv, HEADER false, FORCE_QUOTE *)"
                )
                size, md5 = _gzip_parallel(plain, final, workers)
            finally:
                plain.unlink(missing_ok=True)
            data_keys.append(str(final))
            manifest_files.append(
                {
                    "key": sink.key(f"{source_bucket}/{config_id}/data/{name}"),
                    "size": size,
                    "MD5checksum": md5,
                }
            )
    finally:
        con.close()
    schema = CSV_SCHEMA_ALL_VERSIONS if all_versions else CSV_SCHEMA_CURRENT
    return _finish(
        sink, source_bucket, config_id, created, "CSV", schema, manifest_files, data_keys, rows
    )
