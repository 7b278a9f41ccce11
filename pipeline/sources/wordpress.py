"""A WordPress site, read through its REST API (``/wp-json/wp/v2/posts``).

Posts are asked for most recently modified first, 100 a page. Scanning stops at the
first page whose posts are all unchanged (older ones are then unchanged too), at
``max_pages``, at ``X-WP-TotalPages``, or when WordPress answers 400
``rest_post_invalid_page_number`` (past the last page). Since it may stop early, a
scan is never complete: a post that disappears upstream is not deleted here.

Choices made here:

* ``url`` may be the site (``https://example.org``) or its API root (``…/wp-json``).
* Fingerprint: post id + ``modified_gmt``. A change that does not touch the post's
  modified time (an author renamed, a term renamed) shows once the post is next saved.
* Summary: WordPress always sends an excerpt; when the author wrote none it is the
  start of the content plus ``[…]``. Such an automatic excerpt is dropped, so the
  pipeline computes its own by the same rules as for every other source (length,
  word/grapheme boundaries); an excerpt the author wrote is kept as the summary.
* Tags: the post's tags, then its category names (categories are how most WordPress
  sites classify posts, so they make useful tag feeds), except the default
  "Uncategorized".
* Password-protected posts are skipped: their content is not public.
* Language: the source's ``language``, else the site's (core WordPress does not say).
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator, Mapping
from itertools import chain
from typing import Any, Self
from urllib.parse import unquote

import requests

from pipeline.errors import Problem
from pipeline.model import Article, Item, Scan
from pipeline.redact import shown_url
from pipeline.settings import SiteSettings
from pipeline.settings.sources import WordPressSourceSettings
from pipeline.sources import SourceContext
from pipeline.sources.build import (
    make_article,
    one_line,
    parse_date,
    shorten,
    slugify,
    upstream_link,
)
from pipeline.sources.http import Fetched, Limits, fetch, unavailable
from pipeline.storing import Streamed
from pipeline.text import html_to_text

PER_PAGE = 100
_PAST_LAST_PAGE = "rest_post_invalid_page_number"
_MORE_LINK = re.compile(r"<a\b[^>]*\bmore-link\b[^>]*>.*?</a>", re.DOTALL | re.IGNORECASE)
_AUTO_END = re.compile(r"(\[(&hellip;|&#8230;|…|\.\.\.)\]|&hellip;|&#8230;|…)\s*(</p>)?\s*$")


class WordPressSource:
    options_model = WordPressSourceSettings

    @classmethod
    def from_settings(cls, settings: WordPressSourceSettings, context: SourceContext) -> Self:
        return cls(settings, context.site, context.http)

    def __init__(
        self,
        settings: WordPressSourceSettings,
        site: SiteSettings,
        http: requests.Session,
        limits: Limits | None = None,
    ):
        self.settings = settings
        self.site = site
        self.http = http
        self.name = settings.name
        self.limits = limits or Limits.of(settings)
        self.base = re.sub(r"/wp-json(/wp/v2(/posts)?)?/?$", "", settings.url.rstrip("/"))
        self.api = f"{self.base}/wp-json/wp/v2/posts"

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        streamed = self.stream(known, cursor)
        changed = list(streamed.items)
        streamed.scan.changed = changed
        return streamed.scan

    def stream(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Streamed:
        """The scan, page by page: a page's new and changed posts are yielded before the
        next page is asked for. A site that cannot be read fails when the first page is."""
        scan = Scan(complete=False)
        pages = self._pages(known, scan)
        first = next(pages, [])
        return Streamed(chain(first, chain.from_iterable(pages)), scan)

    def _pages(self, known: Mapping[str, str], scan: Scan) -> Iterator[list[Item]]:
        s = self.settings
        taken: set[str] = set()
        last, page = s.max_pages, 1
        while page <= last:
            params: dict[str, str | int] = {
                "per_page": PER_PAGE,
                "page": page,
                "orderby": "modified",
                "order": "desc",
                "_embed": 1,
            }
            response = fetch(
                self.http,
                self.api,
                source=s.name,
                timeout=s.timeout,
                params=params,
                allow=(400,),
                limits=self.limits,
            )
            body = _json(response)
            if response.status_code == 400:
                if isinstance(body, dict) and body.get("code") == _PAST_LAST_PAGE:
                    break
                raise unavailable(s.name, response, str(_get(body, "message") or ""))
            if not isinstance(body, list):
                detail = "the answer is not a list of posts; is the url a WordPress site?"
                raise unavailable(s.name, response, detail)
            total = response.headers.get("X-WP-TotalPages", "").strip()
            if re.fullmatch(r"[0-9]{1,9}", total):
                last = min(s.max_pages, int(total))
            items, news = self._read_page(body, known, scan, taken)
            yield items
            if not news or len(body) < PER_PAGE:
                break
            page += 1

    def _read_page(
        self, posts: list, known: Mapping[str, str], scan: Scan, taken: set[str]
    ) -> tuple[list[Item], bool]:
        """A page's new and changed posts (the rest noted in ``scan``), and whether there
        were any: False when all of them were unchanged.

        A post edited while the pages are read moves to the top of the list, pushing
        the others one place down, so the last post of one page comes again at the top
        of the next: a key already taken in this scan is skipped (storing it twice in
        one transaction would write its tags twice).
        """
        news = False
        items: list[Item] = []
        for position, post in enumerate(posts, 1):
            post_id = _get(post, "id")
            if not isinstance(post_id, int) or isinstance(post_id, bool):
                scan.rejected.append(self._problem(f"#{position}", "it has no numeric id"))
                continue
            key = str(post_id)
            if key in taken:
                continue
            taken.add(key)
            # One post's oddity, whatever it raises, costs that post only.
            try:
                fingerprint = f"{key}:{post.get('modified_gmt')}"
                if known.get(key) == fingerprint:
                    scan.unchanged[key] = fingerprint
                    continue
                if _get(post.get("content"), "protected"):
                    continue
                news = True
                article = self._article(key, post)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                scan.rejected.append(self._problem(key, str(exc) or type(exc).__name__))
                continue
            except Exception as exc:
                scan.rejected.append(self._problem(key, f"cannot be read: {one_line(exc)}"))
                continue
            items.append(Item(key=key, fingerprint=fingerprint, article=article))
        return items, news

    def _problem(self, key: str, reason: str) -> Problem:
        edit = f"{shown_url(self.base)}/wp-admin/post.php?post={key}&action=edit"
        hint = f"fix the post in WordPress ({edit}); the other posts were read"
        return Problem(
            shown_url(self.settings.url), None, None, f"post {key}: {shorten(reason, 300)}", hint
        )

    def _article(self, key: str, post: dict) -> Article:
        s = self.settings
        title = _rendered(post, "title")
        content = _rendered(post, "content")
        published = _date(post, "date", self.site.timezone)
        if published is None:
            raise ValueError("it has no publication date (date_gmt)")
        updated = _date(post, "modified", self.site.timezone)
        embedded = post.get("_embedded") or {}
        media = next(iter(embedded.get("wp:featuredmedia") or []), None)
        where = f"source {s.name}: post {key}"
        # No base for the link: self.base may hold credentials, which must not be published.
        link = upstream_link(post.get("link"), base=None, entry=where, what="link")
        image = upstream_link(_get(media, "source_url"), base=link, entry=where, what="image")
        slug = unquote(post.get("slug") or "") or html.unescape(title)
        return make_article(
            self.site,
            id=f"{s.name}:{key}",
            source=s.name,
            origin=f"{shown_url(self.api)}/{key}",
            title=html_to_text(title),
            published=published,
            updated=updated if updated and updated > published else None,
            body_html=content,
            summary=_manual_excerpt(_rendered(post, "excerpt"), content),
            slug=slugify(slug),
            section=s.section or s.name,
            language=s.language or self.site.language,
            authors=[html.unescape(_get(a, "name") or "") for a in embedded.get("author") or []],
            tags=_terms(embedded.get("wp:term") or []),
            image=image,
            image_alt=(_get(media, "alt_text") or None) if image else None,
            url=link,
        )


def _json(response: Fetched) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, or nested past Python's stack
        return None


def _get(value: Any, key: str) -> Any:
    """``value[key]`` when value is a mapping (WordPress embeds error objects freely)."""
    return value.get(key) if isinstance(value, dict) else None


def _rendered(post: dict, field: str) -> str:
    value = _get(post.get(field), "rendered")
    return value if isinstance(value, str) else ""


def _date(post: dict, field: str, timezone: str) -> dt.datetime | None:
    """``date_gmt`` as UTC; failing that the site-local ``date`` in the site's zone."""
    if post.get(f"{field}_gmt"):
        return parse_date(post[f"{field}_gmt"], "UTC")
    return parse_date(post[field], timezone) if post.get(field) else None


def _terms(groups: list) -> list[str]:
    terms = [t for group in groups if isinstance(group, list) for t in group if _get(t, "name")]
    tags = [t for t in terms if t.get("taxonomy") == "post_tag"]
    categories = [
        t for t in terms if t.get("taxonomy") == "category" and t.get("slug") != "uncategorized"
    ]
    return [html.unescape(t["name"]) for t in tags + categories]


def _manual_excerpt(excerpt: str, content: str) -> str | None:
    """The excerpt if the author wrote it; None if WordPress made it from the content."""
    excerpt = _MORE_LINK.sub("", excerpt)
    if _AUTO_END.search(excerpt):
        return None
    flat = _flat(excerpt)
    return excerpt if flat and flat not in _flat(content) else None


def _flat(fragment: str) -> str:
    """Text of an HTML fragment without any white space, for comparing."""
    return re.sub(r"\s+", "", html_to_text(fragment))
