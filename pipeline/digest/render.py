"""A digest edition as an email: Jinja → MJML → HTML once per edition, plus a text part.

``render_edition`` fills ``digest.mjml.j2`` (autoescaped) and compiles the MJML to HTML
once; the text part comes from ``digest.txt.j2``, written for reading, not converted from
the HTML. What differs per subscriber is left as tokens (``ph.name``, ``ph.view_url``,
``ph.unsubscribe_url``, ``ph.preferences_url``) and blocks (``ph.if_name``…``ph.else``…``ph.end``,
``ph.if_view_url``…``ph.end``) that ``personalise`` fills by string replacement, so
thousands of recipients never recompile MJML.

Content (titles, summaries, names, URLs from any source) must never be read as a
placeholder: an article titled ``%%IF_NAME%%`` would otherwise swallow the footer and
its unsubscribe link. So each rendering draws a random key, every placeholder carries
it (``%%NAME.<key>%%``), and the key is sealed onto the end of both documents
(``<!--personalise:<key>-->``), where no content can be. ``personalise`` fills only
the tokens with that key and removes the seal; content is left exactly as written,
``%%NAME%%`` included. Documents stored without a seal (editions rendered before keys
existed) are filled the old way, so an edition half-sent across an upgrade still
carries its unsubscribe links.

``check_template`` renders a realistic sample edition and reports template mistakes
(Jinja syntax, MJML markup, misspelt ``mj-*`` tags) with file and line.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from mjml import mjml2html

from pipeline import i18n
from pipeline.clock import system_clock
from pipeline.digest.subjects import line_values, render_line
from pipeline.errors import ConfigError, Problem, display_path
from pipeline.model import Article, Translation
from pipeline.settings import SiteSettings
from pipeline.settings.email import DigestSettings
from pipeline.suggest import did_you_mean
from pipeline.templating import find_template, load_template, packaged_folder
from pipeline.text import excerpt

TOKENS = ("UNSUBSCRIBE_URL", "PREFERENCES_URL", "NAME", "VIEW_URL", "SUBSCRIBE_URL")  # per reader
# %%IF_…%% blocks: kept when the value is not empty. The web version of an edition has no
# unsubscribe URL (nobody's token): its IF_UNSUBSCRIBE_URL blocks take their ELSE part.
CONDITIONS = ("NAME", "VIEW_URL", "UNSUBSCRIBE_URL", "PREFERENCES_URL")
SEAL = "<!--personalise:"  # + key + "-->" ends every rendered document
_KEY = re.compile(r"[0-9a-f]{32}")
GMAIL_CLIP_BYTES = 102 * 1024
_HINT = "check that every tag is closed and that a literal < is written &lt;"
DEFAULT_TEMPLATE = packaged_folder() / "digest.mjml.j2"
_MJ = """head body attributes all class breakpoint font html-attributes html-attribute selector
preview style title include raw section column group wrapper hero text image button divider
spacer table social social-element navbar navbar-link accordion accordion-element
accordion-title accordion-text carousel carousel-image"""
MJML_TAGS = frozenset({"mjml", *(f"mj-{name}" for name in _MJ.split())})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})
_JINJA = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.DOTALL)
_MARKUP = re.compile(r"<!--.*?-->|<(/?)([A-Za-z][\w:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>|<", re.S)


@dataclass(frozen=True)
class RenderedEdition:
    subject: str
    preheader: str
    html: str
    text: str
    warnings: tuple[str, ...] = ()


def template_paths(digest: DigestSettings) -> tuple[Path, Path]:
    """The MJML template and its text twin (``x.mjml.j2`` → ``x.txt.j2``) as files: the
    project's own, else the packaged ones; a custom MJML template without a text twin
    shares the default text template."""
    wanted = digest.template or DEFAULT_TEMPLATE
    mjml_path = find_template(wanted) or wanted  # the project's own, else the packaged one
    stem = mjml_path.name.removesuffix(".j2").removesuffix(".mjml")
    text_path = mjml_path.with_name(stem + ".txt.j2")
    if find_template(text_path) is None:
        text_path = DEFAULT_TEMPLATE.with_name("digest.txt.j2")
    return mjml_path, text_path


def render_edition(
    digest: DigestSettings,
    site: SiteSettings,
    articles: Sequence[Article],
    corrected: Sequence[Article] = (),
    *,
    date: dt.datetime | None = None,
) -> RenderedEdition:
    """One edition, compiled once; per-subscriber parts are still placeholders.
    ``corrected``: articles of earlier editions corrected since the previous one;
    ``date``: the edition's (default now), for a subject template's ``date``."""
    mjml_path, text_path = template_paths(digest)
    key = secrets.token_hex(16)  # drawn after the content exists: it cannot contain it
    values = _values(digest, site, articles, key, date or system_clock())
    values["corrections"] = [
        _item(a, len(articles) + i, digest.language, site.timezone) for i, a in enumerate(corrected)
    ]
    source = _render(_load_digest_template(mjml_path, autoescape=True), _mjml_values(values))
    try:
        compiled = mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:  # mrml's only error type; it gives no position
        problems = markup_problems(mjml_path)
        raise ConfigError(
            problems or [Problem(display_path(mjml_path), None, None, f"MJML error: {exc}", _HINT)]
        ) from None
    text = _tidy(_render(_load_digest_template(text_path, autoescape=False), values))
    seal = f"{SEAL}{key}-->"
    rendered = RenderedEdition(values["subject"], values["preheader"], compiled + seal, text + seal)
    return replace(rendered, warnings=tuple(_warnings(rendered)))


def placeholders(key: str) -> dict[str, str]:
    """What the templates write as ``ph.*``: each token and block marker with this
    rendering's key (``ph.name`` → ``%%NAME.<key>%%``)."""
    names = {name.lower(): name for name in TOKENS}
    names |= {f"if_{name.lower()}": f"IF_{name}" for name in CONDITIONS}
    names |= {"else": "ELSE", "end": "END"}
    return {field: f"%%{marker}.{key}%%" for field, marker in names.items()}


