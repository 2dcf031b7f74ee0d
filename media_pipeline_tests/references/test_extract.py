"""Reference extraction: every form a media file can be referenced in, one test case each, the
look-alikes that must not count, ambiguous URL ends resolved against known keys, hostile input."""

from __future__ import annotations

import html
import json
import pickle
import random
import re
import unicodedata
from typing import Any
from urllib.parse import quote, quote_plus

import duckdb
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from media_pipeline.records import media_id_for
from media_pipeline.references.extract import Ref, ReferenceExtractor, unescape
from media_pipeline.references.known_keys import KnownKeys, key_hash
from media_pipeline.references.mentions import MentionMatcher, spellings
from media_pipeline.settings import Settings

BUCKET = "media"
UUID = "0e5c3b3a-1111-2222-3333-444455556666"


def make_extractor(known: list[str] | None = None, **overrides: Any) -> ReferenceExtractor:
    values: dict[str, Any] = {
        "bucket": BUCKET,
        "custom_domain": "cdn.example.com",
        "cdn_base_urls": ("https://static.example.org/assets", "http://img.example.net"),
        "endpoint_url": "http://127.0.0.1:9100",
    }
    values.update(overrides)
    keys = KnownKeys.from_keys(known) if known is not None else None
    return ReferenceExtractor.from_settings(Settings(**values), keys)


def keys_of(text: str, fmt: str = "auto", known: list[str] | None = None,
            **overrides: Any) -> set[tuple[str, str]]:
    refs = make_extractor(known, **overrides).extract(text, fmt).refs
    return {(r.value, r.form) for r in refs}


