"""Plug-ins: the sources, channels, feed formats and mail transports, found by entry point.

This is the one place that reads ``importlib.metadata.entry_points``. The built-ins
register themselves the same way (``[project.entry-points."pipeline.channels"]`` and so on
in pyproject.toml), so an adapter installed beside the pipeline is found exactly like one
shipped with it, and nothing under ``pipeline/`` names a plug-in.

Nothing is read or imported until asked for: a ``Plugins`` reads the entry points of a
group the first time that group is needed and imports an adapter the first time it is
loaded. A plug-in that cannot be imported, or that takes a name another distribution
already uses, is a ``PluginError`` naming the distribution and the entry point: a
configuration problem, as a misspelt ``type:`` is (nothing runs).

What each group's entry points name:

* ``pipeline.sources``: a source class with ``options_model`` (a ``SourceBase`` subclass
  whose ``type`` is ``Literal["NAME"]``), built as ``cls.from_settings(settings, context)``
  with a ``SourceContext``;
* ``pipeline.channels``: a channel class with ``options_model`` (a ``ChannelOptions``
  subclass, ``type: Literal["NAME"]``) and ``autoescape``, built as
  ``cls(name, options, context)``;
* ``pipeline.feed_formats``: a ``FeedFormat`` (``filename``, ``media_type``,
  ``render(spec, articles) -> bytes``);
* ``pipeline.transports``: a callable ``(email_settings, **options) -> Transport``.

And, optionally, the light half of a source or channel: ``pipeline.source_options`` and
``pipeline.channel_options`` name the options model of the adapter of the same name in
the same distribution (which its class names as ``options_model`` too). Declared there,
in a module that imports no more than the settings do, the configuration is validated
without importing the adapter: ``pipeline check`` and every command that only reads the
settings stay quick however many adapters are installed. An adapter that declares none
is imported to read its ``options_model``, as before. The built-ins declare theirs
(pipeline.settings.sources and pipeline.settings.channels).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError, Problem

SOURCES = "pipeline.sources"
CHANNELS = "pipeline.channels"
FEED_FORMATS = "pipeline.feed_formats"
TRANSPORTS = "pipeline.transports"
SOURCE_OPTIONS = "pipeline.source_options"
CHANNEL_OPTIONS = "pipeline.channel_options"
OPTIONS_OF = {SOURCES: SOURCE_OPTIONS, CHANNELS: CHANNEL_OPTIONS}
"""The group declaring the options models of a group's adapters."""
GROUPS = (SOURCES, CHANNELS, FEED_FORMATS, TRANSPORTS, SOURCE_OPTIONS, CHANNEL_OPTIONS)

BUILT_IN = "newsroom-pipeline"  # the distribution whose entry points are the built-ins


class PluginError(ConfigError):
    """An installed plug-in that cannot be used as it is: ``where`` names it (its entry
    point and distribution), ``fix`` what to do."""

    def __init__(self, where: str, message: str, fix: str):
        super().__init__([Problem(where, None, None, message, fix)])


@dataclass(frozen=True)
class Entry:
    """One entry point: ``name = value`` in ``group``, declared by ``distribution``."""

    group: str
    name: str
    value: str  # ``module:attribute``
    distribution: str

    @property
    def built_in(self) -> bool:
        return _normalised(self.distribution) == _normalised(BUILT_IN)

    def described(self) -> str:
        return (
            f"entry point `{self.name} = {self.value}` (group {self.group}) "
            f"of distribution {self.distribution}"
        )

    def load(self) -> Any:
        return importlib.metadata.EntryPoint(self.name, self.value, self.group).load()


