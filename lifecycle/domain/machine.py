"""The state machine as one pure function: may this account move to that stage, and how?

`decide` never touches the database; the services load the facts it needs and act on its answer.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from lifecycle.domain.access import Actor, Roster
from lifecycle.domain.errors import (
    AlreadyInStage,
    ChecklistIncomplete,
    LifecycleError,
    NotAuthorized,
    TransitionRefused,
)
from lifecycle.domain.i18n import Text
from lifecycle.domain.pipeline import ApprovalGate, Pipeline, Stage, Transition

Verdict = Literal["move", "approval", "refused"]


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    source: Stage
    target: Stage
    transition: Transition | None = None
    gate: ApprovalGate | None = None
    refusal: LifecycleError | None = None

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise self.refusal


def allowed_next(pipeline: Pipeline, source: str) -> list[str]:
    return [t.target for t in pipeline.next_stages(source)]


def refusal_for(pipeline: Pipeline, source: Stage, target: Stage) -> TransitionRefused:
    """The message for a move that is not in the pipeline, naming the moves that are."""
    allowed = allowed_next(pipeline, source.key)
    if allowed:
        en_list = ", ".join(pipeline.stage(k).title("en") for k in allowed)
        zh_list = "、".join(pipeline.stage(k).title("zh") for k in allowed)
        msg = Text(
            f"Cannot move from {source.title('en')} to {target.title('en')}. "
            f"From {source.key} you can move to: {en_list}.",
            f"不能从{source.title('zh')}推进到{target.title('zh')}。{source.key} 可以推进到:{zh_list}。",
        )
    else:
        msg = Text(
            f"{source.title('en')} is final: nothing moves out of it.",
            f"{source.title('zh')}是终态,不能再推进。",
        )
    return TransitionRefused(msg, allowed)


def decide(
    pipeline: Pipeline,
    *,
    current: str,
    target: str,
    ticked: Collection[str],
    actor: Actor,
    roster: Roster,
    account_name: str = "the account",
) -> Decision:
    """Whether `actor` may move an account from `current` to `target` now.

    Returns a Decision whose verdict is `move` (do it), `approval` (open an approval through
    `gate`) or `refused` (with `refusal`, a LifecycleError whose message says why and what is
    allowed instead). Order: same stage, pipeline edge, permission, checklist, approval gate.
    """
    src, dst = pipeline.stage(current), pipeline.stage(target)

    def refused(err: LifecycleError) -> Decision:
        return Decision("refused", src, dst, refusal=err)

    if src.key == dst.key:
        return refused(
            AlreadyInStage(
                Text(
                    f"{account_name} is already in {dst.title('en')}.",
                    f"{account_name} 已经处于{dst.title('zh')}。",
                )
            )
        )
    edge = pipeline.transition(src.key, dst.key)
    if edge is None:
        return refused(refusal_for(pipeline, src, dst))
    if not roster.in_any_team(actor, src.owners):
        owners_en, owners_zh = pipeline.owner_labels(src, "en"), pipeline.owner_labels(src, "zh")
        return refused(
            NotAuthorized(
                Text(
                    f"Only {owners_en} (the owners of {src.key}) or an admin can move {account_name}.",
                    f"只有{owners_zh}({src.key} 的负责团队)或管理员可以推进 {account_name}。",
                )
            )
        )
    if src.require_checklist:
        missing = [i for i in src.checklist if i.key not in ticked]
        if missing:
            en = "; ".join(f"{n}. {i.en}" for n, i in enumerate(src.checklist, 1) if i in missing)
            zh = ";".join(f"{n}. {i.zh}" for n, i in enumerate(src.checklist, 1) if i in missing)
            return refused(
                ChecklistIncomplete(
                    Text(
                        f"{src.key} must have its checklist done before {account_name} leaves it. Still open: {en}.",
                        f"离开 {src.key} 前需完成检查项。未完成:{zh}。",
                    ),
                    [i.key for i in missing],
                )
            )
    if edge.approval is not None:
        return Decision("approval", src, dst, transition=edge, gate=edge.approval)
    return Decision("move", src, dst, transition=edge)
