"""A source of articles kept as JSON lines in one file: one object per line, with
``id``, ``title``, ``url``, ``published`` and optionally ``summary`` and ``body``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import Field

from pipeline.errors import Problem, SourceUnavailable
from pipeline.model import Item, Scan
from pipeline.settings import SiteSettings, SourceBase
from pipeline.sources import SourceContext
from pipeline.sources.build import make_article, parse_date


class JsonLinesSettings(SourceBase):
    type: Literal["jsonl"] = Field(description="A file of articles, one JSON object a line.")
    path: Path = Field(description="The file (relative to the project folder).")


class JsonLinesSource:
    options_model = JsonLinesSettings

    @classmethod
    def from_settings(cls, settings: JsonLinesSettings, context: SourceContext) -> Self:
        return cls(settings, context.site)

    def __init__(self, settings: JsonLinesSettings, site: SiteSettings):
        self.name = settings.name
        self.settings = settings
        self.site = site

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        try:
            lines = self.settings.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SourceUnavailable(f"{self.settings.path}: {exc.strerror}") from None
        scan = Scan(complete=True)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fingerprint = hashlib.sha256(line.encode("utf-8")).hexdigest()
            try:
                entry = json.loads(line)
                key = str(entry["id"])
                if known.get(key) == fingerprint:
                    scan.unchanged[key] = fingerprint
                    continue
                article = make_article(
                    self.site,
                    id=f"{self.name}:{key}",
                    source=self.name,
                    origin=f"{self.settings.path}:{number}",
                    title=entry["title"],
                    published=parse_date(entry["published"], self.site.timezone),
                    body_html=entry.get("body", ""),
                    slug=key,
                    section=self.settings.section or self.name,
                    language=self.settings.language,
                    summary=entry.get("summary"),
                    url=entry.get("url"),
                )
            except (ValueError, KeyError, TypeError) as exc:
                problem = Problem(str(self.settings.path), number, None, f"{exc}")
                scan.rejected.append(problem)
                continue
            scan.changed.append(Item(key, fingerprint, article))
        return scan
