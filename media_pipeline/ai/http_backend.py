"""The HTTP backend: a remote model behind an OpenAI-compatible chat-completions API.

Most hosted and self-hosted model servers (OpenAI, Azure-style gateways, vLLM, Ollama, llama.cpp,
LiteLLM, LocalAI) speak ``POST {base_url}/chat/completions`` with image input as an ``image_url``
part holding a ``data:`` URL. We ask for one JSON object (``response_format: json_object``) with a
title, tags with confidences, a description and the visible text, and turn it into an
:class:`~media_pipeline.ai.model.AnalysisResult`.

Failure handling, so that a service outage defers a batch and fails nothing else:

- every request has timeouts; connect errors, timeouts, 408, 429 (honouring ``Retry-After``) and 5xx
  are retried with exponential backoff and jitter;
- a :class:`CircuitBreaker` opens after N consecutive failed calls, then fails fast with
  :class:`AIServiceUnavailable` until ``reset_after`` seconds have passed, when one trial call is
  let through (half-open);
- :class:`AIServiceUnavailable` means "try the batch later" (down, timed out, breaker open, 5xx or
  429 after retries); :class:`AIServiceError` means the service answered but the answer is unusable
  (4xx, malformed JSON, wrong shape, unreadable image) — retrying the same input will not help.

The API key is sent only in the ``Authorization`` header. It never appears in a repr, an exception
message or a log line: messages built from server answers are scrubbed of it.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from media_pipeline.ai.model import AIServiceError, AIServiceUnavailable, AnalysisResult, Scored

log = logging.getLogger(__name__)

BACKEND_NAME = "http"
DEFAULT_MODEL = "gpt-4o-mini"
# Bump whenever the prompts, the image preparation or the parsing change what a result would be:
# the cache keys on it, so a new version re-analyses.
PROMPT_VERSION = "1"
MAX_IMAGE_SIDE = 1024
JPEG_QUALITY = 85
MAX_TAGS = 30
MAX_SUGGEST_TEXT = 8000
# Confidence recorded when the model gives a title or text without one.
UNSCORED = 1.0

SYSTEM_PROMPT = (
    "You catalog media files. Answer with exactly one JSON object and nothing else: "
    "no prose, no markdown."
)
IMAGE_PROMPT = """Describe this image for a searchable media library.
Return a JSON object with these keys:
  "title": a short descriptive title, at most 8 words, no trailing period;
  "title_confidence": your confidence in the title, from 0.0 to 1.0;
  "tags": up to 15 objects {"name": "<lowercase tag, one to three words>", "confidence": <0.0-1.0>},
          most relevant first: subjects, objects, setting, activity, style;
  "description": one or two sentences describing the image;
  "text": the text visible in the image, one line per line, exactly as written ("" if none);
  "text_confidence": your confidence that "text" is read correctly, from 0.0 to 1.0."""
TAGS_PROMPT = """Suggest tags for a media file whose content is the text between <<< and >>>.
Return a JSON object {"tags": [{"name": "<lowercase tag, one to three words>",
"confidence": <0.0-1.0>}, ...]} with up to 15 tags, most relevant first.
<<<
%s
>>>"""


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status()`` found: whether the service can be used now, how long the probe took,
    and why not."""

    available: bool
    latency_ms: float | None = None
    error: str | None = None
    backend: str = BACKEND_NAME
    model: str = ""
    breaker: str = "closed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CircuitBreaker:
    """Consecutive-failure circuit breaker, safe to share between threads.

    closed → (``failure_threshold`` consecutive failures) → open → (``reset_after`` seconds) →
    half-open: one trial call goes through while every other call still fails fast; its success
    closes the breaker, its failure opens it again for another ``reset_after``.

    Use: ``before_call()`` (raises :class:`AIServiceUnavailable` when open), then exactly one of
    ``record_success()``, ``record_failure()`` or ``release()`` (neither: e.g. interrupted).
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after < 0:
            raise ValueError("reset_after must not be negative")
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def _state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if self._trial_in_flight or self._clock() - self._opened_at >= self.reset_after:
            return self.HALF_OPEN
        return self.OPEN

    def retry_in(self) -> float:
        """Seconds until a trial call will be allowed (0 when calls are allowed now)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_after - (self._clock() - self._opened_at))

    def before_call(self) -> None:
        with self._lock:
            state = self._state()
            if state == self.CLOSED:
                return
            if state == self.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return
            assert self._opened_at is not None
            wait = max(0.0, self.reset_after - (self._clock() - self._opened_at))
            why = "a trial call is in progress" if self._trial_in_flight else (
                f"retrying in {wait:.0f}s"
            )
        raise AIServiceUnavailable(
            f"AI service circuit is open after {self.failure_threshold} consecutive failures; "
            f"{why}",
            retry_after=wait,
        )

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_in_flight = False

    def release(self) -> None:
        """The call ended without telling us anything about the service."""
        with self._lock:
            self._trial_in_flight = False

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failures={self.consecutive_failures})"


