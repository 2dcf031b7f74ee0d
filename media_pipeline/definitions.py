"""Everything Dagster sees: the definitions of each domain under ``defs/``, merged here, with
the nightly reconciliation job and schedule (which span the domains) and the resources.

``defs`` is loaded lazily by `dagster dev` (workspace.yaml / pyproject.toml): nothing reads the
environment when this module is imported. The definitions are built by a function because the
per-source reference assets come from the content-sources file the settings name; `media-
pipeline run` builds them for the settings of its own process.
"""

import dataclasses
import hashlib
import json
import warnings
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from media_pipeline.defs import (
    ai,
    catalog,
    dedup,
    fingerprints,
    health,
    ingest,
    inventory,
    lifecycle,
    references,
)
from media_pipeline.defs.resources import default_resources
from media_pipeline.errors import SettingsError
from media_pipeline.references.sources.config import sources_from_settings
from media_pipeline.settings import Settings

NIGHTLY_LIFECYCLE = ("auto_soft_delete",)

# Dagster passes its own `owners` to SensorDefinition and warns about it being beta; nothing of
# ours uses owners.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer")


def build_definitions(settings: Settings | None = None,
                      extra_jobs: list[Any] | None = None,
                      resources: dict[str, Any] | None = None) -> dg.Definitions:
    """The merged definitions for ``settings`` (default: this process's environment, now)."""
    settings = settings or Settings.from_env()
    nightly_reconciliation = dg.define_asset_job(
        "nightly_reconciliation",
        selection=(dg.AssetSelection.groups(inventory.GROUP)
                   | dg.AssetSelection.groups(references.GROUP_REFERENCES)
                   | dg.AssetSelection.assets(*NIGHTLY_LIFECYCLE)),
        description="Inventory the bucket, catalog it, fingerprint what changed, find "
                    "duplicates, rebuild the reference index, auto soft-delete (when enabled).",
    )
    return dg.Definitions.merge(
        inventory.defs,
        fingerprints.defs,
        dedup.defs,
        references.build_defs(settings),
        lifecycle.defs,
        ai.defs,
        health.defs,
        ingest.build_defs(settings),
        catalog.defs,
        dg.Definitions(
            jobs=[nightly_reconciliation, *(extra_jobs or [])],
            schedules=[dg.ScheduleDefinition(
                name="nightly_reconciliation_schedule",
                job=nightly_reconciliation,
                cron_schedule="0 2 * * *",
                execution_timezone="UTC",
                # On as soon as a daemon runs: it catalogs; it deletes nothing from S3.
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )],
            resources=resources if resources is not None else default_resources(),
            executor=executor_for(settings),
        ),
    )


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """The executor ``MEDIA_PIPELINE_EXECUTOR`` names. Celery's broker, result backend and
    queue come from the settings, so a worker started with the same environment
    (`media-pipeline worker`) listens where the runs send their steps; Kubernetes' job
    executor takes its image and namespace from the run launcher (the Helm chart)."""
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "multiprocess":
        return dg.multi_or_in_process_executor  # Dagster's default: run config may pick either
    if settings.executor == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise SettingsError(
                "MEDIA_PIPELINE_EXECUTOR=k8s needs dagster-k8s: "
                "pip install 'media-pipeline[kubernetes]'") from None
        return k8s_job_executor  # each step a Kubernetes Job (docs/distributed.md)
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise SettingsError(
            "MEDIA_PIPELINE_EXECUTOR=celery needs dagster-celery: "
            "pip install 'media-pipeline[distributed]'") from None
    return celery_executor.configured(celery_config(settings), name="celery")


# Settings that may differ between the machines of one deployment (deployment_identity).
_MACHINE_LOCAL = frozenset({
    "access_key_id", "secret_access_key", "session_token", "profile_name", "home",
    "catalog_metadata", "catalog_data", "content_sources", "fingerprint_workers",
    "ai_service_api_key", "query_timeout", "query_memory", "query_threads", "executor",
    "celery_broker", "celery_backend", "celery_queue"})


def celery_queue_name(settings: Settings) -> str:
    """``MEDIA_PIPELINE_CELERY_QUEUE``, else a name derived from every setting that decides
    what a step does (:func:`deployment_identity`): a worker whose settings differ — another
    bucket or catalog, a content source reading other content, another retention — listens on
    another queue, so it never runs this deployment's steps (a scan the purge then trusts, the
    purge itself) with its own settings; the run waits instead. No secret goes into it."""
    if settings.celery_queue:
        return settings.celery_queue
    identity = json.dumps(deployment_identity(settings), sort_keys=True, default=str)
    return "media-pipeline-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def deployment_identity(settings: Settings) -> dict[str, Any]:
    """The settings a step's result depends on, without secrets: every field but the machine's
    own (credentials, home, thread counts, the executor's), the catalog as ``describe()`` says
    it and the content sources as they resolve here (their ``describe()``: a ``${VAR}`` or a
    relative path that resolves elsewhere differs)."""
    identity = {f.name: _without_userinfo(getattr(settings, f.name))
                for f in dataclasses.fields(settings) if f.name not in _MACHINE_LOCAL}
    identity["catalog"] = settings.catalog_location.describe()
    identity["content_sources"] = sorted(
        [source.name, type(source).__name__, source.describe()]
        for source in sources_from_settings(settings))
    return identity


def _without_userinfo(value: Any) -> Any:
    """A URL setting without the user and password it may carry (``https://u:p@host/``)."""
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return value


def celery_config(settings: Settings) -> dict[str, Any]:
    """dagster-celery's executor config for ``settings`` (the broker URL may hold a password:
    never print it)."""
    config: dict[str, Any] = {"backend": settings.celery_backend,
                              "config_source": {"task_default_queue": celery_queue_name(settings)}}
    if settings.celery_broker:
        config["broker"] = settings.celery_broker
    return config


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev` loads."""
    return build_definitions()
