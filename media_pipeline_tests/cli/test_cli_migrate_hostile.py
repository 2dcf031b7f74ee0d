"""Issue 13 (hostile review): `catalog migrate --from` a file that is not what it claims. The
export named each Parquet file after its table, so a table called "../x" or "/x" wrote a file
outside the scratch folder (and left it there); a new home folder made it fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from click.testing import CliRunner

from media_pipeline.cli import main as cli
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_s3 import env_for


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_hostile_table_names_write_nothing_outside_the_scratch_folder(
        settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = tmp_path / "hostile.duckdb"
    con = duckdb.connect(str(hostile))
    depth = "../" * 40  # up to / from wherever the export writes
    con.execute(f'CREATE TABLE "{depth}{outside}/relative" AS SELECT 1 AS x')
    con.execute(f'CREATE TABLE "{outside}/absolute" AS SELECT 2 AS x')
    con.close()
    env = env_for(settings)  # a home that does not exist yet
    line = _one_line_error(CliRunner().invoke(
        cli, ["catalog", "migrate", "--from", str(hostile)], env=env))
    assert "no table for" in line and "nothing was migrated" in line
    assert list(outside.iterdir()) == []
    assert hostile.exists()  # not renamed: nothing was migrated
    assert not list(settings.home.glob("mp-migrate-*"))


def test_files_that_are_not_catalogs_are_one_line(settings: Settings, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database\n" * 100)
    link = tmp_path / "link.duckdb"
    link.symlink_to("/etc/hostname")
    env = env_for(settings)
    for path in (garbage, link):
        line = _one_line_error(CliRunner().invoke(
            cli, ["catalog", "migrate", "--from", str(path)], env=env))
        assert "cannot read the old catalog" in line and "not a valid DuckDB" in line, line
    assert link.is_symlink() and garbage.exists()
