"""The ``pipeline`` command: the group, the project it works on, and error handling.

Exit status: 0 all done; 1 done except for items that were rejected or failed (each
named, the rest delivered); 2 bad usage or configuration (nothing changed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import click
import requests

from pipeline.errors import ConfigError, PipelineError, StoreError
from pipeline.settings import Settings, load_settings

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG = 0, 1, 2
USER_AGENT = "newsroom-pipeline/0.1 (+https://github.com/)"


@dataclass
class Project:
    """The files named on the command line, loaded on first use."""

    config_file: Path
    schedules_given: Path | None = None
    _settings: Settings | None = field(default=None, init=False)

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
            self._settings = load_settings(self.config_file)
        return self._settings

    @contextmanager
    def store(self) -> Iterator[Any]:
        from pipeline.store import Store

        store = Store(self.settings.state, self.settings.site.url)
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def http(self) -> Iterator[requests.Session]:
        with requests.Session() as session:
            session.headers["User-Agent"] = USER_AGENT
            yield session


def command(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command, turning known errors into their message and exit status."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            status = func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            noun = "problem" if len(exc.problems) == 1 else "problems"
            click.echo(f"{len(exc.problems)} {noun}; nothing was changed.", err=True)
            status = EXIT_CONFIG
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            status = EXIT_CONFIG
        except PipelineError as exc:
            click.echo(f"error: {exc}", err=True)
            status = EXIT_PARTIAL
        sys.exit(status)

    return run


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
            click.echo(f"{name}: {label}: {who} — {reason}", err=True)


def count_outcomes(report: Any) -> str:
    """``, 2 failed, 1 uncertain`` (empty when all went out)."""
    return "".join(f", {len(items)} {label}" for label, items in _outcomes(report).items() if items)
