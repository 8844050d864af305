"""Process start-up time and memory of stagebot with Feishu disabled vs. enabled: what `lark_oapi` costs.

    python -m bench.bench_startup [--runs 5] [--timeout 60] [--stagebot PATH]

The Feishu adapter imports `lark_oapi` only when `[feishu] enabled = true` (importing it costs
seconds and 100+ MB). This measures, with real child processes and in the same run:

* `stagebot serve --config X` with (a) no chat platform, (b) Slack enabled (dummy SLACK_BOT_TOKEN /
  SLACK_SIGNING_SECRET, `[slack] api_url` = a `FakeSlack` on 127.0.0.1 in this process, which
  records whether anything is called), (c) Feishu enabled in webhook mode (dummy FEISHU_* secrets,
  `[feishu] domain` = a `FakeFeishu` on 127.0.0.1 in this process). `[server] port = 0`; the port is
  read from the server's "stagebot serving on http://127.0.0.1:PORT" log line on stderr. Start-up
  is the time from spawning the process until `GET /healthz` answers 200 (polled every 5 ms). Memory
  is the server's VmRSS and VmHWM (peak RSS) from /proc/PID/status once healthy. Then SIGTERM, and
  the exit code must be 0.
* `echo help | stagebot console --config X`, end to end (spawn to exit), with no chat platform,
  Slack enabled and Feishu enabled (as above). The console builds the notifiers of every enabled
  chat platform (`bot.bootstrap.chat_notifiers`), so with Feishu enabled it builds the lark-oapi client
  and pays the import too. Memory: the peak RSS of the exited process (`wait4` ru_maxrss); RSS at
  exit is not observable ("-").
* The floor: `python -c pass`, and `python -c "import lark_oapi"` (the child also times its own
  import with perf_counter, reported as the in-process import cost), same interpreter; peak RSS
  from `wait4`.

Each scenario has its own temp dir, config and SQLite database. Before timing, every stagebot
scenario runs once untimed (this migrates its database, so the timed runs are restarts against an
existing database, and warms the page cache) under an import watch: a `sys.meta_path` hook that
records the call stack at the first import of `lark_oapi`. The table says whether a scenario
imported it; a scenario without Feishu that does is a bug, and its import chain is printed. The
timed runs are interleaved (round i runs every scenario once, alternating the order) so that drift
hits all scenarios alike. Child processes get the caller's environment without any STAGEBOT_*,
SLACK_* and FEISHU_* variables, plus the scenario's own. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.common import CPUS, parser
from tests import healthz
from tests.fakes.feishu_api import FakeFeishu
from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parent.parent

PORT_LINE = re.compile(rb"stagebot serving on http://127\.0\.0\.1:(\d+) ")
MARK_BEGIN, MARK_END = "BENCH-LARK-IMPORT-BEGIN", "BENCH-LARK-IMPORT-END"
POLL_S = 0.005
STOP_TIMEOUT_S = 20.0

SLACK_ENV = {"SLACK_BOT_TOKEN": "xoxb-bench-startup", "SLACK_SIGNING_SECRET": "bench-signing-secret"}
FEISHU_ENV = {
    "FEISHU_APP_ID": "cli_benchstartup",
    "FEISHU_APP_SECRET": "bench-app-secret",
    "FEISHU_VERIFICATION_TOKEN": "bench-verification-token",
    "FEISHU_ENCRYPT_KEY": "bench-encrypt-key",
}

# Runs stagebot's entry point (as the `stagebot` script does) with a hook that records the call stack
# at the first import of lark_oapi, between two marker lines on stderr.
WATCH = f"""\
import sys, traceback

class _Watch:
    seen = False

    def find_spec(self, name, path=None, target=None):
        if name == "lark_oapi" and not _Watch.seen:
            _Watch.seen = True
            frames = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith("<")]
            lines = "".join(f"{{f.filename}}:{{f.lineno}} in {{f.name}}: {{f.line}}\\n" for f in frames)
            sys.stderr.write("{MARK_BEGIN}\\n" + lines + "{MARK_END}\\n")
            sys.stderr.flush()
        return None

