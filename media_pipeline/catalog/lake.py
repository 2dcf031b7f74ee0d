"""Attaching the catalog: a DuckLake (Parquet data files plus a metadata database).

Every process — a Dagster step, the CLI, ``MediaLibrary`` in a web app, an analyst's DuckDB —
attaches the same lake and sees committed data at once; there is no file lock and no copy.

DuckDB's extensions come from PyPI wheels pinned to DuckDB's own version and are loaded from the
installed files with signature checks on, so nothing is downloaded at run time. Two of them must
be loaded under their internal names (``sqlite_scanner``, ``postgres_scanner``): DuckDB derives
the entry point from the file name, so a per-user folder holds links with those names.

Where the lake lives is two settings:

- ``MEDIA_PIPELINE_CATALOG_METADATA``: the metadata database — a SQLite file path (default
  ``<home>/catalog/metadata.sqlite``) or a ``postgresql://user[:password]@host[:port]/dbname``
  URL (parsed with SQLAlchemy's URL parser, never by hand).
- ``MEDIA_PIPELINE_CATALOG_DATA``: where the Parquet files go — a folder (default
  ``<home>/catalog/data/``) or ``s3://bucket/prefix/``, reached with the S3 settings.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import duckdb

from media_pipeline.catalog.retry import LAKE_RETRY_SETTINGS
from media_pipeline.errors import CatalogError, SettingsError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "ALIAS",
    "DUCKDB_VERSION",
    "LakeLocation",
    "attach_statements",
    "connect",
    "extension_path",
    "load_extensions",
    "load_statements",
    "session",
    "session_setup",
]

DUCKDB_VERSION = "1.5.5"
ALIAS = "lake"
METADATA_SETTING = "MEDIA_PIPELINE_CATALOG_METADATA"
DATA_SETTING = "MEDIA_PIPELINE_CATALOG_DATA"
_PG_SECRET = "media_pipeline_catalog_metadata"

# The name DuckDB expects -> (the wheel's Python package, the file's name in that wheel).
_EXTENSIONS: dict[str, tuple[str, str]] = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake"),
    "sqlite_scanner": ("duckdb_extension_sqlite", "sqlite"),
    "postgres_scanner": ("duckdb_extension_postgres", "postgres"),
    "httpfs": ("duckdb_extension_httpfs", "httpfs"),
}

# No download, no unsigned code: only the files of the pinned wheels.
SQLITE_BUSY_TIMEOUT_MS = 10_000
_CONFIG = {
    "allow_unsigned_extensions": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


@dataclass(frozen=True)
class LakeLocation:
    """Where the catalog lives: its metadata database and its data files.

    ``metadata`` is a SQLite file path or a ``postgresql://`` URL; ``data`` a folder or an
    ``s3://`` URL. The S3 fields are used only for ``s3://`` data.
    """

    metadata: str
    data: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = field(default=None, repr=False)
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_session_token: str | None = field(default=None, repr=False)

    @classmethod
    def embedded(cls, home: Path) -> LakeLocation:
        """The default: metadata in SQLite under ``home``, data files beside it."""
        return cls(metadata=str(home / "catalog" / "metadata.sqlite"),
                   data=str(home / "catalog" / "data") + os.sep)

    @property
    def is_postgres(self) -> bool:
        return _scheme(self.metadata) in {"postgres", "postgresql"}

    @property
    def data_on_s3(self) -> bool:
        return _scheme(self.data) == "s3"

    @property
    def data_beside_metadata(self) -> bool:
        """The data folder is ``data/`` beside a SQLite metadata file (the embedded layout):
        the two move together, so a home that was moved or copied attaches where it is now."""
        if self.is_postgres or self.data_on_s3:
            return False
        return Path(self.data) == Path(self.metadata).parent / "data"

    def describe(self) -> str:
        """For messages: where the lake is, without a password."""
        if self.is_postgres:
            url = _postgres_url(self.metadata)
            meta = url.render_as_string(hide_password=True)
        else:
            meta = self.metadata
        return f"metadata {meta}, data {self.data}"


def _scheme(value: str) -> str:
    return urlsplit(value).scheme.lower() if "://" in value else ""


def _postgres_url(raw: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise SettingsError(f"{METADATA_SETTING} is not a valid PostgreSQL URL: {exc}") from None
    if not url.database:
        raise SettingsError(f"{METADATA_SETTING} names no database (postgresql://user@host/DB)")
    options = dict(url.query)
    password = options.pop("password", None)
    if options:
        # Not passed to DuckDB's secret: an sslmode=require would be dropped without a word.
        raise SettingsError(
            f"{METADATA_SETTING}: the URL's connection options ({', '.join(sorted(options))}) "
            "are not passed on; set them as libpq environment variables instead (PGSSLMODE, "
            "PGSSLROOTCERT, ...)")
    if password is not None:  # libpq's ?password= form: kept out of messages like any other
        value = password if isinstance(password, str) else password[-1]
        url = url.set(password=url.password or value, query={})
    return url


def _postgres_secret(raw: str, *, with_password: bool) -> str:
    """The metadata database's connection as a DuckDB secret: the password never appears in a
    connection string, so it cannot appear in an error message that quotes one."""
    url = _postgres_url(raw)
    options = ["TYPE postgres", f"DATABASE {_sql_string(str(url.database))}"]
    if url.host:
        options.append(f"HOST {_sql_string(url.host)}")
    if url.port:
        options.append(f"PORT {int(url.port)}")
    if url.username:
        options.append(f"USER {_sql_string(url.username)}")
    if with_password and url.password:
        options.append(f"PASSWORD {_sql_string(str(url.password))}")
    return f"CREATE OR REPLACE SECRET {_PG_SECRET} ({', '.join(options)})"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _extension_dir() -> Path:
    """A per-user folder of links named as DuckDB expects, made once."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    for root in (Path(base), Path(tempfile.gettempdir()) / f"media-pipeline-{os.getuid()}"):
        folder = root / "media-pipeline" / f"duckdb-extensions-v{DUCKDB_VERSION}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError:
            continue
    raise CatalogError("no writable folder for DuckDB's extension links (tried "
                       f"{base} and {tempfile.gettempdir()})")


