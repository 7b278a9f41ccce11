"""Microsoft Teams: a Workflows webhook ("When a Teams webhook request is received", the
successor of the retired Office 365 connectors), one Adaptive Card per article.

The JSON is a message with one attachment of type
``application/vnd.microsoft.card.adaptive`` whose content is an Adaptive Card 1.4: the
title (large, bold, opening the article), a subtle line with the authors and the date
(Teams formats ``{{DATE(…)}}`` in the reader's locale), the lead image with its alt text,
the template's text, and an ActionSet whose Action.OpenUrl "Read more" opens the article.

Title, authors and text are plain text. A TextBlock reads Markdown (``[x](url)`` would be
a link, ``**x**`` bold), and Adaptive Cards define no way to escape it; a TextRun in a
RichTextBlock shows its text as written ("Markdown is not supported"), so every text that
comes from an article goes into TextRuns.

The flow answers 202 Accepted with an empty body: the run is queued, so there is no
message id to keep. Teams has no practical limit for the text (a whole message may be
about 28 KB), so nothing is cut.
"""

from __future__ import annotations

from typing import Any

from pipeline.channels.chat_webhooks import ChatWebhookChannel, utc_iso
from pipeline.model import Article
from pipeline.settings.channels import TeamsOptions

CARD_VERSION = "1.4"
BYLINE_LIMIT = 1000
READ_MORE = {"en": "Read more", "zh": "阅读全文"}  # by primary language subtag


def plain_text(run: dict[str, Any]) -> dict[str, Any]:
    """A RichTextBlock holding one TextRun: the run's text is shown as written."""
    return {"type": "RichTextBlock", "inlines": [run]}


class TeamsChannel(ChatWebhookChannel[TeamsOptions]):
    options_model = TeamsOptions
    service = "Teams"
    limit = None

    def payload(self, article: Article, title: str, text: str) -> dict[str, Any]:
        language = article.language.split("-")[0].lower()
        date = f"{{{{DATE({utc_iso(article.published)}, SHORT)}}}}"
        byline = self.byline(article, BYLINE_LIMIT)
        heading = {
            "type": "TextRun",
            "text": title,
            "size": "Large",
            "weight": "Bolder",
            "selectAction": {"type": "Action.OpenUrl", "url": article.url},
        }
        dateline = {"type": "TextRun", "text": f"{byline} · {date}" if byline else date}
        body: list[dict[str, Any]] = [
            plain_text(heading),
            {**plain_text({**dateline, "isSubtle": True}), "spacing": "None"},
        ]
        if article.image:
            alt = article.image_alt or article.title
            body.append({"type": "Image", "url": article.image, "altText": alt, "size": "Stretch"})
        if text:
            body.append(plain_text({"type": "TextRun", "text": text}))
        label = READ_MORE.get(language, READ_MORE["en"])
        body.append(
            {
                "type": "ActionSet",
                "actions": [{"type": "Action.OpenUrl", "title": label, "url": article.url}],
            }
        )
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "lang": language,  # the language DATE() formats in where the reader's is unknown
            "body": body,
        }
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
