"""Validation: every quarantine rule, through a real S3 round trip and as pure functions."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from media_pipeline.corpus import HOSTILE_NAMES, encode, hostile_file, photo
from media_pipeline.fingerprint.metadata import inspect_content
from media_pipeline.fingerprint.reader import fingerprint_object
from media_pipeline.fingerprint.sniff import sniff_mime
from media_pipeline.fingerprint.validate import (
    SVG_SCAN_LIMIT,
    check_extension,
    check_svg,
    decode_css,
    validate,
)
from media_pipeline.records import FingerprintResult
from media_pipeline.settings import Settings
from media_pipeline_tests.app_fixtures import ENTITY_SCRIPT_SVG, SPLIT_JAVASCRIPT_SVG
from media_pipeline_tests.fixtures_s3 import upload

EXPECTED_REASONS = {
    "zero-byte": r"empty file",
    "elf-binary": r"type application/x-(pie-)?(executable|sharedlib) not allowed",
    "windows-exe": r"type application/(vnd\.microsoft\.portable-executable|x-dosexec) not allowed",
    "pdf-as-jpg": r"extension \.jpg but content is application/pdf",
    "decompression-bomb": r"image has 400000000 pixels \(limit 50000000\)",
    "truncated-jpeg": r"corrupt image: image file is truncated.*",
    "corrupt-pdf": r"corrupt PDF: .+",
    "svg-script": r"SVG contains <script>",
    "svg-onload": r"SVG contains event handler onload=",
    "svg-javascript-url": r"SVG contains javascript: URL",
    "svg-foreign-object": r"SVG contains <foreignObject>",
}



class AnyStartingWith(str):
    """Equal to any string with this prefix (for reasons that quote the parser's message)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(str(self))

    __hash__ = str.__hash__


def fingerprint_bytes(
    client: Any,
    settings: Settings,
    key: str,
    data: bytes,
    content_type: str = "binary/octet-stream",
) -> FingerprintResult:
    return fingerprint_object(client, upload(client, settings, key, data, content_type), settings)


NOT_XML = AnyStartingWith("SVG does not parse as XML: ")
DOCTYPE = "SVG has a DOCTYPE (DTDs and entities are refused)"


def test_every_rule_has_a_hostile_file() -> None:
    assert set(EXPECTED_REASONS) == set(HOSTILE_NAMES)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_is_quarantined_with_its_reason(
    name: str, s3_client: Any, settings: Settings
) -> None:
    hostile = hostile_file(name)
    result = fingerprint_bytes(s3_client, settings, hostile.key, hostile.data, hostile.content_type)

    assert result.status == "quarantined", result
    assert result.quarantine_reason is not None
    assert re.fullmatch(EXPECTED_REASONS[name], result.quarantine_reason), result.quarantine_reason
    assert result.error is None
    # Quarantined files are still hashed: dedup and the audit trail need the content identity.
    assert result.file_hash == hashlib.sha256(hostile.data).hexdigest()


def test_decompression_bomb_is_small_on_disk_and_never_decoded(
    s3_client: Any, settings: Settings
) -> None:
    bomb = hostile_file("decompression-bomb")
    assert len(bomb.data) < 200_000
    result = fingerprint_bytes(s3_client, settings, bomb.key, bomb.data, "image/png")
    assert result.quarantine_reason == "image has 400000000 pixels (limit 50000000)"
    assert result.phash is None


def test_our_pixel_limit_is_checked_from_the_header_below_pillows(
    s3_client: Any, settings: Settings
) -> None:
    tight = replace(settings, max_image_pixels=1000)
    data = encode(photo(np.random.default_rng(1)), "PNG")
    result = fingerprint_object(
        s3_client, upload(s3_client, tight, "a.png", data, "image/png"), tight
    )
    assert result.status == "quarantined"
    assert result.quarantine_reason == "image has 43200 pixels (limit 1000)"
    assert (result.width, result.height) == (240, 180)  # read from the header ...
    assert result.phash is None  # ... and the pixels never decoded
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > 1000  # never lowered


def test_size_limit_comes_from_settings(s3_client: Any, settings: Settings) -> None:
    small = replace(settings, max_file_size=1000)
    data = b"plain text line\n" * 200  # 3200 bytes
    result = fingerprint_object(
        s3_client, upload(s3_client, small, "notes/long.txt", data, "text/plain"), small
    )
    assert result.status == "quarantined"
    assert result.quarantine_reason == "size 3.1 KiB over the 1000 B limit"
    assert result.bytes_read == len(data)


def test_allowed_types_come_from_settings(s3_client: Any, settings: Settings) -> None:
    images_only = replace(settings, allowed_file_types={"image": ["image/png"]})
    result = fingerprint_object(
        s3_client,
        upload(s3_client, images_only, "notes/a.txt", b"hello world\n", "text/plain"),
        images_only,
    )
    assert result.quarantine_reason == "type text/plain not allowed"


def test_svg_hidden_behind_a_long_comment_is_still_checked(
    s3_client: Any, settings: Settings
) -> None:
    # libmagic only sees the first 8 KiB, which is all comment: it calls this text.
    data = (
        b"<!--" + b" padding " * 2000 + b"-->\n"
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    )
    result = fingerprint_bytes(s3_client, settings, "site/icons/sneaky.svg", data, "image/svg+xml")
    assert result.content_type == "image/svg+xml"
    assert result.quarantine_reason == "SVG contains <script>"


def test_clean_files_pass(s3_client: Any, settings: Settings) -> None:
    data = encode(photo(np.random.default_rng(2)), "JPEG", quality=80)
    for key in ("a/photo.jpg", "a/photo.JPEG", "a/photo.jpe", "a/no-extension", "a/photo.xyz123"):
        result = fingerprint_bytes(s3_client, settings, key, data, "image/jpeg")
        assert result.status == "active", (key, result.quarantine_reason)
        assert result.quarantine_reason is None


# --- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "mime", "reason"),
    [
        ("photo.jpg", "image/jpeg", None),
        ("photo.JPG", "image/jpeg", None),
        ("photo.jpeg", "image/jpeg", None),
        ("photo.jpe", "image/jpeg", None),
        ("dir.v2/photo", "image/jpeg", None),  # no extension: nothing to check
        (".hidden", "image/jpeg", None),
        ("photo.unknownext", "image/jpeg", None),
        ("data.json", "text/plain", None),  # libmagic often cannot tell JSON from text
        ("notes.txt", "application/json", None),
        ("table.csv", "text/plain", None),
        ("invoice.jpg", "application/pdf", "extension .jpg but content is application/pdf"),
        ("logo.png", "image/jpeg", "extension .png but content is image/jpeg"),
        ("doc.pdf", "text/plain", "extension .pdf but content is text/plain"),
        ("clip.mp4", "image/gif", "extension .mp4 but content is image/gif"),
    ],
)
def test_extension_rule(key: str, mime: str, reason: str | None) -> None:
    assert check_extension(key, mime) == reason