def extension_path(name: str) -> Path:
    """The file to ``LOAD`` for extension ``name``, from its installed PyPI wheel."""
    package, file_name = _EXTENSIONS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(f"the DuckDB extension {name!r} is not installed: pip install "
                           f"'{package.replace('_', '-')}=={DUCKDB_VERSION}'")
    source = (Path(next(iter(spec.submodule_search_locations))) / "extensions"
              / f"v{DUCKDB_VERSION}" / f"{file_name}.duckdb_extension")
    if not source.is_file():
        raise CatalogError(f"the DuckDB extension {name!r} for DuckDB {DUCKDB_VERSION} is "
                           f"missing from {source.parent}; reinstall "
                           f"'{package.replace('_', '-')}=={DUCKDB_VERSION}'")
    if file_name == name:
        return source
    link = _extension_dir() / f"{name}.duckdb_extension"
    if not (link.is_symlink() and os.readlink(link) == str(source)):
        # Made beside and renamed over, so processes starting at once never see half a link.
        tmp = link.with_name(f".{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, link)
    return link


def load_extensions(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    for name in names:
        con.execute(f"LOAD {_sql_string(str(extension_path(name)))}")


def load_statements(location: LakeLocation) -> list[str]:
    """``LOAD`` of each extension the lake needs, from the installed wheels."""
    return [f"LOAD {_sql_string(str(extension_path(name)))}" for name in _needed(location)]


def _needed(location: LakeLocation) -> list[str]:
    names = ["ducklake", "postgres_scanner" if location.is_postgres else "sqlite_scanner"]
    if location.data_on_s3:
        names.append("httpfs")
    return names


def _secret_statement(location: LakeLocation, *, with_keys: bool) -> str:
    options = ["TYPE s3", f"REGION {_sql_string(location.s3_region)}"]
    if location.s3_endpoint_url:
        endpoint = urlsplit(location.s3_endpoint_url)
        options += [f"ENDPOINT {_sql_string(endpoint.netloc)}", "URL_STYLE 'path'",
                    f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}"]
    if with_keys:
        options += [f"KEY_ID {_sql_string(location.s3_access_key_id or 'embedded')}",
                    f"SECRET {_sql_string(location.s3_secret_access_key or 'embedded')}"]
        if location.s3_session_token:
            options.append(f"SESSION_TOKEN {_sql_string(location.s3_session_token)}")
    else:
        options += ["KEY_ID '<AWS_ACCESS_KEY_ID>'", "SECRET '<AWS_SECRET_ACCESS_KEY>'"]
    return f"CREATE OR REPLACE SECRET media_pipeline_lake ({', '.join(options)})"


def attach_statements(location: LakeLocation, *, with_secrets: bool = False,
                      read_only: bool = False, at: int | datetime | None = None,
                      alias: str = ALIAS) -> list[str]:
    """The statements that attach the catalog as ``alias`` in a DuckDB session with the
    extensions loaded. Without ``with_secrets`` passwords and keys are left out (for printing:
    libpq reads ``PGPASSWORD``; fill in the S3 keys). ``at``: the catalog as of a snapshot id
    or a time (always read-only)."""
    statements = []
    if location.data_on_s3:
        statements.append(_secret_statement(location, with_keys=with_secrets))
    options = [f"DATA_PATH {_sql_string(location.data)}"]
    if location.data_beside_metadata:
        # DuckLake stores the data path it was created with; elsewhere a mismatch is refused.
        options.append("OVERRIDE_DATA_PATH true")
    if location.is_postgres:
        statements.append(_postgres_secret(location.metadata, with_password=with_secrets))
        target = "ducklake:postgres:"
        options.append(f"METADATA_PARAMETERS MAP {{'SECRET': '{_PG_SECRET}'}}")
    else:
        target = "ducklake:sqlite:" + location.metadata
        # Wait for another process's SQLite lock instead of failing at once: without it a
        # fifth process attaching beside four writers failed "database is locked" (measured).
        options.append(f"META_BUSY_TIMEOUT {SQLITE_BUSY_TIMEOUT_MS}")
    if at is not None:  # history: the catalog as it was
        options.append(f"SNAPSHOT_TIME {_sql_string(at.isoformat())}"
                       if isinstance(at, datetime) else f"SNAPSHOT_VERSION {int(at)}")
    if read_only or at is not None:
        options.append("READ_ONLY")
    statements.append(f"ATTACH {_sql_string(target)} AS {alias} ({', '.join(options)})")
    statements.append(f"USE {alias}")
    return statements


def session_setup(location: LakeLocation, *, read_only: bool = False,
                  at: int | datetime | None = None) -> dict[str, Any]:
    """What a separate process needs to attach the lake without importing this package (the
    analysts' query child): its DuckDB config, the statements to run (secrets included: pass
    them on a pipe, never on a command line) and the paths the session must still reach once
    external access is turned off."""
    _prepare(location)
    statements = load_statements(location)
    statements += attach_statements(location, with_secrets=True, read_only=read_only, at=at)
    paths = [] if location.is_postgres else [location.metadata]
    return {"config": dict(_CONFIG), "statements": statements, "paths": paths,
            "directories": [location.data]}


# Tests only: a new embedded lake starts as a copy of this SQLite file (an empty lake at the
# current schema version, made by the test session with ``Catalog.open``) instead of running
# every migration, which costs 1.5-3 s a lake on two busy cores. Tests of the migrations unset it.
TEST_TEMPLATE_ENV = "MEDIA_PIPELINE_TEST_LAKE_TEMPLATE"


def _prepare(location: LakeLocation) -> None:
    if not location.is_postgres and not location.data_on_s3:
        Path(location.data).mkdir(parents=True, exist_ok=True)
    if not location.is_postgres:
        metadata = Path(location.metadata)
        metadata.parent.mkdir(parents=True, exist_ok=True)
        template = os.environ.get(TEST_TEMPLATE_ENV)
        if (not metadata.exists() and template and location.data_beside_metadata
                and not any(Path(location.data).rglob("*.parquet"))):
            # (over another lake's files it stays new, for _refuse_data_of_another_lake)
            _copy_template(Path(template), metadata)
        if not metadata.exists():
            _create_sqlite(metadata)
        else:
            _refuse_foreign_sqlite(metadata)


def _copy_template(template: Path, path: Path) -> None:
    """Copy under another name, then link into place: a process attaching at this moment
    sees no file or the whole one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.copyfile(template, partial)
    try:
        os.link(partial, path)
    except FileExistsError:
        pass  # another process made it first
    finally:
        partial.unlink()


def _refuse_foreign_sqlite(path: Path) -> None:
    """An existing file that is not a lake's metadata (another application's SQLite database,
    a file of another kind) is refused before DuckLake writes its tables into it."""
    try:
        con = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=30)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise CatalogError(f"{path} is not a SQLite database ({exc}): check "
                           f"{METADATA_SETTING}") from None
    if tables and not any(t.startswith("ducklake_") for t in tables):
        raise CatalogError(f"{path} is another application's SQLite database (tables "
                           f"{', '.join(tables[:3])}{', ...' if len(tables) > 3 else ''}), "
                           f"not the catalog's metadata: check {METADATA_SETTING}")


def _create_sqlite(path: Path) -> None:
    """A new SQLite metadata file in WAL mode (it stays so): a reader's open transaction then
    never blocks a writer's commit, and a writer never blocks readers."""
    try:
        con = sqlite3.connect(path, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error:
        pass  # another process is creating it at this moment; it sets the mode


# A process attaches every lake it opens to one DuckDB instance, each under its own name:
# loading an extension checks its signature (~0.35 s per extension and instance), attaching a
# lake takes ~0.03 s. A lake with credentials (S3 data, PostgreSQL metadata) gets an instance of
# its own, since secrets are global to an instance.
@dataclass
class _Lake:
    alias: str
    sessions: int = 0  # open sessions; a lake is detached only when it has none
    # (time.monotonic(), version) of the last check that found the lake at the latest version
    schema_checked: tuple[float, int] | None = None


@dataclass
class _Instance:
    con: duckdb.DuckDBPyConnection
    loaded: set[str] = field(default_factory=set)
    lakes: dict[tuple[LakeLocation, bool], _Lake] = field(default_factory=dict)


_INSTANCES: dict[LakeLocation | None, _Instance] = {}  # None: the shared one
_INSTANCES_PID = os.getpid()
# Lakes attached, most recently used last. Of the lakes on the shared instance without a
# session, the two used last stay attached (a lake read-write and read-only): what lists the
# tables of every attached database (duckdb_tables(), a "did you mean" hint) loads each one's
# catalog. At most _MAX_IDLE lakes
# keep their own instance without a session.
_ATTACHED: OrderedDict[tuple[LakeLocation, bool], _Instance] = OrderedDict()
_INSTANCES_LOCK = threading.Lock()
_MAX_IDLE = 8
_ALIASES = itertools.count(1)


def _needs_own_instance(location: LakeLocation) -> bool:
    return location.is_postgres or location.data_on_s3


@contextmanager
def session(location: LakeLocation, *, read_only: bool = False
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new session on the lake (its own transactions and temp tables), closed at the end, on
    this process's DuckDB instance that has the lake attached (the lake's name there is
    ``current_database()``). A forked child makes its own instance."""
    global _INSTANCES_PID
    key = (location, read_only)
    with _INSTANCES_LOCK:
        if os.getpid() != _INSTANCES_PID:  # a parent's, inherited by fork: never used here
            _INSTANCES.clear()
            _ATTACHED.clear()
            _INSTANCES_PID = os.getpid()
        _detach_idle(vanished=True)
        instance = _ATTACHED.get(key)
        if instance is None:
            instance = _attach_to_instance(location, read_only)
            _ATTACHED[key] = instance
        _ATTACHED.move_to_end(key)
        attached = instance.lakes[key]
        attached.sessions += 1
        try:
            con = instance.con.cursor()
            con.execute(f"USE {attached.alias}")
        except BaseException:
            attached.sessions -= 1
            raise
    try:
        yield con
    finally:
        con.close()
        with _INSTANCES_LOCK:
            attached.sessions -= 1
            _detach_idle()


def schema_checked(location: LakeLocation, read_only: bool) -> tuple[float, int] | None:
    """When this process last found the attached lake at the latest schema version, and that
    version (None: not since it was attached)."""
    with _INSTANCES_LOCK:
        instance = _ATTACHED.get((location, read_only))
        attached = instance.lakes.get((location, read_only)) if instance else None
        return attached.schema_checked if attached else None


def mark_schema_checked(location: LakeLocation, read_only: bool, version: int) -> None:
    with _INSTANCES_LOCK:
        instance = _ATTACHED.get((location, read_only))
        if instance is not None and (location, read_only) in instance.lakes:
            instance.lakes[(location, read_only)].schema_checked = (time.monotonic(), version)


def forget_schema_checks() -> None:
    """Check every attached lake's schema version again at its next open."""
    with _INSTANCES_LOCK:
        for instance in _INSTANCES.values():
            for attached in instance.lakes.values():
                attached.schema_checked = None


def _attach_to_instance(location: LakeLocation, read_only: bool) -> _Instance:
    owner = location if _needs_own_instance(location) else None
    instance = _INSTANCES.get(owner)
    if instance is None:
        instance = _INSTANCES[owner] = _Instance(duckdb.connect(config=dict(_CONFIG)))
    missing = [name for name in _needed(location) if name not in instance.loaded]
    try:
        load_extensions(instance.con, missing)
        if "ducklake" in missing:
            for name, value in LAKE_RETRY_SETTINGS.items():
                instance.con.execute(f"SET GLOBAL {name} = {value}")
        instance.loaded.update(missing)
        alias = f"{ALIAS}_{next(_ALIASES)}"
        _attach(instance.con, location, attach_statements(
            location, with_secrets=True, read_only=read_only, alias=alias), at=None)
        # The instance's own connection selects no lake: one it selected could not be detached,
        # and every later ATTACH would read it (failing once its files are gone).
        instance.con.execute("USE memory")
    except BaseException:
        if not instance.lakes:
            instance.con.close()
            del _INSTANCES[owner]
        raise
    instance.lakes[(location, read_only)] = _Lake(alias)
    return instance


def _detach_idle(*, vanished: bool = False) -> None:
    """Detach the lakes without a session beyond the two used last on the shared instance and
    beyond _MAX_IDLE with their own instance; with ``vanished``, only those whose SQLite file
    is gone (a home moved or deleted): an attached lake that cannot be read makes every ATTACH
    and every listing of tables on its instance fail."""
    shared = _INSTANCES.get(None)
    idle = [key for key, instance in _ATTACHED.items() if not instance.lakes[key].sessions]
    shared_idle = [key for key in idle if _ATTACHED[key] is shared]
    own_idle = [key for key in idle if _ATTACHED[key] is not shared]
    if vanished:
        drop = [key for key in shared_idle if not Path(key[0].metadata).exists()]
    else:
        drop = shared_idle[:-2] + own_idle[:max(0, len(own_idle) - _MAX_IDLE)]
    for key in drop:
        instance = _ATTACHED.pop(key)
        attached = instance.lakes.pop(key)
        if instance is shared:
            with contextlib.suppress(duckdb.Error):
                instance.con.execute(f"DETACH {attached.alias}")
        elif not instance.lakes:
            del _INSTANCES[key[0]]
            instance.con.close()


_ATTACH_ATTEMPTS = 10


def _racing_init(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "already exists" in text or (
        "failed to initialize ducklake" in text and "unique" in text)


def connect(location: LakeLocation, *, read_only: bool = False,
            config: dict[str, str | bool | int] | None = None,
            at: int | datetime | None = None) -> duckdb.DuckDBPyConnection:
    """A new DuckDB instance with the catalog attached as ``lake`` and selected."""
    # The same lake attached (idle) on this process's shared instance too: detached first, so
    # one instance at a time works on its files (a flush on this one while the shared one held
    # it attached crashed inside DuckDB once, in CI).
    with _INSTANCES_LOCK:
        for key in [k for k in _ATTACHED if k[0] == location]:
            instance = _ATTACHED[key]
            attached = instance.lakes[key]
            if attached.sessions or instance is not _INSTANCES.get(None):
                continue
            _ATTACHED.pop(key)
            instance.lakes.pop(key)
            with contextlib.suppress(duckdb.Error):
                instance.con.execute(f"DETACH {attached.alias}")
    con = duckdb.connect(config={**_CONFIG, **(config or {})})
    try:
        load_extensions(con, _needed(location))
        _attach(con, location, attach_statements(
            location, with_secrets=True, read_only=read_only, at=at), at=at)
    except BaseException:
        con.close()
        raise
    return con


def _attach(con: duckdb.DuckDBPyConnection, location: LakeLocation, statements: list[str],
            *, at: int | datetime | None) -> None:
    _prepare(location)
    try:
        for attempt in range(_ATTACH_ATTEMPTS):
            try:
                for statement in statements:
                    con.execute(statement)
                break
            except duckdb.Error as exc:
                # The first attach of a new lake creates DuckLake's own tables; processes
                # doing that at once collide, and the loser finds them made on its next try.
                if attempt + 1 == _ATTACH_ATTEMPTS or not _racing_init(exc):
                    raise
                time.sleep(0.05 * 2 ** min(attempt, 5) * (1 + random.random()))
        if at is None:
            _refuse_data_of_another_lake(con, location)
    except duckdb.Error as exc:
        if at is not None and "No snapshot found" in str(exc):
            raise CatalogError(f"the catalog has no snapshot at {at} (before its first one, "
                               "or expired by catalog_maintenance)") from None
        raise attach_error(location, exc) from None


def _refuse_data_of_another_lake(con: duckdb.DuckDBPyConnection,
                                 location: LakeLocation) -> None:
    """A lake that has never committed (its metadata is new) over a data path that already
    holds Parquet files is refused: those files are another lake's (a typo'd metadata path, a
    relative home run from another folder), and maintenance would delete them as orphans."""
    alias = con.execute("SELECT current_database()").fetchall()[0][0]  # the lake just USEd
    if con.execute(f'SELECT id FROM "{alias}".current_snapshot()').fetchall()[0][0]:
        return
    found = con.execute("SELECT file FROM glob(?) LIMIT 1",
                        [location.data.rstrip("/") + "/**/*.parquet"]).fetchall()
    if found:
        raise CatalogError(
            f"the catalog ({location.describe()}) has new metadata but its data path already "
            f"holds Parquet files ({found[0][0]}), another catalog's: check {METADATA_SETTING} "
            f"and {DATA_SETTING} (a relative MEDIA_PIPELINE_HOME is relative to the folder the "
            "command runs in); a new catalog needs an empty data path")


def attach_error(location: LakeLocation, exc: BaseException | str) -> CatalogError:
    """One line: where the lake is (no password), the setting to check, DuckDB's reason."""
    setting = METADATA_SETTING
    if (location.data_on_s3 and "s3" in str(exc).lower()) or "DATA_PATH" in str(exc):
        setting = DATA_SETTING
    message = exc if isinstance(exc, str) else _first_line(exc)
    for secret in _secrets(location):
        message = message.replace(secret, "***")
    return CatalogError(f"cannot attach the catalog ({location.describe()}; check {setting}): "
                        f"{message}")


def _secrets(location: LakeLocation) -> list[str]:
    found = [location.s3_secret_access_key, location.s3_session_token]
    if location.is_postgres:
        found.append(_postgres_url(location.metadata).password)
    return [str(value) for value in found if value]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
