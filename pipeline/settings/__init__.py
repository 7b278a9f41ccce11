"""config/pipeline.yaml: every setting defined once, with its help text.

The README documents each setting; ``tests/test_settings.py`` checks that it documents
every field below, so a new setting cannot ship undocumented.

Relative paths are resolved against the project folder: the folder that holds
``config/`` when the file lives in a folder of that name, otherwise the file's own folder.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError, Problem, display_path
from pipeline.plugins import CHANNELS, FEED_FORMATS, SOURCES, TRANSPORTS, PluginError, Plugins
from pipeline.settings.base import (
    Strict,
    check_language,
    check_name,
    check_timezone,
    http_url,
    is_secret,
    normalise_language,
)
from pipeline.settings.channels import ChannelOptions
from pipeline.settings.email import DigestSettings, EmailSettings
from pipeline.settings.queue import QueueSettings
from pipeline.settings.sources import SourceBase
from pipeline.settings.web import WebSettings
from pipeline.templating import find_template

__all__ = [  # the vocabulary other modules import from here
    "ConfigError",
    "Settings",
    "SiteSettings",
    "SourceBase",
    "Strict",
    "check_language",
    "load_settings",
    "normalise_language",
]
from pipeline.validation import dotted, problems_from_validation
from pipeline.yamlfile import YamlDocument, parse_yaml


class SiteSettings(Strict):
    name: str = Field(description="Organisation or site name, shown in feeds and emails.")
    url: str = Field(description="Public base URL of the site, e.g. https://example.org.")
    language: str = Field("en", description="Default language (BCP 47) of articles.")
    timezone: str = Field("UTC", description="Time zone for dates written without one.")
    logo: str | None = Field(None, description="URL of the logo used in feeds and emails.")
    postal_address: str | None = Field(None, description="Postal address for email footers.")
    excerpt_length: int = Field(
        280,
        ge=40,
        le=2000,
        description="Longest summary, in display columns: a letter counts 1, a Chinese "
        "character 2, so summaries in either fill about as many lines.",
    )

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return normalise_language(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return http_url(value)

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class ExtraFeedSettings(Strict):
    language: str | None = Field(None, description="Only articles in this language.")
    section: str | None = Field(None, description="Only articles in this section.")
    tag: str | None = Field(None, description="Only articles with this tag.")
    title: str | None = Field(None, description="Feed title; default: site name + filter.")

    @model_validator(mode="after")
    def _one_filter(self) -> ExtraFeedSettings:
        if not (self.language or self.section or self.tag):
            raise ValueError("give at least one of language, section or tag")
        return self

    def label(self) -> str:
        """The filter in words, e.g. ``zh-CN, blog``."""
        return ", ".join(v for v in (self.language, self.section, self.tag) if v)

    def slug(self) -> str:
        """Folder name under the feeds output, e.g. ``tag/china`` or ``language/zh-cn``."""
        parts = []
        for kind in ("language", "section", "tag"):
            value = getattr(self, kind)
            if value:
                parts += [kind, re.sub(r"[^\w-]+", "-", value.lower(), flags=re.UNICODE).strip("-")]
        return "/".join(parts)

    @model_validator(mode="after")
    def _usable_slug(self) -> ExtraFeedSettings:
        if any(not part for part in self.slug().split("/")):
            raise ValueError("a filter value needs at least one letter or digit")
        return self


class FeedSettings(Strict):
    output: Path = Field(Path("public/feeds"), description="Folder the feed files are written to.")
    url: str | None = Field(
        None, description="Public URL of that folder; default: site.url + /feeds."
    )
    items: int = Field(50, ge=1, le=10_000, description="Newest articles in each feed.")
    formats: tuple[str, ...] = Field(  # names in pipeline.feed_formats: see settings_model
        ("rss", "atom", "json"),
        description="Which of rss, atom and json (or a plug-in's format) to write.",
    )
    extra: tuple[ExtraFeedSettings, ...] = Field(
        (), description="More feeds filtered by language, section or tag."
    )

    @field_validator("extra")
    @classmethod
    def _distinct_folders(
        cls, extra: tuple[ExtraFeedSettings, ...]
    ) -> tuple[ExtraFeedSettings, ...]:
        seen: dict[str, ExtraFeedSettings] = {}
        for feed in extra:
            if feed.slug() in seen:
                raise ValueError(
                    f"extra feeds {seen[feed.slug()].label()!r} and {feed.label()!r} would both "
                    f"be written to {feed.slug()}/; keep only one"
                )
            seen[feed.slug()] = feed
        return extra


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Settings(Strict):
    site: SiteSettings = Field(description="Who publishes, and where.")
    state: str = Field(
        "sqlite:///var/state.db",
        description="SQLAlchemy database URL of the state store; a relative SQLite path is "
        "under the project folder.",
    )
    # The options of each kind of source and channel, and the feed formats, come from the
    # plug-ins installed: see ``settings_model``, which narrows these three to them.
    sources: tuple[SourceBase, ...] = Field(description="Where articles come from.")
    feeds: FeedSettings = Field(FeedSettings(), description="The RSS, Atom and JSON feeds.")
    channels: dict[str, ChannelOptions] = Field(
        {}, description="Where article summaries are posted: name → type and settings."
    )
    email: EmailSettings | None = Field(None, description="How digests are sent.")
    digests: dict[str, DigestSettings] = Field(
        {}, description="Email digests: name → contents and audience."
    )
    web: WebSettings = Field(
        WebSettings(), description="The web endpoints of `pipeline serve` (unsubscribe, …)."
    )
    queue: QueueSettings | None = Field(
        None,
        description="Run the work as jobs on PostgreSQL, for `pipeline worker` processes on "
        "any number of machines; without it, `serve` runs everything itself.",
    )

    @model_validator(mode="after")
    def _email_for_digests(self) -> Settings:
        if self.digests and self.email is None:
            raise ValueError("digests need an `email:` section (from, unsubscribe, delivery)")
        for name in self.digests:
            check_name(name)
        return self

    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def root(self) -> Path:
        """The project folder relative paths were resolved against."""
        return self._root

    @field_validator("queue")
    @classmethod
    def _queue_on_postgres(
        cls, queue: QueueSettings | None, info: ValidationInfo
    ) -> QueueSettings | None:
        state = str(info.data.get("state", ""))
        if queue is not None and not state.startswith("postgresql"):
            raise ValueError(
                "a job queue keeps its jobs in the state store, which must then be "
                "PostgreSQL (state: postgresql+psycopg://…); on SQLite remove `queue:` "
                "and `serve` runs everything in one process"
            )
        return queue

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: dict[str, Any]) -> dict[str, Any]:
        for name in channels:
            check_name(name)
        return channels

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: tuple[SourceBase, ...]) -> tuple[SourceBase, ...]:
        seen: set[str] = set()
        for source in sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}; names must be unique")
            seen.add(source.name)
        return sources


def project_root(config_file: Path) -> Path:
    folder = config_file.resolve().parent
    return folder.parent if folder.name == "config" else folder


def load_settings(config_file: Path, plugins: Plugins | None = None) -> Settings:
    """Read, check and resolve config/pipeline.yaml; raise ConfigError with every problem.
    Sources, channels, feed formats and transports are those ``plugins`` (default: every
    installed one) provides."""
    doc = read_yaml_file(config_file)
    problems: list[Problem] = []
    from_env: set[tuple] = set()
    data = expand_env(doc, doc.data, (), problems, from_env)
    plugins = plugins or Plugins()
    model = settings_model(plugins)
    try:
        settings = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from_validation(doc, exc, model))
        raise ConfigError(problems) from None
    problems.extend(_literal_secrets(doc, settings, (), from_env))
    if problems:
        raise ConfigError(problems)
    resolved = _resolve_paths(settings, project_root(config_file))
    from pipeline.dkim import config_problems

    problems.extend(config_problems(doc, resolved, plugins))
    if problems:
        raise ConfigError(problems)
    return resolved


def settings_model(plugins: Plugins) -> type[Settings]:
    """``Settings`` whose ``sources``, ``channels``, ``feeds.formats`` and
    ``email.delivery`` accept exactly what ``plugins`` provides: each source and channel
    is validated against the options model of its ``type``, so a plug-in's options get
    the same located errors (and "did you mean") as the built-ins'."""
    sources = _by_type(plugins, SOURCES, SourceBase)
    channels = _by_type(plugins, CHANNELS, ChannelOptions)
    formats = _one_of(plugins, FEED_FORMATS)
    feeds = create_model(
        "FeedSettings",
        __base__=FeedSettings,
        formats=_narrowed(FeedSettings, "formats", tuple[formats, ...]),  # type: ignore[valid-type]
    )
    email = create_model(
        "EmailSettings",
        __base__=EmailSettings,
        delivery=_narrowed(EmailSettings, "delivery", _one_of(plugins, TRANSPORTS)),
    )
    return create_model(
        "Settings",
        __base__=Settings,
        sources=_narrowed(Settings, "sources", tuple[sources, ...]),  # type: ignore[valid-type]
        channels=_narrowed(Settings, "channels", dict[str, channels]),  # type: ignore[valid-type]
        feeds=_narrowed(Settings, "feeds", feeds, default=feeds()),
        email=_narrowed(Settings, "email", email | None),
    )


