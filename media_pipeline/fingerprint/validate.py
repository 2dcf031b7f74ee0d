"""Validation rules: which files are quarantined, and why.

Each rule is a pure function of facts the reader already established (size, sniffed type, header
dimensions, decode outcome, SVG text) and returns a short human reason or ``None``. ``validate``
applies them in a fixed order and returns the first reason, so the reason an operator sees is the
most basic thing wrong with the file (an empty file is "empty", not "corrupt").
"""

from __future__ import annotations

import codecs
import io
import mimetypes
import re
from collections.abc import Collection
from pathlib import PurePosixPath
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as DET

from media_pipeline.settings import Settings

SVG_SCAN_LIMIT = 4 * 1024 * 1024
"""SVGs larger than this are not scanned (and are quarantined): the check must stay bounded."""

# Extension -> the types its content may have. Checked before ``mimetypes`` because the system's
# mime.types differs between machines and does not know the aliases libmagic reports.
_EXTENSION_TYPES: dict[str, frozenset[str]] = {
    ext: frozenset(types)
    for exts, types in [
        (("jpg", "jpeg", "jpe", "jfif"), ("image/jpeg",)),
        (("png",), ("image/png",)),
        (("apng",), ("image/png", "image/apng")),
        (("gif",), ("image/gif",)),
        (("webp",), ("image/webp",)),
        (("svg",), ("image/svg+xml",)),
        (("tif", "tiff"), ("image/tiff",)),
        (("bmp",), ("image/bmp", "image/x-ms-bmp")),
        (("ico",), ("image/vnd.microsoft.icon", "image/x-icon")),
        (("pdf",), ("application/pdf",)),
        (("txt", "text"), ("text/plain",)),
        (("mp4", "m4v"), ("video/mp4",)),
        (("webm",), ("video/webm", "audio/webm")),
        (("mov", "qt"), ("video/quicktime",)),
        (("mp3",), ("audio/mpeg",)),
        (("ogg", "oga", "ogv"), ("audio/ogg", "video/ogg", "application/ogg")),
        (("wav",), ("audio/wav", "audio/x-wav", "audio/vnd.wave")),
    ]
    for ext in exts
}

_TEXT_LIKE_APPLICATION = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/x-javascript"}
)


def decode_text(data: bytes) -> str:
    """Bytes to text honouring a UTF-16/32 byte-order mark; UTF-8 with replacement otherwise.

    A UTF-16 SVG must not slip past pattern checks written for ASCII.
    """
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    return data.decode("utf-8", errors="replace")


def is_textual(mime: str) -> bool:
    """Types libmagic cannot reliably tell apart from text/plain (JSON, XML, CSV, HTML...)."""
    return (
        mime.startswith("text/")
        or mime in _TEXT_LIKE_APPLICATION
        or mime.endswith("+xml")
        or mime.endswith("+json")
    )


