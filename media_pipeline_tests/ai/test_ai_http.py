"""The HTTP AI backend against a real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions
protocol: answers, fenced and malformed JSON, retries, Retry-After, timeouts, the circuit breaker,
and the API key never leaking."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from media_pipeline.ai.http_backend import (
    PROMPT_VERSION,
    AIServiceError,
    AIServiceUnavailable,
    CircuitBreaker,
    HttpAIBackend,
)
from media_pipeline_tests.http_server import Request, Response, TestServer

API_KEY = "sk-test-Zq8v3SECRETkey71"
MODEL = "test-vision-model"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON, str/bytes → as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # wait this long (bounded by teardown) before answering
    echo_auth: bool = False  # put the request's Authorization header in the body


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def chat(content: Any, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }


class ChatServer:
    """Scripted chat-completions server: each request takes the next Reply from ``script``,
    then ``default``; every request is recorded in ``seen``."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply(body=chat("{}"))
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.http = TestServer(self._handle)
        self.port = self.http.port
        self.url = f"{self.http.url}/v1"

    def _handle(self, request: Request) -> Response:
        try:
            body: Any = json.loads(request.body) if request.body else None
        except ValueError:
            body = request.body
        with self.lock:
            self.seen.append(
                Seen(request.method, request.path, dict(request.headers.items()), body)
            )
            reply = self.script.popleft() if self.script else self.default
        if reply.delay:
            self.release.wait(reply.delay)
        payload = reply.body
        if reply.echo_auth:
            payload = {"error": {"message": "bad key "
                                 + str(request.headers.get("Authorization"))}}
        if isinstance(payload, dict | list | str):
            return Response(reply.status, payload, reply.headers)
        return Response(reply.status, payload or b"",
                        {"Content-Type": "application/octet-stream", **reply.headers})

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def close(self) -> None:
        self.release.set()
        self.http.close()


@pytest.fixture
def server() -> Iterator[ChatServer]:
    srv = ChatServer()
    yield srv
    srv.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_backend(server: ChatServer, **kwargs: Any) -> HttpAIBackend:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("sleep", Sleeps())
    return HttpAIBackend(server.url, kwargs.pop("api_key", API_KEY), **kwargs)


