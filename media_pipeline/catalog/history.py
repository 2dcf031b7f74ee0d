"""The catalog's history: every DuckLake commit is a snapshot.

A purge records the snapshot it decided on (``purge_snapshots``), so "why was this file
purged" is answered from the catalog as the purge saw it, and ``catalog_maintenance`` never
expires those snapshots while they are within their retention. Analysts read any snapshot
still kept (``media-pipeline query --at``).

The snapshot recorded for a purge is the one that committed the run's marks: the transaction
that chose the candidates read the catalog and wrote the marks, so that snapshot holds the marks
and every fact they were chosen on (a concurrent commit that did not conflict may have landed
in it too; the re-check before each S3 batch decides again, on the catalog as it is then).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from media_pipeline.catalog import lake
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.errors import CatalogError, InvalidInput, UnknownMedia

__all__ = [
    "PurgeExplanation",
    "current_snapshot",
    "explain_purge",
    "is_lake",
    "parse_at",
    "protected_snapshots",
    "record_purge_snapshot",
]

# How far back the search for the commit of a purge's marks goes before giving up (snapshots
# committed by others between the marks and the search).
_SEARCH_LIMIT = 1000


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first value of a one-row query. Always fetchall(): a result left unread keeps its
    transaction open, and on SQLite metadata that locks out every other writer's commit."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` has the catalog attached as a DuckLake (not the old single file)."""
    return bool(_one(con, "SELECT count(*) FROM duckdb_databases() "
                          "WHERE database_name = current_database() AND type = 'ducklake'"))


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    """The id of the snapshot this connection reads (inside a transaction: the one it
    started from)."""
    return int(_one(con, f"SELECT id FROM {_alias(con)}.current_snapshot()"))


def _alias(con: duckdb.DuckDBPyConnection) -> str:
    """The lake's name on ``con``: ``lake`` on its own connection, another in a session."""
    return str(_one(con, "SELECT current_database()"))


def _commit_of_purge(con: duckdb.DuckDBPyConnection, purge_id: str) -> int:
    """The snapshot whose commit added the purge run's row (and its marks, same transaction)."""
    snapshots = [int(r[0]) for r in con.execute(
        f"SELECT snapshot_id FROM ducklake_snapshots('{_alias(con)}') "
        "ORDER BY snapshot_id DESC LIMIT ?", [_SEARCH_LIMIT]).fetchall()]
    found: int | None = None
    for snapshot in snapshots:
        try:
            there = _one(con, f"SELECT count(*) FROM purge_runs AT (VERSION => {snapshot}) "
                              "WHERE purge_id = ?", [purge_id])
        except duckdb.CatalogException:  # before the table existed
            there = 0
        if not there:
            break
        found = snapshot
    if found is None:
        raise CatalogError(f"purge {purge_id} is in no snapshot of the catalog")
    return found


def record_purge_snapshot(con: duckdb.DuckDBPyConnection, purge_id: str,
                          decided_at: datetime | None = None) -> int | None:
    """Record the snapshot purge ``purge_id`` decided on (call right after its marks were
    committed); returns it. On the old single-file catalog there are no snapshots: None."""
    if not is_lake(con):
        return None
    snapshot = _commit_of_purge(con, purge_id)
    con.execute("INSERT INTO purge_snapshots VALUES (?, ?, ?)",
                [purge_id, snapshot, decided_at or datetime.now(UTC)])
    return snapshot


def protected_snapshots(con: duckdb.DuckDBPyConnection, since: datetime) -> set[int]:
    """Snapshots that purges decided on at or after ``since``: never expired."""
    return {int(r[0]) for r in con.execute(
        "SELECT snapshot_id FROM purge_snapshots WHERE decided_at >= ?", [since]).fetchall()}