def _narrowed(
    model: type[BaseModel], name: str, annotation: Any, **changes: Any
) -> tuple[Any, Any]:
    """Field ``name`` of ``model`` (its default, bounds, help text) with a new type."""
    info = copy.copy(model.model_fields[name])
    for key, value in changes.items():
        setattr(info, key, value)
    return annotation, info


def _one_of(plugins: Plugins, group: str) -> Any:
    names = plugins.names(group)
    if not names:
        raise PluginError(
            f"entry points of group {group}",
            "none are installed, not even the built-ins",
            "install newsroom-pipeline (in a checkout: pip install -e . again)",
        )
    return Literal.__getitem__(tuple(names))


def _by_type(plugins: Plugins, group: str, base: type[BaseModel]) -> Any:
    """The options models of ``group``'s adapters as one union told apart by ``type``."""
    models = []
    for name, entry in plugins.entries(group).items():
        model = plugins.options_model(group, name)
        if not (
            isinstance(model, type)
            and issubclass(model, base)
            and get_args(model.model_fields["type"].annotation) == (name,)
        ):
            raise PluginError(
                entry.described(),
                "has no usable `options_model`",
                f"give its class `options_model`, a subclass of {base.__name__} with "
                f"`type: Literal[{name!r}]`",
            )
        models.append(model)
    union = Union.__getitem__(tuple(models)) if models else _one_of(plugins, group)
    return Annotated[union, Field(discriminator="type")] if len(models) > 1 else union