# (case id, text, format, expected (value, form) pairs)
FORMS = [
    # public base URL and CDN bases
    ("public-https", '<img src="https://cdn.example.com/a/b.jpg">', "html",
     {("a/b.jpg", "public_url")}),
    ("public-http", "<img src='http://cdn.example.com/a/b.jpg'>", "html",
     {("a/b.jpg", "public_url")}),
    ("public-protocol-relative", '<img src="//cdn.example.com/a/b.jpg">', "html",
     {("a/b.jpg", "public_url")}),
    ("public-host-case-insensitive", '<img src="HTTPS://CDN.Example.COM/A/b.jpg">', "html",
     {("A/b.jpg", "public_url")}),
    ("cdn-with-path-prefix", '<img src="https://static.example.org/assets/x/y.png">', "html",
     {("x/y.png", "cdn_url")}),
    ("cdn-second-base-http", "see http://img.example.net/x/y.png for it", "text",
     {("x/y.png", "cdn_url")}),
    ("cdn-second-base-https", "see https://img.example.net/x/y.png for it", "text",
     {("x/y.png", "cdn_url")}),
    # S3 URLs
    ("s3-virtual-host", "https://media.s3.amazonaws.com/k/a.jpg", "text",
     {("k/a.jpg", "s3_virtual_host")}),
    ("s3-virtual-host-regional", "https://media.s3.eu-west-1.amazonaws.com/k/a.jpg", "text",
     {("k/a.jpg", "s3_virtual_host")}),
    ("s3-virtual-host-legacy-dash", "https://media.s3-us-west-2.amazonaws.com/k/a.jpg", "text",
     {("k/a.jpg", "s3_virtual_host")}),
    ("s3-virtual-host-dualstack", "https://media.s3.dualstack.us-east-1.amazonaws.com/k/a.jpg",
     "text", {("k/a.jpg", "s3_virtual_host")}),
    ("s3-path-style", "https://s3.amazonaws.com/media/k/a.jpg", "text",
     {("k/a.jpg", "s3_path_style")}),
    ("s3-path-style-regional", "https://s3.ap-southeast-2.amazonaws.com/media/k/a.jpg", "text",
     {("k/a.jpg", "s3_path_style")}),
    ("s3-path-style-legacy-dash", "http://s3-eu-west-1.amazonaws.com/media/k/a.jpg", "text",
     {("k/a.jpg", "s3_path_style")}),
    ("endpoint-path-style", "http://127.0.0.1:9100/media/k/a.jpg", "text",
     {("k/a.jpg", "endpoint_url")}),
    ("s3-uri", "aws s3 cp s3://media/k/a.jpg .", "text", {("k/a.jpg", "s3_uri")}),
    ("s3-uri-raw-unicode", "s3://media/k/café.jpg", "text", {("k/café.jpg", "s3_uri")}),
    # signed URLs, fragments
    ("signed-query-dropped",
     "https://media.s3.amazonaws.com/k/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Expires=3600&X-Amz-Signature=abc123", "text", {("k/a.jpg", "s3_virtual_host")}),
    ("signed-query-html-entities",
     '<a href="https://media.s3.amazonaws.com/k/a.jpg?X-Amz-Expires=3600&amp;'
     'X-Amz-Signature=abc">x</a>', "html", {("k/a.jpg", "s3_virtual_host")}),
    ("fragment-dropped", '<a href="https://cdn.example.com/doc.pdf#page=2">', "html",
     {("doc.pdf", "public_url")}),
    # percent-encoding and unicode
    ("percent-space", '<img src="https://cdn.example.com/my%20photo.jpg">', "html",
     {("my photo.jpg", "public_url")}),
    ("percent-plus", '<img src="https://cdn.example.com/a%2Bb.jpg">', "html",
     {("a+b.jpg", "public_url")}),
    ("literal-plus-is-plus", '<img src="https://cdn.example.com/a+b.jpg">', "html",
     {("a+b.jpg", "public_url")}),
    ("percent-utf8", '<img src="https://cdn.example.com/caf%C3%A9.jpg">', "html",
     {("café.jpg", "public_url")}),
    ("percent-twice-encoded-percent", '<img src="https://cdn.example.com/100%2520.jpg">',
     "html", {("100%20.jpg", "public_url")}),
    ("raw-unicode", '<img src="https://cdn.example.com/фото/café.jpg">', "html",
     {("фото/café.jpg", "public_url")}),
    # HTML
    ("html-href", '<a href="https://cdn.example.com/doc.pdf">doc</a>', "html",
     {("doc.pdf", "public_url")}),
    ("html-srcset-x-with-spaces",
     '<img srcset="https://cdn.example.com/a.jpg 1x, https://cdn.example.com/b.jpg 2x">',
     "html", {("a.jpg", "public_url"), ("b.jpg", "public_url")}),
    ("html-srcset-w-without-spaces",
     '<img srcset="https://cdn.example.com/a.jpg 480w,https://cdn.example.com/b.jpg 800w">',
     "html", {("a.jpg", "public_url"), ("b.jpg", "public_url")}),
    ("html-srcset-without-descriptors",
     '<img srcset="https://cdn.example.com/a.jpg,https://cdn.example.com/b.jpg">',
     "html", {("a.jpg", "public_url"), ("b.jpg", "public_url")}),
    ("html-data-src", '<img data-src="https://cdn.example.com/lazy.jpg">', "html",
     {("lazy.jpg", "public_url")}),
    ("html-poster", '<video poster="https://cdn.example.com/p.jpg"></video>', "html",
     {("p.jpg", "public_url")}),
    ("html-source-srcset",
     '<picture><source srcset="https://cdn.example.com/s.webp" type="image/webp"></picture>',
     "html", {("s.webp", "public_url")}),
    ("html-inline-style-url",
     '<div style="background:url(https://cdn.example.com/bg.png) no-repeat"></div>', "html",
     {("bg.png", "public_url")}),
    ("html-inline-style-url-entity-quotes",
     '<div style="background:url(&quot;https://cdn.example.com/bg.png&quot;)"></div>', "html",
     {("bg.png", "public_url")}),
    ("css-url-single-quotes", "<style>.a{background:url('https://cdn.example.com/c.png')}"
     "</style>", "html", {("c.png", "public_url")}),
    ("css-url-double-quotes", '.a{background:url("https://cdn.example.com/c.png")}', "text",
     {("c.png", "public_url")}),
    ("css-url-no-quotes", ".a{background:url(https://cdn.example.com/c.png)}", "text",
     {("c.png", "public_url")}),
    ("html-entity-encoded-slashes",
     '<a href="https:&#x2F;&#x2F;cdn.example.com&#x2F;e&#x2F;f.jpg">', "html",
     {("e/f.jpg", "public_url")}),
    ("html-entity-in-key", '<a href="https://cdn.example.com/a&amp;b.jpg">', "html",
     {("a&b.jpg", "public_url")}),
    # Markdown
    ("markdown-image-with-title", '![alt](https://cdn.example.com/m.png "A title")', "markdown",
     {("m.png", "public_url")}),
    ("markdown-link", "[the doc](https://cdn.example.com/d.pdf).", "markdown",
     {("d.pdf", "public_url")}),
    ("markdown-autolink", "<https://cdn.example.com/auto.pdf>", "markdown",
     {("auto.pdf", "public_url")}),
    ("markdown-reference-style", "[logo]: https://cdn.example.com/logo.svg\n", "markdown",
     {("logo.svg", "public_url")}),
    ("markdown-link-key-with-parentheses", "[x](https://cdn.example.com/photo_(1).jpg)",
     "markdown", {("photo_(1).jpg", "public_url")}),
    # JSON
    ("json-escaped-slashes", '{"image": "https:\\/\\/cdn.example.com\\/a\\/b.jpg"}', "json",
     {("a/b.jpg", "public_url")}),
    ("json-unicode-escapes", '{"image": "https:\\u002F\\u002Fcdn.example.com\\u002Fa.jpg"}',
     "json", {("a.jpg", "public_url")}),
    ("json-nested-html",
     json.dumps({"blocks": [{"body": {"html": '<img src="https://cdn.example.com/n.jpg">'}}]}),
     "json", {("n.jpg", "public_url")}),
    ("json-escaped-non-ascii-key", json.dumps({"u": "s3://media/k/café.jpg"}), "json",
     {("k/café.jpg", "s3_uri")}),
    ("json-in-html-attribute",
     '<div data-props="{&quot;src&quot;:&quot;https:\\/\\/cdn.example.com\\/j.jpg&quot;}">',
     "html", {("j.jpg", "public_url")}),
    # issue 10, point 4: forms an editor's plain delete must be refused for
    ("nextjs-image-url",
     '<img src="/_next/image?url=https%3A%2F%2Fcdn.example.com%2Fblog%2Fa.png&w=640&q=75">',
     "html", {("blog/a.png", "public_url")}),
    ("nextjs-double-encoded",
     "/_next/image?url=https%253A%252F%252Fcdn.example.com%252Fblog%252Fa.png&w=640", "text",
     {("blog/a.png", "public_url")}),
    ("nextjs-key-with-space", "/_next/image?url=https%3A%2F%2Fcdn.example.com%2Fmy%2520a.png",
     "text", {("my a.png", "public_url")}),
    ("nextjs-srcset-amp",
     '<img srcset="/_next/image?url=https%3A%2F%2Fcdn.example.com%2Fa.png&amp;w=640 1x, '
     '/_next/image?url=https%3A%2F%2Fcdn.example.com%2Fb.png&amp;w=1080 2x">', "html",
     {("a.png", "public_url"), ("b.png", "public_url")}),
    ("cloudinary-fetch-encoded",
     "https://res.cloudinary.com/demo/image/fetch/w_300/https%3A%2F%2Fcdn.example.com%2Fc.jpg",
     "text", {("c.jpg", "public_url")}),
    ("imgix-encoded-s3", "https://acme.imgix.net/https%3A%2F%2Fmedia.s3.amazonaws.com%2Fk%2Fi.jpg"
     "?w=100", "text", {("k/i.jpg", "s3_virtual_host")}),
    ("shortcode-extra-attribute", f'[media id="{UUID}" align="left"]', "text",
     {(UUID, "shortcode")}),
    ("shortcode-attribute-order", f'[media align="left" id="{UUID}" size=full]', "text",
     {(UUID, "shortcode")}),
    ("shortcode-single-quotes", f"[media id='{UUID}']", "text", {(UUID, "shortcode")}),
    ("shortcode-entity-quotes", f"[media id=&quot;{UUID}&quot; align=&#39;left&#39;]", "html",
     {(UUID, "shortcode")}),
    ("css-url-minified", ".hero{background:url(https://cdn.example.com/a.png)no-repeat}", "text",
     {("a.png", "public_url")}),
    ("css-url-balanced-parens", "url(https://cdn.example.com/photo_(1).jpg)no-repeat", "text",
     {("photo_(1).jpg", "public_url")}),
    ("js-hex-escapes", 'var u = "https:\\x2F\\x2Fcdn.example.com\\x2Fjs\\x2Fa.png";', "text",
     {("js/a.png", "public_url")}),
    ("js-unicode-brace-escapes", '"https:\\u{2F}\\u{2F}cdn.example.com\\u{2F}b.png"', "text",
     {("b.png", "public_url")}),
    ("explicit-port-443", "https://cdn.example.com:443/p/a.png", "text",
     {("p/a.png", "public_url")}),
    ("explicit-port-80", "http://cdn.example.com:80/p/a.png", "text", {("p/a.png", "public_url")}),
    ("s3-host-port-80", "http://media.s3.amazonaws.com:80/k/a.jpg", "text",
     {("k/a.jpg", "s3_virtual_host")}),
    ("dot-segment", '<img src="https://cdn.example.com/a/./b.png">', "html",
     {("a/b.png", "public_url")}),
    ("dot-dot-segment", "https://cdn.example.com/a/x/../b.png is it", "text",
     {("a/b.png", "public_url")}),
]


@pytest.mark.parametrize(("text", "fmt", "expected"), [c[1:] for c in FORMS],
                         ids=[c[0] for c in FORMS])
def test_each_form_is_found(text: str, fmt: str, expected: set[tuple[str, str]]) -> None:
    assert keys_of(text, fmt) == expected


