"""The markdown source: a folder of ``*.md`` / ``*.html`` files with YAML front matter.

A file whose size and modification time match what the store saw last time is not
read at all, so re-ingesting a large unchanged archive costs one ``stat`` per file.
Every problem in a file is reported with its path and line, and that file alone is
rejected; an article already published from it stays as it was until it is fixed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Self

from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml.error import MarkedYAMLError

from pipeline import text
from pipeline.errors import ConfigError, Problem, SourceUnavailable, display_path
from pipeline.model import Item, Scan
from pipeline.settings import SiteSettings, normalise_language
from pipeline.settings.sources import MarkdownSourceSettings
from pipeline.sources import SourceContext
from pipeline.sources.build import make_article, one_line, parse_date, shorten, slugify
from pipeline.storing import Streamed
from pipeline.urls import UnsafeURL
from pipeline.validation import problems_from_validation
from pipeline.yamlfile import YamlDocument, parse_yaml

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

    options_model = MarkdownSourceSettings

    @classmethod
    def from_settings(cls, settings: MarkdownSourceSettings, context: SourceContext) -> Self:
        return cls(settings, context.site)

    def __init__(self, settings: MarkdownSourceSettings, site: SiteSettings):
        self.name = settings.name
        self.settings = settings
        self.site = site
        self._markdown = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(
            ["table", "strikethrough"]
        )

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        streamed = self.stream(known, cursor)
        changed = list(streamed.items)
        streamed.scan.changed = changed
        return streamed.scan

    def stream(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Streamed:
        """The scan, file by file: each new or changed file's Item is yielded as it is
        read, so no more than the store's batch is in memory at once."""
        root = self.settings.path
        if not root.is_dir():
            raise SourceUnavailable(f"source {self.name}: folder {root} does not exist")
        scan = Scan(complete=True)
        return Streamed(self._items(root, known, scan), scan)

    def _items(self, root: Path, known: Mapping[str, str], scan: Scan) -> Iterator[Item]:
        ids: dict[str, str] = {}
        unlisted: list[OSError] = []
        shown_below = _ShownBelow(root)
        for path, key in self._files(root, unlisted.append):
            # Whatever one file raises, that file alone is rejected; its published
            # version (if any) is held until it is fixed.
            try:
                item = self._scan_file(path, key, shown_below(path, key), known, ids, scan)
            except Rejected as rejected:
                scan.rejected.extend(rejected.problems)
                scan.held.add(key)
                continue
            except Exception as exc:
                scan.rejected.append(_unexpected(_shown(path), exc))
                scan.held.add(key)
                continue
            if item is not None:
                yield item
        for error in unlisted:
            # Its files were not seen, so they must not count as deleted.
            scan.complete = False
            folder = _shown(Path(error.filename or root))
            reason = error.strerror or one_line(error)
            scan.rejected.append(
                Problem(
                    folder,
                    None,
                    None,
                    f"folder cannot be listed: {reason}",
                    "check its permissions; its articles stay as they were",
                )
            )

    def _scan_file(
        self,
        path: Path,
        key: str,
        shown: str,
        known: Mapping[str, str],
        ids: dict[str, str],
        scan: Scan,
    ) -> Item | None:
        """The file's Item if it is new or changed; None if unchanged or a draft."""
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the run for ever
            raise Rejected(Problem(shown, None, None, "not a regular file", "remove it"))
        if not _is_utf8(key):  # os.walk kept the bytes as lone surrogates
            raise Rejected(
                Problem(shown, None, None, "the file name is not UTF-8", "rename the file")
            )
        fingerprint = f"{info.st_mtime_ns}:{info.st_size}"
        if known.get(key) == fingerprint:
            scan.unchanged[key] = fingerprint
            return None
        item = self._read(path, key, shown, fingerprint, info.st_size)
        if item is None:  # a draft: leaves the feeds
            return None
        if item.article.id in ids:
            raise Rejected(
                Problem(
                    item.article.origin,
                    self._id_line(path),
                    None,
                    f"duplicate id {item.article.id!r}: {ids[item.article.id]} already uses it",
                    "give one of them a different `id:`",
                )
            )
        ids[item.article.id] = item.article.origin
        return item

    def _files(self, root: Path, unlisted: Callable[[OSError], None]) -> Iterator[tuple[Path, str]]:
        """(path, key) of every article file below root, in a stable order."""
        for folder, dirs, names in os.walk(root, onerror=unlisted):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                    path = Path(folder, name)
                    yield path, path.relative_to(root).as_posix()

    def _read(self, path: Path, key: str, shown: str, fingerprint: str, size: int) -> Item | None:
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
        except Exception as exc:  # e.g. 2026-02-30, which the YAML loader itself refuses
            raise Rejected(_front_matter_problem(head, shown, exc)) from None
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
        except UnsafeURL as exc:
            raise Rejected(_link_problem(doc, shown, exc)) from None
        except ValueError as exc:
            raise Rejected(Problem(shown, body_line, None, str(exc))) from None
        return Item(key, fingerprint, article)

    @staticmethod
    def _id_line(path: Path) -> int | None:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("id:"):
                return number
        return None


