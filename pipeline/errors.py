"""Every error the pipeline raises on purpose, in one tree.

    PipelineError                  base; never raised itself
    ├── ConfigError                config, schedules or templates are wrong: exit status 2,
    │                              nothing is changed; carries every Problem found at once
    ├── SourceUnavailable          a source could not be read this time (network, HTTP
    │                              status, unreadable folder); its articles stay as they were
    ├── StoreError                 the state store cannot be opened or written
    │   └── StateLost              the store is empty but the project has published before:
    │                              running on would post and send everything again
    ├── StorageError               a file or folder cannot be written (disk full, read-only,
    │                              a file where a folder should be); what was written before stays
    └── DeliveryFailed             one post or one email could not be delivered
        ├── TemporaryFailure       worth retrying: 429, 5xx, a timeout, a dropped connection;
        │                          carries retry_after (seconds) and whether the request
        │                          may have arrived (unknown_outcome)
        └── PermanentFailure       retrying cannot help: 400/401/403/404/422, a 5xx SMTP reply
                                   for a recipient; carries the network's own reason

A rejected article is not an exception that escapes: sources report it as a Problem
beside the articles that did load, and the command exits with status 1.

Storage faults reach people as one line each (``describe_os_error``,
``describe_database_error``): what failed, where, and what to do, never a traceback and
never SQL (SQLAlchemy's message carries the statement and its parameters, which can be
whole rendered emails).

A ``Problem`` is one located message: ``file:line:column: what is wrong — how to fix it``.
Line and column are 1-based; either may be unknown (``None``).
"""

from __future__ import annotations

import errno
import os
import re
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


class StateLost(StoreError):
    """The state store is empty (deleted, replaced, or the wrong ``state:`` URL) while the
    project's own output shows it has published before: carrying on would post and send
    every article again, so nothing runs until the store is restored or adopted."""


class StorageError(PipelineError):
    """A file or folder cannot be written: disk full, read-only, a file where a folder
    should be. The message says what, where and what to do; files written atomically
    before the fault keep their previous content."""


# -- storage faults, one line each -------------------------------------------------------

_FREE_SPACE = "free some space on that disk, then run again"
_ELSEWHERE = "or choose another folder in config/pipeline.yaml"
_OS_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", _FREE_SPACE),
    errno.EDQUOT: ("the disk quota is used up", "free some space or raise the quota"),
    errno.EFBIG: (
        "the file would be larger than this system allows",
        "raise the file-size limit (ulimit -f) or free some space, then run again",
    ),
    errno.EROFS: ("the file system is read-only", f"remount it read-write, {_ELSEWHERE}"),
    errno.EACCES: ("permission denied", "let {user} write there, " + _ELSEWHERE),
    errno.EPERM: ("operation not permitted", "let {user} write there, " + _ELSEWHERE),
    errno.ENOTDIR: ("a file stands where a folder should be", f"move that file away, {_ELSEWHERE}"),
    errno.EEXIST: ("a file stands where a folder should be", f"move that file away, {_ELSEWHERE}"),
    errno.EISDIR: ("a folder stands where a file should be", "move that folder away"),
    errno.ENOENT: ("no such file or folder", "create it, " + _ELSEWHERE),
    errno.EIO: ("input/output error: the disk may be failing", "check the disk, then run again"),
}


def _user() -> str:
    try:
        import pwd

        return f"the user running the pipeline ({pwd.getpwuid(os.geteuid()).pw_name})"
    except (ImportError, KeyError, AttributeError):
        return "the user running the pipeline"


def describe_os_error(exc: OSError, what: str, path: str | Path | None = None) -> str:
    """``cannot write the feed public/feeds/rss.xml: no space left on the device — free
    some space on that disk, then run again``. ``path`` is where, when the error does
    not name a file itself (a failed write names none)."""
    where = path if path is not None else exc.filename
    shown = f" {display_path(Path(os.fsdecode(where)))}" if where is not None else ""
    reason, fix = _OS_FAULTS.get(exc.errno or 0, (exc.strerror or str(exc), ""))
    text = f"{what}{shown}: {reason}"
    return f"{text} — {fix.format(user=_user())}" if fix else text


