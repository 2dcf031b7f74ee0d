"""Conflicts between catalog writers, and running a transaction again when one happens.

DuckLake retries by itself a commit that does not logically conflict with the ones before it.
Two transactions that change rows of the same data file (or create the same name) do conflict:
the second aborts with nothing applied. ``retried`` runs such a transaction body again, from its
start, on the new state; the body must change nothing but the catalog.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import duckdb

P = ParamSpec("P")
T = TypeVar("T")

# DuckLake's own retries of commits that do not logically conflict, set on every attach.
LAKE_RETRY_SETTINGS = {"ducklake_max_retry_count": 100, "ducklake_retry_wait_ms": 50,
                       "ducklake_retry_backoff": 1.5}
# Ours, of a whole transaction body after a real conflict.
# 16: with SQLite metadata any two overlapping writers conflict, and 4 application processes
# beside a nightly run exhausted 8 (~7 s of backoff) a few times a minute.
WRITE_ATTEMPTS = 16
# ... and for at least this long: with SQLite metadata a write beside 4 application processes
# and a nightly run still lost 16 draws now and then (1 of ~500 calls in 60 s); an application
# call that waits is better than one that fails.
WRITE_RETRY_SECONDS = 60.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0


def is_conflict(exc: BaseException) -> bool:
    """A transaction aborted because another one changed the same rows' file (or the same name)
    first: running it again on the new state may succeed."""
    if not isinstance(exc, duckdb.Error):
        return False
    text = str(exc).lower()
    if "conflict" in text:
        return True
    # A commit DuckLake could not make: another writer's commit came first (with SQLite
    # metadata that is "database is locked" on the stale snapshot), or created the same name.
    return isinstance(exc, duckdb.TransactionException) and (
        "failed to commit" in text or "database is locked" in text)


def retried(method: Callable[P, T]) -> Callable[P, T]:
    """A catalog or store method whose body is one transaction (``Catalog.write``, through the
    first argument's ``write``): run again when it conflicts; inside another transaction it is
    part of that one."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        catalog: Any = args[0]
        return catalog.write(lambda: method(*args, **kwargs))

    return wrapper
