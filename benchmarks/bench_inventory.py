"""Inventory ingest end to end: a 5,000,000-row CSV.gz S3 Inventory report into the catalog.

Ours: ``read_inventory`` (manifest + checksums, key decoding, snapshot Parquet) then the catalog
commit (``apply_inventory``: diff, insert/update, on the DuckLake). Beside it, in
the same run and on the same files: plain DuckDB ``CREATE TABLE t AS SELECT * FROM read_csv(...)``
into a fresh DuckDB file (and, for reference, into memory). Then the same with a report of the
next day in which 1% of the objects changed, against the catalog the first ingest built.

    .venv/bin/python -m benchmarks.bench_inventory [ROWS]
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from media_pipeline.catalog import Catalog
from media_pipeline.inventory import (
    find_latest_manifest,
    read_inventory,
    write_synthetic_csv_inventory,
)

DATA = Path(__file__).parent / ".data"
BUCKET = "bench-bucket"


def report(rows: int, changed: float) -> Path:
    root = DATA / f"ingest-{rows}-{changed}"
    location = root / BUCKET / "daily"
    if location.is_dir():
        try:
            find_latest_manifest(location, None)
            return location
        except Exception:  # noqa: BLE001 - regenerate anything unusable
            shutil.rmtree(root)
    written = write_synthetic_csv_inventory(
        root, BUCKET, rows, changed_fraction=changed, seed=1,
        created=datetime(2026, 1, 2 if changed else 1, tzinfo=UTC),
    )
    return Path(written.location)


def plain_duckdb(location: Path, database: str, expect_rows: int | None = None) -> float:
    """Seconds for `CREATE TABLE t AS SELECT * FROM read_csv(...)` over the report's data files
    (all columns as VARCHAR, as the manifest's fileSchema names them), into ``database``."""
    ref = find_latest_manifest(location, None)
    manifest = json.loads((location / ref.manifest_name).read_text())
    names = [n.strip() for n in manifest["fileSchema"].split(",")]
    files = [str(location / "data" / f["key"].rsplit("/", 1)[-1]) for f in manifest["files"]]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    if database != ":memory:":
        Path(database).unlink(missing_ok=True)
    con = duckdb.connect(database)
    started = time.perf_counter()
    con.execute(
        f"CREATE TABLE t AS SELECT * FROM read_csv({files}, header = false, "
        f"columns = {columns}, compression = 'gzip', auto_detect = false, quote = '\"')"
    )
    con.execute("CHECKPOINT")
    elapsed = time.perf_counter() - started
    if expect_rows is not None:
        count = con.execute("SELECT count(*) FROM t").fetchone()
        assert count is not None and count[0] == expect_rows, count
    con.close()
    if database != ":memory:":
        Path(database).unlink(missing_ok=True)
    return elapsed


def ours(location: Path, home: Path) -> tuple[float, float, object]:
    snapshot = home / "work" / "snapshot.parquet"
    started = time.perf_counter()
    read_inventory(location, None, snapshot, work_dir=home / "work", expected_bucket=BUCKET)
    read_s = time.perf_counter() - started
    with Catalog.open(home) as catalog:
        diff = catalog.objects.apply_inventory(snapshot, BUCKET, source="inventory")
    return read_s, time.perf_counter() - started, diff


def main(rows: int = 5_000_000) -> None:
    print(f"== inventory ingest: {rows:,}-row CSV.gz report into the catalog")
    first, second = report(rows, 0.0), report(rows, 0.01)
    home = DATA / "ingest-home"
    shutil.rmtree(home, ignore_errors=True)
    scratch = str(DATA / "plain.duckdb")

    plain_file = plain_duckdb(first, scratch)
    plain_mem = plain_duckdb(first, ":memory:")
    read_s, total_s, diff = ours(first, home)
    for label, seconds in (("file", plain_file), ("memory", plain_mem)):
        print(f"plain DuckDB CTAS read_csv → {label + ':':7} {seconds:6.2f} s  "
              f"{rows / seconds:>10,.0f} rows/s")
    print(f"ours, first ingest end to end:       {total_s:6.2f} s  {rows / total_s:>10,.0f} rows/s "
          f"(read {read_s:.2f} s + commit {total_s - read_s:.2f} s) = "
          f"{plain_file / total_s:.2f}× the file rate, {plain_mem / total_s:.2f}× the memory rate")
    print(f"  {diff}")

    plain_next = plain_duckdb(second, scratch)
    read_s, total_s, diff = ours(second, home)
    print(f"plain DuckDB read of the next day's report → file: {plain_next:6.2f} s")
    print(f"ours, re-ingest with 1% changed:     {total_s:6.2f} s "
          f"(read {read_s:.2f} s + commit {total_s - read_s:.2f} s) = "
          f"{total_s / plain_next:.2f}× the plain read")
    print(f"  {diff}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
