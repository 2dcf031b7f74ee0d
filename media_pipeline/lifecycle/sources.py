"""Which content sources a purge must have seen scanned: the enabled ones in the YAML file."""

from __future__ import annotations

from media_pipeline.errors import SourcesUnavailable  # noqa: F401
from media_pipeline.settings import Settings


def enabled_source_names(settings: Settings) -> list[str]:
    """Names of the enabled content sources (none configured: an empty list, API references
    only). A configured file that cannot be loaded raises, so a purge fails closed."""
    if settings.content_sources is None:
        return []
    try:
        from media_pipeline.references.sources import load_sources
    except ImportError as exc:
        raise SourcesUnavailable(
            f"content sources are configured ({settings.content_sources}) but cannot be "
            f"loaded: {exc}") from exc
    try:
        sources = load_sources(settings.content_sources)
    except Exception as exc:
        raise SourcesUnavailable(
            f"cannot read content sources from {settings.content_sources}: {exc}") from exc
    return sorted(s.name for s in sources if getattr(s, "enabled", True))
