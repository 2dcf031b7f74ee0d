"""A paginated JSON API as a content source (a headless CMS, an app's admin API).

Pages are fetched one at a time, so memory holds one page (at most ``max_page_bytes``).
Transient failures (connection errors, timeouts, 429 and 5xx) are retried with exponential
backoff; when retries run out, or a page is not what the configuration says it is, the scan
fails with SourceError rather than ending early. ``max_pages`` stops a ``next`` link that
never ends.

A read ends only on the API's own end signal: no next link, ``has_more`` false, the last of
``total_pages``, or ``total`` items read. An empty page that still promises more, a total that
does not match what was read, a page that repeats the previous one, the page limit, or an
item (content type and id) served twice in one read (the collection changed while it was read:
an item moved between pages, and another may have been skipped) is a failure, never the end.
A configured text field missing from an item is an error too (a renamed field would otherwise
read every document as empty), unless it is in ``optional_text_fields``. Besides the page,
memory holds each item's content type and id, to notice a repeat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import httpx

from media_pipeline.redaction import http_url_secrets, redact_http_url
from media_pipeline.references.document import Document
from media_pipeline.references.sources.base import REDACTED, ContentSource, SourceError
from media_pipeline.references.sources.http_guard import (
    MAX_REDIRECTS,
    Deadline,
    origin_of,
    origin_text,
    parse_origin,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 100_000
DEFAULT_MAX_PAGE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
MAX_RETRY_AFTER = 60.0
LINK_HEADER = "link"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "apikey", "digest"})
END_EMPTY_PAGE = "empty_page"

_MISSING = object()


def dotted(value: Any, path: str) -> Any:
    """``value`` at a dotted path (``data.items``, ``results.0.id``); _MISSING if absent.

    An empty path is the value itself.
    """
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def field_text(value: Any) -> str:
    """A field's value as text: strings as they are, nested values as JSON, null as empty."""
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class HttpSource(ContentSource):
    """Items from a JSON API: ``items`` is the dotted path to the list in each page.

    Pagination is one of: ``next`` = a dotted path to the next page's URL in the body, or
    ``"link"`` for the ``Link: <…>; rel="next"`` header; or ``page_param`` (+ ``page_size_param``),
    counting up from ``first_page`` until the API's end signal (``has_more``, ``total_pages``
    or ``total``; ``end: empty_page`` opts in to stopping at the first page without items); or
    none (a single page).
    """

    kind = "http"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        items: str,
        id_field: str,
        text_fields: Sequence[str],
        content_type: str | None = None,
        content_type_field: str | None = None,
        format: str = "auto",
        headers: Mapping[str, str] | None = None,
        next: str | None = None,
        page_param: str | None = None,
        page_size_param: str | None = None,
        page_size: int = 100,
        first_page: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        allowed_origins: Sequence[str] = (),
        total: str | None = None,
        total_pages: str | None = None,
        has_more: str | None = None,
        end: str | None = None,
        optional_text_fields: Sequence[str] = (),
        enabled: bool = True,
    ) -> None:
        super().__init__(name, enabled=enabled)
        if content_type is None and content_type_field is None:
            raise ValueError("give content_type or content_type_field")
        if next is not None and page_param is not None:
            raise ValueError("give next or page_param, not both")
        if page_size_param is not None and page_param is None:
            raise ValueError("page_size_param needs page_param")
        if not text_fields:
            raise ValueError("text_fields must not be empty")
        if end not in (None, END_EMPTY_PAGE):
            raise ValueError(f"end must be {END_EMPTY_PAGE!r}")
        if page_param is None and (total_pages or has_more or end):
            raise ValueError("total_pages, has_more and end need page_param")
        if page_param is not None and not (total or total_pages or has_more or end):
            raise ValueError(
                "page_param needs the API's end signal: has_more (a true/false path), "
                "total_pages or total (paths to counts), or end: empty_page to stop at the "
                "first empty page (weak: an API that stops early looks like the end)")
        if min(max_pages, max_page_bytes, page_size) < 1 or min(retries, backoff) < 0 \
                or timeout <= 0:
            raise ValueError("max_pages, max_page_bytes, page_size must be >= 1; retries, "
                             "backoff >= 0; timeout > 0")
        self.url = url
        self.items = items
        self.id_field = id_field
        self.text_fields = tuple(text_fields)
        self.content_type = content_type
        self.content_type_field = content_type_field
        self.format = format
        self.headers = dict(headers or {})
        self.next = next
        self.page_param = page_param
        self.page_size_param = page_size_param
        self.page_size = page_size
        self.first_page = first_page
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_pages = max_pages
        self.max_page_bytes = max_page_bytes
        # Credentials (the headers) go only to the configured origin and these.
        self.origin = origin_of(url)
        self.allowed_origins = frozenset({self.origin, *(parse_origin(o) for o in allowed_origins)})
        self.total = total
        self.total_pages = total_pages
        self.has_more = has_more
        self.end = end
        self.optional_text_fields = frozenset(optional_text_fields)

    def describe(self) -> str:
        headers = ", ".join(f"{k}={REDACTED}" for k in self.headers)
        extra = f" (headers: {headers})" if headers else ""
        return f"http {redact_http_url(self.url)}{extra}"

    def _secrets(self) -> Iterable[str]:
        for value in self.headers.values():
            # "Bearer abc": an error may quote the token without its scheme.
            yield value
            yield from (p for p in value.split() if p.lower() not in AUTH_SCHEMES)
        yield from http_url_secrets(self.url)

    # --- paging ---

    def _documents(self) -> Iterator[Document]:
        # No client-wide headers and no automatic redirects: each request is sent by _follow
        # only after its origin was checked. No keep-alive, so every request's socket is seen
        # by its deadline.
        with httpx.Client(timeout=self.timeout, follow_redirects=False,
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:
            # An item served twice means the collection changed under the pagination (an edit
            # re-sorted it): offset or page-number pages then skip another item, while the
            # count can still match ``total``. So a repeat fails the read.
            pages: dict[tuple[str, str], int] = {}
            for number, _url, items in self._pages(client):
                for index, item in enumerate(items):
                    document = self._document(item, number, index)
                    seen = (document.content_type, document.content_id)
                    first = pages.get(seen)
                    if first is not None:
                        raise SourceError(
                            self.name, f"content id {document.content_id} was served twice "
                                       f"(pages {first} and {number}): the collection changed "
                                       "while it was read; the next scan retries")
                    pages[seen] = number
                    yield document

    def _count(self, body: Any, path: str, number: int, what: str) -> int:
        value = dotted(body, path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SourceError(self.name, f"page {number}: {what} path {path!r} is "
                                         f"{'missing' if value is _MISSING else repr(value)}, "
                                         "not a count")
        return value

    def _pages(self, client: httpx.Client) -> Iterator[tuple[int, str, list[Any]]]:
        """(page number, url, items) of each page, following the configured pagination until
        the API's own end signal; anything else that stops the read is a SourceError."""
        url: str | None = self._page_url(self.first_page) if self.page_param else self.url
        seen: set[str] = set()
        page_number = self.first_page
        count = read = 0
        total: int | None = None
        total_pages: int | None = None
        previous: bytes | None = None
        while url is not None:
            if count >= self.max_pages:
                raise SourceError(self.name, f"more than max_pages ({self.max_pages}) pages; "
                                             f"a next link that never ends?")
            if url in seen:
                raise SourceError(self.name, f"page {count + 1} links back to a page already "
                                             f"read ({redact_http_url(url)})")
            seen.add(url)
            response, content = self._get(client, url, count + 1)
            body = self._json(response, content, url, count + 1)
            count += 1
            items = dotted(body, self.items)
            if not isinstance(items, list):
                found = "missing" if items is _MISSING else f"a {type(items).__name__}"
                raise SourceError(self.name, f"page {count} ({redact_http_url(url)}): "
                                             f"items path {self.items!r} is {found}, "
                                             f"not a list")
            digest = hashlib.blake2b(content, digest_size=16).digest()
            if items and digest == previous:
                raise SourceError(self.name, f"page {count} repeats page {count - 1}: an API "
                                             "that ignores the page parameter?")
            previous = digest
            n = len(items)
            read += n
            if self.total:
                total = self._steady_count(body, self.total, count, "total", total)
            if self.total_pages:
                total_pages = self._steady_count(body, self.total_pages, count, "total_pages",
                                                 total_pages)
            yield count, url, items
            if self.page_param:
                done = self._page_param_end(body, count, page_number, n, read, total,
                                            total_pages)
                if n == 0 and not done:
                    raise SourceError(self.name, f"page {count} is empty but the API says "
                                                 "there is more: an API that stopped early is "
                                                 "not the end")
                if done:
                    break
                page_number += 1
                url = self._page_url(page_number)
                continue
            if self.next == LINK_HEADER:
                link = response.links.get("next", {}).get("url")
                url = urljoin(url, link) if link else None
            elif self.next:
                target = dotted(body, self.next)
                if target not in (None, "", _MISSING) and not isinstance(target, str):
                    raise SourceError(self.name, f"page {count}: next path {self.next!r} is "
                                                 f"not a URL string")
                url = urljoin(url, target) if isinstance(target, str) and target else None
            else:
                url = None
            if n == 0 and url is not None:
                raise SourceError(self.name, f"page {count} is empty but links to a next page: "
                                             "an API that stopped early is not the end")
        if total is not None and read != total:
            raise SourceError(self.name, f"read {read} items, the API says {total}")

    def _steady_count(self, body: Any, path: str, number: int, what: str,
                      previous: int | None) -> int:
        """The count at ``path``, which must stay what earlier pages said."""
        value = self._count(body, path, number, what)
        if previous is not None and value != previous:
            raise SourceError(self.name, f"page {number}: the {what} changed from {previous} to "
                                         f"{value} during the read")
        return value

    def _page_param_end(self, body: Any, number: int, page: int, n: int, read: int,
                        total: int | None, total_pages: int | None) -> bool:
        """Whether this page is the last one, by the configured end signal."""
        if self.has_more:
            more = dotted(body, self.has_more)
            if not isinstance(more, bool):
                raise SourceError(self.name, f"page {number}: has_more path {self.has_more!r} "
                                             f"is {'missing' if more is _MISSING else repr(more)}"
                                             ", not true/false")
            return not more
        if total_pages is not None:
            return page >= self.first_page + total_pages - 1
        if total is not None:
            return read >= total
        return n == 0  # end: empty_page

    def _page_url(self, page: int) -> str:
        assert self.page_param is not None
        params = {self.page_param: str(page)}
        if self.page_size_param:
            params[self.page_size_param] = str(self.page_size)
        return str(httpx.URL(self.url).copy_merge_params(params))

    def _get(self, client: httpx.Client, url: str, number: int) -> tuple[httpx.Response, bytes]:
        """GET one page and its body, retrying transient failures; SourceError when they
        persist or the body is over ``max_page_bytes``."""
        where = f"page {number} ({redact_http_url(url)})"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            retry_after: str | None = None
            deadline = Deadline(self.timeout)
            try:
                with deadline:
                    response = self._follow(client, url, deadline, where)
                    try:
                        if response.is_success:
                            return response, self._read_body(response, where)
                        if response.status_code not in RETRY_STATUSES or last:
                            tries = f" after {attempt + 1} attempts" if attempt else ""
                            raise SourceError(self.name, f"{where}: HTTP {response.status_code} "
                                                         f"{response.reason_phrase}{tries}")
                        retry_after = response.headers.get("retry-after")
                    finally:
                        response.close()
            except httpx.TransportError as exc:
                if last:
                    timed_out = deadline.expired or isinstance(exc, httpx.TimeoutException)
                    what = (f"no complete response within {self.timeout:g} s (timeout is for "
                            "the whole request)" if timed_out else type(exc).__name__)
                    raise SourceError(self.name, f"{where}: {what} after {attempt + 1} "
                                                 "attempts") from None
            self._sleep(attempt, retry_after)
        raise AssertionError("unreachable")

    def _follow(self, client: httpx.Client, url: str, deadline: Deadline,
                where: str) -> httpx.Response:
        """GET ``url`` with the configured headers, following redirects by hand: every hop's
        origin is checked before anything is sent to it."""
        for hop in range(MAX_REDIRECTS + 1):
            self._check_origin(url, where, "redirect" if hop else "link")
            request = client.build_request("GET", url, headers=self.headers,
                                           extensions={"trace": deadline.trace})
            response = client.send(request, stream=True)
            if not response.is_redirect:
                return response
            response.close()
            url = str(response.url.join(response.headers.get("location", "")))
        raise SourceError(self.name, f"{where}: more than {MAX_REDIRECTS} redirects")

    def _check_origin(self, url: str, where: str, what: str) -> None:
        target = origin_of(url)
        scheme, host, port = target
        upgrade = (scheme, port) == ("https", 443) and ("http", host, 80) in self.allowed_origins
        if target not in self.allowed_origins and not upgrade:
            raise SourceError(self.name, f"{where}: the {what} goes to another origin "
                                         f"({origin_text(target)}); credentials go only to "
                                         f"{origin_text(self.origin)}: list it in "
                                         "allowed_origins to follow it")

    def _read_body(self, response: httpx.Response, where: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_page_bytes:
                raise SourceError(self.name, f"{where} is over max_page_bytes "
                                             f"({self.max_page_bytes})")
            chunks.append(chunk)
        return b"".join(chunks)

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2 ** attempt
        if retry_after is not None and _is_number(retry_after):
            # Retry-After may also be an HTTP date; then our own backoff stands.
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        time.sleep(delay)

    def _json(self, response: httpx.Response, body: bytes, url: str, number: int) -> Any:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            kind = response.headers.get("content-type", "no content type")
            raise SourceError(self.name, f"page {number} ({redact_http_url(url)}) is not JSON "
                                         f"({kind})") from None

    # --- items ---

    def _document(self, item: Any, page: int, index: int) -> Document:
        where = f"page {page}, item {index}"
        if not isinstance(item, Mapping):
            raise SourceError(self.name, f"{where} is a {type(item).__name__}, not an object")
        content_id = dotted(item, self.id_field)
        if (content_id is _MISSING or content_id is None or isinstance(content_id, dict | list)
                or str(content_id) == ""):
            raise SourceError(self.name, f"{where} has no usable id field {self.id_field!r}")
        if self.content_type_field is not None:
            content_type = dotted(item, self.content_type_field)
            if content_type in (_MISSING, None, "") and self.content_type is None:
                raise SourceError(self.name, f"{where} has no content type field "
                                             f"{self.content_type_field!r}")
            if content_type in (_MISSING, None, ""):
                content_type = self.content_type
        else:
            content_type = self.content_type
        values = []
        for name in self.text_fields:
            value = dotted(item, name)
            if value is _MISSING and name not in self.optional_text_fields:
                raise SourceError(self.name, f"{where} (id {content_id}) has no text field "
                                             f"{name!r} (renamed?); list it in "
                                             "optional_text_fields if it may be absent")
            values.append(field_text(value))
        text = "\n".join(t for t in values if t)
        return Document(str(content_type), str(content_id), text, self.format)