def parse_at(text: str) -> int | datetime:
    """``--at``: a snapshot id (digits) or an ISO time (UTC unless it says otherwise)."""
    raw = text.strip()
    if raw.isascii() and raw.isdigit() and int(raw) < 2**63:  # DuckLake's ids are BIGINT
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"--at takes a snapshot id (e.g. 42) or a time (e.g. "
                           f"2026-12-01T09:00:00Z), got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class PurgeExplanation:
    """Why a file was purged: the run, the snapshot it decided on, and the facts in it."""

    media_id: str
    purge_id: str
    key: str
    run: dict[str, Any]
    mark: dict[str, Any]
    snapshot_id: int | None = None
    decided_at: datetime | None = None
    snapshot_note: str | None = None  # why the snapshot's facts are missing
    file: dict[str, Any] | None = None  # media_files as of the snapshot
    references: list[dict[str, Any]] = field(default_factory=list)  # as of the snapshot
    scans: list[dict[str, Any]] = field(default_factory=list)  # each source's last trusted
    audit: list[dict[str, Any]] = field(default_factory=list)  # every audit line of the file

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in self.__dict__.items()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def explain_purge(location: LakeLocation, media_id: str) -> PurgeExplanation:
    """Why ``media_id`` was purged, from the snapshot its purge decided on and the audit log."""
    con = lake.connect(location, read_only=True)
    try:
        marks = _rows(con, "SELECT * FROM purge_marks WHERE CAST(media_id AS VARCHAR) = ? "
                           "AND state = 'purged' ORDER BY updated_at DESC LIMIT 1", [media_id])
        if not marks:
            raise UnknownMedia(f"{media_id} was not purged by any purge run", media_id)
        mark = marks[0]
        purge_id = str(mark["purge_id"])
        runs = _rows(con, "SELECT * FROM purge_runs WHERE purge_id = ?", [purge_id])
        recorded = _rows(con, "SELECT snapshot_id, decided_at FROM purge_snapshots "
                              "WHERE purge_id = ? ORDER BY decided_at LIMIT 1", [purge_id])
        audit = _rows(con, "SELECT ts, actor, action, details, run_id FROM audit_log "
                           "WHERE CAST(media_id AS VARCHAR) = ? ORDER BY ts", [media_id])
    finally:
        con.close()
    run = runs[0] if runs else {"purge_id": purge_id}
    out = PurgeExplanation(media_id=media_id, purge_id=purge_id, key=str(mark["key"]),
                           run=run, mark=mark, audit=audit)
    if not recorded:
        out.snapshot_note = "no snapshot recorded (purged before the catalog kept history)"
        return out
    out.snapshot_id = int(recorded[0]["snapshot_id"])
    out.decided_at = recorded[0]["decided_at"]
    try:
        then = lake.connect(location, at=out.snapshot_id)
    except CatalogError as exc:
        out.snapshot_note = str(exc)
        return out
    try:
        files = _rows(then, "SELECT media_id, namespace, bucket, key, status, reference_count, "
                            "referenced_in, is_deleted, deleted_at, deleted_by FROM media_files "
                            "WHERE CAST(media_id AS VARCHAR) = ?", [media_id])
        out.file = files[0] if files else None
        out.references = _rows(
            then, "SELECT content_type, content_id, source, origin, form FROM media_references "
                  "WHERE CAST(media_id AS VARCHAR) = ? ORDER BY source, content_type, "
                  "content_id", [media_id])
        sources = json.loads(run["sources"]) if run.get("sources") else []
        out.scans = _rows(
            then, "SELECT source, max(started) AS last_trusted_scan, "
                  "arg_max(documents, started) AS documents, arg_max(refs, started) AS refs "
                  "FROM source_scans WHERE trusted AND source IN (SELECT unnest(?::VARCHAR[])) "
                  "GROUP BY source ORDER BY source", [sources])
        seen = {s["source"] for s in out.scans}
        out.scans += [{"source": s, "last_trusted_scan": None, "documents": None, "refs": None}
                      for s in sources if s not in seen]
    finally:
        then.close()
    return out
