"""Conservative mentions: any spelling of a key a purge could take, anywhere in a document.

A URL form the extractor does not know must not make a used file look unused. So besides the
recognised forms, a document protects a file when it contains the file's key spelled raw,
percent-encoded (``%20`` or ``+`` for spaces, slashes encoded or not), HTML-escaped, or in either
Unicode normal form; the text is matched after JSON/JavaScript escapes and structural entities
are undone (``extract.unescape``). Only the keys of soft-deleted, not yet purged files are looked
for: every scan a purge relies on starts after the deletion, so it looks for the file.

One multi-pattern pass over the bytes: Vectorscan (``hyperscan``) up to
:data:`HYPERSCAN_MAX_KEYS` keys, Aho-Corasick (``ahocorasick_rs``) above, where Vectorscan's
compile time and memory grow too fast. Neither compiled matcher pickles: the Vectorscan
database is compiled once and shipped to the scan workers serialised, Aho-Corasick is compiled
lazily in each.

Media ids anywhere (:func:`scan_text`): a Vectorscan pass for UUID-shaped text, each hit then
checked against the catalog's media ids. With Vectorscan mentions, their spellings are in the
same database, so one pass over a document finds both (:meth:`MentionMatcher.scan`).
"""

from __future__ import annotations

import codecs
import functools
import html
import html.entities
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus, unquote

HYPERSCAN_MAX_KEYS = 20_000
SNIPPET_BYTES = 60
SNIPPET_CHARS = 200
_PERCENT_ESCAPE = re.compile(rb"%[0-9A-F]{2}")
_ENTITY_NAMES = {p: n for p, n in html.entities.codepoint2name.items() if p > 127}


def spellings(key: str) -> set[bytes]:
    """Every spelling of ``key`` a document may hold once its escapes are undone."""
    forms = {key}
    for k in (key, unicodedata.normalize("NFC", key), unicodedata.normalize("NFD", key)):
        forms |= {k, quote(k, safe="/"), quote(k, safe=""), quote_plus(k, safe="/"),
                  quote_plus(k, safe=""), html.escape(k, quote=False),
                  html.escape(k, quote=True)}
        named = "".join(f"&{_ENTITY_NAMES[ord(c)]};" if ord(c) in _ENTITY_NAMES else c
                        for c in k)
        forms.add(html.escape(named, quote=False).replace("&amp;", "&")
                  if named != k else named)
    return {f.encode("utf-8", "surrogatepass") for f in forms if f}


# Spellings a browser or renderer resolves but neither the extractor nor ``spellings`` knows:
# the mention pass also reads normalised copies of the text (:func:`mention_views`).
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\n]?|([^\n0-9a-fA-F]))")
_SLASHES = re.compile(r"[\\/]+")
_CONTROL = str.maketrans("", "", "\t\r\n")
# A tab/CR/LF right after a URL-ish run holding a slash: inside a URL, as a browser strips it
# (prose line breaks mostly follow words without a slash, so most documents are left alone).
_CONTROL_IN_URL = re.compile(r"(/[^\s\"'<>()]*)[\t\r\n]+")
_PERCENT_DOT = re.compile(r"%2e", re.IGNORECASE)
_DOT = re.compile(r"/\.(?=/)")
_DOT_DOT = re.compile(r"/[^/\s\"'<>()]+/\.\.(?=/)")
_ODD_BACKSLASH = re.compile(r"\\[^\"\\/nrtu]")  # not one of JSON's everyday escapes


# One Vectorscan pass over each document's plain text (:func:`scan_text`) finds UUID-shaped runs
# (media ids anywhere) and notes what the text holds: which plain-text copy the mention pass
# needs (most documents need none) and whether an encoded URL may hide in it.
_UUID_DASHED, _UUID_PLAIN, _DOT_TRIGGER, _CONTROL_TRIGGER, ENCODED_URL_TRIGGER = range(5)
_SCAN_PATTERNS = (
    rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    rb"[0-9a-fA-F]{32}",
    rb"%2e|/\.\.?/",
    rb"/[^\s\"'<>()]*[\t\r\n]",
    rb"%2f|%252",  # what extract's encoded-URL pass needs, any case: "%2F", "%2f", "%252"
)
# Both UUID patterns have a fixed width, so a match's start is its end less that width (no
# start-of-match tracking, which slows Vectorscan down).
_UUID_WIDTH = (36, 32)
_scan_db: Any = None