MAX_FILE_BYTES = 1_000_000  # config and schedules.yaml are a few kilobytes


def read_yaml_file(path: Path) -> YamlDocument:
    """Read config or schedules.yaml: every way it can be wrong is a located ConfigError."""
    shown = display_path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(
                [
                    Problem(
                        shown,
                        None,
                        None,
                        f"larger than {MAX_FILE_BYTES:,} bytes",
                        "is it the right file?",
                    )
                ]
            )
        # As text mode read it before: universal newlines, so lines count the same.
        text = raw.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(shown, None, None, "file not found", "create it or pass the right path")]
        ) from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            [Problem(shown, line, None, f"not UTF-8 text ({exc.reason})", "save it as UTF-8")]
        ) from None
    except OSError as exc:  # a folder, no permission, a disk error
        raise ConfigError([Problem(shown, None, None, f"cannot be read: {exc.strerror}")]) from None
    doc = parse_yaml(text, shown)
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(shown, 1, 1, "expected a mapping of keys to values")])
    return doc


def expand_env(
    doc: YamlDocument, value: Any, path: tuple, problems: list[Problem], from_env: set[tuple]
) -> Any:
    """Replace ``${NAME}`` with the environment variable NAME, noting any that are unset
    and (in ``from_env``) the paths of the values that came from the environment."""
    if isinstance(value, dict):
        return {k: expand_env(doc, v, (*path, k), problems, from_env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(doc, v, (*path, i), problems, from_env) for i, v in enumerate(value)]
    if isinstance(value, str):
        if _ENV_REF.search(value):
            from_env.add(path)

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(
                    doc.problem(path, f"environment variable {name} is not set", f"export {name}=…")
                )
                return ""
            return os.environ[name]

        return _ENV_REF.sub(lookup, value)
    return value


def _literal_secrets(
    doc: YamlDocument, model: BaseModel, path: tuple, from_env: set[tuple]
) -> list[Problem]:
    """A credential written into the file would end up in version control and backups."""
    problems = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*path, name)
        if is_secret(info) and value and here not in from_env:
            problems.append(
                doc.problem(
                    here,
                    f"`{dotted(here)}` is a secret written into the file",
                    f"write `{name}: ${{{name.upper()}}}` and set {name.upper()} in the "
                    "environment (the value may start with a variable prefix, e.g. "
                    "${NEWS_MASTODON_TOKEN})",
                )
            )
        children: list[tuple[tuple, Any]] = []
        if isinstance(value, BaseModel):
            children = [(here, value)]
        elif isinstance(value, dict):
            children = [((*here, k), v) for k, v in value.items()]
        elif isinstance(value, tuple):
            children = [((*here, i), v) for i, v in enumerate(value)]
        for child_path, child in children:
            if isinstance(child, BaseModel):
                problems.extend(_literal_secrets(doc, child, child_path, from_env))
    return problems


