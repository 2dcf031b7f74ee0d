"""Duplicates: exact duplicate groups (same size and sha256), near-duplicate pairs (perceptual
hashes, trimmed and mirrored hashes, embeddings), image features and thumbnails, and the reads
of the duplicates report.

Image features and thumbnails are kept per content hash (``file_hash``), so copies of one file
are read, decoded and embedded once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa

from media_pipeline.catalog.retry import retried
from media_pipeline.catalog.sql import PRESENT, utc_now
from media_pipeline.catalog.store import Store
from media_pipeline.errors import CatalogError

__all__ = ["DedupStore", "DuplicateStats"]

# Near-duplicate search probes up to distance // 4 flipped bits per band: 137 probes at 8-11.
MAX_NEAR_DISTANCE = 11
DEGENERATE_PHASH_FILES = 50
# PRESENT for media_files aliased m
_PRESENT = f"m.{PRESENT}"
# image_features and thumbnails as written (their time stamp is added by the INSERT)
_FLOATS = pa.list_(pa.float32())
_FEATURES = pa.schema([("file_hash", pa.string()), ("revision", pa.int32()),
                       ("trimmed_phash", pa.uint64()), ("mirrored_phash", pa.uint64()),
                       ("layout", _FLOATS), ("embedding", _FLOATS), ("embedder", pa.string()),
                       ("error", pa.string()), ("colours", _FLOATS)])
_THUMBNAILS = pa.schema([("file_hash", pa.string()), ("width", pa.int32()),
                         ("height", pa.int32()), ("jpeg", pa.binary()), ("error", pa.string())])


@dataclass(frozen=True)
class DuplicateStats:
    groups: int
    duplicate_files: int
    wasted_bytes: int


class DedupStore(Store):
    """``catalog.dedup``: duplicate groups, near-duplicate pairs, features and thumbnails."""

    # -- groups and perceptual-hash pairs ---------------------------------------------------------

    @retried
    def rebuild_duplicate_groups(self) -> DuplicateStats:
        """Exact duplicates: files with the same (size, sha256); the canonical member is the one
        seen first (then the smallest key), the others are wasted bytes."""
        con = self.con
        with self.transaction():
            con.execute("DELETE FROM duplicate_groups")
            con.execute(
                f"""
                INSERT INTO duplicate_groups
                SELECT file_hash || ':' || file_size AS group_id, file_hash, file_size,
                       count(*) AS member_count,
                       arg_min(media_id, (first_seen, key)) AS canonical_media_id,
                       file_size * (count(*) - 1) AS wasted_bytes
                FROM media_objects
                WHERE file_hash IS NOT NULL AND {PRESENT} AND status <> 'pending'
                GROUP BY file_hash, file_size
                HAVING count(*) > 1
                """
            )
            row = con.execute(
                "SELECT count(*), coalesce(sum(member_count), 0), coalesce(sum(wasted_bytes), 0) "
                "FROM duplicate_groups"
            ).fetchone()
        assert row is not None
        return DuplicateStats(groups=int(row[0]), duplicate_files=int(row[1]),
                              wasted_bytes=int(row[2]))

    @retried
    def rebuild_near_duplicates(self, max_distance: int) -> int:
        """Near-duplicate image pairs by perceptual-hash Hamming distance, without all pairs.

        The 64-bit hash is cut into 4 bands of 16 bits. Two hashes within distance d differ in
        at most d // 4 bits in at least one band (pigeonhole), so joining each band against its
        variants with up to d // 4 flipped bits finds every pair; the exact distance is then
        checked. Pairs that are exact duplicates (same sha256) are left to duplicate_groups.
        """
        if not 0 <= max_distance <= MAX_NEAR_DISTANCE:
            raise CatalogError(
                f"near-duplicate distance must be between 0 and {MAX_NEAR_DISTANCE}")
        flips = max_distance // 4
        masks = [0]
        for n in range(1, flips + 1):
            masks += [sum(1 << b for b in bits) for bits in combinations(range(16), n)]
        con = self.con
        now = utc_now()
        with self.transaction():
            con.execute("CREATE OR REPLACE TEMP TABLE flip_masks (m UBIGINT)")
            con.executemany("INSERT INTO flip_masks VALUES (?)", [[m] for m in masks])
            # A perceptual hash shared by very many files is a degenerate one (blank, flat
            # images): pairing them all would be quadratic and says nothing.
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE ph AS
                SELECT media_id, phash, file_hash FROM media_objects
                WHERE phash IS NOT NULL AND {PRESENT} AND status <> 'pending'
                QUALIFY count(*) OVER (PARTITION BY phash) <= {DEGENERATE_PHASH_FILES}
                """
            )
            con.execute("DELETE FROM near_duplicates")
            con.execute(
                """
                INSERT INTO near_duplicates (media_id_a, media_id_b, distance, found_at, method,
                                             method_distance)
                WITH bands AS (
                    SELECT media_id, b AS band, (phash >> (16 * b)::UBIGINT) & 65535::UBIGINT AS v
                    FROM ph, range(4) t(b)
                ),
                probes AS (
                    SELECT media_id, band, xor(v, m) AS v FROM bands, flip_masks
                ),
                candidates AS (
                    SELECT DISTINCT p.media_id AS a, q.media_id AS b
                    FROM probes p JOIN bands q ON p.band = q.band AND p.v = q.v
                    WHERE p.media_id < q.media_id
                )
                SELECT c.a, c.b, bit_count(xor(x.phash, y.phash)) AS distance, ?, 'phash',
                       bit_count(xor(x.phash, y.phash))
                FROM candidates c
                JOIN ph x ON x.media_id = c.a
                JOIN ph y ON y.media_id = c.b
                WHERE bit_count(xor(x.phash, y.phash)) <= ?
                  AND x.file_hash IS DISTINCT FROM y.file_hash
                """,
                [now, max_distance],
            )
            row = con.execute("SELECT count(*) FROM near_duplicates").fetchone()
            con.execute("DROP TABLE ph")
            con.execute("DROP TABLE flip_masks")
        return int(row[0]) if row else 0

    # -- features and thumbnails ------------------------------------------------------------------

    def images_needing_features(self, revision: int, embedder: str | None, *,
                                limit: int = 1_000_000) -> list[dict[str, Any]]:
        """One readable copy per content hash of the active images whose features are missing,
        of an older revision, or lack the embedding ``embedder`` can now give (an earlier run
        had no model). Images whose decode failed are not retried until the revision changes."""
        rows = self.con.execute(
            """
            SELECT m.file_hash, arg_min(m.bucket, m.key), min(m.key), max(m.file_size)
            FROM media_files m
            LEFT JOIN image_features f ON f.file_hash = m.file_hash
            WHERE m.status = 'active' AND m.phash IS NOT NULL AND m.file_hash IS NOT NULL
              AND (f.file_hash IS NULL OR f.revision <> $revision
                   OR (f.error IS NULL AND $embedder IS NOT NULL
                       AND f.embedder IS DISTINCT FROM $embedder))
            GROUP BY m.file_hash ORDER BY m.file_hash LIMIT $limit
            """,
            {"revision": revision, "embedder": embedder, "limit": limit},
        ).fetchall()
        return [{"file_hash": r[0], "bucket": r[1], "key": r[2], "file_size": int(r[3])}
                for r in rows]

    @retried
    def store_image_features(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the features of each row's ``file_hash`` (keys: file_hash, revision,
        trimmed_phash, mirrored_phash, layout, colours and embedding (float lists or None),
        embedder, error)."""
        if not rows:
            return
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in _FEATURES} for r in rows],
                                     schema=_FEATURES)
        self._replace_by_hash("image_features", table, "computed_at")

    def thumbnails_missing(self, file_hashes: Sequence[str]) -> list[dict[str, Any]]:
        """One readable copy of each active image in ``file_hashes`` that has no thumbnail."""
        if not file_hashes:
            return []
        rows = self.con.execute(
            """
            SELECT m.file_hash, arg_min(m.bucket, m.key), min(m.key), max(m.file_size)
            FROM media_files m
            WHERE m.status = 'active' AND m.phash IS NOT NULL
              AND list_contains($hashes, m.file_hash)
              AND m.file_hash NOT IN (SELECT file_hash FROM thumbnails)
            GROUP BY m.file_hash
            """,
            {"hashes": list(file_hashes)},
        ).fetchall()
        return [{"file_hash": r[0], "bucket": r[1], "key": r[2], "file_size": int(r[3])}
                for r in rows]

    @retried
    def store_thumbnails(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace thumbnails (keys: file_hash, width, height, jpeg, error)."""
        if not rows:
            return
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in _THUMBNAILS} for r in rows],
                                     schema=_THUMBNAILS)
        self._replace_by_hash("thumbnails", table, "created_at")

    def _replace_by_hash(self, table_name: str, rows: pa.Table, stamp: str) -> None:
        """Replace the rows of ``rows``' content hashes in one DELETE and one INSERT, stamped
        now in column ``stamp``. Rows go in as an Arrow table: an executemany converts each
        Python value on its own (and looks for pandas each time: 36 s for 200 embeddings)."""
        names = ", ".join(rows.column_names)
        with self.transaction() as con:
            con.register("replacing_in", rows)
            try:
                con.execute(f"DELETE FROM {table_name} WHERE file_hash IN "
                            "(SELECT file_hash FROM replacing_in)")
                con.execute(f"INSERT INTO {table_name} ({names}, {stamp}) "
                            f"SELECT {names}, $now FROM replacing_in", {"now": utc_now()})
            finally:
                con.unregister("replacing_in")

    def thumbnails_for(self, file_hashes: Sequence[str]) -> dict[str, bytes]:
        if not file_hashes:
            return {}
        rows = self.con.execute(
            "SELECT file_hash, jpeg FROM thumbnails WHERE jpeg IS NOT NULL "
            "AND list_contains($hashes, file_hash)", {"hashes": list(file_hashes)}).fetchall()
        return {r[0]: bytes(r[1]) for r in rows}

    def image_embeddings(self, embedder: str
                         ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Content hashes of present images, their embeddings by ``embedder``, layouts and
        colour layouts."""
        # A cursor: a relation's Arrow output, without an unfinished result on self.con. A new
        # connection starts in the in-memory database: select the lake.
        lake = self.con.execute("SELECT current_database()").fetchall()[0][0]
        cursor = self.con.cursor()
        cursor.execute(f"USE {lake}")
        result = cursor.sql(
            f"""
            SELECT f.file_hash, f.embedding, f.layout, f.colours FROM image_features f
            WHERE f.embedder = $embedder AND f.embedding IS NOT NULL AND f.layout IS NOT NULL
              AND f.colours IS NOT NULL
              AND f.file_hash IN (SELECT m.file_hash FROM media_files m
                                  WHERE m.phash IS NOT NULL AND {_PRESENT}
                                    AND m.status <> 'pending')
            ORDER BY f.file_hash
            """,
            params={"embedder": embedder},
        )
        table = result.to_arrow_table()
        assert table is not None
        hashes = table.column("file_hash").to_pylist()
        if not hashes:
            empty = np.zeros((0, 0), np.float32)
            return [], empty, empty, empty
        arrays = [table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
                  .astype(np.float32).reshape(len(hashes), -1)
                  for name in ("embedding", "layout", "colours")]
        return hashes, arrays[0], arrays[1], arrays[2]

    # -- pairs ------------------------------------------------------------------------------------

    @retried
    def hash_near_duplicate_pairs(self, max_distance: int) -> list[tuple[str, str, str, int]]:
        """(media_id_a, media_id_b, method, distance) for the hash methods of
        :mod:`media_pipeline.dedup.detect`, by banded search (no all-pairs)."""
        with self.transaction():
            self._hash_pairs_table(max_distance)
            rows = self.con.execute(
                "SELECT a::VARCHAR, b::VARCHAR, method, method_distance FROM hash_pairs "
                "ORDER BY a, b").fetchall()
            self.con.execute("DROP TABLE hash_pairs")
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def _hash_pairs_table(self, max_distance: int) -> None:
        """TEMP TABLE hash_pairs(a, b, method, method_distance, distance).

        Every picture offers up to three 64-bit hashes: p (stored pHash), t (trimmed), m (the
        trimmed one mirrored). Two pictures match when p~p, t~t or t~m is within the distance;
        pigeonhole over four 16-bit bands finds every such pair by probing each band of p and t
        with up to distance // 4 flipped bits (see rebuild_near_duplicates).
        """
        if not 0 <= max_distance <= MAX_NEAR_DISTANCE:
            raise ValueError(f"near-duplicate distance must be between 0 and "
                             f"{MAX_NEAR_DISTANCE}")
        masks = [0]
        for n in range(1, max_distance // 4 + 1):
            masks += [sum(1 << b for b in bits) for bits in combinations(range(16), n)]
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE flip_masks (m UBIGINT)")
        con.executemany("INSERT INTO flip_masks VALUES (?)", [[m] for m in masks])
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE hv AS
            SELECT row_number() OVER () AS rid, m.media_id, m.file_hash, m.phash,
                   f.trimmed_phash AS trimmed, f.mirrored_phash AS mirrored
            FROM media_files m LEFT JOIN image_features f ON f.file_hash = m.file_hash
            WHERE m.phash IS NOT NULL AND {_PRESENT} AND m.status <> 'pending'
            QUALIFY count(*) OVER (PARTITION BY m.phash) <= {DEGENERATE_PHASH_FILES}
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE hash_pairs AS
            WITH keys AS (
                SELECT rid, 'p' AS kind, phash AS h FROM hv
                UNION ALL SELECT rid, 't', trimmed FROM hv
                    WHERE trimmed IS NOT NULL AND trimmed <> phash
                UNION ALL SELECT rid, 'm', mirrored FROM hv WHERE mirrored IS NOT NULL
            ),
            bands AS (
                SELECT rid, kind, b AS band, (h >> (16 * b)::UBIGINT) & 65535::UBIGINT AS v
                FROM keys, range(4) t(b)
            ),
            -- Only p/t hashes probe; mirrors are looked up (trimmed A ~ mirrored B is found
            -- from A's probes, mirrored A ~ trimmed B from B's), so probes are not doubled.
            probes AS (
                SELECT rid, band, xor(v, m) AS v FROM bands, flip_masks WHERE kind <> 'm'
            ),
            candidates AS (
                -- p/t against p/t is symmetric: one direction is enough
                SELECT p.rid AS ra, q.rid AS rb
                FROM probes p JOIN bands q ON p.band = q.band AND p.v = q.v
                WHERE q.kind <> 'm' AND p.rid < q.rid
                UNION ALL  -- duplicates go after the distance check, on the few that pass
                SELECT least(p.rid, q.rid), greatest(p.rid, q.rid)
                FROM probes p JOIN bands q ON p.band = q.band AND p.v = q.v
                WHERE q.kind = 'm' AND p.rid <> q.rid
            ),
            measured AS (
                SELECT x.media_id AS a, y.media_id AS b, x.file_hash AS fa, y.file_hash AS fb,
                       bit_count(xor(x.phash, y.phash)) AS raw,
                       bit_count(xor(coalesce(x.trimmed, x.phash),
                                     coalesce(y.trimmed, y.phash))) AS trim,
                       least(bit_count(xor(coalesce(x.trimmed, x.phash), y.mirrored)),
                             bit_count(xor(x.mirrored, coalesce(y.trimmed, y.phash)))) AS mirror
                FROM candidates c JOIN hv x ON x.rid = c.ra JOIN hv y ON y.rid = c.rb
            )
            SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b, raw AS distance,
                   CASE WHEN raw <= $d THEN 'phash' WHEN trim <= $d THEN 'phash-trimmed'
                        ELSE 'phash-mirror' END AS method,
                   CASE WHEN raw <= $d THEN raw WHEN trim <= $d THEN trim ELSE mirror END
                       AS method_distance
            FROM measured
            WHERE (raw <= $d OR trim <= $d OR mirror <= $d) AND fa IS DISTINCT FROM fb
            """,
            {"d": max_distance},
        )
        con.execute("DROP TABLE hv")
        con.execute("DROP TABLE flip_masks")

    @retried
    def replace_near_duplicates(self, max_distance: int,
                                embedding_pairs: pa.Table | None) -> dict[str, int]:
        """Rebuild ``near_duplicates``: the hash methods' pairs, then embedding pairs (content
        hash pairs ``hash_a``, ``hash_b``, ``cosine``) spread over every copy of each content
        that no hash method matched. Exact duplicates are left to duplicate_groups. Returns the
        pair count per method."""
        con = self.con
        now = utc_now()
        with self.transaction():
            self._hash_pairs_table(max_distance)
            con.execute("DELETE FROM near_duplicates")
            con.execute(
                "INSERT INTO near_duplicates (media_id_a, media_id_b, distance, found_at, method, "
                "method_distance) SELECT a, b, distance, $now, method, method_distance "
                "FROM hash_pairs", {"now": now})
            if embedding_pairs is not None and embedding_pairs.num_rows:
                con.register("embedding_pairs_in", embedding_pairs)
                con.execute(
                    f"""
                    INSERT INTO near_duplicates (media_id_a, media_id_b, distance, found_at,
                                                 method, method_distance)
                    WITH present AS (
                        SELECT m.media_id, m.file_hash, m.phash FROM media_files m
                        WHERE m.phash IS NOT NULL AND {_PRESENT} AND m.status <> 'pending'
                    ),
                    pairs AS (
                        SELECT least(x.media_id, y.media_id) AS a,
                               greatest(x.media_id, y.media_id) AS b,
                               bit_count(xor(x.phash, y.phash)) AS distance,
                               1.0 - e.cosine AS method_distance
                        FROM embedding_pairs_in e
                        JOIN present x ON x.file_hash = e.hash_a
                        JOIN present y ON y.file_hash = e.hash_b
                    )
                    SELECT p.a, p.b, p.distance, $now, 'embedding', p.method_distance
                    FROM pairs p ANTI JOIN hash_pairs h ON h.a = p.a AND h.b = p.b
                    """,
                    {"now": now},
                )
                con.unregister("embedding_pairs_in")
            con.execute("DROP TABLE hash_pairs")
            counts = dict(con.execute(
                "SELECT method, count(*) FROM near_duplicates GROUP BY method").fetchall())
        return {method: int(counts.get(method, 0))
                for method in ("phash", "phash-trimmed", "phash-mirror", "embedding")}

    # -- previews and the report ------------------------------------------------------------------

    def top_duplicate_groups(self, limit: int = 10) -> list[dict[str, Any]]:
        """The groups wasting most bytes, with their members' keys (canonical first)."""
        rows = self.con.execute(
            """
            SELECT g.group_id, g.file_hash, g.file_size, g.member_count, g.wasted_bytes,
                   list(struct_pack(media_id := m.media_id::VARCHAR, namespace := m.namespace,
                                    key := m.key, reference_count := m.reference_count,
                                    referenced_in := m.referenced_in::VARCHAR,
                                    exif := m.metadata::VARCHAR, status := m.status,
                                    first_seen := m.first_seen)
                        ORDER BY m.media_id = g.canonical_media_id DESC, m.key) AS members
            FROM duplicate_groups g
            JOIN media_files m ON m.file_hash = g.file_hash AND m.file_size = g.file_size
                AND m.status NOT IN ('missing', 'purged', 'pending')
            GROUP BY ALL ORDER BY g.wasted_bytes DESC, g.group_id LIMIT $limit
            """,
            {"limit": limit},
        ).fetchall()
        return [{"group_id": r[0], "file_hash": r[1], "file_size": int(r[2]),
                 "member_count": int(r[3]), "wasted_bytes": int(r[4]),
                 "members": [_member(m) for m in r[5]]} for r in rows]

    def top_near_duplicates(self, limit: int = 10) -> list[dict[str, Any]]:
        """The closest pairs first (hash methods by bits, then embeddings)."""
        rows = self.con.execute(
            """
            SELECT n.method, n.method_distance, n.distance,
                   a.media_id::VARCHAR, a.namespace, a.key, a.file_hash, a.file_size,
                   a.referenced_in::VARCHAR,
                   b.media_id::VARCHAR, b.namespace, b.key, b.file_hash, b.file_size,
                   b.referenced_in::VARCHAR
            FROM near_duplicates n
            JOIN media_files a ON a.media_id = n.media_id_a
                AND a.status NOT IN ('missing', 'purged')
            JOIN media_files b ON b.media_id = n.media_id_b
                AND b.status NOT IN ('missing', 'purged')
            ORDER BY n.method = 'embedding', n.method_distance, a.key, b.key
            LIMIT $limit
            """,
            {"limit": limit},
        ).fetchall()
        out = []
        for r in rows:
            sides = []
            for offset in (3, 9):
                media_id, namespace, key, file_hash, size, used = r[offset:offset + 6]
                sides.append({"media_id": media_id, "namespace": namespace, "key": key,
                              "file_hash": file_hash, "file_size": int(size),
                              "referenced_in": _json(used)})
            method_distance = float(r[1] if r[1] is not None else r[2])
            out.append({"method": r[0] or "phash", "method_distance": method_distance,
                        "distance": int(r[2]), "a": sides[0], "b": sides[1]})
        return out

    def duplicate_counts(self) -> dict[str, int]:
        row = self.con.execute(
            "SELECT (SELECT count(*) FROM duplicate_groups), "
            "(SELECT coalesce(sum(wasted_bytes), 0) FROM duplicate_groups), "
            "(SELECT count(*) FROM near_duplicates n JOIN media_files a "
            "ON a.media_id = n.media_id_a AND a.status NOT IN ('missing', 'purged') "
            "JOIN media_files b ON b.media_id = n.media_id_b "
            "AND b.status NOT IN ('missing', 'purged')), "
            "(SELECT count(*) FROM media_files WHERE status = 'quarantined')").fetchone()
        assert row is not None
        return {"groups": int(row[0]), "wasted_bytes": int(row[1]),
                "near_pairs": int(row[2]), "quarantined": int(row[3])}


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def _member(m: dict[str, Any]) -> dict[str, Any]:
    exif = _json(m["exif"])
    return {"media_id": m["media_id"], "namespace": m["namespace"], "key": m["key"],
            "reference_count": int(m["reference_count"] or 0),
            "referenced_in": _json(m["referenced_in"]), "status": m["status"],
            "exif_fields": sum(1 for k in exif if k.startswith(("exif_", "camera_"))
                               or k == "orientation") if isinstance(exif, dict) else 0}