def test_custom_domain_given_as_url_with_path_prefix() -> None:
    found = keys_of('<img src="https://www.example.com/media/a/b.jpg"> '
                    '<a href="https://www.example.com/about">', "html",
                    custom_domain="https://www.example.com/media")
    assert found == {("a/b.jpg", "public_url")}


def test_endpoint_virtual_host_style() -> None:
    found = keys_of("http://media.minio.internal:9000/k/a.jpg", "text",
                    endpoint_url="http://minio.internal:9000")
    assert found == {("k/a.jpg", "endpoint_url")}


@pytest.mark.parametrize("text", [
    '[media id="0E5C3B3A-1111-2222-3333-444455556666"]',
    "[media:0e5c3b3a-1111-2222-3333-444455556666]",
    "[media id=0e5c3b3a-1111-2222-3333-444455556666]",
    '{"body": "[media id=\\"0e5c3b3a-1111-2222-3333-444455556666\\"]"}',
    "<p>[media id=&quot;0e5c3b3a-1111-2222-3333-444455556666&quot;]</p>",
], ids=["quoted-uppercase", "colon", "unquoted", "json-escaped-quotes", "html-entity-quotes"])
def test_shortcode_gives_a_media_id_reference(text: str) -> None:
    refs = make_extractor().extract(text).refs
    assert refs == {Ref("media_id", UUID, "shortcode")}


def test_custom_shortcode_pattern() -> None:
    extractor = make_extractor(shortcode_pattern=r"\{\{\s*image (?P<id>[0-9a-f-]{36})\s*\}\}")
    refs = extractor.extract(f"{{{{ image {UUID} }}}} [media:{UUID}]").refs
    assert refs == {Ref("media_id", UUID, "shortcode")}


def test_shortcode_pattern_without_id_group_is_refused() -> None:
    with pytest.raises(ValueError, match="named group 'id'"):
        make_extractor(shortcode_pattern=r"\[img (\S+)\]")


def test_shortcode_with_an_invalid_uuid_is_ignored() -> None:
    text = ("[media:0e5c3b3a-1111-2222-3333-44445555666g] "
            "[media:------------------------------------]")
    assert make_extractor().extract(text).refs == set()


@pytest.mark.parametrize("text", [
    "https://other.s3.amazonaws.com/k/a.jpg",
    "https://media-backup.s3.amazonaws.com/k/a.jpg",
    "https://s3.amazonaws.com/other/k/a.jpg",
    "https://s3.amazonaws.com/media-backup/k/a.jpg",
    "s3://other/k/a.jpg",
    "s3://media-backup/k/a.jpg",
    "https://www.example.com/k/a.jpg",
    "https://evil-cdn.example.com/k/a.jpg",
    "https://cdn.example.com.evil.net/k/a.jpg",
    "https://notcdn.example.com/k/a.jpg",
    "https://static.example.org/other/k/a.jpg",
    "https://static.example.org/assetsX/k/a.jpg",
    "https://media.s3.amazonaws.com.evil.net/k/a.jpg",
    "https://media.evil.com/k/a.jpg",
    "http://127.0.0.1:9101/media/k/a.jpg",
    "http://127.0.0.1:9100/other/k/a.jpg",
    "https://media/k/a.jpg",
    "https://cdn.example.com/",
    "https://cdn.example.com/folder/",
], ids=lambda t: t.split("//", 1)[1][:40])
def test_other_buckets_hosts_and_look_alikes_are_ignored(text: str) -> None:
    assert make_extractor().extract(f'<a href="{text}">x</a> {text} ', "html").refs == set()


# --- where a URL ends: trailing punctuation, spaces, resolved against the known keys ---

@pytest.mark.parametrize(("text", "key"), [
    ("see https://cdn.example.com/a.jpg, and more", "a.jpg"),
    ("(see https://cdn.example.com/a.jpg).", "a.jpg"),
    ("is it https://cdn.example.com/a.jpg?", "a.jpg"),
    ("**https://cdn.example.com/a.jpg**", "a.jpg"),
    ("[https://cdn.example.com/a.jpg]", "a.jpg"),
])
def test_trailing_punctuation_without_catalog(text: str, key: str) -> None:
    assert keys_of(text, "text") == {(key, "public_url")}


def test_trailing_punctuation_that_is_part_of_a_known_key_is_kept() -> None:
    text = "see https://cdn.example.com/a.jpg, and (https://cdn.example.com/b.jpg)."
    found = keys_of(text, "text", known=["a.jpg,", "b.jpg)"])
    assert found == {("a.jpg,", "public_url"), ("b.jpg)", "public_url")}


def test_both_readings_known_both_kept() -> None:
    found = keys_of("see https://cdn.example.com/a.jpg, and", "text", known=["a.jpg", "a.jpg,"])
    assert found == {("a.jpg", "public_url"), ("a.jpg,", "public_url")}


def test_unknown_key_is_kept_as_one_dangling_reading() -> None:
    found = keys_of("see https://cdn.example.com/gone.jpg).", "text", known=["other.jpg"])
    assert found == {("gone.jpg", "public_url")}


def test_raw_space_in_quoted_attribute() -> None:
    text = '<img src="https://cdn.example.com/my photo (1).jpg">'
    assert keys_of(text, "html") == {("my photo (1).jpg", "public_url")}
    assert keys_of(text, "html", known=["my photo (1).jpg"]) == {("my photo (1).jpg",
                                                                   "public_url")}


def test_raw_space_in_plain_text_resolved_by_known_key() -> None:
    text = "copy s3://media/reports/q1 summary.pdf to the share"
    assert keys_of(text, "text", known=["reports/q1 summary.pdf"]) == {
        ("reports/q1 summary.pdf", "s3_uri")}
    assert keys_of(text, "text") == {("reports/q1", "s3_uri")}


@pytest.mark.parametrize("key", ["0 0", "0 0,&", "%00", "a%20b.jpg"])
def test_keys_the_property_test_found(key: str) -> None:
    # a key that looks like "URL + srcset descriptor", holds an entity, or a literal "%"
    text = f'<img src="https://cdn.example.com/{html.escape(key)}" alt="x">'
    assert keys_of(text, "html", known=[key]) == {(key, "public_url")}


def test_comma_in_key_resolved_by_known_key() -> None:
    text = '<img srcset="https://cdn.example.com/a,b.jpg 1x, https://cdn.example.com/c.jpg 2x">'
    assert keys_of(text, "html", known=["a,b.jpg", "c.jpg"]) == {
        ("a,b.jpg", "public_url"), ("c.jpg", "public_url")}


def test_s3_uri_percent_sequence_as_written_or_decoded() -> None:
    assert keys_of("s3://media/100%25.jpg", "text") == {("100%25.jpg", "s3_uri")}
    assert keys_of("s3://media/a%20b.jpg", "text", known=["a b.jpg"]) == {("a b.jpg", "s3_uri")}


def test_nfc_and_nfd_keys() -> None:
    nfd = unicodedata.normalize("NFD", "café.jpg")
    nfc = unicodedata.normalize("NFC", "café.jpg")
    assert nfd != nfc
    text = f'<img src="https://cdn.example.com/{nfc}">'
    assert keys_of(text, "html") == {(nfc, "public_url")}  # as written
    assert keys_of(text, "html", known=[nfd]) == {(nfd, "public_url")}  # as stored


