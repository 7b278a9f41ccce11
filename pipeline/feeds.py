"""The feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 files for the site and its extra feeds.

``write_feeds`` asks an ``ArticleQuery`` for the newest articles of each feed, renders
every configured format and writes the files atomically, leaving a file untouched when
its bytes would not change. Output depends only on the articles: no clock is read, so
unchanged input gives byte-identical files and feed readers see no spurious updates.

Formats are a registry (group ``pipeline.feed_formats``, see pipeline.plugins): each is a
``FeedFormat`` that renders one file of a feed. ``rss``, ``atom`` and ``json`` are the
built-ins; a plug-in's format is written beside them when ``feeds.formats`` names it.

RSS and Atom are built with feedgen 1.0.0; one small entry extension adds what feedgen
cannot express (see ``_EntryExtension``) and works around its dropped link attributes.
"""

from __future__ import annotations

import html
import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote, urljoin

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from pipeline.errors import StorageError, describe_os_error
from pipeline.model import Article
from pipeline.plugins import FEED_FORMATS, Plugins
from pipeline.settings import FeedSettings, SiteSettings
from pipeline.text import xml_safe
from pipeline.urls import as_uri

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The ``updated`` time of a feed without entries, so that it too is reproducible."""

MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_LINK_ATTRIBUTES = ("rel", "type", "hreflang", "title", "length")


class ArticleQuery(Protocol):
    def latest(
        self,
        limit: int,
        *,
        language: str | None = None,
        section: str | None = None,
        tag: str | None = None,
    ) -> list[Article]:
        """The newest ``limit`` matching articles, newest first (by ``published``), with
        ``translations`` and ``guid`` filled in."""
        ...


@dataclass(frozen=True)
class FeedReport:
    written: list[Path]
    unchanged: list[Path]


@dataclass(frozen=True)
class FeedSpec:
    """What a feed says about itself, independent of its format."""

    title: str
    description: str
    language: str
    home_url: str  # the site's home page: RSS <link>, JSON home_page_url
    base_url: str  # public URL of the folder holding this feed's files, no trailing slash
    author: str  # feed-level author (the publisher); Atom requires one for every entry
    logo: str | None = None

    def url(self, fmt: str) -> str:
        """The public URL of this feed's file in format ``fmt``."""
        return f"{self.base_url}/{FILENAMES[fmt]}"


@dataclass(frozen=True)
class PlannedFeed:
    spec: FeedSpec
    folder: Path
    filters: dict[str, str | None]


def plan_feeds(site: SiteSettings, feeds: FeedSettings) -> list[PlannedFeed]:
    """Every feed to write: the main feed, then one per extra feed, in configuration order.
    (Settings already refuse two extra feeds that would share a folder.)"""
    # Settings may be written as IRIs (https://例子.广告); feeds carry URIs only.
    base = as_uri((feeds.url or f"{site.url}/feeds").rstrip("/"))
    main = FeedSpec(
        site.name,
        site.name,
        site.language,
        home_url=as_uri(site.url),
        base_url=base,
        author=site.name,
        logo=site.logo,
    )
    planned = [PlannedFeed(main, feeds.output, {"language": None, "section": None, "tag": None})]
    for extra in feeds.extra:
        slug = extra.slug()
        title = extra.title or f"{site.name} — {extra.label()}"
        spec = replace(
            main,
            title=title,
            description=title,
            language=extra.language or site.language,
            base_url=f"{base}/{quote(slug, safe='/')}",
        )
        filters = {"language": extra.language, "section": extra.section, "tag": extra.tag}
        planned.append(PlannedFeed(spec, feeds.output / slug, filters))
    return planned


def write_feeds(
    query: ArticleQuery, site: SiteSettings, feeds: FeedSettings, plugins: Plugins | None = None
) -> FeedReport:
    """Render every configured feed in every configured format (each found in ``plugins``,
    default: the installed ones), then write the files whose bytes changed."""
    plugins = plugins or Plugins()
    formats = {name: plugins.load(FEED_FORMATS, name) for name in dict.fromkeys(feeds.formats)}
    rendered: list[tuple[Path, bytes]] = []
    for feed in plan_feeds(site, feeds):
        articles = query.latest(feeds.items, **feed.filters)
        for fmt, data in render(feed.spec, articles, formats).items():
            rendered.append((feed.folder / formats[fmt].filename, data))
    written: list[Path] = []
    unchanged: list[Path] = []
    for path, data in rendered:
        try:
            (written if write_if_changed(path, data) else unchanged).append(path)
        except OSError as exc:
            # Stop at the first: a full or read-only disk fails every other file the same
            # way. Each file is replaced whole or not at all, so readers keep a valid feed.
            # name the file that stands in a folder's place, else the feed being written
            blocker = next((f for f in reversed(path.parents) if f.is_file()), None)
            what = "cannot write the feeds into" if blocker else "cannot write the feed"
            message = describe_os_error(exc, what, blocker or path)
            done = f", {len(written)} were written" if written else ""
            raise StorageError(
                f"{message} (feeds not rewritten keep their previous version{done})"
            ) from exc
    return FeedReport(written, unchanged)


