"""Populated catalogs for the catalog benchmarks: N objects in a few namespaces, with members and
a realistic share of scanned references, built fast and cached under ``benchmarks/.data/``.

Only the public stages and ``MediaLibrary`` are used, except :func:`_bulk_references` (the
catalog's bulk reference path, what a source scan commits): generating and scanning 100,000s of
documents would take longer than the benchmark itself. It is the one function to adapt when the
catalog's internals change.

    objects       N keys ``ns-XX/YYYY/MM/file-I.ext`` over NAMESPACES namespaces, made by the
                  inventory stage from a snapshot Parquet (``stages.commit_inventory``)
    fingerprints  every object active, merged by the fingerprint stage (``fingerprint_pending``
                  picks up fragments left in ``work/fingerprints/``; nothing is read from S3)
    namespaces    created by a global admin through ``MediaLibrary``, with APP_USER as a member
                  admin of each and two editors
    references    REFERENCED_SHARE of the objects (i % 10 < 3) used by 1-3 pages of the
                  content source ``bench-cms``
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from media_pipeline.catalog import open_catalog
from media_pipeline.fingerprint.reader import fragment_schema
from media_pipeline.inventory.snapshot import SNAPSHOT_SCHEMA
from media_pipeline.library import MediaLibrary
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.stages import commit_inventory, fingerprint_pending, inventory_snapshot_path

DATA = Path(__file__).parent / ".data"
BUCKET = "bench-catalog"
NAMESPACES = 20
ADMIN = "bench-admin"  # a global admin (MEDIA_PIPELINE_ADMINS)
APP_USER = "bench-app"  # what a web application acts as: admin of every namespace
SOURCE = "bench-cms"
REFERENCED_SHARE = 0.3
EXTENSIONS = ("jpg", "png", "webp", "pdf")
TYPES = ("image/jpeg", "image/png", "image/webp", "application/pdf")


def namespace_of(i: int) -> str:
    return f"ns-{i % NAMESPACES:02d}"


def key_of(i: int) -> str:
    return (f"{namespace_of(i)}/{2015 + i % 10}/{i % 12 + 1:02d}/file-{i}."
            f"{EXTENSIONS[i % len(EXTENSIONS)]}")


def is_referenced(i: int) -> bool:
    """Objects the population gives scanned references (their delete is refused)."""
    return i % 10 < 3


def media_id_of(i: int) -> str:
    return media_id_for(BUCKET, key_of(i))


def bench_settings(home: Path, **overrides: Any) -> Settings:
    """The environment's settings (so a lake's metadata/data settings apply as they are) with the
    benchmark's home, bucket and admin; S3 is never contacted while populating."""
    base = dict(home=home, bucket=BUCKET, admins=frozenset({ADMIN}),
                near_duplicate_embeddings=False)
    settings = Settings.from_env(**{**base, **overrides})
    if settings.endpoint_url is None and settings.access_key_id is None:
        settings = replace(settings, endpoint_url="http://127.0.0.1:9100")
    return settings


def _sql_key() -> str:
    """``key_of`` in SQL over a column ``i``."""
    exts = ", ".join(f"'{e}'" for e in EXTENSIONS)
    return (f"'ns-' || lpad((i % {NAMESPACES})::VARCHAR, 2, '0') || '/' || (2015 + i % 10) "
            f"|| '/' || lpad((i % 12 + 1)::VARCHAR, 2, '0') || '/file-' || i || '.' "
            f"|| [{exts}][i % {len(EXTENSIONS)} + 1]")


