"""Signed Slack requests as Slack sends them: slash commands, button presses, Events API calls."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SECRET = "test-signing-secret"
TEAM = "T0TEAM"


def signed_headers(
    body: str, *, secret: str = SECRET, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": sig}


def slash_command(text: str, *, user: str, response_url: str, command: str = "/stage", channel: str = "C0ANY") -> str:
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:10]}",
        }
    )


def block_action(
    *, user: str, action_id: str, value: str, response_url: str, channel: str = "C0SALES", message_ts: str = "1.0"
) -> str:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{uuid.uuid4().int % 10**12}.x",
        "team": {"id": TEAM, "domain": "acme"},
        "channel": {"id": channel, "name": "sales"},
        "message": {"ts": message_ts, "text": "card"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "text": {"type": "plain_text", "text": "press"},
                "value": value,
                "action_ts": f"{time.time():.6f}{uuid.uuid4().hex[:4]}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def event_callback(event: dict[str, Any], *, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0APP",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
        }
    )


# The teams every Slack test uses: a member per team, one sales approver, a channel per team.
TEAMS_TOML = """\
[teams.marketing]
slack_channel = "C0MARKETING"
members = ["slack:U0MARY"]

[teams.sales]
slack_channel = "C0SALES"
members = ["slack:U0ALICE"]
approvers = ["slack:U0BOSS"]

[teams.cs]
slack_channel = "C0CS"
members = ["slack:U0CAROL"]

[teams.support]
slack_channel = "C0SUPPORT"
members = ["slack:U0DAVE"]
"""

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
