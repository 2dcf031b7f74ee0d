"""Find every reference to our media files in a piece of content.

A missed reference means a used file gets deleted, so the extractor is format-agnostic: it
undoes the escapes content wraps URLs in (JSON ``\\/`` and ``\\u002F``; HTML entities — in the
whole text those that can shape a URL such as ``&quot;`` and ``&#x2F;``, every other one such as
``&amp;`` inside each URL found; up to three layers deep, e.g. JSON inside an HTML attribute
inside JSON), then looks for every known URL prefix anywhere in the text, whatever markup
surrounds it. ``srcset`` lists, Markdown, CSS
``url(...)`` and plain prose need no parser of their own: what differs between them is only where
a URL *ends*, and that is decided from the character before the URL and the characters after it.

Forms recognised (``Ref.form``): ``public_url`` (``settings.custom_domain``), ``cdn_url``
(``settings.cdn_base_urls``), ``s3_virtual_host`` (``BUCKET.s3[.-]…amazonaws.com``, incl. legacy
dash, dualstack, accelerate and website hosts), ``s3_path_style``
(``s3[.-]….amazonaws.com/BUCKET``), ``endpoint_url`` (``settings.endpoint_url``, path-style or
virtual-host), ``s3_uri`` (``s3://BUCKET/``, also ``s3a://`` and ``s3n://``), each over http, https
or protocol-relative ``//``; and ``shortcode`` (``settings.shortcode_pattern``, a reference by
media id). Hosts match case-insensitively and must be followed by ``/``, so look-alikes
(``evil-cdn.example.com``, ``cdn.example.com.evil.net``) and other buckets never match.

Where a URL ends — the ambiguity and how it is resolved
--------------------------------------------------------
Keys may contain spaces, commas, parentheses, ``+`` and ``%``, so no single rule can say where a
URL stops. For each occurrence the extractor builds a short list of *readings*:

- inside quotes (``"…"`` or ``'…'``) the value runs to the closing quote; the reading cut at the
  first whitespace is added (``srcset`` descriptors, a Markdown title) and so is the one cut at a
  comma (``srcset`` written without spaces);
- elsewhere the URL ends at whitespace, a quote, ``<``, ``>`` or a control character, and the
  readings that run on over up to three more spaces are added (a raw key with spaces in prose);
- for http(s) URLs the query (``?X-Amz-Signature=…``) and ``#fragment`` are dropped and the path is
  percent-decoded exactly once with ``+`` kept as a plus (S3 semantics); for ``s3://`` URIs the
  key is taken as written;
- trailing punctuation ``.,;:!?*_~)]}`` is peeled off one character at a time, each step a
  reading (``…a.jpg).`` gives ``a.jpg).``, ``a.jpg)``, ``a.jpg``).

Every reading that names a key the catalog knows (:class:`KnownKeys`) is kept — usually exactly
one; keeping two when both exist costs at most a delayed purge, missing one loses a file. Only when
no reading is known, the *fallbacks* are looked up the same way: the NFC and NFD forms of a
non-ASCII reading (keys are compared exactly as stored, so the form as written comes first), the
path as written of an http URL (a key with a literal ``%`` pasted unescaped) and the decoded form
of an ``s3://`` URI. When no reading or fallback is known, exactly one *canonical* reading is kept
and later reported as dangling: the value cut at whitespace when what follows is a ``srcset``
descriptor, at a comma that starts another URL, with trailing punctuation removed GFM-style (a
``)`` only while unbalanced), query and fragment dropped, percent-decoded (http). Canonical
readings that cannot be S3 keys (empty, ending in ``/``, not valid UTF-8, over 1,024 bytes) are
dropped, so links to folders make no noise.

Speed, without changing any answer: :meth:`ReferenceExtractor.extract_many` does the lookups of
a whole batch of documents in one sorted bulk call per tier; a reading the known keys' profile
rules out (:meth:`KnownKeys.may_hold`: a ``%`` or a trailing punctuation mark or a digit after
whitespace that no known key has) counts as not known without a lookup, so an occurrence whose
other readings and fallbacks are all ruled out is answered by its canonical reading at once —
the answer the lookups would give. Whole-text passes call back into Python only per escape or
entity found, and not at all for a round that cannot find one.

Hostile input: no regular expression here has nested or overlapping quantifiers that could
backtrack (repeats are single character classes, bounded, or start with a literal), and a URL is
never looked at beyond ``MAX_URL_CHARS`` characters, so time is linear in the text. The
shortcode pattern comes from settings; the default is linear too (an operator who sets their own
owns its complexity).

Formats: ``html`` and ``json`` are checked for being what they claim (JSON must parse, HTML must
contain a tag and no NUL or U+FFFD, the marks of binary junk); when they are not, the text is
scanned all the same and ``Extraction.text_fallback`` is set so the scan can count it. ``auto``,
``markdown`` and ``text`` never fall back; an unknown format is scanned as text and counted as a
fallback."""

from __future__ import annotations

import codecs
import html
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple
from urllib.parse import unquote, urlsplit

from media_pipeline.references.document import FORMATS
from media_pipeline.references.known_keys import KnownKeys
from media_pipeline.references.mentions import (
    ENCODED_URL_TRIGGER,
    MentionMatcher,
    mention_views,
    scan_text,
    snippet,
)
from media_pipeline.settings import Settings

