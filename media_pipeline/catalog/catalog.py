"""The catalog: a DuckLake that every process attaches at once (see ``lake.py``).

Writers, readers and analysts attach the same lake and see committed data at once: there is no
file lock, no copy and no "one writer process". Two transactions that change rows of the same
data file conflict; :meth:`Catalog.write` runs a transaction body again (from its start, so the
body must only touch the catalog) when that happens, and gives up with ``CatalogConflict``.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb

from media_pipeline.catalog import lake
from media_pipeline.catalog.ai import AIStore
from media_pipeline.catalog.application import ApplicationStore
from media_pipeline.catalog.dedup import DedupStore
from media_pipeline.catalog.fingerprints import FingerprintStore
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.catalog.lifecycle import LifecycleStore
from media_pipeline.catalog.migrations import LATEST_VERSION, MIGRATIONS
from media_pipeline.catalog.objects import ObjectStore
from media_pipeline.catalog.references import ReferenceStore
from media_pipeline.catalog.reports import ReportStore
from media_pipeline.catalog.retry import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    WRITE_ATTEMPTS,
    WRITE_RETRY_SECONDS,
    is_conflict,
)
from media_pipeline.errors import CatalogConflict, CatalogError

T = TypeVar("T")


# A process that found an attached lake at the latest schema version trusts that for this
# long: the check is a query on every open (5-8 ms), and a newer media-pipeline migrating the
# lake meanwhile is refused at the next check.
SCHEMA_CHECK_SECONDS = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    """A session on the catalog (the lake attached). Use :meth:`open` as a context manager.

    Each domain's SQL is a store on it: ``objects`` (the bucket's objects), ``fingerprints``,
    ``dedup`` (duplicates, near duplicates, features, thumbnails), ``ai``, ``reports`` (the
    reads of checks, summaries and the report), ``references`` (the reference index and content
    sources), ``lifecycle`` (soft delete, restore, purge) and ``application`` (namespaces,
    members, uploads, tags, collections and the audit log).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, location: LakeLocation,
                 read_only: bool = False):
        self.con = con
        self.location = location
        self.read_only = read_only
        self._in_transaction = False
        self._began = 0.0  # time.monotonic() when the current transaction began
        # (namespace, user) -> role, read in this session since its last transaction began
        # (file_context reads it with the file; the application store answers from it)
        self.roles: dict[tuple[str, str], str | None] = {}
        self.objects = ObjectStore(self)
        self.fingerprints = FingerprintStore(self)
        self.dedup = DedupStore(self)
        self.ai = AIStore(self)
        self.reports = ReportStore(self)
        self.references = ReferenceStore(self)
        self.lifecycle = LifecycleStore(self)
        self.application = ApplicationStore(self)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def open(cls, location: LakeLocation | Path, *, read_only: bool = False
             ) -> Iterator[Catalog]:
        """Attach the catalog; a writer applies pending migrations first.

        ``location`` is where the lake lives; a folder stands for the embedded lake under it
        (``LakeLocation.embedded``). ``read_only`` attaches it read-only (DuckLake's
        ``READ_ONLY``): for checks, reports and analysts.
        """
        if not isinstance(location, LakeLocation):
            location = LakeLocation.embedded(Path(location))
        if read_only and not location.is_postgres and not Path(location.metadata).exists():
            raise CatalogError(f"no catalog at {location.metadata}: run `media-pipeline run` "
                               "or `media-pipeline demo` first")
        with lake.session(location, read_only=read_only) as con:
            catalog = cls(con, location, read_only)
            checked = lake.schema_checked(location, read_only)
            if (checked is None or checked[1] != LATEST_VERSION
                    or time.monotonic() - checked[0] > SCHEMA_CHECK_SECONDS):
                version = catalog.migrate()
                if version == LATEST_VERSION:
                    lake.mark_schema_checked(location, read_only, version)
            yield catalog

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version.

        Safe when several processes attach a new lake at once: each migration runs in a
        transaction that reads the version first, so the loser of a race conflicts, finds the
        winner's version on its next try and goes on from there.
        """
        delay = FIRST_BACKOFF
        conflicts = 0
        while conflicts < WRITE_ATTEMPTS:
            try:
                current = self.schema_version()
                self._refuse_newer(current)
                if current == LATEST_VERSION or self.read_only:
                    if self.read_only and current == 0:
                        raise CatalogError(
                            f"the catalog ({self.location.describe()}) is empty: run "
                            "`media-pipeline run` or `media-pipeline demo` first")
                    return current
                # One migration per transaction: DuckLake cannot ALTER a table that holds
                # rows written earlier in the same transaction.
                with self.transaction():
                    current = self.schema_version()
                    self._refuse_newer(current)
                    pending = [m for m in sorted(MIGRATIONS) if m[0] > current]
                    if pending:
                        version, description, step = pending[0]
                        self.con.execute(
                            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT "
                            "NULL, description VARCHAR, applied_at TIMESTAMPTZ)")
                        name = self.con.execute("SELECT current_database()").fetchall()[0][0]
                        if isinstance(step, str):
                            self.con.execute(step.replace("__LAKE__", name))
                        else:
                            step(self.con, name)
                        self.con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                                         [version, description, _now()])
            except (CatalogConflict, duckdb.Error) as exc:
                # Migration 4's set_option writes SQLite metadata at once: "database is locked"
                # when another process committed since this transaction read it. Retryable.
                if not isinstance(exc, CatalogConflict) and \
                        "database is locked" not in str(exc).lower():
                    raise
                conflicts += 1
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF)
        raise CatalogConflict(f"the catalog's migrations kept conflicting with another "
                              f"process's after {WRITE_ATTEMPTS} attempts")

    def _refuse_newer(self, current: int) -> None:
        if current > LATEST_VERSION:
            raise CatalogError(
                f"the catalog ({self.location.describe()}) has schema version {current}, newer "
                f"than this media-pipeline understands ({LATEST_VERSION}); upgrade media-pipeline")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One attempt at a transaction; a conflict raises ``CatalogConflict`` with nothing
        applied. Inside another transaction it joins that one. Prefer :meth:`write`, which
        retries."""
        if self._in_transaction:
            yield self.con
            return
        self.con.execute("BEGIN TRANSACTION")
        self._began = time.monotonic()
        self._in_transaction = True
        self.roles.clear()  # a retried body must not act on what a failed attempt read
        try:
            yield self.con
            self.con.execute("COMMIT")
        except BaseException as exc:
            _rollback(self.con)
            if isinstance(exc, duckdb.Error) and is_conflict(exc):
                raise CatalogConflict(
                    f"a catalog transaction conflicted with another writer's: {_first_line(exc)}"
                ) from exc
            raise
        finally:
            self._in_transaction = False

    def refuse_if_older_than(self, limit: timedelta) -> None:
        """Abort the transaction (``CatalogConflict``: ``write`` runs it again, on a new
        snapshot) if it began more than ``limit`` ago. For writes whose safety rests on their
        snapshot being recent (see ``lifecycle.PURGE_MIN_AGE``)."""
        if self._in_transaction and time.monotonic() - self._began > limit.total_seconds():
            raise CatalogConflict(
                f"the transaction took longer than {limit.total_seconds():g} s; its snapshot "
                "may miss what happened since")

    def write(self, body: Callable[[], T]) -> T:
        """Run ``body`` in one transaction, again from its start (with backoff) while it
        conflicts with other writers; ``CatalogConflict`` once it has had WRITE_ATTEMPTS
        attempts and WRITE_RETRY_SECONDS. ``body`` must
        change nothing but the catalog, so running it twice is running it once. Inside another
        transaction it runs once, as part of that one (the outer ``write`` retries)."""
        if self._in_transaction:
            return body()
        delay = FIRST_BACKOFF
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.transaction():
                    return body()
            except CatalogConflict as exc:
                if attempt >= WRITE_ATTEMPTS and \
                        time.monotonic() - started >= WRITE_RETRY_SECONDS:
                    raise CatalogConflict(
                        f"a catalog write kept conflicting with other writers after "
                        f"{attempt} attempts in {time.monotonic() - started:.0f} s; nothing "
                        f"of it was applied ({_first_line(exc.__cause__ or exc)})") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF)

    def schema_version(self) -> int:
        """The highest migration applied; 0 for a new lake."""
        if self._in_transaction:  # a failed statement would abort the transaction: look first
            # this lake's tables only: duckdb_tables() would load every attached lake's catalog
            name = self.con.execute("SELECT current_database()").fetchall()[0][0]
            exists = self.con.execute(
                f"SELECT count(*) FROM ducklake_table_info('{name}') "
                "WHERE table_name = 'schema_version'").fetchall()
            if not exists[0][0]:
                return 0
        try:
            rows = self.con.execute("SELECT max(version) FROM schema_version").fetchall()
        except duckdb.Error as exc:
            if "ducklake_inlined_data" in str(exc):
                # another process is committing the lake's first tables at this moment
                raise CatalogConflict(f"the catalog is being created: {_first_line(exc)}"
                                      ) from exc
            if isinstance(exc, duckdb.CatalogException):
                return 0
            raise
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def ensure_schema(con: duckdb.DuckDBPyConnection, location: LakeLocation) -> int:
    """Apply the migrations a lake attached on ``con`` lacks (what ``Catalog.open`` does), for
    code that holds a raw lake connection; returns the schema version."""
    return Catalog(con, location).migrate()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended it
        con.execute("ROLLBACK")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
