"""``pipeline db current`` and ``pipeline db upgrade``: the state store's schema revision.

These open the database without ``Project.store``: that refuses a PostgreSQL store
that needs upgrading (and an empty one a project has published from), and these are the
commands that look at such a store and upgrade it. See pipeline.migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from pipeline.cli.app import EXIT_OK, Project, command, main, pass_project

if TYPE_CHECKING:
    from sqlalchemy import Engine


@main.group()
def db() -> None:
    """The state store's schema: which revision it is at, and upgrading it."""


@db.command("current")
@pass_project
@command
def current_command(project: Project) -> int:
    """Show the state store's revision, and what an upgrade would apply."""
    from pipeline import migrations
    from pipeline.store import store_location
    from pipeline.store_url import sqlite_file_missing

    where = store_location(project.settings.state)
    with _engine(project) as engine:
        if sqlite_file_missing(project.settings.state):
            click.echo(
                f"{where}: no state store yet; it is made at revision "
                f"{migrations.head()} when first used"
            )
            return EXIT_OK
        with engine.connect() as conn:
            found = migrations.status(conn)
    if found.empty:
        click.echo(
            f"{where}: empty; its tables are made at revision {migrations.head()} when first used"
        )
    elif not found.known:
        click.echo(
            f"{where}: revision {found.revision}, unknown to this version of the "
            f"pipeline (its newest is {migrations.head()}): a newer version upgraded it"
        )
    elif found.current:
        how = "" if found.recorded else "; recorded when next opened"
        click.echo(f"{where}: revision {found.revision} (the newest){how}")
    else:
        how = "" if found.recorded else ", not recorded (made before migrations existed)"
        click.echo(f"{where}: revision {found.revision}{how}; to apply:")
        for revision in migrations.pending(found.revision):
            click.echo(f"  {revision}  {migrations.describe(revision)}")
        click.echo(
            "Run `pipeline db upgrade` (a SQLite store is upgraded by the next "
            "command by itself, after a copy of it is made)."
        )
    return EXIT_OK


@db.command("upgrade")
@pass_project
@command
def upgrade_command(project: Project) -> int:
    """Upgrade the state store to this version's newest revision (a SQLite store is copied
    beside itself first; back up a PostgreSQL database with pg_dump before)."""
    from pipeline import migrations
    from pipeline.store import store_location

    with _engine(project) as engine:
        done = migrations.upgrade(engine, store_location(project.settings.state))
    click.echo(str(done))
    return EXIT_OK


@contextmanager
def _engine(project: Project) -> Iterator[Engine]:
    """The store's engine; a database error becomes its one-line message (exit 2)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.store import open_engine, store_fault

    url = project.settings.state
    engine = open_engine(url)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise store_fault(exc, url) from None
    finally:
        engine.dispose()
