"""``sources:`` in config/pipeline.yaml: what every source shares, and the options of
the built-in kinds (markdown, feed, wordpress).

The options of each kind live here, not in its adapter's module, so that the settings
are validated without importing the adapters: each is declared by an entry point of
group ``pipeline.source_options`` (pipeline.plugins), and its adapter (its entry point
of group ``pipeline.sources``) names the same model as ``options_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipeline.settings.base import Strict, check_name, normalise_language
from pipeline.urls import WEB_URL


class SourceBase(Strict):
    type: str = Field(description="What kind of source: a name registered in pipeline.sources.")
    name: str = Field(description="Unique source name (lower case); the default section.")
    section: str | None = Field(None, description="Section for its articles; default: name.")
    language: str | None = Field(None, description="Language of its articles; default site.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("language")
    @classmethod
    def _lang(cls, value: str | None) -> str | None:
        return None if value is None else normalise_language(value)


class HttpSourceBase(SourceBase):
    url: str = Field(description="URL to poll.")
    timeout: float = Field(
        20.0, gt=0, le=600, allow_inf_nan=False, description="Seconds to wait for the server."
    )
    max_bytes: int = Field(
        20_000_000,
        ge=1_000,
        le=500_000_000,
        description="Larger responses (counted after decompression) make the source "
        "unavailable for that run.",
    )
    max_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Longest one request may take in all: connecting, redirects and every read.",
    )

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not WEB_URL.match(value):
            raise ValueError("must be an absolute http(s) URL")
        return value


class MarkdownSourceSettings(SourceBase):
    type: Literal["markdown"] = Field(description="A folder of *.md / *.html files.")
    path: Path = Field(description="Folder holding the articles (searched recursively).")
    max_bytes: int = Field(
        1_000_000,
        ge=1_000,
        le=100_000_000,
        description="Larger article files are rejected, not read.",
    )


class FeedSourceSettings(HttpSourceBase):
    type: Literal["feed"] = Field(description="An upstream RSS or Atom feed.")


class WordPressSourceSettings(HttpSourceBase):
    type: Literal["wordpress"] = Field(description="A WordPress site's REST API.")
    max_pages: int = Field(
        20, ge=1, le=1000, description="Stop after this many pages of 100 posts, newest first."
    )
