"""Populated catalogs for the catalog benchmarks: N objects in a few namespaces, with members and
a realistic share of scanned references, built fast and cached under ``benchmarks/.data/``.

Only the public stages, the reference scan and ``MediaLibrary`` are used (no catalog
internals), so the same code populates any catalog the settings name.

    objects       N keys ``ns-XX/YYYY/MM/file-I.ext`` over NAMESPACES namespaces, made by the
                  inventory stage from a snapshot Parquet (``stages.commit_inventory``)
    fingerprints  every object active, merged by the fingerprint stage (``fingerprint_pending``
                  picks up fragments left in ``work/fingerprints/``; nothing is read from S3)
    namespaces    created by a global admin through ``MediaLibrary``, with APP_USER as a member
                  admin of each and two editors
    references    REFERENCED_SHARE of the objects (i % 10 < 3) used by 1-3 pages each: a
                  SQLite table of HTML pages (about 20 S3 URLs a page), the ``sql`` content
                  source ``bench-cms``, scanned by ``references.index.scan_sources``
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from media_pipeline.fingerprint.reader import fragment_schema
from media_pipeline.inventory.snapshot import SNAPSHOT_SCHEMA
from media_pipeline.library import MediaLibrary
from media_pipeline.records import media_id_for
from media_pipeline.references.index import scan_sources
from media_pipeline.settings import Settings
from media_pipeline.stages import commit_inventory, fingerprint_pending, inventory_snapshot_path

DATA = Path(__file__).parent / ".data"
BUCKET = "bench-catalog"
VERSION = 3  # of the population (3: sorted tables): a cache of another version is rebuilt
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


PAGE_BLOCK = 100  # objects per block; page (block, j) uses the block's objects with j < 1 + i % 3


def _write_pages(n: int, path: Path) -> int:
    """The CMS: HTML pages referring to the objects (see the module docstring); returns the
    number of pages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)

    def pages() -> Iterator[tuple[str, str]]:
        for block in range(-(-n // PAGE_BLOCK)):
            objects = [i for i in range(block * PAGE_BLOCK, min(n, (block + 1) * PAGE_BLOCK))
                       if is_referenced(i)]
            for j in range(3):
                used = [i for i in objects if j < 1 + i % 3]
                if used:
                    body = "".join(
                        f'<p>Section {i}</p><img src="https://{BUCKET}.s3.amazonaws.com/'
                        f'{key_of(i)}" alt="">' for i in used)
                    page = f"{block}-{j}"
                    yield page, f"<html><body><h1>Page {page}</h1>{body}</body></html>"

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE pages (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    con.executemany("INSERT INTO pages VALUES (?, ?)", pages())
    con.commit()
    count = con.execute("SELECT count(*) FROM pages").fetchone()[0]
    con.close()
    return int(count)


def _scan_pages(settings: Settings, n: int) -> tuple[int, Any]:
    db = settings.home / "cms" / "pages.sqlite"
    pages = _write_pages(n, db)
    sources = settings.home / "cms" / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - name: {SOURCE}\n"
        "    type: sql\n"
        f"    url: sqlite:///{db}\n"
        "    table: pages\n"
        "    columns: {content_id: id, text: [body]}\n"
        "    content_type: page\n"
        "    format: html\n")
    [outcome] = scan_sources(replace(settings, content_sources=sources), [SOURCE])
    return pages, outcome


def populate(settings: Settings, n: int, log: Any = print) -> dict[str, float]:
    """Fill an empty catalog at ``settings`` with ``n`` objects; returns the seconds per step."""
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
    pages, outcome = _scan_pages(settings, n)
    steps["references"] = time.perf_counter() - started
    if not outcome.ok or outcome.state != "trusted":
        raise RuntimeError(f"the population's reference scan failed: {outcome}")
    log(f"  references: {steps['references']:.1f} s ({pages:,} pages, {outcome.refs:,} "
        f"references)")
    con.close()
    return steps


def cached_home(n: int, log: Any = print) -> Path:
    """The populated home for ``n`` objects, built once (``benchmarks/.data/catalog-N/home``)."""
    root = DATA / f"catalog-{n}"
    home, done = root / "home", root / "populated.json"
    if done.exists() and json.loads(done.read_text()).get("version") == VERSION:
        return home
    shutil.rmtree(root, ignore_errors=True)
    log(f"populating a catalog of {n:,} objects in {home} (once; cached)")
    steps = populate(bench_settings(home), n, log)
    done.write_text(json.dumps({"version": VERSION, "objects": n, "seconds": steps}))
    return home


def working_copy(n: int, log: Any = print) -> Path:
    """A copy of the cached home to measure on, so runs do not change the cache."""
    source = cached_home(n, log)
    target = DATA / f"catalog-{n}-run" / "home"
    shutil.rmtree(target.parent, ignore_errors=True)
    shutil.copytree(source, target)
    return target
