"""Corrections: a posted article that changed, or was taken down, is corrected on each
channel by that channel's policy (``on_update``: edit | reply | ignore, ``on_delete``:
delete | ignore; see pipeline.settings.channels).

A sent post's ledger row keeps the *version* it said: the fingerprint of its article's
title, summary and URL. Each ``post`` run compares it with the article as it now is:

- a different fingerprint: the row ``{article}#update:{n}:{fingerprint[:16]}``, ``n``
  counting the versions the post has shown (so a title changed back and forth is
  corrected each time);
- the article removed (unpublished, drafted, deleted from its source): ``{article}#delete``.

A correction is a ledger row of its own in the channel's stream, claimed and settled by
the delivery core like any post, so each is made once; the article's post on the network
is the one its latest sent create or update row names (a Bluesky re-creation is a new
post). Edits and deletes are idempotent where the network makes them so (the same PUT,
the same record key): an interrupted one is sent again; a webhook event or a file line
would arrive twice, so one of unknown fate is uncertain instead. After a delete nothing
more is corrected. Rows from before corrections existed carry no version and are never
corrected, so an upgrade does not edit the archive.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from pipeline.channels import Channel, Receipt
from pipeline.correction_policy import delete_policy, update_policy
from pipeline.delivery import Courier
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import PENDING, SENDING, SENT, Entry, Ledger
from pipeline.model import Article
from pipeline.schema import LIVE, articles
from pipeline.store import Store

UPDATE, DELETE = "update", "delete"


def fingerprint(article: Article) -> str:
    """What a post says of an article, as one value: a change to it is a correction."""
    said = "\x00".join((article.title, article.summary, article.url))
    return hashlib.sha256(said.encode("utf-8")).hexdigest()


def correction_item(article_id: str, kind: str, version: str = "", shown: int = 1) -> str:
    """The ledger item of a correction: ``news/1#update:1:0123456789abcdef`` (the post
    has shown one version so far), ``news/1#delete``."""
    if kind == UPDATE:
        return f"{article_id}#{kind}:{shown}:{version[:16]}"
    return f"{article_id}#{kind}"


# The suffix a correction adds to its article's id. Ids may hold "#" themselves (a feed
# item keyed by a link with a fragment), so only this exact ending marks a correction.
_CORRECTION = re.compile(r"#(update):[0-9]+:[0-9a-f]{16}\Z|#(delete)\Z")


def article_of(item: str) -> str:
    """The article a ledger item of a channel's stream is about."""
    found = _CORRECTION.search(item)
    return item[: found.start()] if found else item


def correction_kind(item: str) -> str | None:
    """``update`` or ``delete`` for a correction's item; None for a post's."""
    found = _CORRECTION.search(item)
    return (found.group(1) or found.group(2)) if found else None


def is_correction(item: str) -> bool:
    return _CORRECTION.search(item) is not None


@dataclass(frozen=True)
class Correction:
    item: str  # its ledger item
    kind: str  # update | delete
    article_id: str
    article: Article | None  # as it now is (None: no longer in the store)
    posted: Receipt  # the article's post on the network
    version: str | None  # what the post will say once corrected


class Corrector:
    """Finds and makes one channel's corrections through the delivery core."""

    def __init__(self, store: Store, ledger: Ledger):
        self.store = store
        self.ledger = ledger

    def due(self, channel: Channel, stream: str) -> list[Correction]:
        """The corrections the channel's posts need now, oldest post first."""
        updates, deletes = update_policy(channel), delete_policy(channel)
        if updates == "ignore" and deletes == "ignore":
            return []
        rows = self.ledger.entries(stream)
        posts: dict[str, list[Entry]] = {}
        for entry in rows.values():
            posts.setdefault(article_of(entry.item), []).append(entry)
        found = []
        states = self._live(list(posts))
        for article_id, entries in sorted(posts.items()):
            made = [
                e
                for e in entries
                if e.state == SENT and e.version and correction_kind(e.item) != DELETE
            ]
            deleted = rows.get(correction_item(article_id, DELETE))
            if not made or (deleted is not None and deleted.state not in (PENDING, SENDING)):
                continue  # never posted with a version (from before corrections), or deleted
            latest = max(made, key=lambda e: (e.updated_at, e.item))
            posted = Receipt(latest.remote_id, latest.remote_url)
            article = states.get(article_id)
            if article is None or deleted is not None:
                if deletes != "ignore":
                    item = correction_item(article_id, DELETE)
                    found.append(Correction(item, DELETE, article_id, None, posted, None))
                continue
            version = fingerprint(article)
            if updates == "ignore" or version == latest.version:
                continue
            article = self.store.get(article_id) or article  # with its translations
            item = correction_item(article_id, UPDATE, version, shown=len(made))
            for entry in entries:  # an older correction still waiting is superseded
                if entry.item.startswith(f"{article_id}#{UPDATE}:") and entry.item != item:
                    self.ledger.drop(stream, entry.item, "superseded by a newer correction")
            found.append(Correction(item, UPDATE, article_id, article, posted, version))
        return found

    def run(self, channel: Channel, stream: str, courier: Courier, key: Callable[[str], str]):
        """Settle interrupted corrections (sent again where that is idempotent), then
        make each due correction once."""
        due = self.due(channel, stream)
        by_item = {c.item: c for c in due}
        for entry in self.ledger.interrupted(stream):
            if not is_correction(entry.item):
                continue
            correction = by_item.get(entry.item)
            if correction is not None and channel.repeatable_corrections:
                send = self._sender(channel, correction, entry.key or key(entry.item))
                if send is not None:
                    courier.resume(entry, send, correction.version)
                    continue
            detail = "the run stopped while correcting the post; it may or may not be corrected"
            courier.abandon(entry, detail)
        for correction in due:
            item_key = key(correction.item)
            send = self._sender(channel, correction, item_key)
            if send is None:
                continue
            job = courier.take(stream, correction.item, item_key, send)
            if job is not None:  # else done, failed, or waiting for its next attempt
                job.version = correction.version
                courier.attempt(job)

    def _sender(
        self, channel: Channel, correction: Correction, key: str
    ) -> Callable[[], Receipt] | None:
        """One attempt at the correction; None if its text cannot be made now."""
        if correction.kind == DELETE:
            return lambda: channel.delete(correction.article_id, correction.posted, key)
        assert correction.article is not None
        try:
            post = channel.prepare(correction.article)
        except (TemporaryFailure, PermanentFailure):
            return None  # the same failure a new post would meet: tried on a later run
        mode = update_policy(channel)
        return lambda: channel.update(post, correction.posted, key, mode)

    def _live(self, ids: list[str]) -> dict[str, Article]:
        """Those of ``ids`` still published, as they now are (500 to a query)."""
        found: dict[str, Article] = {}
        query = select(articles.c.id, articles.c.data).where(articles.c.status == LIVE)
        with self.store.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for id_, data in conn.execute(query.where(articles.c.id.in_(chunk))):
                    found[id_] = Article.model_validate_json(data)
        return found
