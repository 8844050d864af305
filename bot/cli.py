"""The `stagebot` command line: console, check-config, db upgrade, pipeline show, import, export, and the rest.

`--config PATH` is accepted before or after the subcommand. Exit codes: 0 ok, 1 a problem was
found (invalid config, failed check), 2 wrong usage or a feature that is not available yet.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote

from sqlalchemy.engine import make_url

from bot.config import ConfigError, Settings, load_settings
from lifecycle.domain.pipeline import Pipeline

if TYPE_CHECKING:
    from lifecycle.db.uow import Database
    from lifecycle.delivery.outbox import Dispatcher, DispatchReport

CONSOLE_USER = "console:local"
# How long a one-shot process keeps delivering at the platforms' pace (about one message per second
# per channel) before it exits, leaving the rest for `serve` or the next run.
DELIVERY_WAIT = 120.0
CONSOLE_WAIT = 30.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError("give between 0 and 86400 seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="config file (default: $STAGEBOT_CONFIG or ./stagebot.toml)"
    )
    p = argparse.ArgumentParser(
        prog="stagebot",
        description="Customer lifecycle stages, made explicit in Slack, Feishu and a local console.",
        parents=[common],
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    con = sub.add_parser("console", parents=[common], help="local chat on stdin/stdout (works piped)")
    con.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="act as a configured member: a people key (alice) or slack:U0ALICE",
    )
    con.add_argument("--lang", choices=["en", "zh"], help="reply language (default: [bot] language)")
    con.add_argument(
        "--wait",
        type=_seconds,
        default=CONSOLE_WAIT,
        metavar="SECONDS",
        help="on exit, deliver pending chat notifications for at most this long; the rest is left for "
        f"`stagebot serve` (default {CONSOLE_WAIT:g})",
    )
    sub.add_parser("serve", parents=[common], help="run the HTTP server, chat adapters, scheduler and dispatcher")
    sub.add_parser("check-config", parents=[common], help="validate config and pipeline; non-zero exit on any problem")
    db = sub.add_parser("db", parents=[common], help="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.add_parser("upgrade", parents=[common], help="apply schema migrations")
    jobs = sub.add_parser("jobs", parents=[common], help="scheduled work")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    run = jobs_sub.add_parser("run", parents=[common], help="run all due scheduled work once")
    run.add_argument("--now", help="ISO-8601 instant to run as (decides what is due; delivery is real time)")
    run.add_argument(
        "--wait",
        type=_seconds,
        default=DELIVERY_WAIT,
        metavar="SECONDS",
        help=f"deliver at the platforms' pace for at most this long before exiting (default {DELIVERY_WAIT:g})",
    )
    rep = sub.add_parser("report", parents=[common], help="funnel, conversion, time in stage, forecast")
    rep.add_argument("--format", choices=["text", "csv", "png"], default="text")
    rep.add_argument("--out", help="write to this file (required for png)")
    rep.add_argument("--since", metavar="YYYY-MM-DD", help="history from this day on")
    rep.add_argument("--until", metavar="YYYY-MM-DD", help="history before this day")
    rep.add_argument("--team", help="only the stages this team owns")
    rep.add_argument("--owner", metavar="USER", help="only this owner's accounts (slack:U…, feishu:ou_…)")
    rep.add_argument("--segment", help="only accounts in this segment")
    rep.add_argument("--lang", choices=["en", "zh"], help="labels (default: [bot] language)")
    imp = sub.add_parser(
        "import",
        parents=[common],
        help="import accounts from CSV (stagebot, HubSpot or Salesforce exports)",
        description="Validate the whole file, then apply it all or nothing. Reads UTF-8 (with or without "
        "a BOM), UTF-16 and GB18030; comma, semicolon or tab separated. Exit codes: 0 imported, "
        "1 row problems (nothing imported), 2 usage (no such file, unreadable).",
    )
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="say what would be created and changed; change nothing")
    imp.add_argument(
        "--force",
        action="store_true",
        help="apply stage changes the pipeline does not allow or that need an approval (recorded as forced)",
    )
    imp.add_argument(
        "--date-format",
        choices=["DMY", "MDY"],
        type=str.upper,
        help="how dates like 3/5/2026 are meant (day first or month first) when the file does not show it",
    )
    exp = sub.add_parser(
        "export",
        parents=[common],
        help="export accounts to CSV",
        description="Write every account as CSV (FILE - for standard output). Exit codes: 0 written, 2 usage.",
    )
    exp.add_argument("file")
    exp.add_argument("--excel", action="store_true", help="for Excel: a UTF-8 byte-order mark and CRLF line ends")
    exp.add_argument(
        "--format",
        choices=["stagebot", "hubspot", "salesforce"],
        default="stagebot",
        help="column names, and stage values as that CRM's (stages it has no value for keep their key)",
    )
    outbox = sub.add_parser("outbox", parents=[common], help="notifications waiting or failed")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", metavar="ACTION")
    retry = outbox_sub.add_parser(
        "retry", parents=[common], help="send again the notifications a platform refused for good (after a fix)"
    )
    retry.add_argument("--target", choices=["console", "slack", "feishu"], help="only this platform")
    pipe = sub.add_parser("pipeline", parents=[common], help="the pipeline")
    pipe_sub = pipe.add_subparsers(dest="pipeline_command", metavar="ACTION")
    show = pipe_sub.add_parser("show", parents=[common], help="the pipeline as a table and a Mermaid flowchart")
    show.add_argument("--format", choices=["all", "table", "mermaid"], default="all")
    return p


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return 2
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print("stagebot: the configuration has problems:", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    from bot import logs

    logs.configure(fmt=settings.log_format, level=settings.log_level, secrets=settings.secrets())
    cmd = args.command
    if cmd == "console":
        return _console(settings, args, stdin, out)
    if cmd == "check-config":
        return _check_config(settings, out)
    if cmd == "db":
        if args.db_command != "upgrade":
            parser.parse_args(["db", "--help"])
        return _db_upgrade(settings, out)
    if cmd == "serve":
        from bot.serve import serve

        return serve(settings)
    if cmd == "outbox":
        if args.outbox_command != "retry":
            parser.parse_args(["outbox", "--help"])
        return _outbox_retry(settings, args.target, out)
    if cmd == "jobs":
        if args.jobs_command != "run":
            parser.parse_args(["jobs", "--help"])
        return _jobs_run(settings, args.now, args.wait, out)
    if cmd == "pipeline":
        if args.pipeline_command != "show":
            parser.parse_args(["pipeline", "--help"])
        return _pipeline_show(settings.pipeline, args.format, out)
    if cmd == "import":
        return _import(settings, args, out)
    if cmd == "export":
        return _export(settings, args.file, out, fmt=args.format, excel=args.excel)
    if cmd == "report":
        return _report(settings, args, out)
    raise AssertionError(f"no handler for {cmd}")  # argparse only accepts the commands above


def _jobs_run(settings: Settings, now_text: str | None, wait: float, out: TextIO) -> int:
    """Run what is due as of now (or --now) once, deliver it, and exit: for cron, and any instant."""
    from adapters.console.console import ConsoleNotifier
    from bot.bootstrap import build
    from lifecycle.domain.clock import FixedClock
    from lifecycle.usecases.scheduling import run_due

    now = datetime.now(UTC)
    if now_text:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            print(
                f"stagebot jobs run: --now {now_text!r} is not an ISO-8601 instant (2026-12-01T09:30+08:00)",
                file=sys.stderr,
            )
            return 2
        if now.tzinfo is None:
            from zoneinfo import ZoneInfo

            now = now.replace(tzinfo=ZoneInfo(settings.config.scheduler.timezone))
    console = ConsoleNotifier(out, settings.pipeline, lang=settings.config.bot.language)
    # The instant decides what is due; delivery runs on the wall clock (build's default).
    app = build(settings, notifiers={console.target: console}, chats=True, clock=FixedClock(now))
    try:
        report = run_due(app.db, app.core.rules, settings.schedule(), now)
        if report.quiet:
            out.write(
                f"{now.isoformat()}: outside working hours ([scheduler] working_days / working_hours); nothing new\n"
            )
        else:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.emitted.items())) or "nothing new"
            out.write(f"{now.isoformat()}: emitted {kinds}; {report.already} already emitted before\n")
        return finish_delivery(app.dispatcher, wait, out, leaving="run `stagebot jobs run` again or start `serve`")
    finally:
        app.close()


def finish_delivery(dispatcher: Dispatcher, wait: float, out: TextIO, *, leaving: str) -> int:
    """Deliver what is pending at the platforms' pace for at most `wait` seconds, say what happened;
    1 when notifications are left pending or were refused for good, else 0."""
    progress = _Progress(out) if out.isatty() else None
    try:
        done = dispatcher.deliver_all(wait, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    r = done.report
    if r.delivered and (done.left or r.dead or progress is not None):
        out.write(f"delivered {r.delivered} notification{'s' * (r.delivered != 1)}\n")
    if r.dead:
        out.write(
            f"{r.dead} notification{'s were' if r.dead != 1 else ' was'} refused for good "
            "(`stagebot check-config` shows why; `stagebot outbox retry` sends again after a fix)\n"
        )
    if done.left:
        out.write(
            f"{done.left} notification{'s' * (done.left != 1)} still pending after {wait:g} s "
            f"(the platforms take about one message per second per channel): {leaving}\n"
        )
    return 1 if done.left or r.dead else 0


class _Progress:
    """One line on a terminal, rewritten as notifications go out."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.shown = False

    def __call__(self, report: DispatchReport, left: int) -> None:
        if left == 0 and not self.shown:
            return  # everything went at once: no progress line to show
        self.out.write(f"\rdelivering: {report.delivered} sent, {left} waiting for their channel's turn \x1b[K")
        self.out.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.out.write("\n")


