"""The public API (``media_pipeline.__all__``), its import cost, and the package's import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import media_pipeline

PACKAGE = Path(media_pipeline.__file__).parent


@pytest.mark.parametrize("name", media_pipeline.__all__)
def test_every_exported_name_exists_and_has_a_docstring(name: str) -> None:
    value = getattr(media_pipeline, name)
    doc = (value.__doc__ or "").strip()
    assert doc, name
    assert not doc.startswith(f"{name}("), f"{name}: only the dataclass's generated signature"


def test_the_exports_are_sorted_and_unique() -> None:
    assert media_pipeline.__all__ == sorted(set(media_pipeline.__all__), key=str)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = media_pipeline.Nope  # type: ignore[attr-defined]


def test_importing_the_package_stays_light() -> None:
    code = ("import sys, media_pipeline; heavy = [m for m in ('dagster', 'duckdb', 'boto3', "
            "'PIL', 'pyarrow', 'media_pipeline.library') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, cwd=PACKAGE.parent)
    assert done.stdout.strip() == "[]"


def test_the_library_api_loads_on_first_use_without_dagster() -> None:
    code = ("import sys, media_pipeline; media_pipeline.MediaLibrary; media_pipeline.Settings; "
            "print('dagster' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, cwd=PACKAGE.parent)
    assert done.stdout.strip() == "False"


# -- the import graph ----------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(name: str) -> set[str]:
    """The package's modules ``name`` imports, at module level or inside functions (an import
    moved into a function still runs), leaving out ``if TYPE_CHECKING:`` blocks."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[:len(package) - child.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in child.names:  # `from pkg import module` imports the module
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in MODULES else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_the_package_modules() -> None:
    graph = {name: imports_of(name) for name in MODULES}
    assert graph["media_pipeline.cli"] >= {"media_pipeline.cli.lifecycle"}  # the graph is real
    assert cycles(graph) == []
