"""`stagebot pipeline show`: the pipeline as a text table and as a Mermaid flowchart."""

from __future__ import annotations

from lifecycle.domain.pipeline import Pipeline


def table(p: Pipeline) -> str:
    header = ["key", "中文", "English", "owner teams", "SLA", "win %", "checklist", "moves to"]
    rows = []
    for s in p.stages:
        moves = []
        for t in p.next_stages(s.key):
            tag = f"{t.target}"
            if t.approval:
                tag += f" (approval: {t.approval.team}" + (
                    f", reject -> {t.approval.reject_to})" if t.approval.reject_to else ")"
                )
            elif t.kind != "advance":
                tag += f" ({t.kind})"
            moves.append(tag)
        checklist = f"{len(s.checklist)} items" + (" (required)" if s.require_checklist else "") if s.checklist else "-"
        rows.append(
            [
                s.key,
                s.zh,
                s.en,
                " + ".join(s.owners) or "-",
                f"{s.sla_days}d" if s.sla_days else "-",
                f"{s.win_probability * 100:.0f}",
                checklist,
                ", ".join(moves) or ("terminal" if s.terminal else "-"),
            ]
        )
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"{p.key}: {p.en} / {p.zh}", _row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    return "\n".join(lines)


def _width(s: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()


def mermaid(p: Pipeline) -> str:
    lines = ["```mermaid", "flowchart TD"]
    for s in p.stages:
        shape = ("{{", "}}") if any(t.approval for t in p.next_stages(s.key)) else ("[", "]")
        lines.append(f'    {s.key}{shape[0]}"{s.key}<br>{s.zh}<br>{s.en}"{shape[1]}')
    for t in p.transitions:
        label = ""
        if t.approval:
            label = f"approval: {t.approval.team}"
        elif t.kind != "advance":
            label = t.kind
        arrow = "-.->" if t.kind in ("back", "churn", "archive") else "-->"
        lines.append(f"    {t.source} {arrow}|{label}| {t.target}" if label else f"    {t.source} {arrow} {t.target}")
    lines.append("```")
    return "\n".join(lines)
