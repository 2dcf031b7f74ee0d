"""The content-sources YAML file: parsing, ``${ENV_VAR}`` interpolation and validation.

Every problem is reported at once, each naming the file, the source and the field, because a
sources file is usually edited by hand and fixed one round-trip at a time otherwise. Secrets
come from the environment (``${CMS_DB_PASSWORD}``) so the file itself can be committed.
See docs/content-sources.md for the format.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy
import yaml
from sqlalchemy.exc import ArgumentError

from media_pipeline.catalog.references import API_SOURCE
from media_pipeline.errors import SourceConfigError  # noqa: F401
from media_pipeline.redaction import UnsafeUrl, check_database_url, parse_database_url
from media_pipeline.references.document import FORMATS
from media_pipeline.references.sources.base import ContentSource
from media_pipeline.references.sources.files import (
    CONTENT_TYPE_FROM,
    DEFAULT_GLOBS,
    FOLLOW_LINKS,
    FilesSource,
)
from media_pipeline.references.sources.http import HttpSource
from media_pipeline.references.sources.sql import SqlSource
from media_pipeline.settings import Settings, absolute

CONFIG_VERSION = 1
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


# --- YAML that refuses duplicate keys (PyYAML silently keeps the last one) ---

class _StrictLoader(yaml.SafeLoader):
    pass


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in keys:
            raise yaml.MarkedYAMLError("while reading a mapping", node.start_mark,
                                       f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _mapping_without_duplicates)


# --- one source's fields, checked with errors collected ---

@dataclass
class _Fields:
    """A source's raw mapping, read field by field; problems are collected, not raised."""

    raw: Mapping[str, Any]
    where: str
    errors: list[str]
    used: set[str] = field(default_factory=set)
    # A disabled source may name unset variables; its values are then not checked as URLs.
    unresolved: bool = False
    # The mapping as written, before ${ENV} interpolation, and the environment used.
    template: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = len(self.errors)

    @property
    def failed(self) -> bool:
        """Whether any problem was found since these fields were first read."""
        return len(self.errors) > self.start

    def error(self, name: str | None, problem: str) -> None:
        self.errors.append(f"{self.where}: field '{name}': {problem}" if name
                           else f"{self.where}: {problem}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.raw or self.raw[name] is None:
            if required:
                self.error(name, "is required")
            return default
        value = self.raw[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML's `yes` is a bool, and bool is an int: never accept one for the other.
        if isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds):
            self.error(name, f"must be {_kind_name(kinds)}, got {_kind_name((type(value),))}")
            return default
        return value

    def string(self, name: str, required: bool = False, default: str | None = None) -> Any:
        value = self.get(name, str, default, required)
        if required and value == "":
            self.error(name, "must not be empty")
        return value

    def strings(self, name: str, required: bool = False,
                default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of strings; a single string is accepted as a list of one."""
        value = self.get(name, (list, str), None, required)
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        if not items or not all(isinstance(v, str) and v for v in items):
            self.error(name, "must be a non-empty list of non-empty strings")
            return default
        return tuple(items)

    def positive(self, name: str, default: int) -> int:
        value = self.get(name, int, default)
        if value < 1:
            self.error(name, f"must be at least 1, got {value}")
            return default
        return int(value)

    def number(self, name: str, default: float, minimum: float, above: bool = False) -> float:
        value = self.get(name, (int, float), default)
        if value < minimum or (above and value == minimum):
            self.error(name, f"must be {'above' if above else 'at least'} {minimum}, got {value}")
            return default
        return float(value)

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> Any:
        value = self.string(name, default=default)
        if value is not None and value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}; got {value!r}")
            return default
        return value

    def one_of(self, first: str, second: str) -> None:
        has = [n for n in (first, second) if self.raw.get(n) is not None]
        if not has:
            self.error(None, f"give '{first}' or '{second}'")
        elif len(has) == 2:
            self.error(None, f"give '{first}' or '{second}', not both")

    def unknown(self) -> None:
        for name in self.raw:
            if name not in self.used:
                hint = f"; known fields: {', '.join(sorted(self.used))}"
                self.error(str(name), f"unknown field{hint}")


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping", type(None): "empty"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _sql(f: _Fields, name: str, enabled: bool, base_dir: Path) -> SqlSource | None:
    url = f.string("url", required=True)
    query = f.string("query")
    table = f.string("table")
    schema = f.string("schema")
    where = f.string("where")
    content_type = f.string("content_type")
    columns = f.get("columns", dict)
    fmt = f.choice("format", FORMATS, "auto")
    batch_size = f.positive("batch_size", 1000)
    f.one_of("query", "table")
    id_column: str | None = None
    text_columns: tuple[str, ...] = ()
    if table is not None:
        if columns is None:
            f.error("columns", "is required with 'table' ({content_id: id, text: [body]})")
        else:
            sub = _Fields(columns, f"{f.where}: field 'columns'", f.errors)
            id_column = sub.string("content_id", required=True)
            text_columns = sub.strings("text", required=True)
            sub.unknown()
        if not content_type:
            f.error("content_type", "is required with 'table' (e.g. webpage)")
    else:
        for only_table in ("columns", "schema", "where"):
            if f.raw.get(only_table) is not None:
                f.error(only_table, "is only used with 'table'")
    if isinstance(url, str) and url and not f.unresolved:
        try:
            parsed = _database_url(f.template.get("url"), url, f.env)
        except UnsafeUrl as exc:
            # Never echo the URL: it may hold a password.
            f.error("url", str(exc))
        else:
            url = _sqlite_relative_to(parsed, base_dir) or parsed
    f.unknown()
    if f.failed:
        return None
    return SqlSource(name, url, query=query, table=table, schema=schema, id_column=id_column,
                     text_columns=text_columns, where=where, content_type=content_type,
                     format=fmt, batch_size=batch_size, enabled=enabled)


def _database_url(template: Any, interpolated: str, env: Mapping[str, str]) -> sqlalchemy.URL:
    """The URL with ``${VAR}`` values put into the parts they stand for.

    The template is parsed first and each part interpolated on its own, so a password with
    ``@``, ``#``, ``/`` or ``?`` from the environment stays the password. A template that is
    not a URL by itself (``${DB_URL}``) is parsed after interpolation, and refused when its
    parts are ambiguous.
    """
    parsed: sqlalchemy.URL | None = None
    if isinstance(template, str) and "${" in template:
        try:
            parsed = sqlalchemy.make_url(template)
            parsed.port  # noqa: B018 - a ${PORT} template fails here
        except (ArgumentError, ValueError):
            parsed = None
    if parsed is None:
        return parse_database_url(interpolated)

    def fill(value: str) -> str:
        return str(_interpolate(value, env, [], []))

    def part(value: str | None) -> str | None:
        return None if value is None else fill(value)

    query: dict[str, str | tuple[str, ...]] = {
        k: fill(v) if isinstance(v, str) else tuple(fill(x) for x in v)
        for k, v in parsed.query.items()}
    return check_database_url(parsed.set(
        username=part(parsed.username), password=part(parsed.password), host=part(parsed.host),
        database=part(parsed.database), query=query))


def _sqlite_relative_to(url: sqlalchemy.URL, base_dir: Path) -> sqlalchemy.URL | None:
    """A SQLite URL with a relative file (``sqlite:///cms.db``) made absolute against the
    sources file's folder, like a ``files`` root; None for anything else."""
    database = url.database or ""
    if (url.get_backend_name() != "sqlite" or database in ("", ":memory:")
            or database.startswith("file:") or Path(database).expanduser().is_absolute()):
        return None
    absolute = base_dir / Path(database).expanduser()
    return url.set(database=str(absolute))


def _files(f: _Fields, name: str, enabled: bool, base_dir: Path) -> FilesSource | None:
    root = f.string("root", required=True)
    globs = f.strings("globs", default=DEFAULT_GLOBS)
    exclude = f.strings("exclude")
    content_type = f.string("content_type")
    content_type_from = f.choice("content_type_from", CONTENT_TYPE_FROM)
    encoding = f.string("encoding", default="utf-8")
    max_file_bytes = f.positive("max_file_bytes", 64 * 1024 * 1024)
    follow_links = f.choice("follow_links", FOLLOW_LINKS) or "inside"
    if content_type is None and f.raw.get("content_type_from") is None:
        f.error(None, "give 'content_type' or 'content_type_from'")
    try:
        codecs.lookup(encoding)
    except LookupError:
        f.error("encoding", f"unknown encoding {encoding!r}")
    f.unknown()
    if f.failed:
        return None
    path = Path(root).expanduser()
    return FilesSource(name, path if path.is_absolute() else absolute(base_dir / path), globs=globs,
                       exclude=exclude, content_type=content_type,
                       content_type_from=content_type_from, encoding=encoding,
                       max_file_bytes=max_file_bytes, follow_links=follow_links,
                       enabled=enabled)


def _http(f: _Fields, name: str, enabled: bool, base_dir: Path) -> HttpSource | None:
    url = f.string("url", required=True)
    headers = f.get("headers", dict, {})
    items = f.get("items", str, required=True)
    id_field = f.string("id_field", required=True)
    text_fields = f.strings("text_fields", required=True)
    content_type = f.string("content_type")
    content_type_field = f.string("content_type_field")
    fmt = f.choice("format", FORMATS, "auto")
    next_link = f.string("next")
    page_param = f.string("page_param")
    page_size_param = f.string("page_size_param")
    page_size = f.positive("page_size", 100)
    first_page = f.get("first_page", int, 1)
    timeout = f.number("timeout", 30.0, 0, above=True)
    retries = f.get("retries", int, 3)
    backoff = f.number("backoff", 1.0, 0)
    max_pages = f.positive("max_pages", 100_000)
    max_page_bytes = f.positive("max_page_bytes", 64 * 1024 * 1024)
    allowed_origins = f.strings("allowed_origins")
    total = f.string("total")
    total_pages = f.string("total_pages")
    has_more = f.string("has_more")
    end = f.choice("end", ("empty_page",))
    optional_text_fields = f.strings("optional_text_fields")
    if page_param is None:
        for field_name, value in (("total_pages", total_pages), ("has_more", has_more),
                                  ("end", end)):
            if value is not None:
                f.error(field_name, "needs 'page_param'")
    elif not (total or total_pages or has_more or end):
        f.error("page_param", "needs the API's end signal: 'has_more', 'total_pages' or "
                              "'total' (paths in each page), or 'end: empty_page' (weak: an "
                              "API that stops early then looks like the end)")
    if content_type is None and content_type_field is None:
        f.error(None, "give 'content_type' or 'content_type_field'")
    if next_link is not None and page_param is not None:
        f.error(None, "give 'next' or 'page_param', not both")
    if page_size_param is not None and page_param is None:
        f.error("page_size_param", "needs 'page_param'")
    if isinstance(retries, int) and retries < 0:
        f.error("retries", f"must not be negative, got {retries}")
    if isinstance(url, str) and url and not f.unresolved \
            and urlsplit(url).scheme.lower() not in {"http", "https"}:
        f.error("url", "must be an http:// or https:// URL")
    if isinstance(headers, dict):
        for key, value in headers.items():
            if not isinstance(key, str) or not isinstance(value, str):
                f.error("headers", f"header {key!r} must be a string name with a string value")
    f.unknown()
    if f.failed:
        return None
    return HttpSource(name, url, items=items, id_field=id_field, text_fields=text_fields,
                      content_type=content_type, content_type_field=content_type_field,
                      format=fmt, headers=headers, next=next_link, page_param=page_param,
                      page_size_param=page_size_param, page_size=page_size,
                      first_page=first_page, timeout=timeout, retries=retries,
                      backoff=backoff, max_pages=max_pages, max_page_bytes=max_page_bytes,
                      allowed_origins=allowed_origins,
                      total=total, total_pages=total_pages, has_more=has_more, end=end,
                      optional_text_fields=optional_text_fields, enabled=enabled)


BUILDERS: dict[str, Callable[[_Fields, str, bool, Path], ContentSource | None]] = {
    "sql": _sql, "files": _files, "http": _http,
}


# --- ${ENV} interpolation ---

def _interpolate(value: Any, env: Mapping[str, str], missing: list[str],
                 problems: list[str]) -> Any:
    """``value`` with ``${NAME}`` / ``${NAME:-default}`` replaced in every string; ``$${`` is a
    literal ``${``. Unset names are collected in ``missing``, bad references in ``problems``."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            parsed = _ENV_NAME.fullmatch(match.group(1))
            if parsed is None:
                problems.append(f"'{match.group(0)}' is not a valid ${{NAME}} reference")
                return match.group(0)
            name, default = parsed.group(1), parsed.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append(name)
            return match.group(0)
        return _ENV_REFERENCE.sub(replace, value)
    if isinstance(value, list):
        return [_interpolate(v, env, missing, problems) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env, missing, problems) for k, v in value.items()}
    return value


# --- the file ---

def load_sources(path: Path, env: Mapping[str, str] | None = None) -> list[ContentSource]:
    """The content sources a YAML file lists, disabled ones included (``enabled`` is False).

    Relative paths inside it (a ``files`` source's ``root``, a ``sqlite:///relative.db`` URL)
    are relative to the file's own folder, and made absolute here, once.
    Raises SourceConfigError naming the file, the source and the field for every problem.
    """
    path = absolute(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceConfigError([f"{path}: cannot read the sources file: {exc.strerror}"]) \
            from None
    except UnicodeDecodeError:
        raise SourceConfigError([f"{path}: the sources file is not UTF-8 text"]) from None
    return load_sources_text(text, str(path), base_dir=path.parent, env=env)


def load_sources_text(text: str, origin: str = "<sources>", *, base_dir: Path | None = None,
                      env: Mapping[str, str] | None = None) -> list[ContentSource]:
    """Like :func:`load_sources` for YAML text; ``origin`` names it in error messages."""
    env = os.environ if env is None else env
    base_dir = absolute(base_dir if base_dir is not None else Path.cwd())
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SourceConfigError([f"{origin}: invalid YAML{at}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise SourceConfigError([f"{origin}: invalid YAML: {exc}"]) from None
    errors: list[str] = []
    if not isinstance(document, dict):
        got = "an empty file" if document is None else _kind_name((type(document),))
        raise SourceConfigError([f"{origin}: expected a mapping with a 'sources:' list, "
                                 f"got {got}"])
    top = _Fields(document, origin, errors)
    version = top.get("version", int, CONFIG_VERSION)
    if version != CONFIG_VERSION:
        top.error("version", f"must be {CONFIG_VERSION} (the only format version), got {version}")
    raw_sources = top.get("sources", list, [], required=True)
    top.unknown()
    sources: list[ContentSource] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_sources, start=1):
        source = _source(raw, index, origin, base_dir, env, names, errors)
        if source is not None:
            sources.append(source)
    if errors:
        raise SourceConfigError(errors)
    return sources


def _source(raw: Any, index: int, origin: str, base_dir: Path, env: Mapping[str, str],
            names: dict[str, int], errors: list[str]) -> ContentSource | None:
    if not isinstance(raw, dict):
        errors.append(f"{origin}: source #{index}: must be a mapping, got "
                      f"{_kind_name((type(raw),))}")
        return None
    raw_name = raw.get("name")
    label = f"source {raw_name!r} (#{index})" if isinstance(raw_name, str) else f"source #{index}"
    f = _Fields(raw, f"{origin}: {label}", errors)
    name = f.string("name", required=True)
    kind = f.string("type", required=True)
    enabled = f.get("enabled", bool, True)
    f.string("description")
    max_drop = f.get("max_drop", (int, float), None)
    if max_drop is not None and not 0 <= max_drop < 1:
        f.error("max_drop", f"must be at least 0 and below 1, got {max_drop}")
        max_drop = None
    if isinstance(name, str) and name:
        if not NAME_PATTERN.fullmatch(name):
            f.error("name", "may hold letters, digits, '_', '.', '-' and must start with a "
                            "letter or digit")
        if name == API_SOURCE:
            f.error("name", f"{API_SOURCE!r} is reserved for references added through the API")
        if name in names:
            f.error("name", f"duplicate name: source #{names[name]} is also called {name!r}")
        names.setdefault(name, index)
    if kind is None:
        return None
    builder = BUILDERS.get(kind)
    if builder is None:
        f.error("type", f"unknown type {kind!r}; known types: {', '.join(BUILDERS)}")
        return None
    missing: list[str] = []
    problems: list[str] = []
    interpolated = _interpolate(raw, env, missing, problems)
    for problem in problems:
        f.error(None, problem)
    if missing and enabled:
        f.error(None, "environment variable(s) not set: " + ", ".join(dict.fromkeys(missing))
                + f" (a source whose content is gone for good is retired: media-pipeline "
                f"sources retire {name or 'NAME'} --user ADMIN)")
    f.raw = interpolated
    f.template, f.env = raw, env
    f.unresolved = bool(missing)
    try:
        source = builder(f, name, enabled, base_dir)
        if source is not None and max_drop is not None:
            source.max_drop = float(max_drop)
        return source
    except ValueError as exc:
        f.error(None, str(exc))
        return None


def sources_from_settings(settings: Settings) -> list[ContentSource]:
    """The sources in ``settings.content_sources`` (MEDIA_PIPELINE_SOURCES); none if unset."""
    if settings.content_sources is None:
        return []
    return load_sources(settings.content_sources)
