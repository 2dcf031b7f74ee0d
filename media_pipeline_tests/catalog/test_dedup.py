"""catalog.dedup on a real lake: exact duplicate groups, near duplicates against brute force."""

from __future__ import annotations

from pathlib import Path

from media_pipeline.records import media_id_for
from media_pipeline_tests.catalog.store_helpers import (
    BUCKET,
    fingerprint_fragment,
    open_catalog,
    write_snapshot,
)


def test_exact_duplicate_groups_have_a_canonical_member_and_wasted_bytes(
    home: Path, tmp_path: Path
) -> None:
    keys = ["site/a.png", "blog/a-copy.png", "shop/a-again.png", "site/other.png"]
    snap = write_snapshot(tmp_path / "s.parquet", [(k, 100, f"e{i}") for i, k in enumerate(keys)])
    hashes = ["h1", "h1", "h1", "h2"]
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, k), "etag": f"e{i}", "file_hash": h}
        for i, (k, h) in enumerate(zip(keys, hashes, strict=True))
    ])
    with open_catalog(home) as c:
        c.objects.apply_inventory(snap, BUCKET)
        c.fingerprints.apply_fingerprints([frag])
        stats = c.dedup.rebuild_duplicate_groups()
        members = c.con.execute(
            "SELECT key, is_canonical FROM duplicate_members ORDER BY key").fetchall()
    assert (stats.groups, stats.duplicate_files, stats.wasted_bytes) == (1, 3, 200)
    # All three were first seen together; the smallest key is canonical.
    assert members == [("blog/a-copy.png", True), ("shop/a-again.png", False),
                       ("site/a.png", False)]


def test_near_duplicates_match_brute_force(home: Path, tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    base = [rng.getrandbits(64) for _ in range(60)]
    hashes: list[int] = []
    for h in base:
        hashes.append(h)
        flipped = h
        for bit in rng.sample(range(64), rng.randint(1, 9)):
            flipped ^= 1 << bit
        hashes.append(flipped)
    keys = [f"site/{i}.jpg" for i in range(len(hashes))]
    snap = write_snapshot(tmp_path / "s.parquet", [(k, 10, f"e{i}") for i, k in enumerate(keys)])
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, k), "etag": f"e{i}", "file_hash": f"h{i}", "phash": h}
        for i, (k, h) in enumerate(zip(keys, hashes, strict=True))
    ])
    for distance in (3, 6, 9):
        with open_catalog(home) as c:
            if distance == 3:
                c.objects.apply_inventory(snap, BUCKET)
                c.fingerprints.apply_fingerprints([frag])
            c.dedup.rebuild_near_duplicates(distance)
            found = {
                tuple(sorted((a, b))): d for a, b, d in c.con.execute(
                    "SELECT media_id_a::VARCHAR, media_id_b::VARCHAR, distance "
                    "FROM near_duplicates").fetchall()
            }
        ids = [media_id_for(BUCKET, k) for k in keys]
        expected = {
            tuple(sorted((ids[i], ids[j]))): bin(hashes[i] ^ hashes[j]).count("1")
            for i in range(len(ids)) for j in range(i + 1, len(ids))
            if bin(hashes[i] ^ hashes[j]).count("1") <= distance
        }
        assert expected, "the fixture must contain near pairs"
        assert found == expected
