"""config/pipeline.yaml: every setting defined once, with its help text.

The README documents each setting; ``tests/test_settings.py`` checks that it documents
every field below, so a new setting cannot ship undocumented.

Relative paths are resolved against the project folder: the folder that holds
``config/`` when the file lives in a folder of that name, otherwise the file's own folder.
"""

from __future__ import annotations

import difflib
import os
import re
import zoneinfo
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError, Problem, display_path
from pipeline.yamlfile import YamlDocument, parse_yaml, problems_from_validation

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_language(value: str) -> str:
    if not _LANGUAGE.match(value):
        raise ValueError(f"{value!r} is not a language tag; use BCP 47, e.g. en or zh-CN")
    return value


def normalise_language(value: str) -> str:
    """BCP 47 casing, so that filters match: ``zh-cn`` and ``zh_CN`` become ``zh-CN``."""
    first, *rest = check_language(value.strip().replace("_", "-")).split("-")
    rest = [p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p.lower() for p in rest]
    return "-".join([first.lower(), *rest])


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, _timezones(), n=1)
        hint = f"did you mean {close[0]}?" if close else "use an IANA name such as Asia/Kathmandu"
        raise ValueError(f"unknown time zone {value!r}; {hint}") from None
    return value


@cache
def _timezones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


class SiteSettings(Strict):
    name: str = Field(description="Organisation or site name, shown in feeds and emails.")
    url: str = Field(description="Public base URL of the site, e.g. https://example.org.")
    language: str = Field("en", description="Default language (BCP 47) of articles.")
    timezone: str = Field("UTC", description="Time zone for dates written without one.")
    logo: str | None = Field(None, description="URL of the logo used in feeds and emails.")
    postal_address: str | None = Field(None, description="Postal address for email footers.")
    excerpt_length: int = Field(
        280, ge=40, le=2000, description="Longest computed excerpt, in characters (graphemes)."
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
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL, e.g. https://example.org")
        return value.rstrip("/")


class SourceBase(Strict):
    name: str = Field(description="Unique source name (lower case); the default section.")
    section: str | None = Field(None, description="Section for its articles; default: name.")
    language: str | None = Field(None, description="Language of its articles; default site.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits, - and _, e.g. news")
        return value

    @field_validator("language")
    @classmethod
    def _lang(cls, value: str | None) -> str | None:
        return None if value is None else normalise_language(value)


class MarkdownSourceSettings(SourceBase):
    type: Literal["markdown"] = Field(description="A folder of *.md / *.html files.")
    path: Path = Field(description="Folder holding the articles (searched recursively).")
    max_bytes: int = Field(
        1_000_000, ge=1_000, description="Larger article files are rejected, not read."
    )


class HttpSourceBase(SourceBase):
    url: str = Field(description="URL to poll.")
    timeout: float = Field(20.0, gt=0, description="Seconds to wait for the server.")

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must be an absolute http(s) URL")
        return value


class FeedSourceSettings(HttpSourceBase):
    type: Literal["feed"] = Field(description="An upstream RSS or Atom feed.")


class WordPressSourceSettings(HttpSourceBase):
    type: Literal["wordpress"] = Field(description="A WordPress site's REST API.")
    max_pages: int = Field(
        20, ge=1, description="Stop after this many pages of 100 posts, newest first."
    )


SourceSettings = Annotated[
    MarkdownSourceSettings | FeedSourceSettings | WordPressSourceSettings,
    Field(discriminator="type"),
]

FeedFormat = Literal["rss", "atom", "json"]


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
    formats: tuple[FeedFormat, ...] = Field(
        ("rss", "atom", "json"), description="Which of rss, atom and json to write."
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


class Settings(Strict):
    site: SiteSettings = Field(description="Who publishes, and where.")
    state: str = Field(
        "sqlite:///var/state.db",
        description="SQLAlchemy database URL of the state store; a relative SQLite path is "
        "under the project folder.",
    )
    sources: tuple[SourceSettings, ...] = Field(description="Where articles come from.")
    feeds: FeedSettings = Field(FeedSettings(), description="The RSS, Atom and JSON feeds.")

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


def load_settings(config_file: Path) -> Settings:
    """Read, check and resolve config/pipeline.yaml; raise ConfigError with every problem."""
    doc = read_yaml_file(config_file)
    problems: list[Problem] = []
    data = expand_env(doc, doc.data, (), problems)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from_validation(doc, exc, Settings))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return _resolve_paths(settings, project_root(config_file))


def read_yaml_file(path: Path) -> YamlDocument:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(shown, None, None, "file not found", "create it or pass the right path")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(shown, None, None, f"not UTF-8 text ({exc.reason})", "save it as UTF-8")]
        ) from None
    doc = parse_yaml(text, shown)
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(shown, 1, 1, "expected a mapping of keys to values")])
    return doc


def expand_env(doc: YamlDocument, value: Any, path: tuple, problems: list[Problem]) -> Any:
    """Replace ``${NAME}`` with the environment variable NAME, noting any that are unset."""
    if isinstance(value, dict):
        return {k: expand_env(doc, v, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(doc, v, (*path, i), problems) for i, v in enumerate(value)]
    if isinstance(value, str):

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


def _resolve_paths(settings: Settings, root: Path) -> Settings:
    sources = tuple(
        s.model_copy(update={"path": root / s.path}) if isinstance(s, MarkdownSourceSettings) else s
        for s in settings.sources
    )
    feeds = settings.feeds.model_copy(update={"output": root / settings.feeds.output})
    state = settings.state
    prefix = "sqlite:///"
    if state.startswith(prefix) and not state.startswith(prefix + "/") and state != "sqlite://":
        state = prefix + str(root / state[len(prefix) :])
    return settings.model_copy(update={"sources": sources, "feeds": feeds, "state": state})
