"""The chaos harness, long form: replicas of `stagebot serve` on one PostgreSQL database under faults.

    python -m bench.chaos [--seconds 120] [--replicas 3] [--rate 20] [--accounts N] [--seed S] [--pg-url URL]

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

Figures: bench/README.md.
"""

from __future__ import annotations

import os
import sys

from bench.common import DEFAULT_PG_URL as DEFAULT_PG
from bench.common import parser
from tests.chaos.harness import KNOWN_ISSUES, ChaosOptions, run


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
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
