"""``channels:`` in config/pipeline.yaml: a mapping of name → type and its settings.

Every type shares the options of ``ChannelOptions`` (which articles, which template,
the flood guards); each adds its own in a subclass. The built-in types' subclasses are
kept here, not in their channels' modules, so that the settings are validated without
importing a single channel: each is declared by an entry point of group
``pipeline.channel_options`` (pipeline.plugins), and the channel's class (its entry point
of group ``pipeline.channels``) names the same model as ``options_model``. Credentials are
``Secret``: they must be written as ``${ENV_VAR}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.settings.base import Filters, OptionalSecret, Secret, http_url, shown

SLACK_API_URL = "https://slack.com/api"


class ChannelOptions(Filters):
    type: str = Field(description="What kind of channel: a name registered in pipeline.channels.")
    template: Path | None = Field(
        None,
        description="Jinja template for the post text; default templates/channels/TYPE.txt.j2 "
        "(generic.txt.j2 for a type that has none).",
    )
    max_age_hours: float = Field(
        72,
        gt=0,
        le=1_000_000,  # 114 years: an archive can be posted, a date cannot overflow
        allow_inf_nan=False,
        description="Articles published longer ago than this are never posted (so a new "
        "channel does not flood followers with the archive).",
    )
    per_run: int = Field(
        5, ge=1, le=1000, description="At most this many posts per run; the rest wait."
    )
    spacing_seconds: float = Field(
        0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="Pause between two posts to this channel.",
    )
    timeout: float = Field(
        20,
        gt=0,
        le=600,
        allow_inf_nan=False,
        description="Seconds to wait for the network to answer.",
    )
    max_attempts: int = Field(
        4, ge=1, le=10, description="Tries per post in one run for 429, 5xx and timeouts."
    )
    on_update: Literal["edit", "reply", "ignore"] | None = Field(
        None,
        description="When a posted article's title, summary or URL changes: edit the post, "
        "reply with the correction, or leave it; default: edit where the network can.",
    )
    on_delete: Literal["delete", "ignore"] | None = Field(
        None,
        description="When a posted article is unpublished or deleted: delete the post, or "
        "leave it; default: delete where the network can.",
    )


class IncomingWebhookOptions(ChannelOptions):
    webhook_url: Secret = Field(description="The incoming-webhook URL (it is the credential).")

    _url = field_validator("webhook_url")(lambda v: http_url(v))


class BlueskyOptions(ChannelOptions):
    type: Literal["bluesky"] = Field(description="A Bluesky (AT Protocol) account.")
    handle: str = Field(description="The account's handle, e.g. news.example.org.")
    app_password: Secret = Field(description="An app password (Settings → App passwords).")
    service: str = Field("https://bsky.social", description="The account's PDS / entryway URL.")

    _url = field_validator("service")(lambda v: http_url(v))


class DiscordOptions(IncomingWebhookOptions):
    type: Literal["discord"] = Field(description="A Discord channel webhook (an embed).")
    username: str | None = Field(None, description="Name the webhook posts under.")


class FileOptions(ChannelOptions):
    type: Literal["file"] = Field(description="Appends each post as a JSON line to a file.")
    path: Path = Field(description="The file (relative to the project folder).")


class MastodonOptions(ChannelOptions):
    type: Literal["mastodon"] = Field(description="A Mastodon (or compatible) account.")
    instance: str = Field(description="Base URL of the server, e.g. https://mastodon.social.")
    access_token: Secret = Field(description="Access token with write:statuses (and write:media).")
    visibility: Literal["public", "unlisted", "private", "direct"] = Field(
        "public", description="Who sees the posts."
    )
    images: bool = Field(True, description="Attach the lead image, with its alt text.")

    _url = field_validator("instance")(lambda v: http_url(v))


# A public (C…) or private (G…, from before 2021) channel, or a direct message (D…).
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,20}")


class SlackOptions(ChannelOptions):
    type: Literal["slack"] = Field(
        description="A Slack channel, through an incoming webhook or a bot (Block Kit)."
    )
    webhook_url: OptionalSecret = Field(
        None,
        description="The incoming-webhook URL (it is the credential); posts cannot be "
        "corrected. Give this or bot_token.",
    )
    bot_token: OptionalSecret = Field(
        None,
        description="A bot token (xoxb-…) with the chat:write scope: posts through the Web "
        "API, so they can be edited and deleted. Give this or webhook_url.",
    )
    channel: str | None = Field(
        None,
        description="Id of the channel the bot posts to, e.g. C0123456789 (with bot_token).",
    )
    api_url: str = Field(SLACK_API_URL, description="Slack Web API base URL (with bot_token).")

    _urls = field_validator("webhook_url", "api_url")(lambda v: v if v is None else http_url(v))

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty; its environment variable must hold the token (xoxb-…)")
        return value

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is not None and not _CHANNEL_ID.fullmatch(value):
            raise ValueError(
                f"{shown(value)} is not a Slack channel id; use the id, e.g. C0123456789 "
                "(in Slack: the channel's name → About, at the bottom)"
            )
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackOptions:
        if self.webhook_url is not None and self.bot_token is not None:
            raise ValueError(
                "give either `webhook_url` or `bot_token`, not both: a bot token posts "
                "through the Web API (and can correct its posts), a webhook cannot"
            )
        if self.webhook_url is None and self.bot_token is None:
            raise ValueError(
                "give `webhook_url` (an incoming webhook) or `bot_token` and `channel` "
                "(a bot, whose posts can be corrected)"
            )
        if self.bot_token is not None and self.channel is None:
            raise ValueError("`bot_token` needs `channel`: the id of the channel to post to")
        if self.webhook_url is not None and self.channel is not None:
            raise ValueError(
                "`channel` goes with `bot_token`; an incoming webhook posts to the channel "
                "it was made for"
            )
        return self


class TeamsOptions(IncomingWebhookOptions):
    type: Literal["teams"] = Field(
        description="A Microsoft Teams Workflows webhook (an Adaptive Card)."
    )


class TelegramOptions(ChannelOptions):
    type: Literal["telegram"] = Field(description="A Telegram chat or channel, through a bot.")
    bot_token: Secret = Field(description="The bot's token from @BotFather.")
    chat_id: str = Field(description="Chat id or @channelusername to post to.")
    api_url: str = Field("https://api.telegram.org", description="Bot API server.")

    _url = field_validator("api_url")(lambda v: http_url(v))

    @field_validator("chat_id", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class WebhookOptions(ChannelOptions):
    type: Literal["webhook"] = Field(description="Any HTTP endpoint: a JSON POST per article.")
    url: str = Field(description="Where to POST.")
    secret: OptionalSecret = Field(
        None, description="If set, an X-Pipeline-Signature: sha256=HMAC header signs each body."
    )

    _url = field_validator("url")(lambda v: http_url(v))
