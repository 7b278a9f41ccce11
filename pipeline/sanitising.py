"""Sanitising an article's HTML: only harmless article markup, and links readers may follow.

nh3 (ammonia) does the cleaning; the link rules are ``pipeline.urls``'s. Used through
``pipeline.text``, which re-exports ``sanitize_html``.
"""

from __future__ import annotations

import logging
import re
import threading

import nh3
from lxml import etree

from pipeline.urls import UnsafeURL, as_uri, has_scheme, safe_link

__all__ = ["sanitize_html", "without_surrogates"]

# -- the sanitiser -----------------------------------------------------------------------------

_TAGS = {
    *("p", "br", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "u", "s"),
    *("blockquote", "code", "pre", "ul", "ol", "li", "a", "img", "figure", "figcaption"),
    *("table", "thead", "tbody", "tr", "th", "td", "hr", "sup", "sub", "span", "div"),
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height", "title"}}
# The attributes that are links, and whether mailto: may stay: a mail link is a link a
# reader can follow; as an image source it means nothing.
_LINKS = {("a", "href"): True, ("img", "src"): False}
_LINK_ATTRIBUTE = dict(_LINKS.keys())  # a: href, img: src
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_log = logging.getLogger("pipeline.text")  # where its warnings were always logged


def sanitize_html(html: str, *, base_url: str | None = None, article: str | None = None) -> str:
    """Article body with only harmless article markup left; script and style vanish whole.

    Links (``<a href>``) may be http, https or mailto, images (``<img src>``) http or https;
    any other (``javascript:``, ``data:``, ``vbscript:``…) loses its attribute and, when
    ``article`` names the article, is logged as a warning. Kept links are URIs
    (``pipeline.urls.as_uri``). Relative links are resolved against ``base_url`` (the
    article's page) when given, so they still work in an email; otherwise kept relative.
    """
    html = without_surrogates(html)
    # Each link is judged once (~15 µs): the warning below and nh3's filter both ask.
    verdicts: dict[tuple[str, bool], str | None] = {}
    if article is not None:
        for tag, value in _refused_links(html, base_url, verdicts):
            _log.warning(
                "%s: dropped the %s %s, which readers must not be sent to",
                article,
                "link" if tag == "a" else "image",
                repr(value if len(value) <= 80 else value[:79] + "…"),
            )

    return _CLEANER.clean(html, base_url, verdicts)


class _Cleaner(threading.local):
    """An nh3 Cleaner for each thread, whose link filter reads the base URL of the body
    being cleaned from here: building a Cleaner costs more than most cleans (~18 µs,
    a third of an article's), and the filter needs each article's own base URL.

    nh3 drops other schemes before ``_links_only`` sees them, and it does the rest:
    mailto in an image, a host-less http link, the percent-encoding."""

    def __init__(self) -> None:
        self.base_url: str | None = None
        self.verdicts: dict[tuple[str, bool], str | None] = {}
        self.cleaner = nh3.Cleaner(
            tags=_TAGS,
            clean_content_tags={"script", "style"},
            attributes=_ATTRIBUTES,
            attribute_filter=self._links_only,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer",
        )

    def clean(self, html: str, base_url: str | None, verdicts: _Verdicts) -> str:
        # nh3 calls the filter back in this thread, during clean
        self.base_url, self.verdicts = base_url, verdicts
        return self.cleaner.clean(html)

    def _links_only(self, tag: str, attribute: str, value: str) -> str | None:
        mailto = _LINKS.get((tag, attribute))
        return value if mailto is None else _judged(value, self.base_url, mailto, self.verdicts)


_CLEANER = _Cleaner()


def without_surrogates(html: str) -> str:
    """``html`` with each lone surrogate as U+FFFD: nh3 and lxml must encode it to UTF-8,
    which a surrogate cannot be. Asked of ASCII (a flag CPython keeps) or of the encoder
    (one pass in C) first: the regular expression alone is ~5 times slower, and a
    surrogate is all but unheard of."""
    if html.isascii():
        return html
    try:
        html.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", html)
    return html


_Verdicts = dict[tuple[str, bool], str | None]


def _judged(value: str, base_url: str | None, mailto: bool, verdicts: _Verdicts) -> str | None:
    """``_body_link``, remembered in ``verdicts`` for the rest of one body."""
    key = (value, mailto)
    if key not in verdicts:
        verdicts[key] = _body_link(value, base_url, mailto=mailto)
    return verdicts[key]


def _body_link(value: str, base_url: str | None, *, mailto: bool) -> str | None:
    """The URI a body link may keep, or None to drop it."""
    try:
        if base_url is None and not has_scheme(value):
            return as_uri(value.strip())
        return safe_link(value, base=base_url, allow_mailto=mailto)
    except UnsafeURL:
        return None


def _refused_links(html: str, base_url: str | None, verdicts: _Verdicts) -> list[tuple[str, str]]:
    """The links sanitize_html will drop, for the warning: nh3 drops most of them itself,
    silently, so they are found with a parse of their own. Its tree is searched for
    ``a`` and ``img`` in C: a parser target cost a Python call and an attribute dict for
    every element, most of them not links."""
    if "href" not in html and "src" not in html:
        return []
    parser = etree.HTMLParser(recover=True, no_network=True)
    parser.feed(html)
    root = parser.close()
    refused: list[tuple[str, str]] = []
    first: etree._Element | None = root
    while first is not None and first.getprevious() is not None:
        first = first.getprevious()  # text after </html> can make a second top-level node
    for top in (first, *first.itersiblings()) if first is not None else ():
        for node in top.iter(*_LINK_ATTRIBUTE):
            tag = str(node.tag)
            value = node.get(_LINK_ATTRIBUTE[tag])
            if value is not None and _judged(value, base_url, tag == "a", verdicts) is None:
                refused.append((tag, value))
    return refused
