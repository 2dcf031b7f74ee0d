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
TRAILER_SCAN = 4 * 1024 * 1024
_CHUNK = 1024 * 1024

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
_MARKUP = re.compile(rb"<\s*(?:script|html|iframe|body|svg|object|embed|\?php|!doctype)\b",
                     re.IGNORECASE)
_PADDING = frozenset(b"\x00\xff \t\r\n")


def _read_exact(fp: IO[bytes], size: int) -> bytes | None:
    data = fp.read(size)
    return data if len(data) == size else None


def gif_frames(fp: IO[bytes], limit: int) -> tuple[int, int | None]:
    """(frames counted, stopping above ``limit``; offset after the trailer ``;`` or None)."""
    fp.seek(0)
    header = _read_exact(fp, 13)
    if header is None or header[:3] != b"GIF":
        return 0, None
    if header[10] & 0x80:
        fp.seek(3 << ((header[10] & 7) + 1), 1)
    frames = 0
    while True:
        block = fp.read(1)
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


def jpeg_end(fp: IO[bytes]) -> int | None:
    """Offset after the first image's EOI, walking markers and entropy-coded scans."""
    fp.seek(0)
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


def classify_trailer(fp: IO[bytes], start: int | None) -> str | None:
    """What the bytes after the image at ``start`` are, when another program would act on them
    (``text/html``, ``application/zip``...); None for nothing, padding or benign data. With
    ``start`` None (the end of the image is not known) only a ZIP is looked for."""
    fp.seek(0, 2)
    size = fp.tell()
    fp.seek(0)
    if zipfile.is_zipfile(fp):  # a ZIP is found from its end, whatever comes before it
        return "application/zip"
    if start is None or start >= size:
        return None
    fp.seek(start)
    head = fp.read(TRAILER_SNIFF)
    if all(b in _PADDING for b in head) and size - start <= TRAILER_SNIFF:
        return None
    mime = magic.from_buffer(head, mime=True)
    if mime in _ACTIVE_TYPES or mime.startswith(_ACTIVE_PREFIXES):
        return mime
    fp.seek(start)
    scanned = 0
    tail = b""
    while scanned < TRAILER_SCAN and (chunk := fp.read(_CHUNK)):
        if _MARKUP.search(tail + chunk):
            return "HTML markup"
        tail, scanned = chunk[-16:], scanned + len(chunk)
    return None
