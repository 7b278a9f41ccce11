"""Discord: a channel webhook, one embed per article.

``POST {webhook_url}?wait=true``: with ``wait`` Discord confirms the message was saved and
answers with the message object (without it, a message that was not saved returns no
error), so the receipt carries the message id and, once the webhook's server is known, a
``https://discord.com/channels/{guild}/{channel}/{message}`` link.

The embed: ``title`` (at most 256 characters, linked to the article), ``description``
(the template's text, at most 4,096), ``timestamp``, ``author.name`` (at most 256) and the
lead ``image`` (Discord embeds have no alt text). ``allowed_mentions: {"parse": []}`` makes
sure nothing in the message pings @everyone, a role or a user.

Title and text are plain text: Discord reads Markdown in both, so ``plain_markdown``
puts a backslash before every character that could start formatting, a masked link
(``[x](url)``), a mention, a heading, a quote, a list or code; Discord shows the character
and drops the backslash. Web addresses are left as they are, so they stay clickable (a
backslash inside one would end up in the link). Limits count the escaped text. 429 answers carry
``retry_after`` in the JSON and ``Retry-After`` / ``X-RateLimit-Reset-After`` headers;
errors a JSON ``message`` such as ``Unknown Webhook``. http.request reads both.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from pipeline.channels import Post, Receipt
from pipeline.channels.chat_webhooks import ChatWebhookChannel, utc_iso
from pipeline.channels.http import request
from pipeline.errors import DeliveryFailed, PermanentFailure
from pipeline.model import Article
from pipeline.settings.channels import DiscordOptions

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
AUTHOR_LIMIT = 256

_MARKDOWN = re.compile(
    # a web address, kept whole: the pattern of Discord's own autolink rule, so a backslash
    # never lands inside what Discord makes a link (it would become part of the address)
    r"(?P<link>(?:https?|steam)://[^\s<]+[^<.,:;\"')\]\s])"
    # a list item's marker at the start of a line: "- ", "+ ", "1. "
    r"|(?P<marker>^[ \t]*(?:[-+]|\d+[.)]))(?=[ \t])"
    # emphasis, strike, spoiler, code, mentions and <t:…>, quotes, links, headings
    r"|(?P<char>[\\*_~|`<>\[\]#])",
    re.MULTILINE,
)


_AFTER_LINK = re.compile(r"[^\s<]*")  # what Discord may still take into the link before it


def plain_markdown(text: str) -> str:
    """``text`` shown as typed in Discord: Markdown's characters escaped, links kept.

    One exception, right after a web address: Discord's link runs on to the last allowed
    character before a space or ``<``, and ``\\`` is allowed, so a backslash there would
    be taken into the address. Up to the next space, what follows an address is only
    ``. , : ; " ' ) ]`` (anything else would have been part of it) and then perhaps ``<``;
    of those, ``]`` and ``<`` stay bare. Bare, ``]`` does nothing (every ``[`` is
    escaped) and ``<`` can at most show a mention or a date, which never pings
    (``allowed_mentions``)."""
    parts: list[str] = []
    position, bare_until = 0, -1  # "]" and "<" are left bare up to bare_until (see above)
    for match in _MARKDOWN.finditer(text):
        parts.append(text[position : match.start()])
        position = match.end()
        if match["link"]:
            parts.append(match["link"])
            tail = _AFTER_LINK.match(text, match.end())
            bare_until = tail.end() if tail else match.end()
        elif match["marker"]:
            parts.append(match["marker"][:-1] + "\\" + match["marker"][-1])
        elif match["char"] in "<]" and match.start() <= bare_until:
            parts.append(match["char"])
        else:
            parts.append("\\" + match["char"])
    parts.append(text[position:])
    return "".join(parts)


class DiscordChannel(ChatWebhookChannel[DiscordOptions]):
    options_model = DiscordOptions
    service = "Discord"
    corrections = frozenset({"edit", "delete"})
    limit = DESCRIPTION_LIMIT
    title_limit = TITLE_LIMIT

    def title_length(self, article: Article, title: str) -> int:
        return self.measure(plain_markdown(title))

    def shown(self, article: Article, title: str, text: str) -> str:
        return plain_markdown(text)

    def endpoint(self) -> str:
        """The webhook URL with ``wait=true`` added to whatever query it has (thread_id)."""
        parts = urlsplit(self.options.webhook_url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
        return urlunsplit(parts._replace(query=urlencode([*query, ("wait", "true")])))

    def payload(self, article: Article, title: str, text: str) -> dict[str, Any]:
        embed: dict[str, Any] = {
            "title": plain_markdown(title),
            "url": article.url,
            "timestamp": utc_iso(article.published),
        }
        if text:
            embed["description"] = self.shown(article, title, text)
        author = self.byline(article, AUTHOR_LIMIT)
        if author:
            embed["author"] = {"name": author}
        if article.image:
            embed["image"] = {"url": article.image}
        body: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
        if self.options.username:
            body["username"] = self.options.username
        return body

    def receipt(self, response: requests.Response) -> Receipt:
        try:
            message = response.json()
        except ValueError:
            return Receipt()
        if not isinstance(message, dict) or not message.get("id"):
            return Receipt()
        message_id, channel_id = str(message["id"]), message.get("channel_id")
        guild_id = message.get("guild_id") or self._guild_id()
        url = None
        if guild_id and channel_id:
            url = f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"
        return Receipt(remote_id=message_id, remote_url=url)

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """``PATCH {webhook}/messages/{id}`` with the new embed (the same body again is
        the same edit)."""
        self._message_call("PATCH", posted, json.dumps(post.body, ensure_ascii=False))
        return posted

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """``DELETE {webhook}/messages/{id}``; a message already gone (404) counts as done."""
        try:
            self._message_call("DELETE", posted)
        except PermanentFailure as exc:
            if exc.status != 404:
                raise
        return posted

    def _message_call(self, method: str, posted: Receipt, body: str | None = None) -> None:
        """A call on the message the webhook made, in the same thread (``thread_id``)."""
        parts = urlsplit(self.options.webhook_url)
        path = f"{parts.path.rstrip('/')}/messages/{posted.remote_id}"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k == "thread_id"]
        url = urlunsplit(parts._replace(path=path, query=urlencode(query)))
        extra: dict[str, Any] = {}
        if body is not None:
            extra = {"data": body.encode("utf-8"), "headers": {"Content-Type": "application/json"}}
        request(
            self.context.http,
            method,
            url,
            service=self.service,
            timeout=self.options.timeout,
            redact=self.redact,
            **extra,
        )

    def _guild_id(self) -> str | None:
        """The webhook's server: read once from the webhook object (GET on the webhook URL,
        which its token authorises) and remembered; None when it cannot be had. The post is
        already made, so a failure here only costs the link."""
        memory_name = f"channel:{self.name}:discord"
        webhook = hashlib.sha256(self.options.webhook_url.encode()).hexdigest()[:16]
        known = self.context.memory.value(memory_name)
        if known.get("webhook") == webhook and known.get("guild_id"):
            return str(known["guild_id"])
        url = urlunsplit(urlsplit(self.options.webhook_url)._replace(query=""))
        try:
            found = request(
                self.context.http,
                "GET",
                url,
                service=self.service,
                timeout=self.options.timeout,
                redact=self.redact,
            ).json()
        except (DeliveryFailed, ValueError):
            return None
        guild_id = found.get("guild_id") if isinstance(found, dict) else None
        if not guild_id:
            return None
        self.context.memory.save_value(memory_name, {"webhook": webhook, "guild_id": str(guild_id)})
        return str(guild_id)