MAX_KEY_BYTES = 1024
MAX_URL_CHARS = 4096  # an S3 key is ≤ 1,024 bytes: ≤ 3,072 chars percent-encoded, plus the prefix
_MAX_TRIMS = 8
_TRAILING = ".,;:!?*_~)]}"
_TRAILING_OR_SLASH = _TRAILING + "/"
_ALWAYS_TRIMMED = ".,;:!?*_~"
_CLOSERS = {")": "(", "]": "[", "}": "{"}

_UNQUOTED_END = re.compile(r"[\s\"'<>`\\\x00-\x1f\x7f]")
# Opening character -> (its closing character, where a value inside them must stop).
_QUOTED_END = {
    '"': ('"', re.compile(r"[\"<>\n\r\x00]")),
    "'": ("'", re.compile(r"['<>\n\r\x00]")),
    "<": (">", re.compile(r"[<>\"'\n\r\x00]")),  # Markdown autolink <…>
}
_EXTRA_WORDS = 3  # unquoted: readings that run over up to 3 more spaces (``s3://b/my file.jpg``)
_SRCSET_DESCRIPTOR = re.compile(r"\s+[0-9][0-9.]{0,12}[wxh]?(?![^\s,\"'<>])")
_URL_AFTER_COMMA = re.compile(r",\s*(?:https?:|s3[an]?:|//)", re.IGNORECASE)
_JSON_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}(?:\\u[0-9a-fA-F]{4})*|[\"\\/bfnrt]"
                          r"|x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\})")  # and JavaScript's
# Entities that change where a URL is found or where it ends, decoded in the whole text; every
# other entity (``&amp;`` above all) can only sit inside a URL and is decoded there.
_STRUCTURAL_ENTITY = re.compile(
    r"&(?:#(?:[0-9]{1,7}|[xX][0-9a-fA-F]{1,6});?"
    r"|(?:quot|apos|sol|lt|gt|colon|lpar|rpar|nbsp|Tab|NewLine);)")
_SIMPLE_ESCAPES = {'\\"': '"', "\\\\": "\\", "\\/": "/", "\\b": "\b", "\\f": "\f",
                   "\\n": "\n", "\\r": "\r", "\\t": "\t"}
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# After a prefix: the longest run of characters that can neither end a URL nor need more than
# percent-decoding (3,072: a 1,024-byte key, every byte escaped).
_PLAIN_TAIL = r"[^\s\"'<>`\\\x00-\x1f\x7f,&?#]{0,3072}"
_QUOTES = ("'", '"')
_QUERY_MARKS = ("?", "#")
_UNQUOTED_CLEAN_ENDS = ("", "\t", "\n", "\r", '"', "'", "<", ">")
_FAST_PATH_BREAKERS = re.compile(r"[\s,&%]")
_HTML_TAG = re.compile(r"<[A-Za-z!/?]")
_SCHEMES = (("https:", "http"), ("http:", "http"), ("s3a:", "s3"), ("s3n:", "s3"), ("s3:", "s3"))
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                             re.IGNORECASE)
# ``codecs.escape_decode`` (C, stable since Python 2, what pickle uses) decodes ``\xNN``: with
# every ``%`` of an ASCII path turned into ``\x`` it percent-decodes ~5x faster than a regex.
_escape_decode = codecs.escape_decode

# The settings' default shortcode pattern, rewritten so no two repeats can trade characters
# (the same language: ``[media id="…"]``, ``[media:…]``, ``[media=…]``, ``[media …]``).
_DEFAULT_SHORTCODE_LINEAR = (
    r"\[media(?:\s+id)?[=:\s]\s*+\"?(?P<id>[0-9a-fA-F-]{36})\"?\s*+\]"
)

# A media shortcode in any spelling: attributes in any order, any quoting (default pattern).
_MEDIA_TAG = re.compile(r"\[media(?=[\s:=\]])[^\[\]\n]{0,400}\]", re.IGNORECASE)
_TAG_UUID = re.compile(r"(?<![0-9a-fA-F-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9a-fA-F-])")
# A percent-encoded URL inside another one (Next.js /_next/image?url=, Cloudinary and imgix
# fetch URLs), perhaps encoded twice; it ends where the outer query goes on.
_ENCODED_URL = re.compile(r"(?:(?:https?|s3[an]?)%(?:25){0,2}3A)?%(?:25){0,2}2F%(?:25){0,2}2F"
                          r"[^\s\"'<>&#?]{1,12288}", re.IGNORECASE)
_URL_STARTS = ("http://", "https://", "//", "s3://", "s3a://", "s3n://")
# What a text must hold for _ENCODED_URL to match ("%2F", "%2f" or "%252"): one regex search
# instead of three substring searches.
_ENCODED_URL_HINT = re.compile(r"%(?:2[fF]|252)")
# Shortcuts in ``_find`` that give the answer the general rules give, without building the
# readings; off only in the test that checks they agree.
_FAST_PATHS = True
BARE_KEY_DOCUMENT_CHARS = 4096  # documents this short: each line may be a key as stored

RefKind = Literal["key", "media_id"]
RawExtraction = tuple[list[tuple[str, str]], list[tuple[str, str]], bool, dict[str, str]]
"""What :meth:`ReferenceExtractor.extract_raw` returns: ``(form, key)`` pairs, ``(media id,
form)`` pairs (``shortcode`` or ``media_id``), the text-fallback flag, and a snippet per key or
media id where one was noted (mentions and bare media ids)."""


