"""What a channel does with a posted article that changed or was taken down: what its
network can do to a post once made, the policy that follows (``on_update``,
``on_delete``; pipeline.settings.channels), and ``pipeline check``'s warnings about a
policy a network cannot follow. Apart from pipeline.corrections, which makes the
corrections on the state store, so that `check` imports neither the store nor SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipeline.plugins import CHANNELS, Plugins
from pipeline.settings.channels import ChannelOptions

if TYPE_CHECKING:
    from pipeline.channels import Channel


def abilities(channel: object, options: ChannelOptions | None = None) -> frozenset[str]:
    """What a channel can do to a post once made. ``channel`` is a channel, or a channel
    class with the ``options`` it would be built with (``pipeline check``). Asked of its
    ``abilities_for(options)`` where it has one, as what a network can do may depend on how
    it is reached (Slack: a bot token, or an incoming webhook); else its ``corrections``.
    A plug-in channel that says nothing can do nothing, so its posts are never corrected."""
    if options is None:
        options = getattr(channel, "options", None)
    ask = getattr(channel, "abilities_for", None)
    if options is not None and callable(ask):
        return frozenset(ask(options))
    return frozenset(getattr(channel, "corrections", frozenset()))


def update_policy(channel: Channel) -> str:
    """``edit``, ``reply`` or ``ignore``: what the channel does with a changed article."""
    wanted = channel.options.on_update or getattr(channel, "default_on_update", "edit")
    return wanted if wanted in abilities(channel) else "ignore"


def delete_policy(channel: Channel) -> str:
    """``delete`` or ``ignore``: what the channel does with an article taken down."""
    wanted = channel.options.on_delete or getattr(channel, "default_on_delete", "delete")
    return wanted if wanted in abilities(channel) else "ignore"


def correction_warnings(
    configured: Mapping[str, ChannelOptions], plugins: Plugins | None = None
) -> list[str]:
    """``pipeline check``: a policy the network cannot follow (Slack's and Teams' incoming
    webhooks cannot touch a message once sent, a Slack bot can; Mastodon and Telegram
    edit, not reply). Only the configured channels' classes are imported."""
    plugins = plugins or Plugins()
    found = []
    for name, options in configured.items():
        can = abilities(plugins.load(CHANNELS, options.type), options)
        for setting, value in (("on_update", options.on_update), ("on_delete", options.on_delete)):
            if value in (None, "ignore") or value in can:
                continue
            able = ", ".join(sorted(can)) or "none: a message once sent stays as it is"
            found.append(
                f"channel {name}: {setting}: {value} is not something a {options.type} "
                f"channel can do (it can: {able}); its posts are not corrected that way"
            )
    return found