def published_entries(site: SiteSettings, feeds: FeedSettings) -> dict[str, str]:
    """Article URL → feed id of every entry the feed files on disk list now (any
    format). It tells that this project has published before, and gives articles their
    published feed ids back when the state store has to start over."""
    found: dict[str, str] = {}
    for feed in plan_feeds(site, feeds):
        for fmt, filename in FILENAMES.items():
            try:
                data = (feed.folder / filename).read_bytes()
            except OSError:
                continue  # not written in this format, or unreadable: the others may do
            try:
                entries = _entries(fmt, data)
            except (ValueError, etree.XMLSyntaxError):
                continue  # not a feed this pipeline wrote
            # Feeds written before links were URIs hold IRIs; articles now carry URIs.
            found.update({_uri_or_same(url): guid for url, guid in entries.items()})
    return found


def _uri_or_same(url: str) -> str:
    try:
        return as_uri(url)
    except ValueError:  # UnsafeURL: a host IDNA refuses; it matches nothing either way
        return url


def _entries(fmt: str, data: bytes) -> dict[str, str]:
    if fmt == "json":
        items = json.loads(data).get("items") or []
        return {i["url"]: i["id"] for i in items if isinstance(i, dict) and {"url", "id"} <= set(i)}
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    if fmt == "atom":
        ns = {"a": "http://www.w3.org/2005/Atom"}
        found: dict[str, str] = {}
        for entry in root.iterfind("a:entry", ns):
            link = entry.xpath("string(a:link[@rel='alternate'][1]/@href)", namespaces=ns)
            guid = entry.findtext("a:id", namespaces=ns)
            if guid and link:
                found[str(link)] = guid
        return found
    return {
        link: guid
        for item in root.iterfind("channel/item")
        if (link := item.findtext("link")) and (guid := item.findtext("guid"))
    }


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data``; return False, touching nothing, if it
    already holds exactly those bytes. Readers never see a half-written file."""
    try:
        if path.read_bytes() == data:
            return False
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644  # mkstemp makes 0600 files, which a web server could not read
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return True


# --- the formats ---------------------------------------------------------------------


class FeedFormat(Protocol):
    """What a ``pipeline.feed_formats`` entry point names: one file of each feed."""

    @property
    def filename(self) -> str:
        """The file's name in the feed's folder, e.g. rss.xml."""
        ...

    @property
    def media_type(self) -> str:
        """Its Content-Type, e.g. application/rss+xml."""
        ...

    def render(self, spec: FeedSpec, articles: Sequence[Article]) -> bytes:
        """The file's bytes; the same articles must give the same bytes (no clock)."""
        ...


@dataclass(frozen=True)
class FeedgenFormat:
    """RSS or Atom: both are written from one FeedGenerator, which is most of the work."""

    kind: Literal["rss", "atom"]
    filename: str
    media_type: str

    def render(self, spec: FeedSpec, articles: Sequence[Article]) -> bytes:
        return self.write(_generator(spec, articles), spec)

    def write(self, fg: FeedGenerator, spec: FeedSpec) -> bytes:
        fg.link(href=spec.url(self.kind), rel="self", type=self.media_type, replace=True)
        # RSS <link> is whichever feed link feedgen was given last: the home page goes last.
        fg.link(href=spec.home_url, rel="alternate", type="text/html")
        return fg.rss_str(pretty=True) if self.kind == "rss" else fg.atom_str(pretty=True)


@dataclass(frozen=True)
class JsonFeedFormat:
    filename: str = "feed.json"
    media_type: str = "application/feed+json"

    def render(self, spec: FeedSpec, articles: Sequence[Article]) -> bytes:
        return render_json(spec, articles)


RSS = FeedgenFormat("rss", "rss.xml", "application/rss+xml")
ATOM = FeedgenFormat("atom", "atom.xml", "application/atom+xml")
JSON_FEED = JsonFeedFormat()
BUILT_IN: dict[str, FeedFormat] = {"rss": RSS, "atom": ATOM, "json": JSON_FEED}
FILENAMES: dict[str, str] = {name: fmt.filename for name, fmt in BUILT_IN.items()}
MEDIA_TYPES: dict[str, str] = {name: fmt.media_type for name, fmt in BUILT_IN.items()}


