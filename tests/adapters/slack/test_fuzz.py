"""Whatever a (correctly signed) request carries, /slack/events answers it without a 5xx."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapters.slack.conftest import SlackDriver
from tests.fakes.slack_requests import FORM, JSON, signed_headers

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Shapes close to what Slack sends, so the fuzzing reaches the listeners rather than bolt's routing.
payloads = st.fixed_dictionaries(
    {"type": st.sampled_from(["block_actions", "view_submission", "shortcut", "bogus"])},
    optional={
        "user": st.fixed_dictionaries({}, optional={"id": st.text(max_size=12)}) | json_values,
        "actions": st.lists(
            st.fixed_dictionaries(
                {"action_id": st.sampled_from(["stagebot:approve", "stagebot:reject", "stagebot:claim", "x"])},
                optional={"value": st.text(max_size=60) | json_values, "action_ts": st.text(max_size=12)},
            ),
            max_size=2,
        ),
        "response_url": st.just("RESPONSE_URL"),  # replaced by the fake's, so answers land somewhere
        "team": json_values,
    },
)
commands = st.fixed_dictionaries(
    {"command": st.sampled_from(["/stage", "/other"]), "text": st.text(max_size=200)},
    optional={"user_id": st.text(max_size=12), "trigger_id": st.text(max_size=12), "team_id": st.text(max_size=8)},
)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(["event_callback", "url_verification", "app_rate_limited", "bogus"])},
    optional={
        "event": st.fixed_dictionaries(
            {"type": st.sampled_from(["app_home_opened", "message", "bogus"])},
            optional={"user": st.text(max_size=12), "tab": st.sampled_from(["home", "messages"])},
        )
        | json_values,
        "event_id": st.text(max_size=12),
        "challenge": st.text(max_size=12),
        "team_id": st.text(max_size=8),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        payloads.map(lambda p: (urlencode({"payload": json.dumps(p)}), FORM)),
        commands.map(lambda c: (urlencode(c), FORM)),
        events.map(lambda e: (json.dumps(e), JSON)),
        st.text(max_size=300).map(lambda t: (t, FORM)),
    )
)
def test_signed_garbage_never_gets_a_5xx(slack: SlackDriver, body_and_type: tuple[str, str]) -> None:
    body, content_type = body_and_type
    body = body.replace("RESPONSE_URL", quote(slack.fake.response_url("fuzz"), safe=""))
    reply = slack.request("POST", "/slack/events", body, signed_headers(body, content_type=content_type))
    assert reply.status < 500, (reply.status, reply.body[:300])
    assert "Traceback" not in reply.body
