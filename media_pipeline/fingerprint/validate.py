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


# Declared types a browser would run as a document or a script, whatever the bytes are.
_ACTIVE_DECLARED = frozenset({
    "text/html", "application/xhtml+xml", "text/xml", "application/xml", "text/xsl",
    "application/xslt+xml", "text/javascript", "application/javascript",
    "application/x-javascript", "application/ecmascript", "text/ecmascript", "text/jscript",
    "text/vbscript", "application/x-shockwave-flash", "multipart/x-mixed-replace",
    "text/cache-manifest", "application/wasm",
})
# What S3 says when the uploader said nothing: served as a download, never rendered.
_UNDECLARED = frozenset({"", "binary/octet-stream", "application/octet-stream"})


def _kind(mime: str) -> str:
    """image, text, audio/video ("media"), application..., for comparing declared and sniffed."""
    if mime == "image/svg+xml":
        return "image"
    if is_textual(mime):
        return "text"
    major = mime.split("/", 1)[0]
    return "media" if major in ("audio", "video") else major


def check_declared(declared: str | None, content_type: str | None) -> str | None:
    """The Content-Type S3 stored is what a public URL serves: it must not be an active type
    (HTML, XHTML, XML, script...) and must agree in kind with the sniffed content. An SVG
    declared ``image/svg+xml`` is checked by :func:`check_svg`, so it is not refused here."""
    mime = (declared or "").split(";")[0].strip().lower()
    if mime in _UNDECLARED or content_type is None or mime == content_type:
        return None
    if mime in _ACTIVE_DECLARED or (mime.endswith("+xml") and mime != "image/svg+xml"):
        return f"declared Content-Type {mime} is active content (content is {content_type})"
    if mime == "image/svg+xml" or _kind(mime) != _kind(content_type):
        return f"declared Content-Type {mime} but content is {content_type}"
    return None


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
# CSS Syntax 3: comments, and escapes (``\69`` is ``i``; a backslash before a newline is dropped,
# before anything else it stands for that character).
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\n\f]?|\r\n|([\s\S])|\Z)")
# After decoding: imports, script URLs, IE expressions and bindings run or fetch things.
_CSS_ACTIVE = re.compile(r"@import|javascript:|vbscript:|expression\s*\(|-moz-binding|behavior\s*:",
                         re.IGNORECASE)
# Functions that load what they name: url(), src(), image-set() (also -webkit-), image().
_CSS_LOADS = re.compile(r"\b(url|src|(?:-webkit-)?image-set|image|cross-fade)\(\s*", re.IGNORECASE)
_CSS_STRING = re.compile(r"[\"']")


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


