"""STAND-IN until the lake port lands (then ``Catalog.open`` on the lake does this): today's
migrations applied to a DuckLake, which has no PRIMARY KEY and no fixed-size arrays
(``FLOAT[64]`` becomes the list ``FLOAT[]``). Used by ``catalog migrate`` and the tests of the
history and maintenance modules.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb

from media_pipeline.catalog.migrations import MIGRATIONS

_PRIMARY_KEY = re.compile(r",\s*PRIMARY KEY\s*\([^)]*\)|\s+PRIMARY KEY", re.IGNORECASE)
_FIXED_ARRAY = re.compile(r"(FLOAT|DOUBLE|INTEGER)\[\d+\]", re.IGNORECASE)


def lake_sql(sql: str) -> str:
    return _FIXED_ARRAY.sub(r"\1[]", _PRIMARY_KEY.sub("", sql))


def ensure_schema(con: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations the lake lacks; returns its schema version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER NOT NULL, description VARCHAR, applied_at TIMESTAMPTZ)")
    rows = con.execute("SELECT max(version) FROM schema_version").fetchall()  # all: see history
    current = int(rows[0][0]) if rows[0][0] is not None else 0
    for version, description, sql in sorted(MIGRATIONS):
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(lake_sql(sql))
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                        [version, description, datetime.now(UTC)])
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        current = version
    return current
