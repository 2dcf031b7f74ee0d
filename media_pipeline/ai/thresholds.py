"""Confidence thresholds per detector, applied when results are read or applied, never stored.

Scores are not comparable across detectors: an OCR engine is sure of text it invents on a photo,
an embedding similarity of 0.5 is a strong match, a softmax over 1,000 ImageNet classes rarely
passes 0.7 even when right. So each detector has its own threshold; ``AI_CONFIDENCE_THRESHOLD``
is the one for detectors without their own (the HTTP service's tags among them). Override any with
``AI_DETECTOR_THRESHOLDS`` (JSON: detector → threshold).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from media_pipeline.ai.model import Scored

BUILT_IN: dict[str, float] = {
    "efficientnet-lite0": 0.25,  # softmax over 1,000 classes
    "minilm-tags": 0.55,  # cosine: ~0.7 close concept, ~0.5 a word-sense neighbour
    "yake": 0.5,
    "rapidocr": 0.85,  # confident even on text it hallucinates in textures
    "tesseract": 0.6,
    "pdf-text": 0.0,  # a text layer is what the document says
    "nudenet": 0.5,
    "opennsfw": 0.8,
}


class Thresholds:
    """Threshold lookup: configured value, else built-in, else the default."""

    def __init__(self, default: float = 0.7, overrides: Mapping[str, float] | None = None):
        self.default = default
        self.values = {**BUILT_IN, **(overrides or {})}

    @classmethod
    def from_settings(cls, default: float, raw_overrides: str | None) -> Thresholds:
        overrides: dict[str, float] = {}
        if raw_overrides:
            try:
                parsed = json.loads(raw_overrides)
                overrides = {str(k): float(v) for k, v in parsed.items()}
            except (ValueError, AttributeError, TypeError) as exc:
                raise ValueError(
                    f"AI_DETECTOR_THRESHOLDS must be a JSON object of detector → number: {exc}"
                ) from None
        return cls(default, overrides)

    def for_detector(self, detector: str) -> float:
        if detector in self.values:
            return self.values[detector]
        # "title-rule:rapidocr" is judged by its source detector.
        if ":" in detector:
            head, _, tail = detector.partition(":")
            if tail in self.values:
                return self.values[tail]
            if head in self.values:
                return self.values[head]
        return self.default

    def passes(self, item: Scored) -> bool:
        return item.score >= self.for_detector(item.detector)

    def filter(self, items: Iterable[Scored]) -> list[Scored]:
        return [item for item in items if self.passes(item)]

    def as_mapping(self) -> dict[str, float]:
        return dict(self.values)
