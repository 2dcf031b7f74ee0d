"""The scanning engine: documents in, one Parquet fragment of references out.

Why this shape: a content source can hold millions of documents and gigabytes of text, and the
catalog must not be held while they are read (one writer at a time). So documents stream through
in chunks of a few MB to a pool of worker processes (extraction is pure Python and CPU-bound;
each worker receives the extractor and its :class:`KnownKeys` array once), each chunk
becomes a small Parquet part, and at the end DuckDB folds the parts into one fragment with one
row per distinct ``(content_type, content_id, media_id)`` — also when a source yields the same
content id twice. The committer then replaces the source's rows from that fragment in one short
transaction.

Memory is bounded whatever the source size: at most ``2 × workers`` chunks are in flight
(``chunk_bytes`` characters each, 4 MB by default), plus the known-key array (8 bytes a key,
shared), plus DuckDB's final fold (capped at ``FOLD_MEMORY_LIMIT``, spilling to ``out_dir``).

Failure: if the document iterator (or a worker) raises, the exception propagates unchanged and
every file this call wrote is removed, so the caller keeps the old index for that source.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from media_pipeline.references.document import Document
from media_pipeline.references.extract import ReferenceExtractor
from media_pipeline.references.known_keys import KnownKeys

FRAGMENT_SCHEMA = pa.schema([
    ("content_type", pa.string()),
    ("content_id", pa.string()),
    ("bucket", pa.string()),  # NULL for media-id references
    ("key", pa.string()),  # NULL for media-id references
    ("media_id", pa.string()),
    ("form", pa.string()),
])
FOLD_MEMORY_LIMIT = "512MB"

Progress = Callable[[int, int], None]
"""Called after each chunk with (documents scanned so far, bytes scanned so far)."""

_Chunk = list[tuple[str, str, str, str]]
_ChunkResult = tuple[int, int, int]  # documents, bytes, text fallbacks

# Extractors by scan token: this process's for in-process scans, a worker's from its initializer.
_EXTRACTORS: dict[str, ReferenceExtractor] = {}


@dataclass
class ScanStats:
    documents: int = 0
    bytes: int = 0
    refs: int = 0
    text_fallbacks: int = 0
    fragments: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def document_rows(extractor: ReferenceExtractor, doc: Document | tuple[str, str, str, str],
                  ) -> tuple[dict[str, str], list[str], bool]:
    """key -> form and the shortcode media ids of one document, and whether it fell back.

    A key found in several forms keeps the form that sorts first, so every run and worker count
    gives the same row. Media ids of keys are left to the fold (DuckDB hashes them in bulk).
    """
    if isinstance(doc, Document):
        text, fmt = doc.text, doc.format
    else:
        text, fmt = doc[2], doc[3]
    found, media_ids, fallback = extractor.extract_raw(text, fmt)
    keys: dict[str, str] = {}
    for form, key in found:
        old = keys.get(key)
        if old is None or form < old:
            keys[key] = form
    return keys, media_ids, fallback


def _init_worker(token: str, extractor: ReferenceExtractor) -> None:
    """A pool worker: the extractor arrives pickled once; Ctrl-C and Dagster's interrupt
    handling belong to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _EXTRACTORS[token] = extractor


def _scan_chunk(token: str, chunk: _Chunk, part: str) -> _ChunkResult:
    extractor = _EXTRACTORS[token]
    bucket = extractor.bucket
    columns: list[list[str | None]] = [[] for _ in FRAGMENT_SCHEMA.names]
    ct_col, cid_col, bucket_col, key_col, id_col, form_col = columns
    size = fallbacks = 0
    for doc in chunk:
        size += len(doc[2].encode("utf-8", "surrogatepass"))
        keys, media_ids, fell_back = document_rows(extractor, doc)
        fallbacks += fell_back
        for key, form in keys.items():
            ct_col.append(doc[0])
            cid_col.append(doc[1])
            bucket_col.append(bucket)
            key_col.append(key)
            id_col.append(None)  # md5(bucket NUL key) as a UUID, computed by the fold
            form_col.append(form)
        for media_id in dict.fromkeys(media_ids):
            ct_col.append(doc[0])
            cid_col.append(doc[1])
            bucket_col.append(None)
            key_col.append(None)
            id_col.append(media_id)
            form_col.append("shortcode")
    if ct_col:
        table = pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns],
                                     schema=FRAGMENT_SCHEMA)
        pq.write_table(table, part)
    return len(chunk), size, fallbacks


