"""Every Feishu card kind the bot sends stays within what Feishu accepts, whatever the customer typed.

Each test renders one kind over any Unicode (emoji, CJK, ``<&>``, quotes, RTL, control characters) up to the
core's maximum lengths (lifecycle: names 200, reasons 1000, task titles 300, owners 120), lists of hundreds and
40 approvers; builds the request body exactly as lark-oapi sends it (``content`` a JSON string inside the
create / reply / patch body, serialised by ``lark.JSON.marshal``); and judges it with the rule book the fake
Feishu uses (tests/fakes/feishu_card_rules.py). Per kind it records the examples run and the largest body;
`test_zz_summary` prints them (``pytest -s`` or ``-rP`` shows the table).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import lark_oapi as lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark_oapi.api.im.v1 import CreateMessageRequestBody, PatchMessageRequestBody, ReplyMessageRequestBody

from adapters.feishu import cards
from lifecycle.domain import events as ev
from lifecycle.domain.i18n import Text
from lifecycle.domain.limits import MAX_NAME, MAX_REASON
from lifecycle.domain.pipeline import load_preset
from lifecycle.domain.views import (
    AccountCard,
    AccountList,
    AccountView,
    ApprovalList,
    ApprovalView,
    ChecklistLine,
    ForecastLine,
    HandoffList,
    HandoffView,
    History,
    HistoryLine,
    Outcome,
    Report,
    StageFigures,
    TaskList,
    TaskView,
)
from lifecycle.usecases.tasks import MAX_TITLE
from lifecycle.usecases.transfer import MAX_LEN
from tests.fakes import feishu_card_rules as rules

PIPELINE = load_preset("default")
STAGES = [s.key for s in PIPELINE.stages]
TEAMS = [t.key for t in PIPELINE.teams]
CHAT = "oc_" + "a1b2c3d4" * 4  # a real chat id is "oc_" + 32 hex
UUID = "sb-" + "f" * 40  # the notifier's and the app's uuids are 43-46 characters
LIMIT = rules.CARD_BODY_LIMIT
EXAMPLES = 25
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=None,
)

STATS: dict[str, list[int]] = {}  # kind -> [examples, largest body in bytes]

# ---------------------------------------------------------------------------------------------------- strategies

# Characters that cost the most on the wire: 4-byte emoji (and a ZWJ family), 3-byte CJK, what JSON escapes
# twice over (a quote or backslash is 4 bytes once the card is a string in the body, a control character 7),
# HTML-ish and mention syntax, right-to-left text and marks, and a lone surrogate (JSON's "\\ud800" decodes to one).
HEAVY = ["😀", "👨", "\u200d", "中", "<", "&", ">", '"', "\\", "\x00", "\x1f", "\u202e", "ש", "ع", "\u200f", "\ud800"]
FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme, seven code points, 25 bytes
heavy_char = st.sampled_from(HEAVY)


def texts(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Any text up to `max_size` characters, often at the maximum and made of the costliest characters.

    Long texts repeat a short drawn pattern, so hypothesis can make hundreds of them per example.
    """
    piece = st.sampled_from([*HEAVY, FAMILY]) | st.characters()
    pattern = st.lists(piece, min_size=1, max_size=8).map("".join)
    length = st.just(max_size) | st.integers(max(min_size, 1), max_size)
    filled = st.builds(lambda p, k: (p * max_size)[:k], pattern, length)
    return st.one_of(st.text(min_size=min_size, max_size=min(max_size, 30)), filled)


def many(strategy: st.SearchStrategy[Any], most: int) -> st.SearchStrategy[list[Any]]:
    """Lists of any length up to `most`, often the longest: a few drawn items repeated to hundreds of rows."""
    count = st.integers(0, 12) | st.integers(most - 20, most) | st.just(most)
    return st.builds(
        lambda base, n: [base[i % len(base)] for i in range(n)], st.lists(strategy, min_size=1, max_size=6), count
    )


