"""Loading the Jinja templates staff may edit (channel posts, digests), so that a
mistake in one is reported with its file and line like any other configuration error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from pipeline.errors import ConfigError, Problem, display_path


def load_template(
    path: Path,
    *,
    autoescape: bool,
    keep_trailing_newline: bool = False,
    filters: Mapping[str, Callable[..., Any]] | None = None,
) -> jinja2.Template:
    """The template at ``path``. Undefined variables are errors (a misspelt name must
    not vanish silently); block tags leave no blank lines behind."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=keep_trailing_newline,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(filters or {})
    shown = display_path(path)
    try:
        return environment.get_template(path.name)
    except jinja2.TemplateNotFound:
        problem = Problem(shown, None, None, "template not found", "create it or fix `template:`")
    except jinja2.TemplateSyntaxError as exc:
        where = display_path(Path(exc.filename)) if exc.filename else shown
        problem = Problem(where, exc.lineno, None, f"template error: {exc.message}")
    raise ConfigError([problem])
