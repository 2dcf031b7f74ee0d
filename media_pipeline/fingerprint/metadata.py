"""What can be learnt from a file's bytes: dimensions, EXIF, frames, pages, perceptual hash.

Every function here takes a seekable binary file (the reader's spool) and never raises for a bad
file: problems come back as ``decode_error`` for validation to turn into a quarantine reason. Values
in ``metadata`` are only str, int or bool so the dict is JSON as-is.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from inspect import signature
from typing import IO, Any

from PIL import ExifTags, Image
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

from media_pipeline.fingerprint.phash import perceptual_hash
from media_pipeline.fingerprint.sniff import PDF_MIME, RASTER_MIME_TYPES, SVG_MIME
from media_pipeline.fingerprint.structure import (
    classify_trailer,
    gif_frames,
    jpeg_end,
    png_end,
    webp_end,
)
from media_pipeline.fingerprint.validate import SVG_SCAN_LIMIT, decode_text, validate
from media_pipeline.records import FingerprintResult
from media_pipeline.settings import Settings

# pypdf logs recoverable damage ("EOF marker not found") as warnings; what matters reaches us as
# an exception and becomes a quarantine reason, so keep its chatter out of run logs.
logging.getLogger("pypdf").setLevel(logging.ERROR)

MetadataValue = str | int | bool

# At most two full-size decodes of large non-JPEG images at a time, whatever the worker count.
_BIG_DECODE_BYTES = 64 * 1024 * 1024
_BIG_DECODES = threading.BoundedSemaphore(2)

# JPEGs are decoded at a reduced scale (DCT scaling, at least this size): the pHash only needs
# 32x32, and a 50-megapixel photo then costs under 1 MB instead of 150 MB. The whole stream is
# still decoded, so truncation is still detected.
_DRAFT_SIZE = (128, 128)
_MAX_TEXT = 200
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


@dataclass
class ContentInfo:
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    phash: int | None = None
    pixels: int | None = None  # from the header, for the decompression-bomb rule
    decode_error: str | None = None
    svg: bytes | None = None  # the SVG's bytes (bounded) for the script rule
    frames: int | None = None  # counted from the container, up to the limit + 1
    decode_bytes: int | None = None  # memory the pixels need once decoded
    trailing: str | None = None  # what follows the image, when it is active (text/html...)
    pdf_active: str | None = None  # JavaScript, launch actions, XFA
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The facts the catalog stores (``CONTENT_COLUMNS``), by column name."""
        return {name: (dict(value) if isinstance(value := getattr(self, name), dict) else value)
                for name in CONTENT_COLUMNS}

    def validation_facts(self) -> dict[str, Any]:
        """The facts the validation rules take (``VALIDATION_FACTS``), as ``validate``'s
        keyword arguments."""
        return {name: getattr(self, name) for name in VALIDATION_FACTS}


# What inspecting the content found that the catalog stores: the ContentInfo fields that
# FingerprintResult also has (width, height, page_count, phash, metadata...). The reader and
# the upload both copy these; a new fact column is a field here and there, nothing else.
CONTENT_COLUMNS = tuple(name for name in ContentInfo.__dataclass_fields__
                        if name in FingerprintResult.__dataclass_fields__)
# What the validation rules are given from the content inspection: the ContentInfo fields that
# validate() takes (a rule on a new fact adds it to both, nothing here).
VALIDATION_FACTS = tuple(name for name in ContentInfo.__dataclass_fields__
                         if name in signature(validate).parameters)


@dataclass(frozen=True)
class InspectLimits:
    """How far inspecting one file may go; beyond these, nothing more is decoded."""

    max_pixels: int = 50_000_000
    max_frames: int = 1000
    max_decode_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> InspectLimits:
        return cls(max_pixels=settings.max_image_pixels, max_frames=settings.max_frames,
                   max_decode_bytes=settings.max_decode_bytes)


def bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel: one byte for 1/L/P, two for 16-bit, four for the rest
    (RGB, LA and other multi-band modes are kept as 32-bit pixels)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def allow_pillow_pixels(max_pixels: int) -> None:
    """Make sure Pillow's own bomb check never fires below our limit.

    Pillow refuses images over ``2 * Image.MAX_IMAGE_PIXELS`` at open time (and warns above
    ``MAX_IMAGE_PIXELS``). Our limit is checked from the header right after open, so Pillow's is
    only a backstop: it is raised when settings allow bigger images, never lowered or disabled.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _error_text(exc: BaseException) -> str:
    message = str(exc).strip()
    return (message or type(exc).__name__)[:_MAX_TEXT]


def _clean_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:_MAX_TEXT] or None


def _exif_fields(image: Image.Image) -> dict[str, MetadataValue]:
    """DateTimeOriginal, camera make/model and orientation; bad EXIF is ignored, not fatal."""
    out: dict[str, MetadataValue] = {}
    try:
        exif = image.getexif()
        taken = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
    except Exception:
        return out
    for name, value in (
        ("exif_datetime_original", taken),
        ("camera_make", exif.get(ExifTags.Base.Make)),
        ("camera_model", exif.get(ExifTags.Base.Model)),
    ):
        text = _clean_text(value)
        if text is not None:
            out[name] = text
    orientation = exif.get(ExifTags.Base.Orientation)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        out["orientation"] = orientation
    return out


def _structure(fp: IO[bytes], limits: InspectLimits, info: ContentInfo) -> None:
    """Frames and trailing data from the container itself, before any decoding."""
    fp.seek(0)
    magic_bytes = fp.read(12)
    end: int | None = None
    if magic_bytes.startswith(b"GIF8"):
        info.frames, end = gif_frames(fp, limits.max_frames)
    elif magic_bytes.startswith(b"\x89PNG"):
        end, apng = png_end(fp)
        info.frames = max(apng, 1)
    elif magic_bytes.startswith(b"\xff\xd8"):
        end = jpeg_end(fp)
    elif magic_bytes[:4] == b"RIFF" and magic_bytes[8:12] == b"WEBP":
        end, animated = webp_end(fp)
        info.frames = max(animated, 1)
    if info.frames is None or info.frames <= limits.max_frames:
        info.trailing = classify_trailer(fp, end)
    fp.seek(0)


def inspect_image(fp: IO[bytes], *, max_pixels: int | None = None,
                  limits: InspectLimits | None = None) -> ContentInfo:
    """Structure first (frames counted and trailing data classified without decoding), then
    header facts; the pixels are decoded only within the limits on pixels, frames and the
    bytes the decode needs.

    The pHash is taken from the stored pixels of the first frame (EXIF orientation not applied).
    """
    limits = limits or InspectLimits()
    if max_pixels is not None:
        limits = replace(limits, max_pixels=max_pixels)
    info = ContentInfo()
    try:
        _structure(fp, limits, info)
    except OSError as exc:
        info.decode_error = _error_text(exc)
        return info
    try:
        with Image.open(fp) as image:
            info.width, info.height = image.size
            info.pixels = info.width * info.height
            info.metadata.update(format=str(image.format), mode=image.mode)
            if info.pixels > limits.max_pixels:
                return info  # a bomb: never decode it
            try:
                if info.frames is None:  # formats without a walker: Pillow counts
                    info.frames = int(getattr(image, "n_frames", 1))
                info.metadata.update(frames=min(info.frames, limits.max_frames + 1),
                                     animated=info.frames > 1)
                if info.frames > limits.max_frames:
                    return info  # too many frames: nothing is decoded
                info.metadata.update(_exif_fields(image))
                image.draft("L", _DRAFT_SIZE)
                width, height = image.size  # after draft: JPEGs decode at a reduced scale
                info.decode_bytes = width * height * bytes_per_pixel(image.mode)
                if info.decode_bytes > limits.max_decode_bytes:
                    return info
                # JPEGs shrink in draft(); other formats decode at full size, so big ones take
                # turns instead of all workers decoding at once.
                big = info.decode_bytes > _BIG_DECODE_BYTES and image.format != "JPEG"
                with _BIG_DECODES if big else contextlib.nullcontext():
                    image.load()
                    info.phash = perceptual_hash(image)
            except Exception as exc:  # truncated or corrupt data, whatever Pillow raises
                info.decode_error = _error_text(exc)
    except Image.DecompressionBombError as exc:
        # Only when Pillow's backstop fires before our header check; its message has the count.
        match = _BOMB_PIXELS.search(str(exc))
        info.pixels = int(match.group(1)) if match else limits.max_pixels + 1
    except Exception as exc:  # UnidentifiedImageError and header parse errors
        info.decode_error = _error_text(exc)
    return info


def inspect_pdf(fp: IO[bytes]) -> ContentInfo:
    """Page count (and title) with pypdf; an unreadable PDF is a decode error.

    An encrypted PDF that needs a password is not corrupt: it just has no page count.
    """
    info = ContentInfo(metadata={"format": "PDF"})
    try:
        reader = PdfReader(fp)
        if reader.is_encrypted:
            info.metadata["encrypted"] = True
            with contextlib.suppress(Exception):  # an empty user password opens many
                reader.decrypt("")
        try:
            info.page_count = len(reader.pages)
        except FileNotDecryptedError:
            info.pdf_active = "encrypted PDF cannot be checked for JavaScript"
            return info
        info.pdf_active = pdf_active_content(reader)
        try:
            title = _clean_text(reader.metadata.title if reader.metadata else None)
        except Exception:
            title = None
        if title:
            info.metadata["title"] = title
    except Exception as exc:
        info.decode_error = _error_text(exc)
    return info


_SVG_TAG = re.compile(r"<(?:[\w.-]+:)?svg\b([^>]*)>", re.IGNORECASE)


def _svg_length(attributes: str, name: str) -> int | None:
    """A plain or px length attribute as an int; percentages and other units give None."""
    match = re.search(
        rf"(?<![\w:-]){name}\s*=\s*[\"']\s*([0-9]*\.?[0-9]+)\s*(?:px)?\s*[\"']", attributes
    )
    return round(float(match.group(1))) if match else None


def inspect_svg(fp: IO[bytes]) -> ContentInfo:
    """Keeps the bytes for the script rule (bounded) and reads width/height from the root tag.

    Deliberately no XML parser: regexes cannot be made to expand entities or fetch URLs.
    """
    data = fp.read(SVG_SCAN_LIMIT + 1)
    info = ContentInfo(svg=data, metadata={"format": "SVG"})
    root = _SVG_TAG.search(decode_text(data[:65536]))
    if root:
        info.width = _svg_length(root.group(1), "width")
        info.height = _svg_length(root.group(1), "height")
    return info


def pdf_active_content(reader: PdfReader, max_objects: int = 200_000) -> str | None:
    """The first active thing in a PDF: a JavaScript or launch action, JavaScript anywhere
    (``/JS``, the document's ``/JavaScript`` name tree) or an XFA form; None when there is none.

    Every object is visited once, whether reachable from the trailer or only listed in the
    cross-reference table; names are compared decoded (``/J#61vaScript`` is ``/JavaScript``).
    """
    seen: set[tuple[int, int]] = set()
    stack: list[Any] = [reader.trailer]
    stack += [IndirectObject(num, gen, reader) for gen, numbers in reader.xref.items()
              for num in numbers]
    stack += [IndirectObject(num, 0, reader) for num in reader.xref_objStm]
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if ref in seen:
                continue
            seen.add(ref)
            if len(seen) > max_objects:
                return f"PDF has over {max_objects} objects to check for JavaScript"
            try:
                obj = obj.get_object()
            except FileNotDecryptedError:
                raise
            except Exception:
                continue  # a broken object: nothing a viewer could run either
        if isinstance(obj, DictionaryObject):  # stream dictionaries included
            action = obj.get("/S")
            if action in ("/JavaScript", "/Launch"):
                return f"PDF has a {str(action)[1:]} action"
            if "/JS" in obj:
                return "PDF has JavaScript"
            if "/JavaScript" in obj and not isinstance(obj.get("/JavaScript"), NameObject):
                return "PDF has document JavaScript"
            if "/XFA" in obj:
                return "PDF has an XFA form"
            stack.extend(v for k, v in obj.items() if k not in ("/Parent", "/P"))
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)
    return None


def inspect_content(fp: IO[bytes], mime: str, *, max_pixels: int | None = None,
                    limits: InspectLimits | None = None) -> ContentInfo:
    """Dispatch on the sniffed type; types without metadata give an empty ContentInfo."""
    if mime == SVG_MIME:
        return inspect_svg(fp)
    if mime == PDF_MIME:
        return inspect_pdf(fp)
    if mime in RASTER_MIME_TYPES:
        return inspect_image(fp, max_pixels=max_pixels, limits=limits)
    return ContentInfo()
