"""The public pages of ``pipeline serve``: what a reader who has no email from us sees.

- ``/``: the site, its digests (language, subscribe, past editions) and its feeds, with
  feed autodiscovery links in the head.
- ``/feeds/``: every configured feed, each format's public address.
- ``/digests/``: the finished editions of every digest, newest first, a page at a time;
  ``/digests/NAME/``: one digest's; ``/digests/NAME/feed.atom``: its editions as Atom.
- ``/digests/NAME/EDITION``: the web version of an edition that has reached someone
  (pipeline.web.archive says which), with a footer that offers to subscribe instead of
  the email's "You are receiving this email because…".

Pages speak the reader's language (``?lang=`` if offered, else Accept-Language, as the
sign-up pages do; links keep a ``?lang=`` given). Anything unknown — a digest, an
edition, a page number — is a 404 page in that language. Every answer carries a strong
ETag (a hash of its bytes) and honours If-None-Match; HEAD is answered like GET,
without the body.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline import i18n
from pipeline.assembly import Assembly
from pipeline.digest.editions import Edition, Editions
from pipeline.digest.render import has_web_footer, personalise
from pipeline.feeds import plan_feeds
from pipeline.plugins import FEED_FORMATS
from pipeline.templating import TEMPLATES, load_template
from pipeline.web.archive import Archive, ArchivePage, PastEdition
from pipeline.web.editions_feed import ATOM_TYPE, FEED_ENTRIES, editions_atom
from pipeline.web.feedfiles import not_modified
from pipeline.web.pages import PAGE_HEADERS, Pages

# What an edition's time looks like in its address (2026-11-23T09:00+05:45); anything
# else is no edition, and is not sent to the database (PostgreSQL refuses NUL in text).
EDITION_TIME = re.compile(r"^[0-9T:+.-]{1,40}$")
PAGE_NUMBER = re.compile(r"^[1-9][0-9]{0,5}$")
LEADS = 3  # article titles an archive entry shows; the rest are counted
FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
# The public pages change when an edition goes out or the config does: readers and
# proxies may keep them five minutes, then revalidate cheaply with the ETag.
PUBLIC_HEADERS = {**PAGE_HEADERS, "Cache-Control": "public, max-age=300", "Vary": "Accept-Language"}
EDITION_HEADERS = {
    # The email's own markup: inline styles and remote images, never scripts.
    "Content-Security-Policy": "default-src 'none'; img-src https: data:; "
    "style-src 'unsafe-inline'; frame-ancestors 'self'",
    "Cache-Control": "public, max-age=3600",
}


@dataclass(frozen=True)
class FeedLink:
    label: str  # RSS, Atom, JSON Feed, or a plug-in format's name
    url: str
    media_type: str


@dataclass(frozen=True)
class ListedFeed:
    title: str
    language: str
    filters: dict[str, str]  # "language"/"section"/"tag" → value; empty for the main feed
    links: tuple[FeedLink, ...]


class PublicSite:
    """The endpoints above; everything they read is passed in through ``parts``."""

    def __init__(self, parts: Assembly, pages: Pages):
        settings = parts.settings
        assert settings.email is not None, "the public pages need an `email:` section"
        self.settings = settings
        self.origin = settings.email.unsubscribe.origin
        self.pages = pages
        self.archive = Archive(parts.store.engine)
        self.editions = Editions(settings, parts.store, clock=parts.clock)
        page = settings.root / TEMPLATES / "web" / "site.html.j2"
        self.template = load_template(page, autoescape=True)
        formats = {name: parts.plugins.load(FEED_FORMATS, name) for name in settings.feeds.formats}
        self.feeds = [
            ListedFeed(
                title=planned.spec.title,
                language=planned.spec.language,
                filters={k: v for k, v in planned.filters.items() if v},
                links=tuple(
                    FeedLink(
                        FORMAT_LABELS.get(name, name),
                        f"{planned.spec.base_url}/{fmt.filename}",
                        fmt.media_type,
                    )
                    for name, fmt in formats.items()
                ),
            )
            for planned in plan_feeds(settings.site, settings.feeds)
        ]

    # -- pages ------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        language, query = self._language(request)
        return self._page(
            request,
            "home",
            language,
            query,
            title=self.settings.site.name,
            digests=self._digests(language, query),
        )

    async def feed_list(self, request: Request) -> Response:
        language, query = self._language(request)
        words = self._words(language)
        return self._page(
            request,
            "feeds",
            language,
            query,
            title=words["feeds_title"],
            digests=self._digests(language, query),
        )

    async def all_editions(self, request: Request) -> Response:
        language, query = self._language(request)
        return await self._archive_page(
            request,
            language,
            query,
            list(self.settings.digests),
            self._words(language)["editions_title"],
        )

    async def digest_editions(self, request: Request) -> Response:
        language, query = self._language(request)
        name = request.path_params["digest"]
        digest = self.settings.digests.get(name)
        if digest is None:
            return self._not_found(request, language, query)
        title = self._words(language, digest=digest.title)["archive_title"]
        return await self._archive_page(request, language, query, [name], title)

    async def digest_feed(self, request: Request) -> Response:
        name = request.path_params["digest"]
        digest = self.settings.digests.get(name)
        if digest is None:
            language, query = self._language(request)
            return self._not_found(request, language, query)
        found = await run_in_threadpool(self.archive.latest, name, FEED_ENTRIES)
        body = editions_atom(name, digest, self.settings.site, origin=self.origin, editions=found)
        headers = {"Cache-Control": "public, max-age=300"}
        return _cached(request, body, f"{ATOM_TYPE}; charset=utf-8", headers)

    async def edition(self, request: Request) -> Response:
        name, when = request.path_params["digest"], request.path_params["edition"]
        language, query = self._language(request)
        if name not in self.settings.digests or not EDITION_TIME.match(when):
            return self._not_found(request, language, query)
        found = await run_in_threadpool(self._public_edition, f"{name}@{when}")
        if found is None:
            return self._not_found(request, language, query)
        body = self.web_version(found).encode("utf-8")
        return _cached(request, body, "text/html; charset=utf-8", EDITION_HEADERS)

    async def not_found(self, request: Request, error: Exception) -> Response:
        """Any address nothing here answers: the 404 page, in the reader's language."""
        language, query = self._language(request)
        return self._not_found(request, language, query)

    def web_version(self, edition: Edition) -> str:
        """The edition as anyone may read it: nobody's name or token, and the footer for
        readers of the web (a subscribe link) where the email has its own."""
        digest = self.settings.digests[edition.digest]
        subscribe = f"{self.origin}/subscribe?{urlencode({'lang': digest.language})}"
        if has_web_footer(edition.rendered):
            html, _ = personalise(
                edition.rendered,
                unsubscribe_url="",
                name="",
                view_url=None,
                subscribe_url=subscribe,
            )
            return html
        # Stored before the web footer existed, or a project template without one: the
        # "why" sentence, as the template wrote it, gives way to the same offer.
        html, _ = personalise(
            edition.rendered, unsubscribe_url=f"{self.origin}/unsubscribe", name="", view_url=None
        )
        words = i18n.words(digest.language, site=self.settings.site.name, digest=digest.title)
        link = f'<a href="{escape(subscribe)}">{escape(words["web_subscribe"])}</a>'
        offer = f"{escape(words['web_footer'])} {link}"
        return html.replace(f"<div>{escape(words['why'])}</div>", f"<div>{offer}</div>", 1)

    # -- helpers ----------------------------------------------------------------------------

    def _public_edition(self, edition_id: str) -> Edition | None:
        found = self.editions.load(edition_id)
        if found is None or not self.archive.is_public(found.id, found.status):
            return None
        return found

    async def _archive_page(
        self, request: Request, language: str, query: dict[str, str], names: list[str], title: str
    ) -> Response:
        number = request.query_params.get("page", "1")
        found: ArchivePage | None = None
        if PAGE_NUMBER.match(number):
            found = await run_in_threadpool(self.archive.page, names, int(number))
        if found is None:
            return self._not_found(request, language, query)
        path = request.url.path

        def at(page: int) -> str:
            return path + _query({**query, **({"page": str(page)} if page > 1 else {})})

        words = self._words(language, page=found.number, pages=found.pages)
        return self._page(
            request,
            "archive",
            language,
            query,
            title=title,
            digests=[d for d in self._digests(language, query) if d["name"] in names],
            editions=[self._entry(e, language, query) for e in found.editions],
            newer=at(found.number - 1) if found.number > 1 else None,
            older=at(found.number + 1) if found.number < found.pages else None,
            page_of=words["page_of"] if found.pages > 1 else "",
        )

    def _entry(self, edition: PastEdition, language: str, query: dict[str, str]) -> dict[str, Any]:
        digest = self.settings.digests[edition.digest]
        shown = edition.leads[:LEADS]
        more = edition.carried - len(shown)
        return {
            "href": f"/digests/{edition.digest}/{edition.time}{_query(query)}",
            "date": i18n.format_date(edition.scheduled_for, language, self.settings.site.timezone),
            "iso": edition.scheduled_for.isoformat(),
            "digest": digest.title,
            "digest_language": digest.language,
            "leads": shown,
            "more": self._words(language, count=more)["more_articles"] if more > 0 else "",
        }

    def _digests(self, language: str, query: dict[str, str]) -> list[dict[str, Any]]:
        found = []
        for name, digest in self.settings.digests.items():
            language_name = i18n.language_name(digest.language, language)
            found.append(
                {
                    "name": name,
                    "title": digest.title,
                    "language": digest.language,
                    "language_line": self._words(language, language_name=language_name)[
                        "language_is"
                    ],
                    "subscribe": "/subscribe" + _query({"lang": digest.language}),
                    "archive": f"/digests/{name}/{_query(query)}",
                    "atom": f"{self.origin}/digests/{name}/feed.atom",
                }
            )
        return found

    def _page(
        self,
        request: Request,
        page: str,
        language: str,
        query: dict[str, str],
        *,
        title: str,
        status: int = 200,
        **values: Any,
    ) -> Response:
        words = self._words(language)
        alternates = [
            {"type": link.media_type, "href": link.url, "title": f"{feed.title} ({link.label})"}
            for feed in self.feeds
            for link in feed.links
        ]
        if page == "archive":  # the editions of the digests listed, not the site's articles
            alternates = [
                {"type": ATOM_TYPE, "href": d["atom"], "title": d["title"]}
                for d in values.get("digests", [])
            ]
        html = self.template.render(
            page=page,
            language=language,
            site=self.settings.site,
            title=title,
            t=words,
            here=_query(query),
            alternates=alternates,
            feeds=[self._feed_entry(feed, language) for feed in self.feeds],
            **values,
        )
        body = html.encode("utf-8")
        if status != 200:
            # Not kept by caches: an edition's address answers as soon as it goes out.
            missing = {**PUBLIC_HEADERS, "Cache-Control": "no-cache"}
            return Response(body, status, headers=missing, media_type="text/html; charset=utf-8")
        return _cached(request, body, "text/html; charset=utf-8", PUBLIC_HEADERS)

    def _feed_entry(self, feed: ListedFeed, language: str) -> dict[str, Any]:
        """A feed as the page lists it: which articles it holds, in the reader's words."""
        shown = [
            self._words(
                language, value=i18n.language_name(value, language) if kind == "language" else value
            )[f"feed_{kind}"]
            for kind, value in feed.filters.items()
        ]
        what = " · ".join(shown) or self._words(language)["feed_main"]
        return {"title": feed.title, "language": feed.language, "what": what, "links": feed.links}

    def _not_found(self, request: Request, language: str, query: dict[str, str]) -> Response:
        title = self._words(language)["not_found_title"]
        return self._page(request, "not_found", language, query, title=title, status=404)

    def _language(self, request: Request) -> tuple[str, dict[str, str]]:
        """The page's language, and the query that keeps it on our links when the reader
        chose it with ``?lang=`` (Accept-Language needs no help)."""
        wanted = request.query_params.get("lang")
        language = self.pages.choose_language(wanted, request.headers.get("accept-language", ""))
        return language, ({"lang": language} if wanted == language else {})

    def _words(self, language: str, **values: object) -> dict[str, str]:
        return i18n.words(language, site=self.settings.site.name, **values)


def _query(values: dict[str, str]) -> str:
    return f"?{urlencode(values)}" if values else ""


def _cached(request: Request, body: bytes, media_type: str, headers: dict[str, str]) -> Response:
    """``body`` with a strong ETag, or 304 when the reader's copy is current. No
    Last-Modified: an archive page or feed changes when an article's title is corrected,
    which no edition's date tells, while its bytes, hence its tag, always do."""
    tag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    sent = {**headers, "ETag": tag}
    if "if-none-match" in request.headers and not_modified(request.headers, tag, 0):
        return Response(status_code=304, headers=sent)
    return Response(body, headers=sent, media_type=media_type)
