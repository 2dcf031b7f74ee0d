"""Analysts' SQL (`media-pipeline query`), bounded in time and memory.

The query runs in a child process (``catalog/query_child.py``) on the live catalog attached
read-only (DuckLake's ``READ_ONLY``), with no file access beyond the catalog's own, with
``MEDIA_PIPELINE_QUERY_THREADS`` threads, a process memory limit of
``MEDIA_PIPELINE_QUERY_MEMORY`` (plus a little headroom) and an interrupt after
``MEDIA_PIPELINE_QUERY_TIMEOUT`` seconds; the parent kills it a few seconds later if the
interrupt did not stop it. Neither DuckDB's ``memory_limit`` nor its interrupt is a hard bound
on its own; a separate process is, and this process (a CLI, a web app) keeps its own memory.

``at`` (``query --at``): the child attaches the lake as of that snapshot id or time instead,
read-only, with only the lake's data files readable.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from media_pipeline.catalog.lake import attach_error, session_setup
from media_pipeline.errors import CatalogError, QueryFailed  # noqa: F401
from media_pipeline.settings import Settings

CHILD = Path(__file__).with_name("catalog") / "query_child.py"
KILL_GRACE = 5.0


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def run_query(settings: Settings, sql: str, at: int | datetime | None = None,
              ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` on the live catalog, read-only (``at``: on the catalog as of that DuckLake
    snapshot id or time); returns (columns, rows)."""
    location = settings.catalog_location
    if not location.is_postgres and not Path(location.metadata).exists():
        raise CatalogError(f"no catalog at {location.metadata}: run `media-pipeline run` or "
                           "`media-pipeline demo` first")
    cfg: dict[str, Any] = {"lake": session_setup(location, read_only=True, at=at),
           "memory": settings.query_memory,
           "threads": settings.query_threads, "timeout": settings.query_timeout}
    timed_out = (f"query stopped after {settings.query_timeout:g} s "
                 "(MEDIA_PIPELINE_QUERY_TIMEOUT)")
    too_big = (f"query stopped: it needs more than {_size(settings.query_memory)} "
               "(MEDIA_PIPELINE_QUERY_MEMORY)")
    try:
        done = subprocess.run([sys.executable, "-I", str(CHILD)],
                              input=(json.dumps(cfg) + "\n" + sql).encode(),
                              capture_output=True, timeout=settings.query_timeout + KILL_GRACE,
                              check=False)
    except subprocess.TimeoutExpired:
        raise QueryFailed(timed_out) from None
    if done.returncode in (-signal.SIGKILL, -signal.SIGABRT, -signal.SIGSEGV):
        raise QueryFailed(too_big)  # an allocation the limit refused, outside DuckDB's checks
    if done.returncode != 0 or not done.stdout:
        tail = done.stderr.decode(errors="replace").strip().splitlines()
        raise QueryFailed(f"query failed: {tail[-1] if tail else f'exit {done.returncode}'}")
    out = pickle.loads(done.stdout)  # our own child's output
    error = out.get("error")
    if error == "timeout":
        raise QueryFailed(timed_out)
    if error == "memory":
        raise QueryFailed(too_big)
    if error == "attach" and at is not None and "No snapshot found" in out.get("message", ""):
        raise QueryFailed(f"the catalog has no snapshot at {at} (before its first one, or "
                          "expired by catalog_maintenance)")
    if error == "attach":
        raise attach_error(location, str(out.get("message", "")))
    if error:
        raise QueryFailed(f"query failed: {out.get('message', '')}")
    return list(out["columns"]), [tuple(r) for r in out["rows"]]
