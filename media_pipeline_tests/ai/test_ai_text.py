"""Local OCR (rapidocr, tesseract), PDF text, keywords and the title rule, on generated images
and PDFs. Engines are skipped only when their Python package is not installed."""

from __future__ import annotations

import io
import re
import sys
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from media_pipeline.ai.local import ocr as ocr_module
from media_pipeline.ai.local.ocr import (
    RapidOcrEngine,
    TesseractEngine,
    UnreadableInput,
    open_image,
    pdf_text,
)
from media_pipeline.ai.local.text import (
    choose_title,
    keywords,
    looks_like_title,
    prettify,
    yake_to_score,
)
from media_pipeline.ai.model import EngineUnavailable, Scored
from media_pipeline.ai.thresholds import Thresholds

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
             "/usr/share/fonts/TTF")

BANNER_LINES = ("SUMMER SALE", "Fresh coffee every morning")
BANNER_WORDS = {"summer", "sale", "fresh", "coffee", "every", "morning"}

SCAN_LINES = (
    "Quarterly Report on Storage Costs",
    "The inventory of the media bucket lists every file,",
    "its size and its content hash. Duplicate photographs",
    "are detected and unreferenced files are purged",
    "after a grace period of thirty days.",
)
SCAN_WORDS = {"quarterly", "report", "storage", "costs", "inventory", "bucket", "duplicate",
              "photographs", "unreferenced", "purged", "grace", "period", "thirty"}


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for directory in FONT_DIRS:
        if (Path(directory) / name).is_file():
            return ImageFont.truetype(str(Path(directory) / name), size)
    return ImageFont.load_default(size=size)


def words_of(lines: Sequence[Scored]) -> set[str]:
    return {w for line in lines for w in re.findall(r"[a-z]+", line.value.lower())}


def assert_mostly_found(expected: set[str], lines: Sequence[Scored], missing: int = 1) -> None:
    found = words_of(lines)
    assert len(expected - found) <= missing, (expected - found, [x.value for x in lines])


