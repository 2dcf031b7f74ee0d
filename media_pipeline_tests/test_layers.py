"""The layers import downwards only: the application API and the stages work without Dagster,
and the application API does not load the batch pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def loaded_after_import(module: str) -> set[str]:
    code = (f"import json, sys; import {module}; "
            "json.dump(sorted(sys.modules), sys.stdout)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)
    return set(json.loads(out.stdout))


def test_the_application_api_loads_neither_the_stages_nor_dagster() -> None:
    loaded = loaded_after_import("media_pipeline.library")
    assert "media_pipeline.catalog" in loaded
    assert not {"media_pipeline.pipeline", "media_pipeline.stages", "dagster"} & loaded


@pytest.mark.parametrize("module", ["media_pipeline.stages", "media_pipeline.health"])
def test_the_library_layers_work_without_dagster(module: str) -> None:
    loaded = loaded_after_import(module)
    assert "dagster" not in loaded and not any(m.startswith("media_pipeline.defs") for m in loaded)
