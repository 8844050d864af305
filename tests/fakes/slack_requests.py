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


def home_block_action(
    *,
    user: str,
    action_id: str,
    value: str,
    block_id: str = "b1",
    view_id: str = "V0HOME",
    action_ts: str | None = None,
) -> str:
    """A button pressed in the App Home tab, shaped as Slack sends it: the container is the view,
    the whole Home view comes along (`type: "home"`, its id and hash), and there is no channel,
    message or response_url (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "container": {"type": "view", "view_id": view_id},
        "trigger_id": f"{uuid.uuid4().int % 10**12}.x",
        "team": {"id": TEAM, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {
            "id": view_id,
            "team_id": TEAM,
            "type": "home",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "title": {"type": "plain_text", "text": "View Title", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": "A0APP",
            "external_id": "",
            "app_installed_team_id": TEAM,
            "bot_id": "B0BOT",
        },
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": "press", "emoji": True},
                "value": value,
                "action_ts": action_ts or f"{time.time():.6f}",
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
