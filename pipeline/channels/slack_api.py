"""Slack's Web API, as far as a bot token posting and correcting messages needs it.

Every method is ``{api_url}/{method}`` with ``Authorization: Bearer {token}``. The HTTP
layer is ``pipeline.channels.http.request``: 429 (with ``Retry-After``) and 5xx are
temporary, a timeout is of unknown outcome, redirects are refused, and reasons are
redacted. Beyond that, Slack answers almost every failure with HTTP 200 and
``{"ok": false, "error": "not_in_channel"}``; ``call`` turns those into the same delivery
errors:

- ``ratelimited`` (Slack sends it with a 429, but a 200 is honoured too): temporary, after
  ``Retry-After``.
- ``internal_error``, ``fatal_error`` (Slack: "it's possible some aspect of the operation
  succeeded"), ``service_unavailable``, ``request_timeout``: temporary.
- anything else (``invalid_auth``, ``channel_not_found``, ``not_in_channel``,
  ``msg_too_long``, ``message_not_found``, …): permanent, with Slack's error code and, for a
  few, what a person can do about it.

JSON bodies are sent as UTF-8 with ``charset=utf-8`` (without it Slack adds a
``missing_charset`` warning to every answer); a reading method (``chat.getPermalink``)
takes its arguments in the query string of a GET.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from pipeline.channels.http import Redact, request, retry_after
from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.redact import Redactor
from pipeline.settings.channels import SLACK_API_URL

SERVICE = "Slack"

# Slack's own passing trouble: worth another try later.
_LATER = frozenset({"ratelimited", "service_unavailable", "request_timeout"})
_MAYBE_DONE = frozenset({"internal_error", "fatal_error"})  # temporary, perhaps done already

# What a person can do about a refusal, by Slack's error code.
_TOKEN = "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page"
HINTS = {
    "invalid_auth": f"the bot token is not valid; {_TOKEN}",
    "not_authed": f"no bot token was sent; {_TOKEN}",
    "token_revoked": f"the bot token was revoked; {_TOKEN}",
    "token_expired": f"the bot token has expired; {_TOKEN}",
    "account_inactive": "the app's bot or workspace was deactivated; reinstall the app",
    "missing_scope": "the bot token needs the chat:write scope; add it and reinstall the app",
    "channel_not_found": "check `channel`: the channel's id (C0123456789), and for a private "
    "channel invite the bot first",
    "not_in_channel": "invite the bot to the channel (/invite @your-app in Slack)",
    "is_archived": "the channel is archived; unarchive it or choose another",
    "msg_too_long": "the message is longer than Slack takes; shorten the channel template",
    "invalid_blocks": "Slack refused the message's blocks",
    "message_not_found": "the message is no longer in Slack (deleted by hand?)",
    "cant_update_message": "a bot can edit only its own messages",
    "cant_delete_message": "a bot can delete only its own messages",
}


@dataclass(frozen=True)
class SlackWebApi:
    """Calls on one bot token's behalf; the session and the redactor are the channel's."""

    http: requests.Session
    token: str = field(repr=False)  # a printed or logged client never shows it
    api_url: str = SLACK_API_URL
    timeout: float = 20
    redact: Redact | None = None

    def call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to ``method``; Slack's answer when ``ok``, else the
        delivery error it means."""
        response = request(
            self.http,
            "POST",
            f"{self.api_url}/{method}",
            service=SERVICE,
            timeout=self.timeout,
            redact=self.redact,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json; charset=utf-8",
            },
        )
        return self._answer(method, response)

    def get(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        """A reading method (``chat.getPermalink``), its arguments in the query string:
        the form those methods take (some refuse a JSON body)."""
        response = request(
            self.http,
            "GET",
            f"{self.api_url}/{method}",
            service=SERVICE,
            timeout=self.timeout,
            redact=self.redact,
            params=dict(params),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return self._answer(method, response)

    def _answer(self, method: str, response: requests.Response) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            # Slack did answer, but not in words we can read: whether a post was made is
            # unknown, so it is never sent again blindly.
            raise TemporaryFailure(
                f"{SERVICE} answered {response.status_code} to {method} without a Web API "
                "result; it may or may not have been done",
                unknown_outcome=True,
                status=response.status_code,
                response=response,
            )
        if answer["ok"]:
            return answer
        raise self._failure(method, answer, response)

    def _failure(
        self, method: str, answer: Mapping[str, Any], response: requests.Response
    ) -> TemporaryFailure | PermanentFailure:
        """The delivery error an ``ok: false`` answer means."""
        code = str(answer.get("error") or "unknown_error")
        words = f"{SERVICE} refused {method}: {code}"
        detail = _detail(answer)
        if detail:
            words += f" ({detail})"
        hint = HINTS.get(code)
        redact = self.redact or Redactor()
        reason = redact(f"{words} — {hint}" if hint else words)
        found: dict[str, Any] = {"status": response.status_code, "response": response}
        if code in _LATER:
            return TemporaryFailure(reason, retry_after=retry_after(response), **found)
        if code in _MAYBE_DONE:
            return TemporaryFailure(reason, unknown_outcome=True, **found)
        return PermanentFailure(reason, **found)


def _detail(answer: Mapping[str, Any]) -> str:
    """What Slack adds to an error: the scope it wanted, or the first of its messages
    (``invalid_blocks`` says which block, and why)."""
    if answer.get("needed"):
        return f"needs {answer['needed']}"
    metadata = answer.get("response_metadata")
    messages = metadata.get("messages") if isinstance(metadata, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], str):
        first = messages[0]
        return first if len(first) <= 200 else first[:199] + "…"
    return ""


def error_code(failure: DeliveryFailed) -> str | None:
    """Slack's error code behind a failure (``message_not_found``), if it gave one."""
    try:
        answer = failure.response.json() if failure.response is not None else None
    except ValueError:
        return None
    code = answer.get("error") if isinstance(answer, dict) else None
    return code if isinstance(code, str) else None
