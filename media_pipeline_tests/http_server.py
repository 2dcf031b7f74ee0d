"""One real HTTP server for the tests: it serves a handler function on 127.0.0.1.

A test writes what the server does as a function from :class:`Request` to :class:`Response`
(a scripted API, a proxy that injects faults in front of the S3 server, an S3 that refuses)
and gets the server's URL; every request is recorded. The server runs in a thread of the test
process, answers each request in its own thread, and is shut down when the block ends::

    with serve(lambda request: Response(200, {"ok": True})) as server:
        httpx.get(server.url + "/x")
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Set by the server from the body; a handler's own value (e.g. copied from upstream) is dropped.
_SERVER_HEADERS = {"content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string, as sent
    headers: Message  # case-insensitive ``get``
    body: bytes

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Response:
    """What to answer. A dict or list body is sent as JSON, a str as text; ``cut_at`` sends
    only that many bytes of the body, then drops the connection (a read that breaks off)."""

    status: int = 200
    body: bytes | str | Mapping[str, Any] | Sequence[Any] = b""
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = field(default_factory=dict)
    cut_at: int | None = None

    def encoded(self) -> tuple[bytes, list[tuple[str, str]]]:
        headers = list(self.headers.items() if isinstance(self.headers, Mapping)
                       else self.headers)
        names = {name.lower() for name, _ in headers}
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            data, ctype = self.body.encode(), "text/plain"
        else:
            data, ctype = json.dumps(self.body).encode(), "application/json"
        if "content-type" not in names:
            headers.insert(0, ("Content-Type", ctype))
        return data, headers


Handler = Callable[[Request], Response]


class TestServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) answering with ``handler``, which a
    test may replace at any time. ``requests`` lists what it received, in order."""

    __test__ = False  # not a test class, for pytest

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> TestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_class(server: TestServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, self.path, self.headers,
                              self.rfile.read(length) if length else b"")
            server._record(request)
            response = server.handler(request)
            data, headers = response.encoded()
            try:
                self.send_response(response.status)
                for name, value in headers:
                    if name.lower() not in _SERVER_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if response.cut_at is not None:
                    self.wfile.write(data[:response.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return _Handler


@contextmanager
def serve(handler: Handler) -> Iterator[TestServer]:
    """A :class:`TestServer` for the block."""
    with TestServer(handler) as server:
        yield server
