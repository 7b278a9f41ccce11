"""Chat webhooks (Slack, Discord, Teams): what the three share, written once.

Each posts one JSON document per article to the channel's ``webhook_url`` (the URL is the
credential; Slack may instead post through its Web API with a bot token, see
pipeline.channels.slack). None of them recognises a retried request, so ``dedupe_window``
is None: a send whose fate is unknown is marked uncertain by the posting stage, never
repeated blindly.

A network's class states its budgets and builds its payload; this base does the rest:

- ``prepare``: cut the title to the network's title budget, render the channel template (the
  body text: a summary by default), fit it so the field it lands in stays within the
  network's limit, and keep the exact JSON document as ``Post.body``.
- ``send``: POST that document through ``pipeline.channels.http.request``, so 429/5xx,
  4xx and timeouts become the same delivery errors for every network.

Lengths are counted in UTF-16 code units (what JavaScript's ``length`` reports): never
less than code points or graphemes, so a text that fits by this count fits however the
network counts "characters", and an emoji title cannot overflow a limit it seemed to meet.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import requests

from pipeline.channels import Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import fit, longest_fitting, template_values, utf16_units
from pipeline.channels.http import request
from pipeline.model import Article
from pipeline.settings.channels import ChannelOptions, IncomingWebhookOptions
from pipeline.text import excerpt

# ChannelOptions, not IncomingWebhookOptions: Slack's options hold either a webhook URL
# or a bot token, so its webhook_url may be absent.
Options = TypeVar("Options", bound=ChannelOptions)


def shorten(text: str, limit: int, measure: Callable[[str], int]) -> str:
    """The longest excerpt of ``text`` (cut at a word or grapheme boundary, ending in ``…``)
    whose ``measure`` is at most ``limit``; ``text`` itself when it fits."""
    if measure(text) <= limit:
        return text
    cut = longest_fitting(text, lambda shorter: shorter, lambda shorter: measure(shorter) <= limit)
    return excerpt(text, 1) if cut is None else cut


def utc_iso(moment: dt.datetime) -> str:
    """``2026-11-03T09:00:00Z``: ISO 8601 / RFC 3339 in UTC, as every card format accepts."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


class ChatWebhookChannel(ChannelBase[Options]):
    """Base of the Slack, Discord and Teams channels; subclasses fill in the hooks below."""

    service: ClassVar[str]  # the network's name in messages, e.g. "Slack"
    limit: ClassVar[int | None] = None  # budget of the field the template's text goes into
    title_limit: ClassVar[int | None] = None  # budget of the title; None: kept whole

    # -- hooks ---------------------------------------------------------------------------

    def measure(self, text: str) -> int:
        """Length as the network counts it against ``limit`` and ``title_limit``."""
        return utf16_units(text)

    def shown(self, article: Article, title: str, text: str) -> str:
        """The field that holds the template's text, as the network will show it."""
        return text

    def title_length(self, article: Article, title: str) -> int:
        """What ``title_limit`` bounds; by default the title itself."""
        return self.measure(title)

    def payload(self, article: Article, title: str, text: str) -> dict[str, Any]:
        """The JSON document to POST, from the cut title and the fitted text."""
        raise NotImplementedError

    def endpoint(self) -> str:
        """The URL the document is POSTed to: the incoming webhook's."""
        if isinstance(self.options, IncomingWebhookOptions):
            return self.options.webhook_url
        raise NotImplementedError(f"{type(self).__name__} must say where it posts")

    def receipt(self, response: requests.Response) -> Receipt:
        """What the network's answer says it made; plain webhooks answer with nothing."""
        return Receipt()

    # -- the Channel protocol ----------------------------------------------------------------

    def prepare(self, article: Article) -> Post:
        title = article.title
        if self.title_limit is not None:
            title = shorten(title, self.title_limit, lambda t: self.title_length(article, t))
        values = {**template_values(article, self.context.site.name), "title": title}
        text = fit(
            self.template,
            values,
            limit=self.limit,
            measure=lambda candidate: self.measure(self.shown(article, title, candidate)),
        )
        shown = self.shown(article, title, text)
        return Post(
            article, shown, self.measure(shown), self.limit, self.payload(article, title, text)
        )

    def send(self, post: Post, key: str) -> Receipt:
        # The body is sent exactly as prepared (and shown by a dry run), as UTF-8 JSON.
        response = request(
            self.context.http,
            "POST",
            self.endpoint(),
            service=self.service,
            timeout=self.options.timeout,
            redact=self.redact,
            data=json.dumps(post.body, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        return self.receipt(response)

    # -- helpers for subclasses ------------------------------------------------------------

    def byline(self, article: Article, limit: int) -> str:
        """The authors, comma-separated, cut to ``limit``."""
        return shorten(", ".join(article.authors), limit, self.measure)