def test_invalid_percent_utf8_is_taken_as_written() -> None:
    assert keys_of('<img src="https://cdn.example.com/a%FF.jpg">', "html") == {
        ("a%FF.jpg", "public_url")}


def test_key_hash_matches_duckdb() -> None:
    import duckdb

    con = duckdb.connect()
    for key in ("a.jpg", "café/ü b+c,(1).png", ""):
        (expected,) = con.execute("SELECT md5_number_lower(?)", [key]).fetchone() or (None,)
        assert key_hash(key) == expected


@pytest.mark.parametrize(("text", "plain"), [
    ("&#38;quot;", '"'),  # a numeric entity spelling another one
    ("&#38;#38;quot;", '"'),
    ("\\u0026quot;", '"'),  # a JSON escape spelling an entity
    ("\\\\u0026quot;", '"'),  # ... only once the escaped backslash is undone
    ("&#92;/", "/"),  # an entity spelling a JSON escape
    ("a\\\\/b", "a/b"),
    ("&amp;quot;", "&amp;quot;"),  # &amp; is decoded inside URLs only
    ("&quot;&lt;&#x2F;", '"</'),
])
def test_unescape_layers(text: str, plain: str) -> None:
    assert unescape(text) == plain


# --- the known-key profile: what no known key can be is not looked up ---

PROBES = ["a.jpg", "a.jpg,", "a.jpg).", "a%20b.jpg", "100%.jpg", "a.jpg 2x", "b c.png",
          "a.jpg\u30001", "x)", "caf%C3%A9.jpg", ""]


@pytest.mark.parametrize("keys", [
    [], ["a.jpg"], ["a.jpg,", "b c.png"], ["100%.jpg"], ["x 2x.jpg"], ["a\u30001"], ["x)"],
    ["a.jpg", "a.jpg).", "a.jpg 2x", "a%20b.jpg"],
])
def test_profile_from_duckdb_is_the_one_from_keys(keys: list[str]) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE media_files (key VARCHAR)")
    if keys:
        con.executemany("INSERT INTO media_files VALUES (?)", [[k] for k in keys])
    from_db = KnownKeys.from_duckdb(con, "SELECT key FROM media_files")
    from_keys = KnownKeys.from_keys(keys)
    assert [from_db.may_hold(p) for p in PROBES] == [from_keys.may_hold(p) for p in PROBES]
    assert all(from_db.may_hold(k) for k in keys)  # a known key is never ruled out
    assert from_db.contains_keys(PROBES) == [p in keys for p in PROBES]


def test_may_hold_rules_out_only_what_no_key_has() -> None:
    plain = KnownKeys.from_keys(["a.jpg", "b c.png"])
    assert plain.may_hold("a.jpg") and plain.may_hold("b c.png") and plain.may_hold("new.jpg")
    assert not plain.may_hold("a%20b.jpg")  # no key has a "%"
    assert not plain.may_hold("a.jpg,") and not plain.may_hold("a.jpg).")
    assert not plain.may_hold("a.jpg 480w,https://cdn.example.com/b.jpg")
    odd = KnownKeys.from_keys(["50%.jpg", "x.jpg,", "y 1x"])
    assert odd.may_hold("a%20b.jpg") and odd.may_hold("a.jpg,") and odd.may_hold("a.jpg 2x")
    assert not odd.may_hold("a.jpg).")
    unprofiled = KnownKeys(KnownKeys.from_keys(["a.jpg"])._hashes)
    assert all(unprofiled.may_hold(p) for p in PROBES)


def test_extract_many_is_extract_raw_of_each() -> None:
    x = make_extractor(known=["a.jpg,", "k/a.jpg", "my photo (1).jpg"])
    documents = [(text, fmt) for _, text, fmt, _ in FORMS]
    documents += [("see https://cdn.example.com/a.jpg, and", "text"),
                  ('<img src="https://cdn.example.com/my photo (1).jpg">', "html"),
                  ("[media:0e5c3b3a-1111-2222-3333-444455556666]", "text"), ("{", "json")]
    many = x.extract_many(documents)
    assert len(many) == len(documents)
    for (text, fmt), (keys, media_ids, fallback, _) in zip(documents, many, strict=True):
        single = x.extract_raw(text, fmt)
        assert (set(keys), set(media_ids), fallback) == (set(single[0]), set(single[1]),
                                                         single[2])


# --- formats and fallbacks ---

def test_invalid_json_is_scanned_as_text_and_flagged() -> None:
    result = make_extractor().extract('{"image": "https:\\/\\/cdn.example.com\\/a.jpg", ', "json")
    assert result.text_fallback
    assert {r.value for r in result.refs} == {"a.jpg"}


def test_valid_json_and_html_do_not_fall_back() -> None:
    x = make_extractor()
    assert not x.extract('{"a": 1}', "json").text_fallback
    assert not x.extract("<p>hello</p>", "html").text_fallback
    assert not x.extract("no markup at all", "text").text_fallback
    assert not x.extract("{broken", "auto").text_fallback


def test_html_that_is_not_html_falls_back() -> None:
    x = make_extractor()
    no_tags = x.extract("just words https://cdn.example.com/a.jpg", "html")
    assert no_tags.text_fallback and {r.value for r in no_tags.refs} == {"a.jpg"}
    binary = x.extract("<p>\x00\x01\x02 https://cdn.example.com/b.jpg</p>", "html")
    assert binary.text_fallback and {r.value for r in binary.refs} == {"b.jpg"}


def test_unknown_format_is_scanned_as_text_and_flagged() -> None:
    result = make_extractor().extract("https://cdn.example.com/a.jpg", "yaml")
    assert result.text_fallback and {r.value for r in result.refs} == {"a.jpg"}


def test_base_url_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not a base URL"):
        make_extractor(cdn_base_urls=("https:///nohost",))


# --- hostile input: finishes, finds what is there, raises nothing ---

@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", [
    "<" * 10_000_000,
    "a" * 10_000_000,
    "//" * 2_000_000,
    "https://cdn.example.com/" + "a" * 5_000_000,
    "https://cdn.example.com/" + "%" * 2_000_000,
    "https://cdn.example.com/" + ")" * 2_000_000,
    "https://cdn.example.com/a" + " b" * 2_000_000,
    '"https://cdn.example.com/' + "a " * 2_000_000,
    "&#" * 2_000_000 + "&amp;" * 1_000_000,
    "\\u" * 2_000_000 + "\\/" * 1_000_000,
    "[media id" + " " * 5_000_000,
    "[media" * 1_000_000,
    "s3://media/" * 500_000,
], ids=["lt", "long-line", "slashes", "long-url", "percent", "parens", "words", "quoted-words",
        "entities", "json-escapes", "shortcode-spaces", "shortcode-repeats", "s3-repeats"])
