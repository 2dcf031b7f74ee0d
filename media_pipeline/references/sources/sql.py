"""A SQL database as a content source (PostgreSQL, MySQL/MariaDB, SQLite via SQLAlchemy).

Rows are streamed through a server-side cursor (``stream_results`` + ``yield_per``), so memory
stays bounded however many rows the query returns, and the connection is opened read-only where
the database supports it: scanning content must never be able to change it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, RowMapping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from media_pipeline.redaction import (
    UnsafeUrl,
    database_url_secrets,
    parse_database_url,
    redact_database_url,
)
from media_pipeline.references.document import Document
from media_pipeline.references.sources.base import ContentSource, SourceError

QUERY_COLUMNS = ("content_type", "content_id", "text")
DEFAULT_BATCH_SIZE = 1000
CONNECT_TIMEOUT = 10


def redact_url(url: str | URL) -> str:
    """The URL with its password and secret query values replaced by ``***`` (parsed, see
    :mod:`media_pipeline.redaction`)."""
    return redact_database_url(url)


def cell_text(value: Any) -> str:
    """A column value as document text: NULL is empty, bytes are decoded, JSON is serialized."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class SqlSource(ContentSource):
    """Documents from a query (columns content_type, content_id, text [, format]) or a table.

    Table mode names the id column and one or more text columns, which are joined with newlines;
    every row gets the configured ``content_type``.
    """

    kind = "sql"

    def __init__(
        self,
        name: str,
        url: str | URL,
        *,
        query: str | None = None,
        table: str | None = None,
        schema: str | None = None,
        id_column: str | None = None,
        text_columns: Sequence[str] = (),
        where: str | None = None,
        content_type: str | None = None,
        format: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        enabled: bool = True,
    ) -> None:
        super().__init__(name, enabled=enabled)
        if (query is None) == (table is None):
            raise ValueError("give exactly one of query or table")
        if table is not None and (id_column is None or not text_columns or not content_type):
            raise ValueError("table mode needs id_column, text_columns and content_type")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        # Parsed once; never formatted with str() or repr(), which show ?password=.
        try:
            self.url: URL = parse_database_url(url)
        except UnsafeUrl:
            if enabled:
                raise
            # A disabled source may name variables that are not set: it is never read.
            self.url = URL.create("unresolved")
        self.query = query
        self.table = table
        self.schema = schema
        self.id_column = id_column
        self.text_columns = tuple(text_columns)
        self.where = where
        self.content_type = content_type
        self.format = format
        self.batch_size = batch_size

    def describe(self) -> str:
        what = f"table {self.schema + '.' if self.schema else ''}{self.table}" if self.table \
            else "query"
        return f"sql {redact_url(self.url)} ({what})"

    def _secrets(self) -> Iterable[str]:
        return database_url_secrets(self.url)

    def _statement(self) -> sa.Executable:
        if self.query is not None:
            # The query is taken verbatim: text() would read ':30' in '12:30' as a parameter.
            return sa.text(self.query.replace(":", "\\:"))
        assert self.table is not None and self.id_column is not None
        names = (self.id_column, *self.text_columns)
        columns: list[sa.ColumnClause[Any]] = [sa.column(n) for n in names]
        statement = sa.select(*columns).select_from(
            sa.table(self.table, *columns, schema=self.schema))
        if self.where:
            statement = statement.where(sa.text(self.where))
        return statement

    def _engine(self) -> Engine:
        url = self.url
        if _missing_sqlite_file(url):
            # SQLite would create an empty database and report "no such table" instead.
            raise SourceError(self.name, f"SQLite database {url.database} does not exist")
        try:
            return sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(url))
        except (SQLAlchemyError, ImportError) as exc:
            raise SourceError(self.name, f"cannot use {redact_url(self.url)}: {exc}") from None

    def _documents(self) -> Iterator[Document]:
        engine = self._engine()
        try:
            with engine.connect() as connection:
                _make_read_only(connection)
                self._check_table_columns(connection)
                streaming = connection.execution_options(
                    stream_results=True, yield_per=self.batch_size)
                result = streaming.execute(self._statement())
                self._check_columns(result.keys())
                yield from self._rows_to_documents(result.mappings())
        except SQLAlchemyError as exc:
            raise SourceError(self.name, f"{redact_url(self.url)}: {_short(exc)}") from None
        finally:
            engine.dispose()

    def _rows_to_documents(self, rows: Iterable[RowMapping]) -> Iterator[Document]:
        for number, row in enumerate(rows, 1):
            yield self._document(row, number)

    def _check_table_columns(self, connection: Connection) -> None:
        """Table mode: every configured column exists. A renamed text column must fail the
        scan, never read as empty text (SQLite even reads an unknown quoted name as a string)."""
        if self.table is None:
            return
        try:
            found = sa.inspect(connection).get_columns(self.table, schema=self.schema)
        except sa.exc.NoSuchTableError:
            raise SourceError(self.name, f"table {self.table!r} does not exist") from None
        present = {str(c["name"]).lower() for c in found}
        assert self.id_column is not None
        missing = [c for c in (self.id_column, *self.text_columns) if c.lower() not in present]
        if missing:
            raise SourceError(self.name, f"column {', '.join(map(repr, missing))} not in table "
                                         f"{self.table!r} (renamed?)")

    def _check_columns(self, keys: Iterable[str]) -> None:
        if self.query is None:
            return
        present = {k.lower() for k in keys}
        required = [c for c in QUERY_COLUMNS if not (c == "content_type" and self.content_type)]
        missing = [c for c in required if c not in present]
        if missing:
            raise SourceError(self.name, f"the query must return columns {', '.join(required)}; "
                                         f"missing {', '.join(missing)}")

    def _document(self, row: RowMapping, number: int) -> Document:
        """The row as a document. A row without a content id (NULL or empty) or without a
        content type (NULL or empty in the query and none configured) is an error for the whole
        source: skipping it would drop its references silently, and a file only it uses could
        be purged."""
        if self.query is None:
            assert self.id_column is not None
            id_name = self.id_column
            content_id = row[id_name]
            text = "\n".join(cell_text(row[c]) for c in self.text_columns if row[c] is not None)
            content_type: Any = self.content_type
            format = self.format
        else:
            id_name = "content_id"
            lowered = {k.lower(): v for k, v in row.items()}
            content_id = lowered["content_id"]
            text = cell_text(lowered["text"])
            content_type = lowered.get("content_type") or self.content_type
            format = lowered.get("format") or self.format
        content_id = "" if content_id is None else cell_text(content_id)
        if not content_id:
            raise SourceError(self.name, f"row {number} has no content id (column {id_name!r} "
                                         "is NULL or empty); every row must name its content")
        if content_type is None or str(content_type) == "":
            raise SourceError(self.name, f"row {number} (content id {content_id[:100]!r}) has no "
                                         "content_type and the source configures none")
        return Document(str(content_type), content_id, text, str(format))


def _missing_sqlite_file(url: URL) -> bool:
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return False
    return not database.startswith("file:") and not Path(database).is_file()


def _connect_args(url: URL) -> dict[str, Any]:
    if url.get_backend_name() in {"postgresql", "mysql", "mariadb"}:
        return {"connect_timeout": CONNECT_TIMEOUT}
    return {}


def _make_read_only(connection: Connection) -> None:
    """Start the scan's transaction read-only, in each database's own way."""
    backend = connection.dialect.name
    if backend == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif backend in {"mysql", "mariadb"}:
        # Applies to the transaction the scan's query starts (the connection is not pooled).
        connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
    elif backend == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")


def _short(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line, without SQLAlchemy's statement dump and link."""
    original = getattr(exc, "orig", None)
    message = str(original if original is not None else exc).strip()
    first = message.splitlines()[0] if message else type(exc).__name__
    name = type(original).__name__ if original is not None else type(exc).__name__
    return f"{name}: {first[:500]}"
