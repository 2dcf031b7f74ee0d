"""Small JPEG thumbnails made from decoded pixels (never from the file's own bytes, so an SVG or
HTML file cannot reach the report through a thumbnail)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

THUMBNAIL_SIDE = 160
_QUALITY = 75


def make_thumbnail(image: Image.Image) -> dict[str, Any]:
    """``{"jpeg", "width", "height"}`` of a copy of ``image`` fitting THUMBNAIL_SIDE pixels."""
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=_QUALITY, optimize=True)  # no EXIF or other metadata
    return {"jpeg": out.getvalue(), "width": small.width, "height": small.height}
