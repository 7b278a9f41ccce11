"""``pipeline init``: a new project folder, from the commented files in ``skeleton/``.

The files are packaged with the code (``importlib.resources``), so a project can be
started from the installed wheel, offline. ``$names`` in them are filled in with
``string.Template``; an existing file is never overwritten, so running it again in a
project only adds what is missing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

# Packaged names that a wheel or a repository would treat specially under their own name.
_RENAMED = {"gitignore": ".gitignore"}


@dataclass(frozen=True)
class Answers:
    """What the new project's files say about the site."""

    site_name: str = "Newsroom"
    site_url: str = "https://news.example.org"
    language: str = "en"
    timezone: str = "UTC"

    def values(self, today: dt.date) -> dict[str, str]:
        return {
            "site_name": _in_double_quotes(self.site_name),
            "site_url": self.site_url.rstrip("/"),
            "domain": urlsplit(self.site_url).hostname or "example.org",
            "language": self.language,
            "timezone": self.timezone,
            "today": today.isoformat(),
        }


@dataclass
class Scaffolded:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # already there: left as they were


def init_project(folder: Path, answers: Answers, today: dt.date) -> Scaffolded:
    """Write the skeleton into ``folder`` (created if missing); existing files are kept."""
    values = answers.values(today)
    done = Scaffolded()
    for relative, source in _skeleton_files(files("pipeline") / "skeleton", Path()):
        target = folder / relative
        if target.exists():
            done.kept.append(target)
            continue
        text = Template(source.read_text(encoding="utf-8")).substitute(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as out:  # "x": never over a file made meanwhile
            out.write(text)
        done.written.append(target)
    return done


def _skeleton_files(node: Traversable, relative: Path) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name.startswith(("__", ".")):
            continue
        here = relative / _RENAMED.get(child.name, child.name)
        found.extend(_skeleton_files(child, here) if child.is_dir() else [(here, child)])
    return found


def _in_double_quotes(text: str) -> str:
    """Text for the inside of a double-quoted YAML scalar (where the skeleton puts it)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