def _report(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """`stagebot report`: the managers' figures as a text table, CSV or a PNG chart."""
    from adapters.common.errors import user_text
    from adapters.common.grammar import parse
    from adapters.common.text import report, report_csv
    from lifecycle.domain import commands as c
    from lifecycle.domain.access import Actor
    from lifecycle.domain.clock import SystemClock
    from lifecycle.domain.rules import Rules
    from lifecycle.read.reports import report as compute

    if args.format == "png" and not args.out:
        print("stagebot report: --format png needs --out FILE.png", file=sys.stderr)
        return 2
    lang = args.lang or settings.config.bot.language
    # The chat grammar's own `report` options, so dates and owners are read the same way everywhere.
    words = ["report"]
    for flag in ("since", "until", "team", "owner", "segment"):
        if getattr(args, flag):
            words += [f"--{flag}", getattr(args, flag)]
    try:
        query = parse(shlex.join(words), actor=Actor("console", "report"), key="cli:report", is_stage=lambda _: False)
    except Exception as exc:
        print(f"stagebot report: {user_text(exc)(lang)}", file=sys.stderr)
        return 2
    assert isinstance(query, c.ShowReport)
    db = _database(settings)
    try:
        rules = Rules(settings.pipeline, settings.roster(), targets=())
        figures = compute(query, uow=db.reader(), clock=SystemClock(), rules=rules)
    finally:
        db.dispose()
    body: str | bytes
    if args.format == "png":
        from adapters.common.charts import ChartsUnavailable, report_png

        try:
            body = report_png(figures, settings.pipeline, lang)
        except ChartsUnavailable as exc:
            print(f"stagebot report: cannot draw charts: {exc}", file=sys.stderr)
            return 2
    elif args.format == "csv":
        body = report_csv(figures, settings.pipeline)
    else:
        body = report(figures, settings.pipeline, lang) + "\n"
    if not args.out:
        out.write(str(body))
        return 0
    try:
        if isinstance(body, bytes):
            Path(args.out).write_bytes(body)
        else:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                f.write(body)
    except OSError as exc:
        print(f"stagebot report: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote the report to {args.out}", file=sys.stderr)
    return 0


MAX_PROBLEMS_SHOWN = 50


def _database(settings: Settings) -> Database:
    from lifecycle.db.engine import make_engine
    from lifecycle.db.migrate import upgrade
    from lifecycle.db.uow import Database

    engine = make_engine(settings.database_url)
    upgrade(engine)
    return Database(engine)


def owner_resolver(settings: Settings) -> Callable[[str], str | None]:
    """How an import turns an owner cell into a person reference: a people key, an email, a name or a
    platform ref of someone in the roster (stored as their canonical ref, as `assign` does). With no
    people and no teams configured, any `platform:id` is taken as written."""
    from lifecycle.usecases.transfer import platform_ref

    roster = settings.roster()
    if not roster.people and not any(roster.members.values()):
        return platform_ref

    def resolve(text: str) -> str | None:
        return roster.find(text, "slack")

    return resolve


def _import(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Validate the whole file, then apply it all or not at all; every bad row is reported."""
    from lifecycle.domain.access import Actor
    from lifecycle.domain.clock import SystemClock
    from lifecycle.domain.errors import LifecycleError
    from lifecycle.domain.rules import Rules
    from lifecycle.usecases.csv_text import Undecodable, decode
    from lifecycle.usecases.transfer import ImportRefused, RowProblem, import_accounts, read_rows

    path: str = args.file
    try:
        with open(path, "rb") as f:
            text, encoding = decode(f.read())
    except FileNotFoundError:
        print(f"stagebot import: no such file: {path}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"stagebot import: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Undecodable as exc:
        print(f"stagebot import: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    read = read_rows(
        text,
        settings.pipeline,
        stage_map=settings.config.import_.stage_map,
        owner_of=owner_resolver(settings),
        date_format=args.date_format,
    )
    read.encoding = encoding
    print(f"stagebot import: read {path} as {encoding}, {read.delimiter_name}-separated", file=sys.stderr)
    if read.ignored:
        print(f"stagebot import: ignoring unknown column(s): {', '.join(read.ignored)}", file=sys.stderr)

    def refuse(problems: list[RowProblem], *, would: bool = False) -> int:
        for prob in problems[:MAX_PROBLEMS_SHOWN]:
            print(prob, file=sys.stderr)
        more = f" (the first {MAX_PROBLEMS_SHOWN} are shown)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        done = "the import would change nothing" if would else "nothing was imported"
        print(f"stagebot import: {len(problems)} problem(s){more}; {done}", file=sys.stderr)
        return 1

    if read.problems and not args.dry_run:
        return refuse(read.problems)
    db = _database(settings)
    bar = _ProgressBar(len(read.rows), sys.stderr) if sys.stderr.isatty() and read.rows and not args.dry_run else None
    try:
        result = import_accounts(
            db,
            read.rows,
            actor=Actor("console", "import"),
            clock=SystemClock(),
            rules=Rules(settings.pipeline, settings.roster(), targets=()),
            force=args.force,
            dry_run=args.dry_run,
            progress=bar,
        )
    except ImportRefused as exc:
        return refuse(exc.problems)
    except LifecycleError as exc:  # e.g. someone changed an account while the file was applied
        print(f"stagebot import: {exc.text('en')} Nothing was imported.", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
        db.dispose()
    forced = f", {result.forced} forced" if result.forced else ""
    if args.dry_run:
        out.write(
            f"dry run of {path}, nothing was changed: would add {result.added}, update {result.updated}, "
            f"leave {result.unchanged} unchanged{forced}\n"
        )
        for change in result.changes:
            out.write(f"{change}\n")
        problems = sorted([*read.problems, *result.problems], key=lambda p: p.row)
        return refuse(problems, would=True) if problems else 0
    updated = [c for c in result.changes if not c.new]
    for change in updated[:MAX_PROBLEMS_SHOWN]:
        out.write(f"{change}\n")
    if len(updated) > MAX_PROBLEMS_SHOWN:
        out.write(f"... and {len(updated) - MAX_PROBLEMS_SHOWN:,} more changed rows (--dry-run lists them all)\n")
    out.write(
        f"imported {path}: {result.added} added, {result.updated} updated, {result.unchanged} unchanged{forced}\n"
    )
    return 0


def _export(settings: Settings, path: str, out: TextIO, *, fmt: str = "stagebot", excel: bool = False) -> int:
    from lifecycle.usecases.transfer import export_accounts

    db = _database(settings)
    try:
        if path == "-":
            n = export_accounts(db, out, fmt=fmt, pipeline=settings.pipeline, excel=excel)
            where = "standard output"
        else:
            try:
                with open(path, "w", encoding="utf-8", newline="") as f:
                    n = export_accounts(db, f, fmt=fmt, pipeline=settings.pipeline, excel=excel)
            except OSError as exc:
                print(f"stagebot export: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            where = path
    finally:
        db.dispose()
    print(f"exported {n} accounts to {where}", file=sys.stderr)
    return 0


class _ProgressBar:
    """`[#####     ] 52,000/100,000` redrawn in place on a terminal."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream

    def __call__(self, done: int) -> None:
        filled = self.WIDTH * done // self.total if self.total else self.WIDTH
        self.stream.write(f"\r[{'#' * filled}{' ' * (self.WIDTH - filled)}] {done:,}/{self.total:,}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _console(settings: Settings, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from adapters.console.console import Console, ConsoleNotifier
    from bot.bootstrap import build
    from lifecycle.domain.access import Actor

    lang = args.lang or settings.config.bot.language
    actor_ref = args.as_user or CONSOLE_USER
    if ":" not in actor_ref and actor_ref in settings.config.people:  # --as alice: a person of [people]
        actor_ref = settings.config.people[actor_ref].person(actor_ref).ref
    try:
        actor = Actor.parse(actor_ref)
    except ValueError as exc:
        print(f"stagebot console: --as {exc}", file=sys.stderr)
        return 2
    notifier = ConsoleNotifier(out, settings.pipeline, lang=lang)
    # With chat platforms enabled, what the console does is posted there too; on exit it keeps
    # delivering at the platforms' pace for up to --wait seconds and says what it leaves to `serve`.
    app = build(
        settings,
        notifiers={notifier.target: notifier},
        chats=True,
        extra_admins=(CONSOLE_USER,) if args.as_user is None else (),
    )
    try:
        if args.as_user is not None and not app.core.rules.roster.known(actor):
            print(f"stagebot console: {actor_ref} is not a member of any team in {settings.source}", file=sys.stderr)
            return 2
        console = Console(app.core, app.dispatcher, actor=actor, out=out, lang=lang)
        code = console.run(stdin, prompt=stdin.isatty())
        if app.dispatcher.notifiers.keys() - {notifier.target}:  # chat platforms: post what is still paced
            # What is left is said, not an error: the commands themselves all ran.
            finish_delivery(app.dispatcher, args.wait, out, leaving="`stagebot serve` delivers them")
        return code
    finally:
        app.close()


def _check_config(settings: Settings, out: TextIO) -> int:
    from lifecycle.db.engine import make_engine
    from lifecycle.db.migrate import current_revision, head_revision

    p = settings.pipeline
    out.write(f"config: {settings.source}\n")
    out.write(f"pipeline: {p.key} ({p.en}), {len(p.stages)} stages, {len(p.transitions)} transitions\n")
    teams = settings.config.teams
    out.write(f"teams configured: {', '.join(sorted(teams)) or 'none (console user only)'}\n")
    people = settings.people()
    if people:
        accounts = [f"{p.key} ({'+'.join(r.partition(':')[0] for r in p.refs) or 'no chat id'})" for p in people]
        out.write(f"people: {len(people)}: {', '.join(accounts)}\n")
    problems: list[str] = list(settings.channel_problems)
    current: str | None = None
    url, missing = readonly_url(settings.database_url)
    if missing is not None:
        out.write(
            f"database: {settings.database_url_safe} (note: database file {missing} does not exist yet: "
            "`stagebot db upgrade` or `console` creates it)\n"
        )
    else:
        engine = make_engine(url)
        try:
            current, head = current_revision(engine), head_revision(engine)
            state = (
                "up to date" if current == head else f"at {current or 'empty'}, head {head}: run `stagebot db upgrade`"
            )
            out.write(f"database: {settings.database_url_safe} (schema {state})\n")
        except Exception as exc:  # any driver error: report it, never a traceback
            problems.append(f"[database] cannot connect to {settings.database_url_safe}: {type(exc).__name__}")
        finally:
            engine.dispose()
    try:
        from lifecycle.db.uow import Database
        from lifecycle.delivery.outbox import delivery_problems

        engine = make_engine(url)
        for dp in delivery_problems(Database(engine), since=recent()) if current is not None else []:
            problems.append(
                f"[{dp.target}] {dp.count} notification(s) could not be delivered: {dp.error} "
                f"(last {dp.last_at:%Y-%m-%d %H:%M} UTC, within 7 days); fix the channel or token in the config, "
                "then `stagebot outbox retry`"
            )
        engine.dispose()
    except Exception:  # the database problem is reported above
        pass
    for w in settings.warnings:
        out.write(f"warning: {w}\n")
    for prob in problems:
        out.write(f"problem: {prob}\n")
    out.write("OK\n" if not problems else f"{len(problems)} problem(s)\n")
    return 1 if problems else 0


def readonly_url(url: str) -> tuple[str, str | None]:
    """The database URL check-config reads through, so that it changes nothing on disk, and the
    SQLite file it names if that does not exist (then nothing is opened: connecting would create it).

    A SQLite file is opened read-only (`mode=ro`); SQLite may still leave its `-wal`/`-shm` side
    files next to an existing database, as any reader of a WAL database does. Memory databases and
    PostgreSQL are returned as they are (reading the schema revision writes nothing there)."""
    u = make_url(url)
    db = u.database
    if u.get_backend_name() != "sqlite" or db in (None, "", ":memory:") or db.startswith("file:"):
        return url, None
    if not Path(db).exists():
        return url, db
    target = "file:" + quote(str(Path(db).resolve()))
    ro = u.set(database=target).update_query_dict({"mode": "ro", "uri": "true"})
    return ro.render_as_string(hide_password=False), None


def _outbox_retry(settings: Settings, target: str | None, out: TextIO) -> int:
    from lifecycle.db.engine import make_engine
    from lifecycle.db.uow import Database
    from lifecycle.delivery.outbox import requeue_dead

    engine = make_engine(settings.database_url)
    try:
        n = requeue_dead(Database(engine), datetime.now(UTC), target=target)
    finally:
        engine.dispose()
    out.write(f"{n} notification(s) queued again; a running `stagebot serve` delivers them\n")
    return 0


def recent() -> datetime:
    """Refused deliveries older than a week are assumed fixed or known; check-config skips them."""
    return datetime.now(UTC) - timedelta(days=7)


def _db_upgrade(settings: Settings, out: TextIO) -> int:
    from lifecycle.db.engine import make_engine
    from lifecycle.db.migrate import current_revision, upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        out.write(f"database {settings.database_url_safe} is at revision {current_revision(engine)}\n")
    finally:
        engine.dispose()
    return 0


def _pipeline_show(p: Pipeline, fmt: str, out: TextIO) -> int:
    from bot.pipeline_view import mermaid, table

    if fmt in ("all", "table"):
        out.write(table(p) + "\n")
    if fmt == "all":
        out.write("\n")
    if fmt in ("all", "mermaid"):
        out.write(mermaid(p) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