_DB_FAULTS: list[tuple[str, tuple[str, ...], tuple[str, ...], str, str]] = [
    # (kind, SQLSTATEs, message fragments, what it means, what to do); first match wins
    (
        "read-only",
        ("25006",),
        ("readonly database", "read-only"),
        "it is read-only",
        "give the user running the pipeline write access to it (for SQLite: the file "
        "and its folder), or point `state:` in config/pipeline.yaml at a writable database",
    ),
    (
        "full",
        ("53100",),
        ("disk is full", "no space left"),
        "its disk is full",
        "free some space, then run again (the failed write was rolled back)",
    ),
    (
        "damaged",
        ("XX001", "XX002"),
        ("not a database", "malformed", "corrupt"),
        "it is damaged",
        "restore it from a backup, or move it aside and start over with "
        "`pipeline state adopt` (README: Restoring or starting over)",
    ),
    (
        "locked",
        ("55P03", "40P01"),
        ("database is locked",),
        "another process holds a lock on it",
        "wait for the other `pipeline` to finish, then run again",
    ),
    (
        "login",
        ("28P01", "28000"),
        ("authentication failed", "no pg_hba.conf entry"),
        "it refused the login",
        "check the user and password in `state:` (config/pipeline.yaml)",
    ),
    (
        "missing",
        ("3D000", "3F000"),
        ("does not exist", "no schema has been selected"),
        "the database or schema does not exist",
        "create it, or fix `state:` in config/pipeline.yaml",
    ),
    (
        "unreachable",
        ("08000", "08001", "08003", "08004", "08006", "57P01", "57P03"),
        ("connection failed", "could not connect", "connection refused", "server closed"),
        "it cannot be reached",
        "check that the database server is running and that `state:` in "
        "config/pipeline.yaml names the right host and port",
    ),
    (
        "cannot open",
        (),
        ("unable to open database file",),
        "it cannot be opened",
        "check that its folder exists and that the user running the pipeline may write "
        "there, and that `state:` in config/pipeline.yaml names the right file",
    ),
    (
        "denied",
        ("42501",),
        ("permission denied",),
        "permission was denied",
        "grant the pipeline's database user the rights it needs on the tables",
    ),
    (
        "too long",
        ("22001",),
        ("value too long",),
        "a value is longer than its column allows",
        "report this: values are checked before they are stored",
    ),
    (
        "i/o",
        ("58030",),
        ("disk i/o error",),
        "the disk reported an input/output error",
        "check the disk, then run again",
    ),
]

_VERBS = {"SELECT": "cannot read", "WITH": "cannot read", "CREATE": "cannot set up"}
_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM|TABLE)\s+\"?(\w+)", re.IGNORECASE)


def database_message(exc: BaseException) -> tuple[str, str | None]:
    """The driver's own message (first line, no SQL, no parameters) and the SQLSTATE."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    message = getattr(diag, "message_primary", None) or str(orig)
    message = message.split("[SQL:")[0].strip().splitlines()[0] if message.strip() else ""
    if orig is exc and message.startswith("("):  # SQLAlchemy's "(module.Class) message"
        message = message.partition(") ")[2] or message
    return message[:300] or type(orig).__name__, getattr(orig, "sqlstate", None)


def describe_database_error(exc: BaseException, where: str) -> str:
    """``cannot write to the state store var/state.db (table editions): it is read-only
    (sqlite3: attempt to write a readonly database) — give …``. Built from the driver's
    message and the statement's verb and table only: SQLAlchemy's own text would print
    the statement and every parameter (article bodies, rendered emails)."""
    message, sqlstate = database_message(exc)
    statement = getattr(exc, "statement", None) or ""
    words = statement.split()
    verb = _VERBS.get(words[0].upper(), "cannot write to") if words else "cannot open"
    table = _TABLE.search(statement)
    place = f"{where} (table {table.group(1)})" if table else where
    orig = getattr(exc, "orig", None) or exc
    driver = type(orig).__module__.split(".")[0]
    driver = "SQLAlchemy" if driver == "sqlalchemy" else driver
    lowered = message.lower()
    for _kind, states, fragments, meaning, fix in _DB_FAULTS:
        if (sqlstate and sqlstate in states) or any(f in lowered for f in fragments):
            return f"{verb} the state store {place}: {meaning} ({driver}: {message}) — {fix}"
    return f"{verb} the state store {place}: {driver}: {message}"
