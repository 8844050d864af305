"""Two processes running the scheduler's `run_due` at the same time against one PostgreSQL database,
over a real connection, for many ticks: every reminder is emitted exactly once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from lifecycle.core import Lifecycle
from lifecycle.db.migrate import upgrade
from lifecycle.db.uow import Database
from lifecycle.domain import commands as c
from lifecycle.domain.clock import FixedClock
from lifecycle.domain.events import load_event
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.rules import Rules
from tests.conftest import ADMIN, PG_SKIP, PG_URL, ROSTER, T0, PgSchema

pytestmark = pytest.mark.slow  # scheduler replicas as subprocesses

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 40
TICKS = 120  # hourly ticks over five days after the SLAs ran out

REPLICA = textwrap.dedent(
    """\
    import sys
    from datetime import datetime, timedelta
    from lifecycle.domain.access import Roster
    from lifecycle.db.engine import make_engine
    from lifecycle.db.uow import Database
    from lifecycle.domain.pipeline import load_preset
    from lifecycle.usecases.scheduling import Schedule, run_due
    from lifecycle.domain.rules import Rules

    url, schema, start, ticks = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])
    db = Database(make_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=2))
    rules = Rules(load_preset("default"), Roster.build(members={}, approvers={}, admins=[]), targets=("console",))
    always = Schedule(working_days=(1, 2, 3, 4, 5, 6, 7), working_hours=(0, 24))
    emitted = sum(run_due(db, rules, always, start + timedelta(hours=h)).total for h in range(ticks))
    print(emitted)
    """
)


@pytest.mark.postgres
def test_two_processes_ticking_together_emit_each_reminder_once() -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    schema = PgSchema(PG_URL)
    try:
        upgrade(schema.engine)
        db = Database(schema.engine)
        core = Lifecycle(db, Rules(load_preset("default"), ROSTER, targets=("console",)), FixedClock(T0))
        for i in range(ACCOUNTS):
            core.execute(c.AddAccount(name=f"Replica {i}", stage="SQL", actor=ADMIN, key=uuid.uuid4().hex))
        start = T0 + timedelta(days=30)
        args = [PG_URL, schema.name, start.isoformat(), str(TICKS)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", REPLICA, *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=180) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
        per_process = [int(out.strip()) for out, _ in outs]
        with schema.engine.connect() as conn:
            payloads = conn.execute(text("SELECT payload FROM outbox WHERE kind = 'SlaReminder'")).scalars().all()
            keys = conn.execute(text("SELECT count(*) FROM emissions")).scalar_one()
        reminders = [load_event(p) for p in payloads]
        seen = Counter((r.account_id, r.n) for r in reminders)
        # Five days after a 30-day SLA with a 3-day repeat: reminders 1 and 2 for every account.
        assert len(reminders) == ACCOUNTS * 2 and max(seen.values()) == 1
        assert keys == len(reminders) and sum(per_process) == len(reminders)
    finally:
        schema.drop()
