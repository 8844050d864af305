"""The report as a picture: a conversion funnel and time-in-stage bars, one PNG, zh or en labels.

matplotlib draws headless (Agg) and is imported only when a chart is asked for, so the console and
`stagebot serve` start without it. Chinese labels need a font with the glyphs, which a fresh
machine rarely has: the Noto Sans CJK SC face that the `mplfonts` package installs from PyPI is
used as the fallback after DejaVu Sans (Latin digits stay in DejaVu, 中文 falls through to Noto).
We locate the font file without importing `mplfonts` itself, whose import configures matplotlib
globally.
"""

from __future__ import annotations

import importlib.util
import io
import threading
from pathlib import Path
from typing import Any

from adapters.common.text import amount
from lifecycle.domain.i18n import Lang
from lifecycle.domain.pipeline import Pipeline
from lifecycle.domain.views import Report

CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"
CJK_FAMILY = "Noto Sans CJK SC"
LATIN_FAMILY = "DejaVu Sans"  # ships inside matplotlib itself
FAMILIES = [LATIN_FAMILY, CJK_FAMILY]
WIDTH_IN, HEIGHT_IN, DPI = 11.0, 6.2, 110  # 1210 x 682 px: readable in a chat preview without opening it
FUNNEL_COLOUR, BAR_COLOUR, BOTTLENECK_COLOUR, MUTED = "#3b6fb6", "#7aa6d8", "#d9534f", "#666666"

_setup = threading.Lock()
_ready = False
_draw = threading.Lock()  # pyplot's figure registry is not thread-safe; we avoid it, and serialise anyway


class ChartsUnavailable(RuntimeError):
    """matplotlib or the CJK font is missing from this installation."""


def cjk_font_path() -> Path:
    """The Noto Sans CJK SC font file installed by the `mplfonts` package."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise ChartsUnavailable("the mplfonts package (the Chinese font for charts) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / CJK_FONT_FILE
    if not path.is_file():
        raise ChartsUnavailable(f"the Chinese font {CJK_FONT_FILE} is missing from the mplfonts package")
    return path


def _prepare() -> Any:
    """Import matplotlib (Agg) and register the CJK font, once per process."""
    global _ready
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib import font_manager
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ChartsUnavailable("matplotlib is not installed") from exc
    with _setup:
        if not _ready:
            font_manager.fontManager.addfont(str(cjk_font_path()))
            _ready = True
    return matplotlib


def report_png(r: Report, p: Pipeline, lang: Lang = "en") -> bytes:
    """The report's funnel and time-in-stage chart as PNG bytes."""
    _prepare()
    from matplotlib.figure import Figure

    zh = lang == "zh"
    stages = [f for f in r.stages if not p.stage(f.stage).terminal]
    labels = [p.stage(f.stage).title(lang) for f in stages]  # short: `P2 Testing` / `P2 测试发送`
    with _draw:
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
        fig.set_facecolor("white")
        funnel, times = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.1, 1]})
        _funnel(funnel, stages, labels, zh)
        _time_in_stage(times, stages, r.bottleneck, zh)
        fig.suptitle(_title(r, zh), fontfamily=FAMILIES, fontsize=14, x=0.02, ha="left")
        fig.text(0.02, 0.015, _footer(r, zh), fontfamily=FAMILIES, fontsize=10, color=MUTED, ha="left")
        fig.subplots_adjust(left=0.15, right=0.98, top=0.86, bottom=0.13, wspace=0.08)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _funnel(ax: Any, stages: list[Any], labels: list[str], zh: bool) -> None:
    """Centred bars, widest at the top: entries per stage, with the conversion to the next stage."""
    entries = [f.entries for f in stages]
    top = max(entries, default=0) or 1
    ys = list(range(len(stages)))[::-1]
    ax.barh(ys, entries, left=[-(e / 2) for e in entries], color=FUNNEL_COLOUR, height=0.72)
    for y, f in zip(ys, stages, strict=True):
        conv = "" if f.conversion is None else f" · {f.conversion:.0%}"
        ax.text(f.entries / 2 + top * 0.02, y, f"{f.entries}{conv}", va="center", fontsize=9, fontfamily=FAMILIES)
    ax.set_yticks(ys, labels, fontfamily=FAMILIES, fontsize=10)
    ax.tick_params(axis="y", length=0)
    ax.set_xlim(-top * 0.52, top * 0.85)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title("漏斗:进入数 · 转化率" if zh else "Funnel: entries · conversion", fontfamily=FAMILIES, fontsize=12)


def _time_in_stage(ax: Any, stages: list[Any], bottleneck: str | None, zh: bool) -> None:
    """Median days per stage as bars, the average as a tick; the bottleneck in red."""
    ys = list(range(len(stages)))[::-1]
    medians = [f.median_days or 0.0 for f in stages]
    colours = [BOTTLENECK_COLOUR if f.stage == bottleneck else BAR_COLOUR for f in stages]
    ax.barh(ys, medians, color=colours, height=0.72)
    averages = [(y, f.avg_days) for y, f in zip(ys, stages, strict=True) if f.avg_days is not None]
    if averages:
        ax.scatter(
            [a for _, a in averages],
            [y for y, _ in averages],
            marker="|",
            s=260,
            color="black",
            label="平均" if zh else "average",
        )
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), prop={"family": FAMILIES, "size": 9}, frameon=False)
    longest = max([*medians, *(a for _, a in averages), 0.0]) or 1.0
    for y, f in zip(ys, stages, strict=True):
        if f.median_days is not None:
            ax.text(f.median_days + longest * 0.02, y, f"{f.median_days:.1f}", va="center", fontsize=9)
    ax.set_xlim(0, longest * 1.15)
    ax.tick_params(axis="y", length=0, labelleft=False)
    ax.set_xlabel("天" if zh else "days", fontfamily=FAMILIES)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        "停留时间:中位数(红色为瓶颈)" if zh else "Time in stage: median (bottleneck in red)",
        fontfamily=FAMILIES,
        fontsize=12,
    )


def _title(r: Report, zh: bool) -> str:
    if r.since or r.until:
        period = f"{r.since.date() if r.since else '…'} – {r.until.date() if r.until else '…'}"
    else:
        period = "全部时间" if zh else "all time"
    filters = [x for x in (r.team, r.owner and r.owner.split(":", 1)[-1], r.segment) if x]
    head = f"stagebot 报表 · {period}" if zh else f"stagebot report · {period}"
    return head + (f" · {' · '.join(filters)}" if filters else "")


def _footer(r: Report, zh: bool) -> str:
    if zh:
        return (
            f"加权预测 {amount(r.weighted_total)} · SQL + P0 金额 {amount(r.sql_p0_amount)} · "
            f"下季度到期续约 {r.renewals_next_quarter} 个 · 生成于 {r.generated_at:%Y-%m-%d %H:%M} UTC"
        )
    return (
        f"Weighted forecast {amount(r.weighted_total)} · SQL + P0 {amount(r.sql_p0_amount)} · "
        f"renewals next quarter {r.renewals_next_quarter} · generated {r.generated_at:%Y-%m-%d %H:%M} UTC"
    )