def banner_image() -> Image.Image:
    """Large dark text on a light, photo-like background (smooth colour and blurred noise)."""
    w, h = 1024, 512
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([200 + 40 * np.sin(x / 90), 210 + 30 * np.cos(y / 70),
                     190 + 50 * np.sin((x + y) / 150)], axis=-1)
    noise = np.random.default_rng(0).normal(128, 25, (h // 16, w // 16, 3))
    blurred = Image.fromarray(np.clip(noise, 0, 255).astype("uint8")).resize(
        (w, h), Image.Resampling.BICUBIC)
    pixels = base + np.asarray(blurred, dtype=float) - 128
    image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    draw.text((60, 120), BANNER_LINES[0], font=font(72, bold=True), fill=(30, 20, 40))
    draw.text((60, 260), BANNER_LINES[1], font=font(44), fill=(40, 30, 30))
    return image


def scan_image() -> Image.Image:
    """A clean black-on-white page of text, like a 150 dpi scan."""
    image = Image.new("L", (1275, 700), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(SCAN_LINES):
        draw.text((90, 90 + i * 80), line, font=font(34), fill=0)
    return image


def build_pdf(pages: Sequence[Sequence[str] | Image.Image]) -> bytes:
    """A minimal PDF: a page is either lines of text (a real text layer, Helvetica) or a
    grayscale image filling the page (no text layer, like a scan)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for page in pages:
        number = len(objects) + 1
        kids.append(f"{number} 0 R")
        if isinstance(page, Image.Image):
            gray = page.convert("L")
            data = zlib.compress(gray.tobytes())
            image_obj = (f"<< /Type /XObject /Subtype /Image /Width {gray.width} /Height "
                         f"{gray.height} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter "
                         f"/FlateDecode /Length {len(data)} >>\nstream\n").encode() + data + \
                b"\nendstream"
            content = b"q 612 0 0 %d 0 0 cm /Im1 Do Q" % round(612 * gray.height / gray.width)
            resources = f"/XObject << /Im1 {number + 2} 0 R >>"
            extra = [image_obj]
        else:
            text = " ".join(f"({line}) Tj T*" for line in page)
            content = f"BT /F1 20 Tf 72 720 Td 26 TL {text} ET".encode()
            resources = f"/Font << /F1 {number + 2} 0 R >>"
            extra = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       f"<< {resources} >> /Contents {number + 1} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        objects.extend(extra)
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module")
def rapid() -> RapidOcrEngine:
    pytest.importorskip("rapidocr")
    pytest.importorskip("onnxruntime")
    from rapidocr.utils.download_file import DownloadFile

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("rapidocr tried to download a model")

    engine = RapidOcrEngine()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DownloadFile, "run", no_download)
        engine.load()
    return engine


@pytest.fixture(scope="module")
def tess() -> TesseractEngine:
    pytest.importorskip("tesserocr")
    return TesseractEngine()


# ---------------------------------------------------------------------------------------- OCR


def test_rapidocr_reads_a_banner_top_to_bottom(rapid: RapidOcrEngine) -> None:
    lines = rapid.read(banner_image())
    assert_mostly_found(BANNER_WORDS, lines)
    assert all(line.detector == "rapidocr" and 0.0 < line.score <= 1.0 for line in lines)
    assert "summer" in lines[0].value.lower()  # the top line comes first
    assert lines[0].score > 0.9


def test_rapidocr_uses_one_thread_per_session(rapid: RapidOcrEngine) -> None:
    model = rapid._model().engine
    for part in (model.text_det, model.text_rec):
        options = part.session.session.get_session_options()
        assert options.intra_op_num_threads == 1
        assert options.inter_op_num_threads == 1


def test_rapidocr_blank_and_tiny_images_give_nothing(rapid: RapidOcrEngine) -> None:
    assert rapid.read(Image.new("RGB", (640, 480), (240, 240, 240))) == []
    assert rapid.read(Image.new("RGB", (3, 2), "white")) == []


def test_tesseract_reads_a_clean_scan(tess: TesseractEngine) -> None:
    lines = tess.read(scan_image())
    assert_mostly_found(SCAN_WORDS, lines)
    assert all(line.detector == "tesseract" and 0.0 <= line.score <= 1.0 for line in lines)
    assert len(lines) == len(SCAN_LINES)
    assert lines[0].value.lower().startswith("quarterly report")
    assert min(line.score for line in lines) > 0.8


def test_tesseract_is_safe_from_two_threads(tess: TesseractEngine) -> None:
    image = scan_image()
    expected = tess.read(image)
    results: list[list[Scored]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(tess.read(image))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [expected, expected]


def test_engines_share_one_model_per_process(tess: TesseractEngine) -> None:
    assert TesseractEngine()._model() is tess._model()


def test_missing_language_data_or_package_is_engine_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineUnavailable, match="tesseract-ocr"):
        TesseractEngine(lang="xx-no-such-language")
    monkeypatch.setitem(sys.modules, "tesserocr", None)
    with pytest.raises(EngineUnavailable, match=r"media-pipeline\[ai-ocr\]"):
        TesseractEngine()
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    with pytest.raises(EngineUnavailable, match=r"media-pipeline\[ai-ocr\]"):
        RapidOcrEngine()


def test_corrupt_images_raise_unreadable_input(tess: TesseractEngine,
                                               rapid: RapidOcrEngine) -> None:
    buffer = io.BytesIO()
    scan_image().save(buffer, "PNG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    with pytest.raises(UnreadableInput):
        open_image(b"this is not an image")
    with pytest.raises(UnreadableInput):
        open_image(truncated)
    for engine in (tess, rapid):
        lazy = Image.open(io.BytesIO(truncated))  # Pillow decodes lazily: fails in read()
        with pytest.raises(UnreadableInput, match="cannot decode image"):
            engine.read(lazy)
    assert issubclass(UnreadableInput, ValueError)
    # The engine still works afterwards.
    assert_mostly_found(SCAN_WORDS, tess.read(open_image(buffer.getvalue())))


# ---------------------------------------------------------------------------------------- PDF


def test_pdf_text_layer_is_read_without_ocr() -> None:
    pytest.importorskip("pypdf")

    def no_ocr(image: Image.Image) -> list[Scored]:
        raise AssertionError("a page with a text layer was OCR'd")

    lines = pdf_text(build_pdf([SCAN_LINES]), ocr=no_ocr)
    assert [line.value for line in lines] == list(SCAN_LINES)
    assert all(line.detector == "pdf-text" and line.score == 1.0 for line in lines)


def test_scanned_pdf_is_rendered_and_ocrd(tess: TesseractEngine) -> None:
    pytest.importorskip("pypdfium2")
    buffer = io.BytesIO()
    scan_image().convert("RGB").save(buffer, "PDF", resolution=150)  # an image, no text layer
    assert pdf_text(buffer.getvalue()) == []  # no OCR given: nothing to say
    lines = pdf_text(buffer.getvalue(), ocr=tess.read)
    assert_mostly_found(SCAN_WORDS, lines)
    assert {line.detector for line in lines} == {"tesseract"}


def test_mixed_pdf_keeps_page_order_and_max_pages(tess: TesseractEngine) -> None:
    pytest.importorskip("pypdfium2")
    data = build_pdf([["Cover page of the report"], scan_image(), ["Appendix"]])
    lines = pdf_text(data, ocr=tess.read)
    assert lines[0] == Scored("Cover page of the report", 1.0, "pdf-text")
    assert lines[-1] == Scored("Appendix", 1.0, "pdf-text")
    assert_mostly_found(SCAN_WORDS, lines[1:-1])
    assert [line.value for line in pdf_text(data, max_pages=1, ocr=tess.read)] == [
        "Cover page of the report"]


def test_corrupt_pdf_raises_unreadable_input() -> None:
    pytest.importorskip("pypdf")
    with pytest.raises(UnreadableInput):
        pdf_text(b"%PDF-1.4\nthis is not a pdf at all")
    with pytest.raises(UnreadableInput):
        pdf_text(b"")


def test_render_is_bounded() -> None:
    pytest.importorskip("pypdfium2")
    data = build_pdf([scan_image()])
    sizes: list[tuple[int, int]] = []

    def record(image: Image.Image) -> list[Scored]:
        sizes.append(image.size)
        return []

    pdf_text(data, ocr=record)  # letter page at 150 dpi
    pdf_text(data, ocr=record, dpi=600, max_render_side=1000)
    assert sizes[0][0] == pytest.approx(8.5 * 150, abs=2)
    assert max(sizes[1]) <= 1000


def test_rapidocr_never_reaches_the_network_for_its_models() -> None:
    pytest.importorskip("rapidocr")
    paths = ocr_module._rapidocr_model_paths()
    assert set(paths) == {"Det", "Rec", "Cls"} and all(p.is_file() for p in paths.values())


# ----------------------------------------------------------------------------------- keywords


PARAGRAPH = (
    "The media pipeline keeps an inventory of every file stored in the bucket. The inventory "
    "records the size, the content hash and the references of each file. Duplicate files are "
    "found by their content hash, and files that are no longer referenced are purged after a "
    "grace period. Photographs of cats are tagged by the image classifier."
)


def test_keywords_of_a_paragraph() -> None:
    pytest.importorskip("yake")
    found = keywords(PARAGRAPH, top=8)
    assert 0 < len(found) <= 8
    values = [k.value.lower() for k in found]
    assert any("inventory" in v or "content hash" in v for v in values), values
    assert all(k.detector == "yake" and 0.0 < k.score <= 1.0 for k in found)
    assert [k.score for k in found] == sorted((k.score for k in found), reverse=True)
    assert len(set(values)) == len(values)
    assert keywords("") == [] and keywords("1234 5678") == [] and keywords(PARAGRAPH, top=0) == []


def test_yake_score_mapping() -> None:
    assert yake_to_score(0.0) == 1.0
    assert yake_to_score(0.1) == pytest.approx(0.5)
    assert yake_to_score(0.4) == pytest.approx(0.2)
    assert yake_to_score(0.02) > yake_to_score(0.05) > yake_to_score(3.0) > 0.0


# ---------------------------------------------------------------------------------- title rule

THRESHOLDS = {"rapidocr": 0.85, "tesseract": 0.6, "efficientnet-lite0": 0.25,
              "minilm-tags": 0.45, "yake": 0.5}
LABELS = [Scored("tabby, tabby cat", 0.55, "efficientnet-lite0"),
          Scored("tiger cat", 0.30, "efficientnet-lite0")]
TAGS = [Scored("pets", 0.52, "minilm-tags"), Scored("animals", 0.61, "minilm-tags")]


def test_title_prefers_the_first_confident_title_like_ocr_line() -> None:
    lines = [Scored("12/03/2024", 0.99, "rapidocr"),  # not title-like
             Scored("GRAND OPENING", 0.70, "rapidocr"),  # below rapidocr's threshold
             Scored("  Fresh coffee   every morning: ", 0.93, "rapidocr"),
             Scored("Second line", 0.99, "rapidocr")]
    title = choose_title(lines, LABELS, TAGS, thresholds=THRESHOLDS)
    assert title == Scored("Fresh coffee every morning", 0.93, "title-rule:rapidocr")


def test_title_falls_back_to_the_top_label_then_the_top_tag() -> None:
    weak_ocr = [Scored("Sunset boulevard", 0.70, "rapidocr")]
    assert choose_title(weak_ocr, LABELS, TAGS, thresholds=THRESHOLDS) == Scored(
        "Tabby cat", 0.55, "title-rule:efficientnet-lite0")
    assert choose_title(weak_ocr, LABELS, TAGS, thresholds={**THRESHOLDS,
                                                            "efficientnet-lite0": 0.6}) == Scored(
        "Animals", 0.61, "title-rule:minilm-tags")
    assert choose_title(weak_ocr, LABELS, TAGS, thresholds={**THRESHOLDS,
                                                            "efficientnet-lite0": 0.6,
                                                            "minilm-tags": 0.9}) is None
    assert choose_title([], [], [], thresholds=THRESHOLDS) is None


def test_title_thresholds_are_per_detector_with_a_default() -> None:
    line = [Scored("Annual Report", 0.65, "tesseract")]
    assert choose_title(line, [], [], thresholds=THRESHOLDS) is not None  # tesseract: 0.6
    assert choose_title([Scored("Annual Report", 0.65, "rapidocr")], [], [],
                        thresholds=THRESHOLDS) is None  # rapidocr: 0.85
    unknown = [Scored("Annual Report", 0.65, "other-ocr")]
    assert choose_title(unknown, [], [], thresholds={}) is None  # built-in default 0.7
    assert choose_title(unknown, [], [], thresholds={"default": 0.5}) is not None
    # The thresholds module judges the title by its source detector.
    title = choose_title(line, [], [], thresholds=THRESHOLDS)
    assert title is not None and Thresholds(0.7).passes(title)


def test_title_helpers() -> None:
    assert prettify("tabby, tabby cat") == "Tabby cat"
    assert prettify("notebook, notebook computer") == "Notebook computer"
    assert prettify("web site, website, internet site, site") == "Web site"
    assert prettify("n02123045 Egyptian cat") == "Egyptian cat"
    assert prettify("golden_retriever") == "Golden retriever"
    assert looks_like_title("Summer Sale")
    assert looks_like_title("SALE 50%")
    for bad in ("ab", "12/03/2024", "%%% ###", "a b", "x" * 81):
        assert not looks_like_title(bad), bad


def test_title_from_real_ocr(rapid: RapidOcrEngine) -> None:
    title = choose_title(rapid.read(banner_image()), LABELS, TAGS, thresholds=THRESHOLDS)
    assert title is not None and title.detector == "title-rule:rapidocr"
    assert {"summer", "sale"} <= set(title.value.lower().split())
