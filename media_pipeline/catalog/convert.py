"""``media-pipeline catalog migrate``: the old single-file catalog (``catalog.duckdb``) into the
lake.

1. Export every table of the old file to Parquet. The file was most likely written by DuckDB
   2.0.1 (storage version 999), which this DuckDB (1.5.5) cannot open; then the export runs
   with DuckDB 2.0.1 in a throwaway virtualenv (``python -m venv`` + ``pip install
   duckdb==2.0.1``), deleted afterwards.
2. Copy each table into the lake's table of the same name in ONE transaction: the columns both
   have (the lake's types: ``FLOAT[64]``/``FLOAT[48]`` arrays become lists). A table with rows
   the lake has no table for, or a column holding values the lake has no column for (and does
   not derive: ``DERIVED_COLUMNS``), stops the migration before anything is written; an empty
   column the lake lacks is reported. ``schema_version`` is the lake's own.
3. Verify the row count of every table inside that transaction (and again after the commit).
4. Keep the old file, renamed ``catalog.duckdb.pre-lake`` so nothing writes to it by mistake.

A lake that already holds rows is refused; ``force`` replaces those tables' rows instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from media_pipeline.catalog import lake
from media_pipeline.catalog.catalog import ensure_schema
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.errors import CatalogError, NotFound

__all__ = ["LEGACY_DUCKDB", "MigrationReport", "TableCopy", "migrate_catalog"]

LEGACY_DUCKDB = "2.0.1"
EXPORTER = Path(__file__).with_name("export_legacy.py")
SKIPPED_TABLES = frozenset({"schema_version"})
# The last migration of the single-file catalog (its numbering ended at 8; the lake's restarted).
LEGACY_LATEST_VERSION = 8
# Old table -> the lake's table, where the lake renamed one.
TABLE_MAP: dict[str, str] = {"media_files": "media_objects"}
# (lake table, old column) the lake derives from other facts: not copied as a column (the
# deletion state and unreferenced_since become facts, FACTS below; counts come from the
# references). Any other column the lake lacks stops the migration when it holds a value.
DERIVED_COLUMNS: frozenset[tuple[str, str]] = frozenset(
    ("media_objects", c) for c in ("reference_count", "referenced_in", "is_deleted",
                                   "deleted_at", "deleted_by", "unreferenced_since"))
# What lake migration 3 does to a lake's own media_files, for the old file's rows ({old}: its
# Parquet export): the pipeline's status, and the facts the lake derives the rest from.
BASE_STATUS = """CASE WHEN status <> 'deleted' THEN status
    WHEN fingerprinted_etag IS DISTINCT FROM etag THEN 'pending'
    WHEN quarantine_reason IS NOT NULL THEN 'quarantined' ELSE 'active' END"""
FACTS = (
    "INSERT INTO media_deletions SELECT media_id, true, deleted_at, deleted_by, 'migration', "
    "NULL FROM {old} WHERE status = 'deleted' OR (status IN ('missing', 'purged') "
    "AND is_deleted) ORDER BY deleted_at, media_id",
    "INSERT INTO reference_removals SELECT media_id, unreferenced_since, 'migration', NULL, "
    "NULL FROM {old} WHERE unreferenced_since IS NOT NULL ORDER BY unreferenced_since, "
    "media_id",
)
FACT_TABLES = ("media_deletions", "reference_removals")
KEPT_SUFFIX = ".pre-lake"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows_old: int
    rows_new: int
    columns_not_copied: list[str] = field(default_factory=list)


@dataclass
class MigrationReport:
    source: str
    kept_as: str
    exported_with: str  # the DuckDB version that read the old file
    old_schema_version: int
    tables: list[TableCopy]
    replaced_rows: int  # with force: rows the lake held before
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _s(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _run_exporter(python: str, old: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run([python, str(EXPORTER), str(old), str(out)], capture_output=True,
                          text=True, timeout=3600, check=False)
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = done.stderr.strip().splitlines()
        result = {"error": tail[-1] if tail else f"exit {done.returncode}"}
    return result


def _too_new(error: str) -> bool:
    """DuckDB's answer to a file written by a newer storage format."""
    text = error.lower()
    return "version" in text and ("storage" in text or "can only read" in text
                                  or "serializ" in text)