def _chunks(documents: Iterable[Document], chunk_bytes: int, chunk_docs: int,
            ) -> Iterator[_Chunk]:
    chunk: _Chunk = []
    size = 0
    for doc in documents:
        text = doc.text
        if isinstance(text, bytes):  # a source that hands over raw bytes: read them as UTF-8
            text = text.decode("utf-8", "replace")
        elif not isinstance(text, str):
            raise TypeError(f"document {doc.content_type}/{doc.content_id}: text must be str, "
                            f"got {type(text).__name__}")
        chunk.append((str(doc.content_type), str(doc.content_id), text, doc.format))
        size += len(text)
        if size >= chunk_bytes or len(chunk) >= chunk_docs:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def scan_documents(
    documents: Iterable[Document],
    extractor: ReferenceExtractor,
    out_dir: Path,
    *,
    known_keys: KnownKeys | None = None,
    workers: int = 2,
    progress: Progress | None = None,
    chunk_bytes: int = 4_000_000,
    chunk_docs: int = 5_000,
) -> ScanStats:
    """Extract references from every document into one Parquet fragment in ``out_dir``.

    ``known_keys`` (see :class:`KnownKeys`, e.g. ``KnownKeys.from_duckdb(con, "SELECT key FROM
    media_files WHERE bucket = ?", [bucket])``) resolves ambiguous URLs to keys that exist; without
    it the extractor's own set is used. ``workers <= 1`` scans in this process.
    """
    started = time.perf_counter()
    if known_keys is not None:
        extractor = extractor.with_known_keys(known_keys)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    parts_dir = out_dir / f".parts-{token}"
    parts_dir.mkdir()
    fragment = out_dir / f"references-{token}.parquet"
    stats = ScanStats()
    _EXTRACTORS[token] = extractor
    try:
        chunks = _chunks(documents, chunk_bytes, chunk_docs)

        def collect(result: _ChunkResult) -> None:
            stats.documents += result[0]
            stats.bytes += result[1]
            stats.text_fallbacks += result[2]
            if progress is not None:
                progress(stats.documents, stats.bytes)

        if workers <= 1:
            for i, chunk in enumerate(chunks):
                collect(_scan_chunk(token, chunk, str(parts_dir / f"{i:08d}.parquet")))
        else:
            # forkserver, not fork: the caller may have threads (an S3 server, Dagster's
            # event threads) holding locks that a forked child would inherit held, and hang.
            with multiprocessing.get_context("forkserver").Pool(
                    workers, initializer=_init_worker, initargs=(token, extractor)) as pool:
                pending: deque[AsyncResult[_ChunkResult]] = deque()
                for i, chunk in enumerate(chunks):
                    part = str(parts_dir / f"{i:08d}.parquet")
                    pending.append(pool.apply_async(_scan_chunk, (token, chunk, part)))
                    while len(pending) >= 2 * workers:
                        collect(pending.popleft().get())
                while pending:
                    collect(pending.popleft().get())
                pool.close()
                pool.join()
        stats.refs = _fold(sorted(parts_dir.glob("*.parquet")), fragment, parts_dir)
        stats.fragments = [fragment]
    except BaseException:
        fragment.unlink(missing_ok=True)
        fragment.with_name(fragment.name + ".tmp").unlink(missing_ok=True)
        raise
    finally:
        _EXTRACTORS.pop(token, None)
        shutil.rmtree(parts_dir, ignore_errors=True)
    stats.seconds = time.perf_counter() - started
    return stats


def _fold(parts: list[Path], fragment: Path, spill_dir: Path) -> int:
    """One row per (content_type, content_id, media_id) across all parts; the row count."""
    tmp = fragment.with_name(fragment.name + ".tmp")
    if not parts:
        pq.write_table(FRAGMENT_SCHEMA.empty_table(), tmp)
        os.replace(tmp, fragment)
        return 0
    con = duckdb.connect(config={"memory_limit": FOLD_MEMORY_LIMIT,
                                 "temp_directory": str(spill_dir),
                                 "preserve_insertion_order": False})
    try:
        files: list[Any] = [str(p) for p in parts]
        # The media id of a key row is records.media_id_for's SQL twin. Rows of one media id
        # share bucket and key (the id is their hash) or have none (shortcodes): max() keeps
        # the key; the form is the first one of a key row.
        count = con.execute(
            f"""COPY (
                WITH refs AS (
                    SELECT content_type, content_id, bucket, key, form,
                           coalesce(media_id, md5(bucket || chr(0) || key)::UUID::VARCHAR)
                               AS media_id
                    FROM read_parquet($files))
                SELECT content_type, content_id, max(bucket) AS bucket, max(key) AS key,
                       media_id,
                       coalesce(min(form) FILTER (WHERE key IS NOT NULL), min(form)) AS form
                FROM refs
                GROUP BY content_type, content_id, media_id
            ) TO '{_sql_path(tmp)}' (FORMAT parquet)""",
            {"files": files},
        ).fetchone()
    finally:
        con.close()
    os.replace(tmp, fragment)
    return int(count[0]) if count else 0


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