sys.meta_path.insert(0, _Watch())
from bot.cli import main
sys.argv[0] = "stagebot"
sys.exit(main())
"""
LARK_IMPORT = "import time; t = time.perf_counter(); import lark_oapi; print(f'IMPORT_S {time.perf_counter() - t:.6f}')"


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- child processes

LIVE: set[subprocess.Popen[bytes]] = set()  # every child not yet reaped, for the last-resort cleanup


def spawn(argv: list[str], env: dict[str, str], cwd: Path, **kw: Any) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(argv, env=env, cwd=cwd, **kw)
    LIVE.add(p)
    return p


def reap(p: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any]:
    """Waits for `p` (at most `timeout` s, then SIGKILL) and returns (exit code, its rusage from wait4)."""
    deadline = time.monotonic() + timeout
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(p.pid)
    try:
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped
                LIVE.discard(p)
                return p.returncode, ru
            left = deadline - time.monotonic()
            if left <= 0:
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                LIVE.discard(p)
                raise BenchError(f"{p.args[0]} ... did not exit within {timeout:g} s: killed")
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(POLL_S, left))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def stop(p: subprocess.Popen[bytes]) -> None:
    """Last resort (errors, Ctrl-C): SIGTERM, a bounded wait, then SIGKILL."""
    if p.returncode is not None:
        LIVE.discard(p)
        return
    with contextlib.suppress(ProcessLookupError):
        p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        p.wait(timeout=5)
    LIVE.discard(p)


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0])
    return out


def tail(text: str, n: int = 12) -> str:
    return "\n".join("    " + s for s in text.strip().splitlines()[-n:])


# ---------------------------------------------------------------- one run


@dataclass
class Sample:
    seconds: float
    rss_kb: int | None
    peak_kb: int
    import_s: float | None = None
    stderr: str = ""


def run_serve(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Sample:
    """Spawn to `GET /healthz` 200; memory from /proc once healthy; then SIGTERM and exit code 0."""
    lines: list[bytes] = []
    port: list[int] = []
    seen_port = threading.Event()

    def read_stderr(stream: IO[bytes]) -> None:
        for line in stream:
            lines.append(line)
            m = PORT_LINE.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                seen_port.set()

    def stderr_text() -> str:
        return b"".join(lines).decode(errors="replace")

    t0 = time.perf_counter()
    p = spawn(argv, env, cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reader = threading.Thread(target=read_stderr, args=(p.stderr,), name="serve-stderr", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not seen_port.wait(POLL_S):
            if p.poll() is not None:
                reader.join(5)
                raise BenchError(f"serve exited with {p.returncode} before serving:\n{tail(stderr_text())}")
            if time.monotonic() > deadline:
                raise BenchError(f"serve did not log its port within {timeout:g} s:\n{tail(stderr_text())}")
        while (why := healthz.probe(port[0], timeout=2)) is not None:
            if p.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"serve never answered GET /healthz 200 ({why}):\n{tail(stderr_text())}")
            time.sleep(POLL_S)
        seconds = time.perf_counter() - t0
        mem = status_kb(p.pid)
        p.send_signal(signal.SIGTERM)
        code, _ = reap(p, STOP_TIMEOUT_S)
        reader.join(5)
        if code != 0:
            raise BenchError(f"serve exited with {code} after SIGTERM:\n{tail(stderr_text())}")
        return Sample(seconds, mem["VmRSS"], mem["VmHWM"], stderr=stderr_text())
    finally:
        stop(p)
        reader.join(5)


def run_to_exit(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float, stdin: bytes = b"", expect: str = ""
) -> Sample:
    """Spawn to exit (stdin fed from a file, like `echo help |`); peak RSS from wait4."""
    feed, out, err = cwd / "stdin.txt", cwd / "stdout.txt", cwd / "stderr.txt"
    feed.write_bytes(stdin)
    with feed.open("rb") as fin, out.open("wb") as fout, err.open("wb") as ferr:
        t0 = time.perf_counter()
        p = spawn(argv, env, cwd, stdin=fin, stdout=fout, stderr=ferr)
        try:
            code, ru = reap(p, timeout)
            seconds = time.perf_counter() - t0
        finally:
            stop(p)
    stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    if code != 0 or expect not in stdout:
        raise BenchError(f"{' '.join(argv[:3])} ... exited with {code}:\n{tail(stdout)}\n{tail(stderr)}")
    m = re.search(r"IMPORT_S ([\d.]+)", stdout)
    return Sample(seconds, None, ru.ru_maxrss, float(m.group(1)) if m else None, stderr=stderr)


# ---------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    kind: str  # "serve", "console" or "python"
    command: str  # as shown in the table
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    feishu: bool = False  # expected to import lark_oapi
    samples: list[Sample] = field(default_factory=list)
    watched: bool | None = None  # imported lark_oapi in the watched run (None: not watched)
    chain: list[str] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # calls to the fake platform APIs, timed runs

    def run(self, timeout: float, argv: list[str] | None = None) -> Sample:
        argv = argv or self.argv
        if self.kind == "serve":
            return run_serve(argv, self.env, self.cwd, timeout)
        if self.kind == "console":
            return run_to_exit(argv, self.env, self.cwd, timeout, stdin=b"help\n", expect="Commands")
        return run_to_exit(argv, self.env, self.cwd, timeout)

    def watch(self, timeout: float) -> None:
        """One untimed run under the import watch (also migrates the database and warms caches)."""
        cmd = self.argv[1:]  # drop the stagebot script: run its entry point under the watch instead
        s = self.run(timeout, [sys.executable, "-c", WATCH, *cmd])
        text = s.stderr
        self.watched = MARK_BEGIN in text
        if self.watched:
            block = text.split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0]
            self.chain = [shorten(x) for x in block.strip().splitlines()]


def shorten(frame: str) -> str:
    return frame.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "<venv>/")


CONFIG = """\
[database]
url = "sqlite:///{db}"

