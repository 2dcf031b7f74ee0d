"""S3 Inventory reports and live listings → object snapshots, against a real S3 server over HTTP.

Reports are written in AWS's exact format (moto does not generate inventories), uploaded to the
embedded server and read back through ``s3://`` locations, so the download, checksum and decoding
paths are the ones production uses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from media_pipeline.inventory import (
    SNAPSHOT_COLUMNS,
    InventoryError,
    InventoryLocation,
    WrittenReport,
    find_latest_manifest,
    list_to_snapshot,
    read_inventory,
    synthetic_kept_rows,
    validate_snapshot,
    write_inventory_report,
    write_synthetic_csv_inventory,
)
from media_pipeline.settings import Settings

SOURCE = "media-src"
T0 = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)

# Keys that break naive URL decoding: '+' vs space, literal '%' (and a literal "%2B"), non-ASCII,
# separators that CSV or URLs care about.
SPECIAL_KEYS = [
    "plain.jpg",
    "with space/photo 1.jpg",
    "plus+sign/a+b.png",
    "percent/100% real.gif",
    "percent/literal%2B.txt",
    "unicode/ünïcödé 日本語.png",
    "deep/a/b/c/d/e.txt",
    "tilde~star*.jpg",
    'comma,and"quote.txt',
    "top-level-file",
]


def _objects(keys: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "size": 100 + i,
            "etag": hashlib.md5(key.encode()).hexdigest(),
            "last_modified": T0 + timedelta(minutes=i),
            "storage_class": "STANDARD_IA" if i % 3 == 0 else "STANDARD",
        }
        for i, key in enumerate(keys)
    ]


def _rows(path: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        "SELECT bucket, key, version_id, size, etag, last_modified, storage_class "
        "FROM read_parquet(?) ORDER BY key, version_id",
        [str(path)],
    ).fetchall()
    con.close()
    return rows


def _describe(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect()
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    con.close()
    return [(str(r[0]), str(r[1])) for r in described]


def _dest(s3_client: Any, settings: Settings, prefix: str = "inventory") -> tuple[Any, str, str]:
    return (s3_client, settings.bucket, prefix)


def _key_of(report: WrittenReport, name: str) -> str:
    return f"{report.manifest_key.rsplit('/', 1)[0]}/{name}"


def _put_manifest(s3_client: Any, bucket: str, report: WrittenReport, body: bytes) -> None:
    """Replace a report's manifest.json, with a checksum that matches the new body."""
    s3_client.put_object(Bucket=bucket, Key=report.manifest_key, Body=body)
    s3_client.put_object(
        Bucket=bucket, Key=report.checksum_key, Body=hashlib.md5(body).hexdigest().encode()
    )


def _manifest_doc(s3_client: Any, bucket: str, report: WrittenReport) -> dict[str, Any]:
    body = s3_client.get_object(Bucket=bucket, Key=report.manifest_key)["Body"].read()
    doc: dict[str, Any] = json.loads(body)
    return doc


# -- reading reports from S3 ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_report_from_s3_decodes_keys_and_matches_contract(
    fmt: str, s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    objects = _objects(SPECIAL_KEYS)
    report = write_inventory_report(
        _dest(s3_client, settings), SOURCE, objects, fmt=fmt, rows_per_file=4, created=T0
    )
    assert report.location == f"s3://{settings.bucket}/inventory/{SOURCE}/daily/"
    assert len(report.data_keys) == 3
    out = tmp_path / "snap" / "objects.parquet"
    work = tmp_path / "work"

    stats = read_inventory(report.location, s3_client, out, work_dir=work, expected_bucket=SOURCE)

    expected = sorted(
        (SOURCE, o["key"], None, o["size"], o["etag"], o["last_modified"], o["storage_class"])
        for o in objects
    )
    assert _rows(out) == expected
    assert _describe(out) == [(name, typ) for name, typ, _ in SNAPSHOT_COLUMNS]
    validate_snapshot(out)
    assert stats.rows == len(objects)
    assert stats.bytes == sum(o["size"] for o in objects)
    assert stats.files_read == 3
    assert (stats.skipped_noncurrent, stats.skipped_delete_markers) == (0, 0)
    assert report.folder in stats.source and fmt in stats.source
    assert stats.path == out
    # Downloads are cleaned up; nothing but the snapshot is left behind.
    assert list(work.iterdir()) == []
    assert [p.name for p in out.parent.iterdir()] == ["objects.parquet"]


