"""The ``pipeline`` command: the group, the project it works on, and error handling.

Exit status: 0 all done; 1 done except for items that were rejected or failed (each
named, the rest delivered); 2 bad usage or configuration (nothing changed), or a storage
fault (disk full, read-only, database unreachable or damaged), said in one line.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline import redact
from pipeline.clock import system_clock
from pipeline.errors import (
    ConfigError,
    PipelineError,
    StateLost,
    StorageError,
    StoreError,
    describe_os_error,
)

if TYPE_CHECKING:  # imported when a command first needs them: `--help` stays instant
    from pipeline.assembly import Assembly
    from pipeline.plugins import Plugins
    from pipeline.settings import Settings

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG = 0, 1, 2


@dataclass
class Project:
    """The files named on the command line, loaded on first use."""

    config_file: Path
    schedules_given: Path | None = None
    _settings: Settings | None = field(default=None, init=False)
    _plugins: Plugins | None = field(default=None, init=False)

    @property
    def plugins(self) -> Plugins:
        """Read once per command: the settings' models and every stage come from the
        same plug-ins."""
        if self._plugins is None:
            from pipeline.plugins import Plugins

            self._plugins = Plugins()
        return self._plugins

    @property
    def schedules_file(self) -> Path:
        """As given, else schedules.yaml in the project folder (beside config/)."""
        return self.schedules_given or self.settings.root / "schedules.yaml"

    def schedules(self) -> Any:
        from pipeline.schedules import load_schedules

        return load_schedules(self.schedules_file, self.settings)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from pipeline.settings import load_settings

            self._settings = load_settings(self.config_file, self.plugins)
            redact.install(self._settings)
        return self._settings

    @contextmanager
    def store(self, *, adopting: bool = False) -> Iterator[Any]:
        """The state store, refused (StateLost) when it was lost: see ``check_not_lost``.
        Only ``pipeline state adopt``, which exists to start over, opens it regardless."""
        from pipeline.store import Store

        store = Store(self.settings.state, self.settings.site.url)
        if store.upgraded is not None:  # a SQLite store a newer version upgraded on opening
            print_error(str(store.upgraded))
        try:
            if self.settings.queue is not None:
                from pipeline.queue.schema import ensure_schema

                ensure_schema(store.engine)
            if not adopting:
                check_not_lost(store, self.settings)
            yield store
        finally:
            store.close()

    def clock(self) -> dt.datetime:
        """Now, for every command (a method, so that a test can move it)."""
        return system_clock()

    @contextmanager
    def assembly(self, *, adopting: bool = False) -> Iterator[Assembly]:
        """The project's stages on its state store."""
        from pipeline.assembly import Assembly

        with self.store(adopting=adopting) as store:
            yield Assembly(self.settings, store, clock=self.clock, plugins=self.plugins)


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event: readable text, or JSON for log shippers.",
)


def print_error(text: str) -> None:
    """The one place error text reaches stderr: whatever every error message needs
    (such as masking secrets) is added here, once."""
    click.echo(redact.scrub(text), err=True)


