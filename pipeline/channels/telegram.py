"""Telegram: one message per article in a chat or channel, sent by a bot.

The Bot API contract this follows (https://core.telegram.org/bots/api):

- ``POST {api_url}/bot{token}/sendMessage`` with a JSON body. Telegram answers
  ``{"ok": true, "result": Message}`` or ``{"ok": false, "error_code": …, "description":
  …, "parameters": {"retry_after": …}}``; a 429 is retried after ``retry_after`` seconds.
- ``parse_mode: "HTML"``: only Telegram's own tags are markup, and every ``<``, ``>`` and
  ``&`` in the text must be an entity. The template is rendered with autoescape, so titles
  and summaries arrive escaped while the template's ``<b>``/``<a>`` stay tags.
- ``text`` may be 1–4096 characters *after entities parsing*, counted in UTF-16 code units
  (as message entities are): tags do not count, ``&amp;`` is one unit, an emoji outside
  the BMP two. Telegram has no ``<br>``: line breaks count as written, so the text is not
  whitespace-collapsed before counting (``html_to_text`` would, and undercount).
- ``link_preview_options.url`` names the article, so the preview is the article's page
  even if a summary contains another link (``prefer_large_media`` needs that explicit URL).

The bot token is part of the URL, and requests puts URLs into its exception messages; so
no failure raised here chains the requests exception, and every reason is scrubbed.
Telegram has no idempotency key: a send of unknown fate is never repeated.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import requests

from pipeline.channels import ChannelContext, Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import utf16_units
from pipeline.channels.http import request
from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.model import Article
from pipeline.settings.channels import TelegramOptions

LIMIT = 4096  # sendMessage: "1-4096 characters after entities parsing"
SUPPORTED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler"}
    | {"a", "tg-emoji", "code", "pre", "blockquote"}
)


_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)[^>]*>")
_NUMERIC_CHAT = re.compile(r"^-?\d+$")


def visible_text(message: str) -> str:
    """What a reader sees of an HTML-mode message: tags gone, entities decoded, every
    space and line break kept."""
    return html.unescape(_TAG.sub("", message))


def telegram_length(message: str) -> int:
    """The length Telegram checks against 4096: UTF-16 units of the visible text."""
    return utf16_units(visible_text(message))


class TelegramChannel(ChannelBase[TelegramOptions]):
    options_model = TelegramOptions
    dedupe_window: dt.timedelta | None = None  # sendMessage takes no idempotency key
    corrections = frozenset({"edit", "delete"})

    autoescape = True  # the template is Telegram HTML; title and summary are escaped

    def __init__(self, name: str, options: TelegramOptions, context: ChannelContext):
        super().__init__(name, options, context)
        self._bot = f"{options.api_url}/bot{options.bot_token}"

    def prepare(self, article: Article) -> Post:
        message = self.text(article, limit=LIMIT, measure=telegram_length)
        unsupported = sorted({m[1].lower() for m in _TAG.finditer(message)} - SUPPORTED_TAGS)
        if unsupported:
            raise PermanentFailure(
                f"template {self.template.name} uses <{'>, <'.join(unsupported)}>, which "
                "Telegram does not support; use b, i, u, s, a, code, pre or blockquote"
            )
        shown = visible_text(message)
        if not shown.strip():
            raise PermanentFailure(f"template {self.template.name} renders an empty message")
        preview: dict[str, Any] = {"url": article.url}
        if article.image:  # the page has a lead image: show it large
            preview["prefer_large_media"] = True
        body = {
            "chat_id": _chat_id(self.options.chat_id),
            "text": message,
            "parse_mode": "HTML",
            "link_preview_options": preview,
        }
        return Post(article, shown, utf16_units(shown), LIMIT, body)

    def send(self, post: Post, key: str) -> Receipt:
        outcome = self._post(dict(post.body))
        if isinstance(outcome, DeliveryFailed):
            raise outcome  # raised outside the handler: no chained exception shows the URL
        return self._receipt(outcome)

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """``editMessageText`` with the new text; "message is not modified" (a repeat
        of an edit that arrived) counts as done."""
        body = {k: v for k, v in post.body.items() if k != "chat_id"}
        body.update(chat_id=_chat_id(self.options.chat_id), message_id=int(posted.remote_id or 0))
        self._done_unless(self._post(body, "editMessageText"), "message is not modified")
        return posted

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """``deleteMessage``; a message already gone counts as done."""
        body = {"chat_id": _chat_id(self.options.chat_id), "message_id": int(posted.remote_id or 0)}
        self._done_unless(self._post(body, "deleteMessage"), "message to delete not found")
        return posted

    def _done_unless(self, outcome: requests.Response | DeliveryFailed, done: str) -> None:
        """Raise a failure, unless Telegram's reason says the change is already made."""
        if isinstance(outcome, DeliveryFailed) and done not in outcome.reason:
            raise outcome  # outside the handler: no chained exception shows the URL

    def _post(
        self, body: dict[str, Any], method: str = "sendMessage"
    ) -> requests.Response | DeliveryFailed:
        timeout = self.options.timeout
        try:
            return request(
                self.context.http,
                "POST",
                f"{self._bot}/{method}",
                service="telegram",
                timeout=timeout,
                redact=self.redact,
                json=body,
            )
        except TemporaryFailure as exc:
            return TemporaryFailure(self._explain(exc.reason), exc.retry_after, exc.unknown_outcome)
        except PermanentFailure as exc:
            return PermanentFailure(self._explain(exc.reason))
        except requests.RequestException as exc:  # e.g. a body cut off mid-answer
            return TemporaryFailure(
                f"telegram: the request failed ({type(exc).__name__}); "
                "the message may have been sent",
                unknown_outcome=True,
            )

    def _explain(self, reason: str) -> str:
        """The reason without the token, with what a person can do about it."""
        reason = self.redact(reason)
        if "chat not found" in reason:
            return f"{reason} — check chat_id ({self.options.chat_id}) and add the bot to that chat"
        if "answered 401" in reason:
            return f"{reason} — the bot token is wrong or revoked; get one from @BotFather"
        if "answered 403" in reason:
            return f"{reason} — the bot may not post there; make it an admin of the channel"
        return reason

    def _receipt(self, response: requests.Response) -> Receipt:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is False:
            reason = str(answer.get("description") or "ok: false")
            raise PermanentFailure(self._explain(f"telegram refused the message: {reason}"))
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or result.get("message_id") is None:
            raise TemporaryFailure(
                f"telegram answered {response.status_code} without a message id; "
                "the message may have been sent",
                unknown_outcome=True,
            )
        message_id = str(result["message_id"])
        chat = result.get("chat")
        username = chat.get("username") if isinstance(chat, dict) else None
        url = f"https://t.me/{username}/{message_id}" if username else None
        return Receipt(remote_id=message_id, remote_url=url)


def _chat_id(chat_id: str) -> int | str:
    """A numeric chat id as a JSON integer (Telegram's type for it); ``@name`` as is."""
    return int(chat_id) if _NUMERIC_CHAT.match(chat_id) else chat_id
