"""Where an ``http`` source's credentials may go, and how long one request may take.

Origins are compared as (scheme, host, port); ``allowed_origins`` entries are
``scheme://host[:port]`` and nothing else. :class:`Deadline` bounds a whole request: httpx's
timeouts are per read, so a server that sends a byte now and then would otherwise keep a scan
waiting forever.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import httpx

MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin_of(url: str | httpx.URL) -> Origin:
    """(scheme, host, port) of a URL, the default port filled in."""
    parsed = httpx.URL(str(url))
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS.get(scheme, 0)


def origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}" + ("" if DEFAULT_PORTS.get(scheme) == port else f":{port}")


def parse_origin(text: str) -> Origin:
    """An ``allowed_origins`` entry: ``scheme://host[:port]`` and nothing else."""
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in DEFAULT_PORTS or not parsed.host \
            or parsed.raw_path not in (b"", b"/") or parsed.query or parsed.userinfo:
        raise ValueError(f"allowed origin {text!r} must be scheme://host[:port], "
                         "e.g. https://cdn.example.com")
    return origin_of(parsed)


class Deadline:
    """Ends a request when ``seconds`` have passed, whatever it is doing (connecting, waiting
    for headers, reading a body that drips): httpx's timeouts are per read, so a server that
    sends a byte now and then would keep a scan waiting forever. The request's sockets are
    captured through httpx's trace hook and shut down when the timer fires."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete" or info.get("return_value") is None:
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