def png(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


GOOD_ANSWER = {
    "title": "Red  barn in a field",
    "title_confidence": 0.81,
    "tags": [
        {"name": "Barn", "confidence": 0.93},
        {"name": "field", "confidence": 0.42},
        {"name": "barn", "confidence": 0.5},  # duplicate: the best score wins
        "sky",  # no confidence: skipped, counted
    ],
    "description": "A red barn.",
    "text": "FARM SALE\n\nSunday 9am",
    "text_confidence": 0.6,
}


def test_answer_parsed_with_raw_confidences_and_request_shape(server: ChatServer) -> None:
    server.script.append(Reply(body=chat(json.dumps(GOOD_ANSWER))))
    with make_backend(server) as backend:
        result = backend.analyze_image(png(), filename="barn.png", hint="farm photos")

    assert (result.backend, result.model, result.version) == ("http", MODEL, PROMPT_VERSION)
    detector = f"http:{MODEL}"
    assert [(t.value, t.score, t.detector) for t in result.tags] == [
        ("barn", 0.93, detector),
        ("field", 0.42, detector),  # below any threshold, still stored raw
    ]
    assert result.title is not None
    assert (result.title.value, result.title.score) == ("Red barn in a field", 0.81)
    assert [(line.value, line.score) for line in result.text_lines] == [
        ("FARM SALE", 0.6),
        ("Sunday 9am", 0.6),
    ]
    assert result.extracted_text == "FARM SALE\nSunday 9am"
    assert "1 tag entries" in result.errors["http"]

    (req,) = server.posts()
    assert req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.body["model"] == MODEL
    assert req.body["response_format"] == {"type": "json_object"}
    user = next(m for m in req.body["messages"] if m["role"] == "user")
    kinds = [part["type"] for part in user["content"]]
    assert kinds == ["text", "image_url"]
    text = user["content"][0]["text"]
    assert "'barn.png'" in text and "farm photos" in text
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.format == "JPEG" and sent.size == (64, 48)


def test_fenced_json_answer(server: ChatServer) -> None:
    content = (
        "Here is the analysis of {the image}:\n```json\n"
        + json.dumps({"title": "Cat", "tags": [{"name": "cat", "confidence": 0.99}]})
        + "\n```\n"
    )
    server.script.append(Reply(body=chat(content)))
    result = make_backend(server).analyze_image(png())
    assert [(t.value, t.score) for t in result.tags] == [("cat", 0.99)]
    assert result.title is not None and result.title.value == "Cat"
    assert result.title.score == 1.0  # no title_confidence given: recorded as unscored


def test_malformed_json_is_a_service_error_not_retried(server: ChatServer) -> None:
    server.default = Reply(body=chat('{"title": "Cat", "tags": [{"name": "cat",'))
    backend = make_backend(server)
    with pytest.raises(AIServiceError, match="malformed JSON"):
        backend.analyze_image(png())
    assert len(server.posts()) == 1
    # The service answered: this is not an outage, the breaker does not count it.
    assert backend.breaker.consecutive_failures == 0


@pytest.mark.parametrize(
    "body",
    [
        {"object": "chat.completion"},  # no choices
        {"choices": [{"message": {"content": None}, "finish_reason": "length"}]},
        "<html>proxy login</html>",  # not JSON at all
        chat('["a list", "not an object"]'),
    ],
)
def test_bad_response_shapes_are_service_errors(server: ChatServer, body: Any) -> None:
    server.default = Reply(body=body)
    with pytest.raises(AIServiceError) as info:
        make_backend(server).analyze_image(png())
    assert not isinstance(info.value, AIServiceUnavailable)
    assert len(server.posts()) == 1


def test_500_then_200_is_retried_and_succeeds(server: ChatServer) -> None:
    server.script.extend([
        Reply(status=500, body={"error": {"message": "overloaded"}}),
        Reply(status=502, body="bad gateway"),
        Reply(body=chat(json.dumps(GOOD_ANSWER))),
    ])
    sleeps = Sleeps()
    result = make_backend(server, sleep=sleeps, backoff_base=0.5).analyze_image(png())
    assert result.title is not None
    assert len(server.posts()) == 3
    # Exponential backoff with jitter: attempt n waits within [base*2^n / 2, base*2^n].
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_5xx_after_all_retries_is_unavailable(server: ChatServer) -> None:
    server.default = Reply(status=503, body={"error": {"message": "maintenance"}})
    backend = make_backend(server, max_retries=2)
    with pytest.raises(AIServiceUnavailable) as info:
        backend.analyze_image(png())
    assert info.value.status_code == 503
    assert "maintenance" in str(info.value) and "3 attempts" in str(info.value)
    assert len(server.posts()) == 3
    assert backend.breaker.consecutive_failures == 1  # one logical call, one failure


def test_429_honours_retry_after(server: ChatServer) -> None:
    server.script.extend([
        Reply(status=429, headers={"Retry-After": "3"}, body={"error": {"message": "slow"}}),
        Reply(body=chat(json.dumps(GOOD_ANSWER))),
    ])
    sleeps = Sleeps()
    make_backend(server, sleep=sleeps).analyze_image(png())
    assert sleeps == [3.0]
    assert len(server.posts()) == 2


def test_429_with_long_retry_after_defers_without_waiting(server: ChatServer) -> None:
    server.default = Reply(status=429, headers={"Retry-After": "3600"})
    sleeps = Sleeps()
    with pytest.raises(AIServiceUnavailable) as info:
        make_backend(server, sleep=sleeps, max_retry_after=30).analyze_image(png())
    assert info.value.retry_after == 3600.0
    assert sleeps == [] and len(server.posts()) == 1


def test_4xx_is_not_retried(server: ChatServer) -> None:
    server.default = Reply(status=400, body={"error": {"message": "model does not support images"}})
    backend = make_backend(server)
    with pytest.raises(AIServiceError, match="model does not support images") as info:
        backend.analyze_image(png())
    assert info.value.status_code == 400
    assert len(server.posts()) == 1
    assert backend.breaker.consecutive_failures == 0  # a rejection is not an outage


def test_slow_answer_times_out_as_unavailable(server: ChatServer) -> None:
    server.default = Reply(delay=10.0, body=chat(json.dumps(GOOD_ANSWER)))
    backend = make_backend(server, timeout=0.2, max_retries=1)
    with pytest.raises(AIServiceUnavailable, match="timed out"):
        backend.analyze_image(png())
    assert len(server.posts()) == 2  # the first timeout was retried once


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    backend = HttpAIBackend(f"http://127.0.0.1:{port}/v1", API_KEY, max_retries=1,
                            sleep=sleeps, timeout=1.0)
    with pytest.raises(AIServiceUnavailable, match="after 2 attempts"):
        backend.analyze_image(png())
    assert len(sleeps) == 1  # backed off once before the retry
    assert not backend.status().available


def test_breaker_opens_then_fails_fast_then_half_opens(server: ChatServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=60.0, clock=clock)
    backend = make_backend(server, max_retries=0, breaker=breaker)
    server.default = Reply(status=500)

    for _ in range(3):
        with pytest.raises(AIServiceUnavailable, match="HTTP 500"):
            backend.analyze_image(png())
    assert len(server.posts()) == 3 and breaker.state == "open"

    with pytest.raises(AIServiceUnavailable, match="circuit is open") as info:
        backend.analyze_image(png())
    assert len(server.posts()) == 3  # failed fast: nothing reached the server
    assert info.value.retry_after == 60.0
    status = backend.status()
    assert not status.available and status.breaker == "open"
    assert server.seen == server.posts()  # status() sent no probe either

    clock.now += 59.0
    with pytest.raises(AIServiceUnavailable, match="circuit is open"):
        backend.analyze_image(png())
    assert len(server.posts()) == 3

    # Half-open: one trial goes through; it fails, so the breaker opens for another period.
    clock.now += 1.0
    assert breaker.state == "half-open"
    with pytest.raises(AIServiceUnavailable, match="HTTP 500"):
        backend.analyze_image(png())
    assert len(server.posts()) == 4 and breaker.state == "open"
    with pytest.raises(AIServiceUnavailable, match="circuit is open"):
        backend.analyze_image(png())
    assert len(server.posts()) == 4

    # Next trial succeeds: closed again, calls flow.
    clock.now += 60.0
    server.default = Reply(body=chat(json.dumps(GOOD_ANSWER)))
    assert backend.analyze_image(png()).title is not None
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    backend.analyze_image(png())
    assert len(server.posts()) == 6


def test_success_resets_the_consecutive_count(server: ChatServer) -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    backend = make_backend(server, max_retries=0, breaker=breaker)
    server.script.extend([Reply(status=500), Reply(body=chat("{}")), Reply(status=500)])
    with pytest.raises(AIServiceUnavailable):
        backend.analyze_image(png())
    backend.analyze_image(png())
    with pytest.raises(AIServiceUnavailable):
        backend.analyze_image(png())
    assert breaker.state == "closed"  # 1 failure, success, 1 failure: never 2 in a row


def test_half_open_admits_one_trial_among_concurrent_callers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=10.0, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    clock.now += 10.0
    barrier = threading.Barrier(8)
    admitted: list[int] = []
    refused: list[int] = []

    def call(i: int) -> None:
        barrier.wait()
        try:
            breaker.before_call()
        except AIServiceUnavailable:
            refused.append(i)
        else:
            admitted.append(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(admitted) == 1 and len(refused) == 7
    breaker.release()  # the trial ended without a verdict: the next caller may try
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"


def test_api_key_never_leaks(server: ChatServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = make_backend(server, max_retries=1)
    impatient = make_backend(server, max_retries=0, timeout=0.2)
    assert API_KEY not in repr(backend) and "***" in repr(backend)

    failures: list[BaseException] = []
    # A server that echoes the Authorization header in its 401 and 500 answers, a model that
    # echoes it in malformed content, and a timeout.
    server.script.append(Reply(status=401, echo_auth=True))
    server.script.extend([Reply(status=500, echo_auth=True), Reply(status=500, echo_auth=True)])
    server.script.append(Reply(body=chat(f"not json {API_KEY}")))
    server.script.append(Reply(delay=10.0))
    for client in (backend, backend, backend, impatient):
        with pytest.raises((AIServiceError, AIServiceUnavailable)) as info:
            client.analyze_image(png())
        failures.append(info.value)
    server.release.set()

    assert [type(f) for f in failures] == [
        AIServiceError, AIServiceUnavailable, AIServiceError, AIServiceUnavailable,
    ]
    assert "check AI_SERVICE_API_KEY" in str(failures[0])
    assert "bad key Bearer ***" in str(failures[0])  # the echo arrived, scrubbed
    for exc in failures:
        assert API_KEY not in str(exc) and API_KEY not in repr(exc)
        assert API_KEY not in "".join(traceback.format_exception(exc))
    assert any("retry 1/1" in r.getMessage() for r in caplog.records)  # logs were written
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(backend)


def test_large_image_is_downscaled_to_jpeg(server: ChatServer) -> None:
    big = io.BytesIO()
    Image.new("RGBA", (3000, 1500), (10, 200, 10, 128)).save(big, format="PNG")
    make_backend(server).analyze_image(big.getvalue())
    (req,) = server.posts()
    user = next(m for m in req.body["messages"] if m["role"] == "user")
    url = user["content"][1]["image_url"]["url"]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.format == "JPEG" and sent.size == (1024, 512) and sent.mode == "RGB"


def test_corrupt_image_is_an_error_and_sends_nothing(server: ChatServer) -> None:
    backend = make_backend(server)
    with pytest.raises(AIServiceError, match="cannot read the image"):
        backend.analyze_image(b"\x89PNG\r\n\x1a\n this is not really a png")
    assert server.seen == []
    assert backend.breaker.consecutive_failures == 0


def test_suggest_tags_from_text(server: ChatServer) -> None:
    server.script.append(Reply(body=chat(json.dumps(
        {"tags": [{"name": "Invoice", "confidence": 0.88}, {"name": "tax", "confidence": "0.3"}]}
    ))))
    tags = make_backend(server).suggest_tags("Invoice 2024-17, VAT 20%")
    assert [(t.value, t.score, t.detector) for t in tags] == [
        ("invoice", 0.88, f"http:{MODEL}"),
        ("tax", 0.3, f"http:{MODEL}"),
    ]
    (req,) = server.posts()
    user = next(m for m in req.body["messages"] if m["role"] == "user")
    assert "Invoice 2024-17" in user["content"]
    assert make_backend(server).suggest_tags("   ") == []
    assert len(server.posts()) == 1  # empty text: no request


def test_status_probes_models(server: ChatServer) -> None:
    server.script.append(Reply(body={"object": "list", "data": [{"id": MODEL}]}))
    status = make_backend(server).status()
    assert status.available and status.error is None
    assert status.latency_ms is not None and status.latency_ms >= 0
    assert status.model == MODEL and status.breaker == "closed"
    (req,) = server.seen
    assert (req.method, req.path) == ("GET", "/v1/models")
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"

    server.script.append(Reply(status=401, echo_auth=True))
    bad = make_backend(server).status()
    assert not bad.available and bad.error is not None and "401" in bad.error
    assert API_KEY not in str(bad.to_dict())


def test_no_api_key_sends_no_authorization(server: ChatServer) -> None:
    backend = make_backend(server, api_key=None)
    backend.analyze_image(png())
    (req,) = server.posts()
    assert "Authorization" not in req.headers
