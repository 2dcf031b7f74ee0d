"""Issue 11, item 5, with real HTTP servers on 127.0.0.1: an ``http`` source's credentials go
only to its own origin (not to a next link or a redirect elsewhere, unless allowed), and its
``timeout`` bounds each whole request, also against a server that drips one byte at a time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from media_pipeline.references.sources import SourceError
from media_pipeline.references.sources.config import SourceConfigError, load_sources_text
from media_pipeline.references.sources.http import HttpSource
from media_pipeline_tests.references.test_sources import Api, Reply, http_source, item, ok

TOKEN = "tok-Secret-42"
CREDENTIALS = {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": "key-Secret-43"}


class Recorder(Api):
    """An API that records the headers of every request it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str]] = []

    def answer(self, reply: Any) -> None:
        def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
            self.seen.append({k.lower(): v for k, v in headers.items()})
            return reply(path, query, headers)
        self.handler = handler

    def credentials(self) -> list[str]:
        return [h[k] for h in self.seen for k in ("authorization", "x-api-key") if k in h]


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    """Two APIs on two ports of 127.0.0.1: two origins."""
    a, b = Recorder(), Recorder()
    yield a, b
    a.close()
    b.close()


def test_a_next_link_to_another_origin_gets_no_credentials(
        servers: tuple[Recorder, Recorder]) -> None:
    a, b = servers
    a.answer(lambda p, q, h: ok({"data": {"items": [item(1)]}, "next": f"{b.url}/steal"}))
    b.answer(lambda p, q, h: ok({"data": {"items": [item(2)]}, "next": None}))
    source = http_source(f"{a.url}/items", next="next", headers=CREDENTIALS)
    with pytest.raises(SourceError, match="next link|link goes to another origin") as refused:
        list(source.documents())
    assert "allowed_origins" in str(refused.value) and TOKEN not in str(refused.value)
    assert b.seen == [] and len(a.credentials()) == 2

    # Allowed explicitly: followed, with the credentials.
    allowed = http_source(f"{a.url}/items", next="next", headers=CREDENTIALS,
                          allowed_origins=[b.url])
    assert [d.content_id for d in allowed.documents()] == ["1", "2"]
    assert b.credentials() == [CREDENTIALS["Authorization"], CREDENTIALS["X-Api-Key"]]


def test_a_redirect_to_another_origin_is_refused(servers: tuple[Recorder, Recorder]) -> None:
    a, b = servers
    a.answer(lambda p, q, h: (302, {"Location": f"{b.url}/elsewhere"}, b""))
    b.answer(lambda p, q, h: ok({"data": {"items": []}}))
    with pytest.raises(SourceError, match="redirect goes to another origin"):
        list(http_source(f"{a.url}/items", headers=CREDENTIALS).documents())
    assert b.seen == []
    # A redirect within the origin is followed, credentials and all.
    a.answer(lambda p, q, h: ((302, {"Location": "/v2/items"}, b"") if p == "/items"
                              else ok({"data": {"items": [item(7)]}})))
    assert [d.content_id for d in http_source(f"{a.url}/items", headers=CREDENTIALS)
            .documents()] == ["7"]


def test_allowed_origins_are_checked_in_the_sources_file() -> None:
    text = ("sources:\n  - {name: cms-api, type: http, url: 'https://cms.example.com/items', "
            "items: data, id_field: id, text_fields: [body], content_type: webpage, "
            "next: next, allowed_origins: ['https://cdn.example.com/path']}\n")
    with pytest.raises(SourceConfigError, match="must be scheme://host"):
        load_sources_text(text)
    [source] = load_sources_text(text.replace("/path", ""))
    assert isinstance(source, HttpSource)
    assert ("https", "cdn.example.com", 443) in source.allowed_origins


@pytest.fixture
def drip() -> Iterator[Any]:
    """A raw socket server that sends its response one byte every 1.5 s; ``mode`` says
    whether the headers or only the body drip."""
    servers: list[socket.socket] = []

    def start(mode: str) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)
        servers.append(srv)

        def handle(conn: socket.socket) -> None:
            body = b'{"data": {"items": []}}'
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body))
            with conn:
                try:
                    conn.recv(65536)
                    if mode == "body":
                        conn.sendall(head)
                    data = body if mode == "body" else head + body
                    for i in range(len(data)):
                        conn.sendall(data[i:i + 1])
                        time.sleep(1.5)
                except OSError:
                    pass

        def serve() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}/items"

    yield start
    for srv in servers:
        srv.close()


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_timeout_is_a_deadline_for_the_whole_request(drip: Any, mode: str) -> None:
    # Every read gets a byte within 1.5 s, so a per-read timeout of 2 s never fires; without
    # a deadline this read takes minutes (pytest's own timeout ends the test).
    source = http_source(drip(mode), timeout=2, retries=0)
    with pytest.raises(SourceError, match=r"no complete response within 2 s \(timeout is for "
                                          r"the whole request\) after 1 attempts"):
        list(source.documents())