def test_csv_keys_are_encoded_like_aws(s3_client: Any, settings: Settings) -> None:
    """The generator must encode like AWS (space → '+', '+' → %2B, '/' → %2F), or the
    decoding test above would prove nothing."""
    report = write_inventory_report(
        _dest(s3_client, settings), SOURCE, _objects(["a b/c+d%e é.jpg"]), fmt="CSV"
    )
    body = s3_client.get_object(Bucket=settings.bucket, Key=report.data_keys[0])["Body"].read()
    line = gzip.decompress(body).decode()
    assert line.startswith(f'"{SOURCE}","a+b%2Fc%2Bd%25e+%C3%A9.jpg","')


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_all_versions_report_keeps_latest_non_deleted(
    fmt: str, s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    def version(key: str, vid: str, latest: bool, size: int | None = 10, **kw: Any) -> dict:
        return {
            "key": key,
            "version_id": vid,
            "is_latest": latest,
            "size": size,
            "etag": f"etag-{vid}",
            "last_modified": T0,
            **kw,
        }

    objects = [
        version("photos/a b.jpg", "a1", False, 1),
        version("photos/a b.jpg", "a2", True, 2),  # kept: the latest version
        version("photos/a b.jpg", "a0", False, 3),
        version("deleted+file.png", "d2", True, None, is_delete_marker=True),
        version("deleted+file.png", "d1", False, 4),
        version("only.txt", "o1", True, 5),  # kept
        version("gone/again.txt", "g1", True, None, is_delete_marker=True),
    ]
    report = write_inventory_report(
        _dest(s3_client, settings),
        SOURCE,
        objects,
        fmt=fmt,
        all_versions=True,
        rows_per_file=3,
        created=T0,
    )
    out = tmp_path / "objects.parquet"

    stats = read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")

    assert _rows(out) == [
        (SOURCE, "only.txt", "o1", 5, "etag-o1", T0, "STANDARD"),
        (SOURCE, "photos/a b.jpg", "a2", 2, "etag-a2", T0, "STANDARD"),
    ]
    assert stats.rows == 2 and stats.bytes == 7
    assert stats.skipped_noncurrent == 3
    assert stats.skipped_delete_markers == 2


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_current_version_report_keeps_every_row(
    fmt: str, s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    objects = _objects([f"dir{i % 3}/file {i}.bin" for i in range(25)])
    report = write_inventory_report(
        _dest(s3_client, settings), SOURCE, objects, fmt=fmt, all_versions=False
    )
    doc = _manifest_doc(s3_client, settings.bucket, report)
    assert "IsLatest" not in doc["fileSchema"] and "is_latest" not in doc["fileSchema"]
    out = tmp_path / "objects.parquet"

    stats = read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")

    assert stats.rows == 25
    assert {r[1] for r in _rows(out)} == {o["key"] for o in objects}
    assert {r[2] for r in _rows(out)} == {None}


def test_newest_complete_manifest_is_chosen(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    dest = _dest(s3_client, settings, prefix="reports/daily-inv")
    days = [T0 + timedelta(days=d) for d in range(3)]
    reports = [
        write_inventory_report(dest, SOURCE, _objects([f"day{d}.jpg"]), created=day)
        for d, day in enumerate(days)
    ]
    # A newer delivery still in progress (no manifest.checksum yet), and the hive/ folder.
    in_progress = write_inventory_report(
        dest, SOURCE, _objects(["unfinished.jpg"]), created=T0 + timedelta(days=5)
    )
    s3_client.delete_object(Bucket=settings.bucket, Key=in_progress.checksum_key)
    base = f"reports/daily-inv/{SOURCE}/daily"
    s3_client.put_object(
        Bucket=settings.bucket, Key=f"{base}/hive/dt=2099-01-01-00-00/symlink.txt", Body=b"x"
    )

    ref = find_latest_manifest(reports[0].location, s3_client)
    assert ref.folder == reports[2].folder == days[2].strftime("%Y-%m-%dT%H-%MZ")

    out = tmp_path / "objects.parquet"
    stats = read_inventory(reports[0].location, s3_client, out, work_dir=tmp_path / "work")
    assert [r[1] for r in _rows(out)] == ["day2.jpg"]
    assert stats.report_created == days[2].replace(microsecond=123000)


def test_no_report_at_location_is_an_error(s3_client: Any, settings: Settings) -> None:
    with pytest.raises(InventoryError, match="no inventory report"):
        find_latest_manifest(f"s3://{settings.bucket}/nothing/here/", s3_client)


# -- refusing bad reports ---------------------------------------------------------------------


def test_manifest_checksum_mismatch_names_file_and_writes_nothing(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    report = write_inventory_report(_dest(s3_client, settings), SOURCE, _objects(["a.jpg"]))
    s3_client.put_object(Bucket=settings.bucket, Key=report.checksum_key, Body=b"0" * 32)
    out = tmp_path / "objects.parquet"

    with pytest.raises(InventoryError, match=r"manifest\.json.*does not match"):
        read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_read_keeps_the_previous_snapshot(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    report = write_inventory_report(_dest(s3_client, settings), SOURCE, _objects(["a.jpg"]))
    out = tmp_path / "objects.parquet"
    read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")
    before = out.read_bytes()
    s3_client.delete_object(Bucket=settings.bucket, Key=report.data_keys[0])

    with pytest.raises(InventoryError):
        read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["objects.parquet"]


@pytest.mark.parametrize("where", ["s3", "local"])
def test_data_file_md5_mismatch_names_the_key(
    where: str, s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    objects = _objects([f"k{i}" for i in range(50)])
    if where == "s3":
        report = write_inventory_report(_dest(s3_client, settings), SOURCE, objects)
        key = report.data_keys[0]
        body = bytearray(s3_client.get_object(Bucket=settings.bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF  # same size, different content
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=bytes(body))
    else:
        report = write_inventory_report(tmp_path / "reports", SOURCE, objects)
        key = report.data_keys[0]
        body = bytearray(Path(key).read_bytes())
        body[len(body) // 2] ^= 0xFF
        Path(key).write_bytes(bytes(body))
    out = tmp_path / "objects.parquet"

    with pytest.raises(InventoryError, match="MD5") as info:
        read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")
    assert key.rsplit("/", 1)[-1] in str(info.value)
    assert not out.exists()


def test_missing_data_file_names_the_key(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    report = write_inventory_report(
        _dest(s3_client, settings), SOURCE, _objects(["a", "b", "c"]), rows_per_file=1
    )
    s3_client.delete_object(Bucket=settings.bucket, Key=report.data_keys[1])
    out = tmp_path / "objects.parquet"

    with pytest.raises(InventoryError, match="missing") as info:
        read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")
    assert report.data_keys[1] in str(info.value)
    assert not out.exists()
    # The other files were downloaded, then removed.
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"sourceBucket": "media-src", "fileFormat": ', "not valid JSON"),
        (b'["a list"]', "expected a JSON object"),
        (
            b'{"sourceBucket": "media-src", "fileFormat": "CSV", "fileSchema": "Bucket, Key"}',
            "missing field 'files'",
        ),
        (
            b'{"sourceBucket": "media-src", "fileFormat": "CSV", "fileSchema": "Bucket, Key", '
            b'"files": [{"key": "x.csv.gz", "size": 1}]}',
            "no valid MD5checksum",
        ),
        (b'{"sourceBucket": "media-src", "fileFormat": "CSV", "files": []}', "fileSchema"),
    ],
)
def test_malformed_manifest_names_file_and_problem(
    body: bytes, problem: str, s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    report = write_inventory_report(_dest(s3_client, settings), SOURCE, _objects(["a"]))
    _put_manifest(s3_client, settings.bucket, report, body)
    out = tmp_path / "objects.parquet"

    with pytest.raises(InventoryError) as info:
        read_inventory(report.location, s3_client, out, work_dir=tmp_path / "work")
    message = str(info.value)
    assert f"{report.folder}/manifest.json" in message
    assert problem in message
    assert not out.exists()


def test_report_lacking_needed_fields_is_refused(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    report = write_inventory_report(_dest(s3_client, settings), SOURCE, _objects(["a"]))
    doc = _manifest_doc(s3_client, settings.bucket, report)
    doc["fileSchema"] = doc["fileSchema"].replace("ETag", "ChecksumAlgorithm")
    _put_manifest(s3_client, settings.bucket, report, json.dumps(doc).encode())

    with pytest.raises(InventoryError, match="e_tag"):
        read_inventory(report.location, s3_client, tmp_path / "o.parquet", work_dir=tmp_path)
    assert not (tmp_path / "o.parquet").exists()


def test_wrong_source_bucket_is_refused(s3_client: Any, settings: Settings, tmp_path: Path) -> None:
    report = write_inventory_report(_dest(s3_client, settings), SOURCE, _objects(["a"]))
    out = tmp_path / "objects.parquet"

    with pytest.raises(InventoryError, match=r"'media-src', expected 'other-bucket'"):
        read_inventory(
            report.location, s3_client, out, work_dir=tmp_path, expected_bucket="other-bucket"
        )
    assert not out.exists()


def test_orc_report_is_clearly_unsupported(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    report = write_inventory_report(_dest(s3_client, settings), SOURCE, _objects(["a"]))
    doc = _manifest_doc(s3_client, settings.bucket, report)
    doc["fileFormat"] = "ORC"
    doc["fileSchema"] = "struct<bucket:string,key:string>"
    _put_manifest(s3_client, settings.bucket, report, json.dumps(doc).encode())

    with pytest.raises(InventoryError, match="ORC inventory reports are not supported"):
        read_inventory(report.location, s3_client, tmp_path / "o.parquet", work_dir=tmp_path)


# -- locations and local reports --------------------------------------------------------------


def test_location_parse() -> None:
    loc = InventoryLocation.parse("s3://dest/inv/media/daily")
    assert (loc.kind, loc.bucket, loc.prefix) == ("s3", "dest", "inv/media/daily/")
    assert InventoryLocation.parse("s3://dest").prefix == ""
    assert InventoryLocation.parse("s3://dest/").prefix == ""
    local = InventoryLocation.parse("/var/inv/media/daily/")
    assert (local.kind, local.path) == ("local", Path("/var/inv/media/daily"))
    assert InventoryLocation.parse("file:///x/y").path == Path("/x/y")
    for bad in ("", "s3://", "https://example.com/inv/"):
        with pytest.raises(InventoryError):
            InventoryLocation.parse(bad)


def test_synthetic_csv_report_round_trip(tmp_path: Path) -> None:
    rows = 3_000
    base = write_synthetic_csv_inventory(
        tmp_path / "day1", SOURCE, rows, all_versions=True, files=2, created=T0
    )
    changed = write_synthetic_csv_inventory(
        tmp_path / "day2", SOURCE, rows, all_versions=True, changed_fraction=0.2, seed=7
    )
    assert len(base.data_keys) == 2

    s1 = read_inventory(base.location, None, tmp_path / "s1.parquet", work_dir=tmp_path / "w")
    s2 = read_inventory(changed.location, None, tmp_path / "s2.parquet", work_dir=tmp_path / "w")

    kept, noncurrent, markers = synthetic_kept_rows(rows, all_versions=True)
    for stats in (s1, s2):
        assert (stats.rows, stats.skipped_noncurrent, stats.skipped_delete_markers) == (
            kept,
            noncurrent,
            markers,
        )
    con = duckdb.connect()
    keys, distinct, special = con.execute(
        "SELECT count(*), count(DISTINCT key), count(*) FILTER (key LIKE '%C++ notes é 100\\%%'"
        " ESCAPE '\\') FROM read_parquet(?)",
        [str(tmp_path / "s1.parquet")],
    ).fetchone() or (0, 0, 0)
    assert keys == distinct == kept and special > 0
    differing = con.execute(
        "SELECT count(*) FROM read_parquet(?) a JOIN read_parquet(?) b USING (key) "
        "WHERE a.etag <> b.etag",
        [str(tmp_path / "s1.parquet"), str(tmp_path / "s2.parquet")],
    ).fetchone()
    assert differing is not None and 0.1 * kept < differing[0] < 0.3 * kept


# -- live listing -----------------------------------------------------------------------------


def test_live_listing_matches_the_bucket(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    keys = [*SPECIAL_KEYS, *(f"nested/{d}/{i}.bin" for d in "abc" for i in range(4))]
    expected = {}
    for i, key in enumerate(keys):
        body = f"body-{i}-".encode() * (i + 1)
        resp = s3_client.put_object(Bucket=settings.bucket, Key=key, Body=body)
        expected[key] = (len(body), resp["ETag"].strip('"'))
    out = tmp_path / "listing.parquet"

    stats = list_to_snapshot(s3_client, settings.bucket, out, workers=3, batch_rows=4)

    rows = _rows(out)
    assert {r[1]: (r[3], r[4]) for r in rows} == expected
    assert len(rows) == len(keys)
    assert {r[0] for r in rows} == {settings.bucket}
    assert all(r[5] is not None and r[5].tzinfo is not None for r in rows)
    assert _describe(out) == [(name, typ) for name, typ, _ in SNAPSHOT_COLUMNS]
    assert stats.rows == len(keys)
    assert stats.bytes == sum(size for size, _ in expected.values())
    assert stats.path == out


def test_live_listing_of_a_prefix_and_of_an_empty_bucket(
    s3_client: Any, settings: Settings, tmp_path: Path
) -> None:
    empty = list_to_snapshot(s3_client, settings.bucket, tmp_path / "empty.parquet")
    assert empty.rows == 0 and _rows(tmp_path / "empty.parquet") == []
    validate_snapshot(tmp_path / "empty.parquet")

    for key in ("in/a.txt", "in/sub/b.txt", "out/c.txt", "top.txt"):
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=b"xyz")
    stats = list_to_snapshot(s3_client, settings.bucket, tmp_path / "p.parquet", prefix="in/")
    assert stats.rows == 2
    assert [r[1] for r in _rows(tmp_path / "p.parquet")] == ["in/a.txt", "in/sub/b.txt"]


def test_parquet_data_files_must_have_the_columns_the_file_schema_declares(tmp_path: Path) -> None:
    import hashlib
    import json as _json

    from media_pipeline.inventory import InventoryError, read_inventory, write_inventory_report

    report = write_inventory_report(
        tmp_path / "dest", "media", [("site/a.jpg", 3, "e1", None)], fmt="Parquet")
    manifest_path = Path(report.manifest_key)
    doc = _json.loads(manifest_path.read_text())
    doc["fileSchema"] = doc["fileSchema"].rstrip("}") + " optional binary owner_id (UTF8);}"
    data = _json.dumps(doc).encode()
    manifest_path.write_bytes(data)
    Path(report.checksum_key).write_text(hashlib.md5(data).hexdigest())
    out = tmp_path / "snapshot.parquet"
    with pytest.raises(InventoryError, match="owner_id"):
        read_inventory(report.location, None, out, work_dir=tmp_path / "work",
                       expected_bucket="media")
    assert not out.exists()
