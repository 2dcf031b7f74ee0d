"""Local OCR: rapidocr (PP-OCR ONNX models inside the wheel) for photos, banners and screenshots,
tesseract (tesserocr + Debian's ``tesseract-ocr-eng`` data) for clean scans, and PDF text.

Both engines return ``list[Scored]``, one item per text line, with the engine's raw confidence:

- :class:`RapidOcrEngine` — detector ``"rapidocr"``; one item per detected text box, in reading
  order (top to bottom, then left to right within a row); score = rapidocr's recognition
  confidence (0..1). Lines under ``min_score`` (rapidocr's own default, 0.5) are dropped by the
  engine itself; anything above is kept raw and thresholded later
  (:mod:`media_pipeline.ai.thresholds`), because PP-OCR is confident even about text it invents in
  textures.
- :class:`TesseractEngine` — detector ``"tesseract"``; one item per line in tesseract's layout
  (reading) order; score = mean of the line's word confidences / 100.
- :func:`pdf_text` — the text layer of each page (detector ``"pdf-text"``, score 1.0); pages
  without one are rendered (150 dpi, bounded) and read by the OCR callable it is given.

Process-wide behaviour, shared by every engine here:

- Models load lazily on first use, once per process (engines built with the same parameters share
  one model), under a lock. Inference holds a per-model lock too: tesseract's API object is not
  thread-safe, and serialising rapidocr keeps each engine to one core (two cores are shared by
  several engines; oversubscription made one model a hundred times slower).
- One thread per engine: onnxruntime sessions get ``intra_op_num_threads=1`` and
  ``inter_op_num_threads=1``; ``OMP_THREAD_LIMIT=1`` is set (unless already set) before tesserocr
  is imported (the tesserocr 2.13 wheel's libtesseract is built without OpenMP, so this only
  matters for a tesserocr built against a system libtesseract); OpenCV, which rapidocr uses for
  pre/post-processing, is set to one thread (``cv2.setNumThreads(1)``, process-wide).
- Nothing is downloaded at run time: rapidocr is given the paths of the models in its wheel
  (it only downloads when it is not given a path), tesseract reads local ``*.traineddata``.
- Missing packages or model files raise :class:`~media_pipeline.ai.model.EngineUnavailable`
  (already when the engine is constructed, so a status check sees it without loading a model).
- Input that cannot be decoded (corrupt, truncated, not an image, not a PDF) raises
  :class:`UnreadableInput`, a ``ValueError``; the interpreter never crashes on it.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from media_pipeline.ai.model import EngineUnavailable, Scored
from media_pipeline.errors import UnreadableInput  # noqa: F401

log = logging.getLogger(__name__)

INSTALL_HINT = "install media-pipeline[ai-ocr]"
TESSDATA_HINT = "apt-get install tesseract-ocr-eng (or set TESSDATA_PREFIX)"

RAPIDOCR = "rapidocr"
TESSERACT = "tesseract"
PDF_TEXT = "pdf-text"

# Where Debian/Ubuntu, Fedora/Alpine and source builds put tesseract's language data.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)

OcrFn = Callable[[Image.Image], list[Scored]]


def open_image(data: bytes) -> Image.Image:
    """Decode ``data`` fully (first frame, EXIF orientation applied, RGB).

    Raises :class:`UnreadableInput` for anything Pillow cannot decode, including truncated files
    and decompression bombs (Pillow's ``MAX_IMAGE_PIXELS``)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # UnidentifiedImageError, OSError (truncated), DecompressionBombError
        raise UnreadableInput(f"cannot decode image: {type(exc).__name__}: {exc}") from None
    return _prepare(image)


def _prepare(image: Image.Image) -> Image.Image:
    """Load, apply EXIF orientation and convert to RGB; decoding errors → UnreadableInput."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    try:
        image.load()  # lazy decoders fail here on truncated data
        upright = ImageOps.exif_transpose(image)
        if upright.mode in ("RGBA", "LA", "PA") or (
            upright.mode == "P" and "transparency" in upright.info
        ):
            # Transparent pixels become white, not whatever colour they happen to store.
            rgba = upright.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return upright.convert("RGB")
    except Exception as exc:
        raise UnreadableInput(f"cannot decode image: {type(exc).__name__}: {exc}") from None


def _require(*modules: str) -> None:
    """EngineUnavailable unless every module can be found (without importing it)."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise EngineUnavailable(f"{module} is not installed: {INSTALL_HINT}")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not-installed"


@dataclass
class _Loaded:
    engine: Any
    lock: threading.Lock


_MODELS: dict[tuple[Any, ...], _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _shared(key: tuple[Any, ...], load: Callable[[], Any]) -> _Loaded:
    """The process-wide model for ``key``, loaded once (a failed load is retried next time)."""
    loaded = _MODELS.get(key)
    if loaded is not None:
        return loaded
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _Loaded(load(), threading.Lock())
            _MODELS[key] = loaded
        return loaded


# --------------------------------------------------------------------------------------------
# rapidocr


@dataclass(frozen=True)
class _Box:
    top: float
    bottom: float
    left: float
    text: str
    score: float


def _reading_order(boxes: Sequence[_Box]) -> list[_Box]:
    """Top to bottom; boxes whose vertical centre falls inside a row's first box are one row,
    read left to right."""
    rows: list[list[_Box]] = []
    for box in sorted(boxes, key=lambda b: (b.top, b.left)):
        centre = (box.top + box.bottom) / 2
        if rows and rows[-1][0].top <= centre <= rows[-1][0].bottom:
            rows[-1].append(box)
        else:
            rows.append([box])
    return [box for row in rows for box in sorted(row, key=lambda b: b.left)]


class RapidOcrEngine:
    """PP-OCR (detection + recognition, optional angle classifier) on onnxruntime, one thread.

    ``max_side``: detection runs on the image scaled so its long side is at most this (PaddleOCR's
    classic 960; larger finds smaller text at a higher cost — detection is most of the time).
    ``use_angle_cls``: also run the 0°/180° line classifier (for upside-down text; off like
    PaddleOCR's default). ``min_score``: rapidocr drops recognised lines below this.
    """

    detector = RAPIDOCR

    def __init__(self, *, max_side: int = 960, use_angle_cls: bool = False,
                 min_score: float = 0.5):
        _require("rapidocr", "onnxruntime", "cv2")
        self.max_side = int(max_side)
        self.use_angle_cls = bool(use_angle_cls)
        self.min_score = float(min_score)
        self._models = _rapidocr_model_paths()

    @property
    def model(self) -> str:
        used = ["Det", "Rec", *(["Cls"] if self.use_angle_cls else [])]
        return "rapidocr:" + "+".join(self._models[section].stem for section in used)

    @property
    def version(self) -> str:
        return f"rapidocr-{_version('rapidocr')}"

    def params(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "use_angle_cls": self.use_angle_cls,
                "min_score": self.min_score}

    def _key(self) -> tuple[Any, ...]:
        return (RAPIDOCR, self.max_side, self.use_angle_cls, self.min_score,
                tuple(sorted((k, str(v)) for k, v in self._models.items())))

    def load(self) -> None:
        """Load the models now (otherwise on first :meth:`read`)."""
        self._model()

    def _model(self) -> _Loaded:
        return _shared(self._key(), self._build)

    def _build(self) -> Any:
        try:
            import cv2
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise EngineUnavailable(f"rapidocr: {exc}: {INSTALL_HINT}") from None
        cv2.setNumThreads(1)
        params: dict[str, Any] = {
            "Global.log_level": "error",  # not a warning per photo without text
            "Global.use_cls": self.use_angle_cls,
            "Global.text_score": self.min_score,
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "Det.limit_type": "max",
            "Det.limit_side_len": self.max_side,
        }
        # Explicit paths: rapidocr downloads only when it resolves a model itself.
        for section, path in self._models.items():
            params[f"{section}.model_path"] = str(path)
        engine = RapidOCR(params=params)
        # rapidocr builds its sessions on first call; do it now, under the load lock.
        # (Private rapidocr methods: without them the first read loads, under rapidocr's locks.)
        for part in ("det", "rec", *(["cls"] if self.use_angle_cls else [])):
            preload = getattr(engine, f"_load_{part}_model", None)
            if callable(preload):
                preload()
        return engine

    def read(self, image: Image.Image) -> list[Scored]:
        """Text lines of ``image`` in reading order. Raises UnreadableInput if it cannot be
        decoded, EngineUnavailable if rapidocr cannot load."""
        rgb = _prepare(image)
        model = self._model()
        with model.lock:
            output = model.engine(rgb)
        txts = getattr(output, "txts", None)
        boxes = getattr(output, "boxes", None)
        scores = getattr(output, "scores", None)
        if not txts or boxes is None or scores is None:
            return []
        found = []
        for text, box, score in zip(txts, boxes, scores, strict=False):
            text = " ".join(str(text).split())
            if not text:
                continue
            ys = [float(point[1]) for point in box]
            xs = [float(point[0]) for point in box]
            found.append(_Box(min(ys), max(ys), min(xs), text, float(score)))
        return [Scored(b.text, b.score, RAPIDOCR) for b in _reading_order(found)]


def _rapidocr_model_paths() -> dict[str, Path]:
    """The detection, recognition and angle models shipped in the rapidocr wheel."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.origin:
        raise EngineUnavailable(f"rapidocr is not installed: {INSTALL_HINT}")
    models = Path(spec.origin).parent / "models"
    wanted = {"Det": "_det_", "Rec": "_rec_", "Cls": "_cls_"}
    paths: dict[str, Path] = {}
    for section, marker in wanted.items():
        # The default config's models are the only ones in the wheel; if several, the last.
        candidates = sorted(p for p in models.glob("*.onnx") if marker in p.name)
        if not candidates:
            raise EngineUnavailable(
                f"rapidocr's bundled {section} model is missing from {models} (nothing is "
                f"downloaded at run time): reinstall rapidocr, {INSTALL_HINT}"
            )
        paths[section] = candidates[-1]
    return paths


# --------------------------------------------------------------------------------------------
# tesseract


def find_tessdata(langs: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``<lang>.traineddata`` for every ``+``-separated language.

    Looks at ``explicit``, then ``TESSDATA_PREFIX`` (the tessdata directory itself or its parent),
    then the usual system locations. Raises EngineUnavailable when none has them all."""
    needed = [lang for lang in langs.split("+") if lang]
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    prefix = os.environ.get("TESSDATA_PREFIX")
    if prefix:
        candidates += [Path(prefix), Path(prefix) / "tessdata"]
    candidates += [Path(p) for p in TESSDATA_DIRS]
    for directory in candidates:
        if all((directory / f"{lang}.traineddata").is_file() for lang in needed):
            return directory
    raise EngineUnavailable(
        f"tesseract language data for {langs!r} not found in "
        f"{', '.join(str(c) for c in candidates)}: {TESSDATA_HINT}"
    )


class TesseractEngine:
    """Tesseract 5 (LSTM) through tesserocr, for clean scans and documents.

    ``lang``: tesseract languages (``"eng"``, ``"eng+deu"``); ``psm``: page segmentation mode
    (3 = automatic; 6 = one uniform block; 11 = sparse text); ``timeout_ms``: recognition of one
    image gives up after this (TimeoutError).
    """

    detector = TESSERACT

    def __init__(self, *, lang: str = "eng", psm: int = 3, timeout_ms: int = 60_000,
                 tessdata: str | os.PathLike[str] | None = None):
        _require("tesserocr")
        self.lang = lang
        self.psm = int(psm)
        self.timeout_ms = int(timeout_ms)
        self.tessdata = find_tessdata(lang, tessdata)

    @property
    def model(self) -> str:
        return f"tesseract:{self.lang}"

    @property
    def version(self) -> str:
        return f"tesserocr-{_version('tesserocr')}"

    def params(self) -> dict[str, Any]:
        return {"lang": self.lang, "psm": self.psm}

    def load(self) -> None:
        """Load the language model now (otherwise on first :meth:`read`)."""
        self._model()

    def _model(self) -> _Loaded:
        return _shared((TESSERACT, str(self.tessdata), self.lang, self.psm), self._build)

    def _build(self) -> Any:
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        try:
            import tesserocr
        except ImportError as exc:
            raise EngineUnavailable(f"tesserocr: {exc}: {INSTALL_HINT}") from None
        try:
            api = tesserocr.PyTessBaseAPI(
                path=str(self.tessdata) + os.sep, lang=self.lang,
                psm=self.psm, oem=tesserocr.OEM.DEFAULT,
            )
        except RuntimeError as exc:
            raise EngineUnavailable(f"tesseract cannot load {self.lang!r} from "
                                    f"{self.tessdata}: {exc}: {TESSDATA_HINT}") from None
        return api

    def read(self, image: Image.Image) -> list[Scored]:
        """Text lines of ``image`` in tesseract's reading order. Raises UnreadableInput if it
        cannot be decoded, TimeoutError after ``timeout_ms``."""
        from tesserocr import RIL, iterate_level

        rgb = _prepare(image)
        model = self._model()
        api = model.engine
        lines: list[list[tuple[str, float]]] = []
        with model.lock:
            try:
                api.SetImage(rgb)
                if not api.Recognize(self.timeout_ms):
                    raise TimeoutError(
                        f"tesseract gave up on a {rgb.width}x{rgb.height} image "
                        f"(timeout {self.timeout_ms} ms)")
                iterator = api.GetIterator()
                if iterator is not None:
                    for word in iterate_level(iterator, RIL.WORD):
                        if word.IsAtBeginningOf(RIL.TEXTLINE) or not lines:
                            lines.append([])
                        text = (word.GetUTF8Text(RIL.WORD) or "").strip()
                        confidence = float(word.Confidence(RIL.WORD))
                        if text and confidence >= 0:
                            lines[-1].append((text, confidence))
            finally:
                api.Clear()
        out = []
        for words in lines:
            if words:
                score = sum(c for _, c in words) / len(words) / 100.0
                out.append(Scored(" ".join(w for w, _ in words), min(1.0, score), TESSERACT))
        return out


# --------------------------------------------------------------------------------------------
# PDF

_PDFIUM_LOCK = threading.Lock()  # pdfium is not thread-safe: one call at a time per process


def pdf_text(data: bytes, *, max_pages: int = 20, ocr: OcrFn | None = None,
             dpi: int = 150, max_render_side: int = 2500) -> list[Scored]:
    """Text of the first ``max_pages`` pages of a PDF, page after page.

    A page with a text layer gives its lines (pypdf; detector ``"pdf-text"``, score 1.0). A page
    without one (a scan) is rendered with pypdfium2 at ``dpi`` — scaled down so its long side is
    at most ``max_render_side`` pixels — and read with ``ocr`` (its lines keep the OCR engine's
    detector and score); without ``ocr`` such pages are skipped. Raises UnreadableInput for a
    corrupt or encrypted PDF, EngineUnavailable when a scanned page needs pypdfium2 and it is
    missing."""
    try:
        from pypdf import PdfReader
    except ImportError as exc:
        raise EngineUnavailable(f"pypdf: {exc}: {INSTALL_HINT}") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableInput("PDF is encrypted with a password")
        pages = list(reader.pages[:max(0, max_pages)])
    except UnreadableInput:
        raise
    except Exception as exc:
        raise UnreadableInput(f"cannot read PDF: {type(exc).__name__}: {exc}") from None

    per_page: list[list[Scored] | None] = []  # None: no text layer, to OCR
    for page in pages:
        try:
            text = page.extract_text() or ""
        except Exception:  # a broken content stream: treat the page as having no text layer
            text = ""
        lines = [" ".join(line.split()) for line in text.splitlines()]
        per_page.append([Scored(line, 1.0, PDF_TEXT) for line in lines if line] or None)
    scanned = [number for number, lines in enumerate(per_page) if lines is None]
    if scanned and ocr is not None:
        for number, image in _render(data, scanned, dpi, max_render_side):
            per_page[number] = ocr(image)
    return [item for lines in per_page for item in lines or []]


def _render(data: bytes, numbers: Sequence[int], dpi: int,
            max_side: int) -> Iterator[tuple[int, Image.Image]]:
    """Render the given pages one at a time (pdfium calls under the process-wide lock, the
    caller's OCR outside it, so one page's bitmap is in memory at a time)."""
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:
        raise EngineUnavailable(f"pypdfium2 (for scanned PDF pages): {exc}: "
                                f"{INSTALL_HINT}") from None
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except Exception as exc:
            raise UnreadableInput(f"cannot render PDF: {type(exc).__name__}: {exc}") from None
    try:
        for number in numbers:
            with _PDFIUM_LOCK:
                try:
                    image = _render_page(document, number, dpi, max_side)
                except Exception as exc:  # one broken page does not lose the others
                    log.warning("cannot render PDF page %d: %s: %s", number + 1,
                                type(exc).__name__, exc)
                    continue
            yield number, image
    finally:
        with _PDFIUM_LOCK:
            document.close()


def _render_page(document: Any, number: int, dpi: int, max_side: int) -> Image.Image:
    page = document[number]
    try:
        width, height = page.get_size()  # points, 1/72 inch
        scale = min(dpi / 72.0, max_side / max(width, height, 1.0))
        bitmap = page.render(scale=scale)
        try:
            return bitmap.to_pil().convert("RGB")
        finally:
            bitmap.close()
    finally:
        page.close()
