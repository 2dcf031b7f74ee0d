"""The lifecycle (``catalog.lifecycle``): soft delete, restore, auto soft-delete and purge's marks.

Every change is audited in the transaction that makes it. Decisions that protect files (is it
referenced? is it still what was marked?) are taken inside that same transaction, never on a
value read earlier.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from media_pipeline.catalog.retry import retried
from media_pipeline.catalog.sql import (
    DELETED_IDS,
    FILE_STATE,
    KEEP_LISTED_LAST_SEEN,
    aware,
    utc_now,
)
from media_pipeline.catalog.store import Store
from media_pipeline.errors import LifecycleError, Refused, UnknownMedia
from media_pipeline.kinds import MediaStatus

__all__ = ["PURGE_EXCLUSION", "LifecycleStore", "OverCap"]

# A file no reference points at (the index is the one truth: counts are derived from it).
UNREFERENCED = "NOT EXISTS (SELECT 1 FROM media_references r WHERE r.media_id = m.media_id)"
# Each file's newest reference removal (by commit order).
LAST_REMOVAL = """(SELECT media_id, arg_max(removed_at, rowid) AS removed_at
    FROM reference_removals GROUP BY media_id)"""
# Status an unpurged file gets back: what inventory/fingerprinting would say it is.
RESTORED_STATUS = f"""CASE WHEN status = '{MediaStatus.MISSING}' THEN '{MediaStatus.MISSING}'
                          WHEN fingerprinted_etag IS DISTINCT FROM etag THEN '{MediaStatus.PENDING}'
                          WHEN quarantine_reason IS NOT NULL THEN '{MediaStatus.QUARANTINED}'
                          ELSE '{MediaStatus.ACTIVE}' END"""
TOO_RECENT = "deleted less than the minimum age ago"
# Why a purge candidate (m) may not be purged (NULL: it may). $cutoff: deleted before it means
# past the retention; $horizon: every enabled source has a successful scan started after it;
# $seen: every such scan read the keys it looks for after the file's newest deletion fact (by
# rowid, commit order) had committed (references.scan_deletions_seen; NULL: not recorded).
PURGE_BLOCKER = f"""CASE
    WHEN m.media_id IS NULL THEN 'no longer in the catalog'
    WHEN m.status <> '{MediaStatus.DELETED}' OR NOT m.is_deleted
        THEN 'no longer deleted (' || m.status || ')'
    WHEN NOT ({UNREFERENCED}) THEN 'referenced'
    WHEN m.deleted_at IS NULL OR NOT (m.deleted_at < $cutoff) THEN 'within the retention period'
    WHEN NOT (m.deleted_at < $settled) THEN '{TOO_RECENT}'
    WHEN NOT (m.deleted_at < $horizon) THEN 'not every content source scanned since deletion'
    WHEN (SELECT max(x.rowid) FROM media_deletions x WHERE x.media_id = m.media_id)
         > coalesce($seen::BIGINT, 9223372036854775807)
        THEN 'not every content source scanned since deletion'
    ELSE NULL END"""


# A file deleted less than this long ago is not purged, whatever the retention. A reference or
# restore whose transaction began before the deletion committed writes nothing the deletion or
# the purge's re-check writes, so no conflict stops it: it must commit within
# WRITE_TRANSACTION_LIMIT of beginning (``Catalog.refuse_if_older_than``), long before the
# file can be purged. Twice the limit leaves the rest for clocks that disagree.
WRITE_TRANSACTION_LIMIT = timedelta(seconds=15)
PURGE_MIN_AGE = timedelta(seconds=60)

# Other processes are kept from referencing or restoring a file mid-purge by the catalog itself:
# the re-check commits 'deleting' marks before any S3 call, and writers that could make a
# candidate referenced or restored write the same mark rows, so concurrent ones conflict (see
# add_reference, restore_media). Threads of one process also wait: such writers take this lock
# for their transaction, and a purge batch holds it from its re-check to its catalog update.
PURGE_EXCLUSION = threading.RLock()


class OverCap(Refused):
    """More files were marked than the purge's cap allows; the marks were rolled back."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} files marked, over the cap")
        self.count = count


def _is_soft_deleted(state: dict[str, Any]) -> bool:
    """Deleted (and, if its object vanished since, missing). A row whose key was uploaded again
    after a delete or purge is back to pending/active: the old is_deleted flag does not count."""
    return state["status"] == "deleted" or (state["status"] == "missing"
                                            and bool(state["is_deleted"]))


