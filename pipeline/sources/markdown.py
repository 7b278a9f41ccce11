"""The markdown source: a folder of ``*.md`` / ``*.html`` files with YAML front matter.

A file whose size and modification time match what the store saw last time is not
read at all, so re-ingesting a large unchanged archive costs one ``stat`` per file.
Every problem in a file is reported with its path and line, and that file alone is
rejected; an article already published from it stays as it was until it is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline import text
from pipeline.errors import ConfigError, Problem, SourceUnavailable, display_path
from pipeline.settings import MarkdownSourceSettings, SiteSettings, normalise_language
from pipeline.sources import Item, Scan
from pipeline.sources.build import make_article, parse_date, slugify
from pipeline.yamlfile import parse_yaml, problems_from_validation

SUFFIXES = (".md", ".markdown", ".html", ".htm")
FENCE = "---"


class FrontMatter(BaseModel):
    """The keys an article may set; see the Articles table in the README."""

    model_config = ConfigDict(extra="forbid")

    title: str
    date: str
    author: str | list[str] | None = None
    language: str | None = None
    section: str | None = None
    tags: list[str] | str | None = None
    summary: str | None = None
    image: str | None = None
    image_alt: str | None = None
    id: str | None = Field(None, min_length=1)
    url: str | None = None
    translation_of: str | None = None
    updated: str | None = None
    draft: bool = False

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else normalise_language(value)

    @field_validator("title", "date", "id", "translation_of", "updated", mode="before")
    @classmethod
    def _scalar_text(cls, value: object) -> object:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


class MarkdownSource:
    """Articles from a folder of Markdown or HTML files."""

    def __init__(self, settings: MarkdownSourceSettings, site: SiteSettings):
        self.name = settings.name
        self.settings = settings
        self.site = site
        self._markdown = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(
            ["table", "strikethrough"]
        )

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        root = self.settings.path
        if not root.is_dir():
            raise SourceUnavailable(f"source {self.name}: folder {root} does not exist")
        scan = Scan(complete=True)
        ids: dict[str, str] = {}
        for path, key, stat in self._files(root):
            fingerprint = f"{stat.st_mtime_ns}:{stat.st_size}"
            if known.get(key) == fingerprint:
                scan.unchanged[key] = fingerprint
                continue
            try:
                item = self._read(path, key, fingerprint, stat.st_size)
            except Rejected as rejected:
                scan.rejected.extend(rejected.problems)
                scan.held.add(key)
                continue
            if item is None:  # a draft: leaves the feeds
                continue
            if item.article.id in ids:
                scan.rejected.append(
                    Problem(
                        item.article.origin,
                        self._id_line(path),
                        None,
                        f"duplicate id {item.article.id!r}: {ids[item.article.id]} already uses it",
                        "give one of them a different `id:`",
                    )
                )
                scan.held.add(key)
                continue
            ids[item.article.id] = item.article.origin
            scan.changed.append(item)
        return scan

    def _files(self, root: Path):
        """(path, key, stat) of every article file below root, in a stable order."""
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                    path = Path(folder, name)
                    yield path, path.relative_to(root).as_posix(), path.stat()

    def _read(self, path: Path, key: str, fingerprint: str, size: int) -> Item | None:
        shown = display_path(path)
        limit = self.settings.max_bytes
        if size > limit:
            raise Rejected(
                Problem(
                    shown,
                    None,
                    None,
                    f"file is {size:,} bytes; the limit is {limit:,}",
                    "split it, or raise max_bytes for this source",
                )
            )
        raw = path.read_bytes()
        try:
            content = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise Rejected(
                Problem(shown, line, None, "not UTF-8 text", "save the file as UTF-8")
            ) from None
        bad = text.find_control_character(content)
        if bad:
            line, column, codepoint = bad
            raise Rejected(
                Problem(
                    shown,
                    line,
                    column,
                    f"control character {codepoint}",
                    "delete it (it is invisible in most editors; often pasted from Word)",
                )
            )
        head, body, body_line = _split_front_matter(content, shown)
        try:
            doc = parse_yaml(head, shown, line_offset=1)
        except ConfigError as exc:
            raise Rejected(*exc.problems) from None
        if not isinstance(doc.data, dict):
            raise Rejected(Problem(shown, 2, 1, "front matter must be `key: value` lines"))
        try:
            meta = FrontMatter.model_validate(doc.data)
        except ValidationError as exc:
            raise Rejected(*problems_from_validation(doc, exc, FrontMatter)) from None
        if meta.draft:
            return None
        tz = self.site.timezone
        try:
            published = parse_date(meta.date, tz)
        except ValueError as exc:
            raise Rejected(doc.problem(("date",), f"`date`: {exc}")) from None
        try:
            updated = parse_date(meta.updated, tz) if meta.updated else None
        except ValueError as exc:
            raise Rejected(doc.problem(("updated",), f"`updated`: {exc}")) from None
        is_html = path.suffix.lower() in (".html", ".htm")
        authors = [meta.author] if isinstance(meta.author, str) else meta.author or []
        tags = [meta.tags] if isinstance(meta.tags, str) else meta.tags or []
        section = meta.section or self.settings.section or self.name
        try:
            article = make_article(
                self.site,
                id=meta.id or f"{self.name}/{key.rsplit('.', 1)[0]}",
                source=self.name,
                origin=shown,
                title=meta.title,
                published=published,
                updated=updated,
                body_html=body if is_html else self._markdown.render(body),
                slug=slugify(path.stem),
                section=section,
                language=meta.language or self.settings.language,
                authors=authors,
                tags=tags,
                summary=meta.summary,
                image=meta.image,
                image_alt=meta.image_alt,
                url=meta.url,
                translation_of=meta.translation_of,
            )
        except ValueError as exc:
            raise Rejected(Problem(shown, body_line, None, str(exc))) from None
        return Item(key, fingerprint, article)

    @staticmethod
    def _id_line(path: Path) -> int | None:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("id:"):
                return number
        return None


class Rejected(Exception):
    """Internal: this file is unusable, for the reasons given."""

    def __init__(self, *problems: Problem):
        self.problems = list(problems)


def _split_front_matter(content: str, shown: str) -> tuple[str, str, int]:
    """(front matter text, body, line number where the body starts)."""
    lines = content.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        raise Rejected(
            Problem(
                shown,
                1,
                1,
                "no front matter",
                "start the file with a line `---`, then `title:` and `date:` lines, then `---`",
            )
        )
    for index in range(1, len(lines)):
        if lines[index].strip() in (FENCE, "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise Rejected(
        Problem(shown, 1, 1, "front matter is never closed", "add a line `---` after the last key")
    )