def _css_unescape(match: re.Match[str]) -> str:
    hex_digits, char = match.group(1), match.group(2)
    if hex_digits is not None:
        code = int(hex_digits, 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    if char is not None:
        return "" if char in "\n\f" else char
    return ""  # an escaped CRLF, or a backslash at the very end


def decode_css(text: str) -> str:
    """CSS as the browser reads it: comments removed, escapes replaced by what they stand for.

    Comments go everywhere, strings included: that can only make a check stricter."""
    return _CSS_ESCAPE.sub(_css_unescape, _CSS_COMMENT.sub(" ", text))


def _loads_external(css: str) -> bool:
    """Whether decoded CSS loads anything but a ``#fragment`` of this document."""
    for match in _CSS_LOADS.finditer(css):
        function = match.group(1).lower()
        rest = css[match.end():]
        if function not in ("url", "src"):
            return True  # image-set(), image(), cross-fade(): only ever there to load images
        target = rest.split(")", 1)[0].strip()
        if _CSS_STRING.match(target):
            target = target[1:]
        if not target.startswith("#"):
            return True
    return False


def _css_reason(text: str, *, declarations: bool = True) -> str | None:
    """Active or external CSS in a stylesheet or style attribute (``declarations``), or only
    external loads in a presentation attribute (``fill="url(#gradient)"`` stays allowed)."""
    css = decode_css(text)
    if declarations and _CSS_ACTIVE.search(css):
        return "SVG has active content in CSS"
    if _loads_external(css):
        return "SVG references an external resource in CSS"
    return None


def _element_reason(element: Any, parent: str | None = None) -> str | None:
    """Every attribute is judged on its own: two attributes with one local name in different
    namespaces (``href`` and ``z:href``) must not hide each other."""
    tag = str(element.tag)
    name = _local(tag)
    if name in _ACTIVE_ELEMENTS:
        return f"SVG contains {_ACTIVE_ELEMENTS[name]}"
    if tag.startswith("{" + _XHTML_NS + "}") or name in _HTML_ELEMENTS:
        return f"SVG contains HTML element <{name}>"
    attributes = [(_local(str(k)), str(v)) for k, v in element.attrib.items()]
    for attr, value in attributes:
        if attr.startswith("on"):
            return f"SVG contains event handler {attr}="
        if attr in _URL_ATTRIBUTES:
            if reason := _url_reason(value):
                return reason
            # A link the user follows is fine; anything the image loads by itself is not.
            if name != "a" and not value.strip().startswith("#"):
                return "SVG references an external resource"
        elif attr == "style":
            if reason := _css_reason(value):
                return reason
        elif reason := _css_reason(value, declarations=False):  # fill, filter, mask...
            return reason
    if name in _ANIMATIONS:
        return _animation_reason(attributes, parent)
    return None


def _animation_reason(attributes: list[tuple[str, str]], parent: str | None) -> str | None:
    """``<set attributeName="href" to="javascript:…"/>``: what an animation would write, for
    every ``attributeName`` and every ``to``/``from``/``values``/``by`` it has. It animates
    its parent, or (with an ``href``) another element: only a link's URL may leave the
    document."""
    targets = [_local(v.strip()) for k, v in attributes if k == "attributename"]
    values = [v for k, v in attributes if k in _ANIMATED_VALUES]
    animates_a_link = parent == "a" and not any(k in _URL_ATTRIBUTES for k, _ in attributes)
    for target in targets:
        if target.startswith("on"):
            return f"SVG contains event handler {target}="
        for value in values:
            if target in _URL_ATTRIBUTES:
                for part in value.split(";"):
                    if reason := _url_reason(part):
                        return reason
                    if not animates_a_link and part.strip() and not part.strip().startswith("#"):
                        return "SVG references an external resource"
            elif reason := _css_reason(value, declarations=target == "style"):
                return reason
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
    names: list[str] = []  # the open elements' local names: an animation's parent
    try:
        for event, element in DET.iterparse(
                io.BytesIO(data), events=("start", "end", "pi"), forbid_dtd=True,
                forbid_entities=True, forbid_external=True):
            if event == "pi":
                if str(element.text or "").lower().startswith("xml-stylesheet"):
                    return "SVG references a stylesheet"
            elif event == "start":
                if reason := _element_reason(element, names[-1] if names else None):
                    return reason
                names.append(_local(str(element.tag)))
            else:
                names.pop()
                if _local(str(element.tag)) == "style" and (
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
    declared_content_type: str | None = None,
) -> str | None:
    """The first reason to quarantine the file, or None when it may be served.

    ``pixels`` comes from the image header (never a decode), ``frames`` and ``trailing`` from
    the container's structure, ``decode_bytes`` from the header and pixel mode,
    ``decode_error`` from the attempt to decode an image or parse a PDF, ``pdf_active`` from
    the PDF's objects, ``svg`` is the SVG's bytes (at most ``SVG_SCAN_LIMIT`` + 1),
    ``declared_content_type`` the Content-Type S3 stored with the object (and serves).
    """
    rules = (
        lambda: check_empty(size),
        lambda: check_size(size, settings.max_file_size),
        lambda: check_type(content_type, settings.allowed_mime_types),
        lambda: check_extension(key, content_type),
        lambda: check_declared(declared_content_type, content_type),
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
