"""Numbered schema migrations of the catalog (a DuckLake), applied in order on attach.

Never edit a migration that has shipped: add the next number. The catalog records each applied
number in ``schema_version``. Numbering restarted at 1 with the DuckLake: migration 1 is the
final schema of the single-file catalog's migrations 1-8, translated for DuckLake, which has no
PRIMARY KEY, UNIQUE or index (uniqueness comes by construction in the SQL that writes) and no
fixed-size arrays (vectors are ``FLOAT[]`` lists). Columns keep the order they had, since some
inserts are positional.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

__all__ = ["LATEST_VERSION", "MIGRATIONS", "seed_statistics"]

# A migration is SQL (``__LAKE__`` is the lake's name where it is attached) or a function of
# the session and that name.
Migration = str | Callable[[duckdb.DuckDBPyConnection, str], None]


def seed_statistics(con: duckdb.DuckDBPyConnection, lake: str) -> None:
    """Give every table of the lake that has none its statistics, by inserting a row and
    deleting it in the same transaction (no snapshot ever shows it).

    DuckLake 1.5.5 caches a table's statistics but not their absence: a table that never had
    a row costs one metadata query per column it is read with, in every query (measured: an
    application call's read went from 107-120 ms to 66 ms at 1M objects). A table a later
    migration creates is seeded by that migration (``test_every_table_has_statistics``).
    """
    meta = f"__ducklake_metadata_{lake}"  # where DuckLake attaches the metadata database
    tables = [row[0] for row in con.execute(
        f"SELECT t.table_name FROM {meta}.ducklake_table t WHERE t.end_snapshot IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {meta}.ducklake_table_stats s "
        "WHERE s.table_id = t.table_id) ORDER BY t.table_name").fetchall()]
    columns: dict[str, list[tuple[str, bool]]] = {}
    for table, data_type, nullable in con.execute(
            "SELECT table_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE database_name = ? ORDER BY table_name, column_index", [lake]).fetchall():
        columns.setdefault(table, []).append((data_type, nullable))
    statements = []
    for table in tables:
        values = ", ".join(
            f"NULL::{data_type}" if nullable else f"{_placeholder(data_type)}::{data_type}"
            for data_type, nullable in columns[table])
        statements += [f'INSERT INTO "{table}" VALUES ({values})', f'DELETE FROM "{table}"']
    if statements:  # one call: each statement still costs DuckLake its metadata lookups
        con.execute(";\n".join(statements))


def _placeholder(data_type: str) -> str:
    if data_type.endswith("[]"):
        return "[]"
    if data_type == "JSON":
        return "'{}'"
    if data_type in ("VARCHAR", "BLOB"):
        return "''"
    if data_type == "BOOLEAN":
        return "false"
    if data_type == "UUID":
        return "'00000000-0000-0000-0000-000000000000'"
    if data_type.startswith(("TIMESTAMP", "DATE")):
        return "'epoch'"
    return "0"


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (
        1,
        "the catalog on DuckLake: files, duplicates, references, lifecycle, AI, application",
        """
        CREATE TABLE media_files (
            media_id              UUID NOT NULL,      -- md5(bucket || chr(0) || key) as a UUID
            namespace             VARCHAR NOT NULL,
            bucket                VARCHAR NOT NULL,
            key                   VARCHAR NOT NULL,
            version_id            VARCHAR,
            file_size             BIGINT NOT NULL,
            etag                  VARCHAR,
            last_modified         TIMESTAMPTZ,
            storage_class         VARCHAR,
            original_filename     VARCHAR,
            content_type          VARCHAR,            -- sniffed from the bytes (libmagic)
            declared_content_type VARCHAR,            -- what the uploader said (S3 Content-Type)
            file_hash             VARCHAR,            -- sha256 hex; never the ETag
            hash_source           VARCHAR,
            phash                 UBIGINT,
            width                 INTEGER,
            height                INTEGER,
            page_count            INTEGER,
            metadata              JSON,
            status                VARCHAR NOT NULL DEFAULT 'pending',
            quarantine_reason     VARCHAR,
            visibility            VARCHAR NOT NULL DEFAULT 'private',
            reference_count       INTEGER NOT NULL DEFAULT 0,
            referenced_in         JSON NOT NULL DEFAULT '{}',
            is_deleted            BOOLEAN NOT NULL DEFAULT false,
            deleted_at            TIMESTAMPTZ,
            deleted_by            VARCHAR,
            purged_at             TIMESTAMPTZ,
            fingerprinted_etag    VARCHAR,
            fingerprinted_at      TIMESTAMPTZ,
            missing_since         TIMESTAMPTZ,
            first_seen            TIMESTAMPTZ NOT NULL,
            last_seen             TIMESTAMPTZ NOT NULL,
            ai_title              VARCHAR,
            ai_generated_tags     JSON,
            ai_extracted_text     VARCHAR,
            ai_labels             JSON,
            ai_scores             JSON,
            ai_backend            VARCHAR,
            ai_analyzed_at        TIMESTAMPTZ,
            -- when reference_count last dropped to 0 (NULL: referenced now, or never
            -- referenced, in which case first_seen is the clock for auto soft-delete)
            unreferenced_since    TIMESTAMPTZ,
            owner                 VARCHAR,            -- uploader; NULL: found by inventory
            uploaded_at           TIMESTAMPTZ
        );
        CREATE TABLE duplicate_groups (
            group_id           VARCHAR NOT NULL,
            file_hash          VARCHAR NOT NULL,
            file_size          BIGINT NOT NULL,
            member_count       INTEGER NOT NULL,
            canonical_media_id UUID NOT NULL,
            wasted_bytes       BIGINT NOT NULL
        );
        CREATE VIEW duplicate_members AS
            SELECT g.group_id, m.media_id, m.key, m.namespace, m.file_size,
                   m.media_id = g.canonical_media_id AS is_canonical
            FROM duplicate_groups g
            JOIN media_files m ON m.file_hash = g.file_hash AND m.file_size = g.file_size
            WHERE m.status NOT IN ('missing', 'purged', 'pending');
        CREATE TABLE near_duplicates (
            media_id_a      UUID NOT NULL,
            media_id_b      UUID NOT NULL,
            distance        INTEGER NOT NULL,
            found_at        TIMESTAMPTZ NOT NULL,
            method          VARCHAR,            -- phash|phash-trimmed|...
            method_distance DOUBLE              -- bits, or 1 - cosine
        );
        CREATE TABLE audit_log (
            ts       TIMESTAMPTZ NOT NULL,
            actor    VARCHAR NOT NULL,
            action   VARCHAR NOT NULL,
            media_id UUID,
            details  JSON,
            run_id   VARCHAR
        );
        CREATE TABLE inventory_runs (
            started    TIMESTAMPTZ NOT NULL,
            source     VARCHAR NOT NULL,
            bucket     VARCHAR NOT NULL,
            rows       BIGINT NOT NULL,
            new        BIGINT NOT NULL,
            changed    BIGINT NOT NULL,
            unchanged  BIGINT NOT NULL,
            missing    BIGINT NOT NULL,
            reappeared BIGINT NOT NULL,
            run_id     VARCHAR
        );
        CREATE TABLE ai_results (
            file_hash  VARCHAR NOT NULL,     -- results are per content: duplicates share them
            backend    VARCHAR NOT NULL,
            model      VARCHAR NOT NULL,
            version    VARCHAR NOT NULL,
            params     VARCHAR NOT NULL,     -- hash of the parameters that change the output
            result     JSON NOT NULL,        -- raw scores; thresholds apply when read
            created_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ           -- remote service results honour AI_CACHE_TIMEOUT
        );
        CREATE TABLE ai_failures (
            file_hash  VARCHAR NOT NULL,
            backend    VARCHAR NOT NULL,
            model      VARCHAR NOT NULL,
            version    VARCHAR NOT NULL,
            error      VARCHAR NOT NULL,
            failed_at  TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE media_tags (
            media_id   UUID NOT NULL,
            tag        VARCHAR NOT NULL,
            source     VARCHAR NOT NULL,     -- 'manual' | 'ai'
            confidence DOUBLE,
            detector   VARCHAR,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        -- one row per namespace (by construction: application.py inserts only when absent)
        CREATE TABLE namespaces (
            namespace          VARCHAR NOT NULL,
            default_visibility VARCHAR NOT NULL DEFAULT 'private',
            created_by         VARCHAR NOT NULL,
            created_at         TIMESTAMPTZ NOT NULL
        );
        -- one row per (namespace, user_id), by construction
        CREATE TABLE namespace_members (
            namespace VARCHAR NOT NULL,
            user_id   VARCHAR NOT NULL,
            role      VARCHAR NOT NULL,      -- 'viewer' | 'editor' | 'admin'
            added_by  VARCHAR NOT NULL,
            added_at  TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE media_references (
            media_id     UUID NOT NULL,      -- media_id_for(bucket, key) for a key reference,
                                             -- even when the catalog has no such key (dangling)
            bucket       VARCHAR,            -- NULL for references by media id
            key          VARCHAR,
            content_type VARCHAR NOT NULL,   -- e.g. 'webpage'
            content_id   VARCHAR NOT NULL,   -- e.g. '123'
            source       VARCHAR NOT NULL,   -- a content source's name, or 'api'
            origin       VARCHAR NOT NULL,   -- 'scan' | 'api'
            form         VARCHAR,            -- how the content refers to the file (public_url, ...)
            created_by   VARCHAR,            -- API references: who added it
            first_seen   TIMESTAMPTZ NOT NULL,
            last_seen    TIMESTAMPTZ NOT NULL,
            snippet      VARCHAR             -- mentions: where found
        );
        CREATE TABLE source_scans (
            source         VARCHAR NOT NULL,
            started        TIMESTAMPTZ NOT NULL,
            finished       TIMESTAMPTZ,
            ok             BOOLEAN NOT NULL,
            documents      BIGINT,
            refs           BIGINT,
            bytes          BIGINT,
            text_fallbacks BIGINT,
            error          VARCHAR,
            run_id         VARCHAR,
            state          VARCHAR,          -- trusted|accepted|suspect|failed
            trusted        BOOLEAN,          -- rows applied: counts for purges
            mentions       BIGINT,           -- left out of the drift compare
            drift          JSON,             -- baseline, new, reasons, max_drop
            accepted_by    VARCHAR
        );
        -- one row per purge_id (a fresh UUID per run)
        CREATE TABLE purge_runs (
            purge_id       VARCHAR NOT NULL,
            started        TIMESTAMPTZ NOT NULL,   -- the run's clock ("now")
            finished       TIMESTAMPTZ,
            state          VARCHAR NOT NULL,       -- 'running' | 'done' | 'refused' | 'failed'
            retention_days INTEGER NOT NULL,
            versions       VARCHAR NOT NULL,       -- settings.purge_versions of the run
            sources        JSON NOT NULL,          -- the enabled content sources it relied on
            candidates     BIGINT NOT NULL DEFAULT 0,
            purged         BIGINT NOT NULL DEFAULT 0,
            bytes_freed    BIGINT NOT NULL DEFAULT 0,
            refused_reason VARCHAR,
            errors         JSON,
            run_id         VARCHAR
        );
        -- mark-then-sweep: a row per file a run set out to purge, written before any S3 call.
        -- state: 'marked' -> 'deleting' (re-checked, S3 delete under way) -> 'purged';
        -- or 'skipped' (re-check failed), 'error' (S3 refused), 'cancelled' (restored),
        -- 'abandoned' (a crashed run's mark that never reached S3; re-decided by the next run)
        CREATE TABLE purge_marks (
            purge_id          VARCHAR NOT NULL,
            media_id          UUID NOT NULL,
            bucket            VARCHAR NOT NULL,
            key               VARCHAR NOT NULL,
            version_id        VARCHAR,
            etag              VARCHAR,
            file_size         BIGINT NOT NULL,
            deleted_at        TIMESTAMPTZ NOT NULL,
            batch             INTEGER NOT NULL,
            marked_at         TIMESTAMPTZ NOT NULL,
            state             VARCHAR NOT NULL,
            reason            VARCHAR,
            updated_at        TIMESTAMPTZ NOT NULL,
            marker_version_id VARCHAR             -- for unpurge
        );
        CREATE TABLE tags (
            namespace  VARCHAR NOT NULL,
            name       VARCHAR NOT NULL,     -- as first written; unique per namespace ignoring case
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        -- one row per collection_id (a fresh UUID per collection)
        CREATE TABLE collections (
            collection_id UUID NOT NULL,
            namespace     VARCHAR NOT NULL,
            name          VARCHAR NOT NULL,
            visibility    VARCHAR NOT NULL DEFAULT 'private',
            owner         VARCHAR NOT NULL,
            created_at    TIMESTAMPTZ NOT NULL,
            updated_at    TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE collection_items (
            collection_id UUID NOT NULL,
            media_id      UUID NOT NULL,
            position      INTEGER NOT NULL,  -- 0-based, contiguous within a collection
            added_by      VARCHAR NOT NULL,
            added_at      TIMESTAMPTZ NOT NULL
        );
        -- every source the catalog has scanned; a purge needs each one until it is retired
        CREATE TABLE content_sources (
            source         VARCHAR NOT NULL,
            kind           VARCHAR,
            description    VARCHAR,            -- describe(): secrets redacted
            first_seen     TIMESTAMPTZ NOT NULL,
            last_seen      TIMESTAMPTZ NOT NULL,
            retired_at     TIMESTAMPTZ,
            retired_by     VARCHAR,
            retired_reason VARCHAR
        );
        -- per content hash: what near-duplicate detection needs beyond media_files.phash
        CREATE TABLE image_features (
            file_hash      VARCHAR NOT NULL,
            revision       INTEGER NOT NULL,   -- of media_pipeline.dedup.features
            trimmed_phash  UBIGINT,            -- pHash after flat borders are cut
            mirrored_phash UBIGINT,            -- ... of the same, flipped left to right
            layout         FLOAT[],            -- 64: 8x8 brightness, centred, unit length
            embedding      FLOAT[],            -- 1280, unit length; NULL without ai-vision
            embedder       VARCHAR,
            error          VARCHAR,            -- why nothing could be computed
            computed_at    TIMESTAMPTZ NOT NULL,
            colours        FLOAT[]             -- 48: 4x4 mean L*a*b*, row by row
        );
        -- per content hash: a small JPEG made from the decoded pixels (never from SVG/HTML)
        CREATE TABLE thumbnails (
            file_hash  VARCHAR NOT NULL,
            width      INTEGER,
            height     INTEGER,
            jpeg       BLOB,                   -- NULL when the picture could not be decoded
            error      VARCHAR,
            created_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        2,
        "history: the catalog snapshot each purge decided on",
        """
        -- DuckLake's snapshot id; catalog_maintenance keeps these snapshots for the retention
        CREATE TABLE purge_snapshots (
            purge_id    VARCHAR NOT NULL,
            snapshot_id BIGINT NOT NULL,
            decided_at  TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (
        3,
        "facts: deletion and reference-removal facts; media_files becomes a view over them",
        """
        -- media_files minus what is derived from facts; status is the pipeline's only
        -- (pending, active, quarantined, missing, purged): 'deleted' comes from media_deletions
        CREATE TABLE media_objects (
            media_id              UUID NOT NULL,
            namespace             VARCHAR NOT NULL,
            bucket                VARCHAR NOT NULL,
            key                   VARCHAR NOT NULL,
            version_id            VARCHAR,
            file_size             BIGINT NOT NULL,
            etag                  VARCHAR,
            last_modified         TIMESTAMPTZ,
            storage_class         VARCHAR,
            original_filename     VARCHAR,
            content_type          VARCHAR,
            declared_content_type VARCHAR,
            file_hash             VARCHAR,
            hash_source           VARCHAR,
            phash                 UBIGINT,
            width                 INTEGER,
            height                INTEGER,
            page_count            INTEGER,
            metadata              JSON,
            status                VARCHAR NOT NULL DEFAULT 'pending',
            quarantine_reason     VARCHAR,
            visibility            VARCHAR NOT NULL DEFAULT 'private',
            purged_at             TIMESTAMPTZ,
            fingerprinted_etag    VARCHAR,
            fingerprinted_at      TIMESTAMPTZ,
            missing_since         TIMESTAMPTZ,
            first_seen            TIMESTAMPTZ NOT NULL,
            last_seen             TIMESTAMPTZ NOT NULL,
            ai_title              VARCHAR,
            ai_generated_tags     JSON,
            ai_extracted_text     VARCHAR,
            ai_labels             JSON,
            ai_scores             JSON,
            ai_backend            VARCHAR,
            ai_analyzed_at        TIMESTAMPTZ,
            owner                 VARCHAR,
            uploaded_at           TIMESTAMPTZ
        );
        INSERT INTO media_objects
        SELECT media_id, namespace, bucket, key, version_id, file_size, etag, last_modified,
            storage_class, original_filename, content_type, declared_content_type, file_hash,
            hash_source, phash, width, height, page_count, metadata, CASE WHEN status <> 'deleted'
            THEN status
                        WHEN fingerprinted_etag IS DISTINCT FROM etag THEN 'pending'
                        WHEN quarantine_reason IS NOT NULL THEN 'quarantined'
                        ELSE 'active' END, quarantine_reason, visibility, purged_at,
                            fingerprinted_etag, fingerprinted_at, missing_since, first_seen,
                            last_seen, ai_title, ai_generated_tags, ai_extracted_text, ai_labels,
                            ai_scores, ai_backend, ai_analyzed_at, owner, uploaded_at
        FROM media_files;
        -- append-only: a delete appends true, a restore (or new content at the key) false. The
        -- newest fact of a file wins; newest = highest rowid, which DuckLake hands out in commit
        -- order (and insert order within one), whatever clock wrote changed_at
        CREATE TABLE media_deletions (
            media_id   UUID NOT NULL,
            deleted    BOOLEAN NOT NULL,
            changed_at TIMESTAMPTZ,            -- deleted_at while deleted
            actor      VARCHAR,                -- deleted_by while deleted
            reason     VARCHAR NOT NULL,       -- delete, delete.auto, restore, unpurge, upload,
                                               -- new content (at its key), migration
            run_id     VARCHAR
        );
        INSERT INTO media_deletions
        SELECT media_id, true, deleted_at, deleted_by, 'migration', NULL FROM media_files
        WHERE status = 'deleted' OR (status IN ('missing', 'purged') AND is_deleted)
        ORDER BY deleted_at, media_id;
        -- append-only: a reference to a catalogued file went away (API removal, scan, retired
        -- source); the newest one of a file that has none left is when it became unreferenced
        CREATE TABLE reference_removals (
            media_id     UUID NOT NULL,
            removed_at   TIMESTAMPTZ NOT NULL,
            source       VARCHAR NOT NULL,     -- 'api', a content source, or 'migration'
            content_type VARCHAR,
            content_id   VARCHAR
        );
        INSERT INTO reference_removals
        SELECT media_id, unreferenced_since, 'migration', NULL, NULL FROM media_files
        WHERE unreferenced_since IS NOT NULL ORDER BY unreferenced_since, media_id;
        DROP TABLE media_files;
        CREATE VIEW media_deletion_state AS
            SELECT media_id, arg_max(deleted, rowid) AS is_deleted,
                   arg_max(changed_at, rowid) AS changed_at, arg_max(actor, rowid) AS actor
            FROM media_deletions GROUP BY media_id;
        -- the seed's referenced_in {"webpage": ["123"]}: keys and ids sorted, built as text
        CREATE VIEW media_reference_state AS
            SELECT media_id, sum(len(ids))::INTEGER AS n,
                   '{' || string_agg(to_json(content_type)::VARCHAR || ':'
                                     || to_json(ids)::VARCHAR, ',' ORDER BY content_type)
                       || '}' AS refs
            FROM (SELECT media_id, content_type, list(content_id ORDER BY content_id) AS ids
                  FROM (SELECT DISTINCT media_id, content_type, content_id
                        FROM media_references)
                  GROUP BY media_id, content_type)
            GROUP BY media_id;
        -- every column of the old table, by its old name and in its old order
        CREATE VIEW media_files AS
            SELECT o.media_id, o.namespace, o.bucket, o.key, o.version_id, o.file_size, o.etag,
                o.last_modified, o.storage_class, o.original_filename, o.content_type,
                o.declared_content_type, o.file_hash, o.hash_source, o.phash, o.width, o.height,
                o.page_count, o.metadata,
                   CASE WHEN d.is_deleted AND o.status NOT IN ('missing', 'purged') THEN 'deleted'
                        ELSE o.status END AS status,
                   o.quarantine_reason, o.visibility,
                   coalesce(r.n, 0) AS reference_count,
                   coalesce(r.refs, '{}')::JSON AS referenced_in,
                   coalesce(d.is_deleted, false) AS is_deleted,
                   CASE WHEN d.is_deleted THEN d.changed_at END AS deleted_at,
                   CASE WHEN d.is_deleted THEN d.actor END AS deleted_by,
                   o.purged_at, o.fingerprinted_etag, o.fingerprinted_at, o.missing_since,
                       o.first_seen, o.last_seen, o.ai_title, o.ai_generated_tags,
                       o.ai_extracted_text, o.ai_labels, o.ai_scores, o.ai_backend,
                       o.ai_analyzed_at,
                   CASE WHEN r.media_id IS NULL THEN u.removed_at END AS unreferenced_since,
                   o.owner, o.uploaded_at
            FROM media_objects o
            LEFT JOIN media_deletion_state d ON d.media_id = o.media_id
            LEFT JOIN media_reference_state r ON r.media_id = o.media_id
            LEFT JOIN (SELECT media_id, arg_max(removed_at, rowid) AS removed_at
                       FROM reference_removals GROUP BY media_id) u ON u.media_id = o.media_id;
        """,
    ),
    (
        4,
        "files and references kept sorted by media id; data files of at most 16 MB",
        # A lookup by id then reads the one file whose min/max brackets it (DuckLake prunes the
        # others by their statistics), so it costs the same at 1M and 5M objects. DuckLake sorts
        # on INSERT, merge and flush; files written before keep their order until rewritten.
        # __LAKE__ is the lake's name where it is attached.
        """
        ALTER TABLE media_objects SET SORTED BY (media_id);
        ALTER TABLE media_references SET SORTED BY (media_id);
        CALL __LAKE__.set_option('target_file_size', '16MB');
        -- the rows already there, written again in that order
        CREATE TEMP TABLE sorted_objects AS SELECT * FROM media_objects;
        DELETE FROM media_objects;
        INSERT INTO media_objects SELECT * FROM sorted_objects;
        DROP TABLE sorted_objects;
        CREATE TEMP TABLE sorted_references AS SELECT * FROM media_references;
        DELETE FROM media_references;
        INSERT INTO media_references SELECT * FROM sorted_references;
        DROP TABLE sorted_references;
        """,
    ),
    (5, "every table has statistics (DuckLake re-reads a table's missing ones per query)",
     seed_statistics),
    (
        6,
        "an object's last_seen comes from its bucket's latest whole listing, not a nightly UPDATE",
        # A whole listing (prefix '') saw every object still present when it ran: media_files
        # takes last_seen from it instead of rewriting every row of media_objects each night.
        # media_objects.last_seen is when the object was last seen on its own (its insert, a
        # change, HEAD); an object going missing or purged keeps the listing's time there.
        """
        ALTER TABLE inventory_runs ADD COLUMN prefix VARCHAR;
        CREATE OR REPLACE VIEW media_files AS
            SELECT o.media_id, o.namespace, o.bucket, o.key, o.version_id, o.file_size, o.etag,
                o.last_modified, o.storage_class, o.original_filename, o.content_type,
                o.declared_content_type, o.file_hash, o.hash_source, o.phash, o.width, o.height,
                o.page_count, o.metadata,
                   CASE WHEN d.is_deleted AND o.status NOT IN ('missing', 'purged') THEN 'deleted'
                        ELSE o.status END AS status,
                   o.quarantine_reason, o.visibility,
                   coalesce(r.n, 0) AS reference_count,
                   coalesce(r.refs, '{}')::JSON AS referenced_in,
                   coalesce(d.is_deleted, false) AS is_deleted,
                   CASE WHEN d.is_deleted THEN d.changed_at END AS deleted_at,
                   CASE WHEN d.is_deleted THEN d.actor END AS deleted_by,
                   o.purged_at, o.fingerprinted_etag, o.fingerprinted_at, o.missing_since,
                       o.first_seen,
                       CASE WHEN o.status NOT IN ('missing', 'purged') AND l.listed > o.last_seen
                            THEN l.listed ELSE o.last_seen END AS last_seen,
                       o.ai_title, o.ai_generated_tags,
                       o.ai_extracted_text, o.ai_labels, o.ai_scores, o.ai_backend,
                       o.ai_analyzed_at,
                   CASE WHEN r.media_id IS NULL THEN u.removed_at END AS unreferenced_since,
                   o.owner, o.uploaded_at
            FROM media_objects o
            LEFT JOIN media_deletion_state d ON d.media_id = o.media_id
            LEFT JOIN media_reference_state r ON r.media_id = o.media_id
            LEFT JOIN (SELECT media_id, arg_max(removed_at, rowid) AS removed_at
                       FROM reference_removals GROUP BY media_id) u ON u.media_id = o.media_id
            LEFT JOIN (SELECT bucket, max(started) AS listed FROM inventory_runs
                       WHERE prefix = '' GROUP BY bucket) l ON l.bucket = o.bucket;
        """,
    ),
    (
        7,
        "a scan records the newest deletion fact it saw when it read the soft-deleted keys",
        # A deletion is stamped (deleted_at) before it commits, and its commit may wait: a scan
        # that started after deleted_at may have read the soft-deleted keys before the deletion
        # committed, and so never looked for the file. media_deletions' rowids follow commit
        # order: the purge needs each file's newest fact at or below what every source's latest
        # trusted scan saw (NULL: a scan recorded before this migration, not checked).
        "ALTER TABLE source_scans ADD COLUMN deletions_seen BIGINT;",
    ),
]

LATEST_VERSION = max(version for version, _, _ in MIGRATIONS)

