"""Fixtures shared by the catalog's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A MEDIA_PIPELINE_HOME that does not exist yet (the catalog is made on first open)."""
    return tmp_path / "home"