def _format_bytes(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def extension_of(key: str) -> str | None:
    """Lower-case extension without the dot, or None (no extension, dotfile, folder marker)."""
    suffix = PurePosixPath(key).suffix
    return suffix[1:].lower() if len(suffix) > 1 else None


def expected_types(ext: str) -> frozenset[str] | None:
    """What content an extension promises; None when we do not know the extension."""
    if ext in _EXTENSION_TYPES:
        return _EXTENSION_TYPES[ext]
    guessed, _ = mimetypes.guess_type(f"file.{ext}", strict=False)
    return frozenset({guessed}) if guessed else None


# --- rules -------------------------------------------------------------------------------------


def check_empty(size: int) -> str | None:
    return "empty file" if size == 0 else None


def check_size(size: int, max_file_size: int) -> str | None:
    if size > max_file_size:
        return f"size {_format_bytes(size)} over the {_format_bytes(max_file_size)} limit"
    return None


def check_type(content_type: str | None, allowed: Collection[str]) -> str | None:
    if content_type is None:
        return "type could not be determined"
    return None if content_type in allowed else f"type {content_type} not allowed"


def check_extension(key: str, content_type: str | None) -> str | None:
    """The extension must agree with the sniffed content; unknown extensions are not checked."""
    ext = extension_of(key)
    if ext is None or content_type is None:
        return None
    expected = expected_types(ext)
    if expected is None or content_type in expected:
        return None
    # libmagic reports most text formats as text/plain: text against text is not a mismatch.
    if is_textual(content_type) and any(is_textual(t) for t in expected):
        return None
    return f"extension .{ext} but content is {content_type}"


def check_pixels(pixels: int | None, max_pixels: int) -> str | None:
    """Decompression bombs: a small file whose header promises a huge bitmap."""
    if pixels is not None and pixels > max_pixels:
        return f"image has {pixels} pixels (limit {max_pixels})"
    return None


def check_frames(frames: int | None, max_frames: int) -> str | None:
    """Animations whose frames would all be decoded by every viewer and thumbnailer."""
    if frames is not None and frames > max_frames:
        return f"animation has over {max_frames} frames (limit {max_frames})"
    return None


def check_decode_bytes(decode_bytes: int | None, max_decode_bytes: int) -> str | None:
    """Decompression bombs by memory: wide pixel modes (16-bit, RGBA) cost more per pixel."""
    if decode_bytes is not None and decode_bytes > max_decode_bytes:
        return (f"image needs {_format_bytes(decode_bytes)} to decode "
                f"(limit {_format_bytes(max_decode_bytes)})")
    return None


def check_trailing(content_type: str | None, trailing: str | None) -> str | None:
    """Polyglots: an image followed by something a browser, a shell or unzip would act on."""
    if trailing is None:
        return None
    return f"{content_type or 'image'} has trailing data after the image: {trailing}"


def check_pdf_active(pdf_active: str | None, allowed: bool) -> str | None:
    """JavaScript, launch actions and XFA forms, unless MEDIA_PIPELINE_ALLOW_PDF_SCRIPTS."""
    return None if allowed else pdf_active


def check_decodes(content_type: str | None, decode_error: str | None) -> str | None:
    if decode_error is None:
        return None
    what = "PDF" if content_type == "application/pdf" else "image"
    return f"corrupt {what}: {decode_error[:200]}"


_XHTML_NS = "http://www.w3.org/1999/xhtml"
_HTML_ELEMENTS = frozenset({"iframe", "embed", "object", "frame", "frameset", "applet"})
_ACTIVE_ELEMENTS = {"script": "<script>", "foreignobject": "<foreignObject>",
                    "handler": "<handler>", "listener": "<listener>"}
_URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction"})
_ANIMATIONS = frozenset({"set", "animate", "animatemotion", "animatetransform", "animatecolor"})
_ANIMATED_VALUES = ("to", "from", "values", "by")
_ACTIVE_SCHEMES = ("javascript:", "vbscript:", "data:")
_CONTROL_AND_SPACE = re.compile(r"[\x00-\x20\x7f]+")
# In CSS: imports, url() to anything but a fragment, script URLs, IE expressions.
_CSS_URL = re.compile(r"url\(\s*(?!['\"]?#)", re.IGNORECASE)
_CSS_ACTIVE = re.compile(r"@import|javascript:|expression\(", re.IGNORECASE)


def _local(name: str) -> str:
    """``{namespace}local`` or ``prefix:local`` → ``local``, lower-cased."""
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _url_reason(value: str) -> str | None:
    """Browsers ignore control characters and whitespace inside a scheme: drop them first."""
    compact = _CONTROL_AND_SPACE.sub("", value).lower()
    for scheme in _ACTIVE_SCHEMES:
        if compact.startswith(scheme):
            return f"SVG contains {scheme} URL"
    return None


def _css_reason(text: str) -> str | None:
    if _CSS_ACTIVE.search(text):
        return "SVG has active content in CSS"
    if _CSS_URL.search(text):
        return "SVG references an external resource in CSS"
    return None


def _element_reason(element: Any) -> str | None:
    tag = str(element.tag)
    name = _local(tag)
    if name in _ACTIVE_ELEMENTS:
        return f"SVG contains {_ACTIVE_ELEMENTS[name]}"
    if tag.startswith("{" + _XHTML_NS + "}") or name in _HTML_ELEMENTS:
        return f"SVG contains HTML element <{name}>"
    attributes = {_local(k): str(v) for k, v in element.attrib.items()}
    for attr in attributes:
        if attr.startswith("on"):
            return f"SVG contains event handler {attr}="
    if name in _ANIMATIONS:
        target = _local(attributes.get("attributename", "").strip())
        if target.startswith("on"):
            return f"SVG contains event handler {target}="
        if target in _URL_ATTRIBUTES:
            for value_name in _ANIMATED_VALUES:
                for value in attributes.get(value_name, "").split(";"):
                    if reason := _url_reason(value):
                        return reason
    for attr in _URL_ATTRIBUTES & attributes.keys():
        value = attributes[attr]
        if reason := _url_reason(value):
            return reason
        # A link the user follows is fine; anything the image loads by itself is not.
        if name != "a" and not value.strip().startswith("#"):
            return "SVG references an external resource"
    if "style" in attributes:
        return _css_reason(attributes["style"])
    return None


def check_svg(data: bytes) -> str | None:
    """Active content in an SVG, judged on the tree a hardened XML parser (defusedxml) builds.

    A DOCTYPE or entity declaration is refused outright (entities can assemble anything: a
    ``<script>`` or a ``javascript:`` URL out of harmless pieces), and so is whatever does not
    parse. Then: script, handler and foreignObject elements, HTML elements, ``on*`` attributes
    (also set through animations), ``javascript:``/``vbscript:``/``data:`` URLs, resources the
    image would load from elsewhere (``href``/``src`` other than ``#fragment``, except links),
    active or external CSS and ``xml-stylesheet`` instructions. Names are compared by local
    name, in any namespace and case.
    """
    if len(data) > SVG_SCAN_LIMIT:
        return f"SVG over {_format_bytes(SVG_SCAN_LIMIT)} cannot be inspected"
    try:
        for event, element in DET.iterparse(
                io.BytesIO(data), events=("start", "end", "pi"), forbid_dtd=True,
                forbid_entities=True, forbid_external=True):
            if event == "pi":
                if str(element.text or "").lower().startswith("xml-stylesheet"):
                    return "SVG references a stylesheet"
            elif event == "start":
                if reason := _element_reason(element):
                    return reason
            elif _local(str(element.tag)) == "style" and (
                    reason := _css_reason("".join(element.itertext()))):
                return reason
    except DTDForbidden:
        return "SVG has a DOCTYPE (DTDs and entities are refused)"
    except EntitiesForbidden:
        return "SVG declares entities"
    except ExternalReferenceForbidden:
        return "SVG references external entities"
    except Exception as exc:  # ParseError, bad encodings: whatever does not parse
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"SVG does not parse as XML: {first[:150]}"
    return None


def validate(
    *,
    key: str,
    size: int,
    content_type: str | None,
    settings: Settings,
    pixels: int | None = None,
    decode_error: str | None = None,
    svg: bytes | None = None,
    frames: int | None = None,
    decode_bytes: int | None = None,
    trailing: str | None = None,
    pdf_active: str | None = None,
) -> str | None:
    """The first reason to quarantine the file, or None when it may be served.

    ``pixels`` comes from the image header (never a decode), ``frames`` and ``trailing`` from
    the container's structure, ``decode_bytes`` from the header and pixel mode,
    ``decode_error`` from the attempt to decode an image or parse a PDF, ``pdf_active`` from
    the PDF's objects, ``svg`` is the SVG's bytes (at most ``SVG_SCAN_LIMIT`` + 1).
    """
    rules = (
        lambda: check_empty(size),
        lambda: check_size(size, settings.max_file_size),
        lambda: check_type(content_type, settings.allowed_mime_types),
        lambda: check_extension(key, content_type),
        lambda: check_pixels(pixels, settings.max_image_pixels),
        lambda: check_frames(frames, settings.max_frames),
        lambda: check_decode_bytes(decode_bytes, settings.max_decode_bytes),
        lambda: check_trailing(content_type, trailing),
        lambda: check_pdf_active(pdf_active, settings.allow_pdf_scripts),
        lambda: check_decodes(content_type, decode_error),
        lambda: check_svg(svg) if svg is not None else None,
    )
    # Lazily, so the SVG scan only runs when nothing more basic is wrong.
    return next((r for rule in rules if (r := rule()) is not None), None)
