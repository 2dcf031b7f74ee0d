"""Container structure of images, walked without decoding: frame counts and where the image ends.

The walkers read the spool in small steps (``seek`` + short reads), never the whole file, and stop
as soon as they know enough: a GIF with two million frames is counted to the limit and no
further. Each returns None when the structure is broken; the decoder then reports that.

What follows the end of an image is classified by :func:`classify_trailer`: padding is harmless,
an MP4 (a motion photo) or a second JPEG (MPF) is expected, but HTML, a script or a ZIP make the
file a polyglot that another program would read as something else.
"""

from __future__ import annotations

import re
import struct
import zipfile
from typing import IO

import magic

TRAILER_SNIFF = 64 * 1024
_CHUNK = 1024 * 1024
_GIF_SKIP_CHUNK = 64 * 1024

# What a browser, a shell or an unzip tool would run or open in the bytes after an image.
_ACTIVE_TYPES = (
    "text/html", "text/xml", "application/xml", "image/svg+xml", "application/javascript",
    "text/javascript", "application/x-javascript", "application/x-httpd-php", "text/x-php",
    "text/x-python", "text/x-perl", "text/x-ruby", "application/x-executable",
    "application/x-dosexec", "application/x-sharedlib", "application/x-pie-executable",
    "application/zip", "application/java-archive", "application/x-7z-compressed",
    "application/x-rar", "application/vnd.rar", "application/gzip",
)
_ACTIVE_PREFIXES = ("text/x-shellscript", "text/x-script", "application/vnd.openxmlformats",
                    "application/x-zip")
# Markup that runs or loads something, specific enough not to turn up by chance in a video's
# compressed data: script-like tags, event handlers inside a tag, refresh, script URLs, PHP.
_RUNS = (rb"<\s*(?:script|html|iframe|body|svg|object|embed|applet|frameset|!doctype|\?php)\b"
         rb"|<\s*[a-z][a-z0-9-]*\s[^<>]{0,512}?\bon[a-z]{3,}\s*="
         rb"|http-equiv|javascript:|vbscript:")
_MARKUP = re.compile(_RUNS, re.IGNORECASE)
# In a trailer that is not media, any HTML tag (the tags browsers sniff HTML by, and the ones
# that run or load things), a comment or a PHP short tag is enough.
_HTML = re.compile(
    _RUNS + rb"|<\s*(?:a|b|p|br|h1|div|font|table|title|head|style|img|image|details|meta|"
    rb"link|base|form|input|button|textarea|select|math|video|audio|source|template|"
    rb"marquee|isindex|xmp|noscript|frame)(?=[\s/>])|<!--|<\?=|<\?\s", re.IGNORECASE)
_PADDING = frozenset(b"\x00\xff \t\r\n")
_ZIP_LOCAL = re.compile(rb"PK\x03\x04")
_ZIP_METHODS = frozenset({0, 1, 6, 8, 9, 12, 14, 93, 95, 96, 97, 98, 99})
_OVERLAP = 1024


def _read_exact(fp: IO[bytes], size: int) -> bytes | None:
    data = fp.read(size)
    return data if len(data) == size else None


_GIF_BLOCK = re.compile(rb"[!,;]")


def _skip_to_gif_block(fp: IO[bytes]) -> bytes:
    """Skip bytes that start no block, as Pillow does (it reads on to the next ``!``, ``,`` or
    ``;``), in chunks rather than a byte at a time; the block's byte, or b"" at the end."""
    while chunk := fp.read(_GIF_SKIP_CHUNK):
        if found := _GIF_BLOCK.search(chunk):
            fp.seek(found.start() + 1 - len(chunk), 1)
            return chunk[found.start():found.start() + 1]
    return b""


