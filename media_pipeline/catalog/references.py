"""The reference index and content-source scans (``catalog.references``).

Scanned references (one content source's rows, replaced as a whole) and API
references (``add_reference``) live side by side in ``media_references``. ``media_files``'
``reference_count`` and ``referenced_in`` are derived from that table by the ``media_files``
view (never stored); each removal also appends a ``reference_removals`` fact, from which the
view derives ``unreferenced_since``.

``reference_count`` counts distinct (content_type, content_id) pairs: the same page found by a
scan and added through the API is one reference, as it is one entry in ``referenced_in``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from media_pipeline.catalog.lifecycle import PURGE_EXCLUSION, WRITE_TRANSACTION_LIMIT
from media_pipeline.catalog.retry import retried
from media_pipeline.catalog.sql import DELETED_IDS, FILE_STATE, aware, utc_now
from media_pipeline.catalog.store import Store
from media_pipeline.errors import LifecycleError, Refused

__all__ = ["API_SOURCE", "DEFAULT_MAX_DROP", "ReferenceStore"]

API_SOURCE = "api"
DEFAULT_MAX_DROP = 0.10
DRIFT_MEASURES = ("documents", "refs", "bytes")
# The drift baseline looks back this many days (and no further than the last accepted drop).
BASELINE_DAYS = 90
FRAGMENT_COLUMNS = ("content_type", "content_id", "bucket", "key", "media_id", "form")
MAX_ERROR_CHARS = 2000


class ReferenceStore(Store):
    """``catalog.references``: API and scanned references, content sources and their scans."""

    def _record_removals(self, sql: str, params: Any) -> None:
        """Append a reference-removal fact per row of ``sql`` (media_id, removed_at, source,
        content_type, content_id) whose file the catalog has: where ``unreferenced_since`` comes
        from. A dangling reference's removal is not one (the old counter never saw it)."""
        self.con.execute(f"INSERT INTO reference_removals SELECT * FROM ({sql}) "
                         "SEMI JOIN media_objects USING (media_id)", params)

    # -- API references ----------------------------------------------------------------------

    @retried
    def add_reference(
        self, media_id: str, content_type: str, content_id: str, user: str,
        *, now: datetime | None = None,
        check: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> bool:
        """Record that ``content_type``/``content_id`` uses the file; False if the API had
        already recorded it (its last_seen is refreshed). A purged file raises
        :class:`LifecycleError`. ``check`` sees the file's ``lifecycle.file_context`` (None: not
        catalogued) first, in the same transaction, and raises to refuse."""
        now = aware(now) or utc_now()
        con = self.con
        with PURGE_EXCLUSION, self.transaction():
            context = self.catalog.lifecycle.file_context(
                media_id, user, marks=True, uncatalogued=True,
                api_reference=(content_type, content_id))
            assert context is not None
            if check is not None:
                check(context if context["media_id"] is not None else None)
            if context["status"] == "purged":
                raise LifecycleError(f"media file {media_id} was purged; it cannot be referenced")
            # Other processes are not held off by a lock: a purge that re-checked this file
            # has committed its 'deleting' mark before deleting the object, and one that is
            # re-checking it now writes the same mark rows as the update below, so one of the
            # two transactions conflicts and, run again, sees the other.
            if context["deleting"]:
                raise LifecycleError(
                    f"a purge is deleting media file {media_id} (or was interrupted doing so); "
                    "it cannot be referenced now. Run `media-pipeline purge` to settle it")
            if context["marked"]:  # read in this transaction's snapshot: the same rows
                con.execute("UPDATE purge_marks SET updated_at = updated_at "
                            "WHERE media_id = ?::UUID AND state = 'marked'", [media_id])
            if context["is_deleted"]:
                # A purge that marked and re-checked the file after this snapshot was taken
                # left no mark here to update: its re-check rewrites these same rows instead.
                self.catalog.lifecycle.claim_deletion(context["media_id"])
            if context["api_ref"]:
                con.execute(
                    "UPDATE media_references SET last_seen = ? WHERE media_id = ? "
                    "AND origin = 'api' AND content_type = ? AND content_id = ?",
                    [now, media_id, content_type, content_id])
                return False
            con.execute(
                "INSERT INTO media_references VALUES (?::UUID, ?, ?, ?, ?, 'api', 'api', 'api', "
                "?, ?, ?, NULL)",
                [media_id, context["bucket"], context["key"], content_type, content_id, user,
                 now, now])
            self.catalog.application.record_audit(
                user, "reference.add", media_id,
                {"content_type": content_type, "content_id": content_id})
            # A snapshot from before an editor's delete and a purge's re-check shows the file
            # active and conflicts with neither: the purge's minimum age outlasts this limit.
            self.catalog.refuse_if_older_than(WRITE_TRANSACTION_LIMIT)
        return True

    @retried
    def remove_reference(
        self, media_id: str, content_type: str, content_id: str, user: str,
        *, now: datetime | None = None,
        check: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> bool:
        """Remove an API reference; False if the API had none (scanned references belong to
        their source and go when the content stops using the file). ``check`` as for
        :meth:`add_reference`."""
        now = aware(now) or utc_now()
        with self.transaction():
            context = self.catalog.lifecycle.file_context(
                media_id, user, uncatalogued=True, api_reference=(content_type, content_id),
                deletion=False)
            assert context is not None
            if check is not None:
                check(context if context["media_id"] is not None else None)
            if not context["api_ref"]:
                return False
            media_id = context["media_id"] or media_id
            # A DELETE of the API row, not a removal fact standing in for it: media_references
            # stays the one truth the purge re-checks. An API row sits in the small data file
            # its add_reference wrote, so removals of different rows rarely conflict (and are
            # retried when they do).
            self.con.execute(
                "DELETE FROM media_references WHERE media_id = ? AND origin = 'api' "
                "AND content_type = ? AND content_id = ?",
                [media_id, content_type, content_id])
            self._record_removals("SELECT ?::UUID AS media_id, ?, 'api', ?, ?",
                                  [media_id, now, content_type, content_id])
            self.catalog.application.record_audit(
                user, "reference.remove", media_id,
                {"content_type": content_type, "content_id": content_id})
        return True

    def references_of(self, media_id: str) -> dict[str, list[str]]:
        """The seed's shape ``{"webpage": ["123", "456"]}``: ids sorted, scan and API merged."""
        rows = self.con.execute(
            "SELECT DISTINCT content_type, content_id FROM media_references WHERE media_id = ? "
            "ORDER BY content_type, content_id",
            [media_id],
        ).fetchall()
        out: dict[str, list[str]] = {}
        for content_type, content_id in rows:
            out.setdefault(content_type, []).append(content_id)
        return out

    def reference_rows(self, media_id: str) -> list[dict[str, Any]]:
        """Every row behind :meth:`references_of`, with where it came from."""
        cursor = self.con.execute(
            "SELECT content_type, content_id, source, origin, form, bucket, key, created_by, "
            "first_seen, last_seen, snippet FROM media_references WHERE media_id = ? "
            "ORDER BY content_type, content_id, source",
            [media_id],
        )
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]

    # -- scans -------------------------------------------------------------------------------

    @retried
    def replace_source_references(
        self,
        source: str,
        fragments: Sequence[Path],
        started: datetime,
        finished: datetime | None = None,
        stats: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        max_drop: float = DEFAULT_MAX_DROP,
        max_drop_origin: str = "default",
        accepted_by: str | None = None,
        source_info: Mapping[str, Any] | None = None,
        deletions_seen: int | None = None,
    ) -> dict[str, Any]:
        """Replace ``source``'s scanned references with the fragments' rows, in one transaction.

        Call only when the source was read completely. Rows that were there before keep their
        first_seen; counters change only for files whose referring contents changed. Key
        references get ``media_id_for(bucket, key)`` whatever the fragment says; a media-id
        reference that is not a UUID cannot name any file and is dropped (counted as
        ``invalid``). A fragment row without content_type/content_id is an error: nothing
        changes.

        Drift guard: the scan is compared with the source's baseline (``_scan_drift``:
        documents, non-mention references, bytes). Nothing returned, or a drop by more than
        ``max_drop`` (from ``max_drop_origin``, both recorded), makes it *suspect*: nothing is
        applied, the old rows stay and the source is stale until a scan is accepted
        (``accepted_by``, audited with the numbers). A source's first scan is trusted unless it
        returned nothing. A drop over DEFAULT_MAX_DROP applied under a looser share is audited
        (``references.scan_drop_allowed``). The result's ``state`` is trusted, accepted or
        suspect.

        ``deletions_seen``: :meth:`deletions_seen` as of when the scan read the soft-deleted
        keys it looked for (``mention_keys``); a purge takes only files whose deletion it saw.
        """
        if source == API_SOURCE:
            raise ValueError(f"{API_SOURCE!r} is reserved for API references")
        started = aware(started)
        finished = aware(finished) or utc_now()
        stats = dict(stats or {})
        con = self.con
        files = [str(p) for p in fragments]
        with PURGE_EXCLUSION, self.transaction():
            if files:
                try:
                    # Older fragments have no snippet column.
                    names = {r[0] for r in con.execute(
                        "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)",
                        [files]).fetchall()}
                    snippet = "snippet" if "snippet" in names else "NULL::VARCHAR AS snippet"
                    con.execute(
                        "CREATE OR REPLACE TEMP TABLE scan_in AS SELECT content_type, "
                        "content_id, bucket, key, media_id::VARCHAR AS media_id, form, "
                        f"{snippet} FROM read_parquet(?, union_by_name = true)",
                        [files],
                    )
                except duckdb.Error as exc:
                    raise ValueError(
                        f"cannot read reference fragments of source {source!r} (need columns "
                        f"{', '.join(FRAGMENT_COLUMNS)}): {str(exc).splitlines()[0]}") from exc
            else:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE scan_in (content_type VARCHAR, "
                    "content_id VARCHAR, bucket VARCHAR, key VARCHAR, media_id VARCHAR, "
                    "form VARCHAR, snippet VARCHAR)")
            bad = con.execute(
                "SELECT count(*) FROM scan_in WHERE coalesce(content_type, '') = '' "
                "OR coalesce(content_id, '') = ''").fetchone()
            if bad and bad[0]:
                raise ValueError(
                    f"{bad[0]} reference rows of source {source!r} have no content_type or "
                    "content_id; the index was left as it was")
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE scan_new AS
                SELECT media_id, content_type, content_id,
                       min(bucket) AS bucket, min(key) AS key,
                       -- a mention never hides a recognised form
                       coalesce(min(form) FILTER (WHERE form <> 'mention'), min(form)) AS form,
                       coalesce(min(snippet) FILTER (WHERE form <> 'mention'),
                                min(snippet)) AS snippet
                FROM (SELECT CASE WHEN bucket IS NOT NULL AND key IS NOT NULL
                                  THEN md5(bucket || chr(0) || key)::UUID
                                  ELSE try_cast(media_id AS UUID) END AS media_id,
                             content_type, content_id, bucket, key, form, snippet
                      FROM scan_in)
                WHERE media_id IS NOT NULL
                GROUP BY media_id, content_type, content_id
                """
            )
            drift = self._scan_drift(source, stats, max_drop, max_drop_origin, started)
            if drift["reasons"] and accepted_by is None:
                self._remember_source(source, source_info, started)
                con.execute(
                    "INSERT INTO source_scans (source, started, finished, ok, documents, refs, "
                    "bytes, text_fallbacks, error, run_id, state, trusted, mentions, drift, "
                    "deletions_seen) "
                    "VALUES (?, ?, ?, true, ?, ?, ?, ?, NULL, ?, 'suspect', false, ?, ?, ?)",
                    [source, started, finished, stats.get("documents"), drift["new"]["refs"],
                     stats.get("bytes"), stats.get("text_fallbacks"), run_id,
                     drift["new"]["mentions"], json.dumps(drift), deletions_seen],
                )
                self.catalog.application.record_audit(
                    "system", "references.scan_suspect", None, {"source": source, **drift}, run_id)
                for table in ("scan_in", "scan_new"):
                    con.execute(f"DROP TABLE {table}")
                return {"state": "suspect", "rows": 0, "refs": drift["new"]["refs"],
                        "added": 0, "removed": 0, "invalid": 0, "files_changed": 0,
                        "drift": drift}
            state = "accepted" if drift["reasons"] else "trusted"
            self._remember_source(source, source_info, started)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE scan_old AS SELECT DISTINCT media_id, "
                "content_type, content_id FROM media_references "
                "WHERE source = ? AND origin = 'scan'",
                [source],
            )
            # Only the difference is written: a nightly rescan changes few of a million rows.
            con.execute(
                "CREATE OR REPLACE TEMP TABLE scan_added AS SELECT media_id, content_type, "
                "content_id FROM scan_new EXCEPT SELECT * FROM scan_old")
            con.execute(
                "CREATE OR REPLACE TEMP TABLE scan_removed AS SELECT * FROM scan_old "
                "EXCEPT SELECT media_id, content_type, content_id FROM scan_new")
            con.execute(
                "CREATE OR REPLACE TEMP TABLE ref_affected AS SELECT DISTINCT media_id FROM "
                "(SELECT media_id FROM scan_added UNION ALL SELECT media_id FROM scan_removed) "
                "SEMI JOIN media_objects USING (media_id)")
            con.execute(
                """
                DELETE FROM media_references AS r
                WHERE r.source = $source AND r.origin = 'scan' AND EXISTS (
                    SELECT 1 FROM scan_removed x WHERE x.media_id = r.media_id
                      AND x.content_type = r.content_type AND x.content_id = r.content_id)
                """,
                {"source": source},
            )
            self._record_removals(
                "SELECT media_id, $at, $source, content_type, content_id FROM scan_removed "
                "ORDER BY media_id, content_type, content_id", {"at": finished, "source": source})
            con.execute(
                "UPDATE media_references SET last_seen = ? WHERE source = ? AND origin = 'scan'",
                [finished, source])
            con.execute(
                """
                INSERT INTO media_references
                SELECT n.media_id, n.bucket, n.key, n.content_type, n.content_id, $source,
                       'scan', n.form, NULL, $started, $finished, n.snippet
                FROM scan_new n SEMI JOIN scan_added a USING (media_id, content_type, content_id)
                """,
                {"source": source, "started": started, "finished": finished},
            )
            counts = con.execute(
                """
                SELECT (SELECT count(*) FROM scan_in), (SELECT count(*) FROM scan_new),
                       (SELECT count(*) FROM scan_added), (SELECT count(*) FROM scan_removed),
                       (SELECT count(*) FROM scan_in WHERE NOT (bucket IS NOT NULL
                        AND key IS NOT NULL) AND try_cast(media_id AS UUID) IS NULL)
                """
            ).fetchone()
            assert counts is not None
            # files the catalog has whose referring contents this scan changed
            files_changed = int(
                con.execute("SELECT count(*) FROM ref_affected").fetchall()[0][0])
            result: dict[str, Any] = {
                "rows": int(counts[0]), "refs": int(counts[1]), "added": int(counts[2]),
                "removed": int(counts[3]), "invalid": int(counts[4]),
                "files_changed": files_changed}
            con.execute(
                "INSERT INTO source_scans (source, started, finished, ok, documents, refs, "
                "bytes, text_fallbacks, error, run_id, state, trusted, mentions, drift, "
                "accepted_by, deletions_seen) "
                "VALUES (?, ?, ?, true, ?, ?, ?, ?, NULL, ?, ?, true, ?, ?, ?, ?)",
                [source, started, finished, stats.get("documents"), result["refs"],
                 stats.get("bytes"), stats.get("text_fallbacks"), run_id, state,
                 drift["new"]["mentions"], json.dumps(drift), accepted_by, deletions_seen],
            )
            self.catalog.application.record_audit(
                "system", "references.scan", None,
                {"source": source, "state": state, **result}, run_id)
            if accepted_by is not None:
                self.catalog.application.record_audit(
                    accepted_by, "references.scan_drop_accepted", None,
                    {"source": source, **drift}, run_id)
            elif drift["over_default"]:
                # applied under a looser share than the default: on the record
                self.catalog.application.record_audit(
                    "system", "references.scan_drop_allowed", None,
                    {"source": source, **drift}, run_id)
            result["state"] = state
            result["drift"] = drift
            for table in ("scan_in", "scan_new", "scan_old", "scan_added", "scan_removed",
                          "ref_affected"):
                con.execute(f"DROP TABLE {table}")
        return result

    @retried
    def record_source_failure(
        self, source: str, started: datetime, error: str, run_id: str | None = None,
        finished: datetime | None = None, source_info: Mapping[str, Any] | None = None,
    ) -> None:
        """A scan that did not complete: its old rows stay, and the source is stale (purge
        refuses) until a scan succeeds."""
        if source == API_SOURCE:
            raise ValueError(f"{API_SOURCE!r} is reserved for API references")
        with self.transaction():
            self._remember_source(source, source_info, aware(started))
            self.con.execute(
                "INSERT INTO source_scans (source, started, finished, ok, error, run_id, state, "
                "trusted) VALUES (?, ?, ?, false, ?, ?, 'failed', false)",
                [source, aware(started), aware(finished) or utc_now(),
                 (error or "unknown error")[:MAX_ERROR_CHARS], run_id],
            )
            self.catalog.application.record_audit(
                "system", "references.scan_failed", None,
                {"source": source, "error": (error or "")[:MAX_ERROR_CHARS]}, run_id)

    def _scan_drift(self, source: str, stats: Mapping[str, Any], max_drop: float,
                    origin: str, started: datetime) -> dict[str, Any]:
        """Compare the scan in ``scan_new`` with the source's baseline: per measure, the maximum
        over its trusted scans since the later of its last accepted drop and BASELINE_DAYS
        before ``started`` (none there: its last trusted scan). A ratchet: many small drops
        add up. Mentions are left out: they follow soft deletes and restores, not the content.
        A first scan that returns nothing is suspect too."""
        row = self.con.execute(
            "SELECT count(*) FILTER (WHERE form IS DISTINCT FROM 'mention'), "
            "count(*) FILTER (WHERE form = 'mention') FROM scan_new").fetchone()
        assert row is not None
        new = {"documents": stats.get("documents"), "refs": int(row[0]),
               "bytes": stats.get("bytes"), "mentions": int(row[1])}
        since = started - timedelta(days=BASELINE_DAYS)
        base = self.con.execute(
            "SELECT max(documents), max(refs - coalesce(mentions, 0)), max(bytes), "
            "min(started), max(started), count(*) FROM source_scans "
            "WHERE source = $s AND trusted AND started >= $since AND started >= coalesce("
            "(SELECT max(started) FROM source_scans WHERE source = $s AND state = 'accepted'), "
            "$since)", {"s": source, "since": since}).fetchone()
        if not base or not base[5]:
            base = self.con.execute(
                "SELECT documents, refs - coalesce(mentions, 0), bytes, started, started, 1 "
                "FROM source_scans WHERE source = ? AND trusted ORDER BY started DESC LIMIT 1",
                [source]).fetchone()
        reasons: list[str] = []
        over_default: list[str] = []
        baseline: dict[str, Any] | None = None
        if base:
            baseline = dict(zip((*DRIFT_MEASURES, "since", "last", "scans"), base, strict=True))
            baseline["since"], baseline["last"] = str(baseline["since"]), str(baseline["last"])
            for measure in DRIFT_MEASURES:
                b, n = baseline[measure], new[measure]
                if b is None or n is None or b <= 0:
                    continue  # unknown, or nothing before: nothing can drop
                share = (b - n) / b
                if n == 0:
                    reasons.append(f"{measure} {b} → 0 (returned nothing)")
                elif share > max_drop:
                    reasons.append(f"{measure} {b} → {n} (−{share:.0%})")
                if share > DEFAULT_MAX_DROP:
                    over_default.append(f"{measure} {b} → {n} (−{share:.0%})")
        elif new["documents"] == 0 or (new["documents"] is None and new["refs"] == 0):
            # an empty new root (typo, unmounted volume, renamed source) is not a baseline
            reasons.append("first scan returned nothing (0 documents)")
        return {"baseline": baseline, "new": new, "reasons": reasons, "max_drop": max_drop,
                "max_drop_origin": origin, "over_default": over_default}

    # -- remembered sources ------------------------------------------------------------------

    def _remember_source(self, source: str, info: Mapping[str, Any] | None,
                         now: datetime) -> None:
        """Record that the catalog has scanned ``source`` (inside the scan's transaction); a
        retired source that is scanned again is reactivated, audited."""
        info = info or {}
        row = self.con.execute(
            "SELECT count(*), count(retired_at) FROM content_sources WHERE source = ?",
            [source]).fetchone()
        assert row is not None
        if not row[0]:
            self.con.execute(
                "INSERT INTO content_sources VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL)",
                [source, info.get("kind"), info.get("description"), now, now])
            return
        self.con.execute(
            "UPDATE content_sources SET last_seen = greatest(last_seen, $now), "
            "kind = coalesce($kind, kind), description = coalesce($desc, description), "
            "retired_at = NULL, retired_by = NULL, retired_reason = NULL WHERE source = $s",
            {"now": now, "kind": info.get("kind"), "desc": info.get("description"),
             "s": source})
        if row[1]:
            self.catalog.application.record_audit(
                "system", "source.reactivated", None, {"source": source})

    def remembered_sources(self, include_retired: bool = False) -> list[dict[str, Any]]:
        """Every source the catalog has scanned (not retired ones unless asked)."""
        where = "" if include_retired else "WHERE retired_at IS NULL"
        return self._rows(
            f"SELECT source, kind, description, first_seen, last_seen, retired_at, retired_by, "
            f"retired_reason FROM content_sources {where} ORDER BY source", [])

    def required_sources(self, configured: Sequence[str],
                         disabled: Sequence[str] = ()) -> list[str]:
        """The sources a purge must have trusted scans from: today's configured ones, every
        source the catalog has scanned and nobody retired, and each ``disabled`` one (configured
        with ``enabled: false``) nobody retired: disabling a source is not retiring it."""
        sources = self.remembered_sources(include_retired=True)
        remembered = [r["source"] for r in sources if r["retired_at"] is None]
        retired = {r["source"] for r in sources if r["retired_at"] is not None}
        return sorted(set(configured) | set(remembered) | (set(disabled) - retired))

    @retried
    def retire_source(self, source: str, user: str, reason: str | None = None,
                      now: datetime | None = None, *, configured: bool = False,
                      ) -> dict[str, Any]:
        """Forget a source for good: its scanned references go (counts recomputed) and purges
        no longer wait for it. Audited with the number of references removed. ``configured``:
        the source is configured (disabled), so one never scanned may be retired too. Raises
        :class:`Refused` for a source never scanned (and not configured) or already retired."""
        now = aware(now) or utc_now()
        con = self.con
        with PURGE_EXCLUSION, self.transaction():
            row = con.execute(
                "SELECT count(*), count(retired_at) FROM content_sources WHERE source = ?",
                [source]).fetchone()
            assert row is not None
            if not row[0] and not configured:
                raise Refused(f"the catalog has never scanned a source named {source!r}")
            if not row[0]:  # configured but never scanned: remembered as retired from now on
                con.execute("INSERT INTO content_sources VALUES (?, NULL, NULL, ?, ?, NULL, "
                            "NULL, NULL)", [source, now, now])
            if row[1]:
                raise Refused(f"content source {source!r} is already retired")
            last = con.execute(
                "SELECT max(started) FROM source_scans WHERE source = ? AND trusted",
                [source]).fetchall()[0][0]
            self._record_removals(
                "SELECT DISTINCT media_id, $at, $source, content_type, content_id "
                "FROM media_references WHERE source = $source AND origin = 'scan' "
                "ORDER BY ALL", {"at": now, "source": source})
            removed = con.execute(
                "DELETE FROM media_references WHERE source = ? AND origin = 'scan'",
                [source]).fetchone()
            con.execute(
                "UPDATE content_sources SET retired_at = ?, retired_by = ?, retired_reason = ? "
                "WHERE source = ?", [now, user, reason, source])
            details = {"source": source, "references_removed": int(removed[0]) if removed else 0,
                       "last_trusted_scan": str(last) if last else None, "reason": reason}
            self.catalog.application.record_audit(user, "source.retire", None, details)
        return details

    # -- staleness ---------------------------------------------------------------------------

    def source_scan_status(self, sources: Sequence[str]) -> list[dict[str, Any]]:
        """Per source: its latest scan (state, error, drift) and the start of its latest trusted
        one; ``stale`` when it never had a trusted scan, or the latest scan failed or is
        suspect (the old references are kept until someone accepts the drop)."""
        out = []
        for source in sources:
            latest_rows = self.con.execute(
                "SELECT started, ok, error, coalesce(state, CASE WHEN ok THEN 'trusted' "
                "ELSE 'failed' END), drift FROM source_scans WHERE source = ? "
                "ORDER BY started DESC, ok ASC LIMIT 1",
                [source],
            ).fetchall()
            latest = latest_rows[0] if latest_rows else None
            ok_started = self.con.execute(
                "SELECT max(started) FROM source_scans WHERE source = ? AND trusted", [source]
            ).fetchall()[0][0]
            if latest is None:
                reason = "never scanned"
            elif latest[3] == "failed":
                reason = f"latest scan failed: {latest[2]}"
            elif latest[3] == "suspect":
                drift = json.loads(latest[4]) if latest[4] else {}
                reason = (f"latest scan suspect: {'; '.join(drift.get('reasons', []))}; old "
                          f"references kept; accept with media-pipeline scan {source} "
                          "--accept-drop --user ADMIN")
            elif ok_started is None:
                reason = "no trusted scan"
            else:
                reason = None
            out.append({"source": source, "last_ok_started": ok_started,
                        "latest_started": latest[0] if latest else None,
                        "state": latest[3] if latest else None,
                        "stale": reason is not None, "reason": reason})
        return out

    def stale_sources(self, enabled: Sequence[str]) -> list[str]:
        """Sources never scanned successfully, or whose latest scan failed or is suspect."""
        return [s["source"] for s in self.source_scan_status(enabled) if s["stale"]]

    def scan_horizon(self, enabled: Sequence[str]) -> datetime | None:
        """The earliest of the sources' latest trusted scan starts: a file deleted before it
        has been looked for in every source since. None if some source never had one; far in
        the future when there are no sources (API references only)."""
        if not enabled:
            return datetime(9999, 1, 1, tzinfo=UTC)
        starts = [s["last_ok_started"] for s in self.source_scan_status(enabled)]
        if any(s is None for s in starts):
            return None
        return min(starts)

    def scan_deletions_seen(self, enabled: Sequence[str]) -> int | None:
        """The lowest ``deletions_seen`` of the sources' latest trusted scans: a file whose
        newest deletion fact (media_deletions' rowids follow commit order) is above it was
        deleted after some source read the keys it looks for, however early its deleted_at.
        None when no such scan recorded one (no sources, or scans from before migration 7:
        only the time horizon applies)."""
        if not enabled:
            return None
        rows = self.con.execute(
            "SELECT min(seen) FROM (SELECT arg_max(deletions_seen, started) AS seen "
            "FROM source_scans WHERE trusted AND source IN (SELECT unnest(?::VARCHAR[])) "
            "GROUP BY source)", [list(enabled)]).fetchall()
        return None if rows[0][0] is None else int(rows[0][0])

    def other_buckets(self, bucket: str, limit: int = 5) -> list[str]:
        """Buckets other than ``bucket`` the catalog holds objects of (at most ``limit``)."""
        return [b for (b,) in self.con.execute(
            "SELECT DISTINCT bucket FROM media_objects WHERE bucket <> ? ORDER BY bucket "
            "LIMIT ?", [bucket, limit]).fetchall()]

    def deletions_seen(self) -> int:
        """The newest deletion fact (rowid of media_deletions; -1: none) in this snapshot."""
        return int(self.con.execute(
            "SELECT coalesce(max(rowid), -1) FROM media_deletions").fetchall()[0][0])

    def known_keys(self, bucket: str) -> Any:
        """The bucket's keys the catalog knows, as the extractor's compact ``KnownKeys``
        (references/known_keys.py): DuckDB hashes them, Python never holds the keys."""
        from media_pipeline.references.known_keys import KnownKeys

        return KnownKeys.from_duckdb(self.con, "SELECT key FROM media_objects WHERE bucket = ?",
                                     [bucket])

    def known_media_ids(self, bucket: str) -> Any:
        """The bucket's media ids as ``KnownKeys`` (their low 8 bytes, read from the stored
        ids): a UUID found in content is known when its low 8 bytes are there."""
        from media_pipeline.references.known_keys import KnownKeys

        return KnownKeys.media_ids_from_duckdb(
            self.con, "SELECT media_id FROM media_objects WHERE bucket = ?", [bucket])

    def mention_keys(self, bucket: str) -> list[str]:
        """Keys a purge could take (soft-deleted, not purged): what mentions look for."""
        return [k for (k,) in self.con.execute(
            f"SELECT key FROM media_objects WHERE bucket = ? AND media_id IN {DELETED_IDS} "
            "AND status <> 'purged' ORDER BY key", [bucket]).fetchall()]

    def reference_totals(self) -> dict[str, int]:
        """Rows by origin, files referenced, dangling references: the index asset's numbers."""
        row = self.con.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE origin = 'api'),
                   count(*) FILTER (WHERE origin = 'scan'),
                   (SELECT count(DISTINCT media_id) FROM media_references
                    SEMI JOIN media_objects USING (media_id)),
                   (SELECT count(*) FROM media_references r ANTI JOIN media_objects m
                    USING (media_id))
            FROM media_references
            """
        ).fetchall()[0]
        return {"references": int(row[0]), "api": int(row[1]), "scan": int(row[2]),
                "referenced_files": int(row[3]), "dangling": int(row[4])}

    def kept_referenced(self, cutoff: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Soft-deleted files past the retention that a purge keeps because something still
        refers to them: one row per reference (form, source, content and snippet)."""
        return self._rows(
            f"""
            SELECT m.media_id::VARCHAR AS media_id, m.key, r.form, r.source, r.content_type,
                   r.content_id, r.snippet
            FROM {FILE_STATE} m JOIN media_references r USING (media_id)
            WHERE m.status = 'deleted' AND m.deleted_at < ?
            ORDER BY m.key, r.source, r.content_type, r.content_id LIMIT ?
            """, [cutoff, limit])

    # -- checks ------------------------------------------------------------------------------

    def dangling_references(self, limit: int = 100) -> list[dict[str, Any]]:
        """References to a media id the catalog has no file for."""
        return self._rows(
            """
            SELECT r.media_id::VARCHAR AS media_id, r.bucket, r.key, r.content_type,
                   r.content_id, r.source, r.origin
            FROM media_references r ANTI JOIN media_objects m USING (media_id)
            ORDER BY r.source, r.content_type, r.content_id LIMIT ?
            """, [limit])

    def references_to_gone_files(self, limit: int = 100) -> list[dict[str, Any]]:
        """References to files that are purged or missing from the bucket."""
        return self._rows(
            """
            SELECT r.media_id::VARCHAR AS media_id, m.bucket, m.key, m.status, r.content_type,
                   r.content_id, r.source, r.origin
            FROM media_references r JOIN media_objects m USING (media_id)
            WHERE m.status IN ('purged', 'missing')
            ORDER BY m.key, r.content_type, r.content_id LIMIT ?
            """, [limit])

    def catalog_inconsistencies(self, limit: int = 100) -> list[dict[str, Any]]:
        """What construction should rule out, now that counts are derived and cannot drift:
        a media id with more than one ``media_objects`` row (DuckLake has no primary key; each
        extra row would show the file twice), and deletion facts about a file the catalog has
        no row for."""
        return self._rows(
            """
            SELECT * FROM (
                SELECT media_id::VARCHAR AS media_id, 'rows: ' || count(*) AS problem
                FROM media_objects GROUP BY media_id HAVING count(*) > 1
                UNION ALL
                SELECT DISTINCT media_id::VARCHAR, 'deletion facts without a file'
                FROM media_deletions ANTI JOIN media_objects USING (media_id))
            ORDER BY media_id, problem LIMIT ?
            """, [limit])

    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, list(params))
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
