"""The chaos harness in its short form, for CI: 2 `stagebot serve` replicas on one fresh PostgreSQL database,
about 30 s of mixed load (Slack and Feishu commands, button presses, duplicate deliveries, product signals),
one replica SIGKILLed and restarted, the chat APIs answering 429 then 500 for a while, the database connections
dropped twice; then the invariants of tests/chaos/harness.py (every accepted command applied exactly once,
history consistent with each account's stage, every domain event delivered exactly once per target, no 5xx).

About a minute on a 2-core machine; every wait in it is bounded (the harness gives up at 115 s). The summary
of the run is printed either way. The long form is `python -m bench.chaos --seconds 120`.
"""

from __future__ import annotations

import pytest

from tests.chaos.harness import KNOWN_ISSUES, ChaosOptions, run
from tests.conftest import PG_SKIP, PG_URL

pytestmark = pytest.mark.slow  # the chaos harness: replicas as subprocesses, minutes of faults

# A SIGKILL between a Slack post and the commit that marks it delivered re-sends it once the lease runs out:
# inherent to at-least-once delivery to a platform without an idempotency key, and hit only when the kill lands
# in that window of milliseconds. The harness names each occurrence (harness.KNOWN_ISSUES) and this test reports
# it without failing; any other duplicate, and the database-drop issues fixed in 6cee439, fail it.
TOLERATED = frozenset({"kill-duplicate-post"})
assert TOLERATED.issubset(KNOWN_ISSUES)


@pytest.mark.postgres
def test_chaos_short_form(capsys: pytest.CaptureFixture[str]) -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    result = run(
        ChaosOptions(
            pg_url=PG_URL,
            replicas=2,
            seconds=30,
            rate=12,
            accounts=6,
            workers=6,
            drain_timeout=60,
            hard_timeout=115,
            tolerate=TOLERATED,
        )
    )
    with capsys.disabled():
        print("\n" + result.summary)
        for note in result.notes:
            print(f"  note: {note}")
    assert result.ok, result.report()
