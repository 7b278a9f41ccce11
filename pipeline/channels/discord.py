"""Discord: a channel webhook, one embed per article.

``POST {webhook_url}?wait=true``: with ``wait`` Discord confirms the message was saved and
answers with the message object (without it, a message that was not saved returns no
error), so the receipt carries the message id and, once the webhook's server is known, a
``https://discord.com/channels/{guild}/{channel}/{message}`` link.

The embed: ``title`` (at most 256 characters, linked to the article), ``description``
(the template's text, at most 4,096), ``timestamp``, ``author.name`` (at most 256) and the
lead ``image`` (Discord embeds have no alt text). ``allowed_mentions: {"parse": []}`` makes
sure nothing in the message pings @everyone, a role or a user. 429 answers carry
``retry_after`` in the JSON and ``Retry-After`` / ``X-RateLimit-Reset-After`` headers;
errors a JSON ``message`` such as ``Unknown Webhook``. http.request reads both.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from pipeline.channels import Receipt
from pipeline.channels.http import request
from pipeline.channels.webhooks import ChatWebhookChannel, utc_iso
from pipeline.errors import DeliveryFailed
from pipeline.model import Article
from pipeline.settings.channels import DiscordOptions

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
AUTHOR_LIMIT = 256


class DiscordChannel(ChatWebhookChannel[DiscordOptions]):
    service = "Discord"
    limit = DESCRIPTION_LIMIT
    title_limit = TITLE_LIMIT

    def endpoint(self) -> str:
        """The webhook URL with ``wait=true`` added to whatever query it has (thread_id)."""
        parts = urlsplit(self.options.webhook_url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
        return urlunsplit(parts._replace(query=urlencode([*query, ("wait", "true")])))

    def payload(self, article: Article, title: str, text: str) -> dict[str, Any]:
        embed: dict[str, Any] = {
            "title": title,
            "url": article.url,
            "timestamp": utc_iso(article.published),
        }
        if text:
            embed["description"] = text
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