def command(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command, turning known errors into their message and exit status."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            status = func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                print_error(str(problem))
            noun = "problem" if len(exc.problems) == 1 else "problems"
            print_error(f"{len(exc.problems)} {noun}; nothing was changed.")
            status = EXIT_CONFIG
        except (StoreError, StorageError) as exc:
            print_error(f"error: {exc}")
            status = EXIT_CONFIG
        except PipelineError as exc:
            print_error(f"error: {exc}")
            status = EXIT_PARTIAL
        except Exception as exc:
            message = storage_fault(exc)
            if message is None:
                raise
            print_error(f"error: {message}")
            status = EXIT_CONFIG
        sys.exit(status)

    return run


def storage_fault(exc: BaseException) -> str | None:
    """One line for a database or file-system failure no stage caught, else None. The
    state store's errors become the driver's message with what and where: SQLAlchemy's
    own text would print the statement and its parameters (article bodies, emails)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.store import store_fault

    driver = type(exc).__module__.split(".")[0]
    if isinstance(exc, SQLAlchemyError) or driver in ("sqlite3", "psycopg", "psycopg2"):
        context = click.get_current_context(silent=True)
        project = context.find_object(Project) if context else None
        try:
            url = project.settings.state if project else "(the configured state store)"
        except PipelineError:
            url = "(the configured state store)"
        return str(store_fault(exc, url))
    # requests' errors are OSErrors too, but name a remote fault; when requests was never
    # imported, the error cannot be one of them (and --help need not import it).
    requests = sys.modules.get("requests")
    if isinstance(exc, OSError) and not (requests and isinstance(exc, requests.RequestException)):
        return describe_os_error(exc, "cannot use")
    return None


def check_not_lost(store: Any, settings: Settings) -> None:
    """Refuse an empty state store when this project's own files show it published
    before: a deleted database, a backup restored to the wrong place or a wrong
    ``state:`` URL would otherwise start afresh and post and send every article again.
    A new project (no feed entries, no outbox, no posts file) passes."""
    adopt = store.value(ADOPT_KEY)
    if adopt.get("status") == "running":
        raise StateLost(
            "`pipeline state adopt` was interrupted before it finished recording what was "
            "already published; run it again (nothing else runs until it has finished)"
        )
    if store.holds_history():
        return
    evidence = published_before(settings)
    if not evidence:
        return
    from pipeline.store import store_location

    raise StateLost(
        f"the state store {store_location(settings.state)} holds nothing (it is new or "
        f"was emptied), but this project has published before: {'; '.join(evidence)}.\n"
        "Without its record of what was posted and sent, every article would go out "
        "again, so nothing was done. Was the database deleted or replaced, a backup "
        "restored to another place, or does `state:` in config/pipeline.yaml name the "
        "wrong database?\n"
        "Either restore the state store from a backup (and check `state:`), or start over "
        "on purpose with `pipeline state adopt`: it records every current article as "
        "already posted and already sent, so only newer ones go out."
    )


ADOPT_KEY = "state:adopt"
"""State value of ``pipeline state adopt``: {"status": "running" | "done", …}."""


def published_before(settings: Settings) -> list[str]:
    """What in the project folder shows that it published: feed entries, digests in the
    outbox, lines in a file channel. Each as a phrase for the message."""
    from pipeline.feeds import published_entries

    found = []
    entries = published_entries(settings.site, settings.feeds)
    if entries:
        found.append(f"the feeds in {shown(settings.feeds.output)} list {len(entries)} articles")
    email = settings.email
    if email is not None and email.outbox.is_dir():
        sent = sum(1 for _ in email.outbox.glob("*.eml"))
        if sent:
            found.append(f"{shown(email.outbox)} holds {sent} sent digest emails")
    for name, options in settings.channels.items():
        path = getattr(options, "path", None)
        if options.type == "file" and path is not None and path.is_file() and path.stat().st_size:
            found.append(f"{shown(path)} holds the posts of channel {name}")
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config/pipeline.yaml"),
    envvar="PIPELINE_CONFIG",
    show_default=True,
    help="What to publish and where.",
)
@click.option(
    "--schedules",
    "schedules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="PIPELINE_SCHEDULES",
    help="When to do it.  [default: schedules.yaml beside config/]",
)
@click.version_option(package_name="newsroom-pipeline")
@click.pass_context
def main(ctx: click.Context, config_file: Path, schedules_file: Path | None) -> None:
    """Newsroom publishing pipeline: sources in; feeds, digests and posts out."""
    ctx.obj = Project(config_file, schedules_file)


pass_project = click.make_pass_decorator(Project)


@contextmanager
def progress(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current step, on a terminal only; logs stay quiet."""
    if not sys.stderr.isatty():
        yield lambda name: None
        return
    from rich.console import Console

    with Console(stderr=True).status(label) as status:
        yield lambda name: status.update(f"{label}: {name}")


def shown(path: Path) -> str:
    from pipeline.errors import display_path

    return display_path(path)


def _outcomes(report: Any) -> dict[str, list[tuple[str, str]]]:
    """What did not go out, from a post or digest report (both keep these three lists)."""
    return {"failed": report.failed, "pending": report.pending, "uncertain": report.uncertain}


def print_outcomes(name: str, report: Any) -> None:
    """One stderr line per item that did not go out, with its reason."""
    for label, items in _outcomes(report).items():
        for who, reason in items:
            print_error(f"{name}: {label}: {who} — {reason}")


def count_outcomes(report: Any) -> str:
    """``, 2 failed, 1 uncertain`` (empty when all went out)."""
    return "".join(f", {len(items)} {label}" for label, items in _outcomes(report).items() if items)
