"""Channels: where article summaries are posted. One module per network.

A channel turns an Article into a ``Post`` under its network's rules (``prepare``:
template, fitting to the length budget, the exact request body) and delivers it
(``send``), raising ``TemporaryFailure`` or ``PermanentFailure`` from pipeline.errors.
It never decides *whether* to post: the posting stage (pipeline.posting) does that
with the delivery ledger, retries and flood guards, the same for every network.

Every network, built-in or plug-in, is an entry point of group ``pipeline.channels``
(pipeline.plugins): config ``type`` → a ``ChannelType``, a class with ``options_model``
(its options, validated when the config loads) built as ``cls(name, options, context)``.
``ChannelBase`` (pipeline.channels.base) is the convenient base of one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pipeline.clock import Clock, system_clock
from pipeline.plugins import CHANNELS, Plugins
from pipeline.settings import SiteSettings
from pipeline.settings.channels import ChannelOptions

if TYPE_CHECKING:  # `check` imports the configured channels' classes: keep them light
    import requests

    from pipeline.model import Article


@dataclass(frozen=True)
class Post:
    """What one network will receive for one article."""

    article: Article
    text: str  # the text as the network shows it
    length: int  # measured by the network's own rules
    limit: int | None  # the network's budget for that measure; None: no practical limit
    body: Mapping[str, Any] = field(default_factory=dict)  # the request body, for dry runs
    notes: tuple[str, ...] = ()  # what a dry run should tell, e.g. limits it had to assume


@dataclass(frozen=True)
class Receipt:
    """What the network said it made."""

    remote_id: str | None = None
    remote_url: str | None = None


class Memory(Protocol):
    """Small JSON documents kept between runs (the state store implements it)."""

    def value(self, name: str) -> dict: ...

    def save_value(self, name: str, value: dict) -> None: ...


@dataclass(frozen=True)
class ChannelContext:
    """What a channel may use: passed in, never reached for."""

    http: requests.Session
    site: SiteSettings
    memory: Memory
    clock: Clock = system_clock
    preview: bool = False
    """A dry run: nothing will be sent, so a channel may assume what it cannot look up
    (Mastodon's limits, offline) instead of failing, and says so in ``Post.notes``."""


class Channel(Protocol):
    name: str
    options: ChannelOptions
    dedupe_window: dt.timedelta | None
    """How long the network recognises a retried request by its key (Mastodon's
    Idempotency-Key); None if it does not, so a send of unknown fate is never repeated."""

    def prepare(self, article: Article) -> Post:
        """Render and fit the post; may read cached limits, must not publish anything."""
        ...

    def send(self, post: Post, key: str) -> Receipt:
        """Publish; ``key`` is stable for this (article, channel) across retries."""
        ...

    corrections: frozenset[str]
    """What the network can do to a post once made: ``edit``, ``reply``, ``delete``. A
    class whose abilities depend on its options (Slack: a bot token or an incoming
    webhook) answers instead through a classmethod ``abilities_for(options)``
    (``ChannelBase`` has one that returns ``corrections``)."""
    default_on_update: str
    """What ``on_update`` means when not set: ``edit`` where the network can edit."""
    default_on_delete: str
    """What ``on_delete`` means when not set: ``delete`` where the network can."""
    repeatable_corrections: bool
    """Whether an edit or delete of unknown fate may be sent again: true where it is
    idempotent on the network (the same PUT, the same record key), false where a repeat
    would arrive twice (a webhook event, a line in a file)."""

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """Correct the post ``posted`` to say ``post`` (``mode`` edit or reply); returns
        the article's post as it now is on the network."""
        ...

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """Take the post ``posted`` down; a post already gone counts as done."""
        ...

    def close(self) -> None: ...


class ChannelType(Protocol):
    """What a ``pipeline.channels`` entry point names."""

    options_model: ClassVar[type[ChannelOptions]]
    """Its ``channels:`` entry: a ChannelOptions subclass with ``type: Literal["NAME"]``."""
    autoescape: ClassVar[bool]
    """True where its template writes markup (Telegram HTML): values are escaped."""

    def __call__(self, name: str, options: Any, context: ChannelContext) -> Channel: ...


def channel_types(plugins: Plugins | None = None) -> dict[str, ChannelType]:
    """Config ``type`` → channel class, for every channel installed."""
    return dict((plugins or Plugins()).loaded(CHANNELS))


def build_channels(
    configured: Mapping[str, ChannelOptions],
    context: ChannelContext,
    plugins: Plugins | None = None,
) -> dict[str, Channel]:
    """Instantiate every configured channel, each by the class its ``type`` names."""
    plugins = plugins or Plugins()
    return {
        name: plugins.load(CHANNELS, options.type)(name, options, context)
        for name, options in configured.items()
    }
