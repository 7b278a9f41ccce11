"""Post text: a Jinja template per channel, then fitted to the network's budget.

The template gets the article's title, summary and link. When the result is too long
the summary is shortened (by the excerpt rules: word or grapheme boundaries, ``…``),
then dropped, then the title is shortened; the link is never cut, because a cut link
is a broken link. Each network counts differently, so the measure is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import regex

from pipeline import templating
from pipeline.errors import PermanentFailure
from pipeline.model import Article
from pipeline.text import excerpt

Measure = Callable[[str], int]
_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> int:
    """User-perceived characters (Bluesky's 300, and most "characters" people mean)."""
    return len(_GRAPHEME.findall(text))


def utf16_units(text: str) -> int:
    """Length as JavaScript and Telegram count it."""
    return len(text.encode("utf-16-le")) // 2


def load_channel_template(path: Path, *, autoescape: bool = False) -> jinja2.Template:
    """A channel template, with the ``hashtag`` filter."""
    return templating.load_template(path, autoescape=autoescape, filters={"hashtag": hashtag})


def hashtag(tag: str) -> str:
    """``#ClimateChange`` from ``climate change``; CJK tags keep their characters."""
    words = regex.findall(r"[\p{L}\p{N}_]+", tag)
    return "#" + "".join(w[:1].upper() + w[1:] for w in words) if words else ""


def template_values(article: Article, site_name: str) -> dict[str, Any]:
    return {
        "article": article,
        "title": article.title,
        "summary": article.summary,
        "url": article.url,
        "authors": ", ".join(article.authors),
        "tags": article.tags,
        "site": site_name,
    }


def fit(
    template: jinja2.Template,
    values: Mapping[str, Any],
    *,
    limit: int | None,
    measure: Measure,
) -> str:
    """The template's text, with summary then title shortened until it fits ``limit``."""
    values = dict(values)

    def render(**changes: str) -> str:
        try:
            return template.render({**values, **changes}).strip()
        except jinja2.TemplateError as exc:
            raise PermanentFailure(f"template {template.name}: {exc}") from exc

    def render_cut(name: str) -> Callable[[str], str]:
        return lambda cut: render(**{name: cut})

    text = render()
    if limit is None or measure(text) <= limit:
        return text
    budget = limit

    def fits(text: str) -> bool:
        return measure(text) <= budget

    for name in ("summary", "title"):
        original = str(values.get(name) or "")
        best = longest_fitting(original, render_cut(name), fits, shortest=2)
        if best is not None:
            return best
        values[name] = ""  # not even a word of it fits: drop it, then shorten the next
        text = render()
        if measure(text) <= limit:
            return text
    raise PermanentFailure(
        f"the post cannot fit in {limit} characters even without summary and title; "
        "shorten the channel template"
    )


def longest_fitting(
    original: str, build: Callable[[str], str], fits: Callable[[str], bool], *, shortest: int = 1
) -> str | None:
    """Binary search for the longest excerpt of ``original`` (cut at a word or grapheme
    boundary, ending in ``…``, at least ``shortest`` graphemes) whose ``build`` fits: that
    built text, or None when even the shortest does not fit."""
    low, high, best = shortest, graphemes(original), None
    while low <= high:
        middle = (low + high) // 2
        candidate = build(excerpt(original, middle))
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best