def test_hostile_input_is_survived(text: str) -> None:
    x = make_extractor(known=["a.jpg"])
    for fmt in ("html", "json"):
        result = x.extract(text, fmt)
        for ref in result.refs:
            assert len(ref.value.encode()) <= 1024


@pytest.mark.timeout(60)
def test_deeply_nested_json_falls_back() -> None:
    text = "[" * 200_000 + '"https://cdn.example.com/deep.jpg"' + "]" * 200_000
    result = make_extractor().extract(text, "json")
    assert result.text_fallback
    assert {r.value for r in result.refs} == {"deep.jpg"}


@pytest.mark.timeout(60)
def test_binary_junk() -> None:
    rng = random.Random(3)
    junk = bytes(rng.getrandbits(8) for _ in range(2_000_000))
    text = junk.decode("latin-1") + " https://cdn.example.com/after-junk.jpg "
    text += junk.decode("utf-8", "surrogateescape")  # lone surrogates, as a careless reader makes
    result = make_extractor().extract(text, "html")
    assert result.text_fallback
    assert ("after-junk.jpg", "public_url") in {(r.value, r.form) for r in result.refs}


def test_lone_surrogate_in_url_gives_no_reference() -> None:
    text = '<img src="https://cdn.example.com/a\udcff.jpg"> https://cdn.example.com/\\ud800x.jpg'
    assert make_extractor().extract(text, "html").refs == set()


# --- property: a random key embedded in each form is found ---

KEY_CHARS = st.sampled_from(list("abcXYZ019-_.~ +%,()!'=@$;&[]") + ["é", "ü", "文", "😀", "/"])
KEYS = st.text(KEY_CHARS, min_size=1, max_size=40).filter(
    lambda k: not k.startswith("/") and not k.endswith("/") and "//" not in k)


def _embeddings(key: str) -> list[tuple[str, str]]:
    enc = quote(key, safe="/")
    enc_loose = quote(key, safe="/+()!,;=@$'")
    url = f"https://cdn.example.com/{enc}"
    return [
        (f'<img src="{html.escape(url)}">', "html"),
        (f'<img src="{html.escape("https://cdn.example.com/" + enc_loose)}">', "html"),
        (f'<img src="{html.escape("https://cdn.example.com/" + key)}" alt="x">', "html"),
        (f'<img srcset="{html.escape(url)} 1x, https://cdn.example.com/z.jpg 2x">', "html"),
        (f"see {url} here", "text"),
        (f"see {url}.", "text"),
        (f"[link]({url})", "markdown"),
        (json.dumps({"a": {"b": [f"https://media.s3.eu-west-1.amazonaws.com/{enc}"]}}), "json"),
        (json.dumps({"u": f"s3://media/{key}"}), "json"),
        (json.dumps({"u": f"s3://media/{key}"}, ensure_ascii=False), "json"),
        (f"https://s3.amazonaws.com/media/{enc}?X-Amz-Signature=abc&X-Amz-Expires=60", "text"),
        (f'<div style="background:url(&quot;{html.escape(url)}&quot;)">', "html"),
    ]


@hyp_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS)
def test_random_key_is_found_in_every_form(key: str) -> None:
    x = make_extractor(known=[key, "z.jpg"])
    for text, fmt in _embeddings(key):
        values = {r.value for r in x.extract(text, fmt).refs}
        assert key in values, (text, values)


@hyp_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, dangling=st.booleans())
def test_skipped_lookups_change_no_reference(key: str, dangling: bool) -> None:
    # The same hashes with and without the profile: skipping the lookups the profile rules
    # out must give exactly the references that looking everything up gives.
    keys = ["z.jpg"] if dangling else [key, "z.jpg"]
    profiled = make_extractor(keys)
    unprofiled = profiled.with_known_keys(KnownKeys(profiled.known_keys._hashes))
    for text, fmt in _embeddings(key) + [(f"see https://cdn.example.com/{key}, and more", "text"),
                                         (f"s3://media/{key} and https://cdn.example.com/{key}).",
                                          "text")]:
        assert profiled.extract(text, fmt) == unprofiled.extract(text, fmt), text


# --- issue 10: bare keys, media ids anywhere, mentions ---

@pytest.mark.parametrize(("text", "found"), [
    ("blog/2024/a.png", {("blog/2024/a.png", "bare_key")}),  # Django's FileField, as stored
    ("A title\n  /blog/2024/a.png  \nmore text", {("blog/2024/a.png", "bare_key")}),
    ('"blog/2024/a.png"', {("blog/2024/a.png", "bare_key")}),
    ("blog/2024/unknown.png", set()),  # only keys the catalog knows: no dangling noise
], ids=["whole-text", "a-line-of-a-row", "quoted", "unknown"])
def test_bare_key_in_a_field_is_a_reference(text: str, found: set[tuple[str, str]]) -> None:
    assert keys_of(text, known=["blog/2024/a.png"]) == found


def evidence_extractor(keys: list[str] | None = None,
                       known: list[str] | None = None) -> ReferenceExtractor:
    ids = KnownKeys.from_keys([f"{BUCKET}\0{k}" for k in known or []])
    return make_extractor(known).with_evidence(MentionMatcher.from_keys(keys or []), ids)


@pytest.mark.parametrize("spelling", [
    "{id}", "{upper}", "{undashed}",
], ids=["dashed", "uppercase", "undashed-32-hex"])
def test_a_known_media_id_anywhere_is_a_reference(spelling: str) -> None:
    media_id = media_id_for(BUCKET, "k/a.png")
    text = "image: " + spelling.format(id=media_id, upper=media_id.upper(),
                                       undashed=media_id.replace("-", "")) + " end"
    found = evidence_extractor(known=["k/a.png"]).extract(text)
    assert found.refs == {Ref("media_id", media_id, "media_id")}
    assert "image:" in found.snippets[media_id]


def test_media_ids_read_from_the_catalog_are_found_anywhere() -> None:
    # The stored media_id column, no hashing: the same set as bucket NUL key's hashes.
    keys = ["k/a.png", "café/b c.jpg", "x"]
    con = duckdb.connect()
    con.execute("CREATE TABLE media_files (bucket VARCHAR, key VARCHAR, media_id UUID)")
    con.executemany("INSERT INTO media_files VALUES (?, ?, ?)",
                    [[b, k, media_id_for(b, k)] for b in (BUCKET, "other") for k in keys])
    ids = KnownKeys.media_ids_from_duckdb(
        con, "SELECT media_id FROM media_files WHERE bucket = ?", [BUCKET])
    assert len(ids) == 3
    assert ids.contains([key_hash(f"{BUCKET}\0{k}") for k in [*keys, "y"]]) == [
        True, True, True, False]
    x = make_extractor().with_evidence(None, ids)
    for key in keys:
        media_id = media_id_for(BUCKET, key)
        for spelling in (media_id, media_id.upper(), media_id.replace("-", "")):
            assert x.extract(f"id={spelling};").refs == {Ref("media_id", media_id, "media_id")}
    assert x.extract(media_id_for("other", "x")).refs == set()