def default_template(channel_type: str, root: Path | None = None) -> Path:
    """A channel's template unless it names one: the project's or the packaged one for
    its type, else (for a type that ships none, such as a plug-in's) the generic one."""
    own = Path("templates") / "channels" / f"{channel_type}.txt.j2"
    if root is None or find_template(root / own) is not None:
        return own
    return Path("templates") / "channels" / "generic.txt.j2"


def _with_paths(options: BaseModel, root: Path) -> dict[str, Path]:
    """The file and folder options (``path:`` and any other ``Path`` field but the
    template) resolved against the project folder."""
    return {
        name: root / value
        for name in type(options).model_fields
        if name != "template" and isinstance(value := getattr(options, name), Path)
    }


def _resolve_paths(settings: Settings, root: Path) -> Settings:
    sources = tuple(s.model_copy(update=_with_paths(s, root)) for s in settings.sources)
    feeds = settings.feeds.model_copy(update={"output": root / settings.feeds.output})
    state = settings.state
    prefix = "sqlite:///"
    if state.startswith(prefix + "file:"):
        # A URI filename (e.g. `?mode=ro&uri=true`): keep the `file:` scheme, resolve its path.
        state = prefix + "file:" + str(root / state[len(prefix + "file:") :])
    elif state.startswith(prefix) and not state.startswith(prefix + "/") and state != "sqlite://":
        state = prefix + str(root / state[len(prefix) :])
    channels = {
        name: options.model_copy(
            update={
                "template": root / (options.template or default_template(options.type, root)),
                **_with_paths(options, root),
            }
        )
        for name, options in settings.channels.items()
    }
    email = settings.email
    if email is not None:
        dkim = email.dkim and email.dkim.resolved(root)
        email = email.model_copy(update={"outbox": root / email.outbox, "dkim": dkim})
    digests = {
        name: digest.model_copy(
            update={"template": root / (digest.template or Path("templates/digest.mjml.j2"))}
        )
        for name, digest in settings.digests.items()
    }
    resolved = settings.model_copy(
        update={
            "sources": sources,
            "feeds": feeds,
            "state": state,
            "channels": channels,
            "email": email,
            "digests": digests,
        }
    )
    resolved._root = root
    return resolved
