"""What an analyst pastes into plain DuckDB to read the catalog (`media-pipeline sql`).

The statements load the extensions from the installed 1.5.5 wheels (the same files the library
loads, signature checks on) and attach the lake read-only as ``lake``. Passwords and S3 keys are
left out: libpq reads ``PGPASSWORD``; the S3 secret says where to fill in the keys.
"""

from __future__ import annotations

from media_pipeline.catalog import lake
from media_pipeline.catalog.lake import LakeLocation

__all__ = ["analyst_statements", "python_snippet"]


def analyst_statements(location: LakeLocation) -> list[str]:
    """The SQL statements, in order, for DuckDB 1.5.5 (CLI or Python)."""
    return lake.load_statements(location) + lake.attach_statements(location, read_only=True)


def python_snippet(location: LakeLocation) -> str:
    """Three lines of Python: import, connect, run the statements."""
    sql = "; ".join(analyst_statements(location))
    return (f"import duckdb  # duckdb=={lake.DUCKDB_VERSION}\n"
            "con = duckdb.connect()\n"
            f"con.execute({sql!r})")
