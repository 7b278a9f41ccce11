"""What every channel class shares: its name, options and context, its template, its
redactor, and turning an article into fitted text. Networks subclass it and add
prepare/send."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Generic, TypeVar

from pipeline.channels import ChannelContext, Post, Receipt
from pipeline.channels.compose import Measure, fit, load_channel_template, template_values
from pipeline.model import Article
from pipeline.redact import redactor_for
from pipeline.settings.channels import ChannelOptions

Options = TypeVar("Options", bound=ChannelOptions)


class ChannelBase(Generic[Options]):
    options_model: ClassVar[type[ChannelOptions]]  # its options, with `type: Literal[NAME]`
    autoescape: ClassVar[bool] = False  # True where the template writes markup (Telegram HTML)
    dedupe_window: dt.timedelta | None = None
    corrections: ClassVar[frozenset[str]] = frozenset()  # see pipeline.channels.Channel
    default_on_update: ClassVar[str] = "edit"
    default_on_delete: ClassVar[str] = "delete"
    repeatable_corrections: ClassVar[bool] = True

    def __init__(self, name: str, options: Options, context: ChannelContext):
        self.name = name
        self.options = options
        self.context = context
        assert options.template is not None  # settings resolve the default
        self.template = load_channel_template(options.template, autoescape=self.autoescape)
        # This channel's own credentials (token, password, webhook URL): every reason made
        # from a server's answer passes through it (pipeline.channels.http.request).
        self.redact = redactor_for(options)

    @classmethod
    def abilities_for(cls, options: ChannelOptions) -> frozenset[str]:
        """What a channel with these options can do to a post once made; by default the
        class's ``corrections``. A network reached in more than one way answers per options
        (Slack: a bot token can edit and delete, an incoming webhook cannot)."""
        return cls.corrections

    def text(self, article: Article, *, limit: int | None, measure: Measure) -> str:
        """The channel's template for ``article``, fitted to ``limit`` by ``measure``."""
        values = template_values(article, self.context.site.name)
        return fit(self.template, values, limit=limit, measure=measure)

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        raise NotImplementedError(f"{type(self).__name__} cannot correct a post")

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        raise NotImplementedError(f"{type(self).__name__} cannot delete a post")

    def close(self) -> None:
        """Nothing to release by default; the HTTP session belongs to the caller."""
