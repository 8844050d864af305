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
    assert violations(source, CORE_FORBIDDEN, package="lifecycle.services"), source


@pytest.mark.parametrize(
    "source",
    [
        "import lifecycle.pipeline",
        "from lifecycle.errors import Conflict",
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
    assert violations(source, CORE_FORBIDDEN, package="lifecycle.services") == [], source


def test_walker_resolves_relative_imports_against_the_package() -> None:
    mods = [m for _, m in imported_modules("from ..db import models", package="lifecycle.services")]
    assert "lifecycle.db" in mods
    mods = [m for _, m in imported_modules("from ...bot import cli", package="lifecycle.services")]
    assert "bot" in mods


def test_there_is_something_to_walk() -> None:
    core = python_files("lifecycle")
    names = {f.relative_to(ROOT).as_posix() for f in core}
    assert "lifecycle/machine.py" in names
    assert "lifecycle/services/stages.py" in names
    assert len(core) >= 15
    assert python_files("adapters")


# ---------------------------------------------------------------- the rule


def test_core_imports_no_chat_sdk_scheduler_adapter_or_bot() -> None:
    assert scan("lifecycle", CORE_FORBIDDEN) == []


def test_adapters_never_import_bot() -> None:
    assert scan("adapters", ADAPTERS_FORBIDDEN) == []
