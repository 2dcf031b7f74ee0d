"""What every content source is: a named, restartable stream of :class:`Document` objects.

A source either yields every document it has and returns, or raises :class:`SourceError`. It
never ends early without saying so: the reference scanner replaces a source's old index only
after a complete read, so a silent early end would make still-used files look unused.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar

from media_pipeline.errors import SourceError  # noqa: F401
from media_pipeline.references.document import Document

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
"""Called with the number of documents produced so far."""

PROGRESS_EVERY = 500
REDACTED = "***"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so overlaps cannot leak)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class ContentSource(ABC):
    """A place where content lives. Subclasses set ``kind`` and implement ``_documents``."""

    kind: ClassVar[str]
    # The drift guard's share for this source (YAML ``max_drop``); None: the setting's.
    max_drop: float | None = None

    def __init__(self, name: str, *, enabled: bool = True) -> None:
        self.name = name
        self.enabled = enabled

    @abstractmethod
    def describe(self) -> str:
        """One line that says what is read, safe to log: passwords and tokens are ``***``."""

    @abstractmethod
    def _documents(self) -> Iterator[Document]:
        """The documents, raising SourceError (or any exception) when the read fails."""

    def _secrets(self) -> Iterable[str]:
        """Strings that must never appear in an error message (passwords, tokens)."""
        return ()

    def redact(self, text: str) -> str:
        """``text`` with this source's secrets replaced by ``***``, before it is shown or
        stored anywhere."""
        return scrub(text, self._secrets())

    def documents(self, progress: Progress | None = None) -> Iterator[Document]:
        """Stream every document, calling ``progress(count)`` now and then and at the end.

        Raises SourceError if the read does not complete, whatever went wrong underneath, with
        the source's secrets scrubbed from the message.
        """
        if not self.enabled:
            raise SourceError(self.name, "is disabled (enabled: false); it is not scanned")
        count = 0
        try:
            for document in self._documents():
                yield document
                count += 1
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(count)
        except SourceError as exc:
            if exc.source != self.name:
                raise SourceError(self.name, scrub(str(exc), self._secrets())) from None
            raise SourceError(self.name, scrub(exc.reason, self._secrets())) from None
        except Exception as exc:
            # An error we did not anticipate still means an incomplete read, never a short one.
            message = scrub(f"{type(exc).__name__}: {exc}", self._secrets())
            raise SourceError(self.name, f"failed after {count} documents: {message}") from None
        if progress is not None:
            progress(count)
        log.info("content source %r: %d documents", self.name, count)

    def __repr__(self) -> str:
        state = "" if self.enabled else " disabled"
        return f"<{type(self).__name__} {self.name!r}{state}: {self.describe()}>"
