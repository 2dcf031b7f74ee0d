"""The scanning engine: fragment columns and rows, parallel equals sequential, failures leave
nothing behind, known keys loaded from a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from media_pipeline.records import media_id_for
from media_pipeline.references.document import Document
from media_pipeline.references.extract import ReferenceExtractor
from media_pipeline.references.known_keys import KnownKeys, key_hash
from media_pipeline.references.mentions import MentionMatcher
from media_pipeline.references.scan import scan_documents
from media_pipeline.settings import Settings

BUCKET = "media"
UUID = "0e5c3b3a-1111-2222-3333-444455556666"
COLUMNS = [("content_type", "VARCHAR"), ("content_id", "VARCHAR"), ("bucket", "VARCHAR"),
           ("key", "VARCHAR"), ("media_id", "VARCHAR"), ("form", "VARCHAR"),
           ("snippet", "VARCHAR")]


@pytest.fixture
def extractor() -> ReferenceExtractor:
    return ReferenceExtractor.from_settings(
        Settings(bucket=BUCKET, custom_domain="cdn.example.com", endpoint_url=None))


def read_fragment(path: Path) -> list[tuple[str | None, ...]]:
    con = duckdb.connect()
    rows = con.execute("SELECT * EXCLUDE (snippet) FROM read_parquet(?) ORDER BY ALL",
                       [str(path)]).fetchall()
    return [tuple(r) for r in rows]


def corpus(n: int) -> list[Document]:
    docs = []
    for i in range(n):
        text = (f'<p>page {i}</p><img src="https://cdn.example.com/img/{i % 37}.jpg">'
                f"<a href='s3://media/doc/{i % 11}.pdf'>doc</a> https://other.com/x.jpg")
        if i % 5 == 0:
            text += f" [media:{UUID}]"
        if i % 7 == 0:
            text += " https://cdn.example.com/caf%C3%A9.jpg, "
        docs.append(Document("webpage" if i % 2 else "post", str(i), text, "html"))
    return docs


def test_fragment_columns_and_rows(extractor: ReferenceExtractor, tmp_path: Path) -> None:
    docs = [
        Document("webpage", "1", '<img src="https://cdn.example.com/a.jpg"> '
                 "s3://media/a.jpg https://media.s3.amazonaws.com/a.jpg", "html"),
        Document("webpage", "2", f"[media id=\"{UUID.upper()}\"] nothing else", "text"),
        Document("article", "1", "https://cdn.example.com/b%20c.png", "text"),
        Document("webpage", "3", "no references at all", "text"),
    ]
    stats = scan_documents(docs, extractor, tmp_path, workers=1)
    assert len(stats.fragments) == 1
    fragment = stats.fragments[0]
    assert fragment.parent == tmp_path and fragment.suffix == ".parquet"
    con = duckdb.connect()
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(fragment)]).fetchall()
    assert [(name, kind) for name, kind, *_ in described] == COLUMNS
    assert read_fragment(fragment) == sorted([
        ("article", "1", BUCKET, "b c.png", media_id_for(BUCKET, "b c.png"), "public_url"),
        # one row per (content, media id): the same key in three forms is one reference
        ("webpage", "1", BUCKET, "a.jpg", media_id_for(BUCKET, "a.jpg"), "public_url"),
        ("webpage", "2", None, None, UUID, "shortcode"),
    ], key=lambda r: tuple("" if v is None else v for v in r))
    assert (stats.documents, stats.refs, stats.text_fallbacks) == (4, 3, 0)
    assert stats.bytes == sum(len(d.text.encode()) for d in docs)
    assert stats.seconds >= 0
    assert [p.name for p in tmp_path.iterdir()] == [fragment.name]  # parts folded and removed


def test_a_key_and_its_media_id_shortcode_are_one_row(extractor: ReferenceExtractor,
                                                      tmp_path: Path) -> None:
    media_id = media_id_for(BUCKET, "a.jpg")
    docs = [Document("page", "1", f"https://cdn.example.com/a.jpg [media:{media_id}]")]
    rows = read_fragment(scan_documents(docs, extractor, tmp_path, workers=1).fragments[0])
    assert rows == [("page", "1", BUCKET, "a.jpg", media_id, "public_url")]


def test_same_content_id_twice_gives_one_row(extractor: ReferenceExtractor,
                                             tmp_path: Path) -> None:
    # e.g. a SQL source yielding the body and the excerpt of one row as two documents
    docs = [Document("page", "1", "https://cdn.example.com/a.jpg"),
            Document("page", "1", "s3://media/a.jpg https://cdn.example.com/b.jpg")]
    stats = scan_documents(docs, extractor, tmp_path, workers=2, chunk_docs=1)
    rows = read_fragment(stats.fragments[0])
    assert [(r[3], r[5]) for r in rows] == [("a.jpg", "public_url"), ("b.jpg", "public_url")]


def test_parallel_equals_sequential(extractor: ReferenceExtractor, tmp_path: Path) -> None:
    docs = corpus(600)
    progress: list[tuple[int, int]] = []
    sequential = scan_documents(docs, extractor, tmp_path / "seq", workers=1, chunk_docs=50)
    parallel = scan_documents(iter(docs), extractor, tmp_path / "par", workers=2, chunk_docs=50,
                              progress=lambda d, b: progress.append((d, b)))
    seq_rows = read_fragment(sequential.fragments[0])
    assert seq_rows == read_fragment(parallel.fragments[0])
    assert len(seq_rows) == sequential.refs == parallel.refs
    assert sequential.documents == parallel.documents == 600
    assert sequential.bytes == parallel.bytes
    assert len(progress) == 12 and progress[-1] == (600, parallel.bytes)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    # café.jpg percent-decoded, the other host ignored, shortcodes present
    keys = {r[3] for r in seq_rows}
    assert "café.jpg" in keys and "x.jpg" not in keys
    assert all(r[4] == media_id_for(BUCKET, r[3]) for r in seq_rows if r[3] is not None)
    assert sum(1 for r in seq_rows if r[5] == "shortcode") == 120


def test_parallel_equals_sequential_with_mentions_and_media_ids(
        extractor: ReferenceExtractor, tmp_path: Path) -> None:
    # The workers get the mention matcher's Vectorscan database serialised (not compiled in
    # each): they find the same mentions and media ids as this process.
    docs = corpus(300) + [
        Document("note", str(i), f"see doc%2F{i % 11}.pdf and {media_id_for(BUCKET, 'z.png')}"
                 f" and unrelated {UUID}", "text") for i in range(200)]
    evidence = extractor.with_evidence(
        MentionMatcher.from_keys([f"doc/{i}.pdf" for i in range(11)] + ["img/3.jpg"]),
        KnownKeys(np.array([key_hash(f"{BUCKET}\x00z.png")], dtype=np.uint64)))
    sequential = scan_documents(docs, evidence, tmp_path / "seq", workers=1, chunk_docs=40)
    parallel = scan_documents(docs, evidence, tmp_path / "par", workers=2, chunk_docs=40)
    rows = read_fragment(sequential.fragments[0])
    assert rows == read_fragment(parallel.fragments[0])
    forms = {r[5] for r in rows}
    assert {"mention", "media_id", "public_url", "s3_uri", "shortcode"} <= forms
    assert sum(1 for r in rows if r[5] == "mention") == 200  # doc%2F… in every note
    assert sum(1 for r in rows if r[5] == "media_id") == 200  # z.png's id; UUID is unknown


class SourceBroke(RuntimeError):
    pass


def failing_documents(after: int) -> Iterator[Document]:
    yield from corpus(after)
    raise SourceBroke("connection lost")


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_iterator_propagates_and_leaves_no_fragment(
        extractor: ReferenceExtractor, tmp_path: Path, workers: int) -> None:
    out = tmp_path / "out"
    with pytest.raises(SourceBroke, match="connection lost"):
        scan_documents(failing_documents(300), extractor, out, workers=workers, chunk_docs=40)
    assert list(out.iterdir()) == []


def test_document_with_non_text_is_a_clear_error(extractor: ReferenceExtractor,
                                                 tmp_path: Path) -> None:
    docs = [Document("page", "7", 42)]  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="page/7: text must be str"):
        scan_documents(docs, extractor, tmp_path / "out", workers=1)
    assert list((tmp_path / "out").iterdir()) == []


def test_no_documents_gives_an_empty_fragment(extractor: ReferenceExtractor,
                                              tmp_path: Path) -> None:
    stats = scan_documents([], extractor, tmp_path, workers=2)
    table = pq.read_table(stats.fragments[0])
    assert table.num_rows == 0 and table.column_names == [c for c, _ in COLUMNS]
    assert (stats.documents, stats.refs) == (0, 0)


def test_text_fallbacks_are_counted(extractor: ReferenceExtractor, tmp_path: Path) -> None:
    docs = [Document("api", "1", '{"u": "https:\\/\\/cdn.example.com\\/j.jpg"', "json"),
            Document("api", "2", '{"u": "https:\\/\\/cdn.example.com\\/k.jpg"}', "json"),
            Document("cms", "3", "plain https://cdn.example.com/h.jpg", "html")]
    stats = scan_documents(docs, extractor, tmp_path, workers=2, chunk_docs=1)
    assert stats.text_fallbacks == 2
    assert {r[3] for r in read_fragment(stats.fragments[0])} == {"j.jpg", "k.jpg", "h.jpg"}


def test_known_keys_from_a_duckdb_catalog_resolve_ambiguous_ends(
        extractor: ReferenceExtractor, tmp_path: Path) -> None:
    db = tmp_path / "catalog.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE media_files (bucket VARCHAR, key VARCHAR)")
    con.executemany("INSERT INTO media_files VALUES (?, ?)",
                    [(BUCKET, "a.jpg,"), (BUCKET, "reports/q1 summary.pdf"), ("other", "b.jpg")])
    known = KnownKeys.from_duckdb(con, "SELECT key FROM media_files WHERE bucket = ?", [BUCKET])
    con.close()
    assert len(known) == 2 and known.nbytes == 16
    assert "a.jpg," in known and "b.jpg" not in known
    docs = [Document("page", "1", "see https://cdn.example.com/a.jpg, then "
                     "s3://media/reports/q1 summary.pdf and https://cdn.example.com/b.jpg.")]
    stats = scan_documents(docs, extractor, tmp_path / "out", known_keys=known, workers=1)
    assert {r[3] for r in read_fragment(stats.fragments[0])} == {
        "a.jpg,", "reports/q1 summary.pdf", "b.jpg"}