def legacy_python(venv: Path, progress: Progress) -> str:
    """The Python of a virtualenv with DuckDB 2.0.1, made in ``venv`` unless it is there."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import duckdb; print(duckdb.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, check=False)
        if found.stdout.strip() == LEGACY_DUCKDB:
            return str(python)
    progress(f"creating a throwaway virtualenv for DuckDB {LEGACY_DUCKDB} in {venv}")
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                          text=True, check=False)
    if made.returncode != 0:
        raise CatalogError(f"cannot create a virtualenv in {venv} to read the old catalog: "
                           f"{_last(made.stderr)}")
    progress(f"pip install duckdb=={LEGACY_DUCKDB} (the DuckDB that wrote the old catalog)")
    pip = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                          "-q", f"duckdb=={LEGACY_DUCKDB}"], capture_output=True, text=True,
                         check=False)
    if pip.returncode != 0:
        raise CatalogError(f"the old catalog needs DuckDB {LEGACY_DUCKDB} to be read, and "
                           f"pip could not install it ({_last(pip.stderr)}); install "
                           f"duckdb=={LEGACY_DUCKDB} in a virtualenv and run python "
                           f"{EXPORTER} CATALOG OUT_DIR with it")
    return str(python)


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def export_legacy(old: Path, out: Path, progress: Progress, venv: Path | None = None
                  ) -> dict[str, Any]:
    """Every table of ``old`` as Parquet in ``out``: with this DuckDB if it can read the file,
    else with DuckDB 2.0.1 in a virtualenv (``venv``: reused if it has it; default: a
    temporary one, deleted)."""
    progress(f"reading {old} with DuckDB {duckdb.__version__}")
    result = _run_exporter(sys.executable, old, out)
    if "error" not in result:
        return result
    if not _too_new(result["error"]):
        raise CatalogError(f"cannot read the old catalog {old}: {result['error']}")
    progress(f"DuckDB {duckdb.__version__} cannot open it ({result['error']}); exporting "
             f"it with DuckDB {LEGACY_DUCKDB}")
    scratch = None if venv is not None else Path(tempfile.mkdtemp(prefix="mp-duckdb-"))
    try:
        python = legacy_python(venv or (scratch / "venv"), progress)  # type: ignore[operator]
        result = _run_exporter(python, old, out)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if "error" in result:
        raise CatalogError(f"cannot read the old catalog {old} with DuckDB {LEGACY_DUCKDB} "
                           f"either: {result['error']}")
    return result


def _lake_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = 'main' AND table_name IN (SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = ? AND schema_name = 'main') ORDER BY table_name, column_index",
        [lake.ALIAS, lake.ALIAS]).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {_q(table)}").fetchall()[0][0])


def _parquet_columns(con: duckdb.DuckDBPyConnection, file: str) -> list[str]:
    return [str(r[0]) for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({_s(file)})").fetchall()]


def _unplaced(con: duckdb.DuckDBPyConnection, file: str, table: str, columns: list[str]
              ) -> list[tuple[str, int]]:
    """Columns of the old table with values that the lake's table has no column for."""
    missing = [c for c in _parquet_columns(con, file)
               if c not in columns and (table, c) not in DERIVED_COLUMNS]
    if not missing:
        return []
    counts = con.execute("SELECT " + ", ".join(f"count({_q(c)})" for c in missing)
                         + f" FROM read_parquet({_s(file)})").fetchall()[0]
    return [(c, int(n)) for c, n in zip(missing, counts, strict=True) if n]


def _old_version(con: duckdb.DuckDBPyConnection, exported: dict[str, Any]) -> int:
    info = exported["tables"].get("schema_version")
    if not info or not info["rows"]:
        return 0
    rows = con.execute(f"SELECT max(version) FROM read_parquet({_s(info['file'])})").fetchall()
    return int(rows[0][0] or 0)


def _kept_name(old: Path) -> Path:
    kept = old.with_name(old.name + KEPT_SUFFIX)
    if kept.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kept = old.with_name(f"{old.name}{KEPT_SUFFIX}-{stamp}")
    return kept