def personalise(
    rendered: RenderedEdition,
    *,
    unsubscribe_url: str,
    name: str,
    view_url: str | None,
    subscribe_url: str = "",
    preferences_url: str = "",
) -> tuple[str, str]:
    """(html, text) for one subscriber: values escaped in the HTML, raw in the text.
    An empty name takes the greeting without a name; no view_url drops that link; an
    empty unsubscribe_url is the web version's footer (with ``subscribe_url``).
    Only the tokens carrying the document's key are filled (see the module's doc)."""
    values = reader_values(unsubscribe_url, name, view_url, subscribe_url, preferences_url)
    html_form, text_form = forms(rendered, values)
    return html_form.fill(values, escape_html), text_form.fill(values, str)


def reader_values(
    unsubscribe_url: str,
    name: str,
    view_url: str | None,
    subscribe_url: str = "",
    preferences_url: str = "",
) -> dict[str, str]:
    """The tokens' values for one reader (see ``personalise``); an empty one drops its
    ``IF`` block."""
    return {
        "UNSUBSCRIBE_URL": unsubscribe_url,
        "PREFERENCES_URL": preferences_url,
        "NAME": " ".join(name.split()),
        "VIEW_URL": view_url or "",
        "SUBSCRIBE_URL": subscribe_url,
    }


def escape_html(value: str) -> str:
    return html.escape(value, quote=True)


@dataclass(frozen=True)
class Form:
    """A document with the reader's values left out: fixed ``pieces`` around the
    ``names`` of the tokens between them (one piece more than names). Made once per
    edition and kind of reader, so each copy is a join, not a search of the document."""

    pieces: tuple[str, ...]
    names: tuple[str, ...]

    def fill(self, values: dict[str, str], escape: Callable[[str], str]) -> str:
        filled = [self.pieces[0]]
        for name, piece in zip(self.names, self.pieces[1:], strict=True):
            filled += (escape(values[name]), piece)
        return "".join(filled)


