"""`media-pipeline sql`: what it prints attaches the catalog in a plain DuckDB session of
another process, read-only, and reads committed rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from media_pipeline.catalog import lake
from media_pipeline.catalog.lake import TEST_TEMPLATE_ENV, LakeLocation
from media_pipeline.catalog.snippets import analyst_statements
from media_pipeline.cli import main as cli
from media_pipeline_tests.fixtures_db import *  # noqa: F403

READ = """
import duckdb, json, sys
con = duckdb.connect()
for statement in json.loads(sys.argv[1]):
    con.execute(statement)
rows = con.execute("SELECT media_id, key FROM media_files ORDER BY key").fetchall()
try:
    con.execute("INSERT INTO media_files VALUES ('x', 'y')")
    written = True
except duckdb.Error:
    written = False
print(json.dumps({"rows": rows, "written": written}))
"""


@pytest.fixture(autouse=True)
def _raw_lakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests make their own tables in a new lake: not the suite's migrated template."""
    monkeypatch.delenv(TEST_TEMPLATE_ENV, raising=False)


def _fill(location: LakeLocation) -> None:
    con = lake.connect(location)
    try:
        con.execute("CREATE TABLE media_files (media_id VARCHAR, key VARCHAR)")
        con.execute("INSERT INTO media_files VALUES ('m1', 'a.jpg'), ('m2', 'b.png')")
    finally:
        con.close()


def _in_other_process(statements: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", READ, json.dumps(statements)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_printed_statements_read_the_catalog_in_plain_duckdb(tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    _fill(LakeLocation.embedded(tmp_path))
    result = CliRunner().invoke(cli, ["sql"])
    assert result.exit_code == 0, result.output
    statements = [line.rstrip(";") for line in result.output.splitlines() if line.strip()]
    assert statements[0].startswith("LOAD '") and statements[-1] == "USE lake"
    assert any("READ_ONLY" in s for s in statements)
    out = _in_other_process(statements)
    assert out == {"rows": [["m1", "a.jpg"], ["m2", "b.png"]], "written": False}


def test_the_python_snippet_is_three_lines_that_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    _fill(LakeLocation.embedded(tmp_path))
    result = CliRunner().invoke(cli, ["sql", "--python"])
    assert result.exit_code == 0, result.output
    snippet = result.output.strip()
    assert len(snippet.splitlines()) == 3
    code = snippet + "\nprint(con.execute('SELECT count(*) FROM media_files').fetchone()[0])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def test_postgres_metadata_statements_carry_no_password(tmp_path: Path,
                                                        postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    location = LakeLocation(metadata=url, data=str(tmp_path / "data") + "/")
    _fill(location)
    with_password = LakeLocation(
        metadata=url.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@"),
        data=location.data)
    statements = analyst_statements(with_password)
    assert not any("s3cret-pw" in s for s in statements)
    # trust authentication here: the statements work as printed
    assert _in_other_process(statements)["rows"] == [["m1", "a.jpg"], ["m2", "b.png"]]


@pytest.mark.parametrize("flag", [[], ["--python"]])
def test_sql_prints_no_s3_keys(tmp_path: Path, monkeypatch, flag: list[str]) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-key")
    result = CliRunner().invoke(cli, ["sql", *flag])
    assert result.exit_code == 0, result.output
    assert "very-secret-key" not in result.output
