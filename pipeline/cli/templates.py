"""``pipeline templates list|copy``: see which templates a project overrides, and copy a
packaged one into the project to edit it (see ``pipeline.templating``)."""

from __future__ import annotations

import shutil

import click

from pipeline.cli.app import EXIT_OK, Project, command, main, pass_project, shown
from pipeline.errors import ConfigError, Problem


@main.group()
def templates() -> None:
    """The templates of posts, digests and web pages: packaged, or the project's own."""


@templates.command("list")
@pass_project
@command
def list_command(project: Project) -> int:
    """Every template, and whether the project has its own copy of it."""
    from pipeline.templating import TEMPLATES, packaged_names

    own = project.settings.root / TEMPLATES
    for name in packaged_names():
        where = f"project ({shown(own / name)})" if (own / name).is_file() else "packaged"
        click.echo(f"{name:<32} {where}")
    return EXIT_OK


@templates.command("copy")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@pass_project
@command
def copy_command(project: Project, names: tuple[str, ...]) -> int:
    """Copy packaged templates into the project's templates/ folder for editing; the
    project's copy is used from then on. An existing copy is never overwritten."""
    from pipeline.suggest import did_you_mean
    from pipeline.templating import TEMPLATES, packaged_folder, packaged_names

    known = list(packaged_names())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            [
                Problem(
                    "pipeline templates copy",
                    None,
                    None,
                    f"no packaged template {name!r}",
                    did_you_mean(name, known, "`pipeline templates list` shows them"),
                )
                for name in unknown
            ]
        )
    own = project.settings.root / TEMPLATES
    for name in names:
        target = own / name
        if target.exists():
            click.echo(f"kept {shown(target)} (the project has its own already)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(packaged_folder() / name, target)
        click.echo(f"wrote {shown(target)}: edit it; `pipeline check` tries it")
    return EXIT_OK
