"""Text helpers of the local backend: keywords (yake) and the rule-based title.

Keyword scores. yake scores a keyword with a positive number where *lower is better* (0 would be
perfect; strong keywords of a paragraph score about 0.01–0.1, weak ones 0.2 and more, and the
scale has no upper bound). It is mapped to a 0..1 "higher is better" score with::

    score = YAKE_SCALE / (YAKE_SCALE + yake_score)      # YAKE_SCALE = 0.1

which is monotonic (the order is yake's), 1.0 for a perfect keyword, 0.5 at a yake score of 0.1,
0.2 at 0.4 and tends to 0 — so the built-in "yake" threshold of 0.5 keeps keywords with a yake
score ≤ 0.1. The mapping is fixed (not relative to the document), so scores of different
documents compare and a cached result keeps its meaning.

Title rule (:func:`choose_title`), in this order:

1. the first OCR line (in the order given: top to bottom) whose score reaches its detector's
   threshold and that looks like a title (:func:`looks_like_title`: 3–80 characters, more than
   half of the non-space characters letters, a word of two letters or more); whitespace is
   collapsed and edge punctuation trimmed;
2. else the highest-scored label reaching its detector's threshold, prettified (ImageNet's
   ``"tabby, tabby cat"`` → ``"Tabby cat"``: the first synonym, or a later one that contains it
   — the more specific name; underscores become spaces; first letter upper case);
3. else the highest-scored tag reaching its detector's threshold, prettified the same way.

Ties keep the input order. The result is a :class:`~media_pipeline.ai.model.Scored` with the
source's raw score and detector ``"title-rule:<source detector>"`` (which
:meth:`~media_pipeline.ai.thresholds.Thresholds.for_detector` judges by the source's threshold).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from media_pipeline.ai.model import EngineUnavailable, Scored

YAKE = "yake"
TITLE_RULE = "title-rule"
YAKE_SCALE = 0.1
DEFAULT_THRESHOLD = 0.7  # AI_CONFIDENCE_THRESHOLD's default, for a detector the mapping lacks
MAX_KEYWORD_TEXT = 100_000  # characters given to yake; its cost grows with the text


def yake_to_score(yake_score: float) -> float:
    """yake's "lower is better" score → 0..1, higher is better (see the module docstring)."""
    return YAKE_SCALE / (YAKE_SCALE + max(0.0, float(yake_score)))


def keywords(text: str, top: int = 10, *, language: str = "en",
             max_ngram: int = 3) -> list[Scored]:
    """The ``top`` keywords and key phrases (up to ``max_ngram`` words) of ``text``, best first,
    detector ``"yake"``, each keyword once (case-insensitive). Raises EngineUnavailable without
    yake."""
    text = (text or "")[:MAX_KEYWORD_TEXT]
    if top <= 0 or not any(ch.isalpha() for ch in text):
        return []
    try:
        import yake
    except ImportError as exc:
        raise EngineUnavailable(f"yake: {exc}: install media-pipeline[ai-ocr]") from None
    # A new extractor per call: cheap (a stop-word list), and no state shared between threads.
    extractor = yake.KeywordExtractor(lan=language, n=max_ngram, top=top)
    out: list[Scored] = []
    seen: set[str] = set()
    for keyword, raw in extractor.extract_keywords(text):
        value = " ".join(str(keyword).split())
        if value and value.casefold() not in seen:
            seen.add(value.casefold())
            out.append(Scored(value, yake_to_score(raw), YAKE))
    out.sort(key=lambda item: -item.score)
    return out[:top]


def looks_like_title(line: str) -> bool:
    """3–80 characters, more than half of its non-space characters letters, and at least one
    word of two letters or more (so "12/03/2024", "%%%" and "a b" are not titles)."""
    line = " ".join(line.split())
    if not 3 <= len(line) <= 80:
        return False
    visible = [ch for ch in line if not ch.isspace()]
    letters = sum(ch.isalpha() for ch in visible)
    return letters * 2 > len(visible) and re.search(r"[^\W\d_]{2}", line) is not None


def prettify(name: str) -> str:
    """A label or tag as a title: ``"tabby, tabby cat"`` → ``"Tabby cat"``,
    ``"n02123045 tabby"`` → ``"Tabby"``, ``"golden_retriever"`` → ``"Golden retriever"``."""
    name = re.sub(r"^n\d{8}\s+", "", name.strip())  # an ImageNet synset id
    synonyms = [" ".join(s.replace("_", " ").split()) for s in name.split(",")]
    synonyms = [s for s in synonyms if s]
    if not synonyms:
        return ""
    chosen = synonyms[0]
    for other in synonyms[1:]:
        if re.search(rf"(?<!\w){re.escape(chosen)}(?!\w)", other, re.IGNORECASE):
            chosen = other
    return chosen[:1].upper() + chosen[1:]


def _threshold(thresholds: Mapping[str, float], detector: str) -> float:
    """``thresholds[detector]`` (a mapping with ``__missing__`` resolves its own default), else
    ``thresholds["default"]``, else DEFAULT_THRESHOLD."""
    try:
        return float(thresholds[detector])
    except KeyError:
        pass
    try:
        return float(thresholds["default"])
    except KeyError:
        return DEFAULT_THRESHOLD


def _passing(items: Iterable[Scored], thresholds: Mapping[str, float]) -> list[Scored]:
    return [item for item in items if item.score >= _threshold(thresholds, item.detector)]


def _best(items: Sequence[Scored]) -> Scored | None:
    best: Scored | None = None
    for item in items:
        if best is None or item.score > best.score:
            best = item
    return best


def _clean_line(line: str) -> str:
    return " ".join(line.split()).strip(" .,;:|-_–—•*·")


def choose_title(text_lines: Sequence[Scored], labels: Sequence[Scored], tags: Sequence[Scored],
                 *, thresholds: Mapping[str, float]) -> Scored | None:
    """The title by rule — confident title-like OCR line, else top label, else top tag (see the
    module docstring) — or None when nothing reaches its threshold."""
    for line in _passing(text_lines, thresholds):
        value = _clean_line(line.value)
        if looks_like_title(value):
            return Scored(value, line.score, f"{TITLE_RULE}:{line.detector}")
    for group in (labels, tags):
        ranked = [item for item in _passing(group, thresholds) if prettify(item.value)]
        best = _best(ranked)
        if best is not None:
            return Scored(prettify(best.value), best.score, f"{TITLE_RULE}:{best.detector}")
    return None
