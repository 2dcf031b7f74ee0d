"""The child process that runs one analyst query under hard limits (see ``analyst_query``).

Run as a script by path, never imported: the memory limit must be set before DuckDB (or
anything else large) is loaded, so this file imports only the standard library first. It reads
one JSON line of settings and then the SQL from stdin, and writes a pickle of ``{"columns",
"rows"}`` or ``{"error", "message"}`` to stdout. It reads no environment.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import threading
import time
from typing import Any

# DuckDB's own memory_limit does not bound everything (a huge list literal ignores it); the
# process limit does, and turns the overrun into an out-of-memory error.
HEADROOM = 256 * 1024 * 1024


def _limit_memory(limit: int) -> None:
    try:  # RLIMIT_DATA counts mmap'ed memory on Linux >= 4.7
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit + 1024**3, limit + 1024**3))


def _connect(path: str) -> Any:
    import duckdb

    deadline = time.monotonic() + 30
    while True:
        try:
            return duckdb.connect(path, read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _attach(statements: list[str]) -> Any:
    """The lake, attached read-only by the parent's statements (``--at``: as of a snapshot)."""
    import duckdb

    con = duckdb.connect(config={"allow_unsigned_extensions": False,
                                 "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    for statement in statements:
        con.execute(statement)
    return con


def run(cfg: dict[str, Any], sql: str) -> dict[str, Any]:
    _limit_memory(int(cfg["memory"]) + HEADROOM)
    import duckdb

    try:
        con = _attach(cfg["statements"]) if "statements" in cfg else _connect(cfg["path"])
        # The lake's data files stay readable once file access is off; nothing else is.
        allowed = ", ".join("'" + p.replace("'", "''") + "'" for p in cfg.get("allowed", []))
        if allowed:
            con.execute(f"SET allowed_directories = [{allowed}]")
        # Read-only: no files written (no spilling either), nothing else attached, and the
        # limits cannot be changed by the query itself.
        for statement in (f"SET memory_limit = '{int(cfg['memory']) // 2**20}MiB'",
                          f"SET threads = {int(cfg['threads'])}",
                          "SET temp_directory = ''",
                          "SET enable_external_access = false",
                          "SET lock_configuration = true"):
            con.execute(statement)
    except (duckdb.Error, MemoryError) as exc:
        return {"error": "open", "message": str(exc).splitlines()[0] if str(exc) else ""}
    timer = threading.Timer(float(cfg["timeout"]), con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        return {"columns": columns, "rows": cursor.fetchall()}
    except duckdb.InterruptException:
        return {"error": "timeout"}
    except (duckdb.OutOfMemoryException, MemoryError):
        return {"error": "memory"}
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "bad_alloc" in message or "Out of Memory" in message:
            return {"error": "memory"}
        return {"error": "sql", "message": message}
    finally:
        timer.cancel()
        timer.join()  # a thread still alive at exit is unwound by force: the process aborts


def main() -> None:
    cfg = json.loads(sys.stdin.readline())
    out = run(cfg, sys.stdin.read())
    try:
        data = pickle.dumps(out)
    except MemoryError:
        data = pickle.dumps({"error": "memory"})
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    # The answer is out: skip the interpreter's teardown of DuckDB's threads.
    os._exit(0)


if __name__ == "__main__":
    main()
