"""Which content sources a purge must have seen scanned: the ones in the YAML file, enabled or
disabled (a disabled one until it is retired), besides those the catalog remembers."""

from __future__ import annotations

from media_pipeline.errors import SourcesUnavailable  # noqa: F401
from media_pipeline.settings import Settings


def enabled_source_names(settings: Settings) -> list[str]:
    """Names of the enabled content sources (none configured: an empty list, API references
    only). A configured file that cannot be loaded raises, so a purge fails closed."""
    return sorted(n for n, enabled in _configured(settings) if enabled)


def disabled_source_names(settings: Settings) -> list[str]:
    """Names of the content sources configured with ``enabled: false``. A purge still waits
    for each until it is retired (``media-pipeline sources retire``): disabling a source is
    not retiring it."""
    return sorted(n for n, enabled in _configured(settings) if not enabled)


def _configured(settings: Settings) -> list[tuple[str, bool]]:
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
    return [(s.name, bool(getattr(s, "enabled", True))) for s in sources]