def forms(rendered: RenderedEdition, values: dict[str, str]) -> tuple[Form, Form]:
    """(html, text) forms for readers with these values present or empty."""
    present = tuple(bool(values[condition]) for condition in CONDITIONS)
    return _form(rendered.html, present), _form(rendered.text, present)


@functools.lru_cache(maxsize=32)
def _form(document: str, present: tuple[bool, ...]) -> Form:
    body, key = _unseal(document)
    block, token = _patterns(key)
    shown = dict(zip(CONDITIONS, present, strict=True))
    body = block.sub(lambda m: m.group(2) if shown[m.group(1)] else (m.group(3) or ""), body)
    split = token.split(body)  # text, name, text, name, …, text
    return Form(tuple(split[0::2]), tuple(split[1::2]))


def has_web_footer(rendered: RenderedEdition) -> bool:
    """Whether the edition's HTML has a footer for readers of its web version (an
    ``IF_UNSUBSCRIBE_URL`` block of its own key): editions stored before it existed, and
    project templates without one, do not."""
    body, key = _unseal(rendered.html)
    return key is not None and f"%%IF_UNSUBSCRIBE_URL.{key}%%" in body


def _unseal(document: str) -> tuple[str, str | None]:
    """(the document without its seal, its key), or (document, None) if unsealed. Only
    the very end counts: content is always before it."""
    body, seal, tail = document.rpartition(SEAL)
    if seal and tail.endswith("-->") and _KEY.fullmatch(tail[:-3]):
        return body, tail[:-3]
    return document, None


@functools.lru_cache(maxsize=64)
def _patterns(key: str | None) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The block and token patterns of one key (None: the unkeyed tokens of old editions)."""
    k = "" if key is None else re.escape(f".{key}")
    block = rf"%%IF_({'|'.join(CONDITIONS)}){k}%%(.*?)(?:%%ELSE{k}%%(.*?))?%%END{k}%%"
    token = rf"%%({'|'.join(TOKENS)}){k}%%"
    return re.compile(block, re.DOTALL), re.compile(token)


def check_template(digest: DigestSettings, site: SiteSettings) -> list[str]:
    """Render a realistic sample edition (max_items articles); raise ConfigError for
    every template mistake found, return warnings such as Gmail clipping."""
    mjml_path, text_path = template_paths(digest)
    problems: list[Problem] = []
    for path, autoescape in ((mjml_path, True), (text_path, False)):
        try:
            _load_digest_template(path, autoescape=autoescape)
        except ConfigError as error:
            problems.extend(error.problems)
    if mjml_path.exists():
        problems.extend(markup_problems(mjml_path))
    if problems:
        raise ConfigError(problems)
    return list(render_edition(digest, site, sample_articles(digest, site)).warnings)


def markup_problems(path: Path) -> list[Problem]:
    """Unknown ``mj-*`` tags, unclosed or stray tags and bare ``<`` in an MJML template
    (Jinja tags blanked out, so the lines are the template's own)."""
    source = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), path.read_text("utf-8"))
    shown = display_path(path)
    problems: list[Problem] = []
    stack: list[tuple[str, int]] = []  # the open tags and where each opened

    def problem(at: int, message: str, hint: str = "") -> None:
        problems.append(Problem(shown, source.count("\n", 0, at) + 1, None, message, hint))

    for match in _MARKUP.finditer(source):
        closing, tag, rest = match.group(1), (match.group(2) or "").lower(), match.group(3)
        if match.group().startswith("<!--"):
            continue
        if not tag:
            problem(match.start(), "a bare < in the MJML", "write &lt; for a literal <")
        elif (tag.startswith("mj-") or tag == "mjml") and tag not in MJML_TAGS:
            otherwise = "see https://documentation.mjml.io"
            hint = did_you_mean(tag, MJML_TAGS, otherwise, written=lambda near: f"<{near}>")
            problem(match.start(), f"unknown MJML tag <{closing}{tag}>", hint)
        elif closing:
            if tag not in [open_tag for open_tag, _ in stack]:
                problem(match.start(), f"</{tag}> closes a tag that is not open", "remove it")
                continue
            while stack[-1][0] != tag:
                unclosed, at = stack.pop()
                problem(at, f"<{unclosed}> is not closed", f"add </{unclosed}>")
            stack.pop()
        elif tag not in _VOID and not rest.rstrip().endswith("/"):
            stack.append((tag, match.start()))
    for tag, at in stack:
        problem(at, f"<{tag}> is not closed", f"add </{tag}>")
    return problems