def _write(con: duckdb.DuckDBPyConnection, sql: str, path: Path, schema: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    relation = con.sql(sql)
    # DuckDB 2.0 names it to_arrow_reader, 1.x fetch_arrow_reader.
    reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in reader(500_000):
            writer.write_batch(batch.cast(schema))
    tmp.replace(path)


def _objects_sql(n: int) -> str:
    return f"""
        SELECT '{BUCKET}' AS bucket, {_sql_key()} AS key, NULL::VARCHAR AS version_id,
               (1000 + hash(i) % 5000000)::BIGINT AS size, md5('etag' || i) AS etag,
               TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i) AS last_modified,
               'STANDARD' AS storage_class
        FROM range({n}) t(i)"""


def _fingerprints_sql(n: int) -> str:
    types = ", ".join(f"'{t}'" for t in TYPES)
    return f"""
        SELECT md5('{BUCKET}' || chr(0) || {_sql_key()})::UUID::VARCHAR AS media_id,
               md5('etag' || i) AS etag, 'active' AS status,
               md5('content' || i) || md5('more' || i) AS file_hash,
               'computed' AS hash_source,
               [{types}][i % {len(TYPES)} + 1] AS content_type,
               [{types}][i % {len(TYPES)} + 1] AS declared_content_type,
               NULL::UBIGINT AS phash, 800::BIGINT AS width, 600::BIGINT AS height,
               NULL::BIGINT AS page_count, '{{}}' AS metadata,
               NULL::VARCHAR AS quarantine_reason, 0::BIGINT AS bytes_read,
               NULL::VARCHAR AS error
        FROM range({n}) t(i)"""


def _references_sql(n: int) -> str:
    # Pages p referencing object i: i % 10 < 3, 1-3 pages each (p = i*3 + j, j < 1 + i % 3).
    return f"""
        SELECT 'page' AS content_type, (i * 3 + j)::VARCHAR AS content_id,
               '{BUCKET}' AS bucket, {_sql_key()} AS key,
               md5('{BUCKET}' || chr(0) || {_sql_key()})::UUID::VARCHAR AS media_id,
               'url' AS form, NULL::VARCHAR AS snippet
        FROM range({n}) t(i), range(3) u(j)
        WHERE i % 10 < 3 AND j < 1 + i % 3"""


def _bulk_references(settings: Settings, fragment: Path, documents: int) -> dict[str, Any]:
    """The catalog's bulk path for a source scan's references (see the module docstring)."""
    started = datetime.now(UTC)
    with open_catalog(settings) as catalog:
        return dict(catalog.replace_source_references(
            SOURCE, [fragment], started,
            stats={"documents": documents, "references": 0, "bytes": documents * 1000}))


def populate(settings: Settings, n: int, log: Any = print) -> dict[str, float]:
    """Fill an empty catalog at ``settings`` with ``n`` objects; returns the seconds per step."""
    work = settings.home / "bench-populate"
    work.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    steps: dict[str, float] = {}

    started = time.perf_counter()
    snapshot = inventory_snapshot_path(settings)
    _write(con, _objects_sql(n), snapshot, SNAPSHOT_SCHEMA)
    snapshot.with_suffix(".json").write_text(json.dumps(
        {"bucket": BUCKET, "source": "inventory", "as_of": "2026-01-01T00:00:00+00:00"}))
    diff = commit_inventory(settings)
    steps["inventory"] = time.perf_counter() - started
    log(f"  inventory: {steps['inventory']:.1f} s ({diff})")

    started = time.perf_counter()
    _write(con, _fingerprints_sql(n), settings.work_dir / "fingerprints" / "bench.parquet",
           fragment_schema())
    stats = fingerprint_pending(settings, client=None)
    steps["fingerprints"] = time.perf_counter() - started
    log(f"  fingerprints: {steps['fingerprints']:.1f} s (resumed {stats.resumed_fragments}, "
        f"read {stats.objects})")

    started = time.perf_counter()
    library = MediaLibrary(settings)
    for k in range(NAMESPACES):
        ns = namespace_of(k)
        library.create_namespace(ns, ADMIN)
        library.add_member(ns, APP_USER, "admin", ADMIN)
        for e in range(2):
            library.add_member(ns, f"editor-{e}@{ns}", "editor", ADMIN)
    steps["namespaces"] = time.perf_counter() - started
    log(f"  namespaces and members: {steps['namespaces']:.1f} s")

    started = time.perf_counter()
    refs = work / "references.parquet"
    con.execute(f"COPY ({_references_sql(n)}) TO '{refs}' (FORMAT parquet, COMPRESSION zstd)")
    pages = con.execute(f"SELECT count(DISTINCT content_id) FROM '{refs}'").fetchone()
    outcome = _bulk_references(settings, refs, int(pages[0]) if pages else 0)
    steps["references"] = time.perf_counter() - started
    log(f"  references: {steps['references']:.1f} s (state {outcome.get('state')})")
    con.close()
    shutil.rmtree(work)
    return steps


def cached_home(n: int, log: Any = print) -> Path:
    """The populated home for ``n`` objects, built once (``benchmarks/.data/catalog-N/home``)."""
    root = DATA / f"catalog-{n}"
    home, done = root / "home", root / "populated.json"
    if done.exists():
        return home
    shutil.rmtree(root, ignore_errors=True)
    log(f"populating a catalog of {n:,} objects in {home} (once; cached)")
    steps = populate(bench_settings(home), n, log)
    done.write_text(json.dumps({"objects": n, "seconds": steps}))
    return home


def working_copy(n: int, log: Any = print) -> Path:
    """A copy of the cached home to measure on, so runs do not change the cache."""
    source = cached_home(n, log)
    target = DATA / f"catalog-{n}-run" / "home"
    shutil.rmtree(target.parent, ignore_errors=True)
    shutil.copytree(source, target)
    return target