def test_unknown_uuids_are_ignored() -> None:
    x = evidence_extractor(known=["k/a.png"])
    media_id = media_id_for(BUCKET, "k/a.png")
    assert x.extract(f"{UUID} ab{media_id.replace('-', '')[:-1]}").refs == set()


@pytest.mark.parametrize("form", [
    "https://img.example.com/{id}-1200w.jpg", '<img id="media-{id}">', "image{id}", "{id}a",
    "/img/{id}-thumb.webp", "img-{id}.jpg", "--{id}--", "0x{hex}", "file{hex}", "{hex}-sm.png",
    "img-{hex}.png", "ab{hex}cd", "{id}-{id2}",
], ids=["suffix-width", "media-prefix", "hex-letter-before", "hex-letter-after", "suffix-thumb",
        "img-prefix", "double-dashes", "hex-0x", "hex-file", "hex-dash-after", "hex-dash-before",
        "hex-both-sides", "two-ids-dashed-together"])
@pytest.mark.parametrize("case", ["lower", "upper"])
def test_a_known_media_id_is_found_whatever_is_next_to_it(form: str, case: str) -> None:
    # Issue 10 (hostile review): a "-" or a hex digit beside the id used to hide it.
    media_id = media_id_for(BUCKET, "k/a.png")
    other = media_id_for(BUCKET, "k/b.png")
    text = form.format(id=media_id, hex=media_id.replace("-", ""), id2=other)
    text = text.upper() if case == "upper" else text
    found = evidence_extractor(known=["k/a.png", "k/b.png"]).extract(text)
    expected = {Ref("media_id", media_id, "media_id")}
    if "{id2}" in form:
        expected.add(Ref("media_id", other, "media_id"))
    assert found.refs == expected, text


def test_every_window_of_a_long_hex_run_is_tried() -> None:
    from media_pipeline.references.mentions import scan_text

    media_id = media_id_for(BUCKET, "k/a.png").replace("-", "")
    run = "0123456789abcdef" + media_id + "fedcba"
    hits, _ = scan_text(run.encode())
    assert [h for h, _, _ in hits].count(media_id) == 1
    assert len([h for h, _, _ in hits]) == len(run) - 31  # one per end position
    assert evidence_extractor(known=["k/a.png"]).extract(run).refs == {
        Ref("media_id", media_id_for(BUCKET, "k/a.png"), "media_id")}


@pytest.mark.parametrize("spelling", [
    "see blog/my photo.png here",
    "blog/my%20photo.png", "blog%2Fmy%20photo.png", "blog%2fmy+photo.png", "blog/my+photo.png",
    '{"p": "blog\\/my photo.png"}', '"blog\\u002Fmy photo.png"', "'blog\\x2Fmy photo.png'",
    "xxblog/my photo.pngxx",
], ids=["raw", "pct20", "slash-encoded", "lower-hex-plus", "plus", "json-slash", "json-u",
        "js-x", "inside-a-token"])
def test_a_mention_in_any_spelling_protects_a_file(spelling: str) -> None:
    found = evidence_extractor(["blog/my photo.png"]).extract(spelling)
    assert Ref("key", "blog/my photo.png", "mention") in found.refs
    assert found.snippets["blog/my photo.png"]


@pytest.mark.parametrize(("key", "text"), [
    ("a&b.png", "x a&amp;b.png x"), ("café.png", "<p>caf&eacute;.png</p>"),
    ("café.png", unicodedata.normalize("NFD", "café.png")),
])
def test_mentions_through_entities_and_unicode_forms(key: str, text: str) -> None:
    assert Ref("key", key, "mention") in evidence_extractor([key]).extract(text, "html").refs


def _django_uri(key: str) -> str:  # django.utils.encoding.filepath_to_uri
    return quote(key, safe="/~!*()'")


def _encode_uri(key: str) -> str:  # JavaScript's encodeURI
    return quote(key, safe="/;,?:@&=+$-_.!~*'()#")


def _every_byte(key: str, digits: str = "02X") -> str:
    return "".join("%" + format(b, digits) for b in key.encode())


@pytest.mark.parametrize(("key", "text"), [
    ("blog/my photo (1).png",
     f'<img src="https://img.other.net/media/{_django_uri("blog/my photo (1).png")}">'),
    ("blog/my photo (1).png", f"https://img.other.net/{_encode_uri('blog/my photo (1).png')}"),
    ("blog/it's!*~.png", "https://x.net/blog/it%27s!*~.png"),
    ("blog/a,b (2).png", f"https://x.net/{_django_uri('blog/a,b (2).png')}"),
    ("blog/hero.png", "x blog/her%6F.png x"),
    ("blog/hero.png", "x " + _every_byte("blog/hero.png") + " x"),
    ("blog/hero.png", "x " + _every_byte("blog/hero.png", "02x") + " x"),
    ("blog/café.png", "x blog%2fcaf%C3%a9.png x"),
    ("blog/hero.png", "<p>blog/hero&period;png</p>"),
    ("blog/hero.png", "<p>blog&sol;hero&period;png</p>"),
    ("blog/x&y.png", '<img src="https://x.net/blog/x&amp;amp;y.png">'),
    ("blog/my photo (1).png", "https://x.net/blog/my+photo+(1).png"),
    ("blog/ünï 2.png", "<p>blog/&uuml;n&iuml;%202.png</p>"),
    ("blog/hero.png", "https://x.net/?u=blog%252Fhero.png"),
], ids=["django-filepath-to-uri", "js-encodeURI", "quote-leaves-punctuation", "django-commas",
        "one-byte-encoded", "every-byte-upper", "every-byte-lower", "mixed-case-escapes",
        "named-entity-period", "named-entities", "double-amp", "plus-spaces-raw-parens",
        "entities-and-percent", "double-percent"])
@pytest.mark.parametrize("engine", ["hyperscan", "ahocorasick"])
def test_a_partly_encoded_key_is_a_mention_on_any_host(key: str, text: str,
                                                       engine: str) -> None:
    # Issue 10 (hostile review): each spelling used to be no mention, and the file was purged.
    x = make_extractor().with_evidence(MentionMatcher([key, "blog/other.png"], engine), None)
    found = x.extract(text, "html")
    assert Ref("key", key, "mention") in found.refs, text
    assert Ref("key", "blog/other.png", "mention") not in found.refs
    assert found.snippets[key]


def test_above_the_vectorscan_threshold_mixed_case_escapes_are_mentions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from media_pipeline.references import mentions

    monkeypatch.setattr(mentions, "HYPERSCAN_MAX_KEYS", 1)  # what 20,001 keys would choose
    matcher = MentionMatcher.from_keys(["blog/café.png", "blog/my photo (1).png"])
    assert matcher is not None and matcher.engine == "ahocorasick"
    x = make_extractor().with_evidence(matcher, None)
    for key, text in [("blog/café.png", "blog%2fcaf%C3%A9.png"),
                      ("blog/café.png", "blog%2Fcaf%c3%A9.png"),
                      ("blog/my photo (1).png", "blog%2fmy%20photo%20(1).png")]:
        assert Ref("key", key, "mention") in x.extract(text).refs, text


