"""One place that builds the pipeline's stages from the settings.

The command line, the scheduler's actions and the web app all get their sources,
channels, poster, feed writer and digests here, from one ``Assembly`` holding what every
stage is given (settings, state store, HTTP session factory, clock, sleep). How each
caller reports the results is its own business; what the stages are made of is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

import requests

from pipeline.clock import Clock, system_clock
from pipeline.plugins import Plugins

if TYPE_CHECKING:
    from pipeline.channels import Channel
    from pipeline.digest.sending import Digests
    from pipeline.feeds import FeedReport
    from pipeline.ingest import IngestReport
    from pipeline.mailer import Transport
    from pipeline.posting import ChannelReport
    from pipeline.settings import Settings
    from pipeline.sources import Source
    from pipeline.store import Store

USER_AGENT = "newsroom-pipeline/0.1 (+https://github.com/)"

HttpSessions = Callable[[], AbstractContextManager[requests.Session]]


@contextmanager
def http_session() -> Iterator[requests.Session]:
    """A session that names the pipeline to every server it reads or posts to."""
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        yield session


class Assembly:
    """The stages of one project, built from its settings; everything is passed in."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        http: HttpSessions = http_session,
        clock: Clock = system_clock,
        sleep: Callable[[float], None] = time.sleep,
        plugins: Plugins | None = None,
    ):
        self.settings = settings
        self.store = store
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self.plugins = plugins or Plugins()

    def sources(self, http: requests.Session) -> list[Source]:
        from pipeline.sources import build_sources

        return build_sources(self.settings.sources, self.settings.site, http, self.plugins)

    def channels(
        self, http: requests.Session, names: Collection[str] = (), *, preview: bool = False
    ) -> dict[str, Channel]:
        """The configured channels (only ``names`` if given); a channel's template is
        read here, so a broken one is a ConfigError before anything is done."""
        from pipeline.channels import ChannelContext, build_channels

        chosen = {n: o for n, o in self.settings.channels.items() if not names or n in names}
        context = ChannelContext(
            http=http, site=self.settings.site, memory=self.store, clock=self.clock, preview=preview
        )
        return build_channels(chosen, context, self.plugins)

    def ingest(
        self, sources: list[Source], on_source: Callable[[str], None] = lambda name: None
    ) -> IngestReport:
        from pipeline.ingest import ingest

        return ingest(sources, self.store, on_source=on_source)

    def write_feeds(self) -> FeedReport:
        from pipeline.feeds import write_feeds

        return write_feeds(self.store, self.settings.site, self.settings.feeds, self.plugins)

    def feed_content_types(self) -> dict[str, str]:
        """File name → Content-Type of every feed file ``serve`` hands out: the built-in
        formats' (a file written before its format left the config stays readable) and
        the configured ones, a plug-in's included."""
        from pipeline.feeds import BUILT_IN
        from pipeline.plugins import FEED_FORMATS

        configured = (self.plugins.load(FEED_FORMATS, n) for n in self.settings.feeds.formats)
        formats = [*BUILT_IN.values(), *configured]
        return {f.filename: f"{f.media_type}; charset=utf-8" for f in formats}

    def post(
        self,
        channels: dict[str, Channel],
        *,
        dry_run: bool = False,
        on_channel: Callable[[str], None] = lambda name: None,
    ) -> dict[str, ChannelReport]:
        from pipeline.ledger import Ledger
        from pipeline.posting import Poster

        poster = Poster(self.store, Ledger(self.store.engine), clock=self.clock, sleep=self.sleep)
        # One run for every channel: the candidates are read from the store once.
        return poster.run(channels.values(), dry_run=dry_run, on_channel=on_channel)

    def transport(self, *, paced: bool = True) -> Callable[[], Transport]:
        """Opens a connection to the configured mail server when called; ``paced=False``
        when a pacer shared by several connections keeps ``email.rate`` instead."""
        from pipeline.dkim import signer
        from pipeline.mailer import open_transport

        email = self.settings.email
        assert email is not None  # mail is configured only with an `email:` section
        plugins = self.plugins
        kw: dict = {} if paced or email.delivery != "smtp" else {"rate": 0}
        kw["sign"] = signer(email, self.clock)  # the key read once, for every connection
        return lambda: open_transport(email, plugins=plugins, **kw)

    def digests(
        self,
        transport: Callable[[], Transport] | None = None,
        *,
        pace: Callable[[], None] | None = None,
    ) -> Digests:
        """The digests, sending through ``transport`` (default: the configured server)
        over ``smtp.connections`` connections; ``pace`` keeps ``email.rate`` across them
        (default: across this process's connections)."""
        from pipeline.digest.sending import Digests
        from pipeline.pacing import LocalPacer

        email = self.settings.email
        assert email is not None
        smtp = email.smtp if email.delivery == "smtp" else None
        connections = smtp.connections if smtp is not None else 1
        if pace is None and connections > 1:
            pace = LocalPacer(email.rate, sleep=self.sleep)
        return Digests(
            self.settings,
            self.store,
            transport=transport or self.transport(paced=pace is None),
            clock=self.clock,
            sleep=self.sleep,
            connections=connections,
            pace=pace,
        )
