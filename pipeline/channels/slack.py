"""Slack: one Block Kit message per article, through an incoming webhook or a bot token.

The JSON has ``text``, the fallback Slack shows in notifications and to screen readers,
and ``blocks``: a section whose mrkdwn is the title in bold, linked to the article, over
the template's text (with the lead image and its alt text as accessory), then a context
block with the authors and the publication date, shown in each reader's own timezone.

mrkdwn treats ``&``, ``<`` and ``>`` as control characters, so all article text is escaped
(``&amp;``, ``&lt;``, ``&gt;``): a title with ``<!channel>`` or ``<script>`` shows as typed
and notifies no one. A section's text may be 3,000 characters, counted after escaping;
``text`` is shorter than the section, so within Slack's 4,000 recommended.

Two ways in, chosen by the options (exactly one of them):

- ``webhook_url``: an incoming webhook. Slack answers ``200 ok``; failures come with a
  plain-text reason: 400 ``invalid_payload``, 403 ``action_prohibited``, 404
  ``channel_not_found`` / ``no_service``, 410 ``channel_is_archived``, 429 with
  ``Retry-After``; http.request maps them. A webhook's message cannot be changed once
  sent, so such a channel corrects nothing.
- ``bot_token`` and ``channel``: the Web API (pipeline.channels.slack_api).
  ``chat.postMessage`` gets the same document plus ``channel`` and ``unfurl_links:
  false`` (the section already shows the article; a preview would repeat it) and answers
  with the message's ``ts``. The post's remote id is ``{channel}/{ts}``: Slack's own
  channel id from the answer, so a post is still corrected where it was made after
  ``channel`` is changed. Its link comes from ``chat.getPermalink``. Corrections are
  ``chat.update`` (the same text again is the same edit, so an interrupted one is sent
  again) and ``chat.delete`` (a message already gone counts as deleted).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.channels import ChannelContext, Post, Receipt
from pipeline.channels.chat_webhooks import ChatWebhookChannel, shorten
from pipeline.channels.slack_api import SlackWebApi, error_code
from pipeline.errors import DeliveryFailed, PermanentFailure
from pipeline.model import Article
from pipeline.settings.channels import ChannelOptions, SlackOptions

SECTION_LIMIT = 3000  # a section block's text
IMAGE_URL_LIMIT = 3000  # an image element's image_url
ALT_TEXT_LIMIT = 2000  # an image's alt_text
BYLINE_LIMIT = 1000
BOT_CORRECTIONS = frozenset({"edit", "delete"})  # chat.update, chat.delete


def mrkdwn(text: str) -> str:
    """Plain text made safe for mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(ChatWebhookChannel[SlackOptions]):
    options_model = SlackOptions
    service = "Slack"
    limit = SECTION_LIMIT
    title_limit = SECTION_LIMIT // 2  # the linked title leaves at least half to the text
    corrections = frozenset()  # an incoming webhook's; a bot's: abilities_for

    def __init__(self, name: str, options: SlackOptions, context: ChannelContext):
        super().__init__(name, options, context)
        self.api: SlackWebApi | None = None
        if options.bot_token is not None:
            self.api = SlackWebApi(
                context.http, options.bot_token, options.api_url, options.timeout, self.redact
            )

    @classmethod
    def abilities_for(cls, options: ChannelOptions) -> frozenset[str]:
        """A bot edits and deletes its messages; an incoming webhook's stay as sent."""
        bot = isinstance(options, SlackOptions) and options.bot_token is not None
        return BOT_CORRECTIONS if bot else cls.corrections

    def heading(self, article: Article, title: str) -> str:
        target = mrkdwn(article.url).replace("|", "%7C")  # a | would end the link target
        return f"*<{target}|{mrkdwn(title)}>*"

    def title_length(self, article: Article, title: str) -> int:
        return self.measure(self.heading(article, title))

    def shown(self, article: Article, title: str, text: str) -> str:
        heading = self.heading(article, title)
        return f"{heading}\n{mrkdwn(text)}" if text else heading

    def payload(self, article: Article, title: str, text: str) -> dict[str, Any]:
        section: dict[str, Any] = {
            "type": "section",
            "text": {"type": "mrkdwn", "text": self.shown(article, title, text)},
        }
        if article.image and len(article.image) <= IMAGE_URL_LIMIT:
            alt = shorten(article.image_alt or article.title, ALT_TEXT_LIMIT, self.measure)
            section["accessory"] = {"type": "image", "image_url": article.image, "alt_text": alt}
        context = {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": self.dateline(article)}],
        }
        body = {"text": mrkdwn(f"{title}\n{text}" if text else title), "blocks": [section, context]}
        if self.api is None:
            return body
        return {"channel": self.options.channel, **body, "unfurl_links": False}

    def dateline(self, article: Article) -> str:
        """``Pema Gyamtsho · <!date^…|2026-11-03 09:00 UTC>``: Slack shows the date in the
        reader's timezone, and the fallback after ``|`` where it cannot."""
        when = article.published.astimezone(dt.UTC)
        date = f"<!date^{int(when.timestamp())}^{{date_short_pretty}}|{when:%Y-%m-%d %H:%M} UTC>"
        byline = self.byline(article, BYLINE_LIMIT)
        return f"{mrkdwn(byline)} · {date}" if byline else date

    # -- the Web API (bot token) -------------------------------------------------------------

    def endpoint(self) -> str:
        assert self.options.webhook_url is not None  # only an incoming webhook posts here
        return self.options.webhook_url

    def send(self, post: Post, key: str) -> Receipt:
        if self.api is None:
            return super().send(post, key)
        answer = self.api.call("chat.postMessage", post.body)
        ts, channel = answer.get("ts"), str(answer.get("channel") or self.options.channel)
        if not isinstance(ts, str) or not ts:
            return Receipt()  # posted (ok: true), but nothing to find it by again
        return Receipt(remote_id=f"{channel}/{ts}", remote_url=self._permalink(channel, ts))

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """``chat.update`` with the new text and blocks."""
        channel, ts = self._message(posted, "edited")
        body = {"channel": channel, "ts": ts, "text": post.body["text"]}
        self._bot().call("chat.update", {**body, "blocks": post.body["blocks"]})
        return posted

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """``chat.delete``; a message already gone (``message_not_found``) counts as done."""
        channel, ts = self._message(posted, "deleted")
        try:
            self._bot().call("chat.delete", {"channel": channel, "ts": ts})
        except PermanentFailure as exc:
            if error_code(exc) != "message_not_found":
                raise
        return posted

    def _bot(self) -> SlackWebApi:
        if self.api is None:
            raise NotImplementedError("a Slack incoming webhook cannot change a message once sent")
        return self.api

    def _message(self, posted: Receipt, done: str) -> tuple[str, str]:
        """The channel and ts of the article's message, from the post's remote id."""
        channel, _, ts = (posted.remote_id or "").rpartition("/")
        if not channel or not ts:
            raise PermanentFailure(
                f"Slack: the post has no message ts to find it by, so it cannot be {done} "
                "(a post made through the incoming webhook, before `bot_token` was set, "
                "stays as it was sent)"
            )
        return channel, ts

    def _permalink(self, channel: str, ts: str) -> str | None:
        """The message's link, for history. The post is made: a failure here only costs
        the link, never a second post."""
        try:
            found = self._bot().get("chat.getPermalink", {"channel": channel, "message_ts": ts})
        except DeliveryFailed:
            return None
        link = found.get("permalink")
        return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None