def test_decoded_views_are_made_once_and_only_when_needed() -> None:
    from media_pipeline.references.mentions import mention_views

    plain = "<p>blog/her%6F.png &amp; more</p>"
    views = mention_views(plain, plain)
    assert "<p>blog/hero.png & more</p>" in views
    assert len(views) == len(set(views)) <= 5


H = "http://127.0.0.1:9312/media"


@pytest.mark.parametrize(("key", "text", "fmt"), [
    ("blog/nl.png", f'<img src="{H}/blog/\nnl.png">', "html"),
    ("blog/tab.png", f'<img src="{H}/blog/\ttab.png">', "html"),
    ("blog/cr.png", f'<img src="{H}/blog/c\r\nr.png">', "html"),
    ("blog/enttab.png", f'<img src="{H}/blog/ent&#9;tab.png">', "html"),
    ("blog/entnl.png", f'<img src="{H}/blog/ent&NewLine;nl.png">', "html"),
    ("blog/bs.png", '<img src="http://127.0.0.1:9312\\media\\blog\\bs.png">', "html"),
    ("blog/pdot.png", f'<img src="{H}/blog/%2e/pdot.png">', "html"),
    ("blog/pdot2.png", f'<img src="{H}/blog/sub/%2E%2E/pdot2.png">', "html"),
    ("blog/css.png", '<div style="background:url(http\\:\\/\\/127.0.0.1\\:9312\\/media'
                     '\\/blog\\/css\\.png)"></div>', "html"),
    ("blog/cssesc.png", f"<style>.x{{background:url({H}/blog/\\63 ssesc.png)}}</style>", "html"),
    ("blog/b(2).png", f"<style>.a{{background:url({H}/blog/b\\(2\\).png)}}</style>", "html"),
    ("blog/c(3).png", f"![x]({H}/blog/c\\(3\\).png)", "markdown"),
    ("blog/md_x.png", f"![a]({H}/blog/md\\_x.png)", "markdown"),
], ids=["newline", "tab", "crlf", "entity-tab", "entity-newline", "backslashes", "pct-dot",
        "pct-dot-dot", "css-escapes", "css-hex", "css-paren", "md-paren", "md-underscore"])
def test_spellings_a_browser_resolves_are_mentions(key: str, text: str, fmt: str) -> None:
    found = evidence_extractor([key]).extract(text, fmt)
    assert {r.value for r in found.refs if r.kind == "key"} >= {key}
    assert found.snippets[key]


def test_normalised_views_only_when_the_text_needs_them() -> None:
    from media_pipeline.references.mentions import mention_views

    plain = '<img src="/media/a.png"> {"u": "x"}'
    assert mention_views(plain, plain) == []
    json_text = '{"u": "http:\\/\\/h\\/a.png", "t": "a \\"b\\""}'  # JSON's own escapes
    assert mention_views(json_text, unescape(json_text)) == []


def test_a_proper_form_beats_a_mention_and_only_at_risk_keys_are_mentioned() -> None:
    from media_pipeline.references.scan import document_rows

    x = evidence_extractor(["a.png"])
    keys, _, _, _ = document_rows(x, ("page", "1", '<img src="https://cdn.example.com/a.png">',
                                      "html"))
    assert keys == {"a.png": "public_url"}
    assert evidence_extractor(["a.png"]).extract("b.png").refs == set()


def test_mention_engines_agree() -> None:
    keys = ["blog/a b.png", "x/y.jpg", "café.png", "100%.png"]
    texts = [b"blog%2Fa+b.png and x/y.jpg", "caf\u00e9.png 100%25.png".encode(), b"nothing"]
    for text in texts:
        hs = MentionMatcher(keys, "hyperscan").find(text)
        ac = MentionMatcher(keys, "ahocorasick").find(text)
        assert {k for k, _, _ in hs} == {k for k, _, _ in ac}
    assert MentionMatcher.from_keys([]) is None
    again = pickle.loads(pickle.dumps(MentionMatcher.from_keys(keys)))
    assert {k for k, _, _ in again.find(b"x/y.jpg")} == {"x/y.jpg"}


@pytest.mark.parametrize(("text", "plain"), [
    ("a\\x2Fb", "a/b"), ("a\\u{2F}b", "a/b"), ("a\\u{1F600}b", "a\U0001F600b"),
    ("a\\u{110000}b", "a\\u{110000}b"),
])
def test_unescape_javascript_escapes(text: str, plain: str) -> None:
    assert unescape(text) == plain


SPELLERS = [
    lambda k: k, lambda k: quote(k, safe="/"), lambda k: quote(k, safe=""),
    lambda k: quote_plus(k, safe="/"),
    lambda k: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(k, safe="")),
    lambda k: html.escape(k, quote=False), lambda k: json.dumps(k)[1:-1].replace("/", "\\/"),
    lambda k: unicodedata.normalize("NFD", k),
]


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, speller=st.sampled_from(range(len(SPELLERS))),
       engine=st.sampled_from(["hyperscan", "ahocorasick"]))
def test_any_spelling_of_an_at_risk_key_is_a_mention(key: str, speller: int,
                                                     engine: str) -> None:
    x = make_extractor().with_evidence(MentionMatcher([key], engine), None)
    text = f"<p>before {SPELLERS[speller](key)} after</p>"
    refs = x.extract(text, "html").refs
    assert any(r.value == key for r in refs), (text, refs)


# --- mentions in decoded runs: never fewer than in decoded whole documents ---

PIECES = st.sampled_from([
    "&amp;", "&amp;amp;", "&#47;", "&#x2F;", "&sol;", "&period;", "&eacute;", "&copy;", "&amp",
    "&", "%2F", "%2f", "%25", "%252F", "%20", "%C3%A9", "%c3", "%2e", "%2E%2E", "+", "/./",
    "/../", "/.", "\\", "\\x2F", "\t", "\n", " ", '"', "'", "<", ">", "(", ")", "=", ":",
    ";", "#", "a", "b", "/", ".", "-",
])


@hyp_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(KEYS, min_size=1, max_size=3), parts=st.lists(
    st.one_of(PIECES, st.tuples(st.integers(0, 2), st.sampled_from(range(len(SPELLERS))),
                                st.integers(0, 40))), max_size=30),
       engine=st.sampled_from(["hyperscan", "ahocorasick"]))
def test_decoded_runs_find_every_mention_whole_documents_find(
        keys: list[str], parts: list[Any], engine: str) -> None:
    # The scan decodes only the runs between breaks that hold something to decode; the whole
    # document decoded (what mention_views does without breaks) must find nothing more.
    text = ""
    for part in parts:
        if isinstance(part, tuple):  # a key, spelled some way, perhaps cut short
            which, speller, cut = part
            spelled = SPELLERS[speller](keys[which % len(keys)])
            part = spelled[:cut] if cut < len(spelled) and cut % 3 == 0 else spelled
        text += part
    matcher = MentionMatcher(keys, engine)
    whole = pickle.loads(pickle.dumps(matcher))
    whole.breaks = ""  # no breaks: the whole-document copies
    runs = make_extractor().with_evidence(matcher, None)
    documents = make_extractor().with_evidence(whole, None)
    for fmt in ("html", "text"):
        found = {r.value for r in runs.extract(text, fmt).refs if r.form == "mention"}
        expected = {r.value for r in documents.extract(text, fmt).refs if r.form == "mention"}
        assert found >= expected, text


