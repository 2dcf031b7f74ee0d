"""Content type from the first bytes of a file (libmagic), with an SVG correction.

libmagic recognises SVG only when ``<svg`` comes early and in a form it expects; otherwise it says
``text/xml``, ``text/html`` or ``text/plain``. Calling such a file text would skip the SVG script
check while a browser, given ``image/svg+xml``, would run its scripts. So text whose root element is
``<svg``, or text uploaded as ``.svg`` / ``image/svg+xml``, is treated as SVG.
"""

from __future__ import annotations

import re

import magic
from PIL import Image

from media_pipeline.fingerprint.validate import decode_text, extension_of, is_textual

SNIFF_BYTES = 8192
SVG_MIME = "image/svg+xml"
PDF_MIME = "application/pdf"

# Optional XML prolog, comments, doctype (with internal subset) and processing instructions, then
# an <svg> root element, possibly namespace-prefixed.
_SVG_ROOT = re.compile(
    r"\A\s*(?:<\?xml[^>]*>\s*|<!--.*?-->\s*|<!doctype[^>\[]*(?:\[.*?\])?\s*>\s*|<\?[^>]*>\s*)*"
    r"<(?:[\w.-]+:)?svg[\s>/]",
    re.IGNORECASE | re.DOTALL,
)

Image.init()
RASTER_MIME_TYPES = frozenset(m for m in Image.MIME.values() if m.startswith("image/")) - {SVG_MIME}
"""Image types Pillow can open (it registers these for the formats it was built with)."""


def looks_like_svg(head: bytes) -> bool:
    return _SVG_ROOT.match(decode_text(head)) is not None


def sniff_mime(head: bytes, *, key: str = "", declared: str | None = None) -> str:
    """The MIME type of a file from its first bytes (about ``SNIFF_BYTES``)."""
    mime = str(magic.from_buffer(head, mime=True))
    if mime != SVG_MIME and is_textual(mime):
        declared_type = (declared or "").split(";")[0].strip().lower()
        claims_svg = extension_of(key) == "svg" or declared_type == SVG_MIME
        if claims_svg or looks_like_svg(head):
            return SVG_MIME
    return mime


def needs_content(mime: str) -> bool:
    """Types whose metadata is read from the file (so its bytes are kept while it streams)."""
    return mime in RASTER_MIME_TYPES or mime in (SVG_MIME, PDF_MIME)
