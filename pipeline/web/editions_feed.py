"""The Atom feed of one digest's editions (``/digests/NAME/feed.atom``), built with feedgen.

feedgen 1.0.0's traps, each handled here: ``add_entry()`` prepends (so entries are
appended explicitly, newest first as the archive lists them), naive datetimes are
refused (every time here is aware UTC), and the feed's ``updated`` would be the moment
of rendering (it is the newest entry's instead, so an unchanged archive gives the same
bytes, and the same ETag, every time).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import urljoin

from feedgen.feed import FeedGenerator

from pipeline import i18n
from pipeline.feeds import EPOCH
from pipeline.settings import SiteSettings
from pipeline.settings.email import DigestSettings
from pipeline.text import xml_safe
from pipeline.urls import as_uri
from pipeline.web.archive import PastEdition

ATOM_TYPE = "application/atom+xml"
FEED_ENTRIES = 20  # editions in the feed: readers poll it, they do not page it


def editions_atom(
    name: str,
    digest: DigestSettings,
    site: SiteSettings,
    *,
    origin: str,
    editions: Sequence[PastEdition],
) -> bytes:
    """The feed of ``editions`` (newest first) of digest ``name``, served at
    ``{origin}/digests/{name}/feed.atom`` (``origin``: the public scheme://host)."""
    archive = f"{origin}/digests/{name}/"
    fg = FeedGenerator()
    fg.id(archive)
    fg.title(xml_safe(digest.title))
    fg.language(digest.language)  # xml:lang of the feed
    fg.author(name=xml_safe(site.name))
    fg.link(href=f"{archive}feed.atom", rel="self", type=ATOM_TYPE)
    fg.link(href=archive, rel="alternate", type="text/html")
    if site.logo:
        fg.logo(as_uri(urljoin(site.url + "/", site.logo)))
    fg.updated(max((e.updated for e in editions), default=EPOCH))
    for edition in editions:
        url = f"{archive}{edition.time}"
        date = i18n.format_date(edition.scheduled_for, digest.language, site.timezone)
        entry = fg.add_entry(order="append")
        entry.id(url)  # an edition's address never changes: a permanent id
        entry.title(xml_safe(f"{edition.subject} — {date}"))
        entry.link(href=url, rel="alternate", type="text/html")
        entry.published(edition.scheduled_for)
        entry.updated(edition.updated)
        if edition.leads:
            items = "".join(
                f'<li><a href="{html.escape(lead.url)}">{html.escape(lead.title)}</a></li>'
                for lead in edition.leads
            )
            entry.content(xml_safe(f"<ul>{items}</ul>"), type="html")
    data: bytes = fg.atom_str(pretty=True)
    return data
