"""catalog.references on a real lake: API references and scans move the derived reference
columns of ``media_files`` (count, referenced_in, unreferenced_since), and a scan that drops a
reference or a retired source records the removals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from media_pipeline.catalog import Catalog
from media_pipeline_tests.catalog.store_helpers import BUCKET, T0, A, B, derived


def test_references_derive_count_referenced_in_and_unreferenced_since(catalog: Catalog) -> None:
    assert derived(catalog, A)["reference_count"] == 0
    assert derived(catalog, A)["unreferenced_since"] is None  # never referenced
    catalog.references.add_reference(A, "webpage", "2", "ed", now=T0 + timedelta(hours=1))
    catalog.references.add_reference(A, "webpage", "10", "ed", now=T0 + timedelta(hours=1))
    catalog.references.add_reference(A, "post", "7", "ed", now=T0 + timedelta(hours=1))
    got = derived(catalog, A)
    assert got["reference_count"] == 3 and got["unreferenced_since"] is None
    assert got["referenced_in"] == '{"post":["7"],"webpage":["10","2"]}'
    catalog.references.remove_reference(A, "webpage", "2", "ed", now=T0 + timedelta(hours=2))
    catalog.references.remove_reference(A, "webpage", "10", "ed", now=T0 + timedelta(hours=3))
    assert derived(catalog, A)["unreferenced_since"] is None  # still used by post 7
    catalog.references.remove_reference(A, "post", "7", "ed", now=T0 + timedelta(hours=4))
    got = derived(catalog, A)
    assert (got["reference_count"], got["referenced_in"]) == (0, "{}")
    assert got["unreferenced_since"] == T0 + timedelta(hours=4)  # when it dropped to zero
    # referenced again: NULL; dropped again: the new drop, even from an earlier clock
    catalog.references.add_reference(A, "webpage", "3", "ed", now=T0 + timedelta(hours=5))
    assert derived(catalog, A)["unreferenced_since"] is None
    catalog.references.remove_reference(A, "webpage", "3", "ed",
                                        now=T0 + timedelta(hours=4, minutes=30))
    assert derived(catalog, A)["unreferenced_since"] == T0 + timedelta(hours=4, minutes=30)
    assert derived(catalog, B)["reference_count"] == 0  # the other file never moved


def test_a_scan_that_drops_a_reference_and_a_retired_source_record_removals(
        catalog: Catalog, tmp_path: Path) -> None:
    def fragment(name: str, rows: list[tuple[str, str, str]]) -> Path:
        path = tmp_path / f"{name}.parquet"
        con = duckdb.connect()
        con.execute("CREATE TABLE f (content_type VARCHAR, content_id VARCHAR, bucket VARCHAR, "
                    "key VARCHAR, media_id VARCHAR, form VARCHAR)")
        con.executemany("INSERT INTO f VALUES (?, ?, ?, ?, NULL, 'key')",
                        [[ct, cid, BUCKET, key] for ct, cid, key in rows])
        con.execute(f"COPY f TO '{path}' (FORMAT parquet)")
        return path

    both = [("webpage", "1", "blog/a.jpg"), ("webpage", "2", "blog/b.jpg"),
            ("webpage", str(3), "blog/b.jpg")]
    catalog.references.replace_source_references("cms", [fragment("one", both)], T0, T0,
                                                 {"documents": 3})
    assert derived(catalog, B)["reference_count"] == 2
    later = T0 + timedelta(days=1)
    result = catalog.references.replace_source_references(
        "cms", [fragment("two", both[:2])], later, later, {"documents": 3}, max_drop=0.5)
    assert result["removed"] == 1 and result["files_changed"] == 1
    assert derived(catalog, B)["unreferenced_since"] is None  # page 2 still uses it
    catalog.references.retire_source("cms", "admin", "gone", now=later + timedelta(hours=1))
    for media_id in (A, B):
        got = derived(catalog, media_id)
        assert (got["reference_count"], got["unreferenced_since"]) == (
            0, later + timedelta(hours=1))
