"""Export every table of an old single-file catalog to Parquet (``catalog migrate``).

Run as a script by path, never imported: it may run under another DuckDB than ours (a
throwaway virtualenv with the DuckDB that wrote the file), so it needs only the standard
library and ``duckdb``. Arguments: the catalog file, the output folder. Prints one JSON object:
``{"duckdb": version, "tables": {name: {"rows": n, "file": path}}}``, or ``{"error": ...}``
with exit status 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def export(catalog: str, out: str) -> dict[str, object]:
    import duckdb

    con = duckdb.connect(catalog, read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary ORDER BY table_name").fetchall()]
        tables: dict[str, dict[str, object]] = {}
        for number, name in enumerate(names):
            # Numbered, never named after the table: a name is the file's to choose, and
            # "../x" or "/x" would put the Parquet file outside ``out``.
            target = Path(out) / f"table-{number}.parquet"
            quoted = '"' + name.replace('"', '""') + '"'
            path = str(target).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM {quoted}) TO '{path}' (FORMAT parquet)")
            rows = con.execute(f"SELECT count(*) FROM {quoted}").fetchall()[0][0]
            tables[name] = {"rows": int(rows), "file": str(target)}
        return {"duckdb": duckdb.__version__, "tables": tables}
    finally:
        con.close()


def main() -> None:
    try:
        result = export(sys.argv[1], sys.argv[2])
    except Exception as exc:  # reported to the parent as one line
        text = str(exc).strip().splitlines()
        print(json.dumps({"error": f"{type(exc).__name__}: {text[0] if text else ''}"}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