class Ref(NamedTuple):
    """One reference: to a key in our bucket, or to a media id (shortcodes)."""

    kind: RefKind
    value: str
    form: str


@dataclass(slots=True)
class Extraction:
    refs: set[Ref] = field(default_factory=set)
    text_fallback: bool = False
    snippets: dict[str, str] = field(default_factory=dict)


class _Occurrence(NamedTuple):
    form: str
    canonical: str | None
    readings: tuple[str, ...]  # distinct, storable; canonical first when there is one
    # Looked up only when no reading is known, so expanded (NFC/NFD, storable, not a reading)
    # only then, by :func:`_expand_fallbacks`.
    given: tuple[str, ...] = ()
    decode_given: bool = False  # ``given`` are s3:// paths whose decoded forms are the fallbacks


class _Unescaper:
    """One round of JSON unescaping and of structural-entity decoding, noting what could have
    made new escapes for the next round (see :func:`unescape`)."""

    __slots__ = ("made_unicode", "made_numeric")

    def __init__(self) -> None:
        self.made_unicode = False  # a ``\\uXXXX`` was decoded: it can spell an entity
        self.made_numeric = False  # a numeric entity was decoded: it can spell another one

    def json_escape(self, m: re.Match[str]) -> str:
        s = m.group()
        if s[1] == "x" or s[2:3] == "{":  # JavaScript: \x2F, \u{2F}
            self.made_unicode = True
            point = int(s[2:4] if s[1] == "x" else s[3:-1], 16)
            return chr(point) if point <= 0x10FFFF else s
        if s[1] == "u":
            self.made_unicode = True
            decoded: str = json.loads(f'"{s}"')  # pairs surrogates like a JSON parser does
            return decoded
        return _SIMPLE_ESCAPES[s]

    def entity(self, m: re.Match[str]) -> str:
        s = m.group()
        if s[1] == "#":
            self.made_numeric = True
        decoded = _ENTITY_CACHE.get(s)
        if decoded is None:
            decoded = html.unescape(s)
            if len(_ENTITY_CACHE) < 4096:
                _ENTITY_CACHE[s] = decoded
        return decoded


_ENTITY_CACHE: dict[str, str] = {}


def _decode_entities(value: str, end: re.Pattern[str]) -> str:
    """Every entity in one URL (nested ``&amp;quot;`` too), cut where a decoded one ends it."""
    for _ in range(3):
        decoded = html.unescape(value)
        if decoded == value:
            break
        value = decoded
    stop = end.search(value)
    return value[:stop.start()] if stop else value


def _percent_decode(path: str) -> str:
    """Once, UTF-8, ``+`` kept; a path whose escapes are not UTF-8 is taken as written."""
    if "%" not in path:
        return path
    if "\\" not in path:
        try:  # the fast way; anything unusual (non-ASCII, "%zz", not UTF-8) falls through
            decoded: str = _escape_decode(path.replace("%", "\\x").encode("ascii"))[0].decode()
            return decoded
        except (ValueError, UnicodeError):
            pass
    try:
        return _PERCENT_RUN.sub(_percent_run, path)
    except UnicodeDecodeError:
        return path


def _percent_run(m: re.Match[str]) -> str:
    return bytes.fromhex(m.group().replace("%", "")).decode("utf-8")


def unescape(text: str) -> str:
    """Undo JSON string escapes and the HTML entities that shape URLs, up to three layers.

    Each round decodes JSON escapes, then entities, until a round changes nothing. A round's
    entity pass is skipped when it surely finds nothing: after a pass only a numeric entity
    (``&#38;quot;``) or a ``\\u`` escape can have spelled a new entity; named ones and simple
    escapes decode to characters no entity contains."""
    look_for_entities = True
    for _ in range(3):
        before = text
        step = _Unescaper()
        if "\\" in text:
            text = _JSON_ESCAPE.sub(step.json_escape, text)
        if (look_for_entities or step.made_unicode) and "&" in text:
            text = _STRUCTURAL_ENTITY.sub(step.entity, text)
        look_for_entities = step.made_numeric
        if text == before:
            break
    return text


