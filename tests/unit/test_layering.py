"""The dependency rule, checked by walking imports with `ast`: the core knows no chat SDK, scheduler,
adapter or composition root, and adapters never reach into `bot/`."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_FORBIDDEN = ("slack_bolt", "slack_sdk", "lark_oapi", "apscheduler", "adapters", "bot")
ADAPTERS_FORBIDDEN = ("bot",)


def imported_modules(source: str, *, package: str = "") -> Iterator[tuple[int, str]]:
    """Every module a source imports, as (line, absolute dotted name), including `from X import`,
    imports inside functions and `TYPE_CHECKING` blocks, and relative imports resolved against
    `package`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for alias in node.names:  # `from . import bot` or `from x import y` where y is a module
                yield node.lineno, f"{mod}.{alias.name}" if mod else alias.name
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def violations(source: str, forbidden: Iterable[str], *, package: str = "", where: str = "<string>") -> list[str]:
    bad = []
    for line, mod in imported_modules(source, package=package):
        top = mod.split(".")[0]
        if top in forbidden:
            bad.append(f"{where}:{line} imports {mod}")
    return bad


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def package_of(path: Path) -> str:
    """The package a file's relative imports resolve against (its directory, as a dotted name)."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def scan(package: str, forbidden: Iterable[str]) -> list[str]:
    bad: list[str] = []
    for f in python_files(package):
        bad += violations(
            f.read_text(encoding="utf-8"),
            forbidden,
            package=package_of(f),
            where=str(f.relative_to(ROOT)),
        )
    return bad


# ---------------------------------------------------------------- the walker can fail


@pytest.mark.parametrize(
    "source",
    [
        "import slack_sdk",
        "import slack_sdk.web as w",
        "from slack_bolt import App",
        "from lark_oapi.api.im.v1 import CreateMessageRequest",
        "import apscheduler.schedulers.background",
        "from adapters.common import text",
        "from bot import config",
        "import os, bot.cli",
        "def f():\n    from bot.bootstrap import build\n    return build",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from adapters.console import console",
        "import importlib\nimportlib.import_module('slack_sdk')",
        "__import__('apscheduler')",
        "from ... import bot",
        "from ...adapters import console",
    ],
)
def test_walker_detects_forbidden_imports(source: str) -> None:
    assert violations(source, CORE_FORBIDDEN, package="lifecycle.usecases"), source


@pytest.mark.parametrize(
    "source",
    [
        "import lifecycle.domain.pipeline",
        "from lifecycle.domain.errors import Conflict",
        "from sqlalchemy import select",
        "import botocore",  # a different package that merely starts with 'bot'
        "from . import base",
        "from .base import Rules",
        "from .. import machine",
        "x = 'import slack_sdk'",
        "# from bot import cli",
    ],
)
def test_walker_allows_innocent_imports(source: str) -> None:
    assert violations(source, CORE_FORBIDDEN, package="lifecycle.usecases") == [], source


def test_walker_resolves_relative_imports_against_the_package() -> None:
    mods = [m for _, m in imported_modules("from ..db import models", package="lifecycle.usecases")]
    assert "lifecycle.db" in mods
    mods = [m for _, m in imported_modules("from ...bot import cli", package="lifecycle.usecases")]
    assert "bot" in mods


def test_there_is_something_to_walk() -> None:
    core = python_files("lifecycle")
    names = {f.relative_to(ROOT).as_posix() for f in core}
    assert "lifecycle/domain/machine.py" in names
    assert "lifecycle/usecases/stages.py" in names
    assert len(core) >= 15
    assert python_files("adapters")


# ---------------------------------------------------------------- the rule


def test_core_imports_no_chat_sdk_scheduler_adapter_or_bot() -> None:
    assert scan("lifecycle", CORE_FORBIDDEN) == []


def test_adapters_never_import_bot() -> None:
    assert scan("adapters", ADAPTERS_FORBIDDEN) == []


# ---------------------------------------------------------------- the core's own layers

# Each folder of the core and the parts of the core it may import: the dependency direction the
# folders show. `domain` is pure (no SQL); reads never import writes; delivery knows no use case.
LAYERS: dict[str, tuple[str, ...]] = {
    "lifecycle.domain": ("lifecycle.domain",),
    "lifecycle.db": ("lifecycle.db", "lifecycle.domain"),
    "lifecycle.read": ("lifecycle.read", "lifecycle.db", "lifecycle.domain"),
    "lifecycle.delivery": ("lifecycle.delivery", "lifecycle.db", "lifecycle.domain"),
    "lifecycle.usecases": ("lifecycle.usecases", "lifecycle.read", "lifecycle.db", "lifecycle.domain"),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def core_imports() -> dict[str, set[str]]:
    """Each core module and the core modules it imports (anywhere in it, lazily or not)."""
    files = {module_name(f): f for f in python_files("lifecycle")}
    graph: dict[str, set[str]] = {}
    for mod, f in files.items():
        found = {m for _, m in imported_modules(f.read_text(encoding="utf-8"), package=package_of(f))}
        graph[mod] = {m for m in found if m in files and m != mod and m != "lifecycle"}
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        layer = next((layer for layer in LAYERS if mod == layer or mod.startswith(layer + ".")), None)
        if layer is None:
            continue
        allowed = LAYERS[layer]
        bad += [f"{mod} imports {d}" for d in sorted(deps) if not any(d == a or d.startswith(a + ".") for a in allowed)]
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of two or more modules), Tarjan's way."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    lazy = "def f():\n    from lifecycle.usecases.stages import apply_transition\n"
    assert "lifecycle.usecases.stages" in {m for _, m in imported_modules(lazy)}


def test_the_layer_check_catches_a_read_that_imports_a_write() -> None:
    assert layer_violations({"lifecycle.read.queries": {"lifecycle.usecases.base"}}) == [
        "lifecycle.read.queries imports lifecycle.usecases.base"
    ]
    assert layer_violations({"lifecycle.domain.machine": {"lifecycle.db.models"}})


def test_core_layers_import_only_inward() -> None:
    assert layer_violations(core_imports()) == []


def test_domain_imports_no_sqlalchemy() -> None:
    assert scan("lifecycle/domain", ("sqlalchemy", "alembic", "psycopg")) == []


def test_no_import_cycles_in_the_core() -> None:
    graph = core_imports()
    assert len(graph) >= 30 and any(graph.values())
    assert cycles(graph) == []
