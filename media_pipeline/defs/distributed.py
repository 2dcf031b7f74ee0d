"""Running a job's steps on Celery workers (``MEDIA_PIPELINE_EXECUTOR=celery``).

The launching process (`media-pipeline run`, the Dagster UI or daemon) sends each step to the
broker; a worker (`media-pipeline worker`, on any machine with the same settings) loads the
definitions, runs the step and writes its events to the run's Dagster instance. So every
process needs the same ``MEDIA_PIPELINE_*`` settings (one shared catalog: PostgreSQL metadata,
data on S3) and the same Dagster instance: ``DAGSTER_HOME`` whose ``dagster.yaml`` puts run and
event storage in PostgreSQL when the workers are on other machines (dagster-postgres), or a
local folder when they all run on this one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from media_pipeline.errors import SettingsError

__all__ = ["DAGSTER_HOME_NEEDED", "all_assets_job", "dagster_instance", "nightly_job",
           "reconstructable_job"]

DAGSTER_HOME_NEEDED = (
    "MEDIA_PIPELINE_EXECUTOR=celery needs DAGSTER_HOME: the Dagster instance the run and its "
    "workers share (the same on every machine)")


def nightly_job() -> dg.JobDefinition:
    """The nightly reconciliation, as the definitions of this process's settings have it (a
    worker rebuilds it by calling this)."""
    from media_pipeline.definitions import build_definitions

    return build_definitions().resolve_job_def("nightly_reconciliation")


def all_assets_job() -> dg.JobDefinition:
    """Every asset, for a run of a selection (`media-pipeline run --select`)."""
    from media_pipeline.definitions import build_definitions

    job = dg.define_asset_job("all_assets", selection=dg.AssetSelection.all())
    return build_definitions(extra_jobs=[job]).resolve_job_def("all_assets")


def reconstructable_job(selection: Sequence[str] | None) -> dg.ReconstructableJob:
    return dg.reconstructable(all_assets_job if selection else nightly_job)


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The persistent instance under ``DAGSTER_HOME``, created under a lock: two processes
    creating a new instance's SQLite storage at once corrupt its migrations."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SettingsError(DAGSTER_HOME_NEEDED)
    Path(home).mkdir(parents=True, exist_ok=True)
    with open(Path(home) / ".media-pipeline-instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance
