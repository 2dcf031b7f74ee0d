"""What AI analysis produces, whatever the backend: raw scores, kept per detector.

Scores mean different things per detector (an OCR engine is confident about text it invents on a
photo; an embedding similarity is not a probability), so results keep the raw score and the
detector's name, and thresholds are applied when results are read or applied
(:mod:`media_pipeline.ai.thresholds`), never when they are stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from media_pipeline.errors import AIServiceError, AIServiceUnavailable, EngineUnavailable  # noqa: F401


@dataclass(frozen=True)
class Scored:
    """One finding: a label, tag, line of text or title, its raw score and who said it."""

    value: str
    score: float
    detector: str


@dataclass(frozen=True)
class Face:
    score: float
    box: tuple[int, int, int, int]  # x, y, width, height in pixels of the analysed image
    detector: str


@dataclass
class AnalysisResult:
    """Everything one analysis found. ``errors`` maps an engine to why it produced nothing
    (not installed, corrupt input, timeout) so one failing engine never fails the file."""

    backend: str
    model: str
    version: str
    labels: list[Scored] = field(default_factory=list)
    tags: list[Scored] = field(default_factory=list)
    text_lines: list[Scored] = field(default_factory=list)
    title: Scored | None = None
    faces: list[Face] = field(default_factory=list)
    moderation: dict[str, Scored] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def extracted_text(self) -> str:
        return "\n".join(line.value for line in self.text_lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisResult:
        def scored(items: list[dict[str, Any]]) -> list[Scored]:
            return [Scored(**item) for item in items]

        return cls(
            backend=data["backend"],
            model=data["model"],
            version=data["version"],
            labels=scored(data.get("labels", [])),
            tags=scored(data.get("tags", [])),
            text_lines=scored(data.get("text_lines", [])),
            title=Scored(**data["title"]) if data.get("title") else None,
            faces=[Face(score=f["score"], box=tuple(f["box"]), detector=f["detector"])
                   for f in data.get("faces", [])],
            moderation={k: Scored(**v) for k, v in data.get("moderation", {}).items()},
            errors=dict(data.get("errors", {})),
        )