def _link_problem(doc: YamlDocument, shown: str, exc: UnsafeURL) -> Problem:
    """An unusable ``url:`` or ``image:``, at the line that holds it."""
    if exc.field and exc.field in doc.data:
        return doc.problem((exc.field,), f"`{exc.field}`: {exc.problem}", exc.hint)
    # Not written in the file: the default URL, made from site.url and the file name.
    return Problem(shown, None, None, f"the article's URL: {exc.problem}", exc.hint)


class Rejected(Exception):
    """Internal: this file is unusable, for the reasons given."""

    def __init__(self, *problems: Problem):
        self.problems = list(problems)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(path: Path) -> str:
    """The path for messages; a name that is not UTF-8 shows its bytes escaped."""
    return shorten(display_path(path), 1000)


class _ShownBelow:
    """``_shown`` for the files below one folder, with the folder resolved once instead
    of every file's path (``resolve`` is a system call per path component).

    ``os.walk`` does not enter linked folders, so below the resolved root a file's path
    resolves to the root's resolved path plus its key, unless the file itself is a link:
    that one, and every file when the working directory is inside the folder (where
    ``display_path`` may or may not shorten a path), take the slow way.
    """

    def __init__(self, root: Path):
        resolved, cwd = root.resolve(), Path.cwd()
        self.relative: str | None = None  # the resolved root as display_path shows it
        self.unresolved = False  # display_path shows these paths as they are given
        if resolved == cwd or cwd in resolved.parents:
            relative = resolved.relative_to(cwd).as_posix()
            self.relative = "" if relative == "." else relative + "/"
        elif resolved not in cwd.parents:  # neither holds the other
            self.unresolved = True

    def __call__(self, path: Path, key: str) -> str:
        if (self.relative is None and not self.unresolved) or path.is_symlink():
            return _shown(path)
        return shorten(str(path) if self.unresolved else f"{self.relative}{key}", 1000)


# What YAML reads as a date: year-month-day, optionally followed by a time.
_YAML_DATE = re.compile(r"(?<![\w.:-])([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?![0-9])")


def _front_matter_problem(head: str, shown: str, exc: Exception) -> Problem:
    """A located Problem for an exception the YAML layer did not turn into one."""
    for number, line in enumerate(head.splitlines(), 2):
        for match in _YAML_DATE.finditer(line):
            year, month, day = (int(part) for part in match.groups())
            try:
                dt.date(year, month, day)
            except ValueError as bad:
                return Problem(
                    shown,
                    number,
                    match.start() + 1,
                    f"{match.group()!r} is not a date: {bad}",
                    "write a real calendar date, e.g. 2024-03-01",
                )
    return _unexpected(shown, exc, line=2)


def _unexpected(shown: str, exc: BaseException, line: int | None = None) -> Problem:
    """A Problem for an exception no check anticipated, located where the exception says."""
    if isinstance(exc, MarkedYAMLError) and (exc.problem_mark or exc.context_mark):
        mark = exc.problem_mark or exc.context_mark
        what = shorten(exc.problem or exc.context or "not valid YAML", 300)
        return Problem(
            shown,
            mark.line + 2,  # the front matter starts on line 2
            mark.column + 1,
            f"YAML syntax error: {what}",
            "indent with spaces, not tabs, and quote values that contain ': '",
        )
    if isinstance(exc, RecursionError):
        return Problem(
            shown,
            line,
            None,
            "nested too deeply to be read (a recursive YAML alias, or thousands of nested "
            "HTML elements or list levels)",
            "remove `&anchor` / `*alias` pairs and flatten the nesting",
        )
    return Problem(
        shown,
        line,
        None,
        f"cannot be read: {one_line(exc)}",
        "fix or remove this file; the other files were read",
    )


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
