"""Every error the pipeline raises on purpose, in one tree.

    PipelineError                  base; never raised itself
    ├── ConfigError                config, schedules or templates are wrong: exit status 2,
    │                              nothing is changed; carries every Problem found at once
    ├── SourceUnavailable          a source could not be read this time (network, HTTP
    │                              status, unreadable folder); its articles stay as they were
    ├── StoreError                 the state store cannot be opened or written
    └── DeliveryFailed             one post or one email could not be delivered
        ├── TemporaryFailure       worth retrying: 429, 5xx, a timeout, a dropped connection;
        │                          carries retry_after (seconds) and whether the request
        │                          may have arrived (unknown_outcome)
        └── PermanentFailure       retrying cannot help: 400/401/403/404/422, a 5xx SMTP reply
                                   for a recipient; carries the network's own reason

A rejected article is not an exception that escapes: sources report it as a Problem
beside the articles that did load, and the command exits with status 1.

A ``Problem`` is one located message: ``file:line:column: what is wrong — how to fix it``.
Line and column are 1-based; either may be unknown (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One mistake in a file a person edits, with where it is and what would fix it."""

    file: str
    line: int | None
    column: int | None
    message: str
    hint: str = ""

    def location(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


def display_path(path: Path) -> str:
    """A path as a person should see it in a message: relative to where they are, if below."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigError(PipelineError):
    """Configuration, schedules or templates are invalid; holds every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ArticleRejected(PipelineError):
    """One article cannot be ingested; ``problem`` says which file, line and why."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))

    @classmethod
    def at(
        cls, file: str | Path, line: int | None, message: str, hint: str = ""
    ) -> ArticleRejected:
        return cls(Problem(str(file), line, None, message, hint))


class SourceUnavailable(PipelineError):
    """A source could not be read this run; nothing it holds is changed in the store."""


class StoreError(PipelineError):
    """The state store cannot be opened or written."""


class DeliveryFailed(PipelineError):
    """One post or one email could not be delivered; ``reason`` is the far side's words.

    ``status`` and ``response`` are the HTTP answer when there was one (None for a
    timeout or an SMTP failure), for channels that act on a network's error names."""

    def __init__(self, reason: str, *, status: int | None = None, response: Any = None):
        self.reason = reason
        self.status = status
        self.response = response
        super().__init__(reason)


class TemporaryFailure(DeliveryFailed):
    """Worth retrying later. ``unknown_outcome``: the request may have been delivered
    (a read timeout, a connection dropped after sending), so only a channel that
    deduplicates may retry it blindly."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        unknown_outcome: bool = False,
        **answer: Any,
    ):
        super().__init__(reason, **answer)
        self.retry_after = retry_after
        self.unknown_outcome = unknown_outcome


class PermanentFailure(DeliveryFailed):
    """Retrying cannot help until someone changes something (credentials, content)."""
