"""How fast does an S3 Inventory CSV.gz report become an object snapshot?

Generates a synthetic AWS-format report (default 5,000,000 rows, one CSV.gz) under
benchmarks/.data/ (reused on later runs), then times, on the same data file(s):

  * plain DuckDB: ``CREATE TABLE t AS SELECT * FROM read_csv(...)`` (the yardstick), and
  * ``read_inventory`` end to end: find the newest manifest, verify manifest.checksum and the data
    file's MD5, decode keys, drop non-current versions / delete markers, write the Parquet snapshot.

The target is read_inventory at >= half the rows/s of plain DuckDB. Prints figures only.
With ``--s3`` the report is also uploaded to an embedded S3 server (moto, over HTTP) and read
through its ``s3://`` location, which adds the streamed download + MD5 to the timing.

    .venv/bin/python -m benchmarks.bench_inventory_read [--rows N] [--all-versions] [--repeat K]
                                                         [--files F] [--s3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer

from benchmarks.bench_inventory import plain_duckdb
from media_pipeline.inventory import (
    find_latest_manifest,
    read_inventory,
    synthetic_kept_rows,
    write_synthetic_csv_inventory,
)
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket, make_client

DATA = Path(__file__).parent / ".data"


def _report(rows: int, all_versions: bool, files: int) -> Path:
    """The report's location, generated once per (rows, all_versions, files)."""
    root = DATA / f"inventory-{rows}-{'all' if all_versions else 'current'}-{files}"
    location = root / "bench-bucket" / "daily"
    if location.is_dir():
        try:
            find_latest_manifest(location, None)
            return location
        except Exception:  # noqa: BLE001 - regenerate anything unusable
            shutil.rmtree(root)
    print(f"generating {rows:,} rows ({'all versions' if all_versions else 'current'}) ...")
    started = time.perf_counter()
    report = write_synthetic_csv_inventory(
        root,
        "bench-bucket",
        rows,
        all_versions=all_versions,
        files=files,
        created=datetime(2026, 1, 1, tzinfo=UTC),
    )
    size = sum(Path(k).stat().st_size for k in report.data_keys)
    print(f"  {time.perf_counter() - started:.1f} s, {size / 1e6:.0f} MB gzip")
    return Path(report.location)


def _read_inventory(
    location: Path | str, rows: int, all_versions: bool, client: Any = None
) -> float:
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        out = Path(tmp) / "snapshot.parquet"
        started = time.perf_counter()
        stats = read_inventory(
            location, client, out, work_dir=Path(tmp) / "work", expected_bucket="bench-bucket"
        )
        elapsed = time.perf_counter() - started
        kept, noncurrent, markers = synthetic_kept_rows(rows, all_versions)
        assert (stats.rows, stats.skipped_noncurrent, stats.skipped_delete_markers) == (
            kept,
            noncurrent,
            markers,
        ), stats
        size = out.stat().st_size
    print(f"  snapshot {size / 1e6:.0f} MB, {stats.rows:,} rows kept")
    return elapsed


def _upload(location: Path) -> tuple[Any, Any, str]:
    """Start an embedded S3 server and copy the report folder into it (same keys)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = Settings(
        endpoint_url=f"http://{host}:{port}",
        access_key_id="bench",
        secret_access_key="bench",
        bucket="inventory-dest",
    )
    client = make_client(settings)
    ensure_bucket(client, settings.bucket)
    root = location.parent.parent
    for path in sorted(location.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                key = path.relative_to(root).as_posix()
                client.put_object(Bucket=settings.bucket, Key=key, Body=fh)
    rel = location.relative_to(root).as_posix()
    return server, client, f"s3://{settings.bucket}/{rel}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--all-versions", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--s3", action="store_true", help="also read through an embedded S3")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    location = _report(args.rows, args.all_versions, args.files)
    plain, ours = [], []
    for _ in range(args.repeat):
        plain.append(plain_duckdb(location, ":memory:", expect_rows=args.rows))
        ours.append(_read_inventory(location, args.rows, args.all_versions))
    best_plain, best_ours = min(plain), min(ours)
    print(f"rows: {args.rows:,} ({'all versions' if args.all_versions else 'current only'})")
    print(
        f"plain DuckDB CTAS read_csv: {best_plain:6.2f} s  {args.rows / best_plain:12,.0f} rows/s"
    )
    print(f"read_inventory → snapshot: {best_ours:6.2f} s  {args.rows / best_ours:12,.0f} rows/s")
    print(f"ratio (ours / plain rate): {best_plain / best_ours:.2f}  (target >= 0.50)")
    if args.s3:
        server, client, uri = _upload(location)
        try:
            via_s3 = min(
                _read_inventory(uri, args.rows, args.all_versions, client)
                for _ in range(args.repeat)
            )
        finally:
            server.stop()
        print(
            f"read_inventory from s3:// : {via_s3:6.2f} s  {args.rows / via_s3:12,.0f} rows/s"
            f"  (ratio {best_plain / via_s3:.2f}; includes download + MD5)"
        )


if __name__ == "__main__":
    main()
