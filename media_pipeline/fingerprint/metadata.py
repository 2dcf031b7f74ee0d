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
from dataclasses import dataclass, field
from typing import IO, Any

from PIL import ExifTags, Image
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError

from media_pipeline.fingerprint.phash import perceptual_hash
from media_pipeline.fingerprint.sniff import PDF_MIME, RASTER_MIME_TYPES, SVG_MIME
from media_pipeline.fingerprint.validate import SVG_SCAN_LIMIT, decode_text

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
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


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


def inspect_image(fp: IO[bytes], *, max_pixels: int) -> ContentInfo:
    """Header facts first; the pixels are decoded only when the header is within ``max_pixels``.

    The pHash is taken from the stored pixels of the first frame (EXIF orientation not applied).
    """
    info = ContentInfo()
    try:
        with Image.open(fp) as image:
            info.width, info.height = image.size
            info.pixels = info.width * info.height
            info.metadata.update(format=str(image.format), mode=image.mode)
            if info.pixels > max_pixels:
                return info  # a bomb: never decode it
            try:
                frames = int(getattr(image, "n_frames", 1))
                info.metadata.update(frames=frames, animated=frames > 1)
                info.metadata.update(_exif_fields(image))
                image.draft("L", _DRAFT_SIZE)
                # JPEGs shrink in draft(); other formats decode at full size (~4 bytes a
                # pixel), so big ones take turns instead of all workers decoding at once.
                big = info.pixels * 4 > _BIG_DECODE_BYTES and image.format != "JPEG"
                with _BIG_DECODES if big else contextlib.nullcontext():
                    image.load()
                    info.phash = perceptual_hash(image)
            except Exception as exc:  # truncated or corrupt data, whatever Pillow raises
                info.decode_error = _error_text(exc)
    except Image.DecompressionBombError as exc:
        # Only when Pillow's backstop fires before our header check; its message has the count.
        match = _BOMB_PIXELS.search(str(exc))
        info.pixels = int(match.group(1)) if match else max_pixels + 1
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
            return info
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


def inspect_content(fp: IO[bytes], mime: str, *, max_pixels: int) -> ContentInfo:
    """Dispatch on the sniffed type; types without metadata give an empty ContentInfo."""
    if mime == SVG_MIME:
        return inspect_svg(fp)
    if mime == PDF_MIME:
        return inspect_pdf(fp)
    if mime in RASTER_MIME_TYPES:
        return inspect_image(fp, max_pixels=max_pixels)
    return ContentInfo()