def _display_url(url: str) -> str:
    """The URL without user info or query, safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def prepare_image(image_bytes: bytes, max_side: int = MAX_IMAGE_SIDE) -> bytes:
    """The image as a JPEG whose long side is at most ``max_side`` pixels, upright (EXIF
    orientation applied), flattened onto white, without metadata (no GPS leaves the machine).

    Raises :class:`AIServiceError` when the bytes are not an image Pillow can read.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(image_bytes)) as opened:
            opened.draft("RGB", (max_side, max_side))  # fast JPEG downscale while decoding
            image = ImageOps.exif_transpose(opened)
            image.load()
    except Exception as exc:  # Pillow raises many types for corrupt input, incl. bombs
        raise AIServiceError(f"cannot read the image: {type(exc).__name__}: {exc}") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


def _extract_json_object(content: str) -> dict[str, Any]:
    """The JSON object in a model's answer, tolerating a ```json fenced block or prose around it."""
    text = content.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        start, end = text.find("{"), text.rfind("}")
        value = None
        if 0 <= start < end:
            try:
                value = json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                value = None
        if value is None:
            raise AIServiceError(
                f"AI service answered with malformed JSON ({exc.msg} at char {exc.pos}); "
                f"the answer starts {text[:80]!r}"
            ) from None
    if not isinstance(value, dict):
        raise AIServiceError(
            f"AI service answered with JSON {type(value).__name__}, expected an object"
        )
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # "0.9" (some models quote numbers)
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _parse_tags(raw: Any, detector: str) -> tuple[list[Scored], int]:
    """Tags as Scored with the raw confidence, best score per name, and how many entries were
    unusable (not an object, no name, no numeric confidence)."""
    if raw is None:
        return [], 0
    if not isinstance(raw, list):
        raise AIServiceError(
            f"AI service answer: 'tags' is a {type(raw).__name__}, expected a list"
        )
    best: dict[str, float] = {}
    skipped = 0
    for item in raw:
        name: Any = None
        score: float | None = None
        if isinstance(item, dict):
            name = item.get("name", item.get("tag", item.get("label")))
            score = _number(item.get("confidence", item.get("score")))
        if not isinstance(name, str) or not name.strip() or score is None:
            skipped += 1
            continue
        key = " ".join(name.split()).lower()
        if key not in best or score > best[key]:
            best[key] = score
    tags = [Scored(value=k, score=v, detector=detector) for k, v in best.items()]
    return tags[:MAX_TAGS], skipped


