"""Fixtures shared by the catalog's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from media_pipeline.catalog import Catalog
from media_pipeline_tests.catalog.store_helpers import two_files


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A MEDIA_PIPELINE_HOME that does not exist yet (the catalog is made on first open)."""
    return tmp_path / "home"


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A catalog with two active, unreferenced files (store_helpers.two_files: A and B)."""
    with two_files(tmp_path) as c:
        yield c
