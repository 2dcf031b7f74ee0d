"""Catalog SQL for the reference index, content-source scans and the lifecycle (delete, restore,
purge). Mixed into :class:`media_pipeline.catalog.Catalog`; uses ``self.con``."""

from __future__ import annotations

import duckdb


class ReferenceSQL:
    con: duckdb.DuckDBPyConnection
