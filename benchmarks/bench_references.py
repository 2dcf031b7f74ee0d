"""Reference extraction at scale, beside the substring loop a user would write.

Data (generated once, cached in ``benchmarks/.data/references/``): a catalog of 1,000,000 keys (a
DuckDB file with a ``media_files``-like ``(bucket, key, media_id)`` table; keys with spaces, ``+``,
commas, parentheses and unicode among them) and 100,000 HTML pages totalling ~1 GB in a Parquet
file: markup, prose and 5-30 references each in mixed forms (public URL, CDN base, S3 virtual-host
and path-style, ``s3://``, signed URLs with ``&amp;`` queries, ``srcset``, CSS ``url()``, JSON with
escaped slashes in a data attribute, shortcodes); ~90% of the references are to known keys, the
rest dangling.

Figures: end to end — read the pages from Parquet, load the known keys from the catalog, extract,
resolve, write the fragment — in MB/s and documents/s; then the naive loop
``for doc in docs: for key in keys: if key in doc`` over a sample of pages against all 1,000,000
keys (``--naive-docs``, default 20), extrapolated linearly to the corpus, with how many of the
sample's references each approach found.

Mentions (issue 10): a second timed run with the purge's evidence on — every spelling of the keys
of ``--soft-deleted`` files (default 1,000, every k-th key) matched by Vectorscan, and known media
ids found anywhere — with the catalog loads, the matcher and the media-id set inside the timing,
against the 100 MB/s target; beside it ``rg -F -f <those spellings> -c`` over the same pages
written to text files (Debian package ``ripgrep``), and, with ``--rg-all-keys``, ripgrep given
every spelling of every key under an 8 GB address-space limit and a 300 s timeout. Each run also
prints its CPU-seconds (this process and the workers below it) and what they would give on two
cores of our own, since the machine the figures come from is shared.

Last measured (``--no-naive``, 2026-12-07 afternoon, 2 cores shared with other jobs at load
3-6; two pairs of runs, each back to back with the code as it was before the afternoon's work,
run from an exported copy). Now: today's scan 30.7 / 51.9 MB/s end to end, 33.1 / 26.6
CPU-seconds (64.0 / 79.5 MB/s on 2 free cores); with mentions 23.5 / 28.5 MB/s, 50.6 / 42.3
CPU-seconds (41.8 / 50.1); ripgrep over the 4,816 mention spellings 338 / 345 MB/s. Before:
25.4 / 29.2 MB/s, 37.5 / 38.5 CPU-seconds (56.5 / 55.0); with mentions 15.4 / 22.3 MB/s, 58.4
/ 52.7 CPU-seconds (36.3 / 40.2); ripgrep 317 / 351 MB/s. Of the CPU-seconds with mentions, the
workers spent 48.4 / 43.4 before and 41.1 / 34.1 now (-15% / -21%); this process (the Parquet
pages into Python strings ~3, the catalog loads ~1.5, shipping chunks, writing the fragment)
8-10 either way. Instructions (callgrind, one worker's ``_scan_chunk`` on the first 600 pages,
which load does not move): with mentions 188 M a MB before, 177 M after; without mentions
115 M, 110 M. What changed: the workers freeze their long-lived objects (modules, the
extractor) out of the cyclic GC and run it 70x less often (a 600-page count sees little of it;
the workers' CPU-seconds show it); the mention spellings and the UUID/trigger patterns are one
Vectorscan database, one pass a document (~15% less time for the scans, about the same
instructions), compiled once and shipped to the workers serialised; the mention pass
percent-decodes non-ASCII runs with ``escape_decode`` too (``unquote`` was most of the decoded
runs' time on any page with an ``&copy;``). Earlier that day (load 5.8-15): with mentions 50-52
CPU-seconds and 192 M instructions a MB (150 pages), from 66 and 268 M.

The 100 MB/s target with mentions is not met: it needs about 21 CPU-seconds for the 1,059 MB,
2x less than now. Where a worker's time goes (cProfile on a CPU clock, callgrind): the
extractor's per-URL Python ~40% (~2.2 us a quoted URL, 4-8 us a ``srcset`` entry, a prose URL
with trailing punctuation or an ``s3://`` key with spaces; bytecode, not the regex), the
mention pass's decoded runs ~15% (``bytes.translate`` of each page alone is 5% of the
instructions), regex scans of whole pages (``sre_search``, 13% of the instructions: the URL
prefixes, ``unescape``'s two passes, media tags), Vectorscan ~10%, the rows ~10%; and this
process is ~20% of the total.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from media_pipeline.records import media_id_for
from media_pipeline.references.document import Document
from media_pipeline.references.extract import ReferenceExtractor
from media_pipeline.references.known_keys import KnownKeys
from media_pipeline.references.mentions import MentionMatcher, spellings
from media_pipeline.references.scan import scan_documents
from media_pipeline.settings import Settings

DATA = Path(__file__).parent / ".data" / "references"
BUCKET = "media-bench"
MB = 1e6
SETTINGS = Settings(bucket=BUCKET, custom_domain="cdn.example.com",
                    cdn_base_urls=("https://img.example.net/assets",),
                    endpoint_url="http://127.0.0.1:9100")

_PROSE = ("the quick brown fox jumps over lazy dog media library content editor page article "
          "image photo gallery team release notes update summer winter product launch report "
          "customer story design system homepage banner")
WORDS = tuple(_PROSE.split(" "))
ODD = ("", "", "", "", " copy", " (1)", "+final", ",v2", " café", " naïve", "_ü")


def make_keys(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    keys = []
    for i in range(n):
        ns = ("blog", "shop", "news", "docs")[i % 4]
        word = WORDS[rng.randrange(len(WORDS))]
        ext = ("jpg", "png", "webp", "pdf")[rng.randrange(4)]
        keys.append(f"{ns}/{2015 + i % 10}/{i % 12 + 1:02d}/{word}-{i}{ODD[i % len(ODD)]}.{ext}")
    return keys


def _ref(rng: random.Random, key: str) -> str:
    enc = quote(key, safe="/")  # what a CMS writes into a URL
    kind = rng.randrange(12)
    if kind == 0:
        return f'<img src="https://cdn.example.com/{enc}" alt="{rng.choice(WORDS)}">'
    if kind == 1:
        return f'<a href="https://img.example.net/assets/{enc}">{rng.choice(WORDS)}</a>'
    if kind == 2:
        return f'<img src="https://{BUCKET}.s3.eu-west-1.amazonaws.com/{enc}">'
    if kind == 3:
        return f'<p>Download: https://s3.amazonaws.com/{BUCKET}/{enc}.</p>'
    if kind == 4:
        return f"<code>s3://{BUCKET}/{key}</code>"
    if kind == 5:
        return (f'<a href="https://{BUCKET}.s3.amazonaws.com/{enc}?X-Amz-Algorithm=AWS4-HMAC'
                f'-SHA256&amp;X-Amz-Expires=3600&amp;X-Amz-Signature={rng.getrandbits(128):032x}">'
                f"signed</a>")
    if kind == 6:
        return (f'<img srcset="https://cdn.example.com/{enc} 480w,'
                f'https://cdn.example.com/{enc} 800w">')
    if kind == 7:
        return f"<div style=\"background:url('https://cdn.example.com/{enc}')\"></div>"
    if kind == 8:
        j = ("https:\\/\\/cdn.example.com\\/" + enc.replace("/", "\\/"))
        return f'<div data-props="{{&quot;image&quot;:&quot;{j}&quot;}}"></div>'
    if kind == 9:
        return f"<p>[media id=\"{media_id_for(BUCKET, key)}\"]</p>"
    if kind == 10:
        return f'<source srcset="//cdn.example.com/{enc} 2x" type="image/webp">'
    return f'<img data-src="http://127.0.0.1:9100/{BUCKET}/{enc}">'


def make_page(rng: random.Random, keys: list[str], target: int) -> str:
    parts = ["<!doctype html><html><head><title>", " ".join(rng.choices(WORDS, k=6)),
             '</title><link rel="stylesheet" href="https://www.example.com/site.css"></head>'
             "<body><nav><a href=\"https://www.example.com/\">Home</a></nav><article>"]
    refs = rng.randint(5, 30)
    size = 0
    for _ in range(refs):
        key = keys[rng.randrange(len(keys))] if rng.random() < 0.9 else f"gone/{rng.random()}.jpg"
        para = " ".join(rng.choices(WORDS, k=rng.randint(20, 80)))
        chunk = f"<p>{para} <a href=\"https://www.example.com/{rng.choice(WORDS)}\">more</a></p>"
        parts += (chunk, _ref(rng, key))
        size += len(chunk) + 120
    while size < target:
        para = " ".join(rng.choices(WORDS, k=80))
        parts.append(f"<p>{para}</p>")
        size += len(para) + 7
    parts.append("</article><footer>&copy; Example</footer></body></html>")
    return "".join(parts)


def prepare(docs: int, keys_n: int, doc_bytes: int) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    pages = DATA / f"pages-{docs}-{doc_bytes}.parquet"
    catalog = DATA / f"catalog-{keys_n}.duckdb"
    keys: list[str] | None = None
    if catalog.exists() and not _has_media_ids(catalog):  # made by an older version
        catalog.unlink()
    if not catalog.exists():
        keys = make_keys(keys_n)
        tmp = catalog.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        rows = pa.table({"bucket": [BUCKET] * keys_n, "key": keys})
        con.register("rows", rows)
        con.execute("CREATE TABLE media_files AS SELECT bucket, key, "
                    "md5(bucket || chr(0) || key)::UUID AS media_id FROM rows")
        con.close()
        os.replace(tmp, catalog)
    if not pages.exists():
        keys = keys or make_keys(keys_n)
        rng = random.Random(7)
        tmp = pages.with_suffix(".tmp")
        schema = pa.schema([("content_id", pa.string()), ("text", pa.string())])
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, docs, 1000):
                ids = [str(i) for i in range(start, min(docs, start + 1000))]
                texts = [make_page(rng, keys, rng.randint(doc_bytes // 2, doc_bytes * 3 // 2))
                         for _ in ids]
                writer.write_table(pa.table({"content_id": ids, "text": texts}, schema=schema))
        os.replace(tmp, pages)
    return pages, catalog


def _has_media_ids(catalog: Path) -> bool:
    with duckdb.connect(str(catalog), read_only=True) as con:
        return "media_id" in {r[0] for r in con.execute("DESCRIBE media_files").fetchall()}


def read_pages(pages: Path, limit: int | None = None) -> Iterator[Document]:
    seen = 0
    # One thread: the cores belong to the scan's workers (Arrow's pool would cost ~0.5 CPU-s
    # more for the same pages).
    for batch in pq.ParquetFile(pages).iter_batches(batch_size=1000, use_threads=False):
        for content_id, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(),
                                    strict=True):
            yield Document("webpage", content_id, text, "html")
            seen += 1
            if limit is not None and seen >= limit:
                return


class _TreeCPU:
    """CPU-seconds of this process and of every process below it, sampled from /proc.

    The scan's workers are children of a forkserver, not of this process, so
    ``RUSAGE_CHILDREN`` never sees them; a thread reads their /proc stat every 0.1 s and keeps
    each process's last reading (what a worker spends in its last 0.1 s is missed). It looks for
    new processes in all of /proc once a second only (a walk costs ~1.6 ms, a core's 1.6% at
    every tick), so a process that lives less than a second can be missed."""

    def __init__(self) -> None:
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tree: set[int] = set()

    def __enter__(self) -> _TreeCPU:
        self._sample()
        self._start = dict(self._last)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(0.1):
            ticks += 1
            self._sample(walk=ticks % 10 == 0)

    def _sample(self, walk: bool = True) -> None:
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        entries = os.listdir("/proc") if walk else [str(pid) for pid in self._tree]
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / self._tick
        me, tree = os.getpid(), {os.getpid()}
        grew = True
        while grew:
            grew = False
            for pid, parent in parents.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid in tree:
            if pid in cpu:
                self._last[pid] = cpu[pid]
        if walk:
            self._tree = tree
        self._me = me

    def seconds(self) -> tuple[float, float]:
        """(this process, the processes below it) since ``__enter__``."""
        spent = {pid: t - self._start.get(pid, 0.0) for pid, t in self._last.items()}
        own = spent.pop(self._me, 0.0)
        return own, sum(spent.values())


TARGET_MB_S = 100.0


def _mention_keys_sql(soft_deleted: int, keys_n: int) -> str:
    step = max(1, keys_n // max(1, soft_deleted))
    return (f"SELECT key FROM (SELECT key, row_number() OVER () AS i FROM media_files) "
            f"WHERE i % {step} = 0 LIMIT {soft_deleted}")


def scan_with_mentions(pages: Path, catalog: Path, soft_deleted: int, keys_n: int,
                       workers: int) -> tuple[float, int, int, float, list[str]]:
    """(seconds, bytes, references, CPU-seconds, mentioned keys) of a scan with the evidence
    on; everything the scan does before reading pages is timed too."""
    out = DATA / "out-mentions"
    shutil.rmtree(out, ignore_errors=True)
    with _TreeCPU() as tree_cpu:
        t0 = time.perf_counter()
        con = duckdb.connect(str(catalog), read_only=True)
        known = KnownKeys.from_duckdb(con, "SELECT key FROM media_files WHERE bucket = ?",
                                      [BUCKET])
        known_ids = KnownKeys.media_ids_from_duckdb(
            con, "SELECT media_id FROM media_files WHERE bucket = ?", [BUCKET])
        mentioned = [k for (k,) in con.execute(_mention_keys_sql(soft_deleted, keys_n))
                     .fetchall()]
        con.close()
        matcher = MentionMatcher.from_keys(mentioned)
        extractor = ReferenceExtractor.from_settings(SETTINGS).with_evidence(matcher, known_ids)
        loaded = time.perf_counter() - t0
        stats = scan_documents(read_pages(pages), extractor, out, known_keys=known,
                               workers=workers)
        total = time.perf_counter() - t0
    own, below = tree_cpu.seconds()
    mentions = duckdb.connect().execute(
        "SELECT count(*) FILTER (WHERE form = 'mention') FROM read_parquet(?)",
        [str(stats.fragments[0])]).fetchone()
    shutil.rmtree(out, ignore_errors=True)
    print(f"  mention rows in the fragment: {mentions[0] if mentions else '?':,}; catalog "
          f"loads and matcher: {loaded:.2f} s; {own:.1f} CPU-seconds this process, "
          f"{below:.1f} the processes below it")
    return total, stats.bytes, stats.refs, own + below, mentioned


def pages_as_text(pages: Path) -> Path:
    """The pages written to files, 1,000 pages per file (once), for ripgrep."""
    folder = DATA / f"{pages.stem}-txt"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for n, batch in enumerate(pq.ParquetFile(pages).iter_batches(batch_size=1000)):
            (tmp / f"{n:04d}.html").write_text("\n".join(batch.column(1).to_pylist()))
        os.replace(tmp, folder)
    return folder


def ripgrep(patterns: list[bytes], folder: Path, label: str, limit_gb: int | None = None,
            timeout: int | None = None) -> None:
    rg = shutil.which("rg")
    if rg is None:
        print("ripgrep: not installed (apt-get install ripgrep); skipped")
        return
    path = DATA / f"rg-{label}.txt"
    path.write_bytes(b"\n".join(patterns) + b"\n")

    def limit() -> None:
        if limit_gb:
            size = limit_gb * 1024 ** 3
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    size = sum(f.stat().st_size for f in folder.iterdir())
    t0 = time.perf_counter()
    try:
        done = subprocess.run([rg, "-F", "-f", str(path), "-c", "-j2", str(folder)],
                              capture_output=True, timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        print(f"ripgrep -F -f <{len(patterns):,} {label} spellings>: timed out after {timeout} s")
        return
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        why = (f"killed (out of memory at {limit_gb} GB)" if limit_gb and done.returncode < 0
               or b"memory" in done.stderr.lower() else done.stderr.decode()[:200])
        print(f"ripgrep -F -f <{len(patterns):,} {label} spellings>: {why}")
        return
    lines = sum(int(line.rsplit(b":", 1)[1]) for line in done.stdout.splitlines() if line)
    print(f"ripgrep -F -f <{len(patterns):,} {label} spellings> -c -j2: {seconds:.1f} s = "
          f"{size / MB / seconds:,.1f} MB/s over {size / MB:,.0f} MB of files; "
          f"{lines:,} matching lines")


def main(docs: int = 100_000, keys_n: int = 1_000_000, doc_bytes: int = 8_500,
         naive_docs: int = 20, workers: int = 2, soft_deleted: int = 1_000,
         rg_all_keys: bool = False, naive: bool = True) -> None:
    started = time.perf_counter()
    pages, catalog = prepare(docs, keys_n, doc_bytes)
    print(f"== references: {docs:,} HTML pages vs a catalog of {keys_n:,} keys "
          f"({os.cpu_count()} cores, {workers} workers; data ready in "
          f"{time.perf_counter() - started:.0f} s)")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    out = DATA / "out"
    shutil.rmtree(out, ignore_errors=True)

    with _TreeCPU() as tree_cpu:
        t0 = time.perf_counter()
        con = duckdb.connect(str(catalog), read_only=True)
        known = KnownKeys.from_duckdb(con, "SELECT key FROM media_files WHERE bucket = ?",
                                      [BUCKET])
        con.close()
        t_keys = time.perf_counter() - t0
        extractor = ReferenceExtractor.from_settings(SETTINGS)
        stats = scan_documents(read_pages(pages), extractor, out, known_keys=known,
                               workers=workers)
        total = time.perf_counter() - t0
    own_cpu, workers_cpu = tree_cpu.seconds()
    cpu = own_cpu + workers_cpu
    corpus_bytes = stats.bytes
    con = duckdb.connect()
    con.execute(f"ATTACH '{catalog}' AS cat (READ_ONLY)")
    dangling = con.execute(
        "SELECT count(*) FROM read_parquet($f) r WHERE key IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM cat.media_files m WHERE m.key = r.key)", {"f": str(stats.fragments[0])}
    ).fetchone()
    con.close()
    print(f"ours end to end: {stats.documents:,} docs, {corpus_bytes / MB:,.0f} MB in {total:.1f} s"
          f" = {corpus_bytes / MB / total:,.1f} MB/s, {stats.documents / total:,.0f} docs/s "
          f"(known keys loaded in {t_keys:.2f} s, {known.nbytes / MB:.0f} MB); "
          f"{stats.refs:,} references, {dangling[0] if dangling else '?':,} dangling, "
          f"{stats.text_fallbacks} text fallbacks")
    print(f"ours CPU: {cpu:.1f} CPU-seconds ({own_cpu:.1f} this process: reading pages, "
          f"known keys, writing the fragment; {workers_cpu:.1f} the processes below it: "
          f"{workers} workers extracting, and their forkserver); estimate for 2 cores of "
          f"our own (bytes / (CPU-seconds / 2)): "
          f"{corpus_bytes / MB / (cpu / 2):,.1f} MB/s; load average now "
          f"{os.getloadavg()[0]:.2f}")

    print(f"with mentions ({soft_deleted:,} soft-deleted files' keys, every spelling) and "
          "known media ids anywhere; catalog loads and matcher inside the timing:")
    seconds, size, refs, cpu_m, mentioned = scan_with_mentions(pages, catalog, soft_deleted,
                                                               keys_n, workers)
    rate = size / MB / seconds
    print(f"ours with mentions: {size / MB:,.0f} MB in {seconds:.1f} s = {rate:,.1f} MB/s "
          f"({'meets' if rate >= TARGET_MB_S else 'BELOW'} the {TARGET_MB_S:.0f} MB/s target; "
          f"today's scan above: {corpus_bytes / MB / total:,.1f} MB/s); {refs:,} references; "
          f"{cpu_m:.1f} CPU-seconds, estimate for 2 cores of our own: "
          f"{size / MB / (cpu_m / 2):,.1f} MB/s; load average now {os.getloadavg()[0]:.2f}")
    folder = pages_as_text(pages)
    literals = sorted({s for k in mentioned for s in spellings(k)})
    ripgrep(literals, folder, "mention")
    if rg_all_keys:
        all_keys = [k for (k,) in duckdb.connect(str(catalog), read_only=True)
                    .execute("SELECT key FROM media_files").fetchall()]
        ripgrep(sorted({s for k in all_keys for s in spellings(k)}), folder, "every-key",
                limit_gb=8, timeout=300)
    if not naive:
        shutil.rmtree(out, ignore_errors=True)
        return

    sample = list(read_pages(pages, naive_docs))
    keys = [k for (k,) in duckdb.connect(str(catalog), read_only=True)
            .execute("SELECT key FROM media_files").fetchall()]
    t0 = time.perf_counter()
    naive_found = 0
    for doc in sample:
        for key in keys:
            if key in doc.text:
                naive_found += 1
    naive_s = time.perf_counter() - t0
    sample_bytes = sum(len(d.text.encode()) for d in sample)
    ours_found = sum(1 for d in sample for r in extractor.with_known_keys(known)
                     .extract(d.text, d.format).refs if r.kind == "key" and r.value in known)
    per_doc = naive_s / len(sample)
    print(f"naive loop ({len(sample)} docs × {len(keys):,} keys, measured): "
          f"{sample_bytes / MB / naive_s:.4f} MB/s, {len(sample) / naive_s:.2f} docs/s; "
          f"extrapolated to {stats.documents:,} docs: {per_doc * stats.documents / 3600:,.1f} h "
          f"({per_doc * stats.documents / total:,.0f}× ours)")
    print(f"on that sample the naive loop matched {naive_found} keys literally; ours resolved "
          f"{ours_found} known keys (the loop misses percent-encoded and escaped forms and "
          f"shortcodes, and matches keys that are substrings of other keys)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--doc-bytes", type=int, default=8_500)
    parser.add_argument("--naive-docs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--soft-deleted", type=int, default=1_000,
                        help="files whose keys the mention pass looks for")
    parser.add_argument("--rg-all-keys", action="store_true",
                        help="also give ripgrep every spelling of every key (8 GB, 300 s caps)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    a = parser.parse_args()
    main(a.docs, a.keys, a.doc_bytes, a.naive_docs, a.workers, a.soft_deleted, a.rg_all_keys,
         not a.no_naive)
