"""The scanning engine: documents in, one Parquet fragment of references out.

Why this shape: a content source can hold millions of documents and gigabytes of text, and the
catalog must not be held while they are read (one writer at a time). So documents stream through
in chunks of a few MB to a pool of worker processes (extraction is pure Python and CPU-bound;
each worker receives the extractor and its :class:`KnownKeys` array once). A worker extracts a
whole chunk at once (its known-key lookups in one bulk call), computes the media id of every row
(``records.media_id_for``) and keeps one row per ``(content_type, content_id, media_id)`` of
each document, and hands the rows back as one Arrow IPC buffer; this process appends it to the
fragment, so the rows are written once and never read back. Only when a source yields the same
content id in two documents (e.g. a page's body and excerpt) can two rows share a key, and only
then does DuckDB fold the fragment into one row per ``(content_type, content_id, media_id)``.
The committer then replaces the source's rows from the fragment in one short transaction.

This process does little per document (it reads the source and ships text): the workers take
the rest, including counting UTF-8 bytes (free for ASCII text: ``str.isascii`` is O(1)).

Memory stays small whatever the source size: at most ``2 × workers`` chunks are in flight
(``chunk_bytes`` characters each, 4 MB by default) plus their rows, plus the known-key array (8
bytes a key, one copy per worker), plus DuckDB's fold when one is needed (capped at
``FOLD_MEMORY_LIMIT``, spilling to ``out_dir``); the one thing that grows with the source is 8
bytes per document that has references (a hash of its content id, to notice repeats: 80 MB for
10 million such documents).

Failure: if the document iterator (or a worker) raises, the exception propagates unchanged and
every file this call wrote is removed, so the caller keeps the old index for that source.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
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
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from media_pipeline.references.document import Document
from media_pipeline.references.extract import RawExtraction, ReferenceExtractor
from media_pipeline.references.known_keys import KnownKeys, fast_md5

FRAGMENT_SCHEMA = pa.schema([
    ("content_type", pa.string()),
    ("content_id", pa.string()),
    ("bucket", pa.string()),  # NULL for media-id references
    ("key", pa.string()),  # NULL for media-id references
    ("media_id", pa.string()),
    ("form", pa.string()),
    ("snippet", pa.string()),  # mentions and bare media ids: where they were found
])
FOLD_MEMORY_LIMIT = "512MB"
WORKER_GC_THRESHOLD = 50_000
# Columns with few distinct values are dictionary-encoded; the fragment is read once, by the
# committer, and then deleted, so it is not compressed (that would cost this process ~2x the
# writing time for ~1/3 less disk).
_PARQUET_OPTIONS: dict[str, Any] = {
    "use_dictionary": ["content_type", "content_id", "bucket", "form"],
    "compression": "none",
}

Progress = Callable[[int, int], None]
"""Called after each chunk with (documents scanned so far, bytes scanned so far)."""

_Chunk = list[tuple[str, str, str, str]]
# documents, bytes, text fallbacks, rows, the rows as an Arrow IPC stream, content-id hashes of
# the documents that have rows
_ChunkResult = tuple[int, int, int, int, bytes, bytes]

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
                  ) -> tuple[dict[str, str], dict[str, str], bool, dict[str, str]]:
    """key -> form, media id -> form of one document, whether it fell back, and snippets.

    A key found in several forms keeps the form that sorts first, a mention only when nothing
    else was found, so every run and worker count gives the same row.
    """
    if isinstance(doc, Document):
        text, fmt = doc.text, doc.format
    else:
        text, fmt = doc[2], doc[3]
    return _keys_by_form(extractor.extract_raw(text, fmt))


def _rank(form: str) -> tuple[bool, str]:
    return form == "mention", form


def _keys_by_form(found: RawExtraction
                  ) -> tuple[dict[str, str], dict[str, str], bool, dict[str, str]]:
    pairs, media_ids, fallback, snippets = found
    keys: dict[str, str] = {}
    for form, key in pairs:
        old = keys.get(key)
        if old is None or _rank(form) < _rank(old):
            keys[key] = form
    ids: dict[str, str] = {}
    for media_id, form in media_ids:
        old = ids.get(media_id)
        if old is None or form > old:  # shortcode before media_id
            ids[media_id] = form
    return keys, ids, fallback, snippets


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where the 32 hex digits go in the 36 characters of a UUID's text.
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def _uuid_texts(digests: bytes) -> pa.Array:
    """16-byte digests, concatenated -> their canonical UUID texts (``str(uuid.UUID(...))``),
    as an Arrow string array built with numpy instead of a Python string per row."""
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 16)
    n = raw.shape[0]
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 15]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = digits
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())])


def _content_hash(content_type: str, content_id: str) -> bytes:
    return hashlib.blake2b(f"{content_type}\x00{content_id}".encode("utf-8", "surrogatepass"),
                           digest_size=8).digest()


def _init_worker(token: str, extractor: ReferenceExtractor) -> None:
    """A pool worker: the extractor arrives pickled once; Ctrl-C and Dagster's interrupt
    handling belong to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _EXTRACTORS[token] = extractor
    _quiet_gc()