def _storable(key: str) -> bool:
    """Could S3 hold this key: valid UTF-8 (no lone surrogates), at most 1,024 bytes."""
    if key.isascii():
        return len(key) <= MAX_KEY_BYTES
    try:
        return len(key.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:
        return False


def _trim_canonical(s: str) -> str:
    """GFM-style: drop trailing punctuation, and a closing bracket only while unbalanced."""
    while s:
        c = s[-1]
        unbalanced = c in _CLOSERS and s.count(c) > s.count(_CLOSERS[c])
        if c in _ALWAYS_TRIMMED or unbalanced:
            s = s[:-1]
        else:
            break
    return s


def _trim_readings(s: str) -> list[str]:
    out = [s]
    for _ in range(_MAX_TRIMS):
        if not s or s[-1] not in _TRAILING:
            break
        s = s[:-1]
        out.append(s)
    return out


def _base_parts(base: str) -> tuple[str, str]:
    """``cdn.example.com`` or ``https://cdn.example.com/media/`` -> (netloc, "/media")."""
    base = base.strip()
    if "//" not in base:
        base = "//" + base
    parts = urlsplit(base)
    if not parts.netloc:
        raise ValueError(f"not a base URL: {base!r}")
    return parts.netloc.lower(), parts.path.rstrip("/")


class ReferenceExtractor:
    """Finds references to ``bucket`` in text; see the module docstring for the rules."""

    def __init__(
        self,
        bucket: str,
        *,
        custom_domain: str | None = None,
        cdn_base_urls: Iterable[str] = (),
        endpoint_url: str | None = None,
        shortcode_pattern: str | None = Settings.shortcode_pattern,
        known_keys: KnownKeys | None = None,
    ) -> None:
        self.bucket = bucket
        self.known_keys = known_keys if known_keys is not None else KnownKeys.empty()
        b = re.escape(bucket)
        # (regex after "//", form, is_http); order matters: longer bases first.
        alternatives: list[tuple[str, str, bool]] = []
        bases = [(custom_domain, "public_url")] if custom_domain else []
        bases += [(url, "cdn_url") for url in cdn_base_urls]
        parsed = sorted(((_base_parts(u), form) for u, form in bases),
                        key=lambda item: -len(item[0][0] + item[0][1]))
        for (netloc, path), form in parsed:
            alternatives.append(
                (f"(?i:{re.escape(netloc)}){_port(netloc)}{re.escape(path)}/", form, True))
        aws = r"\.amazonaws\.com(?:\.cn)?(?::(?:443|80))?"
        alternatives.append((f"(?i:{b}\\.s3[a-z0-9.-]{{0,63}}{aws})/", "s3_virtual_host", True))
        alternatives.append((f"(?i:s3[a-z0-9.-]{{0,63}}{aws})/{b}/", "s3_path_style", True))
        if endpoint_url:
            netloc, path = _base_parts(endpoint_url)
            alternatives.append(
                (f"(?i:{re.escape(netloc)}){_port(netloc)}{re.escape(path)}/{b}/",
                 "endpoint_url", True))
            alternatives.append((f"(?i:{b}\\.{re.escape(netloc)})/", "endpoint_url", True))
        alternatives.append((f"{b}/", "s3_uri", False))
        self._forms: dict[str, tuple[str, bool]] = {}
        groups = []
        for i, (rx, form, is_http) in enumerate(alternatives):
            self._forms[f"g{i}"] = (form, is_http)
            groups.append(f"(?P<g{i}>{rx})")
        self._prefix = re.compile("//(?:" + "|".join(groups) + ")" + _PLAIN_TAIL)
        self._shortcode: re.Pattern[str] | None = None
        self._media_tags = False
        self.mentions: MentionMatcher | None = None
        self.known_ids: KnownKeys | None = None
        if shortcode_pattern:
            if shortcode_pattern == Settings.shortcode_pattern:
                shortcode_pattern = _DEFAULT_SHORTCODE_LINEAR
                self._media_tags = True  # any attributes, any quoting
            self._shortcode = re.compile(shortcode_pattern)
            if "id" not in self._shortcode.groupindex:
                raise ValueError("the shortcode pattern needs a named group 'id', "
                                 f"e.g. (?P<id>...): {shortcode_pattern!r}")

    @classmethod
    def from_settings(cls, settings: Settings,
                      known_keys: KnownKeys | None = None) -> ReferenceExtractor:
        return cls(
            settings.bucket,
            custom_domain=settings.custom_domain,
            cdn_base_urls=settings.cdn_base_urls,
            endpoint_url=settings.endpoint_url,
            shortcode_pattern=settings.shortcode_pattern,
            known_keys=known_keys,
        )

    def with_known_keys(self, known_keys: KnownKeys) -> ReferenceExtractor:
        other = object.__new__(ReferenceExtractor)
        other.__dict__.update(self.__dict__)
        other.known_keys = known_keys
        return other

    def with_evidence(self, mentions: MentionMatcher | None,
                      known_ids: KnownKeys | None) -> ReferenceExtractor:
        """A copy that also reports mentions of ``mentions``' keys (form ``mention``) and media
        ids of ``known_ids`` anywhere in the text (form ``media_id``; ``known_ids`` holds the
        media ids' low 8 bytes, :meth:`KnownKeys.media_ids_from_duckdb`: for a media id that is
        the ``key_hash`` of ``bucket NUL key``)."""
        other = object.__new__(ReferenceExtractor)
        other.__dict__.update(self.__dict__)
        other.mentions = mentions
        other.known_ids = known_ids if known_ids is not None and len(known_ids) else None
        return other

    # --- the public entry points ---

    def extract(self, text: str, fmt: str = "auto") -> Extraction:
        """All references in ``text``; never raises on content, whatever it holds."""
        keys, media_ids, fallback, snippets = self.extract_raw(text, fmt)
        refs = {Ref("key", key, form) for form, key in keys}
        refs.update(Ref("media_id", media_id, form) for media_id, form in media_ids)
        return Extraction(refs, fallback, snippets)

    def extract_raw(self, text: str, fmt: str = "auto") -> RawExtraction:
        """What :meth:`extract` finds, as plain lists for the scanning engine's hot loop:
        ``(form, key)`` pairs, ``(media id, form)`` pairs, the text-fallback flag and snippets."""
        return self.extract_many(((text, fmt),))[0]

    def extract_many(self, documents: Iterable[tuple[str, str]]) -> list[RawExtraction]:
        """:meth:`extract_raw` of each ``(text, format)``, the known-key lookups of all of them
        done together (one sorted bulk lookup per tier instead of several per document)."""
        results: list[RawExtraction] = []
        pending: list[tuple[list[tuple[str, str]], _Occurrence]] = []
        # media ids found anywhere, looked up together at the end: (the document's media ids,
        # its snippets, its text as UTF-8, the UUID-shaped runs in it)
        ids_pending: list[tuple[list[tuple[str, str]], dict[str, str], bytes,
                                list[tuple[str, int, int]]]] = []
        known = self.known_keys if len(self.known_keys) else None
        shortcode = self._shortcode
        mentions, known_ids = self.mentions, self.known_ids
        evidence = mentions is not None or known_ids is not None
        for text, fmt in documents:
            fallback = self._falls_back(text, fmt)
            plain = unescape(text)
            keys: list[tuple[str, str]] = []
            snippets: dict[str, str] = {}
            self._find(plain, keys, pending, known)
            if evidence:
                # one Vectorscan pass: UUID-shaped runs, what the text holds and mentions
                data = plain.encode("utf-8", "surrogatepass")
                if mentions is not None:
                    found, uuid_hits, triggers = mentions.scan(data)
                else:
                    uuid_hits, triggers = scan_text(data)
                encoded = ENCODED_URL_TRIGGER in triggers
            else:
                encoded = _ENCODED_URL_HINT.search(plain) is not None
            if encoded:
                self._find_encoded_urls(plain, keys, pending, known)
            if known is not None:
                self._bare_keys(plain, keys, pending)
            media_ids: list[tuple[str, str]] = []
            if self._media_tags:
                for tag in _MEDIA_TAG.finditer(plain):
                    media_ids += [(m.group().lower(), "shortcode")
                                  for m in _TAG_UUID.finditer(tag.group())]
            elif shortcode is not None:
                for m in shortcode.finditer(plain):
                    media_id = m.group("id")
                    if not isinstance(media_id, str):
                        continue
                    if _CANONICAL_UUID.fullmatch(media_id):
                        media_ids.append((media_id.lower(), "shortcode"))
                    else:
                        try:
                            media_ids.append((str(uuid.UUID(media_id)), "shortcode"))
                        except ValueError:
                            continue
            if evidence:
                if mentions is not None:
                    for key, start, end in found:
                        keys.append(("mention", key))
                        snippets.setdefault(key, snippet(data, start, end))
                    seen = {key for key, _, _ in found}
                    for view in mention_views(text, plain, data, triggers, mentions.breaks):
                        encoded_view = view.encode("utf-8", "surrogatepass")
                        for key, start, end in mentions.find(encoded_view):
                            if key not in seen:
                                seen.add(key)
                                keys.append(("mention", key))
                                snippets.setdefault(key, snippet(encoded_view, start, end))
                if known_ids is not None and uuid_hits:
                    ids_pending.append((media_ids, snippets, data, uuid_hits))
            results.append((keys, media_ids, fallback, snippets))
        if pending:
            self._resolve(pending)
        if ids_pending:
            assert known_ids is not None
            self._known_ids(ids_pending, known_ids)
        return results

    # --- internals ---

    def _find_encoded_urls(self, plain: str, keys: list[tuple[str, str]],
                           pending: list[tuple[list[tuple[str, str]], _Occurrence]],
                           known: KnownKeys | None) -> None:
        """URLs percent-encoded inside another URL's query or path (``?url=https%3A%2F%2F…``),
        decoded until their ``//`` is in the clear (at most three times), then read as URLs."""
        for m in _ENCODED_URL.finditer(plain):
            decoded = m.group()
            for _ in range(3):
                decoded = unquote(decoded)
                if decoded.lower().startswith(_URL_STARTS):
                    break
            else:
                continue
            self._find(decoded, keys, pending, known)

    @staticmethod
    def _bare_keys(plain: str, keys: list[tuple[str, str]],
                   pending: list[tuple[list[tuple[str, str]], _Occurrence]]) -> None:
        """A key stored as it is (Django's FileField: ``blog/2024/a.png``): the whole text,
        or each line of a short document (a row's cells), kept only when the key is known."""
        if len(plain) > BARE_KEY_DOCUMENT_CHARS:
            return  # a whole document that long is no key, and its lines are not cells
        lines = [*plain.splitlines(), plain]
        candidates: dict[str, None] = {}
        for line in lines:
            c = line.strip()
            if len(c) >= 2 and c[0] == c[-1] and c[0] in _QUOTES:
                c = c[1:-1]
            for value in (c, c.lstrip("/")):
                if value and "//" not in value and _storable(value):
                    candidates[value] = None
        if candidates:
            pending.append((keys, _Occurrence("bare_key", None, tuple(candidates))))

    @staticmethod
    def _known_ids(found: list[tuple[list[tuple[str, str]], dict[str, str], bytes,
                                     list[tuple[str, int, int]]]],
                   known_ids: KnownKeys) -> None:
        """Media ids written anywhere (not only in shortcodes) that name a file we know, for
        each document's UUID-shaped runs; all looked up in one call."""
        known = known_ids.contains([int.from_bytes(bytes.fromhex(h[16:]), "little")
                                    for _, _, _, hits in found for h, _, _ in hits])
        i = 0
        for media_ids, snippets, data, hits in found:
            already = {m for m, _ in media_ids}
            for (h, start, end), is_known in zip(hits, known[i:i + len(hits)], strict=True):
                if not is_known:
                    continue
                text = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                if text not in already:
                    already.add(text)
                    media_ids.append((text, "media_id"))
                    snippets.setdefault(text, snippet(data, start, end))
            i += len(hits)

    @staticmethod
    def _falls_back(text: str, fmt: str) -> bool:
        if fmt == "json":
            try:
                json.loads(text)
            except (ValueError, RecursionError):
                return True
            return False
        if fmt == "html":
            return _HTML_TAG.search(text) is None or "\x00" in text or "\ufffd" in text
        return fmt not in FORMATS

    def _find(self, text: str, keys: list[tuple[str, str]],
              pending: list[tuple[list[tuple[str, str]], _Occurrence]],
              known: KnownKeys | None) -> None:
        """Append to ``keys`` the ``(form, key)`` of each URL that can be read one way only, and
        to ``pending`` (with ``keys``, where its answer goes) each occurrence that needs the
        known keys to choose between readings."""
        forms = self._forms
        # a path as written, with "%", can be a key only if some known key has a "%"
        raw_may_be_key = known is not None and known.percent_possible
        for m in self._prefix.finditer(text):
            group = m.lastgroup
            assert group is not None
            form, is_http = forms[group]
            slashes, end = m.span()
            start = m.end(group)
            # Fast path, most URLs: the prefix regex already ran over an ASCII path up to a
            # character that surely ends it; at most percent-escapes to decode, nothing to peel
            # off or choose between.
            last = text[end - 1] if end > start else "/"
            if last != "/":
                tail = text[start:end]
                # ")" may close a CSS url( ), "/./" is a dot segment: the general path decides
                if tail.isascii() and ")" not in tail and not _has_dot_segment(tail):
                    nxt = text[end:end + 1]
                    if slashes and text[slashes - 1] == ":":
                        if slashes >= 7 and text.startswith("https", slashes - 6):
                            before, scheme = text[slashes - 7], "http"
                        elif slashes >= 6 and text.startswith("http", slashes - 5):
                            before, scheme = text[slashes - 6], "http"
                        else:
                            before, scheme = _url_context(text, slashes)
                    else:
                        before, scheme = text[slashes - 1:slashes], ""
                    if last in _TRAILING:
                        # "…/a.jpg)." in prose: what the general path reads for an unquoted
                        # URL that ends where the prefix regex stopped, without the search
                        if (is_http and nxt in _UNQUOTED_CLEAN_ENDS
                                and before not in _QUOTED_END):
                            # "…/a.jpg." where no known key ends with what follows "a.jpg":
                            # every other reading is ruled out, so "a.jpg" is the answer
                            raw = tail.rstrip(_ALWAYS_TRIMMED)
                            if (_FAST_PATHS and raw and raw[-1] not in _TRAILING_OR_SLASH
                                    and (known is None or "%" not in raw or not raw_may_be_key)
                                    and (known is None
                                         or known.never_ends_with(tail[len(raw):]))):
                                key = _percent_decode(raw) if "%" in raw else raw
                                if (key.isascii() and len(key) <= MAX_KEY_BYTES
                                        and key[-1] != "/" and not _has_dot_segment(key)):
                                    keys.append((form, key))
                                    continue
                            _add(_http_readings(form, tail, [tail]), keys, pending, known)
                            continue
                    elif ((nxt == before and nxt in _QUOTES
                         or is_http and nxt in _QUERY_MARKS
                         or before not in _QUOTED_END and (
                             nxt in _UNQUOTED_CLEAN_ENDS
                             or nxt == " " and _SRCSET_DESCRIPTOR.match(text, end)))
                            and (is_http or scheme == "s3")):
                        if "%" not in tail:
                            if len(tail) <= MAX_KEY_BYTES:
                                keys.append((form, tail))
                            continue
                        if is_http:
                            key = _percent_decode(tail)
                            if key.isascii() and len(key) <= MAX_KEY_BYTES and key[-1] != "/":
                                if raw_may_be_key:  # decoded; as written if only that is known
                                    pending.append((keys, _Occurrence(form, key, (key,),
                                                                      (tail,))))
                                else:
                                    keys.append((form, key))
                                continue
                            if _FAST_PATHS and _storable(key) and key[-1] != "/":
                                # not ASCII: its NFC and NFD forms may be what is known
                                if known is None:
                                    keys.append((form, key))
                                else:
                                    pending.append((keys, _Occurrence(form, key, (key,),
                                                                      (tail,))))
                                continue
                            occurrence = _finish(form, key, [key], (tail,))
                        else:
                            occurrence = _finish(form, tail, [tail], (tail,), decode_given=True)
                        _add(occurrence, keys, pending, known)
                        continue
                    if (last not in _TRAILING and nxt == " " and before in _QUOTES and is_http
                            and _SRCSET_DESCRIPTOR.match(text, end)):
                        # srcset="URL 2x, …": the URL, or the whole value if that is a key
                        close = text.find(before, end, start + MAX_URL_CHARS)
                        if close > 0:
                            whole = _cut_query(text[start:close])
                            if "&" in whole:
                                whole = _decode_entities(whole, _QUOTED_END[before][1])
                            key = _percent_decode(tail)
                            value = _percent_decode(whole)
                            if (_FAST_PATHS and "&" not in whole and whole.isascii()
                                    and value.isascii() and key.isascii()
                                    and len(key) <= MAX_KEY_BYTES and key[-1] != "/"
                                    and (known is None
                                         or not known.space_digit_possible
                                         and ("%" not in tail or not raw_may_be_key))):
                                # the whole value holds "URL 2x": no known key has a digit
                                # after whitespace, so the URL is the answer
                                keys.append((form, key))
                                continue
                            _add(_finish(form, key, [key, value], (whole, tail)), keys,
                                 pending, known)
                            continue
            general = self._occurrence(text, slashes, start, form, is_http)
            if general is not None:
                _add(general, keys, pending, known)

    def _occurrence(self, text: str, slashes: int, start: int, form: str,
                    is_http: bool) -> _Occurrence | None:
        before, scheme = _url_context(text, slashes)
        if not is_http and scheme != "s3":
            return None
        limit = min(len(text), start + MAX_URL_CHARS)
        values: list[str] = []
        canonical_value: str
        quoting = _QUOTED_END.get(before)
        stop = quoting[1].search(text, start, limit) if quoting is not None else None
        end_re = _UNQUOTED_END
        if stop is not None and quoting is not None and text[stop.start()] == quoting[0]:
            end_re = quoting[1]
            whole = text[start:stop.start()]
            if is_http:
                whole = _cut_query(whole)
            if (whole and whole[-1] not in _TRAILING_OR_SLASH
                    and whole.isascii() and len(whole) <= MAX_KEY_BYTES
                    and not _FAST_PATH_BREAKERS.search(whole) and not _has_dot_segment(whole)):
                return _Occurrence(form, whole, (whole,))  # the common case: one reading
            cut = _UNQUOTED_END.search(whole)
            if cut is None:
                canonical_value = whole
                values.append(whole)
            else:
                token = whole[:cut.start()]
                values += (token, whole)
                canonical_value = (token if _SRCSET_DESCRIPTOR.match(whole, cut.start())
                                   else whole)
        else:
            end = _UNQUOTED_END.search(text, start, limit)
            canonical_value = text[start:end.start() if end else limit]
            if before == "(" and ")" in canonical_value:
                # minified CSS: url(https://…/a.png)no-repeat ends at the unbalanced ")"
                closed = _cut_at_unbalanced_paren(canonical_value)
                if closed != canonical_value:
                    if is_http:
                        closed = _cut_query(closed)
                        return _http_readings(form, closed,
                                              [closed, _cut_query(canonical_value)])
                    return _s3_uri_readings(closed, [closed, canonical_value])
            token = _cut_query(canonical_value) if is_http else canonical_value
            if (token and token[-1] not in _TRAILING_OR_SLASH and token.isascii()
                    and not _has_dot_segment(token)
                    and len(token) <= MAX_KEY_BYTES and not _FAST_PATH_BREAKERS.search(token)
                    and (end is None or text[end.start()] != " " or token != canonical_value
                         or _SRCSET_DESCRIPTOR.match(text, end.start()))):
                return _Occurrence(form, token, (token,))  # one word, nothing to peel off
            values.append(canonical_value)
            for _ in range(_EXTRA_WORDS):
                if end is None or text[end.start()] != " ":
                    break
                end = _UNQUOTED_END.search(text, end.start() + 1, limit)
                values.append(text[start:end.start() if end else limit])
        if is_http:  # the query and fragment never name the key
            canonical_value = _cut_query(canonical_value)
            values = [_cut_query(v) for v in values]
        if "&" in canonical_value:
            canonical_value = _decode_entities(canonical_value, end_re)
        values = [_decode_entities(v, end_re) if "&" in v else v for v in values]
        if "," in canonical_value:
            comma = canonical_value.index(",")
            values.append(canonical_value[:comma])
            if _URL_AFTER_COMMA.match(canonical_value, comma):
                canonical_value = canonical_value[:comma]
        if is_http:
            return _http_readings(form, canonical_value, values)
        return _s3_uri_readings(canonical_value, values)

    def _resolve(self, pending: list[tuple[list[tuple[str, str]], _Occurrence]]) -> None:
        """Append to each occurrence's list its known readings, else its known fallbacks, else
        its canonical reading; all lookups of a tier in one call."""
        tier: list[tuple[list[tuple[str, str]], _Occurrence, tuple[str, ...]]] = [
            (keys, o, o.readings) for keys, o in pending]
        for level in (0, 1):
            if not tier:
                break
            known = self.known_keys.contains_keys(
                [r for _, _, candidates in tier for r in candidates])
            unresolved: list[tuple[list[tuple[str, str]], _Occurrence, tuple[str, ...]]] = []
            i = 0
            for keys, o, candidates in tier:
                n = len(candidates)
                if n == 1:
                    if known[i]:
                        keys.append((o.form, candidates[0]))
                        i += 1
                        continue
                    found = False
                else:
                    hits = known[i:i + n]
                    found = any(hits)
                    if found:
                        form = o.form
                        keys += [(form, r) for r, k in zip(candidates, hits, strict=True) if k]
                i += n
                if found:
                    continue
                if not level:
                    fallbacks = _expand_fallbacks(o)
                    if fallbacks:
                        unresolved.append((keys, o, fallbacks))
                        continue
                if o.canonical is not None:
                    keys.append((o.form, o.canonical))
            tier = unresolved


def _add(o: _Occurrence, keys: list[tuple[str, str]],
         pending: list[tuple[list[tuple[str, str]], _Occurrence]], known: KnownKeys | None,
         ) -> None:
    """The canonical reading is the answer when the known keys cannot change it (there are
    none, or no other reading or fallback may be one); otherwise the occurrence waits for the
    lookups."""
    canonical = o.canonical
    if known is not None and (canonical is None or _needs_lookup(o, known)):
        pending.append((keys, o))
    elif canonical is not None:
        keys.append((o.form, canonical))


def _needs_lookup(o: _Occurrence, known: KnownKeys) -> bool:
    """Whether a reading other than the canonical one, or a fallback, may be a known key.

    If not, the answer is the canonical reading whether it is known or not. Non-ASCII
    candidates always count: their NFC and NFD forms are fallbacks."""
    canonical = o.canonical
    readings = o.readings
    may_hold = known.may_hold
    for r in readings:
        if r != canonical and may_hold(r) or not r.isascii():
            return True
    if o.given:
        given = [_percent_decode(g) for g in o.given] if o.decode_given else o.given
        for g in given:
            if g and g not in readings and may_hold(g) or not g.isascii():
                return True
    return False


def _url_context(text: str, slashes: int) -> tuple[str, str]:
    """The character before the URL whose ``//`` is at ``slashes``, and its scheme
    (``http`` for http and https, ``s3`` for s3, s3a and s3n, ``""`` for none)."""
    at, scheme = slashes, ""
    if slashes and text[slashes - 1] == ":":
        head = text[max(0, slashes - 6):slashes].lower()
        for prefix, name in _SCHEMES:
            if head.endswith(prefix):
                at, scheme = slashes - len(prefix), name
                break
    return (text[at - 1] if at else ""), scheme


def _port(netloc: str) -> str:
    """An explicit default port, allowed after a host given without one."""
    return "" if ":" in netloc.rsplit("@", 1)[-1] else "(?::(?:443|80))?"


def _cut_at_unbalanced_paren(value: str) -> str:
    depth = 0
    for i, c in enumerate(value):
        if c == "(":
            depth += 1
        elif c == ")":
            if not depth:
                return value[:i]
            depth -= 1
    return value


def _has_dot_segment(path: str) -> bool:
    if "/." not in path and path[:1] != ".":
        return False
    p = "/" + path
    return "/./" in p or "/../" in p or p.endswith(("/.", "/.."))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on a path relative to the bucket (``a/./b`` -> ``a/b``)."""
    segments = path.split("/")
    out: list[str] = []
    for i, s in enumerate(segments):
        last = i == len(segments) - 1
        if s in (".", ".."):
            if s == ".." and out:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(s)
    return "/".join(out)


def _cut_query(value: str) -> str:
    for mark in ("?", "#"):
        at = value.find(mark)
        if at >= 0:
            value = value[:at]
    return value


def _http_readings(form: str, canonical_value: str, values: list[str]) -> _Occurrence:
    decoded: dict[str, str] = {}

    def decode(path: str) -> str:
        out = decoded.get(path)
        if out is None:
            out = decoded[path] = _percent_decode(path)
        return out

    canonical = decode(_trim_canonical(canonical_value))
    readings = [canonical]
    if _has_dot_segment(canonical):  # what a browser requests: /a/./b.png is /a/b.png
        canonical = _remove_dot_segments(canonical)
        readings.insert(0, canonical)
    as_written = []  # only if no decoded reading is known: a literal "%" pasted unescaped
    for value in values:
        for path in _trim_readings(value):
            readings.append(decode(path))
            as_written.append(path)
    return _finish(form, canonical, readings, tuple(as_written))


def _s3_uri_readings(canonical_value: str, values: list[str]) -> _Occurrence:
    canonical = _trim_canonical(canonical_value)
    readings = [canonical]
    for value in values + [_cut_query(v) for v in values]:
        readings += _trim_readings(value)
    # only if no reading as written is known: their decoded forms
    return _finish("s3_uri", canonical, readings, tuple(readings[1:]), decode_given=True)


def _finish(form: str, canonical: str, readings: list[str], given: tuple[str, ...] = (),
            decode_given: bool = False) -> _Occurrence:
    """Distinct storable readings, canonical first; the NFC/NFD forms of non-ASCII ones and the
    ``given`` fallbacks are tried only when no reading is a known key (keys as written first)."""
    primary: dict[str, None] = {}
    for r in readings:
        if r and r not in primary and _storable(r):
            primary[r] = None
    usable = bool(canonical) and not canonical.endswith("/") and canonical in primary
    return _Occurrence(form, canonical if usable else None, tuple(primary), given, decode_given)


def _expand_fallbacks(o: _Occurrence) -> tuple[str, ...]:
    """The fallbacks of an occurrence none of whose readings is known: its given ones (decoded
    for an s3:// URI) and the NFC and NFD forms of every non-ASCII candidate, each storable and
    not already a reading."""
    primary = o.readings
    given: Sequence[str] = ([_percent_decode(g) for g in o.given] if o.decode_given
                            else o.given)
    extra: dict[str, None] = {}
    for r in (*primary, *given):
        if r and r not in primary and r not in extra and _storable(r):
            extra[r] = None
        if r and not r.isascii():
            for n in (unicodedata.normalize("NFC", r), unicodedata.normalize("NFD", r)):
                if n not in primary and n not in extra and _storable(n):
                    extra[n] = None
    return tuple(extra)
