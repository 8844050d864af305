"""Shared fixtures: databases (SQLite always; PostgreSQL when STAGEBOT_TEST_DATABASE_URL is set),
a fixed clock, the default pipeline with a small roster, and a Lifecycle bound to them."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lifecycle.core import Lifecycle
from lifecycle.db.engine import make_engine
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.domain.access import Actor, Roster
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.pipeline import Pipeline, load_preset
from lifecycle.domain.rules import Rules
from tests.pg import PgSchema

PG_URL = os.environ.get("STAGEBOT_TEST_DATABASE_URL", "")
PG_SKIP = "PostgreSQL tests need STAGEBOT_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"

ADMIN = Actor("console", "local")
ALICE = Actor("slack", "U0ALICE", "alice")  # sales
BOB = Actor("slack", "U0BOB", "bob")  # sales approver
CAROL = Actor("feishu", "ou_carol", "carol")  # cs
DAVE = Actor("slack", "U0DAVE", "dave")  # support
MARY = Actor("slack", "U0MARY", "mary")  # marketing
EVE = Actor("slack", "U0EVE", "eve")  # in no team

ROSTER = Roster.build(
    members={
        "marketing": [MARY.ref],
        "sales": [ALICE.ref],
        "cs": [CAROL.ref],
        "support": [DAVE.ref],
    },
    approvers={"sales": [BOB.ref]},
    admins=[ADMIN.ref],
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def new_key() -> str:
    return uuid.uuid4().hex


def sqlite_database(path: Path) -> Database:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return Database(engine)


def copy_migrated(template: Path, path: Path) -> None:
    """A fresh, fully migrated SQLite database at `path`: a copy of the session's template, ~1 ms
    where running the migrations takes ~70 ms (hundreds of tests start from one)."""
    shutil.copyfile(template, path)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database with every migration applied, made once per session."""
    path = tmp_path_factory.mktemp("template") / "stagebot.db"
    sqlite_database(path).dispose()
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fold the PostgreSQL skips into one line of the `-ra` summary.

    Without a server each PostgreSQL test skips with PG_SKIP, and the summary would print that
    reason once per test file and line (~170 times). Pointing every such skip at this file (no line)
    makes pytest fold them into `SKIPPED [N] tests/conftest.py: PostgreSQL tests need ...`: the reason
    stays visible, with the count. `-rs -v` still names each skipped test."""
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and str(longrepr[2]).endswith(PG_SKIP):
        report.longrepr = (__file__, None, longrepr[2])
    return report


@pytest.fixture
def pg_database() -> Iterator[Database]:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    schema = PgSchema(PG_URL)
    try:
        upgrade(schema.engine)
        yield Database(schema.engine)
    finally:
        schema.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same test on SQLite and, when a server is configured, on PostgreSQL."""
    if request.param == "sqlite":
        copy_migrated(request.getfixturevalue("sqlite_template"), tmp_path / "stagebot.db")
        db = Database(make_engine(f"sqlite:///{tmp_path / 'stagebot.db'}"))
        yield db
        db.dispose()
    else:
        yield request.getfixturevalue("pg_database")


@pytest.fixture
def pipeline() -> Pipeline:
    """The default pipeline without its automations: most core tests count exact events, and the
    automations (an owner assigned on entering PQL, a task on entering P2) have tests of their own."""
    return load_preset("default").model_copy(update={"automations": ()})


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def rules(pipeline: Pipeline) -> Rules:
    return Rules(pipeline, ROSTER, targets=("console",))


@pytest.fixture
def core(database: Database, rules: Rules, clock: FixedClock) -> Lifecycle:
    return Lifecycle(database, rules, clock)
