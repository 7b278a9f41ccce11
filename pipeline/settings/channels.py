"""``channels:`` in config/pipeline.yaml: a mapping of name → type and its settings.

Every type shares the options of ``ChannelOptions`` (which articles, which template,
the flood guards); each adds its own, in a subclass kept in its channel's module
(``MastodonOptions`` in pipeline/channels/mastodon.py) and found through the channel's
entry point (pipeline.plugins). Credentials are ``Secret``: they must be written as
``${ENV_VAR}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline.settings.base import Filters


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
