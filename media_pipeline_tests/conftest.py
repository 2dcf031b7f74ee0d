"""Fixtures shared by the test modules, and how pytest-xdist shares the tests out."""

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from media_pipeline.catalog.lake import TEST_TEMPLATE_ENV
from media_pipeline_tests.fixtures_s3 import *  # noqa

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 in their environment: the CLI's rich
# console would take its width from them once, at import, and ignore the COLUMNS a test sets.
if "PYTEST_XDIST_WORKER" in os.environ:
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)

# Image embeddings for near-duplicates cost ~0.1 s an image: the tests that are about them
# (test_near_duplicates.py) turn them on; elsewhere the hash methods are enough.
os.environ.setdefault("MEDIA_PIPELINE_NEAR_DUPLICATE_EMBEDDINGS", "0")

# Modules that take longest start first, so that no worker starts one near the end.
FIRST = ("lifecycle/test_lifecycle_properties.py", "test_first_run.py", "stages/test_pipeline.py",
         "catalog/test_lake.py")
# Long modules with cheap module fixtures, whose tests are shared out one by one.
SPREAD = ("stages/test_pipeline.py", "catalog/test_lake.py", "cli/test_cli_purge_evidence.py")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (--dist loadgroup) a module's tests run in one worker, as loadfile
    would: its module fixtures (models, databases, a virtualenv) are made once; those of SPREAD
    are shared out one by one. Tests on the embedded server's default port take turns through a
    lock (fixtures_s3.DEFAULT_PORT), in whichever worker they run."""
    for item in items:
        path = item.nodeid.split("::")[0]
        if item.get_closest_marker("xdist_group") is None and not path.endswith(SPREAD):
            item.add_marker(pytest.mark.xdist_group(path))

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(FIRST) if path.endswith(name)), len(FIRST))

    items.sort(key=rank)


_TEMPLATE_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """One empty lake at the current schema, made once (before xdist starts its workers, which
    inherit the setting): each new embedded lake of the run is a copy of it. A separate process
    makes it, so that no DuckDB instance of this one holds it open."""
    global _TEMPLATE_DIR
    if TEST_TEMPLATE_ENV in os.environ:  # a worker, or set by hand
        return
    _TEMPLATE_DIR = tempfile.mkdtemp(prefix="media-pipeline-template-")
    home = Path(_TEMPLATE_DIR) / "home"
    subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from media_pipeline.catalog import Catalog\n"
         "with Catalog.open(Path(sys.argv[1])): pass", str(home)],
        check=True, timeout=300)
    metadata = home / "catalog" / "metadata.sqlite"
    con = sqlite3.connect(metadata)
    try:  # everything in the one file, nothing left in its write-ahead log
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    os.environ[TEST_TEMPLATE_ENV] = str(metadata)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _TEMPLATE_DIR is not None:
        shutil.rmtree(_TEMPLATE_DIR, ignore_errors=True)
