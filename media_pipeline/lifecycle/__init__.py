"""Soft delete, restore, force delete, auto soft-delete and purge.

Library code (no Dagster): functions take the settings, catalog and S3 client explicitly.
Nothing is ever removed from S3 except by :func:`purge`, which fails closed.
"""

from media_pipeline.errors import LifecycleError, UnknownMedia
from media_pipeline.lifecycle.actions import (
    AutoDeleteReport,
    DeleteOutcome,
    add_reference,
    auto_soft_delete,
    delete,
    references,
    remove_reference,
    restore,
)
from media_pipeline.lifecycle.purge import PurgeReport, purge
from media_pipeline.lifecycle.sources import (
    SourcesUnavailable,
    disabled_source_names,
    enabled_source_names,
)
from media_pipeline.lifecycle.unpurge import bucket_versioning, unpurge

__all__ = [
    "AutoDeleteReport",
    "DeleteOutcome",
    "LifecycleError",
    "PurgeReport",
    "SourcesUnavailable",
    "UnknownMedia",
    "add_reference",
    "auto_soft_delete",
    "bucket_versioning",
    "delete",
    "disabled_source_names",
    "enabled_source_names",
    "purge",
    "references",
    "remove_reference",
    "restore",
    "unpurge",
]