@pytest.mark.parametrize(
    ("svg", "reason"),
    [
        (b"<svg><script>x</script></svg>", "SVG contains <script>"),
        (b"<svg><SCRIPT>x</SCRIPT></svg>", "SVG contains <script>"),
        (b'<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:script>x</s:script></s:svg>',
         "SVG contains <script>"),
        # Not XML at all (a browser's HTML parser might still find a script): quarantined.
        (b"<svg>< ScRiPt >x</script></svg>", NOT_XML),
        (b"<svg><svg:script>x</svg:script></svg>", NOT_XML),
        (b'<svg><rect x="1"onclick="x()"/></svg>', NOT_XML),
        (b'<svg><a href="&#x6A;ava&#x0A;script&colon;x()"/></svg>', NOT_XML),
        (b"\x00\x01<svg", NOT_XML),
        # Character references are text once parsed: this draws the words, it runs nothing.
        (b"<svg>&#60;script&#62;x</svg>", None),
        (b"<svg><foreignObject/></svg>", "SVG contains <foreignObject>"),
        (b"<svg\n\tonload\n=\n'x()'></svg>", "SVG contains event handler onload="),
        (b'<svg><rect x="1" onclick="x()"/></svg>', "SVG contains event handler onclick="),
        (
            b'<svg><set attributeName="onmouseover" to="x()"/></svg>',
            "SVG contains event handler onmouseover=",
        ),
        (b'<svg><a href="JaVaScRiPt:x()"/></svg>', "SVG contains javascript: URL"),
        (b'<svg><a href="&#x6A;ava&#x0A;script&#58;x()"/></svg>', "SVG contains javascript: URL"),
        # The attacks: entities that build a script or split a javascript: URL.
        (ENTITY_SCRIPT_SVG, DOCTYPE),
        (SPLIT_JAVASCRIPT_SVG, DOCTYPE),
        (b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
         b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><svg/>', DOCTYPE),
        (b'<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>', DOCTYPE),
        (b'<svg xmlns:x="http://www.w3.org/1999/xlink"><image x:href="data:image/png;base64,AA"/>'
         b'</svg>', "SVG contains data: URL"),
        (b'<svg><set attributeName="href" to="javascript:alert(1)"/></svg>',
         "SVG contains javascript: URL"),
        (b'<svg><image href="https://tracker.example/a.png"/></svg>',
         "SVG references an external resource"),
        (b'<svg><use href="other.svg#a"/></svg>', "SVG references an external resource"),
        (b'<svg><use href="#a"/></svg>', None),
        (b'<?xml-stylesheet href="http://x.example/s.css"?><svg/>', "SVG references a stylesheet"),
        (b'<svg><rect style="fill:url(http://x.example/p)"/></svg>',
         "SVG references an external resource in CSS"),
        (b'<svg><rect style="fill:url(#g)"/></svg>', None),
        (b'<svg><style>@import "x.css";</style></svg>', "SVG has active content in CSS"),
        (b'<svg><g><iframe xmlns="http://www.w3.org/1999/xhtml" src="#x"/></g></svg>',
         "SVG contains HTML element <iframe>"),
        (b'<svg><a href="java\nscript:x()"/></svg>', "SVG contains javascript: URL"),
        ("<svg><script>x</script></svg>".encode("utf-16"), "SVG contains <script>"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<text font-family="Arial">Click on the button = fun, one more</text>'
            b'<a href="https://example.com/script.js"><rect width="10" height="10"/></a></svg>',
            None,
        ),
    ],
)
def test_svg_rule(svg: bytes, reason: str | None) -> None:
    assert check_svg(svg) == reason


# Hostile review of issue 11, finding 1: attributes with one local name in two namespaces.
_DUP = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'xmlns:z="urn:z" width="100" height="100">')


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'<a href="javascript:alert(1)" xlink:href="#x"><rect/></a>',
         "SVG contains javascript: URL"),
        (b'<a href="javascript:alert(1)" z:href="#x"><rect/></a>', "SVG contains javascript: URL"),
        (b'<a z:href="#x" href="javascript:alert(1)"><rect/></a>', "SVG contains javascript: URL"),
        (b'<a><set attributeName="href" to="javascript:alert(1)" z:to="#x"/></a>',
         "SVG contains javascript: URL"),
        (b'<a><set attributeName="href" z:attributeName="fill" to="javascript:alert(1)"/></a>',
         "SVG contains javascript: URL"),
        (b'<a><set z:attributeName="fill" attributeName="href" to="javascript:alert(1)"/></a>',
         "SVG contains javascript: URL"),
        (b'<image href="https://evil.example/x.png" z:href="#a" width="9" height="9"/>',
         "SVG references an external resource"),
        (b'<rect style="fill:url(https://evil.example/x)" z:style="fill:red"/>',
         "SVG references an external resource in CSS"),
        (b'<rect z:style="fill:red" style="fill:url(https://evil.example/x)"/>',
         "SVG references an external resource in CSS"),
        (b'<a href="#x" z:href="#y"><rect fill="url(#g)"/></a>', None),
    ],
)
def test_svg_attributes_in_other_namespaces_do_not_hide_each_other(
        body: bytes, reason: str | None) -> None:
    assert check_svg(_DUP + body + b"</svg>") == reason


