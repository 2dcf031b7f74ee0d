"""What every store shares: the :class:`Catalog` session it works on.

A store is one domain's SQL (``catalog.objects``, ``catalog.fingerprints`` ...). It holds no
state of its own: its connection, transactions and retried writes are the Catalog's, so a store
method called inside another transaction joins it, as a Catalog method would.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

import duckdb

if TYPE_CHECKING:
    from media_pipeline.catalog.catalog import Catalog

__all__ = ["Store"]

T = TypeVar("T")


class Store:
    """One domain's queries over a Catalog session (``@retried`` methods go through
    :meth:`write`)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.catalog.con

    def transaction(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self.catalog.transaction()

    def write(self, body: Callable[[], T]) -> T:
        return self.catalog.write(body)
