"""The application API's SQL (``catalog.application``): namespaces, members and roles, uploads,
visibility, tags, collections and the audit log.

The mutating methods here do not open a transaction of their own: the library wraps each call
(together with its audit row, and sometimes an S3 call that must succeed for the change to
stand) in one ``catalog.transaction()``, so a failure anywhere changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from media_pipeline.catalog.sql import DELETED_IDS, FILE_STATE
from media_pipeline.catalog.store import Store
from media_pipeline.kinds import MediaStatus, Visibility, sql_in
from media_pipeline.records import MEDIA_FILE_COLUMNS

__all__ = ["COLLECTION_COLUMNS", "MEDIA_COLUMNS", "ApplicationStore"]

# The columns MediaLibrary hands out as a MediaFile, in this order: its fields.
MEDIA_COLUMNS = MEDIA_FILE_COLUMNS

COLLECTION_COLUMNS = (
    "collection_id", "namespace", "name", "visibility", "owner", "created_at", "updated_at",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _media_dict(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(MEDIA_COLUMNS, row, strict=True))
    out["media_id"] = str(out["media_id"])
    out["metadata"] = json.loads(out["metadata"]) if out["metadata"] else {}
    return out


_MEDIA_SELECT = "SELECT " + ", ".join(
    "metadata::VARCHAR" if c == "metadata" else c for c in MEDIA_COLUMNS
) + " FROM media_files"


class ApplicationStore(Store):
    """``catalog.application``: what the library reads and writes, and the audit log."""

    # -- namespaces and members -----------------------------------------------------------------

    def namespace_info(self, namespace: str) -> dict[str, Any] | None:
        row = self.con.execute(
            "SELECT namespace, default_visibility, created_by, created_at FROM namespaces "
            "WHERE namespace = ?", [namespace]).fetchone()
        if row is None:
            return None
        return dict(zip(("namespace", "default_visibility", "created_by", "created_at"), row,
                        strict=True))

    def namespace_has_objects(self, namespace: str) -> bool:
        """True when the catalog knows any file under the namespace, in any status."""
        row = self.con.execute("SELECT 1 FROM media_objects WHERE namespace = ? LIMIT 1",
                               [namespace]).fetchone()
        return row is not None

    def insert_namespace(self, namespace: str, default_visibility: str, creator: str) -> None:
        """The namespace with its creator as its first admin."""
        now = _now()
        self.catalog.roles.clear()
        self.con.execute("INSERT INTO namespaces VALUES (?, ?, ?, ?)",
                         [namespace, default_visibility, creator, now])
        self.con.execute("INSERT INTO namespace_members VALUES (?, ?, 'admin', ?, ?)",
                         [namespace, creator, creator, now])

    def upsert_member(self, namespace: str, user_id: str, role: str, added_by: str) -> str | None:
        """Give ``user_id`` ``role``; returns the role it had before (None: new member)."""
        self.catalog.roles.clear()
        before = self.con.execute(
            "SELECT role FROM namespace_members WHERE namespace = ? AND user_id = ?",
            [namespace, user_id]).fetchone()
        if before is None:
            self.con.execute("INSERT INTO namespace_members VALUES (?, ?, ?, ?, ?)",
                             [namespace, user_id, role, added_by, _now()])
            return None
        self.con.execute(
            "UPDATE namespace_members SET role = ?, added_by = ?, added_at = ? "
            "WHERE namespace = ? AND user_id = ?", [role, added_by, _now(), namespace, user_id])
        return str(before[0])

    def delete_member(self, namespace: str, user_id: str) -> str | None:
        """Remove the membership; returns the role it had (None: was not a member)."""
        self.catalog.roles.clear()
        rows = self.con.execute(  # DuckLake's DELETE has no RETURNING: read, then delete
            "SELECT role FROM namespace_members WHERE namespace = ? AND user_id = ?",
            [namespace, user_id]).fetchall()
        if not rows:
            return None
        self.con.execute("DELETE FROM namespace_members WHERE namespace = ? AND user_id = ?",
                         [namespace, user_id])
        return str(rows[0][0])

    def member_role(self, namespace: str, user: str) -> str | None:
        """The user's role in the namespace ('viewer', 'editor', 'admin'), or None; answered
        from what this session read with the file (``lifecycle.file_context``) if it did."""
        if (namespace, user) in self.catalog.roles:
            return self.catalog.roles[(namespace, user)]
        rows = self.con.execute(  # all rows: a pending result keeps a transaction open
            "SELECT role FROM namespace_members WHERE namespace = ? AND user_id = ?",
            [namespace, user]).fetchall()
        return str(rows[0][0]) if rows else None

    def admin_count(self, namespace: str) -> int:
        row = self.con.execute(
            "SELECT count(*) FROM namespace_members WHERE namespace = ? AND role = 'admin'",
            [namespace]).fetchone()
        return int(row[0]) if row else 0

    def list_members(self, namespace: str) -> list[dict[str, Any]]:
        rows = self.con.execute(
            "SELECT user_id, role, added_by, added_at FROM namespace_members "
            "WHERE namespace = ? ORDER BY user_id", [namespace]).fetchall()
        return [dict(zip(("user_id", "role", "added_by", "added_at"), r, strict=True))
                for r in rows]

    def list_namespaces(self, user: str | None) -> list[dict[str, Any]]:
        """Every namespace (``user`` None) or those ``user`` is a member of, with the role."""
        rows = self.con.execute(
            """
            SELECT n.namespace, n.default_visibility, m.role
            FROM namespaces n LEFT JOIN namespace_members m
              ON m.namespace = n.namespace AND m.user_id = $user
            WHERE $user IS NULL OR m.role IS NOT NULL
            ORDER BY n.namespace
            """, {"user": user}).fetchall()
        return [{"namespace": n, "default_visibility": v, "role": r} for n, v, r in rows]

    # -- media files -----------------------------------------------------------------------------

    def purged_keys(self, bucket: str) -> set[str]:
        """Keys of ``bucket`` whose files were purged."""
        rows = self.con.execute("SELECT key FROM media_objects WHERE bucket = ? AND "
                                "status = 'purged'", [bucket]).fetchall()
        return {str(r[0]) for r in rows}

    def media_row(self, media_id: str) -> dict[str, Any] | None:
        # All rows, not fetchone(): a pending result keeps a transaction open, and the lifecycle
        # reads this row before it waits for a purge (whose checkpoint would then fail).
        rows = self.con.execute(f"{_MEDIA_SELECT} WHERE media_id = ?", [media_id]).fetchall()
        return _media_dict(rows[0]) if rows else None

    def active_by_hash(self, namespace: str, file_hash: str, user: str,
                       admin: bool) -> dict[str, Any] | None:
        """An active file of ``namespace`` with this content (the oldest) that ``user`` may
        see (an admin: any; a member: public, internal or their own), for upload dedup."""
        # Found without the reference counts, then read by id: a filter on media_id is the one
        # media_files passes down to the reference index (no aggregation of every file's).
        rows = self.con.execute(
            f"SELECT media_id::VARCHAR FROM {FILE_STATE} WHERE namespace = $ns "
            f"AND file_hash = $hash AND status = '{MediaStatus.ACTIVE}' AND ($admin OR "
            f"visibility IN {sql_in(Visibility.PUBLIC, Visibility.INTERNAL)} OR owner = $user) "
            "ORDER BY first_seen, key LIMIT 1",
            {"ns": namespace, "hash": file_hash, "user": user, "admin": admin}).fetchall()
        return self.media_row(rows[0][0]) if rows else None

    def register_upload(self, row: dict[str, Any]) -> None:
        """Insert an uploaded file's row, or update the row of its key when the previous object
        is gone (missing or purged): the same media id comes back to life, keeping its first
        sighting and its references (which belong to the id, not to one upload).

        ``row`` has the media_files columns the upload knows; it is written as already
        fingerprinted (``fingerprinted_etag`` = ``etag``) so inventory sees it unchanged.
        """
        values = dict(row)
        values["metadata"] = json.dumps(values.get("metadata") or {}, sort_keys=True)
        known = self.con.execute("SELECT 1 FROM media_objects WHERE media_id = ?",
                                 [values["media_id"]]).fetchone()
        if known is None:
            columns = list(values)
            self.con.execute(
                f"INSERT INTO media_objects ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                [values[c] for c in columns])
            return
        columns = [c for c in values if c not in ("media_id", "first_seen")]
        self.con.execute(
            f"UPDATE media_objects SET {', '.join(f'{c} = ?' for c in columns)}, "
            "purged_at = NULL, missing_since = NULL, quarantine_reason = NULL "
            "WHERE media_id = ?",
            [values[c] for c in columns] + [values["media_id"]])
        # the new object is not the deleted one
        self.con.execute(
            f"INSERT INTO media_deletions SELECT ?::UUID, false, ?, ?, 'upload', NULL "
            f"WHERE ?::UUID IN {DELETED_IDS}",
            [values["media_id"], _now(), values.get("owner"), values["media_id"]])

    def update_visibility(self, media_id: str, visibility: str) -> None:
        self.con.execute("UPDATE media_objects SET visibility = ? WHERE media_id = ?",
                         [visibility, media_id])

    # -- tags ------------------------------------------------------------------------------------

    def ensure_tag(self, namespace: str, name: str, user: str) -> str:
        """The namespace's tag of this name (case-insensitive), created if new; its spelling."""
        row = self.con.execute(
            "SELECT name FROM tags WHERE namespace = ? AND lower(name) = lower(?)",
            [namespace, name]).fetchone()
        if row:
            return str(row[0])
        self.con.execute("INSERT INTO tags VALUES (?, ?, ?, ?)", [namespace, name, user, _now()])
        return name

    def add_media_tag(self, media_id: str, tag: str, user: str) -> bool:
        """A manual tag on a file; an AI tag of the same name gives way. False if it was there."""
        exists = self.con.execute(
            "SELECT 1 FROM media_tags WHERE media_id = ? AND source = 'manual' "
            "AND lower(tag) = lower(?)", [media_id, tag]).fetchone()
        if exists:
            return False
        self.con.execute(
            "DELETE FROM media_tags WHERE media_id = ? AND source = 'ai' AND lower(tag) = lower(?)",
            [media_id, tag])
        self.con.execute("INSERT INTO media_tags VALUES (?, ?, 'manual', NULL, NULL, ?, ?)",
                         [media_id, tag, user, _now()])
        return True

    def remove_media_tag(self, media_id: str, tag: str) -> int:
        """Remove the tag (manual or AI) from the file; returns the rows removed."""
        rows = self.con.execute(
            "DELETE FROM media_tags WHERE media_id = ? AND lower(tag) = lower(?)",
            [media_id, tag]).fetchall()
        return int(rows[0][0]) if rows else 0

    def media_tag_rows(self, media_id: str) -> list[dict[str, Any]]:
        rows = self.con.execute(
            "SELECT tag, source, confidence, detector, created_by, created_at FROM media_tags "
            "WHERE media_id = ? ORDER BY source DESC, lower(tag)", [media_id]).fetchall()
        return [dict(zip(("tag", "source", "confidence", "detector", "created_by",
                          "created_at"), r, strict=True)) for r in rows]

    # -- collections -----------------------------------------------------------------------------

    def insert_collection(self, namespace: str, name: str, visibility: str, owner: str) -> str:
        collection_id = str(uuid.uuid4())
        now = _now()
        self.con.execute("INSERT INTO collections VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [collection_id, namespace, name, visibility, owner, now, now])
        return collection_id

    def collection_named(self, namespace: str, name: str) -> dict[str, Any] | None:
        row = self.con.execute(
            f"SELECT {', '.join(COLLECTION_COLUMNS)} FROM collections "
            "WHERE namespace = ? AND lower(name) = lower(?)", [namespace, name]).fetchone()
        return self._collection_dict(row) if row else None

    def collection_row(self, collection_id: str) -> dict[str, Any] | None:
        row = self.con.execute(
            f"SELECT {', '.join(COLLECTION_COLUMNS)} FROM collections WHERE collection_id = ?",
            [collection_id]).fetchone()
        return self._collection_dict(row) if row else None

    def collections_in(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's collections, each with ``item_access``: (visibility, owner, status)
        of every item, in order (who may see which items is the caller's rule)."""
        rows = self.con.execute(
            f"SELECT {', '.join(COLLECTION_COLUMNS)}, "
            "(SELECT list([m.visibility, m.owner, m.status] ORDER BY i.position) "
            " FROM collection_items i JOIN media_objects m ON m.media_id = i.media_id "
            " WHERE i.collection_id = c.collection_id) "
            "FROM collections c WHERE namespace = ? ORDER BY lower(name)", [namespace]).fetchall()
        out = []
        for r in rows:
            item = self._collection_dict(r[:-1])
            item["item_access"] = [tuple(a) for a in r[-1] or []]
            out.append(item)
        return out

    def collection_item_access(self, collection_id: str) -> list[tuple[str, str, str | None]]:
        """(media_id, visibility, owner) of the collection's items, in order."""
        rows = self.con.execute(
            "SELECT i.media_id::VARCHAR, m.visibility, m.owner FROM collection_items i "
            "JOIN media_objects m ON m.media_id = i.media_id WHERE i.collection_id = ? "
            "ORDER BY i.position", [collection_id]).fetchall()
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]

    @staticmethod
    def _collection_dict(row: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(COLLECTION_COLUMNS, row, strict=True))
        out["collection_id"] = str(out["collection_id"])
        return out

    def collection_media(self, collection_id: str) -> list[dict[str, Any]]:
        """The items in order, each with its file's catalog row (``media``)."""
        rows = self.con.execute(
            "SELECT i.position, i.added_by, i.added_at, i.media_id::VARCHAR "
            "FROM collection_items i SEMI JOIN media_objects m ON m.media_id = i.media_id "
            "WHERE i.collection_id = ? ORDER BY i.position", [collection_id]).fetchall()
        # one file at a time: media_files passes only an equality on media_id down to the
        # reference index (a join or an IN list would aggregate every file's references)
        out = []
        for position, added_by, added_at, media_id in rows:
            media = self.media_row(media_id)
            if media is not None:
                out.append({"position": int(position), "added_by": added_by,
                            "added_at": added_at, "media": media})
        return out

    def collection_item_ids(self, collection_id: str) -> list[str]:
        rows = self.con.execute(
            "SELECT media_id FROM collection_items WHERE collection_id = ? ORDER BY position",
            [collection_id]).fetchall()
        return [str(r[0]) for r in rows]

    def write_collection_order(self, collection_id: str, media_ids: Sequence[str],
                               added: tuple[str, str] | None = None) -> None:
        """Store the items in this order (positions 0..n-1). ``added`` = (media_id, user) for an
        item not in the collection yet; the others keep who added them and when."""
        now = _now()
        if added is not None:
            media_id, user = added
            self.con.execute("INSERT INTO collection_items VALUES (?, ?, -1, ?, ?)",
                             [collection_id, media_id, user, now])
        if media_ids:
            self.con.execute(
                """
                UPDATE collection_items AS i SET position = o.pos
                FROM (SELECT unnest($ids)::UUID AS media_id,
                             generate_subscripts($ids, 1) - 1 AS pos) o
                WHERE i.collection_id = $cid AND i.media_id = o.media_id
                """, {"ids": list(media_ids), "cid": collection_id})
        self.con.execute("UPDATE collections SET updated_at = ? WHERE collection_id = ?",
                         [now, collection_id])

    def delete_collection_item(self, collection_id: str, media_id: str) -> bool:
        rows = self.con.execute(
            "DELETE FROM collection_items WHERE collection_id = ? AND media_id = ?",
            [collection_id, media_id]).fetchall()
        return bool(rows and rows[0][0])

    # -- the audit log -----------------------------------------------------------------------------

    def record_audit(
        self, actor: str, action: str, media_id: str | None = None,
        details: dict[str, Any] | None = None, run_id: str | None = None,
    ) -> None:
        """One audit row; call it inside the transaction of the change it records."""
        self.con.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
            [_now(), actor, action, media_id, json.dumps(details or {}), run_id],
        )