_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
EXTERNAL_CSS = "SVG references an external resource in CSS"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # Hostile review of issue 11, finding 6: CSS escapes, comments, image-set(), animations
        # of style and presentation attributes that load from elsewhere.
        (b'<style>@\\69mport "https://evil.example/x.css";</style>',
         "SVG has active content in CSS"),
        (b'<style>@\\000069 mport "https://evil.example/x.css";</style>',
         "SVG has active content in CSS"),
        (b"<style>rect{background-image:\\75rl(https://evil.example/b.png)}</style>",
         EXTERNAL_CSS),
        (b"<style>rect{fill:u\\r\\l(https://evil.example/b.png)}</style>", EXTERNAL_CSS),
        (b'<style>svg{background-image:image-set("https://evil.example/b.png" 1x)}</style>',
         EXTERNAL_CSS),
        (b'<style>svg{background:-webkit-image-set(url(#a) 1x, "x.png" 2x)}</style>',
         EXTERNAL_CSS),
        (b"<style>rect{fill:url(/**/https://evil.example/b.png)}</style>", EXTERNAL_CSS),
        (b'<rect><set attributeName="style" to="background-image:url(https://evil.example)"/>'
         b"</rect>", EXTERNAL_CSS),
        (b'<rect><animate attributeName="fill" values="red;url(https://evil.example/p)"/>'
         b"</rect>", EXTERNAL_CSS),
        (b'<rect filter="url(http://evil.example/f.svg#f)"/>', EXTERNAL_CSS),
        (b'<rect fill="url(https://evil.example/p)"/>', EXTERNAL_CSS),
        (b'<rect mask="\\75rl(//evil.example/m)"/>', EXTERNAL_CSS),
        # Fragments of this document stay allowed; so does a comment that splits a keyword,
        # which CSS reads as two tokens, not as @import.
        (b'<rect fill="url(#g)" filter="url(\'#f\')" style="fill:url( #g )"/>', None),
        (b"<style>rect{fill:url(#a)} /* url(x) */</style>", None),
        (b'<style>@im/**/port "x.css";</style>', None),
        (b'<rect><animate attributeName="fill" values="red;url(#g)"/></rect>', None),
        # An animated href loads from elsewhere unless it is a link's.
        (b'<image><set attributeName="href" to="https://evil.example/x.png"/></image>',
         "SVG references an external resource"),
        (b'<a><set attributeName="href" to="https://example.com/page"/></a>', None),
        (b'<a><set href="#img" attributeName="href" to="https://evil.example/x.png"/></a>',
         "SVG references an external resource"),
        (b'<image><animate attributeName="href" values="#a;#b"/></image>', None),
    ],
)
def test_svg_css_is_decoded_before_it_is_checked(body: bytes, reason: str | None) -> None:
    assert check_svg(_SVG + body + b"</svg>") == reason


