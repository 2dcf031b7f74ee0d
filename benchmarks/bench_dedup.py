"""Exact duplicates over 5,000,000 catalog rows and near-duplicates over 200,000 perceptual hashes.

Data goes in through the real path (object snapshot → apply_inventory, fingerprint fragment →
apply_fingerprints); the timed parts are the two rebuilds. Near-duplicate recall is measured
against brute force (every pair, numpy popcount) on a 20,000-hash subset, in the same run.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from media_pipeline.catalog import Catalog

DATA = Path(__file__).parent / ".data" / "dedup"
BUCKET = "bench"


def make_inputs(rows: int, phashes: int, seed: int, out: Path) -> tuple[Path, Path]:
    """Snapshot + fingerprint fragment: ~10% of files are exact copies of another; the first
    ``phashes`` rows are images, a quarter of them near variants (1–8 flipped bits) of another."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 1000})")
    snap, frag = out / "snapshot.parquet", out / "fingerprints.parquet"
    con.execute(
        f"""
        COPY (SELECT '{BUCKET}' AS bucket, 'ns' || (i % 20) || '/file-' || i || '.jpg' AS key,
                     NULL::VARCHAR AS version_id,
                     (1000 + (CASE WHEN i % 10 = 0 THEN i // 10 ELSE i END) % 500000)::BIGINT
                         AS size,
                     md5(i::VARCHAR) AS etag, now()::TIMESTAMPTZ AS last_modified,
                     'STANDARD' AS storage_class
              FROM range({rows}) t(i)) TO '{snap}' (FORMAT parquet)
        """
    )
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=phashes, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=phashes, dtype=np.uint64)
    variants = phashes // 4
    src = rng.integers(0, phashes - variants, size=variants)
    for row, s in zip(range(phashes - variants, phashes), src, strict=True):
        h = int(base[s])
        for bit in rng.choice(64, size=int(rng.integers(1, 9)), replace=False):
            h ^= 1 << int(bit)
        base[row] = np.uint64(h)
    con.register("ph_np", {"i": np.arange(phashes), "phash": base})
    con.execute(
        f"""
        COPY (SELECT md5('{BUCKET}' || chr(0) || 'ns' || (i % 20) || '/file-' || i || '.jpg')
                     AS media_id,
                     md5(i::VARCHAR) AS etag, 'active' AS status,
                     sha256((CASE WHEN i % 10 = 0 THEN i // 10 ELSE i END)::VARCHAR) AS file_hash,
                     'computed' AS hash_source, 'image/jpeg' AS content_type,
                     'image/jpeg' AS declared_content_type, p.phash,
                     640::BIGINT AS width, 480::BIGINT AS height, NULL::BIGINT AS page_count,
                     '{{}}' AS metadata, NULL::VARCHAR AS quarantine_reason,
                     0::BIGINT AS bytes_read, NULL::VARCHAR AS error
              FROM range({rows}) t(i) LEFT JOIN ph_np p USING (i))
        TO '{frag}' (FORMAT parquet)
        """
    )
    return snap, frag


def load(home: Path, snap: Path, frag: Path) -> Catalog:
    shutil.rmtree(home, ignore_errors=True)
    with Catalog.open(home / "catalog.duckdb") as c:
        c.objects.apply_inventory(snap, BUCKET)
        c.fingerprints.apply_fingerprints([frag])
    return c


def brute_force_pairs(ids: list[str], hashes: np.ndarray, files: list[str], max_distance: int
                      ) -> set[tuple[str, str]]:
    """Every pair within the distance, by comparing each hash with all later ones."""
    pairs = set()
    for i in range(len(hashes) - 1):
        d = np.bitwise_count(np.bitwise_xor(hashes[i + 1:], hashes[i]))
        for j in np.nonzero(d <= max_distance)[0]:
            other = i + 1 + int(j)
            if files[i] != files[other]:  # identical files belong to duplicate_groups
                pairs.add((min(ids[i], ids[other]), max(ids[i], ids[other])))
    return pairs


def main(rows: int = 5_000_000, phashes: int = 200_000, subset: int = 20_000) -> None:
    distance = 6
    print(f"== dedup: {rows:,} rows, {phashes:,} perceptual hashes, distance {distance}")
    snap, frag = make_inputs(rows, phashes, seed=11, out=DATA / "full")
    load(DATA / "full-home", snap, frag)
    with Catalog.open(DATA / "full-home" / "catalog.duckdb") as c:
        t = time.perf_counter()
        stats = c.dedup.rebuild_duplicate_groups()
        exact_s = time.perf_counter() - t
        t = time.perf_counter()
        pairs = c.dedup.rebuild_near_duplicates(distance)
        near_s = time.perf_counter() - t
    print(f"exact duplicates over {rows:,} rows: {exact_s:.2f} s "
          f"({stats.groups:,} groups, {stats.duplicate_files:,} files, "
          f"{stats.wasted_bytes / 1e9:.2f} GB wasted)")
    print(f"near duplicates over {phashes:,} hashes: {near_s:.2f} s ({pairs:,} pairs)")

    snap, frag = make_inputs(subset, subset, seed=11, out=DATA / "subset")
    load(DATA / "subset-home", snap, frag)
    with Catalog.open(DATA / "subset-home" / "catalog.duckdb") as c:
        t = time.perf_counter()
        found = c.dedup.rebuild_near_duplicates(distance)
        banded_s = time.perf_counter() - t
        rows = c.con.execute(
            "SELECT media_id::VARCHAR, phash, file_hash FROM media_files WHERE phash IS NOT NULL"
        ).fetchall()
        got = {(min(a, b), max(a, b)) for a, b in c.con.execute(
            "SELECT media_id_a::VARCHAR, media_id_b::VARCHAR FROM near_duplicates").fetchall()}
    ids = [r[0] for r in rows]
    hashes = np.array([r[1] for r in rows], dtype=np.uint64)
    t = time.perf_counter()
    expected = brute_force_pairs(ids, hashes, [r[2] for r in rows], distance)
    brute_s = time.perf_counter() - t
    recall = len(got & expected) / len(expected) if expected else 1.0
    print(f"recall on a {subset:,} subset: {recall:.4f} ({len(got & expected):,} of "
          f"{len(expected):,} brute-force pairs; {len(got - expected)} extra); banded "
          f"{banded_s:.2f} s vs brute force (numpy, all pairs) {brute_s:.2f} s; found={found}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