def gif_frames(fp: IO[bytes], limit: int) -> tuple[int, int | None]:
    """(frames counted, stopping above ``limit``; offset after the trailer ``;`` or None).

    Counted the way Pillow reads the file: a byte between blocks that starts none is skipped,
    so a stray ``0x00`` cannot end the count early while the decoder goes on to more frames.
    """
    fp.seek(0)
    header = _read_exact(fp, 13)
    if header is None or header[:3] != b"GIF":
        return 0, None
    if header[10] & 0x80:
        fp.seek(3 << ((header[10] & 7) + 1), 1)
    frames = 0
    while True:
        block = fp.read(1)
        if block not in (b";", b"!", b",", b""):
            block = _skip_to_gif_block(fp)
        if block == b";":
            return frames, fp.tell()
        if block == b"!":
            if _read_exact(fp, 1) is None or not _skip_sub_blocks(fp):
                return frames, None
        elif block == b",":
            descriptor = _read_exact(fp, 9)
            if descriptor is None:
                return frames, None
            if descriptor[8] & 0x80:
                fp.seek(3 << ((descriptor[8] & 7) + 1), 1)
            if _read_exact(fp, 1) is None or not _skip_sub_blocks(fp):
                return frames, None
            frames += 1
            if frames > limit:
                return frames, None
        else:
            return frames, None  # truncated or not a GIF block


def _skip_sub_blocks(fp: IO[bytes]) -> bool:
    while True:
        size = fp.read(1)
        if not size:
            return False
        if size[0] == 0:
            return True
        fp.seek(size[0], 1)


def png_end(fp: IO[bytes]) -> tuple[int | None, int]:
    """(offset after IEND or None, number of APNG frame controls ``fcTL``)."""
    fp.seek(0)
    if fp.read(8) != b"\x89PNG\r\n\x1a\n":
        return None, 0
    frames = 0
    while True:
        head = _read_exact(fp, 8)
        if head is None:
            return None, frames
        length, kind = struct.unpack(">I4s", head)
        if kind == b"fcTL":
            frames += 1
        fp.seek(length + 4, 1)  # data and CRC
        if kind == b"IEND":
            return fp.tell(), frames


def jpeg_end(fp: IO[bytes], start: int = 0) -> int | None:
    """Offset after the EOI of the image at ``start``, walking markers and entropy-coded
    scans."""
    fp.seek(start)
    if fp.read(2) != b"\xff\xd8":
        return None
    while True:
        byte = fp.read(1)
        if byte != b"\xff":
            return None
        while byte == b"\xff":  # fill bytes
            byte = fp.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0xD9:
            return fp.tell()
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # TEM, RSTn: no length
        length = _read_exact(fp, 2)
        if length is None:
            return None
        fp.seek(struct.unpack(">H", length)[0] - 2, 1)
        if marker == 0xDA and not _skip_scan(fp):
            return None


def _skip_scan(fp: IO[bytes]) -> bool:
    """Move past entropy-coded data to the next marker (left for the caller to read)."""
    while True:
        start = fp.tell()
        chunk = fp.read(_CHUNK)
        if len(chunk) < 2:
            return False
        at = 0
        while (at := chunk.find(b"\xff", at)) != -1 and at + 1 < len(chunk):
            following = chunk[at + 1]
            if following == 0x00 or following == 0xFF or 0xD0 <= following <= 0xD7:
                at += 1 if following == 0xFF else 2
                continue
            fp.seek(start + at)
            return True
        fp.seek(start + max(len(chunk) - 1, 1))  # an FF at the very end is read again


def webp_end(fp: IO[bytes]) -> tuple[int | None, int]:
    """(offset after the RIFF container or None, number of animation frames ``ANMF``)."""
    fp.seek(0)
    header = _read_exact(fp, 12)
    if header is None or header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        return None, 0
    end = 8 + struct.unpack("<I", header[4:8])[0]
    frames = 0
    while fp.tell() + 8 <= end:
        head = _read_exact(fp, 8)
        if head is None:
            return None, frames
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        if kind == b"ANMF":
            frames += 1
        fp.seek(size + (size & 1), 1)
    return end + (end & 1), frames


def _zip_header_at(data: bytes, at: int) -> bool:
    """A ZIP local file header at ``at``: plausible version, method and a printable name (four
    magic bytes alone occur by chance in compressed video)."""
    if at + 30 > len(data):
        return False
    version, _flags, method = struct.unpack_from("<HHH", data, at + 4)
    name_length = struct.unpack_from("<H", data, at + 26)[0]
    name = data[at + 30:at + 30 + name_length]
    return (version <= 100 and method in _ZIP_METHODS and 0 < name_length <= 1024
            and len(name) == name_length and all(32 <= b < 127 or b >= 128 for b in name))


