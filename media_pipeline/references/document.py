"""One piece of content a source yields: the text that may refer to media files."""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("auto", "html", "markdown", "json", "text")


@dataclass(frozen=True, slots=True)
class Document:
    """A content item, named as the seed names it (``{"webpage": ["123"]}``), and its text.

    ``format`` says how to read ``text``: ``html``, ``markdown``, ``json``, ``text``, or
    ``auto`` (decided from the text itself).
    """

    content_type: str
    content_id: str
    text: str
    format: str = "auto"
