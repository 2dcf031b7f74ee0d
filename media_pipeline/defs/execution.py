"""Running the assets in-process, for `media-pipeline run` and the demo."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from media_pipeline.definitions import build_definitions
from media_pipeline.defs.pieces import is_piece
from media_pipeline.defs.resources import RESOURCE_KEY, MediaPipelineResource, default_resources
from media_pipeline.errors import InvalidInput
from media_pipeline.redaction import http_url_secrets, scrub
from media_pipeline.settings import Settings, absolute

# What `media-pipeline run` materializes by default: the nightly reconciliation's assets. AI
# analysis is its own (hourly) job: `--select ai_analysis` or `media-pipeline analyze`; the purge
# is `media-pipeline purge` or the `purge` job.
DEFAULT_JOB = "nightly_reconciliation"


@dataclass
class RunSummary:
    success: bool
    run_id: str
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_descriptions: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    # Dagster's whole log of the run, tracebacks included (the console shows only our summary).
    log_file: str | None = None


@dg.logger(
    config_schema={"folder": str, "log_level": dg.Field(str, default_value="DEBUG")},
    description="Dagster's log of one run, to <folder>/<run id>.log.",
)
def run_file_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    folder = Path(init_context.logger_config["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    name = f"media_pipeline.run.{init_context.run_id}"
    log = logging.getLogger(name)
    log.propagate = False
    log.setLevel(init_context.logger_config["log_level"])
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    handler = logging.FileHandler(folder / f"{init_context.run_id}.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return log


def _close_run_log(run_id: str) -> None:
    log = logging.getLogger(f"media_pipeline.run.{run_id}")
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


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
    log_level: str = "CRITICAL",
    run_config: dict[str, Any] | None = None,
) -> RunSummary:
    """Materialize the nightly reconciliation's assets (or a selection) with their checks.

    Dagster's console logger is set to ``log_level`` (by default it prints nothing: the CLI
    prints its own summary and one line on failure); its whole log, tracebacks included, goes to
    ``$MEDIA_PIPELINE_HOME/logs/<run id>.log`` (``RunSummary.log_file``). The definitions are
    built for this process's settings (its content sources).
    """
    settings = Settings.from_env()
    if settings.executor == "celery":
        return _run_on_workers(selection, settings, log_level)
    resources = resources or default_resources()
    extra = ([dg.define_asset_job("cli_run", selection=dg.AssetSelection.assets(*selection))]
             if selection else [])
    defs = build_definitions(settings, extra_jobs=extra, resources=resources)
    if selection:
        _check_selection(defs, selection)
    job = defs.resolve_job_def("cli_run" if selection else DEFAULT_JOB).with_logger_defs(
        {"console": dg.colored_console_logger, "file": run_file_logger})
    # In one process the pieces of a stage (fingerprints_0 ... _f) would run one after another,
    # each paying a step's and a catalog query's overhead: their stage asset does it all in one
    # pass instead. Executors that run steps at once (Dagster's, Celery's) run the pieces.
    keys = None if selection else [
        key for key in job.asset_layer.executable_asset_keys if not is_piece(key)]
    media = resources.get(RESOURCE_KEY)
    home = (absolute(media.home) if isinstance(media, MediaPipelineResource) and media.home
            else settings.home)
    folder = home / "logs"
    result = job.execute_in_process(
        instance=instance or instance_for_cli(),
        raise_on_error=False,
        asset_selection=keys,
        run_config={**(run_config or {}),
                    "loggers": {"console": {"config": {"log_level": log_level}},
                                "file": {"config": {"folder": str(folder)}}}},
    )
    _close_run_log(result.run_id)
    return _summary(result, str(folder / f"{result.run_id}.log"))


def _check_selection(defs: dg.Definitions, selection: Sequence[str]) -> None:
    known = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    unknown = sorted(set(selection) - known)
    if unknown:
        raise InvalidInput(f"no asset named {', '.join(unknown)}; the assets are: "
                           f"{', '.join(sorted(known))}")


def _run_on_workers(selection: Sequence[str] | None, settings: Settings,
                    log_level: str) -> RunSummary:
    """The run through the configured executor (Celery): its steps on the workers, its events
    in the shared Dagster instance (``defs.distributed``). Dagster's log is that instance's
    event log (the Dagster UI shows it), not a file."""
    from media_pipeline.defs.distributed import dagster_instance, reconstructable_job

    if selection:
        _check_selection(build_definitions(settings), selection)
    with dagster_instance() as instance, dg.execute_job(
        reconstructable_job(selection),
        instance=instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey.from_user_string(name) for name in selection]
        if selection else None,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    ) as result:
        return _summary(result, None)


def _summary(result: dg.ExecuteJobResult | dg.ExecuteInProcessResult,
             log_file: str | None) -> RunSummary:
    summary = RunSummary(success=result.success, run_id=result.run_id, log_file=log_file)
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat is None:
            continue
        summary.materialized[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    for evaluation in result.get_asset_check_evaluations():
        summary.checks[evaluation.check_name] = evaluation.passed
        if evaluation.description:
            summary.check_descriptions[evaluation.check_name] = evaluation.description
    if not result.success:
        summary.failure = _first_failure(result.all_events)
    return summary


def _first_failure(events: Sequence[dg.DagsterEvent]) -> str:
    """The failed step and its error; else the run's own error (a broker refusing the run
    before any step started), its innermost cause; the broker's password never shown."""
    for event in events:
        if event.is_step_failure and event.step_failure_data is not None:
            err = event.step_failure_data.error
            cause = err.cause if err is not None and err.cause is not None else err
            return f"{event.step_key}: {cause.message.strip()}" if cause else str(event.step_key)
    for event in events:
        err = getattr(event.event_specific_data, "error", None)
        if event.is_failure and err is not None:
            while err.cause is not None:
                err = err.cause
            broker = Settings.from_env().celery_broker
            secrets = http_url_secrets(broker) if broker else set()
            return "the run: " + scrub(err.message.strip(), secrets)
    return "the run (no step failed; -v shows Dagster's log)"