def _compiled_scan() -> Any:
    global _scan_db
    if _scan_db is None:  # compiled in each process: it does not pickle
        _scan_db = _compile(list(_SCAN_PATTERNS), [])
    return _scan_db


def _compile(expressions: list[bytes], literals: list[bytes]) -> Any:
    """A Vectorscan database of :data:`_SCAN_PATTERNS` (``expressions``, ids from 0) and then
    ``literals`` (ids after them, each matched once, in any case)."""
    import hyperscan

    trigger = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
    # one database, so every byte but letters and digits is written \xHH: a pattern
    expressions = expressions + [_LITERAL_BYTE.sub(_hex_escape, lit) for lit in literals]
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=expressions, ids=list(range(len(expressions))),
               elements=len(expressions),
               flags=[0, 0, trigger, trigger, trigger] + [trigger] * len(literals))
    return db


_LITERAL_BYTE = re.compile(rb"[^A-Za-z0-9]")


def _hex_escape(m: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % m.group()[0]


def scan_text(data: bytes) -> tuple[list[tuple[str, int, int]], set[int]]:
    """One pass over ``data`` (a document's plain text as UTF-8): (32 lower-case hex digits,
    start, end) of each UUID-shaped window (dashed, or 32 hex digits), wherever it is, also
    inside a longer hex or dashed run, and the triggers found (``ENCODED_URL_TRIGGER`` and
    those :func:`mention_views` uses). :meth:`MentionMatcher.scan` does the same in the pass
    that finds the mentions."""
    hits: list[tuple[str, int, int]] = []
    found: set[int] = set()

    def on_match(index: int, start: int, end: int, flags: int, context: Any) -> None:
        if index > _UUID_PLAIN:
            found.add(index)
        else:
            _uuid_hit(data, index, end, hits)

    _compiled_scan().scan(data, match_event_handler=on_match)
    return hits, found


def _uuid_hit(data: bytes, index: int, end: int, hits: list[tuple[str, int, int]]) -> None:
    # Every window counts, whatever its neighbours: Vectorscan reports each end of a
    # fixed-width pattern, so the windows of a longer hex or dashed run are all tried
    # (``media-<id>``, ``<id>-1200w.jpg``, ``image<id>``).
    start = end - _UUID_WIDTH[index]
    hits.append((data[start:end].replace(b"-", b"").decode("ascii").lower(), start, end))


def _css_char(m: re.Match[str]) -> str:
    if m.group(2) is not None:
        return m.group(2)  # CSS \: or Markdown \_ : the character itself
    point = int(m.group(1), 16)
    return chr(point) if 0 < point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF else "\ufffd"


def _dots(text: str) -> str:
    """``%2e`` decoded, then dot segments resolved (``/a/../b`` → ``/b``)."""
    if "%2e" in text or "%2E" in text:
        text = _PERCENT_DOT.sub(".", text)
    if "/./" in text or "/../" in text:
        for _ in range(8):  # /a/b/../../c: one level per round
            resolved = _DOT_DOT.sub("", _DOT.sub("", text))
            if resolved == text:
                break
            text = resolved
    return text


def _layers(text: str, decode: Callable[[str], str]) -> list[str]:
    """``decode(text)``, applied once more if that changes something (two layers)."""
    out = []
    for _ in range(2):
        decoded = decode(text)
        if decoded == text:
            break
        out.append(decoded)
        text = decoded
    return out


def _decoded(text: str) -> list[str]:
    """Decoded copies of a document, parsed rather than matched spelling by spelling: every
    HTML character reference decoded (``html.unescape``, twice: ``&period;``, ``&sol;``,
    ``&amp;#47;``), then every percent-escape of that copy, with ``+`` kept (``unquote``, and
    once more for a double encoding) and read as a space (``unquote_plus``), so that a key
    written half-encoded (``my%20photo%20(1).png``, as Django's ``filepath_to_uri`` and
    JavaScript's ``encodeURI`` leave ``()!'*,``), with every byte encoded, or with escapes in
    either hex case reads as itself. Made once per document, only when it holds a ``&``,
    ``%`` or ``+``. Percent-escapes that are not UTF-8 decode to U+FFFD (and name no key)."""
    return [_dots(d) if "/." in d else d for d in _decoded_copies(text)]


def _decoded_copies(text: str) -> list[str]:
    """:func:`_decoded` before dot segments are resolved."""
    out: list[str] = []
    if "&" in text:
        out += _layers(text, html_unescape)
        text = out[-1] if out else text
    if "%" in text:
        out += _layers(text, percent_unquote)
    if "+" in text:
        plus = percent_unquote(text.replace("+", " "))  # unquote_plus
        if plus != text:
            out.append(plus)
    return out


# ``html.unescape`` and ``urllib.parse.unquote``, made faster without changing a single answer
# (tests compare them).
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")  # html's
_NAME_CHARS = re.compile(r"[A-Za-z0-9]*")
_REFS: dict[str, str] = {}
_STEMS: dict[str, tuple[int, str]] = {}
_escape_decode = codecs.escape_decode


def percent_unquote(text: str) -> str:
    """``urllib.parse.unquote``; for text whose escapes are all well formed and decode to valid
    UTF-8 together with the text around them, decoded by ``codecs.escape_decode`` (C) with each
    ``%`` read as ``\\x``. (``unquote`` decodes each ASCII stretch on its own; when the whole
    result is valid UTF-8, a non-ASCII character starts and ends on a character boundary, so
    each stretch is valid on its own and the answers agree.)"""
    if "%" not in text:
        return text
    if "\\" not in text:
        try:
            data = text.encode("utf-8").replace(b"%", b"\\x")
            decoded: str = _escape_decode(data)[0].decode()
            return decoded
        except (ValueError, UnicodeError):  # incl. a lone surrogate
            pass
    return unquote(text)


def html_unescape(text: str) -> str:
    """``html.unescape``: what a character reference decodes to is remembered, and for a named
    one followed by other characters (``&X-Amz-Signature=…`` once ``&amp;`` is decoded) only
    its leading letters and digits are looked at, as ``html.unescape`` does."""
    if "&" not in text:
        return text
    return _CHARREF.sub(_charref, text)


def _charref(m: re.Match[str]) -> str:
    s = m.group(1)
    name_chars = _NAME_CHARS.match(s)
    stem = name_chars.end() if name_chars is not None else 0
    if s[0] == "#" or stem >= len(s) - (s[-1] == ";"):
        decoded = _REFS.get(s)
        if decoded is None:
            decoded = html.unescape(m.group())
            if len(_REFS) < 4096:
                _REFS[s] = decoded
        return decoded
    # Names are letters and digits: html.unescape takes the longest name (two characters or
    # more) that starts ``s`` and keeps the rest as written.
    found = _STEMS.get(s[:stem])
    if found is None:
        name = s[:stem]
        length = next((n for n in range(stem, 1, -1) if name[:n] in html.entities.html5), 0)
        found = (length, html.entities.html5[name[:length]] if length else "&")
        if len(_STEMS) < 4096:
            _STEMS[name] = found
    length, value = found
    return value + s[length:] if length else "&" + s


# Characters no decoding above reads across: no entity, percent-escape or dot segment contains
# one, so decoding a document equals decoding the runs between them.
RUN_BREAKS = " \t\n\r\f\v\"'<>()"


@functools.lru_cache(maxsize=16)
def _breaks_table(breaks: str) -> bytes:
    """A ``bytes.translate`` table that turns every one of ``breaks`` into the first."""
    return bytes.maketrans(breaks.encode("ascii"), breaks[0].encode("ascii") * len(breaks))


def decoded_runs(text: str, breaks: str, data: bytes | None = None) -> str:
    """What :func:`_decoded` adds, for the runs that need it: the runs of ``text`` between two
    of ``breaks`` (characters of :data:`RUN_BREAKS` that no spelling looked for contains) that
    hold a ``&``, ``%`` or ``+``, joined by a break and decoded like a whole document, each
    copy also with its dot segments resolved; the copies joined by a break ("" if none). A
    match in a whole decoded document lies inside one run (no spelling spans a break), and a
    run decodes to its part of the whole decoded document, so these copies hold every match
    the whole-document copies hold, for a fraction of the work: most of a page is markup and
    prose with nothing to decode. (A run with nothing to decode is its own part of a decoded
    document, up to dot segments: for a text with ``%2e``, ``/./``, ``/../`` or a control
    character in a URL, :func:`mention_views` decodes the whole document instead.) ``data``:
    ``text`` as UTF-8, if at hand; the runs are found in it (the breaks are ASCII)."""
    if data is None:
        data = text.encode("utf-8", "surrogatepass")
    flat = data.translate(_breaks_table(breaks))  # every break is now the first one
    sep = breaks[0].encode("ascii")
    size = len(flat)
    find, rfind = flat.find, flat.rfind
    # the next "&", "%" and "+" at or after where the last run ended (size: none)
    amp, pct, plus = (at if at >= 0 else size for at in (find(b"&"), find(b"%"), find(b"+")))
    runs: list[bytes] = []
    while (at := min(amp, pct, plus)) < size:
        end = find(sep, at)
        if end < 0:
            end = size
        runs.append(flat[rfind(sep, 0, at) + 1:end])
        if amp < end:
            amp = find(b"&", end) % (size + 1)  # -1 becomes size
        if pct < end:
            pct = find(b"%", end) % (size + 1)
        if plus < end:
            plus = find(b"+", end) % (size + 1)
    if not runs:
        return ""
    # Dot segments resolved in all copies at once: no pattern of _dots reads across a break.
    copies = breaks[0].join(_decoded_copies(sep.join(runs).decode("utf-8", "surrogatepass")))
    dotted = _dots(copies)
    return copies if dotted == copies else copies + breaks[0] + dotted


def mention_views(text: str, plain: str, data: bytes | None = None,
                  triggers: set[int] | None = None, breaks: str | None = None) -> list[str]:
    """Copies of a document to match mentions in besides ``plain`` (its unescaped text, where
    ``&#9;`` and ``&NewLine;`` are already decoded): only those that differ, made only when the
    text holds what they undo. From ``plain``: tab/CR/LF inside URLs removed, ``%2e`` decoded
    and dot segments resolved; from that copy, its entity- and percent-decoded copies
    (:func:`_decoded`). From the raw ``text``, when it has backslashes JSON would not
    write: backslashes read as slashes (``http://host\\media\\a.png``), and CSS escapes decoded
    (``\\63 ``, ``\\:``; Markdown's ``\\_``, ``\\(`` too), each with entities decoded and tab/
    CR/LF removed. ``data``: ``plain`` as UTF-8, and ``triggers``: what :func:`scan_text` found
    in it, if at hand. With ``breaks`` (:attr:`MentionMatcher.breaks`), the decoded copies are
    of the runs that need them (:func:`decoded_runs`), joined by a break into one view. A false
    mention is a cheap keep."""
    views: list[str] = []
    view = plain
    found = triggers
    if found is None:
        found = scan_text(plain.encode("utf-8", "surrogatepass") if data is None else data)[1]
    if _CONTROL_TRIGGER in found:
        for _ in range(4):  # one control run per URL and round
            stripped = _CONTROL_IN_URL.sub(r"\1", view)
            if stripped == view:
                break
            view = stripped
    if _DOT_TRIGGER in found:
        view = _dots(view)
    if view != plain:
        views.append(view)
    if breaks and _DOT_TRIGGER not in found and _CONTROL_TRIGGER not in found:
        runs = decoded_runs(view, breaks, data if view is plain else None)
        if runs:
            views.append(runs)
    else:
        for decoded in _decoded(view):
            if decoded != plain and decoded not in views:
                views.append(decoded)
    if "\\" in text and _ODD_BACKSLASH.search(text):
        for raw in (_SLASHES.sub("/", text), _CSS_ESCAPE.sub(_css_char, text)):
            raw = _dots(html.unescape(raw).translate(_CONTROL))
            if raw != plain and raw not in views:
                views.append(raw)
    return views


def snippet(data: bytes, start: int, end: int) -> str:
    """A short excerpt around ``data[start:end]``, whitespace collapsed."""
    text = data[max(0, start - SNIPPET_BYTES):end + SNIPPET_BYTES].decode("utf-8", "replace")
    return " ".join(text.split())[:SNIPPET_CHARS]


class MentionMatcher:
    """Finds every spelling of the given keys in bytes; ``find`` gives (key, start, end)."""

    def __init__(self, keys: Sequence[str], engine: str = "auto") -> None:
        self.keys = list(keys)
        if engine == "auto":
            engine = "hyperscan" if len(self.keys) <= HYPERSCAN_MAX_KEYS else "ahocorasick"
        if engine not in ("hyperscan", "ahocorasick"):
            raise ValueError(f"unknown mention engine {engine!r}")
        self.engine = engine
        self._literals: list[bytes] = []
        self._owner: list[int] = []
        for i, key in enumerate(self.keys):
            for s in sorted(spellings(key)):
                self._literals.append(s)
                self._owner.append(i)
                if engine == "ahocorasick" and _PERCENT_ESCAPE.search(s):
                    # no caseless mode: lower-case escapes (%2f) spelled out too
                    self._literals.append(_PERCENT_ESCAPE.sub(lambda m: m.group().lower(), s))
                    self._owner.append(i)
        used = set("".join(s.decode("utf-8", "surrogatepass") for s in self._literals))
        self.breaks = "".join(c for c in RUN_BREAKS if c not in used)
        """The characters of :data:`RUN_BREAKS` no spelling holds (``mention_views``)."""
        self._matcher: Any = None

    @classmethod
    def from_keys(cls, keys: Iterable[str], engine: str = "auto") -> MentionMatcher | None:
        """A matcher for ``keys``; None when there are none (nothing to look for)."""
        keys = sorted(set(keys))
        return cls(keys, engine) if keys else None

    def __getstate__(self) -> dict[str, Any]:
        # Compiled databases do not pickle: a Vectorscan one is compiled here once and shipped
        # serialised (each worker compiling its own cost ~0.5 CPU-s per worker for 1,000 keys).
        serialised = None
        if self.engine == "hyperscan":
            import hyperscan

            serialised = hyperscan.dumpb(self._compiled())
        return {"keys": self.keys, "engine": self.engine, "_literals": self._literals,
                "_owner": self._owner, "breaks": self.breaks, "_matcher": None,
                "_serialised": serialised}

    def __setstate__(self, state: dict[str, Any]) -> None:
        serialised = state.pop("_serialised", None)
        self.__dict__.update(state)
        if serialised is not None:
            import hyperscan

            db = hyperscan.loadb(serialised, hyperscan.HS_MODE_BLOCK)
            db.scratch = hyperscan.Scratch(db)
            self._matcher = db

    def __len__(self) -> int:
        return len(self.keys)

    def _compiled(self) -> Any:
        if self._matcher is None:
            if self.engine == "hyperscan":
                # the spellings after scan_text's patterns: one pass finds both
                self._matcher = _compile(list(_SCAN_PATTERNS), self._literals)
            else:
                import ahocorasick_rs

                self._matcher = ahocorasick_rs.BytesAhoCorasick(self._literals)
        return self._matcher

    def find(self, data: bytes) -> list[tuple[str, int, int]]:
        """(key, start, end) of the first spelling of each key found in ``data``."""
        found: dict[int, tuple[int, int]] = {}
        if self.engine == "hyperscan":
            literals, owner = self._literals, self._owner
            first = len(_SCAN_PATTERNS)

            def on_match(index: int, start: int, end: int, flags: int, context: Any) -> None:
                if index >= first:  # not scan_text's patterns
                    index -= first
                    found.setdefault(owner[index], (end - len(literals[index]), end))

            self._compiled().scan(data, match_event_handler=on_match)
        else:
            for index, start, end in self._compiled().find_matches_as_indexes(
                    data, overlapping=True):
                found.setdefault(self._owner[index], (start, end))
        return [(self.keys[i], start, end) for i, (start, end) in found.items()]

    def scan(self, data: bytes) -> tuple[list[tuple[str, int, int]],
                                          list[tuple[str, int, int]], set[int]]:
        """:meth:`find` and :func:`scan_text` of ``data``: with Vectorscan in one pass."""
        if self.engine != "hyperscan":
            return (self.find(data), *scan_text(data))
        literals, owner = self._literals, self._owner
        first = len(_SCAN_PATTERNS)
        found: dict[int, tuple[int, int]] = {}
        hits: list[tuple[str, int, int]] = []
        triggers: set[int] = set()

        def on_match(index: int, start: int, end: int, flags: int, context: Any) -> None:
            if index >= first:
                index -= first
                found.setdefault(owner[index], (end - len(literals[index]), end))
            elif index > _UUID_PLAIN:
                triggers.add(index)
            else:
                _uuid_hit(data, index, end, hits)

        self._compiled().scan(data, match_event_handler=on_match)
        return [(self.keys[i], start, end) for i, (start, end) in found.items()], hits, triggers
