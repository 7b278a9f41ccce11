"""Loading the Jinja templates staff may edit (channel posts, digests, web pages), so
that a mistake in one is reported with its file and line like any other configuration
error.

The templates ship inside the package (``pipeline/templates``). A project overrides one
by putting a file of the same relative name in its own ``templates/`` folder: a path
``…/templates/channels/mastodon.txt.j2`` that does not exist falls back to the packaged
``channels/mastodon.txt.j2``, and includes resolve the same way (project first).
Customising one template is copying one file (``pipeline templates copy``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError, Problem, display_path

if TYPE_CHECKING:  # imported by load_template: the settings find templates, never load them
    import jinja2

TEMPLATES = "templates"  # the project's folder, and the package's, of overridable templates


def packaged_folder() -> Path:
    """The templates that ship with the package (a real folder: wheels are unpacked)."""
    return Path(str(files("pipeline") / TEMPLATES))


def packaged_names() -> Iterator[str]:
    """Every packaged template's relative name, e.g. ``channels/mastodon.txt.j2``."""
    folder = packaged_folder()
    for path in sorted(folder.rglob("*.j2")):
        yield path.relative_to(folder).as_posix()


def split_templates_path(path: Path) -> tuple[Path, str] | None:
    """``(project templates folder, relative name)`` for a path inside a ``templates/``
    folder; None for a template kept anywhere else."""
    parts = path.parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == TEMPLATES:
            return Path(*parts[: index + 1]), "/".join(parts[index + 1 :])
    return None


def find_template(path: Path) -> Path | None:
    """The file a template path means: the project's own, else the packaged one."""
    if path.is_file():
        return path
    inside = split_templates_path(path)
    if inside is not None:
        packaged = packaged_folder() / inside[1]
        if packaged.is_file():
            return packaged
    return None


def load_template(
    path: Path,
    *,
    autoescape: bool,
    keep_trailing_newline: bool = False,
    filters: Mapping[str, Callable[..., Any]] | None = None,
) -> jinja2.Template:
    """The template at ``path`` (or its packaged default). Undefined variables are errors
    (a misspelt name must not vanish silently); block tags leave no blank lines behind."""
    import jinja2

    inside = split_templates_path(path)
    if inside is None:
        loader: jinja2.BaseLoader = jinja2.FileSystemLoader(str(path.parent))
        name = path.name
    else:
        project_folder, name = inside
        loader = jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(str(project_folder)),
                jinja2.FileSystemLoader(packaged_folder()),
            ]
        )
    environment = jinja2.Environment(
        loader=loader,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=keep_trailing_newline,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(filters or {})
    shown = display_path(path)
    try:
        return environment.get_template(name)
    except jinja2.TemplateNotFound:
        problem = Problem(shown, None, None, "template not found", "create it or fix `template:`")
    except jinja2.TemplateSyntaxError as exc:
        where = display_path(Path(exc.filename)) if exc.filename else shown
        problem = Problem(where, exc.lineno, None, f"template error: {exc.message}")
    raise ConfigError([problem])
