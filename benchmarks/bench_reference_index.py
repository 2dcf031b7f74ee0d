"""Reference index commits at scale: one content source of 1,000,000 references replaced in one
transaction over a catalog of 1,000,000 files, then rescanned with 1 % of them changed, then the
consistency check (counters vs a full recomputation) and the purge candidate query.

Data goes in through the real path (object snapshot → apply_inventory, Parquet fragment →
replace_source_references). Run: ``python -m benchmarks.bench_reference_index [files]``.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from media_pipeline.catalog import Catalog

DATA = Path(__file__).parent / ".data" / "reference_index"
BUCKET = "bench"


def make_inputs(files: int, out: Path) -> tuple[Path, Path, Path]:
    """An object snapshot, a scan fragment (one page per file, plus 2 % dangling references)
    and a rescan where 1 % of the pages point elsewhere."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    snap, first, second = out / "snapshot.parquet", out / "scan1.parquet", out / "scan2.parquet"
    key = "'ns' || (i % 20) || '/file-' || i || '.jpg'"
    ref_key = "'ns' || (j % 20) || '/file-' || j || '.jpg'"
    con.execute(
        f"""
        COPY (SELECT '{BUCKET}' AS bucket, {key} AS key, NULL::VARCHAR AS version_id,
                     (1000 + i % 50000)::BIGINT AS size, md5(i::VARCHAR) AS etag,
                     now()::TIMESTAMPTZ AS last_modified, 'STANDARD' AS storage_class
              FROM range({files}) t(i)) TO '{snap}' (FORMAT parquet)
        """
    )
    for path, shift in ((first, 0), (second, 1)):
        con.execute(
            f"""
            COPY (SELECT 'webpage' AS content_type, (i // 3)::VARCHAR AS content_id,
                         '{BUCKET}' AS bucket, {ref_key} AS key,
                         md5('{BUCKET}' || chr(0) || {ref_key})::UUID::VARCHAR
                             AS media_id, 'public_url' AS form
                  FROM (SELECT i, CASE WHEN {shift} = 1 AND i % 100 = 0 THEN (i + 7) % {files}
                                       ELSE i END AS j
                        FROM range({files}) t(i))
                  UNION ALL
                  SELECT 'blog_post', i::VARCHAR, '{BUCKET}', 'gone/' || i || '.png',
                         md5('{BUCKET}' || chr(0) || 'gone/' || i || '.png')::UUID::VARCHAR,
                         'cdn_url'
                  FROM range({files // 50}) t(i))
            TO '{path}' (FORMAT parquet)
            """
        )
    return snap, first, second


def main(files: int = 1_000_000) -> None:
    work = DATA / str(files)
    shutil.rmtree(work, ignore_errors=True)
    snap, first, second = make_inputs(files, work)
    print(f"reference index: {files:,} files, {files + files // 50:,} references in one source")
    with Catalog.open(work / "catalog.duckdb") as catalog:
        catalog.objects.apply_inventory(snap, BUCKET)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        result = catalog.references.replace_source_references("cms", [first], started)
        t1 = time.perf_counter()
        print(f"  first scan committed       {t1 - t0:6.2f} s  {result}")
        result = catalog.references.replace_source_references("cms", [second],
                                                              started + timedelta(hours=1))
        t2 = time.perf_counter()
        print(f"  rescan (1 % changed)       {t2 - t1:6.2f} s  {result}")
        mismatches = catalog.references.catalog_inconsistencies()
        t3 = time.perf_counter()
        print(f"  consistency check          {t3 - t2:6.2f} s  ({len(mismatches)} inconsistencies)")
        found = catalog.lifecycle.purge_candidates(started + timedelta(days=60),
                                                   started + timedelta(hours=1), 10)
        t4 = time.perf_counter()
        print(f"  purge candidate query      {t4 - t3:6.2f} s  ({found['count']} candidates)")
        ref = catalog.references.references_of(str(catalog.con.execute(
            "SELECT media_id FROM media_objects LIMIT 1").fetchone()[0]))  # type: ignore[index]
        t5 = time.perf_counter()
        print(f"  references_of (one file)   {(t5 - t4) * 1000:6.1f} ms {ref}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
