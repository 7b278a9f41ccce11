"""Subject lines and preheaders written as templates (``digests.NAME.subject`` and
``preheader``), e.g. ``"{{ lead.title }} and {{ others }} more"``.

What a template sees (``VARIABLES``): ``lead`` (the edition's first article: its
``title``, ``url``, ``summary``, ``authors``, ``section``), ``others`` (how many more
articles it carries), ``count`` (all of them), ``date`` (the edition's date, written in
the digest's language), ``title`` (the digest's title) and ``site`` (the site's name).

Templates run in Jinja's sandbox with strict undefined: a syntax error, an unknown
variable or attribute is a ValueError when the settings load (``check_line`` renders
the template against a sample edition), so a mistake is a located configuration error,
never a failure halfway through a send. A subject is one line: line breaks and runs of
spaces become one space; an empty result falls back to the digest title (subject) or
the default preheader.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from pipeline import i18n
from pipeline.model import Article
from pipeline.suggest import did_you_mean

VARIABLES = ("lead", "others", "count", "date", "title", "site")
LEAD_FIELDS = ("title", "url", "summary", "authors", "section")
MAX_SOURCE = 1000  # a subject template is a line, not a document


class _LineSandbox(SandboxedEnvironment):
    """The sandbox, and no ``'x' * 10**9``: a line's template makes a line."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sizes = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
        if operator == "**" or any(abs(v) > MAX_SOURCE for v in sizes):
            raise SecurityError(f"`{operator}` with such numbers is not for a subject line")
        return super().call_binop(context, operator, left, right)


@functools.cache
def _environment() -> SandboxedEnvironment:
    return _LineSandbox(undefined=jinja2.StrictUndefined, autoescape=False)


def _compiled(source: str) -> jinja2.Template:
    """The template, or ValueError saying what is wrong with it and how to write it."""
    if len(source) > MAX_SOURCE:
        raise ValueError(f"longer than {MAX_SOURCE} characters; a subject is one line")
    environment = _environment()
    try:
        unknown = sorted(meta.find_undeclared_variables(environment.parse(source)))
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error: {exc.message}") from None
    except (RecursionError, MemoryError):
        raise ValueError("the template is too deeply nested") from None
    for name in unknown:
        if name not in VARIABLES:
            listed = ", ".join(VARIABLES)
            hint = did_you_mean(name, VARIABLES, f"the variables are {listed}")
            raise ValueError(f"unknown variable `{name}`; {hint}")
    return template


def render_line(source: str, values: dict[str, Any]) -> str:
    """``source`` filled with ``values``, on one line (ValueError for a mistake)."""
    template = _compiled(source)
    try:
        text = template.render(values)
    except jinja2.UndefinedError as exc:
        fields = ", ".join(f"lead.{name}" for name in LEAD_FIELDS)
        raise ValueError(f"{exc.message}; lead has {fields}") from None
    except jinja2.TemplateError as exc:
        raise ValueError(f"template error: {exc}") from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ValueError(f"the template fails on a sample edition: {exc}") from None
    return " ".join(text.split())


def line_values(
    articles: Sequence[Article],
    *,
    title: str,
    site: str,
    language: str,
    timezone: str,
    date: dt.datetime,
) -> dict[str, Any]:
    """What a subject or preheader template sees for an edition of ``articles``."""
    lead = articles[0] if articles else None
    return {
        "lead": {
            "title": lead.title if lead else "",
            "url": lead.url if lead else "",
            "summary": lead.summary if lead else "",
            "authors": i18n.join_names(lead.authors, language) if lead else "",
            "section": lead.section if lead else "",
        },
        "others": max(len(articles) - 1, 0),
        "count": len(articles),
        "date": i18n.format_date(date, language, timezone),
        "title": title,
        "site": site,
    }


def check_line(source: str, *, title: str, language: str) -> str:
    """Render ``source`` against a sample edition of three articles; ValueError for
    any mistake a real edition would meet."""
    sample = _SAMPLE_ZH if i18n.catalog_key(language) == "zh" else _SAMPLE_EN
    values = {**sample, "title": title, "date": i18n.format_date(_SAMPLE_DATE, language, "UTC")}
    return render_line(source, values)


_SAMPLE_DATE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
_SAMPLE_EN = {
    "lead": {
        "title": "Glaciers lose mass for a fifth year",
        "url": "https://example.org/news/glaciers/",
        "summary": "New data from monitored glaciers show another year of heavy losses.",
        "authors": "Pema Gyamtsho and Li Wen",
        "section": "news",
    },
    "others": 2,
    "count": 3,
    "site": "Mountain News",
}
_SAMPLE_ZH = {
    **_SAMPLE_EN,
    "lead": {
        **_SAMPLE_EN["lead"],  # type: ignore[dict-item]
        "title": "兴都库什-喜马拉雅冰川连续第五年出现大规模物质损失",
        "authors": "李文、王芳",
    },
}