@hyp_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(KEYS, min_size=1, max_size=3), parts=st.lists(
    st.one_of(PIECES, st.sampled_from(["0123456789abcdef" * 2, "%2F", "%252F", "/x\n", "%2e",
                                       "01234567-89ab-cdef-0123-456789abcdef"]),
              st.tuples(st.integers(0, 2), st.sampled_from(range(len(SPELLERS))))), max_size=20))
@example(keys=["X"], parts=["&#x2F;"])  # found by CI: any case, "x" in the escape
def test_one_vectorscan_pass_finds_what_the_two_passes_find(keys: list[str],
                                                             parts: list[Any]) -> None:
    # MentionMatcher.scan: the spellings and scan_text's patterns in one database, shipped to
    # the workers serialised; it finds what a literal-only matcher and scan_text find.
    from media_pipeline.references.mentions import scan_text

    text = "".join(SPELLERS[p[1]](keys[p[0] % len(keys)]) if isinstance(p, tuple) else p
                   for p in parts).encode("utf-8", "surrogatepass")
    matcher = MentionMatcher(keys, "hyperscan")
    # Vectorscan matches the spellings in any (ASCII) case; Aho-Corasick only spells out
    # lower-case percent escapes, so it finds a subset (a key "X" in "&#x2F;": only the first)
    expected = {k for k in keys if any(s.lower() in text.lower() for s in spellings(k))}
    literal = {k for k, _, _ in MentionMatcher(keys, "ahocorasick").find(text)}
    hits, triggers = scan_text(text)
    for m in (matcher, pickle.loads(pickle.dumps(matcher))):
        found, uuid_hits, found_triggers = m.scan(text)
        assert {k for k, _, _ in found} == expected and literal <= expected
        assert all(text[start:end].lower() in {s.lower() for s in spellings(k)}
                   for k, start, end in found)
        assert sorted(uuid_hits) == sorted(hits) and found_triggers == triggers


@hyp_settings(max_examples=300, deadline=None)
@given(parts=st.lists(PIECES, max_size=40), breaks=st.sampled_from(
    ["\t\n\r\f\v\"'<>", " \t\n\r\f\v\"'<>()", "<>", "'", "\n\"()"]))
def test_decoded_runs_are_the_runs_between_breaks_that_hold_something_to_decode(
        parts: list[str], breaks: str) -> None:
    # The runs are found with find/rfind/a regex instead of splitting: the same runs.
    from media_pipeline.references.mentions import _decoded_copies, _dots, decoded_runs

    text = "".join(parts)
    runs = [r for r in re.split(f"[{re.escape(breaks)}]", text)
            if "&" in r or "%" in r or "+" in r]
    expected = ""
    if runs:
        copies = breaks[0].join(_decoded_copies(breaks[0].join(runs)))
        dotted = _dots(copies)
        expected = copies if dotted == copies else copies + breaks[0] + dotted
    assert decoded_runs(text, breaks) == expected


def test_a_partly_encoded_key_in_one_run_of_a_long_page_is_a_mention() -> None:
    from media_pipeline.references.mentions import decoded_runs

    key = "blog/my photo (1).png"
    page = ("<p>" + "prose and more " * 200 + "</p>"
            f'<img alt="x" src="https://img.other.net/{_django_uri(key)}?a=1&amp;b=2">'
            + "<p>" + "tail text " * 200 + "</p>")
    matcher = MentionMatcher([key, "blog/other.png"])
    assert matcher.breaks == "\t\n\r\f\v\"'<>"  # the key holds a space and parentheses
    runs = decoded_runs(page, matcher.breaks)
    assert key in runs and len(runs) < 200  # the src value, not the prose around it
    found = make_extractor().with_evidence(matcher, None).extract(page, "html")
    assert {r.value for r in found.refs if r.form == "mention"} == {key}
    assert key in found.snippets[key]


URL_PIECES = st.sampled_from([
    "https://cdn.example.com/", "//cdn.example.com/", "http://img.example.net/",
    "https://media.s3.amazonaws.com/", "s3://media/", '<img src="', '<img srcset="', "'", '"',
    " ", "  ", ", ", ",", " 2x", " 480w", " 1.5x", ".", "..", ".)", "!", "]", "}", ")", "(",
    "%20", "%2F", "%2e", "%C3%A9", "%zz", "é", "e\u0301", "/", "/./", "a", "b.jpg", "a b",
    "?x=1", "#f", "&amp;", "&", "<", ">", "\n",
])
KNOWN_SETS = [[], ["a.jpg"], ["b.jpg.", "a b"], ["a%20b.jpg", "x"], ["a.jpg 2x", "b.jpg"],
              ["é", "é/b.jpg", "e\u0301"], ["b.jpg)", "b.jpg]"]]


@hyp_settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.function_scoped_fixture])
@given(parts=st.lists(URL_PIECES, max_size=25), known=st.sampled_from(range(len(KNOWN_SETS) + 1)),
       fmt=st.sampled_from(["html", "text"]))
def test_the_fast_paths_give_the_general_rules_answer(
        parts: list[str], known: int, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from media_pipeline.references import extract

    text = "".join(parts)
    x = make_extractor(KNOWN_SETS[known] if known < len(KNOWN_SETS) else None)
    fast = x.extract(text, fmt)
    with monkeypatch.context() as patch:
        patch.setattr(extract, "_FAST_PATHS", False)
        general = x.extract(text, fmt)
    assert fast == general, text


@hyp_settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from([
    "&", "#", ";", "x", "X", "amp", "AMP", "lt", "not", "notin", "eacute", "quot", "35", "x2F",
    "0", "-", "=", " ", "\n", "\t", "a", "Z", "9", "é", "<", "copy", "&amp;", "ampX", "nbsp",
    "A" * 31]), max_size=25).map("".join))
def test_the_mention_pass_decodes_entities_like_html_unescape(text: str) -> None:
    from media_pipeline.references.mentions import html_unescape

    assert html_unescape(text) == html.unescape(text)


@hyp_settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from([
    "%", "2", "F", "f", "C3", "A9", "a9", "E2", "82", "AC", "ff", "zz", "%25", "%2F", "%C3",
    "%A9", "%E2%82", "%E2", "%82", "%AC", "%F0%9F", "%98%80", "+", " ", "a", "/", "\\", "\\x",
    "é", "€", "😀", "\u00a9", "\ud800", "\n", "\x00"]), max_size=25)
    .map("".join))
def test_the_mention_pass_decodes_percent_escapes_like_unquote(text: str) -> None:
    from urllib.parse import unquote

    from media_pipeline.references.mentions import percent_unquote

    assert percent_unquote(text) == unquote(text)