def sample_articles(digest: DigestSettings, site: SiteSettings) -> list[Article]:
    """``digest.max_items`` realistic articles in the digest's languages: full-length
    excerpts, two authors, a lead image and a translation each."""
    languages = digest.article_languages()
    now = system_clock().replace(microsecond=0)
    articles = []
    for index in range(digest.max_items):
        language = languages[index % len(languages)]
        title, body, authors = _SAMPLES[i18n.catalog_key(language)]
        other = "en" if i18n.catalog_key(language) == "zh" else "zh-CN"
        url = f"{site.url}/news/sample-{index + 1}/"
        articles.append(
            Article(
                id=f"sample-{index + 1}",
                source="sample",
                origin="sample",
                url=url,
                title=title,
                authors=authors,
                published=now - dt.timedelta(days=index),
                language=language,
                section="news",
                summary=excerpt(body * 3, site.excerpt_length),
                body_html=f"<p>{html.escape(body)}</p>",
                read_minutes=4,
                image=f"{site.url}/media/sample-{index + 1}.jpg",
                image_alt=title,
                translations=(Translation(id=f"s{index}", language=other, url=url, title=title),),
            )
        )
    return articles


_SAMPLES = {
    "en": (
        "Snow Update 2026: Below-normal snow persistence across the Hindu Kush Himalaya",
        "Snow stayed on the ground for a shorter time than normal across much of the Hindu "
        "Kush Himalaya this winter, according to our annual Snow Update, released today. ",
        ("Farid Ahmadi", "Pema Gyamtsho"),
    ),
    "zh": (
        "兴都库什-喜马拉雅冰川连续第五年出现大规模物质损失",
        "随着2026年消融季的结束，来自中国、尼泊尔和不丹多个监测冰川的最新数据显示，"
        "兴都库什-喜马拉雅地区的冰川已连续第五年出现大规模物质损失。",
        ("李文", "王芳"),
    ),
}


def _values(
    digest: DigestSettings,
    site: SiteSettings,
    articles: Sequence[Article],
    key: str,
    date: dt.datetime,
) -> dict[str, Any]:
    """What the templates see (listed at the top of templates/digest.mjml.j2)."""
    language = digest.language
    newest = max(articles, key=lambda a: a.published, default=None)
    line = line_values(
        articles,
        title=digest.title,
        site=site.name,
        language=language,
        timezone=site.timezone,
        date=date,
    )
    default_preheader = newest.title if newest else digest.title
    count_key = "intro_one" if len(articles) == 1 else "intro_many"
    ph = placeholders(key)
    names = {"site": site.name, "digest": digest.title, "name": ph["name"]}
    t = i18n.words(language, count=len(articles), **names)
    items = [_item(a, i, language, site.timezone) for i, a in enumerate(articles)]
    return {
        "site": site,
        "digest": digest,
        "language": language,
        # An edition without articles is never sent: its subject need not name one.
        "subject": _line(digest.subject, line, digest.title) if articles else digest.title,
        "preheader": _line(digest.preheader, line, default_preheader),
        "t": {**t, "intro": t[count_key]},
        "ph": ph,
        "items": items,
    }


