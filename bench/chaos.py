"""The chaos harness, long form: replicas of `stagebot serve` on one PostgreSQL database under faults.

    python bench/chaos.py [--seconds 120] [--replicas 3] [--rate 20] [--accounts N] [--seed S] [--pg-url URL]

Runs tests/chaos/harness.py (read its docstring for what is sent, which faults are injected and how each
invariant is checked) with more replicas, more load and more faults than the CI form
(tests/chaos/test_chaos.py): during `--seconds` of load a replica is SIGKILLed and restarted every ~48 s (in
turn), the chat APIs answer 429 then 500 for 7 s every ~48 s, and the database connections are dropped every
~25 s. Then it waits for the outbox to drain (leases of killed replicas run out on their own) and prints
the summary: requests by kind, statuses, commands accepted and applied, duplicates, events and deliveries per
target, the fakes' posts, the faults, delivery latency, elapsed time, and every violation. Exit status 1 when an
invariant was violated (a known issue counts unless `--tolerate NAME`).

Everything stays on 127.0.0.1, in a database created for the run (`stagebot_chaos_<random>`) and dropped at the
end, with subprocesses killed and temp files removed whatever happens.

Last figures (2026-11-27, commit 69fc2d6, this 2-core machine, PostgreSQL 15, `--seconds 120`, seed 658828651):

    requests          2,430 in 120 s (20.2/s): 516 Slack reads, 121 slash commands, 11 button presses,
                      418 App Home events, 128 Feishu commands, 15 card presses, 292 Feishu reads,
                      467 signals, 462 invalid
    statuses          200: 1,959  400: 122  401: 201  404: 65  422: 70  refused (replica down): 13  5xx: 0
    commands          542 logical: 508 accepted, each applied exactly once; 30 refusal probes applied
                      nothing; 0 applied twice; 0 lost
    duplicates        201 same-bytes re-deliveries + 24 Feishu message ids under a new event id: none
                      applied twice
    events            356 outbox rows per target, all delivered, 0 dead
    deliveries        Slack 341 posts expected = 341 seen (+26 card updates); Feishu 341 = 341 (+26 patches)
    faults            2 replicas SIGKILLed and restarted; 5 database drops (52 backends); 3 chat outages:
                      Slack 25 x 429 + 18 x 500, Feishu 4 x 429 + 16 x 500
    delivery latency  Slack p50 74 s, p95 163 s (the busiest channel got 161 posts at 1 post/s);
                      Feishu p50 19 s, p95 38 s
    elapsed           start 10 s, load 120 s, drain 69 s, total 204 s
    invariants        1 applied once: OK; 2 history: OK; 3 delivered once: OK; 4 no 5xx: OK

A run can also report known issues (tests/chaos/harness.py `KNOWN_ISSUES`), which depend on a request or a
delivery being in flight at the instant of a fault: this run met none.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from tests.chaos.harness import KNOWN_ISSUES, ChaosOptions, run  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg-url", default=os.environ.get("STAGEBOT_TEST_DATABASE_URL") or DEFAULT_PG)
    ap.add_argument("--seconds", type=float, default=120.0, help="load duration (default 120)")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--rate", type=float, default=20.0, help="paced requests per second (default 20)")
    ap.add_argument("--accounts", type=int, default=None, help="account scenarios (default: one per 4 s of load)")
    ap.add_argument("--workers", type=int, default=10, help="scenario threads (default 10)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--db-drops", type=int, default=None, help="default: one per 25 s of load")
    ap.add_argument("--no-kill", action="store_true", help="no replica is killed")
    ap.add_argument("--no-chat-faults", action="store_true", help="the chat APIs never answer 429/500")
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument(
        "--expire-stuck-leases",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end outbox leases unchanged this long (default: wait for them to expire)",
    )
    ap.add_argument("--tolerate", action="append", default=[], choices=sorted(KNOWN_ISSUES))
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)

    accounts = args.accounts if args.accounts is not None else max(6, round(args.seconds / 4))
    opts = ChaosOptions(
        pg_url=args.pg_url,
        replicas=args.replicas,
        seconds=args.seconds,
        rate=args.rate,
        accounts=accounts,
        workers=args.workers,
        seed=args.seed,
        kill=not args.no_kill,
        chat_faults=not args.no_chat_faults,
        db_drops=args.db_drops,
        drain_timeout=args.drain_timeout,
        expire_stuck_leases=args.expire_stuck_leases,
        hard_timeout=args.seconds + args.drain_timeout + 240,
        tolerate=frozenset(args.tolerate),
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)),
    )
    result = run(opts)
    print(result.report(log_chars=4000))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
