"""Catalog SQL for the application API: namespaces, members, uploads, visibility, tags and
collections. Mixed into :class:`media_pipeline.catalog.Catalog`; uses ``self.con``."""

from __future__ import annotations

import duckdb


class ApplicationSQL:
    con: duckdb.DuckDBPyConnection