def installed_entries() -> list[Entry]:
    """The entry points of the four groups in every installed distribution (the name of
    each is read once per group: its metadata holds its whole README)."""
    # keyed by id, holding the distribution so that no id is reused while this runs
    names: dict[int, tuple[importlib.metadata.Distribution, str]] = {}

    def distribution(point: importlib.metadata.EntryPoint) -> str:
        if point.dist is None:
            return "(unknown)"
        if id(point.dist) not in names:
            names[id(point.dist)] = (point.dist, point.dist.name)
        return names[id(point.dist)][1]

    every = importlib.metadata.entry_points()  # one scan of the installed distributions
    return [
        Entry(group, point.name, point.value, distribution(point))
        for group in GROUPS
        for point in every.select(group=group)
    ]


@dataclass
class Plugins:
    """The adapters available to this run, by group and name."""

    find: Callable[[], Iterable[Entry]] = installed_entries
    _found: list[Entry] | None = field(default=None, repr=False)
    _entries: dict[str, dict[str, Entry]] = field(default_factory=dict, repr=False)
    _loaded: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def entries(self, group: str) -> dict[str, Entry]:
        """Name → entry point of ``group``; two distributions may not share a name."""
        if self._found is None:
            self._found = list(self.find())
        if group not in self._entries:
            chosen: dict[str, Entry] = {}
            for entry in (e for e in self._found if e.group == group):
                other = chosen.get(entry.name)
                if other is not None and other.distribution != entry.distribution:
                    # name the plug-in as the one to change, never the built-in
                    plugin, first = (other, entry) if entry.built_in else (entry, other)
                    kind = "the built-in" if first.built_in else "the"
                    raise PluginError(
                        plugin.described(),
                        f"the name {entry.name!r} is taken: it clashes with {kind} "
                        f"{first.described()}",
                        f"rename the entry point in {plugin.distribution}, or uninstall it",
                    )
                chosen[entry.name] = entry
            self._entries[group] = dict(sorted(chosen.items()))
        return self._entries[group]

    def names(self, group: str) -> list[str]:
        return list(self.entries(group))

    def load(self, group: str, name: str) -> Any:
        """The object entry point ``name`` of ``group`` names, imported once. A source or
        channel whose options are declared must name the declared model as its own."""
        key = (group, name)
        if key not in self._loaded:
            entry = self.entries(group)[name]
            try:
                loaded = entry.load()
            except Exception as exc:  # any error of third-party code at import time
                raise PluginError(
                    entry.described(),
                    f"cannot be loaded: {type(exc).__name__}: {exc}",
                    f"reinstall or upgrade {entry.distribution}, or uninstall it",
                ) from exc
            declared = self._declared(group, name)
            if declared is not None:
                model = self.load(declared.group, name)
                if getattr(loaded, "options_model", None) is not model:
                    raise PluginError(
                        entry.described(),
                        f"its `options_model` is not {declared.value}, which its "
                        f"{declared.described()} declares",
                        f"make them the same class in {entry.distribution}",
                    )
            self._loaded[key] = loaded
        return self._loaded[key]

    def options_model(self, group: str, name: str) -> Any:
        """The options model of source or channel ``name`` (``group``): the one its
        distribution declares in ``OPTIONS_OF[group]``, imported without the adapter;
        else the adapter's ``options_model`` (None if it has none)."""
        declared = self._declared(group, name)
        if declared is None:
            return getattr(self.load(group, name), "options_model", None)
        return self.load(declared.group, name)

    def _declared(self, group: str, name: str) -> Entry | None:
        """The entry point declaring the options of adapter ``name`` of ``group``, if its
        distribution made one; another distribution cannot declare them."""
        if group not in OPTIONS_OF:
            return None
        declared = self.entries(OPTIONS_OF[group]).get(name)
        adapter = self.entries(group)[name]
        if declared is not None and declared.distribution != adapter.distribution:
            raise PluginError(
                declared.described(),
                f"declares the options of {adapter.described()}, another distribution's",
                f"remove it from {declared.distribution}, or declare its own adapter too",
            )
        return declared

    def loaded(self, group: str) -> dict[str, Any]:
        """Every adapter of ``group``, name → object."""
        return {name: self.load(group, name) for name in self.entries(group)}


def _normalised(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")