def render(
    spec: FeedSpec, articles: Sequence[Article], formats: Mapping[str, FeedFormat]
) -> dict[str, bytes]:
    """Each of ``formats`` rendered; RSS and Atom share one FeedGenerator."""
    out: dict[str, bytes] = {}
    fg: FeedGenerator | None = None
    for name, fmt in formats.items():
        if isinstance(fmt, FeedgenFormat):
            fg = fg or _generator(spec, articles)
            out[name] = fmt.write(fg, spec)
        else:
            out[name] = fmt.render(spec, articles)
    return out


def render_rss(spec: FeedSpec, articles: Sequence[Article]) -> bytes:
    return RSS.render(spec, articles)


def render_atom(spec: FeedSpec, articles: Sequence[Article]) -> bytes:
    return ATOM.render(spec, articles)


# --- RSS and Atom ------------------------------------------------------------------------


class _FeedExtension(BaseExtension):
    """Feed-level half of the ``pipeline`` extension; it adds nothing."""


class _EntryExtension(BaseEntryExtension):
    """Entry output feedgen 1.0.0 cannot produce by itself.

    * Atom ``<link>`` attributes. ``FeedEntry.atom_entry`` rebinds its loop variable
      ``link`` to the element it just created, so ``rel``, ``type``, ``hreflang``,
      ``title`` and ``length`` are read from that bare element and dropped (feedgen issue
      135). feedgen is told only the canonical link (so RSS ``<link>`` stays canonical);
      ``links`` holds every link (see ``_atom_links``), and ``extend_atom`` gives
      feedgen's elements their attributes back and adds the others after them.
    * ``xml:lang`` on each Atom entry, since a feed may mix languages.
    * ``media:title`` (the image's alt text) inside ``media:content``; at item level
      feedparser would take it for the entry's title. No ``media:description``: even
      inside ``media:content`` feedparser files it as the entry's ``summary_detail``,
      so readers using it showed the alt text as the summary.
    * RSS ``<title>`` as escaped HTML, like ``<description>``: feedparser and SimplePie
      read a title holding a closing tag or an entity as HTML (``<b>x</b>`` showed bold,
      ``&amp;`` as ``&``); escaped, every title shows as written.
    """

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.language: str | None = None
        self.image_alt: str | None = None

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        elements = entry.findall("link")
        anchor = elements[-1] if elements else None
        for index, data in enumerate(self.links):
            if index < len(elements):
                element = elements[index]
            else:
                element = etree.Element("link", href=data["href"])
                if anchor is None:
                    entry.append(element)
                else:
                    anchor.addnext(element)
                anchor = element
            for key in _LINK_ATTRIBUTES:
                if data.get(key):
                    element.set(key, data[key])
        if self.language:
            entry.set(XML_LANG, self.language)
        return self._image_text(entry)

    def extend_rss(self, item: etree._Element) -> etree._Element:
        title = item.find("title")
        if title is not None and title.text:
            title.text = html.escape(title.text, quote=False)
        return self._image_text(item)

    def _image_text(self, element: etree._Element) -> etree._Element:
        content = element.find(f"{{{MEDIA_NS}}}content")
        if self.image_alt and content is not None:
            alt = etree.SubElement(content, f"{{{MEDIA_NS}}}title", type="plain")
            alt.text = self.image_alt
        return element


def _generator(spec: FeedSpec, articles: Sequence[Article]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False)  # dc:creator: RSS <author> must be an email address
    fg.load_extension("media")
    fg.register_extension("pipeline", _FeedExtension, _EntryExtension)
    fg.id(spec.url("atom"))
    fg.title(_text(spec.title))
    fg.description(_text(spec.description))  # RSS description and Atom subtitle
    fg.language(spec.language)  # RSS <language>, Atom xml:lang
    fg.author(name=_text(spec.author))
    if spec.logo:
        fg.logo(as_uri(urljoin(spec.home_url + "/", spec.logo)))
    # feedgen defaults these to now(); derive them from the entries instead.
    fg.updated(max((a.modified for a in articles), default=EPOCH))
    if articles:
        fg.pubDate(max(a.published for a in articles))
    for article in articles:
        _add_entry(fg, article)
    return fg


