"""The one Definitions object, loaded by `dagster dev` (workspace.yaml / pyproject.toml)."""

from __future__ import annotations

from media_pipeline.defs.project import build_definitions

defs = build_definitions()