names = texts(MAX_NAME, min_size=1)
reasons = texts(MAX_REASON)
titles = texts(MAX_TITLE, min_size=1)
people = st.builds(lambda s: "feishu:" + s, texts(MAX_LEN["owner"] - len("feishu:"), min_size=1))
owners = st.none() | people
stages = st.sampled_from(STAGES)
teams = st.sampled_from(TEAMS)
ids = st.integers(1, 2**63 - 1)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC))
amounts = st.none() | st.decimals(min_value=0, max_value=Decimal("1e14") - 1, places=2, allow_nan=False)
approvers = st.lists(people, max_size=40)


@st.composite
def accounts(draw: st.DrawFn, stage: str | None = None) -> AccountView:
    return AccountView(
        id=draw(ids),
        name=draw(names),
        stage=stage or draw(stages),
        stage_entered_at=draw(moments),
        owner=draw(owners),
        amount=draw(amounts),
        segment=draw(st.none() | texts(MAX_LEN["segment"], min_size=1)),
    )


# ---------------------------------------------------------------------------------------------------- the check


def wire(kind: str, card: cards.Card, how: str = "create") -> None:
    """Sends `card` as lark-oapi would (create / reply / patch) and checks it with the fake's rule book."""
    content = cards.content(card)
    body: Any
    if how == "reply":
        body = ReplyMessageRequestBody.builder().msg_type("interactive").content(content)
        body = body.reply_in_thread(True).uuid("reply-" + "e" * 40).build()
    elif how == "patch":
        body = PatchMessageRequestBody.builder().content(content).build()
    else:
        body = CreateMessageRequestBody.builder().receive_id(CHAT).msg_type("interactive").content(content)
        body = body.uuid(UUID).build()
    size = len(lark.JSON.marshal(body).encode("utf-8"))
    refusal = rules.check_message("interactive", content, size, getattr(body, "uuid", None), patch=how == "patch")
    assert refusal is None, (kind, size, refusal)
    assert rules.element_count(card) <= rules.MAX_ELEMENTS
    stat = STATS.setdefault(kind, [0, 0])
    stat[0] += 1
    stat[1] = max(stat[1], size)


def langs() -> st.SearchStrategy[Any]:
    return st.sampled_from(["en", "zh"])


# ---------------------------------------------------------------------------------------------------- replies


@st.composite
def outcomes(draw: st.DrawFn) -> Outcome:
    kind = draw(
        st.sampled_from(
            [
                *("added", "moved", "approval_requested", "approved", "rejected", "assigned", "renewed"),
                *("claimed", "signal", "task_opened", "task_done", "snoozed", "ticked"),
            ]
        )
    )
    account = draw(accounts())
    item = draw(titles) if kind == "task_opened" else None
    return Outcome(
        kind=kind,
        account=account,
        from_stage=draw(stages),
        to_stage=draw(stages),
        approval_id=draw(ids),
        approval_team=draw(teams),
        handoff_ids=tuple(draw(st.lists(ids, max_size=3))),
        item=item,
        renewal=draw(st.sampled_from(["renewal", "expansion"])),
        ticked=tuple(draw(st.lists(texts(40), max_size=5))),
        task_id=draw(ids),
        until=draw(moments),
        replayed=draw(st.booleans()),
    )


@SETTINGS
@given(o=outcomes(), lang=langs())
def test_outcome_reply(o: Outcome, lang: Any) -> None:
    wire("reply: outcome", cards.reply(o, PIPELINE, lang), "reply")


@SETTINGS
@given(message=st.builds(Text, reasons, reasons), lang=langs())
def test_failure_reply(message: Text, lang: Any) -> None:
    wire("reply: failure", cards.error_card(message, lang), "reply")