def _add_entry(fg: FeedGenerator, article: Article) -> None:
    fe = fg.add_entry(order="append")  # the default, prepend, would reverse the order
    guid = _guid(article)
    fe.guid(guid, permalink=guid == article.url)  # also the Atom id
    fe.title(_text(article.title))
    canonical = {
        "href": article.url,
        "rel": "alternate",
        "type": "text/html",
        "hreflang": article.language,
    }
    fe.link(dict(canonical))  # feedgen adds defaults to the dict it is given
    fe.pipeline.links = _atom_links(canonical, _translation_links(article))
    fe.pipeline.language = article.language
    # Order matters: description() also sets Atom content, content() then replaces it,
    # and summary() keeps an RSS description that is already set.
    fe.description(html.escape(_text(article.summary), quote=False))  # RSS: escaped HTML
    fe.content(_text(article.body_html), type="html")  # RSS content:encoded, Atom content
    fe.summary(_text(article.summary))  # Atom summary, plain text
    if article.authors:
        fe.author([{"name": _text(name)} for name in article.authors])
        fe.dc.dc_creator([_text(name) for name in article.authors])
    fe.dc.dc_language(article.language)
    if article.tags:
        fe.category([{"term": _text(tag)} for tag in article.tags])
    fe.published(article.published)
    fe.updated(article.modified)
    if article.image:
        image = urljoin(article.url, article.image)
        fe.media.content(url=image, medium="image", group=None)
        fe.media.thumbnail(url=image, group=None)
        fe.pipeline.image_alt = _text(article.image_alt or "") or None


def _atom_links(
    canonical: dict[str, str], translations: list[dict[str, str]]
) -> list[dict[str, str]]:
    """An Atom entry's links, so that every reader opens the article itself.

    Readers disagree on which ``alternate`` is the entry's link: SimplePie (FreshRSS and
    other PHP readers) takes the first, feedparser the last. The article's own link
    therefore comes first and, when translations sit between, once more last. The
    closing one has no ``hreflang``, so no two alternates share a type and hreflang
    (RFC 4287 §4.1.1, the W3C validator's DuplicateAtomLink). Translations stay
    ``rel="alternate"`` with ``hreflang``, as RFC 4287 and HTML mark a page's other
    languages.
    """
    if not translations:
        return [canonical]
    closing = {key: canonical[key] for key in ("href", "rel", "type")}
    return [canonical, *translations, closing]


def _translation_links(article: Article) -> list[dict[str, str]]:
    """One alternate link per other language; Atom forbids two alternates with the same
    type and hreflang, so repeats and the article's own language are skipped."""
    seen = {article.language.lower()}
    links = []
    for translation in article.translations:
        if translation.language.lower() in seen:
            continue
        seen.add(translation.language.lower())
        links.append(
            {
                "href": urljoin(article.url, translation.url),
                "rel": "alternate",
                "type": "text/html",
                "hreflang": translation.language,
                "title": _text(translation.title),
            }
        )
    return links


# --- JSON Feed ---------------------------------------------------------------------------


def render_json(spec: FeedSpec, articles: Sequence[Article], *, indent: int | None = None) -> bytes:
    """The JSON Feed 1.1 file: compact unless an ``indent`` is asked for, because any
    indent makes ``json.dumps`` use its pure-Python encoder (several times slower)."""
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": _text(spec.title),
        "home_page_url": spec.home_url,
        "feed_url": spec.url("json"),
        "description": _text(spec.description),
        "language": spec.language,
        "authors": [{"name": _text(spec.author)}],
    }
    if spec.logo:
        feed["icon"] = as_uri(urljoin(spec.home_url + "/", spec.logo))
    feed["items"] = [_json_item(article) for article in articles]
    separators = (",", ":") if indent is None else None
    text = json.dumps(feed, ensure_ascii=False, indent=indent, separators=separators)
    return (text + "\n").encode("utf-8")


def _json_item(article: Article) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": _guid(article),
        "url": article.url,
        "title": _text(article.title),
        "content_html": _text(article.body_html),
        "summary": _text(article.summary),
    }
    if article.image:
        item["image"] = urljoin(article.url, article.image)
    item["date_published"] = _rfc3339(article.published)
    item["date_modified"] = _rfc3339(article.modified)
    if article.authors:
        item["authors"] = [{"name": _text(name)} for name in article.authors]
    if article.tags:
        item["tags"] = [_text(tag) for tag in article.tags]
    item["language"] = article.language
    translations = _translation_links(article)
    if translations:
        # JSON Feed extensions are objects whose names start with an underscore.
        item["_translations"] = {
            "items": [
                {"language": link["hreflang"], "url": link["href"], "title": link["title"]}
                for link in translations
            ]
        }
    return item


# --- helpers -----------------------------------------------------------------------------


def _guid(article: Article) -> str:
    return article.guid or article.url


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r} cannot go into a feed")
    return moment.isoformat()


def _text(value: str) -> str:
    """``value`` without characters XML cannot hold (lxml would refuse the whole feed)."""
    return xml_safe(value)