def _message_content(data: Any) -> str:
    """``choices[0].message.content`` as text, with a clear error for every other shape."""
    if not isinstance(data, dict):
        raise AIServiceError("AI service answer is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise AIServiceError("AI service answer has no 'choices'")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise AIServiceError("AI service answer has no 'choices[0].message'")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        raise AIServiceError(f"AI model refused: {refusal[:200]}")
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    if not isinstance(content, str) or not content.strip():
        if choice.get("finish_reason") == "length":
            raise AIServiceError("AI service answer was cut off (finish_reason=length)")
        raise AIServiceError("AI service answer has no text in 'choices[0].message.content'")
    if choice.get("finish_reason") == "length":
        log.warning("AI service answer was cut off (finish_reason=length); parsing what came")
    return content


class HttpAIBackend:
    """Analysis through an OpenAI-compatible chat-completions API.

    ``base_url`` is the API root that ``/chat/completions`` and ``/models`` hang off, e.g.
    ``https://api.openai.com/v1`` or ``http://localhost:11434/v1``. ``api_key`` may be None for
    servers without authentication. Safe to share between threads.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        model: str = DEFAULT_MODEL,
        timeout: float = 30.0,
        max_retries: int = 3,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 30.0,
        max_tokens: int | None = 800,
        temperature: float | None = 0.0,
        max_image_side: int = MAX_IMAGE_SIDE,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required (AI_SERVICE_URL)")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        base = base_url.rstrip("/")
        base = base.removesuffix("/chat/completions")
        self.base_url = base
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_image_side = max_image_side
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.__api_key = api_key or None
        headers = {"Accept": "application/json", "User-Agent": "media-pipeline"}
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers=headers,
            transport=transport,
            follow_redirects=False,
        )
        self._display = _display_url(base)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> HttpAIBackend:
        """From :class:`media_pipeline.settings.Settings` (AI_SERVICE_URL, AI_SERVICE_API_KEY)."""
        if not settings.ai_service_url:
            raise ValueError("AI_SERVICE_URL is not set")
        return cls(settings.ai_service_url, settings.ai_service_api_key, **kwargs)

    # -- identity -----------------------------------------------------------------------------

    @property
    def detector(self) -> str:
        return f"{BACKEND_NAME}:{self.model}"

    @property
    def version(self) -> str:
        return PROMPT_VERSION

    @property
    def parameters(self) -> dict[str, Any]:
        """What, besides backend, model and version, changes a result: for the cache key."""
        return {
            "max_image_side": self.max_image_side,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def __repr__(self) -> str:
        return (
            f"HttpAIBackend(base_url={self._display!r}, model={self.model!r}, "
            f"api_key={'***' if self.__api_key else None}, breaker={self.breaker.state!r})"
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls -------------------------------------------------------------------------

    def analyze_image(
        self, image_bytes: bytes, *, filename: str = "", hint: str = ""
    ) -> AnalysisResult:
        """Title, tags (raw confidences) and visible text for one image.

        Raises :class:`AIServiceUnavailable` (defer) or :class:`AIServiceError` (this input or
        this answer is unusable)."""
        jpeg = prepare_image(image_bytes, self.max_image_side)
        prompt = IMAGE_PROMPT
        if filename:
            prompt += f"\nThe file is named {filename[:200]!r}."
        if hint:
            prompt += f"\nContext: {hint[:500]}"
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            },
        ]
        answer = self._chat(messages)
        return self._to_result(answer)

    def suggest_tags(self, text: str) -> list[Scored]:
        """Tags (raw confidences) for a text, e.g. a document's extracted text."""
        if not text.strip():
            return []
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": TAGS_PROMPT % text[:MAX_SUGGEST_TEXT]},
        ]
        answer = self._chat(messages)
        tags, skipped = _parse_tags(answer.get("tags"), self.detector)
        if skipped:
            log.info("AI service: %d unusable tag entries skipped", skipped)
        return tags

    def status(self) -> ServiceStatus:
        """A cheap probe (``GET /models``, no retries); while the breaker is open, no request."""
        state = self.breaker.state
        if state == CircuitBreaker.OPEN:
            return ServiceStatus(
                available=False,
                error=f"circuit open after repeated failures; next trial in "
                f"{self.breaker.retry_in():.0f}s",
                model=self.model,
                breaker=state,
            )
        started = time.perf_counter()
        try:
            response = self._client.get(
                f"{self.base_url}/models", timeout=httpx.Timeout(min(self.timeout, 5.0))
            )
        except httpx.HTTPError as exc:
            return ServiceStatus(
                available=False,
                error=self._scrub(f"{self._display} unreachable: {type(exc).__name__}: {exc}"),
                model=self.model,
                breaker=state,
            )
        latency = (time.perf_counter() - started) * 1000.0
        code = response.status_code
        error: str | None = None
        if code in (401, 403):
            error = f"authentication rejected (HTTP {code}); check AI_SERVICE_API_KEY"
        elif code == 429 or code >= 500:
            error = f"HTTP {code}"
        return ServiceStatus(
            available=error is None,
            latency_ms=round(latency, 1),
            error=error,
            model=self.model,
            breaker=state,
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        if self.__api_key:
            text = text.replace(self.__api_key, "***")
        return text

    def _chat(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "response_format": {"type": "json_object"},
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        response = self._call("POST", "/chat/completions", body)
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            ctype = response.headers.get("content-type", "?")
            raise AIServiceError(
                f"AI service answered HTTP {response.status_code} with a body that is not JSON "
                f"(content-type {ctype})"
            ) from None
        content = _message_content(data)
        try:
            return _extract_json_object(content)
        except AIServiceError as exc:
            raise AIServiceError(self._scrub(str(exc))) from None

    def _call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        """One logical call through the breaker, with retries; a response with status < 400."""
        self.breaker.before_call()
        try:
            response = self._send_with_retries(method, path, body)
        except AIServiceUnavailable:
            self.breaker.record_failure()
            raise
        except AIServiceError:
            self.breaker.record_success()  # the service answered; it is up
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return response

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _send_with_retries(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        url = f"{self.base_url}{path}"
        shown = f"{method} {self._display}{path}"
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._client.request(method, url, json=body)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
                    httpx.ProxyError) as exc:
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                reason = self._scrub(f"{shown} {kind}: {type(exc).__name__}: {exc}".rstrip(": "))
                if last:
                    raise AIServiceUnavailable(
                        f"AI service unavailable: {reason} (after {attempts} attempts)"
                    ) from None
                delay = self._backoff(attempt)
                log.warning("%s; retry %d/%d in %.2fs", reason, attempt + 1, self.max_retries,
                            delay)
                self._sleep(delay)
                continue
            except httpx.HTTPError as exc:  # bad URL, unsupported scheme, ...: configuration
                raise AIServiceError(
                    self._scrub(f"{shown} cannot be sent: {type(exc).__name__}: {exc}")
                ) from None

            code = response.status_code
            if code < 400:
                return response
            detail = self._error_detail(response)
            if code in (408, 429) or code >= 500:
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.max_retry_after:
                    raise AIServiceUnavailable(
                        f"AI service unavailable: {shown} answered HTTP {code}{detail}; "
                        f"Retry-After {retry_after:.0f}s exceeds {self.max_retry_after:.0f}s",
                        status_code=code,
                        retry_after=retry_after,
                    )
                if last:
                    raise AIServiceUnavailable(
                        f"AI service unavailable: {shown} answered HTTP {code}{detail} "
                        f"(after {attempts} attempts)",
                        status_code=code,
                        retry_after=retry_after,
                    )
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                log.warning("%s answered HTTP %d; retry %d/%d in %.2fs", shown, code,
                            attempt + 1, self.max_retries, delay)
                self._sleep(delay)
                continue
            hint = " (check AI_SERVICE_API_KEY)" if code in (401, 403) else ""
            raise AIServiceError(
                f"AI service rejected the request: {shown} answered HTTP {code}{detail}{hint}",
                status_code=code,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _error_detail(self, response: httpx.Response) -> str:
        """The server's error message (OpenAI shape ``{"error": {"message": ...}}`` or text),
        short and scrubbed of the key."""
        message: Any = None
        try:
            data = response.json()
        except Exception:
            data = None
        if isinstance(data, dict):
            err = data.get("error", data.get("detail", data.get("message")))
            message = err.get("message") if isinstance(err, dict) else err
        if not isinstance(message, str):
            text = response.text if response.content else ""
            message = text if text and len(text) < 300 and "<" not in text else None
        if not message:
            return ""
        message = " ".join(message.split())[:300]
        return ": " + self._scrub(message)

    def _to_result(self, answer: dict[str, Any]) -> AnalysisResult:
        detector = self.detector
        result = AnalysisResult(backend=BACKEND_NAME, model=self.model, version=PROMPT_VERSION)
        tags, skipped = _parse_tags(answer.get("tags"), detector)
        result.tags = tags
        if skipped:
            result.errors[BACKEND_NAME] = f"{skipped} tag entries without a name or confidence"

        title: Any = answer.get("title")
        title_score = _number(answer.get("title_confidence"))
        if isinstance(title, dict):  # {"text"|"value": ..., "confidence": ...}
            title_score = _number(title.get("confidence", title.get("score")))
            title = title.get("text", title.get("value"))
        if isinstance(title, str) and title.strip():
            result.title = Scored(
                value=" ".join(title.split()),
                score=UNSCORED if title_score is None else title_score,
                detector=detector,
            )

        text: Any = answer.get("text")
        if isinstance(text, list):
            text = "\n".join(str(line) for line in text)
        if isinstance(text, str) and text.strip():
            text_score = _number(answer.get("text_confidence"))
            score = UNSCORED if text_score is None else text_score
            result.text_lines = [
                Scored(value=line.strip(), score=score, detector=detector)
                for line in text.splitlines()
                if line.strip()
            ]
        return result
