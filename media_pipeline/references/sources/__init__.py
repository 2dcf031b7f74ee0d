"""Content sources: where the CMS's content lives, read as a stream of documents.

Configured in a YAML file (``settings.content_sources``, env ``MEDIA_PIPELINE_SOURCES``; the
format is in docs/content-sources.md). Each source is ``sql``, ``files`` or ``http`` and yields
:class:`~media_pipeline.references.document.Document` objects, or raises :class:`SourceError`.
"""

from __future__ import annotations

from media_pipeline.references.sources.base import ContentSource, Progress, SourceError
from media_pipeline.references.sources.config import (
    SourceConfigError,
    load_sources,
    load_sources_text,
    sources_from_settings,
)
from media_pipeline.references.sources.files import FilesSource
from media_pipeline.references.sources.http import HttpSource
from media_pipeline.references.sources.sql import SqlSource

__all__ = [
    "ContentSource",
    "FilesSource",
    "HttpSource",
    "Progress",
    "SourceConfigError",
    "SourceError",
    "SqlSource",
    "load_sources",
    "load_sources_text",
    "sources_from_settings",
]