def migrate_catalog(old: Path, location: LakeLocation, *, force: bool = False,
                    progress: Progress | None = None, work_dir: Path | None = None,
                    venv: Path | None = None,
                    prepare: Callable[[duckdb.DuckDBPyConnection], Any] | None = None,
                    ) -> MigrationReport:
    """Convert ``old`` into the lake at ``location`` (see the module docstring).

    ``prepare(con)``, when given, replaces bringing the lake's schema up to date (tests);
    ``venv`` reuses a virtualenv with DuckDB 2.0.1.
    """
    say = progress or (lambda line: None)
    started = time.monotonic()
    if not old.is_file():
        raise NotFound(f"no old catalog at {old} (nothing to migrate; --from PATH names "
                       "another file)")
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mp-migrate-", dir=work_dir))
    try:
        exported = export_legacy(old, scratch, say, venv)
        tables: dict[str, dict[str, Any]] = exported["tables"]
        say(f"exported {len(tables)} tables, "
            f"{sum(t['rows'] for t in tables.values())} rows")
        con = lake.connect(location)
        try:
            if prepare is None:
                ensure_schema(con, location)
            else:
                prepare(con)
            report = _load(con, old, exported, force, say)
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    kept = _kept_name(old)
    old.rename(kept)
    wal = old.with_name(old.name + ".wal")
    if wal.exists():
        wal.rename(kept.with_name(kept.name + ".wal"))
    say(f"kept the old catalog as {kept}")
    report.kept_as = str(kept)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _load(con: duckdb.DuckDBPyConnection, old: Path, exported: dict[str, Any], force: bool,
          say: Progress) -> MigrationReport:
    tables: dict[str, dict[str, Any]] = exported["tables"]
    version = _old_version(con, exported)
    if version > LEGACY_LATEST_VERSION:
        raise CatalogError(f"the old catalog {old} has schema version {version}, newer than "
                           f"this media-pipeline understands ({LEGACY_LATEST_VERSION}); upgrade "
                           "media-pipeline first")
    target = _lake_tables(con)
    copied = sorted(t for t in tables if t not in SKIPPED_TABLES)
    into = {t: TABLE_MAP.get(t, t) for t in copied}
    homeless = [t for t in copied if into[t] not in target and tables[t]["rows"]]
    if homeless:
        raise CatalogError(f"the lake has no table for {', '.join(homeless)} of the old "
                           "catalog; nothing was migrated")
    lost = [f"{t}.{c} ({n} values)" for t in copied if into[t] in target
            for c, n in _unplaced(con, tables[t]["file"], into[t], target[into[t]])]
    if lost:
        raise CatalogError(f"the lake has no column for {', '.join(lost)} of the old catalog; "
                           "nothing was migrated")
    held = {t: _count(con, into[t]) for t in copied if into[t] in target}
    if any(held.values()) and not force:
        busy = ", ".join(f"{t} ({n} rows)" for t, n in held.items() if n)
        raise CatalogError(f"the lake already holds rows ({busy}); nothing was migrated "
                           "(--force replaces them with the old catalog's)")
    copies: list[TableCopy] = []
    con.execute("BEGIN TRANSACTION")
    try:
        for table in copied:
            lake_table = into[table]
            if lake_table not in target:
                continue
            info = tables[table]
            have = _parquet_columns(con, info["file"])
            common = [c for c in have if c in target[lake_table]]
            if held[table]:
                con.execute(f"DELETE FROM {_q(lake_table)}")
            columns = ", ".join(_q(c) for c in common)
            values = columns
            if lake_table == "media_objects":
                values = ", ".join(BASE_STATUS if c == "status" else _q(c) for c in common)
            con.execute(f"INSERT INTO {_q(lake_table)} ({columns}) SELECT {values} "
                        f"FROM read_parquet({_s(info['file'])})")
            if lake_table == "media_objects":
                for fact_table in FACT_TABLES:
                    con.execute(f"DELETE FROM {fact_table}")
                for sql in FACTS:
                    con.execute(sql.format(old=f"read_parquet({_s(info['file'])})"))
            rows = _count(con, lake_table)
            if rows != info["rows"]:
                raise CatalogError(f"{table}: {info['rows']} rows in the old catalog, {rows} "
                                   "in the lake; nothing was migrated")
            copies.append(TableCopy(lake_table, int(info["rows"]), rows,
                                    [c for c in have if c not in target[lake_table]
                                     and (lake_table, c) not in DERIVED_COLUMNS]))
            say(f"{table}: {rows} rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for copy in copies:  # what was committed, read again (more: another writer's rows)
        if _count(con, copy.table) < copy.rows_old:
            raise CatalogError(f"{copy.table}: fewer rows after the commit than copied")
    return MigrationReport(source=str(old), kept_as="", exported_with=str(exported["duckdb"]),
                           old_schema_version=version, tables=copies,
                           replaced_rows=sum(held.values()), seconds=0.0)
