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
from typing import Any

# DuckDB's own memory_limit does not bound everything (a huge list literal ignores it); the
# process limit does, and turns the overrun into an out-of-memory error.
HEADROOM = 256 * 1024 * 1024


def _limit_memory(limit: int) -> None:
    try:  # RLIMIT_DATA counts mmap'ed memory on Linux >= 4.7
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit + 1024**3, limit + 1024**3))


def _connect(lake: dict[str, Any]) -> tuple[Any, str | None]:
    """The catalog attached read-only (``lake.session_setup`` made the statements), or None and
    why not."""
    import duckdb

    con = duckdb.connect(config=lake["config"])
    try:
        for statement in lake["statements"]:
            con.execute(statement)
    except duckdb.Error as exc:
        con.close()
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return con, None


def _quoted_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# What an analyst's SELECT may call in FROM: computed rows and the catalog's own introspection.
# Everything else (read_*, glob, *_scan, query(), sqlite_attach, postgres_execute, DuckLake's
# maintenance functions) reaches files, other databases or the metadata beyond the read-only
# attach: DuckDB's allowed_directories lets a path write as well as read, does not resolve
# "../" in an s3:// URL, and an ATTACH of the metadata SQLite file is read-write.
_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree", "pragma_version",
    "pragma_table_info", "pragma_show", "pragma_database_list",
})
_LAKE_FUNCTIONS = frozenset({  # with or without "ducklake_"
    "snapshots", "current_snapshot", "last_committed_snapshot", "table_info", "list_files",
    "table_changes", "table_insertions", "table_deletions", "settings", "options",
})


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _allowed_function(name: str) -> bool:
    name = name.lower()
    return (name in _TABLE_FUNCTIONS or name.startswith("duckdb_")
            or name.removeprefix("ducklake_") in _LAKE_FUNCTIONS)


def _refusal(con: Any, sql: str) -> str | None:
    """Why ``sql`` may not run here (None: it may): only SELECTs over the catalog."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1]
        if kind != "SELECT":
            return f"the catalog is read-only here: only SELECT queries run (got {kind})"
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)",
                                      [statement.query]).fetchone()[0])
        if tree.get("error"):
            return f"the query cannot be checked: {tree.get('error_message', '')}"
        for node in _walk(tree.get("statements", [])):
            if node.get("type") == "TABLE_FUNCTION":
                name = str(node.get("function", {}).get("function_name", ""))
                if not _allowed_function(name):
                    return (f"the catalog is read-only here: {name}() reads or writes outside "
                            "it (query its tables, ducklake_snapshots, ducklake_table_info)")
            elif node.get("type") == "BASE_TABLE":
                name = str(node.get("table_name", ""))
                if any(c in name for c in "/\\:.") or node.get("catalog_name", "") not in (
                        "", "lake"):
                    return (f"the catalog is read-only here: {name!r} is not one of its "
                            "tables")
    return None


def run(cfg: dict[str, Any], sql: str) -> dict[str, Any]:
    _limit_memory(int(cfg["memory"]) + HEADROOM)
    import duckdb

    con, failed = _connect(cfg["lake"])
    if failed is not None:
        return {"error": "attach", "message": failed}
    try:
        # Read-only: no files written (no spilling either), nothing else attached, no file
        # but the catalog's own, and the limits cannot be changed by the query itself.
        for statement in (f"SET memory_limit = '{int(cfg['memory']) // 2**20}MiB'",
                          f"SET threads = {int(cfg['threads'])}",
                          "SET temp_directory = ''",
                          f"SET allowed_directories = {_quoted_list(cfg['lake']['directories'])}",
                          f"SET allowed_paths = {_quoted_list(cfg['lake']['paths'])}",
                          "SET enable_external_access = false",
                          "SET lock_configuration = true"):
            con.execute(statement)
    except (duckdb.Error, MemoryError) as exc:
        return {"error": "open", "message": str(exc).splitlines()[0] if str(exc) else ""}
    refused = _refusal(con, sql)
    if refused is not None:
        return {"error": "sql", "message": refused}
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
