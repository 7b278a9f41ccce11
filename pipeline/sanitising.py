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
    if article is not None:
        for tag, value in _refused_links(html, base_url):
            _log.warning(
                "%s: dropped the %s %s, which readers must not be sent to",
                article,
                "link" if tag == "a" else "image",
                repr(value if len(value) <= 80 else value[:79] + "…"),
            )

    return _CLEANER.clean(html, base_url)


class _Cleaner(threading.local):
    """An nh3 Cleaner for each thread, whose link filter reads the base URL of the body
    being cleaned from here: building a Cleaner costs more than most cleans (~18 µs,
    a third of an article's), and the filter needs each article's own base URL.

    nh3 drops other schemes before ``_links_only`` sees them, and it does the rest:
    mailto in an image, a host-less http link, the percent-encoding."""

    def __init__(self) -> None:
        self.base_url: str | None = None
        self.cleaner = nh3.Cleaner(
            tags=_TAGS,
            clean_content_tags={"script", "style"},
            attributes=_ATTRIBUTES,
            attribute_filter=self._links_only,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer",
        )

    def clean(self, html: str, base_url: str | None) -> str:
        self.base_url = base_url  # nh3 calls the filter back in this thread, during clean
        return self.cleaner.clean(html)

    def _links_only(self, tag: str, attribute: str, value: str) -> str | None:
        mailto = _LINKS.get((tag, attribute))
        return value if mailto is None else _body_link(value, self.base_url, mailto=mailto)


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


def _body_link(value: str, base_url: str | None, *, mailto: bool) -> str | None:
    """The URI a body link may keep, or None to drop it."""
    try:
        if base_url is None and not has_scheme(value):
            return as_uri(value.strip())
        return safe_link(value, base=base_url, allow_mailto=mailto)
    except UnsafeURL:
        return None


class _LinkCollector:
    """lxml parser target: the (tag, value) of every ``<a href>`` and ``<img src>``."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def start(self, tag: str, attrib: dict[str, str], nsmap: object = None) -> None:
        # ``nsmap``: as in pipeline.text._TextCollector.start, lxml may pass it.
        for link_tag, attribute in _LINKS:
            if tag == link_tag and attribute in attrib:
                self.found.append((tag, attrib[attribute]))

    def close(self) -> list[tuple[str, str]]:
        return self.found


def _refused_links(html: str, base_url: str | None) -> list[tuple[str, str]]:
    """The links sanitize_html will drop, for the warning: nh3 drops most of them itself,
    silently, so they are found with a parse of their own."""
    if "href" not in html and "src" not in html:
        return []
    # lxml calls only the methods a target has; the types-lxml stubs demand all of them
    parser = etree.HTMLParser(  # type: ignore[call-overload]
        target=_LinkCollector(), recover=True, no_network=True
    )
    parser.feed(html)
    found: list[tuple[str, str]] = parser.close()
    return [(tag, v) for tag, v in found if _body_link(v, base_url, mailto=tag == "a") is None]