def test_decode_css_follows_the_css_syntax() -> None:
    assert decode_css("@\\69mport") == "@import"
    assert decode_css("\\000075 rl(") == "url("
    assert decode_css("u\\rl(/* x */#a)") == "url( #a)"
    assert decode_css("a\\\nb\\") == "ab"
    assert decode_css("\\0 \\D800") == "\ufffd\ufffd"


def test_svg_rule_is_bounded() -> None:
    huge = b"<svg>" + b" " * SVG_SCAN_LIMIT + b"</svg>"
    assert check_svg(huge) == "SVG over 4.0 MiB cannot be inspected"


@hsettings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000))
def test_svg_rule_never_raises(data: bytes) -> None:
    reason = check_svg(data)
    assert reason is None or reason.startswith("SVG ")


@hsettings(max_examples=60, deadline=None)
@given(
    st.sampled_from(
        ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "image/svg+xml"]
    ),
    st.binary(max_size=3000),
)
def test_metadata_never_raises_on_garbage(mime: str, data: bytes) -> None:
    info = inspect_content(io.BytesIO(data), mime, max_pixels=50_000_000)
    # Garbage is reported as a decode error (or, by luck, parses), never raised.
    if mime == "image/svg+xml":
        assert info.svg == data
    elif mime == "application/pdf":
        assert info.decode_error is not None or info.page_count is not None
    else:
        assert info.decode_error is not None or info.width is not None


def test_rules_apply_in_order() -> None:
    settings = Settings(max_file_size=10)
    # Empty beats everything else.
    assert validate(key="a.jpg", size=0, content_type="application/x-empty", settings=settings) == (
        "empty file"
    )
    # Size before type, type before extension.
    assert validate(
        key="a.jpg", size=11, content_type="application/x-executable", settings=settings
    ) == ("size 11 B over the 10 B limit")
    assert validate(
        key="a.jpg", size=5, content_type="application/x-executable", settings=settings
    ) == ("type application/x-executable not allowed")
    assert (
        validate(
            key="a.svg", size=5, content_type="image/svg+xml", settings=settings, svg=b"<svg/>"
        )
        is None
    )


def test_sniffing_webp_svg_and_text() -> None:
    webp = encode(Image.new("RGB", (8, 8), "red"), "WEBP")
    assert sniff_mime(webp[:8192]) == "image/webp"
    assert sniff_mime(b'<svg xmlns="http://www.w3.org/2000/svg"/>') == "image/svg+xml"
    assert sniff_mime(b"<!-- c -->\n<svg><rect/></svg>") == "image/svg+xml"
    assert sniff_mime(b"just some words\n") == "text/plain"
    assert sniff_mime(b"just some words\n", key="x.svg") == "image/svg+xml"