class LifecycleStore(Store):
    """``catalog.lifecycle``: deletion facts, restores, auto soft-delete and purge runs."""

    # -- one file ----------------------------------------------------------------------------

    def _append_deletion(self, media_id: str, deleted: bool, at: datetime, actor: str | None,
                         reason: str, run_id: str | None = None) -> None:
        """Append a deletion fact: the newest one of a file is its deletion state."""
        self.con.execute("INSERT INTO media_deletions VALUES (?::UUID, ?, ?, ?, ?, ?)",
                         [media_id, deleted, at, actor, reason, run_id])

    def claim_deletion(self, media_id: str) -> None:
        """Rewrite (unchanged) a soft-deleted file's deletion facts. A purge's re-check does so
        for every file it is about to delete, so a reference or a restore whose snapshot began
        before the purge marked the file (and so saw no mark to update) still conflicts with it:
        snapshot isolation alone lets each commit on what the other had not committed yet."""
        self.con.execute("UPDATE media_deletions SET actor = actor WHERE media_id = ?::UUID",
                         [media_id])

    def media_state(self, media_id: str) -> dict[str, Any] | None:
        """What the lifecycle needs to know about one file, or None if the catalog has none."""
        cursor = self.con.execute(
            """
            SELECT media_id::VARCHAR AS media_id, namespace, bucket, key, status, is_deleted,
                   deleted_at, deleted_by, purged_at, reference_count, file_size, etag,
                   version_id, quarantine_reason, unreferenced_since, first_seen, visibility,
                   owner
            FROM media_files WHERE media_id = try_cast(? AS UUID)
            """,
            [media_id],
        )
        rows = cursor.fetchall()  # all: a pending result keeps a transaction open
        if not rows:
            return None
        return dict(zip([d[0] for d in cursor.description or []], rows[0], strict=True))

    def file_context(self, media_id: str, user: str | None = None, *, marks: bool = False,
                     references: bool = False, api_reference: tuple[str, str] | None = None,
                     uncatalogued: bool = False, columns: Sequence[str] = (),
                     deletion: bool = True) -> dict[str, Any] | None:
        """One file's state for an application action, in one query (each table a DuckLake
        query touches costs ~10-20 ms of metadata work, whatever its size): the base row's
        access and lifecycle columns, its deletion state and ``user``'s role in its namespace
        (remembered for ``application.member_role`` in this session). On request: ``marks``
        (``deleting``/``marked`` purge marks), ``references`` (``refs``, as
        ``references.references_of`` has them) and
        ``api_reference`` (``api_ref``: whether the API recorded that (content type, id)).
        Without ``deletion`` the status is the stored one, ``is_deleted`` False and
        ``deleted_at``/``deleted_by`` None: one table less.
        None if the catalog has no such file, unless ``uncatalogued``: then the requested facts
        of the id, with ``media_id`` None and the rest NULL."""
        extra = ""
        params: dict[str, Any] = {"id": media_id, "user": user}
        # Correlated, not compared with the parameter: DuckDB plans that as a join, ~2x faster.
        ref = "i.id" if uncatalogued else "o.media_id"
        if marks:
            extra += f""",
                (SELECT {{'deleting': count(*) FILTER (state = 'deleting'),
                          'marked': count(*) FILTER (state = 'marked')}}
                 FROM purge_marks p WHERE p.media_id = {ref}) AS marks"""
        if references or api_reference is not None:
            # one scan of the index for both
            if api_reference is not None:
                params["ct"], params["cid"] = api_reference
            api = ("bool_or(origin = 'api' AND content_type = $ct AND content_id = $cid)"
                   if api_reference is not None else "NULL")
            listed = ("list(DISTINCT [content_type, content_id] "
                      "ORDER BY [content_type, content_id])" if references else "NULL")
            extra += f""",
                (SELECT {{'refs': {listed}, 'api_ref': coalesce({api}, false)}}
                 FROM media_references r WHERE r.media_id = {ref}) AS index_facts"""
        deletion_state = (
            "(SELECT arg_max({'d': deleted, 'at': changed_at, 'by': actor}, rowid) "
            f"FROM media_deletions WHERE media_deletions.media_id = {ref})" if deletion else
            "{'d': NULL::BOOLEAN, 'at': NULL::TIMESTAMPTZ, 'by': NULL::VARCHAR}")
        source = ("(SELECT try_cast($id AS UUID) AS id) i "
                  "LEFT JOIN media_objects o ON o.media_id = i.id"
                  if uncatalogued else
                  "media_objects o WHERE o.media_id = try_cast($id AS UUID)")
        cursor = self.con.execute(
            f"""
            SELECT media_id, namespace, bucket, key,
                   CASE WHEN del.d AND status NOT IN ('missing', 'purged') THEN 'deleted'
                        ELSE status END AS status,
                   coalesce(del.d, false) AS is_deleted,
                   CASE WHEN del.d THEN del.at END AS deleted_at,
                   CASE WHEN del.d THEN del.by END AS deleted_by,
                   * EXCLUDE (media_id, namespace, bucket, key, status, del)
            FROM (
                SELECT o.media_id::VARCHAR AS media_id, o.namespace, o.bucket, o.key, o.status,
                       o.visibility, o.owner,{"".join(f" o.{c}," for c in columns)}
                       {deletion_state} AS del,
                       (SELECT m.role FROM namespace_members m WHERE m.namespace = o.namespace
                        AND m.user_id = $user) AS role{extra}
                FROM {source})
            """,
            params,
        )
        rows = cursor.fetchall()  # all: a pending result keeps a transaction open
        if not rows:
            return None
        context = dict(zip([d[0] for d in cursor.description or []], rows[0], strict=True))
        if marks:
            context.update(context.pop("marks") or {"deleting": 0, "marked": 0})
        if references or api_reference is not None:
            context.update(context.pop("index_facts") or {"refs": None, "api_ref": False})
        if user is not None and context["media_id"] is not None:
            self.catalog.roles[(context["namespace"], user)] = context["role"]
        if references:
            grouped: dict[str, list[str]] = {}
            for content_type, content_id in context["refs"] or []:
                grouped.setdefault(content_type, []).append(content_id)
            context["refs"] = grouped
        return context

    def _checked_context(self, media_id: str, user: str,
                         check: Callable[[dict[str, Any]], None] | None,
                         **facts: Any) -> dict[str, Any]:
        """:meth:`file_context` of a catalogued file (else ``UnknownMedia``), passed by
        ``check`` (which raises to refuse)."""
        state = self.file_context(media_id, user, **facts)
        if state is None:
            raise UnknownMedia.of(media_id)
        if check is not None:
            check(state)
        return state

    @retried
    def soft_delete(
        self, media_id: str, user: str, *, allow_referenced: bool, now: datetime | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[Literal["deleted", "refused", "already"], dict[str, list[str]]]:
        """Soft-delete one file, deciding inside the transaction.

        Returns (outcome, references): outcome is ``deleted``, ``refused`` (referenced and not
        allowed; nothing changed) or ``already`` (already deleted). Raises
        :class:`UnknownMedia`, or :class:`LifecycleError` for a purged file. ``check`` sees the
        file's :meth:`file_context` first, in the same transaction, and raises to refuse.
        """
        now = aware(now) or utc_now()
        with self.transaction():
            state = self._checked_context(media_id, user, check, references=True)
            media_id = state["media_id"]
            refs: dict[str, list[str]] = state["refs"]
            count = sum(len(v) for v in refs.values())
            if state["status"] == "purged":
                raise LifecycleError(f"media file {media_id} was purged already")
            if _is_soft_deleted(state):
                return "already", refs
            if count and not allow_referenced:
                self.catalog.application.record_audit(
                    user, "delete.refused", media_id,
                    {"reference_count": count, "references": refs})
                return "refused", refs
            self._append_deletion(media_id, True, now, user, "delete")
            details: dict[str, Any] = {"previous_status": state["status"],
                                       "forced": bool(count and allow_referenced)}
            if count:
                details["references"] = refs
            self.catalog.application.record_audit(
                user, "delete.force" if count else "delete", media_id, details)
        return "deleted", refs

    @retried
    def restore_media(self, media_id: str, user: str,
                      check: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Undo a soft delete. Raises :class:`UnknownMedia`, or :class:`LifecycleError` when
        the file is not deleted, was purged, or an interrupted purge may have deleted its
        object already (the next purge run settles it first). ``check`` as for
        :meth:`soft_delete`."""
        with PURGE_EXCLUSION, self.transaction():
            state = self._checked_context(media_id, user, check, marks=True)
            media_id = state["media_id"]
            if state["status"] == "purged":
                raise LifecycleError(f"media file {media_id} was purged; it cannot be restored")
            if not _is_soft_deleted(state):
                raise LifecycleError(f"media file {media_id} is not deleted")
            if state["deleting"]:
                raise LifecycleError(
                    f"an interrupted purge may already have deleted media file {media_id} "
                    "from S3; run `media-pipeline purge` to settle it, then restore if it is "
                    "still there")
            self.claim_deletion(media_id)
            # media_objects.status already is the pipeline's: the fact is all a restore changes
            self._append_deletion(media_id, False, utc_now(), user, "restore")
            cancelled = 0
            if state["marked"]:  # read in this transaction's snapshot: the same rows
                row = self.con.execute(
                    "UPDATE purge_marks SET state = 'cancelled', reason = 'restored by ' || ?, "
                    "updated_at = ? WHERE media_id = ?::UUID AND state = 'marked'",
                    [user, utc_now(), media_id],
                ).fetchone()
                cancelled = int(row[0]) if row else 0
            self.catalog.application.record_audit(user, "restore", media_id, {
                "deleted_at": str(state["deleted_at"]), "deleted_by": state["deleted_by"],
                "cancelled_purge_marks": cancelled,
            })

    # -- auto soft-delete --------------------------------------------------------------------

    @retried
    def auto_soft_delete(
        self, days_by_namespace: dict[str, int], now: datetime, actor: str,
        run_id: str | None = None,
    ) -> dict[str, int]:
        """Soft-delete active files unreferenced for a namespace's number of days (since
        reference_count last dropped to 0, or since first seen if never referenced)."""
        result: dict[str, int] = {}
        with self.transaction():
            for namespace, days in sorted(days_by_namespace.items()):
                self.con.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE auto_delete AS
                    SELECT media_id, since FROM (
                        SELECT m.media_id,
                               -- unreferenced_since as media_files derives it
                               coalesce(u.removed_at, m.first_seen) AS since
                        FROM media_objects m LEFT JOIN {LAST_REMOVAL} u USING (media_id)
                        WHERE m.namespace = $ns AND m.status = 'active'
                          AND m.media_id NOT IN {DELETED_IDS} AND {UNREFERENCED})
                    WHERE since <= $now - to_days($days::INTEGER)
                    """,
                    {"ns": namespace, "now": now, "days": days},
                )
                self.con.execute(
                    "INSERT INTO media_deletions SELECT media_id, true, $now, $actor, "
                    "'delete.auto', $run FROM auto_delete ORDER BY media_id",
                    {"now": now, "actor": actor, "run": run_id},
                )
                row = self.con.execute(
                    """
                    INSERT INTO audit_log
                    SELECT $ts, $actor, 'delete.auto', media_id,
                           json_object('unreferenced_since', since::VARCHAR, 'days', $days,
                                       'namespace', $ns), $run
                    FROM auto_delete
                    """,
                    {"ts": utc_now(), "actor": actor, "days": days, "ns": namespace,
                     "run": run_id},
                ).fetchone()
                result[namespace] = int(row[0]) if row else 0
            self.con.execute("DROP TABLE IF EXISTS auto_delete")
        return result

    # -- purge -------------------------------------------------------------------------------

    def purge_candidates(
        self, cutoff: datetime, horizon: datetime, limit: int | None = None, *,
        min_age: timedelta = PURGE_MIN_AGE, seen: int | None = None,
    ) -> dict[str, Any]:
        """Files a purge would delete now: count, bytes, non-purged files, and a sample."""
        where = f"m.status = 'deleted' AND ({PURGE_BLOCKER}) IS NULL"
        params = {"cutoff": cutoff, "horizon": horizon, "settled": utc_now() - min_age,
                  "seen": seen}
        young = f"m.status = 'deleted' AND ({PURGE_BLOCKER}) = '{TOO_RECENT}'"
        row = self.con.execute(
            f"""
            SELECT count(*) FILTER (WHERE {where}),
                   coalesce(sum(file_size) FILTER (WHERE {where}), 0),
                   count(*) FILTER (WHERE status <> 'purged'),
                   count(*) FILTER (WHERE {young})
            FROM {FILE_STATE} m
            """,
            params,
        ).fetchone()
        assert row is not None
        sample = self.con.execute(
            f"""
            SELECT media_id::VARCHAR, bucket, key, file_size, deleted_at FROM {FILE_STATE} m
            WHERE {where} ORDER BY bucket, key LIMIT {int(limit if limit is not None else 1000)}
            """,
            params,
        ).fetchall()
        return {
            "count": int(row[0]), "bytes": int(row[1]), "non_purged": int(row[2]),
            "too_recent": int(row[3]),
            "files": [{"media_id": r[0], "bucket": r[1], "key": r[2], "size": int(r[3]),
                       "deleted_at": r[4]} for r in sample],
        }

    @retried
    def start_purge_run(
        self, purge_id: str, now: datetime, *, retention_days: int, versions: str,
        sources: Sequence[str], cutoff: datetime, horizon: datetime, batch_size: int,
        max_files: int | None = None, run_id: str | None = None,
        min_age: timedelta = PURGE_MIN_AGE, seen: int | None = None,
    ) -> tuple[int, int, int]:
        """Record the run and mark its candidates (before any S3 call), in one transaction.
        Returns (files, bytes, batches). More than ``max_files`` marked (the cap, checked on
        what was actually marked): nothing is kept and OverCap is raised."""
        with self.transaction():
            self.con.execute(
                "INSERT INTO purge_runs (purge_id, started, state, retention_days, versions, "
                "sources, run_id) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                [purge_id, now, retention_days, versions, json.dumps(list(sources)), run_id],
            )
            self.con.execute(
                f"""
                INSERT INTO purge_marks
                SELECT $pid, m.media_id, m.bucket, m.key, m.version_id, m.etag, m.file_size,
                       m.deleted_at,
                       ((row_number() OVER (ORDER BY m.bucket, m.key) - 1) // $batch)::INTEGER,
                       $now, 'marked', NULL, $now, NULL
                FROM {FILE_STATE} m
                WHERE m.status = 'deleted' AND ({PURGE_BLOCKER}) IS NULL
                """,
                {"pid": purge_id, "now": now, "batch": batch_size, "cutoff": cutoff,
                 "horizon": horizon, "settled": utc_now() - min_age, "seen": seen},
            )
            row = self.con.execute(
                "SELECT count(*), coalesce(sum(file_size), 0), coalesce(max(batch) + 1, 0) "
                "FROM purge_marks WHERE purge_id = ?", [purge_id]).fetchone()
            assert row is not None
            if max_files is not None and row[0] > max_files:
                raise OverCap(int(row[0]))
            self.con.execute("UPDATE purge_runs SET candidates = ? WHERE purge_id = ?",
                             [row[0], purge_id])
        return int(row[0]), int(row[1]), int(row[2])

    @retried
    def record_refused_purge(self, purge_id: str, now: datetime, reason: str, *,
                             retention_days: int, versions: str, sources: Sequence[str],
                             candidates: int, run_id: str | None = None) -> None:
        with self.transaction():
            self.con.execute(
                "INSERT INTO purge_runs (purge_id, started, finished, state, retention_days, "
                "versions, sources, candidates, refused_reason, run_id) "
                "VALUES (?, ?, ?, 'refused', ?, ?, ?, ?, ?, ?)",
                [purge_id, now, utc_now(), retention_days, versions, json.dumps(list(sources)),
                 candidates, reason, run_id],
            )
            self.catalog.application.record_audit(
                "system", "purge.refused", None, {"purge_id": purge_id, "reason": reason}, run_id)

    @retried
    def recheck_purge_batch(
        self, purge_id: str, batch: int, cutoff: datetime, horizon: datetime, *,
        min_age: timedelta = PURGE_MIN_AGE, seen: int | None = None,
    ) -> list[dict[str, Any]]:
        """Re-check a batch's marks against the catalog as it is now: those still eligible and
        unchanged (same deletion, ETag and version) and deleted at least ``min_age`` ago (by
        this machine's clock, see PURGE_MIN_AGE) become ``deleting`` and are returned; the
        others are ``skipped`` with the reason."""
        now = utc_now()
        with self.transaction():
            self.con.execute(
                f"""
                UPDATE purge_marks AS p SET state = c.state, reason = c.reason, updated_at = $now
                FROM (
                    SELECT p.media_id,
                           CASE WHEN blocker IS NOT NULL THEN 'skipped' ELSE 'deleting' END
                               AS state,
                           blocker AS reason
                    FROM (SELECT p.media_id, CASE
                            WHEN m.media_id IS NOT NULL AND m.status = 'deleted'
                                 AND (m.deleted_at IS DISTINCT FROM p.deleted_at)
                                THEN 'deleted again since marked'
                            WHEN m.media_id IS NOT NULL AND m.status = 'deleted'
                                 AND (m.etag IS DISTINCT FROM p.etag
                                      OR m.version_id IS DISTINCT FROM p.version_id)
                                THEN 'object changed since marked'
                            ELSE {PURGE_BLOCKER} END AS blocker
                          FROM purge_marks p LEFT JOIN {FILE_STATE} m USING (media_id)
                          WHERE p.purge_id = $pid AND p.batch = $batch
                            AND p.state = 'marked') p
                ) c
                WHERE p.purge_id = $pid AND p.batch = $batch AND p.media_id = c.media_id
                  AND p.state = 'marked'
                """,
                {"pid": purge_id, "batch": batch, "cutoff": cutoff, "horizon": horizon,
                 "now": now, "settled": now - min_age, "seen": seen},
            )
            # the rows a concurrent reference or restore of these files rewrites too (see
            # claim_deletion): one of the two transactions conflicts
            self.con.execute(
                "UPDATE media_deletions SET actor = actor WHERE media_id IN (SELECT media_id "
                "FROM purge_marks WHERE purge_id = ? AND batch = ? AND state = 'deleting')",
                [purge_id, batch])
            return self.purge_marks_in(purge_id, batch, "deleting")

    def purge_marks_in(self, purge_id: str | None, batch: int | None, state: str
                       ) -> list[dict[str, Any]]:
        """Marks of a run (and batch) in a state; purge_id None: of every run."""
        cursor = self.con.execute(
            """
            SELECT purge_id, media_id::VARCHAR AS media_id, bucket, key, version_id, etag,
                   file_size, batch, reason
            FROM purge_marks
            WHERE ($pid IS NULL OR purge_id = $pid) AND ($batch IS NULL OR batch = $batch)
              AND state = $state
            ORDER BY bucket, key
            """,
            {"pid": purge_id, "batch": batch, "state": state},
        )
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]

    @retried
    def set_purge_markers(self, purge_id: str, markers: Sequence[tuple[str, str]]) -> None:
        """The delete markers a purge created (media id, marker version id): unpurge's undo."""
        if markers:
            with self.transaction():
                self.con.executemany(
                    "UPDATE purge_marks SET marker_version_id = ? WHERE purge_id = ? "
                    "AND media_id = ?::UUID", [[m, purge_id, i] for i, m in markers])

    def last_purge(self, media_id: str) -> dict[str, Any] | None:
        """The purge that took the file: its mark (bucket, key, etag, marker) and the run's
        ``versions`` setting; None if no purge mark says it was purged."""
        cursor = self.con.execute(
            """
            SELECT p.purge_id, p.bucket, p.key, p.etag, p.version_id, p.marker_version_id,
                   r.versions
            FROM purge_marks p JOIN purge_runs r USING (purge_id)
            WHERE p.media_id = ?::UUID AND p.state = 'purged'
            ORDER BY p.updated_at DESC LIMIT 1
            """, [media_id])
        columns = [d[0] for d in cursor.description or []]
        found = cursor.fetchall()
        return dict(zip(columns, found[0], strict=True)) if found else None

    @retried
    def unpurge_media(self, media_id: str, user: str, version_id: str | None,
                      details: dict[str, Any]) -> None:
        """The object is back in S3: the file is active again (as restore would make it),
        audited. Raises :class:`LifecycleError` if it is not purged (nothing changed)."""
        with PURGE_EXCLUSION, self.transaction():
            row = self.con.execute(
                f"""
                UPDATE media_objects SET status = {RESTORED_STATUS}, purged_at = NULL,
                    version_id = coalesce(?, version_id), missing_since = NULL
                WHERE media_id = ?::UUID AND status = 'purged'
                """, [version_id, media_id]).fetchone()
            if not row or not row[0]:
                raise LifecycleError(f"media file {media_id} is not purged any more")
            self._append_deletion(media_id, False, utc_now(), user, "unpurge")
            self.catalog.application.record_audit(user, "unpurge", media_id, details)

    @retried
    def finish_purge_marks(
        self, outcomes: Sequence[tuple[str, str, str, str | None]], now: datetime,
        versions: str, run_id: str | None = None,
    ) -> int:
        """Apply S3's answers for ``deleting`` marks: (purge_id, media_id, state, reason) with
        state ``purged``, ``skipped`` or ``error``. Purged files get status 'purged' and an
        audit row each; the others stay deleted. Returns files purged."""
        if not outcomes:
            return 0
        con = self.con
        with self.transaction():
            con.execute("CREATE OR REPLACE TEMP TABLE purge_outcome (purge_id VARCHAR, "
                        "media_id UUID, state VARCHAR, reason VARCHAR)")
            con.executemany("INSERT INTO purge_outcome VALUES (?, ?, ?, ?)",
                            [list(o) for o in outcomes])
            con.execute(
                """
                UPDATE purge_marks AS p SET state = o.state, reason = o.reason, updated_at = $ts
                FROM purge_outcome o
                WHERE p.purge_id = o.purge_id AND p.media_id = o.media_id
                  AND p.state = 'deleting'
                """,
                {"ts": utc_now()},
            )
            row = con.execute(
                f"""
                UPDATE media_objects SET status = 'purged', purged_at = $now,
                    {KEEP_LISTED_LAST_SEEN}
                WHERE status <> 'purged' AND media_id IN
                    (SELECT media_id FROM purge_outcome WHERE state = 'purged')
                """,
                {"now": now},
            ).fetchone()
            con.execute(
                """
                INSERT INTO audit_log
                SELECT $ts, 'system', 'purge', p.media_id,
                       json_object('bucket', p.bucket, 'key', p.key, 'size', p.file_size,
                                   'etag', p.etag, 'version_id', p.version_id,
                                   'versions', $versions, 'purge_id', p.purge_id,
                                   'note', o.reason),
                       $run
                FROM purge_outcome o JOIN purge_marks p USING (purge_id, media_id)
                WHERE o.state = 'purged'
                """,
                {"ts": utc_now(), "versions": versions, "run": run_id},
            )
            con.execute("DROP TABLE purge_outcome")
        return int(row[0]) if row else 0

    @retried
    def abandon_purge_marks(self, media_ids: Sequence[str] | None, reason: str) -> int:
        """Leftover marks of a run that died, which the next run decides afresh: those never
        sent to S3 (all of them when ``media_ids`` is None) and the given ``deleting`` ones
        whose object is still there."""
        with self.transaction():
            params: list[Any] = [reason, utc_now()]
            if media_ids is None:
                sql = "state = 'marked'"
            else:
                self.con.execute("CREATE OR REPLACE TEMP TABLE purge_keep (media_id UUID)")
                self.con.executemany("INSERT INTO purge_keep VALUES (?)",
                                     [[m] for m in media_ids])
                sql = "state = 'deleting' AND media_id IN (SELECT media_id FROM purge_keep)"
            row = self.con.execute(
                f"UPDATE purge_marks SET state = 'abandoned', reason = ?, updated_at = ? "
                f"WHERE {sql}", params).fetchone()
            self.con.execute("DROP TABLE IF EXISTS purge_keep")
            self.con.execute(
                "UPDATE purge_runs SET state = 'failed', finished = ?, "
                "errors = '[\"interrupted\"]' WHERE state = 'running'",
                [utc_now()],
            )
        return int(row[0]) if row else 0

    @retried
    def finish_purge_run(self, purge_id: str, state: str, purged: int, bytes_freed: int,
                         errors: Sequence[str], refused_reason: str | None = None) -> None:
        with self.transaction():
            self.con.execute(
                "UPDATE purge_runs SET finished = ?, state = ?, purged = ?, bytes_freed = ?, "
                "errors = ?, refused_reason = ? WHERE purge_id = ?",
                [utc_now(), state, purged, bytes_freed, json.dumps(list(errors)),
                 refused_reason, purge_id],
            )

    @retried
    def skip_remaining_marks(self, purge_id: str, reason: str) -> int:
        """A run that stopped early: its marks not yet re-checked will not be purged by it."""
        with self.transaction():
            row = self.con.execute(
                "UPDATE purge_marks SET state = 'skipped', reason = ?, updated_at = ? "
                "WHERE purge_id = ? AND state = 'marked'",
                [reason, utc_now(), purge_id]).fetchone()
        return int(row[0]) if row else 0