def _line(template: str | None, values: dict[str, Any], default: str) -> str:
    """A subject or preheader template filled in. It rendered a sample edition when the
    settings loaded; should a real article still trip it (``lead.title[40]`` of a short
    title), the default goes out rather than the send stopping."""
    try:
        return (render_line(template, values) if template else "") or default
    except ValueError:
        return default


def _item(article: Article, index: int, language: str, timezone: str) -> dict[str, Any]:
    """One article as the templates see it, in the digest's language."""
    authors = i18n.join_names(article.authors, language)
    date = i18n.format_date(article.published, language, timezone)
    read_time = i18n.read_time(article.read_minutes, language)
    meta = [part for part in (authors, date, read_time) if part]
    return {
        **article.model_dump(include={"title", "url", "summary", "image", "language"}),
        **{"article": article, "authors": authors, "date": date, "read_time": read_time},
        **{"meta": " · ".join(meta), "meta_parts": meta, "iso_date": article.published.isoformat()},
        "image_alt": article.image_alt or article.title,
        "layout": "plain" if not article.image else "featured" if index == 0 else "side",
        "translations": [
            {**other.model_dump(), "label": i18n.translation_label(other.language)}
            for other in article.translations
        ],
    }


# mrml writes attribute values the way Rust debug-prints a string: a backslash doubled, a
# line break as "\n", a combining accent, a zero-width joiner or a no-break space as
# "\u{…}". Character references pass through untouched and mail clients read them as the
# character, so these characters go to MJML as references.
_MRML_MANGLED = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def _mjml_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` for the MJML template: each item's ``image_alt`` (the article text the
    template puts in an attribute) escaped so that mrml leaves it as written. The text
    template gets it as is."""

    def attribute(text: str) -> Markup:
        escaped = html.escape(text, quote=True)
        return Markup(_MRML_MANGLED.sub(lambda m: f"&#{ord(m[0])};", escaped))

    items = [{**item, "image_alt": attribute(item["image_alt"])} for item in values["items"]]
    return {**values, "items": items}


def _load_digest_template(path: Path, *, autoescape: bool) -> jinja2.Template:
    return load_template(path, autoescape=autoescape, keep_trailing_newline=True)


def _render(template: jinja2.Template, values: dict[str, Any]) -> str:
    """Render; a runtime mistake (an unknown variable) names the template line."""
    try:
        return template.render(values)
    except jinja2.TemplateError as exc:
        line, frame = None, exc.__traceback__
        while frame is not None:
            if frame.tb_frame.f_code.co_filename == template.filename:
                line = frame.tb_lineno
            frame = frame.tb_next
        shown = display_path(Path(template.filename or "template"))
        raise ConfigError([Problem(shown, line, None, f"template error: {exc}")]) from None


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def _warnings(rendered: RenderedEdition) -> list[str]:
    unsubscribe = "https://example.org/unsubscribe?token=" + "x" * 160
    preferences = "https://example.org/preferences?token=" + "y" * 160
    html_part, text_part = personalise(
        rendered,
        unsubscribe_url=unsubscribe,
        name="Subscriber Name",
        view_url="https://example.org/digests/weekly/2026-11-23T09:00+05:45",
        preferences_url=preferences,
    )
    parts = (("HTML", html_part), ("text", text_part))
    # Placeholders are only what the templates write as {{ ph.… }}: a literal
    # %%UNSUBSCRIBE_URL%% (or none at all) leaves readers without the link.
    warnings = [
        f"the {part} part has no unsubscribe link: write {{{{ ph.unsubscribe_url }}}} "
        "in its template"
        for part, document in parts
        if unsubscribe not in document
    ]
    # A template copied before the preference page existed: readers cannot reach it.
    warnings += [
        f"the {part} part has no link to the preference page: write "
        "{{ ph.preferences_url }} in its footer (see the packaged template: "
        "`pipeline templates copy`)"
        for part, document in parts
        if preferences not in document
    ]
    size = len(html_part.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        warnings.append(
            f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB and hides "
            "the rest, unsubscribe link included — lower max_items or simplify the template"
        )
    return warnings