def _mp4_end(fp: IO[bytes], start: int, size: int) -> int:
    """Where the ISO-BMFF boxes from ``start`` (``ftyp`` first) end: the first box whose header
    is not a box (a type that is not four printable characters, a size that does not fit)."""
    at = start
    while at + 8 <= size:
        fp.seek(at)
        head = fp.read(16)
        box_size, kind = struct.unpack(">I4s", head[:8])
        if not all(32 <= b < 127 for b in kind):
            break
        if box_size == 1 and len(head) == 16:
            box_size = struct.unpack(">Q", head[8:16])[0]
        elif box_size == 0:
            box_size = size - at  # to the end of the file
        if box_size < 8 or at + box_size > size:
            break
        at += box_size
    return at


def _scan(fp: IO[bytes], start: int, end: int, pattern: re.Pattern[bytes]) -> str | None:
    """Look for markup or a ZIP in ``[start, end)``, all of it, a chunk at a time."""
    fp.seek(start)
    tail = b""
    at = start
    while at < end and (chunk := fp.read(min(_CHUNK, end - at))):
        data = tail + chunk
        at += len(chunk)
        for match in _ZIP_LOCAL.finditer(data):
            if _zip_header_at(data, match.start()):
                return "application/zip"
        if pattern.search(data):
            return "HTML markup"
        tail = data[-_OVERLAP:]
    return None


def _region_reason(fp: IO[bytes], start: int, size: int) -> tuple[str | None, int]:
    """What the trailer region at ``start`` is (a reason or None) and where it ends."""
    fp.seek(start)
    head = fp.read(TRAILER_SNIFF)
    if not head.strip(bytes(_PADDING)):
        # Padding so far: the region is the padding; what follows it (if anything) is next.
        fp.seek(start)
        at = start
        while chunk := fp.read(_CHUNK):
            stripped = chunk.lstrip(bytes(_PADDING))
            if stripped:
                return None, at + len(chunk) - len(stripped)
            at += len(chunk)
        return None, size
    mime = magic.from_buffer(head, mime=True)
    if mime in _ACTIVE_TYPES or mime.startswith(_ACTIVE_PREFIXES):
        return mime, size
    if head[4:8] == b"ftyp":  # a motion photo's MP4: its boxes, then whatever follows them
        end = _mp4_end(fp, start, size)
        if end > start:
            return _scan(fp, start, end, _MARKUP), end
    if head.startswith(b"\xff\xd8"):  # a second JPEG (MPF): the image, then what follows it
        jpeg = jpeg_end(fp, start)
        if jpeg is not None and jpeg > start:
            return _scan(fp, start, jpeg, _MARKUP), jpeg
    media = mime.startswith(("image/", "video/", "audio/"))
    return _scan(fp, start, size, _MARKUP if media else _HTML), size


def classify_trailer(fp: IO[bytes], start: int | None) -> str | None:
    """What the bytes after the image at ``start`` are, when another program would act on them
    (``text/html``, ``application/zip``...); None for nothing, padding or benign data. With
    ``start`` None (the end of the image is not known) only a ZIP is looked for.

    The whole trailer is read, a chunk at a time: padding, then a motion photo's MP4 (its box
    structure walked to its end) or a second JPEG (walked to its EOI), then whatever follows.
    A ZIP is found by its end record or by a local file header anywhere; HTML by tags that
    run something (``<script>``, ``<img onerror=>``, ``<meta http-equiv>``, ``<?php``...) in
    media data, by any HTML tag in a trailer that is not media.
    """
    fp.seek(0, 2)
    size = fp.tell()
    fp.seek(0)
    if zipfile.is_zipfile(fp):  # a ZIP is found from its end, whatever comes before it
        return "application/zip"
    if start is None or start >= size:
        return None
    at = start
    while at < size:
        reason, end = _region_reason(fp, at, size)
        if reason is not None:
            return reason
        if end <= at:
            break
        at = end
    return None
