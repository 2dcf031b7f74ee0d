"""The tests' HTTP server helper: what a handler returns is what a client receives."""

from __future__ import annotations

import httpx
import pytest

from media_pipeline_tests.http_server import Request, Response, serve


def test_a_handler_answers_json_and_sees_each_request() -> None:
    def handler(request: Request) -> Response:
        return Response(201, {"route": request.route, "q": request.query, "got": request.json()},
                        {"X-Extra": "1"})

    with serve(handler) as server:
        reply = httpx.post(f"{server.url}/items?page=2", json={"a": 1})
        head = httpx.head(f"{server.url}/items")
    assert reply.status_code == 201 and reply.headers["x-extra"] == "1"
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"route": "/items", "q": {"page": ["2"]}, "got": {"a": 1}}
    assert head.content == b"" and int(head.headers["content-length"]) > 0
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/items?page=2"), ("HEAD", "/items")]


def test_a_cut_body_breaks_off() -> None:
    with serve(lambda request: Response(200, b"x" * 1000, cut_at=10)) as server, \
            pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url)