def _quiet_gc() -> None:
    """A worker allocates millions of short-lived tuples and strings a chunk, almost never a
    cycle: the cyclic collector ran every 700 allocations and walked every module object at
    each full collection (13-22% of a worker's CPU, measured). What the worker holds for good
    (modules, the extractor) is frozen out of the collections and they run 70x less often."""
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD)


def _scan_chunk(token: str, chunk: _Chunk) -> _ChunkResult:
    extractor = _EXTRACTORS[token]
    bucket = extractor.bucket
    md5 = fast_md5
    prefix = f"{bucket}\x00".encode()  # media id = MD5 of bucket NUL key (records.media_id_for)
    ct_col: list[str] = []
    cid_col: list[str] = []
    digests: list[bytes] = []
    values: list[tuple[str | None, str, str | None]] = []  # (key, form, snippet) of each row
    hashes: list[bytes] = []
    size = fallbacks = 0
    found = extractor.extract_many([(doc[2], doc[3]) for doc in chunk])
    for doc, extraction in zip(chunk, found, strict=True):
        text = doc[2]
        size += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        keys, media_ids, fell_back, snippets = _keys_by_form(extraction)
        fallbacks += fell_back
        if not keys and not media_ids:
            continue
        # One row per media id: a shortcode naming a key's media id adds nothing.
        rows: dict[bytes, tuple[str | None, str, str | None]] = {
            md5(prefix + key.encode()).digest(): (key, form, snippets.get(key))
            for key, form in keys.items()}
        if len(rows) < len(keys):  # an MD5 collision: keep what the fold keeps
            rows = _merge_collisions(prefix, keys, snippets)
        for media_id, form in media_ids.items():  # canonical UUID texts
            digest = bytes.fromhex(media_id.replace("-", ""))
            if digest not in rows or rows[digest][1] == "mention":
                rows[digest] = (None, form, snippets.get(media_id))
        content_type, content_id = doc[0], doc[1]
        hashes.append(_content_hash(content_type, content_id))
        n = len(rows)
        ct_col += [content_type] * n
        cid_col += [content_id] * n
        digests += rows
        values += rows.values()
    rows_n = len(ct_col)
    ipc = b""
    if rows_n:
        keys_array = pa.array([v[0] for v in values], pa.string())
        batch = pa.record_batch([
            pa.array(ct_col, pa.string()),
            pa.array(cid_col, pa.string()),
            pc.if_else(keys_array.is_valid(), pa.scalar(bucket, pa.string()),
                       pa.scalar(None, pa.string())),  # the bucket wherever there is a key
            keys_array,
            _uuid_texts(b"".join(digests)),
            pa.array([v[1] for v in values], pa.string()),
            pa.array([v[2] for v in values], pa.string()),
        ], schema=FRAGMENT_SCHEMA)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, FRAGMENT_SCHEMA) as writer:
            writer.write_batch(batch)
        ipc = sink.getvalue().to_pybytes()
    return len(chunk), size, fallbacks, rows_n, ipc, b"".join(hashes)


def _merge_collisions(prefix: bytes, keys: dict[str, str], snippets: dict[str, str],
                      ) -> dict[bytes, tuple[str | None, str, str | None]]:
    rows: dict[bytes, tuple[str | None, str, str | None]] = {}
    for key, form in keys.items():
        digest = fast_md5(prefix + key.encode()).digest()
        old = rows.get(digest)
        if old is not None and old[0] is not None:
            key, form = max(key, old[0]), min(form, old[1], key=_rank)
        rows[digest] = (key, form, snippets.get(key))
    return rows


