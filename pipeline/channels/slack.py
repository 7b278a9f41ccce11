"""Slack: an incoming webhook, one Block Kit message per article.

The JSON has ``text``, the fallback Slack shows in notifications and to screen readers,
and ``blocks``: a section whose mrkdwn is the title in bold, linked to the article, over
the template's text (with the lead image and its alt text as accessory), then a context
block with the authors and the publication date, shown in each reader's own timezone.

mrkdwn treats ``&``, ``<`` and ``>`` as control characters, so all article text is escaped
(``&amp;``, ``&lt;``, ``&gt;``): a title with ``<!channel>`` or ``<script>`` shows as typed
and notifies no one. A section's text may be 3,000 characters, counted after escaping;
``text`` is shorter than the section, so within Slack's 4,000 recommended.

Slack answers ``200 ok``. Failures come with a plain-text reason: 400 ``invalid_payload``,
403 ``action_prohibited``, 404 ``channel_not_found`` / ``no_service``, 410
``channel_is_archived``, 429 with ``Retry-After``; http.request maps them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from pipeline.channels.chat_webhooks import ChatWebhookChannel, IncomingWebhookOptions, shorten
from pipeline.model import Article


class SlackOptions(IncomingWebhookOptions):
    type: Literal["slack"] = Field(description="A Slack incoming webhook (Block Kit).")


SECTION_LIMIT = 3000  # a section block's text
IMAGE_URL_LIMIT = 3000  # an image element's image_url
ALT_TEXT_LIMIT = 2000  # an image's alt_text
BYLINE_LIMIT = 1000


def mrkdwn(text: str) -> str:
    """Plain text made safe for mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(ChatWebhookChannel[SlackOptions]):
    options_model = SlackOptions
    service = "Slack"
    limit = SECTION_LIMIT
    title_limit = SECTION_LIMIT // 2  # the linked title leaves at least half to the text

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
        return {"text": mrkdwn(f"{title}\n{text}" if text else title), "blocks": [section, context]}

    def dateline(self, article: Article) -> str:
        """``Pema Gyamtsho · <!date^…|2026-11-03 09:00 UTC>``: Slack shows the date in the
        reader's timezone, and the fallback after ``|`` where it cannot."""
        when = article.published.astimezone(dt.UTC)
        date = f"<!date^{int(when.timestamp())}^{{date_short_pretty}}|{when:%Y-%m-%d %H:%M} UTC>"
        byline = self.byline(article, BYLINE_LIMIT)
        return f"{mrkdwn(byline)} · {date}" if byline else date
