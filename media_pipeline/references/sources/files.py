"""A folder of files as a content source: an exported site, a docs tree, JSON dumps.

The content id is the file's path relative to the root (POSIX separators), so the same file has
the same id on every machine. A symlinked file that leads outside the root is not read. A
symlinked folder inside the root is followed (each folder once: no loops); one that leads outside
fails the scan unless ``follow_links="outside"`` (skipping it would drop its pages silently).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from media_pipeline.references.document import Document
from media_pipeline.references.sources.base import ContentSource, SourceError

log = logging.getLogger(__name__)

DEFAULT_GLOBS = ("**/*.html", "**/*.htm", "**/*.md", "**/*.json", "**/*.txt")
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
FORMAT_BY_EXTENSION = {
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "markdown", ".markdown": "markdown",
    ".json": "json",
    ".txt": "text",
}
CONTENT_TYPE_FROM = ("parent_dir",)
# Symlinked folders followed: "inside" the root only (one leading outside fails the scan), or
# "outside" too.
FOLLOW_LINKS = ("inside", "outside")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a path glob: ``**`` spans folders, ``*`` and ``?`` stay inside one."""
    out: list[str] = []
    pattern = pattern.lstrip("/")
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def format_for(path: str) -> str:
    """The document format its extension implies; ``auto`` for anything else."""
    return FORMAT_BY_EXTENSION.get(os.path.splitext(path)[1].lower(), "auto")


class FilesSource(ContentSource):
    """Every file under ``root`` that matches one of ``globs``, read as text (UTF-8).

    Paths matching an ``exclude`` glob are skipped (a folder that matches is not entered).
    Undecodable bytes become U+FFFD rather than an error. ``content_type`` is fixed, or with
    ``content_type_from="parent_dir"`` the name of the folder that holds each file (``content_type``
    then names files directly in the root; without it they take the root folder's name).
    """

    kind = "files"

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        globs: Sequence[str] = DEFAULT_GLOBS,
        exclude: Sequence[str] = (),
        content_type: str | None = None,
        content_type_from: str | None = None,
        encoding: str = "utf-8",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        follow_links: str = "inside",
        enabled: bool = True,
    ) -> None:
        super().__init__(name, enabled=enabled)
        if content_type is None and content_type_from is None:
            raise ValueError("give content_type or content_type_from")
        if content_type_from is not None and content_type_from not in CONTENT_TYPE_FROM:
            raise ValueError(f"content_type_from must be one of {', '.join(CONTENT_TYPE_FROM)}")
        if not globs:
            raise ValueError("globs must not be empty")
        if follow_links not in FOLLOW_LINKS:
            raise ValueError(f"follow_links must be one of {', '.join(FOLLOW_LINKS)}")
        self.follow_links = follow_links
        self.root = Path(root)
        self.globs = tuple(globs)
        self.patterns = tuple(glob_regex(g) for g in globs)
        self.exclude = tuple(exclude)
        self.excluded = tuple(glob_regex(g) for g in exclude)
        self.content_type = content_type
        self.content_type_from = content_type_from
        self.encoding = encoding
        self.max_file_bytes = max_file_bytes

    def describe(self) -> str:
        return f"files {self.root} ({', '.join(self.globs)})"

    def _documents(self) -> Iterator[Document]:
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a directory"
            raise SourceError(self.name, f"root {self.root} {what}")
        root = self.root.resolve()
        for relative in self._matching_paths(root):
            document = self._read(root, relative)
            if document is not None:
                yield document

    def _matching_paths(self, root: Path) -> Iterator[str]:
        # Each real folder once, by device and inode: a link loop is not walked forever.
        seen: set[tuple[int, int]] = set()
        yield from self._walk(root, root, Path(), seen)

    def _walk(self, root: Path, folder: Path, base: Path, seen: set[tuple[int, int]]
              ) -> Iterator[str]:
        try:
            status = folder.stat()
            if (status.st_dev, status.st_ino) in seen:
                return
            seen.add((status.st_dev, status.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as error:
            # A skipped folder would be an incomplete scan that looks complete.
            raise SourceError(self.name, f"cannot list {error.filename or folder}: "
                                         f"{error.strerror}") from None
        dirs: list[os.DirEntry[str]] = []
        for entry in entries:
            relative = (base / entry.name).as_posix()
            try:
                is_dir = entry.is_dir()  # follows a symlink
            except OSError:
                is_dir = False
            if not is_dir:
                if any(p.fullmatch(relative) for p in self.patterns) \
                        and not self._is_excluded(relative):
                    yield relative
            elif not self._is_excluded(relative):  # excluded folders are not even listed
                dirs.append(entry)
        for entry in dirs:
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root) and self.follow_links != "outside":
                    raise SourceError(self.name, f"{(base / entry.name).as_posix()} is a "
                                      f"symlinked folder leading outside the root ({target}); "
                                      "set follow_links: outside to scan it, or exclude it")
            yield from self._walk(root, path, base / entry.name, seen)

    def _is_excluded(self, relative: str) -> bool:
        return any(p.fullmatch(relative) for p in self.excluded)

    def _read(self, root: Path, relative: str) -> Document | None:
        """The file as a document; None for a symlink that leads outside the root or nowhere,
        or for something that is not a regular file."""
        path = root / relative
        try:
            if path.is_symlink():
                target = path.resolve()
                if not target.exists() or not (target.is_relative_to(root)
                                               or self.follow_links == "outside"):
                    log.warning("content source %r: not following %s, it leads outside the "
                                "root or nowhere", self.name, relative)
                    return None
            status = path.stat()
            if not stat.S_ISREG(status.st_mode):
                # A named pipe would block the scan forever; a device is not content.
                log.warning("content source %r: skipping %s, not a regular file",
                            self.name, relative)
                return None
            size = status.st_size
            if size > self.max_file_bytes:
                raise SourceError(self.name, f"{relative} is {size} bytes, over max_file_bytes "
                                             f"({self.max_file_bytes}); raise it or exclude it")
            data = path.read_bytes()
        except FileNotFoundError:
            raise SourceError(self.name, f"{relative} vanished during the scan") from None
        except OSError as exc:
            raise SourceError(self.name, f"cannot read {relative}: {exc.strerror}") from None
        text = data.decode(self.encoding, errors="replace")
        return self._document(relative, text.removeprefix("\ufeff"))

    def _document(self, relative: str, text: str) -> Document:
        return Document(self._content_type(relative), relative, text, format_for(relative))

    def _content_type(self, relative: str) -> str:
        if self.content_type_from == "parent_dir":
            parent = Path(relative).parent.name
            if parent:
                return parent
            return self.content_type or self.root.resolve().name
        assert self.content_type is not None
        return self.content_type
