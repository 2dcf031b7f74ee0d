"""media-pipeline: media file management for S3 (catalog, fingerprints, duplicates, references,
safe cleanup, AI analysis).

The public API is what ``__all__`` lists. ``import media_pipeline`` stays light: the errors and
the enums load at once, the rest (the library, the AI service, the settings, the records) on
first use, so a web application pays for what it uses and never for Dagster.

    from media_pipeline import MediaLibrary, Settings, PermissionDenied

    library = MediaLibrary(Settings.from_env())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from media_pipeline.errors import (
    AclNotSupported,
    AIServiceError,
    AIServiceUnavailable,
    CatalogConflict,
    CatalogError,
    ConfigurationError,
    Conflict,
    DemoError,
    EmbeddedServerUnavailable,
    EngineUnavailable,
    ExpiryTooLong,
    InvalidFile,
    InvalidInput,
    InventoryError,
    LifecycleError,
    MalformedMessage,
    MediaPipelineError,
    MediaUnavailable,
    NotFound,
    ObjectExists,
    ObjectGone,
    ObjectNotFound,
    PermissionDenied,
    QueryFailed,
    Refused,
    ServiceError,
    ServiceUnavailable,
    SettingsError,
    SourceConfigError,
    SourceError,
    SourcesUnavailable,
    StorageError,
    UnknownMedia,
    UnreadableImageError,
    UnreadableInput,
    UnsafeKey,
    UnsafeUrl,
    ValidationFailed,
)
from media_pipeline.kinds import MediaStatus, PurgeVersions, ScanState, Visibility

if TYPE_CHECKING:
    from media_pipeline.access import Role
    from media_pipeline.ai.service import MediaAIService
    from media_pipeline.library import (
        Collection,
        CollectionItem,
        MediaLibrary,
        References,
    )
    from media_pipeline.lifecycle import DeleteOutcome, PurgeReport
    from media_pipeline.records import MediaFile
    from media_pipeline.settings import Settings

# Loaded on first use (PEP 562): name -> the module that defines it.
_LAZY = {
    "MediaLibrary": "media_pipeline.library",
    "MediaFile": "media_pipeline.records",
    "Collection": "media_pipeline.library",
    "CollectionItem": "media_pipeline.library",
    "References": "media_pipeline.library",
    "MediaAIService": "media_pipeline.ai.service",
    "Settings": "media_pipeline.settings",
    "Role": "media_pipeline.access",
    "DeleteOutcome": "media_pipeline.lifecycle",
    "PurgeReport": "media_pipeline.lifecycle",
}

__all__ = [
    "AIServiceError",
    "AIServiceUnavailable",
    "AclNotSupported",
    "CatalogConflict",
    "CatalogError",
    "Collection",
    "CollectionItem",
    "ConfigurationError",
    "Conflict",
    "DeleteOutcome",
    "DemoError",
    "EmbeddedServerUnavailable",
    "EngineUnavailable",
    "ExpiryTooLong",
    "InvalidFile",
    "InvalidInput",
    "InventoryError",
    "LifecycleError",
    "MalformedMessage",
    "MediaAIService",
    "MediaFile",
    "MediaLibrary",
    "MediaPipelineError",
    "MediaStatus",
    "MediaUnavailable",
    "NotFound",
    "ObjectExists",
    "ObjectGone",
    "ObjectNotFound",
    "PermissionDenied",
    "PurgeReport",
    "PurgeVersions",
    "QueryFailed",
    "References",
    "Refused",
    "Role",
    "ScanState",
    "ServiceError",
    "ServiceUnavailable",
    "Settings",
    "SettingsError",
    "SourceConfigError",
    "SourceError",
    "SourcesUnavailable",
    "StorageError",
    "UnknownMedia",
    "UnreadableImageError",
    "UnreadableInput",
    "UnsafeKey",
    "UnsafeUrl",
    "ValidationFailed",
    "Visibility",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'media_pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