@st.composite
def account_cards(draw: st.DrawFn) -> AccountCard:
    account = draw(accounts())
    checklist = tuple(
        ChecklistLine(
            number=n, key=f"k{n}", en=draw(titles), zh=draw(titles), done=draw(st.booleans()), by=draw(owners)
        )
        for n in range(1, draw(st.integers(0, 12)) + 1)
    )
    pending = None
    if draw(st.booleans()):
        pending = ApprovalView(
            id=draw(ids),
            account_id=account.id,
            account=account.name,
            from_stage=account.stage,
            to_stage=draw(stages),
            reject_to=None,
            team=draw(teams),
            status="pending",
            requested_by=draw(people),
            requested_at=draw(moments),
            reason=draw(reasons),
        )
    handoffs = tuple(
        HandoffView(
            id=draw(ids), account_id=account.id, stage=account.stage, to_team=draw(teams), opened_at=draw(moments)
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    return AccountCard(
        account=account,
        checklist=checklist,
        time_in_stage_seconds=draw(st.floats(0, 1e9)),
        sla_days=draw(st.none() | st.integers(1, 365)),
        overdue=draw(st.booleans()),
        pending_approval=pending,
        open_handoffs=handoffs,
        allowed_next=tuple(draw(st.lists(stages, max_size=5))),
    )


@SETTINGS
@given(cd=account_cards(), lang=langs())
def test_account_card_reply(cd: AccountCard, lang: Any) -> None:
    wire("reply: account card", cards.reply(cd, PIPELINE, lang), "reply")


@st.composite
def account_lists(draw: st.DrawFn) -> AccountList:
    rows = draw(many(accounts(), 400))
    filtered = draw(st.none() | stages)
    groups: dict[str, list[AccountView]] = {}
    for a in rows:
        groups.setdefault(filtered or a.stage, []).append(a)
    listed = len(rows)
    return AccountList(
        groups=tuple((k, tuple(v)) for k, v in groups.items()),
        total=listed + draw(st.integers(0, 5000)) if listed else 0,
        stage_filter=filtered,
        mine=draw(st.booleans()),
    )


@SETTINGS
@given(al=account_lists(), lang=langs())
def test_list_reply(al: AccountList, lang: Any) -> None:
    c = cards.reply(al, PIPELINE, lang)
    wire("reply: list", c, "reply")
    shown = c["body"]["elements"][0]["text"]["content"]
    rows = shown.count("\n• #") + shown.startswith("• #")
    if rows < al.total:  # a shortened list says how many more and which command narrows it
        more = shown.rsplit("\n", 1)[-1]
        assert str(al.total - rows) in more, more
        assert "`list " in more, more


@st.composite
def histories(draw: st.DrawFn) -> History:
    lines = draw(
        many(
            st.builds(
                HistoryLine,
                at=moments,
                actor=people,
                from_stage=st.none() | stages,
                to_stage=stages,
                kind=st.just("advance"),
                reason=reasons,
                via=st.sampled_from(["feishu", "slack", "console", "api"]),
            ),
            200,
        )
    )
    return History(account=draw(accounts()), lines=tuple(lines), truncated=draw(st.booleans()))


@SETTINGS
@given(h=histories(), lang=langs())
def test_history_reply(h: History, lang: Any) -> None:
    wire("reply: history", cards.reply(h, PIPELINE, lang), "reply")


@st.composite
def handoff_lists(draw: st.DrawFn) -> HandoffList:
    pairs = []
    for a in draw(many(accounts(), 300)):
        h = HandoffView(id=draw(ids), account_id=a.id, stage=a.stage, to_team=draw(teams), opened_at=draw(moments))
        pairs.append((a, h))
    return HandoffList(handoffs=tuple(pairs))


@SETTINGS
@given(hl=handoff_lists(), lang=langs())
def test_handoffs_reply(hl: HandoffList, lang: Any) -> None:
    wire("reply: handoffs", cards.reply(hl, PIPELINE, lang), "reply")


task_views = st.builds(
    TaskView,
    id=ids,
    account_id=ids,
    account=names,
    title_en=titles,
    title_zh=titles,
    team=st.none() | teams,
    assignee=owners,
    status=st.just("open"),
    opened_at=moments,
)


@SETTINGS
@given(tasks=many(task_views, 300), account=st.none() | names, lang=langs())
def test_tasks_reply(tasks: list[TaskView], account: str | None, lang: Any) -> None:
    c = cards.reply(TaskList(tasks=tuple(tasks), account=account), PIPELINE, lang)
    wire("reply: tasks", c, "reply")


approval_views = st.builds(
    ApprovalView,
    id=ids,
    account_id=ids,
    account=names,
    from_stage=stages,
    to_stage=stages,
    reject_to=st.none() | stages,
    team=teams,
    status=st.just("pending"),
    requested_by=people,
    requested_at=moments,
    reason=reasons,
)


@SETTINGS
@given(approvals=many(approval_views, 300), lang=langs())
def test_approvals_reply(approvals: list[ApprovalView], lang: Any) -> None:
    wire("reply: approvals", cards.reply(ApprovalList(approvals=tuple(approvals)), PIPELINE, lang), "reply")


@st.composite
def reports(draw: st.DrawFn) -> Report:
    figures = tuple(
        StageFigures(
            stage=k,
            entries=draw(st.integers(0, 10**9)),
            converted=draw(st.integers(0, 10**9)),
            conversion=draw(st.none() | st.floats(0, 1)),
            avg_days=draw(st.none() | st.floats(0, 1e5)),
            median_days=draw(st.none() | st.floats(0, 1e5)),
            in_stage_now=draw(st.integers(0, 10**9)),
        )
        for k in STAGES
    )
    money = st.decimals(min_value=0, max_value=Decimal("1e14") - 1, places=2, allow_nan=False)
    forecast = tuple(
        ForecastLine(
            stage=k, accounts=draw(st.integers(0, 10**9)), amount=draw(money), probability=0.5, weighted=draw(money)
        )
        for k in STAGES
    )
    return Report(
        since=draw(st.none() | moments),
        until=draw(st.none() | moments),
        team=draw(st.none() | texts(64, min_size=1)),
        owner=draw(owners),
        segment=draw(st.none() | texts(MAX_LEN["segment"], min_size=1)),
        stages=figures,
        bottleneck=draw(st.none() | stages),
        forecast=forecast,
        weighted_total=draw(money),
        sql_p0_amount=draw(money),
        renewals_next_quarter=draw(st.integers(0, 10**9)),
        renewals_next_quarter_amount=draw(money),
        generated_at=draw(moments),
    )


@SETTINGS
@given(r=reports(), image=st.none() | st.just("img_v3_0001_" + "0" * 36), lang=langs())
def test_report_card(r: Report, image: str | None, lang: Any) -> None:
    wire("report", cards.report_card(r, PIPELINE, lang, image_key=image), "reply")


# ---------------------------------------------------------------------------------------------------- notifications


def common(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "account_id": draw(ids),
        "account": draw(names),
        "at": draw(moments),
        "actor": draw(people),
        "audience": tuple(draw(st.lists(teams, max_size=3))),
    }


@st.composite
def stage_changes(draw: st.DrawFn) -> ev.StageChanged:
    return ev.StageChanged(
        **common(draw),
        from_stage=draw(stages),
        to_stage=draw(stages),
        transition=draw(st.sampled_from(["advance", "back", "churn", "winback", "archive"])),
        reason=draw(reasons),
        via="feishu",
        owner=draw(owners),
        approved_by=draw(owners),
    )


@st.composite
def approval_requests(draw: st.DrawFn) -> ev.ApprovalRequested:
    return ev.ApprovalRequested(
        **common(draw),
        approval_id=draw(ids),
        from_stage=draw(stages),
        to_stage=draw(stages),
        reject_to=draw(st.none() | stages),
        team=draw(teams),
        reason=draw(reasons),
        amount=draw(amounts),
        owner=draw(owners),
    )


@st.composite
def handoff_opens(draw: st.DrawFn) -> ev.HandoffOpened:
    return ev.HandoffOpened(
        **common(draw),
        handoff_id=draw(ids),
        stage=draw(stages),
        from_teams=tuple(draw(st.lists(teams, max_size=3))),
        to_team=draw(teams),
        owner=draw(owners),
        amount=draw(amounts),
        segment=draw(st.none() | texts(MAX_LEN["segment"], min_size=1)),
        contract_end=draw(st.none() | st.just("2027-06-30")),
    )


def notify(kind: str, e: ev.Event, lang: Any) -> None:
    wire(f"notification: {kind}", cards.notification(e, PIPELINE, lang))


@SETTINGS
@given(e=stage_changes(), lang=langs())
def test_stage_changed_notification(e: ev.StageChanged, lang: Any) -> None:
    notify("stage changed", e, lang)


@SETTINGS
@given(e=approval_requests(), lang=langs())
def test_approval_requested_notification(e: ev.ApprovalRequested, lang: Any) -> None:
    notify("approval requested", e, lang)


@SETTINGS
@given(requested=approval_requests(), note=reasons, decision=st.sampled_from(["approved", "rejected"]), lang=langs())
def test_approval_decided_update(requested: ev.ApprovalRequested, note: str, decision: Any, lang: Any) -> None:
    decided = ev.ApprovalDecided(
        account_id=requested.account_id,
        account=requested.account,
        at=requested.at,
        actor=requested.owner or requested.actor,
        approval_id=requested.approval_id,
        decision=decision,
        from_stage=requested.from_stage,
        to_stage=requested.to_stage,
        requested_by=requested.actor,
        note=note,
    )
    wire("update: approval decided", cards.decided(decided, PIPELINE, lang, requested=requested), "patch")


@SETTINGS
@given(e=handoff_opens(), lang=langs())
def test_handoff_opened_notification(e: ev.HandoffOpened, lang: Any) -> None:
    notify("handoff opened", e, lang)


@SETTINGS
@given(opened=handoff_opens(), by=people, lang=langs())
def test_handoff_taken_update(opened: ev.HandoffOpened, by: str, lang: Any) -> None:
    taken = ev.HandoffClaimed(
        account_id=opened.account_id,
        account=opened.account,
        at=opened.at,
        actor=by,
        handoff_id=opened.handoff_id,
        stage=opened.stage,
        to_team=opened.to_team,
    )
    wire("update: handoff taken", cards.claimed(taken, PIPELINE, lang, opened=opened), "patch")


@SETTINGS
@given(o=outcomes(), by=people, lang=langs())
def test_decision_card_in_the_callback(o: Outcome, by: str, lang: Any) -> None:
    # The card returned in a card-callback answer replaces the clicked one: Feishu holds it to 30 KB too.
    o = o.model_copy(update={"kind": "approved" if o.approval_id % 3 else "claimed"})
    wire("callback: decided card", cards.decision_from_outcome(o, PIPELINE, lang, by=by), "patch")


@st.composite
def sla_reminders(draw: st.DrawFn) -> ev.SlaReminder:
    return ev.SlaReminder(
        **common(draw),
        stage=draw(stages),
        entered_at=draw(moments),
        sla_days=draw(st.integers(1, 365)),
        days_in_stage=draw(st.integers(0, 100_000)),
        n=draw(st.integers(1, 10_000)),
        owner=draw(owners),
        escalate_to=tuple(draw(approvers)),
    )


@SETTINGS
@given(e=sla_reminders(), lang=langs())
def test_sla_reminder_notification(e: ev.SlaReminder, lang: Any) -> None:
    c = cards.notification(e, PIPELINE, lang)
    labels = [b["text"]["i18n_content"]["en_us"] for b in _buttons(c)]
    assert labels == ["Open card", "Snooze 1 day", "Snooze 1 week"]  # the snooze buttons survive fitting
    notify("SLA reminder", e, lang)


@st.composite
def renewals_due(draw: st.DrawFn) -> ev.RenewalDue:
    return ev.RenewalDue(
        **common(draw),
        stage=draw(stages),
        contract_end=draw(st.none() | st.just("2027-06-30")),
        days_left=draw(st.none() | st.integers(-10_000, 10_000)),
        owner=draw(owners),
    )


@SETTINGS
@given(e=renewals_due(), lang=langs())
def test_renewal_reminder_notification(e: ev.RenewalDue, lang: Any) -> None:
    notify("renewal reminder", e, lang)


@st.composite
def escalations(draw: st.DrawFn) -> ev.HandoffEscalated:
    return ev.HandoffEscalated(
        **common(draw),
        handoff_id=draw(ids),
        stage=draw(stages),
        to_team=draw(teams),
        opened_at=draw(moments),
        hours_open=draw(st.integers(0, 10**6)),
        escalate_to=tuple(draw(approvers)),
    )


@SETTINGS
@given(e=escalations(), lang=langs())
def test_handoff_escalation_notification(e: ev.HandoffEscalated, lang: Any) -> None:
    notify("handoff escalation", e, lang)


@st.composite
def churn_risks(draw: st.DrawFn) -> ev.ChurnRisk:
    return ev.ChurnRisk(
        **common(draw),
        stage=draw(stages),
        signal=draw(texts(64, min_size=1)),
        quiet_since=draw(moments),
        quiet_days=draw(st.integers(0, 10**5)),
        owner=draw(owners),
    )


@SETTINGS
@given(e=churn_risks(), lang=langs())
def test_churn_risk_notification(e: ev.ChurnRisk, lang: Any) -> None:
    notify("churn risk", e, lang)


@pytest.mark.parametrize("ch", ["\x00", "😀", '"', FAMILY])
def test_worst_case_notifications(ch: str) -> None:
    """Every field at the core's maximum, in the costliest characters, 40 approvers of the longest names."""
    name, reason, who = (ch * MAX_NAME)[:MAX_NAME], (ch * MAX_REASON)[:MAX_REASON], "feishu:" + ch * 113
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = {"account_id": 2**63 - 1, "account": name, "at": now, "actor": who, "audience": tuple(TEAMS)}
    big = Decimal("1e14") - Decimal("0.01")
    requested = ev.ApprovalRequested(
        **base,
        approval_id=2**63 - 1,
        from_stage="SQL",
        to_stage="P0",
        reject_to="SQL",
        team=TEAMS[0],
        reason=reason,
        amount=big,
        owner=who,
    )
    notify("approval requested", requested, "zh")
    decided = ev.ApprovalDecided(
        **base,
        approval_id=2**63 - 1,
        decision="rejected",
        from_stage="SQL",
        to_stage="P0",
        requested_by=who,
        note=reason,
    )
    wire("update: approval decided", cards.decided(decided, PIPELINE, "zh", requested=requested), "patch")
    notify(
        "stage changed",
        ev.StageChanged(**base, from_stage="SQL", to_stage="P0", transition="advance", reason=reason, owner=who),
        "en",
    )
    escalate = tuple([who] * 40)
    notify(
        "SLA reminder",
        ev.SlaReminder(
            **base,
            stage="SQL",
            entered_at=now,
            sla_days=3,
            days_in_stage=10**5,
            n=10**4,
            owner=who,
            escalate_to=escalate,
        ),
        "zh",
    )
    notify(
        "handoff escalation",
        ev.HandoffEscalated(
            **base,
            handoff_id=2**63 - 1,
            stage="P0",
            to_team=TEAMS[0],
            opened_at=now,
            hours_open=10**6,
            escalate_to=escalate,
        ),
        "en",
    )


def _buttons(c: cards.Card) -> list[dict[str, Any]]:
    return [
        b
        for el in c["body"]["elements"]
        if el["tag"] == "column_set"
        for col in el["columns"]
        for b in col["elements"]
        if b["tag"] == "button"
    ]


# ---------------------------------------------------------------------------------------------------- summary


def test_zz_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Per card kind: examples run and the largest request body, against Feishu's 30,720 bytes."""
    if not STATS:
        pytest.skip("run with the property tests above")
    lines = [f"{'card kind':34} {'examples':>8} {'largest body':>13} {'of 30,720':>9}"]
    for kind, (n, largest) in sorted(STATS.items()):
        lines.append(f"{kind:34} {n:>8} {largest:>13,} {largest / LIMIT:>9.0%}")
        assert largest <= LIMIT
    with capsys.disabled():
        print("\n" + "\n".join(lines))
