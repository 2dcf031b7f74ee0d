"""Running the assets in-process, for `media-pipeline run` and the demo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from media_pipeline.defs.ai import ai_analysis, ai_service_status
from media_pipeline.defs.assets import OBJECT_CATALOG_ASSETS
from media_pipeline.defs.checks import OBJECT_CATALOG_CHECKS
from media_pipeline.defs.resources import resources_from_env

# What `media-pipeline run` materializes by default: the nightly reconciliation. AI analysis is
# its own (hourly) job: `--select ai_analysis` or `media-pipeline analyze`.
DEFAULT_SELECTION = tuple(a.key.to_user_string() for a in OBJECT_CATALOG_ASSETS)


@dataclass
class RunSummary:
    success: bool
    run_id: str
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_descriptions: dict[str, str] = field(default_factory=dict)
    failure: str | None = None


def instance_for_cli() -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME when set, else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_assets(
    selection: Sequence[str] | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    log_level: str = "WARNING",
    run_config: dict[str, Any] | None = None,
) -> RunSummary:
    """Materialize the object-catalog assets (or a selection) with their checks.

    Dagster's console logger is set to ``log_level``: the CLI prints its own summary.
    """
    defs = dg.Definitions(
        assets=[*OBJECT_CATALOG_ASSETS, ai_analysis],
        asset_checks=[*OBJECT_CATALOG_CHECKS, ai_service_status],
        jobs=[
            dg.define_asset_job(
                "cli_run",
                selection=dg.AssetSelection.assets(*(selection or DEFAULT_SELECTION)),
            )
        ],
        resources=resources or resources_from_env(),
    )
    job = defs.resolve_job_def("cli_run")
    result = job.execute_in_process(
        instance=instance or instance_for_cli(),
        raise_on_error=False,
        run_config={**(run_config or {}),
                    "loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    summary = RunSummary(success=result.success, run_id=result.run_id)
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat is None:
            continue
        summary.materialized[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    for evaluation in result.get_asset_check_evaluations():
        name = evaluation.check_name
        summary.checks[name] = evaluation.passed
        if evaluation.description:
            summary.check_descriptions[name] = evaluation.description
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data is not None:
                err = event.step_failure_data.error
                cause = err.cause if err is not None and err.cause is not None else err
                summary.failure = (
                    f"{event.step_key}: {cause.message.strip()}" if cause else event.step_key
                )
                break
    return summary
