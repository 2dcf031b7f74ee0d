"""Safe S3 keys for uploaded files: namespaces, file names, key layout.

A key is built from a user-supplied file name, so everything a browser, a form or an attacker can
put in a name has to end up as ONE harmless path segment. Key layout::

    {namespace}/{unique}/{filename}      e.g.  blog/3f2a9c1b7d4e/Café menu.pdf
    {namespace}/{filename}               when no unique segment is given

``namespace`` is the first segment (the catalog derives ``media_files.namespace`` the same way),
``unique`` is a short token (we recommend the first 12 hex digits of the content's sha256) so two
files with the same name never collide and the same content gets the same key, and ``filename``
is :func:`safe_filename` of what the user called the file (the original name is kept in the
catalog's ``original_filename``; the key only has to be safe and recognisable).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from media_pipeline.errors import UnsafeKey  # noqa: F401

NAMESPACE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
UNIQUE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DEFAULT_NAMESPACE = "default"

# Room for the namespace (63), the unique segment (64) and separators in S3's 1,024-byte key limit,
# and under the 255-byte file name limit of common file systems (downloads keep the name).
MAX_FILENAME_BYTES = 200
MAX_EXTENSION_CHARS = 16
MAX_KEY_BYTES = 1024
# A name percent-encoded more often than this is an attack, not a file name.
MAX_DECODE_ROUNDS = 8

# Bidirectional controls make "photo\u202egpj.exe" display as "photoexe.jpg": refused.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Invisible format characters that carry meaning in some scripts (joiners) are kept.
KEPT_FORMAT_CHARACTERS = frozenset("\u200c\u200d")
# Not path separators anywhere, but they look like one, so "ns∕evil∕x" cannot pose as a path.
SLASH_LOOKALIKES = frozenset("\u2044\u2215\u29f8\u29f9\u29f5\u2571\u2572\u27cb\u27cd")
# Illegal in Windows file names (a download must keep its name) or meaningful in URLs
# ('#' cuts the URL, '%' would start an escape).
REPLACED_CHARACTERS = frozenset('<>:"|?*#%')
WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)


def validate_namespace(name: str) -> str:
    """Return ``name`` if it is a valid namespace, else raise :class:`UnsafeKey`.

    Namespaces are lower-case ``[a-z0-9][a-z0-9._-]{0,62}`` without ``..``: they are the first
    key segment, so they must be one plain segment that needs no quoting in a URL.
    """
    if not isinstance(name, str):
        raise UnsafeKey(f"a namespace must be a string, got {type(name).__name__}")
    if not NAMESPACE_PATTERN.fullmatch(name):
        raise UnsafeKey(
            f"namespace {name!r} is not allowed: use 1-63 characters from a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    if ".." in name:
        raise UnsafeKey(f"namespace {name!r} is not allowed: it contains '..'")
    return name


def _percent_decode(text: str) -> str:
    """Decode %XX escapes until nothing changes, so %2F and %252F both become '/'."""
    for _ in range(MAX_DECODE_ROUNDS):
        try:
            decoded = unquote(text, errors="strict")
        except UnicodeDecodeError:
            raise UnsafeKey(
                f"file name {text!r} contains percent-escapes that are not valid UTF-8"
            ) from None
        if decoded == text:
            return text
        text = decoded
    raise UnsafeKey("file name is percent-encoded too many times")


def _nfkc(char: str) -> str:
    return unicodedata.normalize("NFKC", char)


def _is_separator(char: str) -> bool:
    """'/' and '\\', and anything that becomes one under NFKC (fullwidth '／', small '﹨')."""
    folded = _nfkc(char)
    return "/" in folded or "\\" in folded


def _is_dot_or_space(char: str) -> bool:
    folded = _nfkc(char)
    return folded != "" and all(c == "." or c.isspace() for c in folded)


def _clean_character(char: str) -> str:
    """The character to keep for ``char`` (possibly '' or '_'), or raise for dangerous ones."""
    if char == "\x00":
        raise UnsafeKey("file name contains a NUL character")
    category = unicodedata.category(char)
    if category == "Cc" or category in {"Zl", "Zp"}:
        raise UnsafeKey(f"file name contains the control character U+{ord(char):04X}")
    if category == "Cs":
        raise UnsafeKey("file name is not valid Unicode (it contains a lone surrogate)")
    if char in BIDI_CONTROLS:
        raise UnsafeKey(
            f"file name contains the bidirectional control U+{ord(char):04X}, which can disguise "
            "the file's real extension"
        )
    if category == "Cf" and char not in KEPT_FORMAT_CHARACTERS:
        return ""  # zero-width space, BOM, soft hyphen: invisible, dropped
    if char in SLASH_LOOKALIKES or any(c in REPLACED_CHARACTERS for c in _nfkc(char)):
        return "_"
    if category.startswith("Z"):
        return " "  # no-break and other spaces become a plain space
    return char


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext) <= MAX_EXTENSION_CHARS and ext.isalnum():
        return stem, "." + ext
    return name, ""


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    cut = encoded[:limit].decode("utf-8", errors="ignore")
    # Do not separate a character from the combining marks that follow it (unless the text is
    # nothing but marks).
    whole = cut
    while whole and unicodedata.combining(text[len(whole)]):
        whole = whole[:-1]
    return whole or cut


def _strip_dots_and_spaces(text: str, *, leading: bool = True) -> str:
    if leading:
        while text and _is_dot_or_space(text[0]):
            text = text[1:]
    while text and _is_dot_or_space(text[-1]):
        text = text[:-1]
    return text


def safe_filename(filename: str) -> str:
    """One safe path segment made from a user's file name, or :class:`UnsafeKey`.

    In order: percent-decode until stable (``%2e%2e%2f`` and ``%252F`` cannot smuggle a path),
    NFC-normalise (an NFD name from macOS gives the same key), keep only the part after the last
    separator (``/``, ``\\`` and their NFKC twins such as fullwidth ``／``), refuse NUL, control and
    bidirectional-override characters, drop invisible format characters, replace characters that
    are illegal on Windows or meaningful in URLs with ``_``, strip leading and trailing dots and
    spaces (checked on the NFKC form, so ``．．`` counts as ``..``), prefix Windows device names
    (``CON.jpg`` -> ``_CON.jpg``) and cut the name to 200 UTF-8 bytes keeping the extension.
    Letters of every script are kept. The result is stable: ``safe_filename`` of its own output
    returns it unchanged.
    """
    if not isinstance(filename, str):
        raise UnsafeKey(f"a file name must be a string, got {type(filename).__name__}")
    if filename == "":
        raise UnsafeKey("file name is empty")
    name = unicodedata.normalize("NFC", _percent_decode(filename))
    if "\x00" in name:
        raise UnsafeKey("file name contains a NUL character")
    segments = "".join("/" if _is_separator(c) else c for c in name).split("/")
    base = segments[-1]
    if base == "" and len(segments) > 1:
        raise UnsafeKey(f"file name {filename!r} ends with a separator: there is no file name")
    cleaned = "".join(_clean_character(c) for c in base)
    cleaned = re.sub(r" {2,}", " ", cleaned)
    cleaned = _strip_dots_and_spaces(cleaned)
    if not cleaned:
        raise UnsafeKey(
            f"file name {filename!r} has no usable characters (e.g. only dots or spaces)")
    stem, ext = _split_extension(cleaned)
    if _nfkc(stem).split(".")[0].strip().lower() in WINDOWS_RESERVED:
        stem = "_" + stem
    room = MAX_FILENAME_BYTES - len(ext.encode("utf-8"))
    if len(stem.encode("utf-8")) > room:
        stem = _strip_dots_and_spaces(_truncate_utf8(stem, room), leading=False)
    result = unicodedata.normalize("NFC", stem + ext)
    if _strip_dots_and_spaces(result) != result:
        raise UnsafeKey(f"file name {filename!r} has no usable characters")
    return result


def validate_unique(unique: str) -> str:
    """The unique key segment: 1-64 of ``[A-Za-z0-9_-]`` (a hex digest prefix fits)."""
    if not isinstance(unique, str) or not UNIQUE_PATTERN.fullmatch(unique):
        raise UnsafeKey(
            f"unique segment {unique!r} is not allowed: use 1-64 characters from A-Z, a-z, 0-9, "
            "'_', '-'"
        )
    return unique


def make_key(namespace: str, filename: str, *, unique: str | None = None) -> str:
    """``{namespace}/{unique}/{safe filename}`` or ``{namespace}/{safe filename}``.

    Pass ``unique`` (e.g. ``sha256[:12]``): without it, two uploads called ``logo.png`` in one
    namespace would want the same key.
    """
    parts = [validate_namespace(namespace)]
    if unique is not None:
        parts.append(validate_unique(unique))
    parts.append(safe_filename(filename))
    return "/".join(parts)


def _segment_is_unsafe(segment: str) -> bool:
    """Empty, '.', '..' (also after percent-decoding or NFKC), or with control characters."""
    if segment == "":
        return True
    try:
        decoded = _percent_decode(segment)
    except UnsafeKey:
        return True
    for form in {segment, decoded, _nfkc(decoded)}:
        if form.strip() in {".", ".."} or "/" in form or "\\" in form:
            return True
        if any(unicodedata.category(c) in {"Cc", "Cs"} for c in form):
            return True
    return False


def key_segments_are_safe(key: str) -> bool:
    """True when no segment of ``key`` is empty, ``.`` or ``..`` in any disguise."""
    if not isinstance(key, str) or not key:
        return False
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return False
    return not any(_segment_is_unsafe(s) for s in key.replace("\\", "/").split("/"))


def key_in_namespace(key: str, namespace: str) -> bool:
    """True only if ``key`` lies inside ``namespace``: it starts with exactly ``namespace + "/"``
    (so ``ns1`` never matches ``ns10/…``) and no segment is empty, ``.`` or ``..`` (also not
    percent-encoded, fullwidth or behind a backslash)."""
    try:
        validate_namespace(namespace)
    except UnsafeKey:
        return False
    if not isinstance(key, str) or not key.startswith(namespace + "/"):
        return False
    return key_segments_are_safe(key)


def validate_key(key: str) -> str:
    """Return ``key`` if we may create an object under it, else raise :class:`UnsafeKey`.

    Used for keys we write: a valid namespace as the first segment, no unsafe segment, at most
    1,024 UTF-8 bytes (S3's limit).
    """
    if not isinstance(key, str) or "/" not in key:
        raise UnsafeKey(f"key {key!r} must look like 'namespace/…/filename'")
    validate_namespace(key.split("/", 1)[0])
    if not key_segments_are_safe(key):
        raise UnsafeKey(f"key {key!r} has an empty, '.' or '..' segment or control characters, "
                        f"or is longer than {MAX_KEY_BYTES} bytes")
    return key


def namespace_of(key: str) -> str:
    """The key's namespace: its first segment, or ``default`` for a key without '/'.

    The catalog computes ``media_files.namespace`` with the same rule in SQL.
    """
    return key.split("/", 1)[0] if "/" in key else DEFAULT_NAMESPACE
