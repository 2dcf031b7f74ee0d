"""Secrets in URLs, found by parsing, never by pattern matching.

A database URL is parsed by SQLAlchemy and an HTTP URL by ``urllib``; what is shown is rebuilt
from the parsed parts with the password and every credential-like query value (``password``,
libpq's ``sslpassword``, ``token``, ``api_key``...) replaced by ``***``. A URL whose parts are
ambiguous (a raw ``@`` in a password makes the rest of it look like the host) is refused, not
guessed at: it cannot be shown safely, and it would not connect where it was meant to either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from media_pipeline.errors import UnsafeUrl  # noqa: F401

REDACTED = "***"

# Query parameters (and libpq keywords) whose values are credentials.
SECRET_KEYS = frozenset({
    "password", "passwd", "pwd", "pass", "sslpassword", "secret", "token", "access_token",
    "api_key", "apikey", "key", "auth", "authorization", "client_secret", "signature", "sig",
    "credential", "credentials", "private_key", "sslkey", "passfile",
})
_SECRET_HINTS = ("pass", "secret", "token", "pwd", "credential", "key", "auth", "sig")
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")  # a name, IPv4, or IPv6 (unbracketed)
ENCODE_HINT = "percent-encode @ as %40, # as %23, / as %2F, ? as %3F, : as %3A and % as %25"


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_KEYS or any(hint in lowered for hint in _SECRET_HINTS)


def check_database_url(url: sa.URL) -> sa.URL:
    """``url`` if its parts are unambiguous; UnsafeUrl otherwise."""
    if url.host is not None and url.host != "" and not _HOST.fullmatch(url.host):
        raise UnsafeUrl(f"the database URL's host is not a host name: if the password holds "
                        f"special characters, {ENCODE_HINT}")
    if url.username is not None and "@" in url.username:
        raise UnsafeUrl(f"the database URL's user name holds '@': {ENCODE_HINT}")
    return url


def parse_database_url(raw: str | sa.URL) -> sa.URL:
    """A database URL parsed by SQLAlchemy and checked; UnsafeUrl when it is not a database
    URL or its parts are ambiguous."""
    if isinstance(raw, sa.URL):
        return check_database_url(raw)
    try:
        url = sa.make_url(raw)
    except (ArgumentError, ValueError):
        raise UnsafeUrl("is not a database URL like postgresql+psycopg://user:pass@host/db") \
            from None
    return check_database_url(url)


def _forms(value: str) -> Iterator[str]:
    """The spellings a secret may take in a message: raw, percent-encoded, form-encoded, and
    as SQLAlchemy renders a password."""
    yield value
    yield quote(value, safe="")
    yield quote_plus(value)
    rendered = sa.URL.create("d", username="u", password=value, host="h").render_as_string(
        hide_password=False)
    yield rendered[len("d://u:"):-len("@h")]


def database_url_secrets(url: sa.URL) -> set[str]:
    """The URL's password and secret query values, in every spelling they may be shown in."""
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if is_secret_key(key):
            values.extend([value] if isinstance(value, str) else list(value))
    return {form for v in values if v for form in _forms(str(v)) if form}


def redact_database_url(url: str | sa.URL) -> str:
    """The URL as SQLAlchemy renders it, with the password and secret query values ``***``;
    ``scheme://***`` when it cannot be parsed safely."""
    try:
        parsed = parse_database_url(url)
    except UnsafeUrl:
        scheme = str(url).split(":", 1)[0] if "://" in str(url) else "database"
        return f"{scheme}://{REDACTED}" if scheme.replace("+", "").isalnum() else REDACTED
    query = {k: REDACTED if is_secret_key(k) else v for k, v in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace(quote(REDACTED, safe=""), REDACTED)


def redact_http_url(url: str) -> str:
    """The URL rebuilt from its parsed parts, with the password and credential-like query
    values ``***``; ``scheme://***`` when it cannot be parsed."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return f"{url.split(':', 1)[0]}://{REDACTED}" if "://" in url else REDACTED
    userinfo = ""
    if parts.username is not None:
        userinfo = parts.username + (f":{REDACTED}" if parts.password is not None else "") + "@"
    host = f"[{host}]" if ":" in host else host
    netloc = userinfo + host + (f":{port}" if port is not None else "")
    query = urlencode([(k, REDACTED if is_secret_key(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def http_url_secrets(url: str) -> set[str]:
    """The URL's password and secret query values, in every spelling."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return {url}
    values = [parts.password] if parts.password else []
    values += [v for k, v in parse_qsl(parts.query) if is_secret_key(k)]
    return {form for v in values if v for form in _forms(v) if form}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so overlaps cannot leak)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