def _chunks(documents: Iterable[Document], chunk_bytes: int, chunk_docs: int,
            ) -> Iterator[_Chunk]:
    chunk: _Chunk = []
    size = 0
    for doc in documents:
        text = doc.text
        if type(text) is not str:  # the common case costs one check
            if isinstance(text, bytes):  # a source that hands over raw bytes: read as UTF-8
                text = text.decode("utf-8", "replace")
            elif not isinstance(text, str):
                raise TypeError(f"document {doc.content_type}/{doc.content_id}: text must be "
                                f"str, got {type(text).__name__}")
        content_type, content_id = doc.content_type, doc.content_id
        if type(content_type) is not str or type(content_id) is not str:
            content_type, content_id = str(content_type), str(content_id)
        chunk.append((content_type, content_id, text, doc.format))
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
    fragment = out_dir / f"references-{token}.parquet"
    written = out_dir / f".references-{token}.rows.parquet"
    folded = out_dir / f".references-{token}.fold.parquet"
    spill_dir = out_dir / f".spill-{token}"
    stats = ScanStats()
    content_hashes: list[bytes] = []
    _EXTRACTORS[token] = extractor
    try:
        with pq.ParquetWriter(written, FRAGMENT_SCHEMA, **_PARQUET_OPTIONS) as writer:

            def collect(result: _ChunkResult) -> None:
                docs, size, fallbacks, rows, ipc, hashes = result
                stats.documents += docs
                stats.bytes += size
                stats.text_fallbacks += fallbacks
                stats.refs += rows
                if rows:
                    writer.write_table(pa.ipc.open_stream(ipc).read_all())
                    content_hashes.append(hashes)
                if progress is not None:
                    progress(stats.documents, stats.bytes)

            # Two chunks are read before any worker starts: a source that fails at once (a
            # refused connection) fails before there is a pool to stop, and a source of one
            # chunk is scanned here, without a pool's start-up.
            chunks = _chunks(documents, chunk_bytes, chunk_docs)
            head = list(itertools.islice(chunks, 2))
            if workers <= 1 or len(head) < 2:
                for chunk in itertools.chain(head, chunks):
                    collect(_scan_chunk(token, chunk))
            else:
                # forkserver, not fork: the caller may have threads (an S3 server, Dagster's
                # event threads) holding locks that a forked child would inherit held, and hang.
                pool = _pool_context().Pool(
                    workers, initializer=_init_worker, initargs=(token, extractor))
                try:
                    pending: deque[AsyncResult[_ChunkResult]] = deque()
                    for chunk in itertools.chain(head, chunks):
                        pending.append(pool.apply_async(_scan_chunk, (token, chunk)))
                        while len(pending) >= 2 * workers:
                            collect(pending.popleft().get())
                    while pending:
                        collect(pending.popleft().get())
                except Exception:
                    # A source failing mid-scan: the workers finish the few chunks they hold
                    # and exit. Pool.terminate (SIGTERM, then a join without a timeout) hung
                    # 300 s twice in the suite here; closing never has.
                    pool.close()
                    pool.join()
                    raise
                except BaseException:  # Ctrl-C, SystemExit: stop now
                    pool.terminate()
                    raise
                pool.close()
                pool.join()
        if _repeats(content_hashes):
            stats.refs = _fold(written, folded, spill_dir)
            os.replace(folded, fragment)
            written.unlink()
        else:
            os.replace(written, fragment)
        stats.fragments = [fragment]
    except BaseException:
        for path in (fragment, written, folded):
            path.unlink(missing_ok=True)
        raise
    finally:
        _EXTRACTORS.pop(token, None)
        shutil.rmtree(spill_dir, ignore_errors=True)
    stats.seconds = time.perf_counter() - started
    return stats


def _pool_context() -> Any:
    """The forkserver context, with this module preloaded in the server: each worker is forked
    with numpy, pyarrow and the extractor already imported instead of importing them itself
    (~0.3 CPU-seconds and up to a second before its first chunk, every scan). Python's own
    ``__main__`` preload never takes effect (the server is not given the main module's path),
    so it is kept but not relied on. Only matters before the server starts; once it runs, it
    keeps what it has."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__])
    return context


def _repeats(content_hashes: list[bytes]) -> bool:
    """Whether two documents with rows may share a content id (a hash collision says yes too,
    which only costs a fold)."""
    hashes = np.frombuffer(b"".join(content_hashes), dtype=np.uint64)
    if hashes.size < 2:
        return False
    hashes = np.sort(hashes)
    return bool((hashes[1:] == hashes[:-1]).any())


def _fold(written: Path, folded: Path, spill_dir: Path) -> int:
    """One row per (content_type, content_id, media_id); the row count."""
    spill_dir.mkdir(exist_ok=True)
    con = duckdb.connect(config={"memory_limit": FOLD_MEMORY_LIMIT,
                                 "temp_directory": str(spill_dir),
                                 "preserve_insertion_order": False})
    try:
        # Rows of one media id share bucket and key (the id is their hash) or have none
        # (shortcodes): max() keeps the key; the form is the first one of a key row.
        count = con.execute(
            f"""COPY (
                SELECT content_type, content_id, max(bucket) AS bucket, max(key) AS key,
                       media_id,
                       coalesce(min(form) FILTER (WHERE key IS NOT NULL AND form <> 'mention'),
                                min(form) FILTER (WHERE form <> 'mention'),
                                min(form)) AS form,
                       coalesce(min(snippet) FILTER (WHERE form <> 'mention'),
                                min(snippet)) AS snippet
                FROM read_parquet($file)
                GROUP BY content_type, content_id, media_id
            ) TO '{_sql_path(folded)}' (FORMAT parquet)""",
            {"file": str(written)},
        ).fetchone()
    finally:
        con.close()
    return int(count[0]) if count else 0


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