[server]
host = "127.0.0.1"
port = 0
"""


def scenarios(base: Path, stagebot: str, slack_api: str, feishu_url: str) -> list[Scenario]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STAGEBOT_", "SLACK_", "FEISHU_"))}
    platforms = {
        "none": ("", {}),
        "slack": (f'\n[slack]\nenabled = true\napi_url = "{slack_api}"\n', SLACK_ENV),
        "feishu": (f'\n[feishu]\nenabled = true\nmode = "webhook"\ndomain = "{feishu_url}"\n', FEISHU_ENV),
    }
    label = {"none": "no chat platform", "slack": "Slack enabled", "feishu": "Feishu enabled (webhook)"}
    out = []
    for kind in ("serve", "console"):
        for plat, (extra, env) in platforms.items():
            d = base / f"{kind}-{plat}"
            d.mkdir()
            (d / "stagebot.toml").write_text(CONFIG.format(db=d / "stagebot.db") + extra)
            argv = [stagebot, kind, "--config", str(d / "stagebot.toml")]
            cmd = f"stagebot {kind}" if kind == "serve" else "echo help | stagebot console"
            out.append(Scenario(f"{kind}: {label[plat]}", kind, cmd, argv, {**clean, **env}, d, plat == "feishu"))
    for name, code, cmd in (
        ("python: bare interpreter", "pass", "python -c pass"),
        ("python: import lark_oapi", LARK_IMPORT, 'python -c "import lark_oapi"'),
    ):
        d = base / name.split()[-1]
        d.mkdir()
        out.append(Scenario(name, "python", cmd, [sys.executable, "-c", code], clean, d, "lark" in name))
    return out


# ---------------------------------------------------------------- report


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def mib(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def report(scs: list[Scenario], args: argparse.Namespace) -> list[str]:
    """Prints the table; returns the problems (lark_oapi imported where Feishu is off)."""
    from importlib.metadata import version

    by = {s.name: s for s in scs}
    print()
    print("## stagebot start-up: Feishu disabled vs. enabled")
    print()
    print(
        f"{args.runs} runs per scenario, interleaved; median and min-max. Python {platform.python_version()}, "
        f"lark-oapi {version('lark-oapi')}, slack-bolt {version('slack_bolt')}, {CPUS} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at the end. Memory in MiB: serve's VmRSS / VmHWM once "
        "healthy; for processes run to exit, the peak RSS from wait4."
    )
    print()
    print("| scenario | command | start-up median s | min-max s | RSS MiB | peak MiB | imports lark_oapi |")
    print("|---|---|---:|---:|---:|---:|---|")
    for s in scs:
        secs = [x.seconds for x in s.samples]
        rss = [x.rss_kb for x in s.samples if x.rss_kb is not None]
        peak = [x.peak_kb for x in s.samples]
        imports = "yes" if s.kind == "python" and s.feishu else "no" if s.kind == "python" else "-"
        if s.watched is not None:
            imports = "yes" if s.watched else "no"
            if s.watched and not s.feishu:
                imports = "**yes (bug)**"
        print(
            f"| {s.name} | `{s.command}` | {med(secs):.3f} | {min(secs):.3f}-{max(secs):.3f} "
            f"| {mib(med(rss)) if rss else '-'} | {mib(med(peak))} | {imports} |"
        )
    print()

    def ratio(a: str, b: str) -> str:
        x, y = by[a], by[b]
        t = med([s.seconds for s in x.samples]) / med([s.seconds for s in y.samples])
        px, py = med([s.peak_kb for s in x.samples]), med([s.peak_kb for s in y.samples])
        line = f"{t:.2f}x start-up, peak {px / py:.2f}x (+{(px - py) / 1024:.0f} MiB)"
        rx = [s.rss_kb for s in x.samples if s.rss_kb is not None]
        ry = [s.rss_kb for s in y.samples if s.rss_kb is not None]
        if rx and ry:
            line += f", RSS {med(rx) / med(ry):.2f}x (+{(med(rx) - med(ry)) / 1024:.0f} MiB)"
        return line

    for kind in ("serve", "console"):
        for plat in ("Feishu enabled (webhook)", "Slack enabled"):
            print(f"- {kind}, {plat} / no chat platform: {ratio(f'{kind}: {plat}', f'{kind}: no chat platform')}")
    bare, lark = by["python: bare interpreter"], by["python: import lark_oapi"]
    in_proc = [x.import_s for x in lark.samples if x.import_s is not None]
    d_t = med([x.seconds for x in lark.samples]) - med([x.seconds for x in bare.samples])
    d_m = (med([x.peak_kb for x in lark.samples]) - med([x.peak_kb for x in bare.samples])) / 1024
    print(
        f"- `import lark_oapi` alone: {med(in_proc):.3f} s in-process "
        f"(min {min(in_proc):.3f}, max {max(in_proc):.3f}), "
        f"{d_t:.3f} s and +{d_m:.0f} MiB peak over the bare interpreter"
    )
    lark_exit = med([x.seconds for x in lark.samples]) - med([x.seconds for x in bare.samples]) - med(in_proc)
    print(
        f"  (the remaining {lark_exit:.3f} s is mostly interpreter shutdown with lark_oapi loaded; a console run "
        "pays it on exit; serve's start-up time does not include it)"
    )
    used = [
        f"{s.name}: " + ", ".join(f"{k} {v / args.runs:g}" for k, v in sorted(s.calls.items())) for s in scs if s.calls
    ]
    print(
        "- calls to the fake Slack / Feishu APIs per timed run (spawn to exit): "
        + ("; ".join(used) if used else "none")
        + "; no other scenario called them"
    )
    print()
    problems = []
    for s in scs:
        if s.watched and not s.feishu:
            problems.append(s.name)
            print(f"BUG: {s.name} imports lark_oapi although Feishu is disabled. Import chain (outermost first):")
        elif s.watched:
            print(f"{s.name}: lark_oapi is imported via (outermost first):")
        else:
            continue
        for frame in s.chain:
            print(f"    {frame}")
        print()
    return problems


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per scenario (default 5)")
    ap.add_argument("--timeout", type=float, default=60.0, help="max seconds for one start-up or run (default 60)")
    default_bin = Path(sys.executable).parent / "stagebot"
    ap.add_argument(
        "--stagebot",
        default=str(default_bin) if default_bin.exists() else shutil.which("stagebot"),
        help="the stagebot script (default: next to this Python, else on PATH)",
    )
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if not args.stagebot:
        ap.error("no stagebot script found; install the project or pass --stagebot")

    # SIGTERM unwinds like Ctrl-C, so the finally below stops the children and removes the temp dir.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    tmp = Path(tempfile.mkdtemp(prefix="stagebot-bench-startup-"))
    slack, feishu = FakeSlack(), FakeFeishu()
    try:
        scs = scenarios(tmp, args.stagebot, slack.base_url, feishu.url)
        for s in scs:
            if s.kind != "python":
                print(f"[watch] {s.name} (untimed, import watch) ...", flush=True)
                s.watch(args.timeout)
        for i in range(args.runs):
            order = scs if i % 2 == 0 else scs[::-1]
            t0 = time.perf_counter()
            for s in order:
                n_slack, n_feishu = len(slack.calls), len(feishu.calls)
                s.samples.append(s.run(args.timeout))
                s.calls.update(f"slack {c.method}" for c in slack.calls[n_slack:])
                s.calls.update(f"feishu {c.kind}" for c in feishu.calls[n_feishu:])
            print(f"[round {i + 1}/{args.runs}] {time.perf_counter() - t0:.1f} s", flush=True)
        problems = report(scs, args)
    except BenchError as exc:
        print(f"bench_startup: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_startup: interrupted; stopping the child processes", file=sys.stderr)
        return 130
    finally:
        for p in list(LIVE):
            stop(p)
        slack.close()
        feishu.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
