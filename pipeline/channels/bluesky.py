"""Bluesky (AT Protocol): each article as an ``app.bsky.feed.post`` record with a link card.

Sign-in is an app password: ``createSession`` is called once and the session is kept in
the state store for later runs; an expired access token is refreshed (``refreshSession``)
and only if that fails is a new session made. createSession is rate-limited.

Posts get a record key derived from the delivery key (a valid TID, the key type the post
lexicon requires). A repository holds one record per key, so a retried create can never
make a second post; before creating, ``send`` looks the key up (``getRecord``) and reports
a post an earlier, timed-out attempt already made. That is why ``dedupe_window`` is set.

Links are facets with UTF-8 byte offsets; the card (``app.bsky.embed.external``) is built
here, its thumbnail uploaded as a blob at send time.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import requests

from pipeline.channels import ChannelContext, Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import graphemes
from pipeline.channels.http import request
from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.model import Article
from pipeline.redact import Redactor
from pipeline.settings.channels import BlueskyOptions

POST = "app.bsky.feed.post"
UPDATED = "Updated: "  # how a correction's reply begins
LIMIT = 300  # graphemes (app.bsky.feed.post#text maxGraphemes)
MAX_BYTES = 3000  # UTF-8 bytes (app.bsky.feed.post#text maxLength)
THUMB_MAX = 1_000_000  # bytes (app.bsky.embed.external#external.thumb maxSize)
_TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TID_BASE = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z in microseconds
_TID_SPAN = 2**40  # about 12.7 days: every derived TID lies in the past


class BlueskyError(PermanentFailure):
    """An XRPC error answer: ``error`` is its name (ExpiredToken, RecordNotFound, …)."""

    def __init__(self, reason: str, error: str, method: str):
        super().__init__(reason)
        self.error = error
        self.method = method


def measure(text: str) -> int:
    """Graphemes, as Bluesky counts; text over the byte limit counts as too long."""
    count = graphemes(text)
    return count if len(text.encode("utf-8")) <= MAX_BYTES else max(count, LIMIT + 1)


def link_facets(text: str, url: str) -> list[dict[str, Any]]:
    """A link facet for every occurrence of ``url``, indexed in UTF-8 bytes."""
    facets, start = [], text.find(url)
    while url and start >= 0:
        byte_start = len(text[:start].encode("utf-8"))
        facets.append(
            {
                "index": {"byteStart": byte_start, "byteEnd": byte_start + len(url.encode())},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
            }
        )
        start = text.find(url, start + len(url))
    return facets


def record_key(key: str) -> str:
    """A TID (13 base32-sortable characters, top bit 0) that depends only on ``key``."""
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    micros = _TID_BASE + number % _TID_SPAN
    value = (micros << 10) | (number >> 54)  # 53-bit timestamp, 10-bit clock id
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def timestamp(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with ``Z``, as the atproto datetime format prefers."""
    utc = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return utc.replace("+00:00", "Z")


class BlueskyChannel(ChannelBase[BlueskyOptions]):
    options_model = BlueskyOptions
    dedupe_window: dt.timedelta | None = dt.timedelta(hours=24)
    """The record key dedupes for as long as the post exists; the window only bounds how
    late an interrupted send is completed (a post deleted by hand stays deleted after)."""
    corrections = frozenset({"edit", "reply", "delete"})
    default_on_update = "reply"
    """Posts cannot be edited: "edit" deletes and re-creates the post, which loses its
    likes, reposts and replies and breaks links people shared, so a reply is the default."""

    def __init__(self, name: str, options: BlueskyOptions, context: ChannelContext):
        super().__init__(name, options, context)
        self.memory_key = f"channel:{name}:session"
        self.login = f"{options.handle}@{options.service}"  # a stored session must match
        self._session: dict[str, str] | None = None
        self._login_failure: PermanentFailure | None = None

    # -- the Channel protocol ------------------------------------------------------------

    def prepare(self, article: Article) -> Post:
        text = self.text(article, limit=LIMIT, measure=measure)
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": timestamp(self.context.clock()),
            "langs": [article.language],
        }
        facets = link_facets(text, article.url)
        if facets:
            record["facets"] = facets
        record["embed"] = {
            "$type": "app.bsky.embed.external",
            "external": {
                "uri": article.url,
                "title": article.title,
                "description": article.summary,
            },
        }
        body = {"repo": self.options.handle, "collection": POST, "record": record}
        return Post(article, text, graphemes(text), LIMIT, body)

    def send(self, post: Post, key: str) -> Receipt:
        return self._create_post(dict(post.body), post.article, key)

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """``reply``: a reply "Updated: …" under the post, which stays the article's;
        ``edit``: a new post with the same card, then the old one deleted (made first, so
        a failure between never leaves none). Both under a record key of their own, so a
        repeat finds what the first attempt made."""
        did = self._current()["did"]
        old_rkey = (posted.remote_id or "").rsplit("/", 1)[-1]
        if mode != "reply":
            made = self.send(post, key)
            self._delete_record(did, old_rkey)
            return made
        original = self._existing(did, old_rkey)
        if original is None:
            raise PermanentFailure("the Bluesky post to reply to no longer exists")
        text = UPDATED + self.text(post.article, limit=LIMIT - graphemes(UPDATED), measure=measure)
        record: dict[str, Any] = {**post.body["record"], "text": text}
        record.pop("facets", None)
        facets = link_facets(text, post.article.url)
        if facets:
            record["facets"] = facets
        parent = {"uri": original["uri"], "cid": original["cid"]}
        record["reply"] = {"root": parent, "parent": parent}
        self._create_post({**post.body, "record": record}, post.article, key)
        return posted

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """``com.atproto.repo.deleteRecord`` (a record already gone counts as done)."""
        rkey = (posted.remote_id or "").rsplit("/", 1)[-1]
        self._delete_record(self._current()["did"], rkey)
        return posted

    # -- posting -------------------------------------------------------------------------

    def _create_post(self, body: dict[str, Any], article: Article, key: str) -> Receipt:
        """Create the record under the key's record key, unless an earlier attempt did."""
        rkey = record_key(key)
        did = self._current()["did"]
        existing = self._existing(did, rkey)
        if existing is not None:  # an earlier attempt made it; its answer was lost
            return self._receipt(existing["uri"])
        body = copy.deepcopy(body)
        body.update(repo=did, rkey=rkey)
        thumb = self._thumb(article)
        if thumb is not None:
            body["record"]["embed"]["external"]["thumb"] = thumb
        made = self._authed("POST", "com.atproto.repo.createRecord", json=body, creates=True)
        return self._receipt(made["uri"])

    def _delete_record(self, did: str, rkey: str) -> None:
        body = {"repo": did, "collection": POST, "rkey": rkey}
        self._authed("POST", "com.atproto.repo.deleteRecord", json=body)

    def _existing(self, did: str, rkey: str) -> dict[str, Any] | None:
        """The post an earlier attempt made under this key, if any."""
        params = {"repo": did, "collection": POST, "rkey": rkey}
        try:
            return self._authed("GET", "com.atproto.repo.getRecord", params=params)
        except BlueskyError as exc:
            if exc.error == "RecordNotFound":
                return None
            raise

    def _thumb(self, article: Article) -> dict[str, Any] | None:
        """The lead image as an uploaded blob; None (a card without one) if that fails."""
        if not article.image:
            return None
        http, timeout = self.context.http, self.options.timeout
        try:
            image = request(
                http,
                "GET",
                article.image,
                service="lead image",
                timeout=timeout,
                redact=self.redact,
                follow_redirects=True,  # no credentials go with it, and images move to CDNs
            )
        except DeliveryFailed:
            return None
        kind = image.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not kind.startswith("image/") or not image.content or len(image.content) > THUMB_MAX:
            return None
        upload, headers = "com.atproto.repo.uploadBlob", {"Content-Type": kind}
        try:
            return self._authed("POST", upload, data=image.content, headers=headers)["blob"]
        except BlueskyError as exc:
            if exc.method != upload:  # the session itself failed: the post would too
                raise
            return None

    def _receipt(self, uri: str) -> Receipt:
        handle = self._current().get("handle") or self.options.handle
        return Receipt(uri, f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}")

    # -- session -------------------------------------------------------------------------

    def _current(self) -> dict[str, str]:
        """The session: this instance's, else the stored one, else a new one."""
        session = self._session
        if session is None:
            stored = self.context.memory.value(self.memory_key)
            if stored.get("accessJwt") and stored.get("login") == self.login:
                session = stored
                self._use(session)
            else:
                session = self._session = self._create()
        return session

    def _create(self) -> dict[str, str]:
        if self._login_failure is not None:  # never hammer a rate-limited endpoint
            raise self._login_failure
        credentials = {"identifier": self.options.handle, "password": self.options.app_password}
        try:
            answer = self._xrpc("POST", "com.atproto.server.createSession", json=credentials)
        except PermanentFailure as exc:
            self._login_failure = exc
            raise
        return self._remember(answer)

    def _renew(self, failed: str) -> dict[str, str]:
        """After ``failed`` (an access token) was refused: a newer stored session, a
        refreshed one, or (the refresh token refused too) a new one."""
        stored = self.context.memory.value(self.memory_key)
        fresh = stored.get("accessJwt")
        if fresh and fresh != failed and stored.get("login") == self.login:
            self._use(stored)  # another run refreshed it meanwhile
            return stored
        refresh = (self._session or {}).get("refreshJwt", "")
        try:
            answer = self._xrpc("POST", "com.atproto.server.refreshSession", token=refresh)
        except PermanentFailure:
            return self._create()
        return self._remember(answer)

    def _remember(self, answer: Mapping[str, Any]) -> dict[str, str]:
        session = {k: str(answer[k]) for k in ("accessJwt", "refreshJwt", "did", "handle")}
        session["login"] = self.login
        self.context.memory.save_value(self.memory_key, session)
        self._use(session)
        return session

    def _use(self, session: dict[str, str]) -> None:
        """Make ``session`` current; its tokens are secrets from now on too."""
        self.redact.add(session.get("accessJwt"), session.get("refreshJwt"))
        self._session = session

    def _authed(self, method: str, nsid: str, **kwargs: Any) -> dict[str, Any]:
        """Call with the access token; once more after a refresh if it had expired."""
        token = self._current()["accessJwt"]
        try:
            return self._xrpc(method, nsid, token=token, **kwargs)
        except BlueskyError as exc:
            if exc.error not in _TOKEN_ERRORS:
                raise
        return self._xrpc(method, nsid, token=self._renew(token)["accessJwt"], **kwargs)

    def _xrpc(
        self,
        method: str,
        nsid: str,
        *,
        token: str | None = None,
        creates: bool = False,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One XRPC call. Failures carry Bluesky's own message and error name; only a
        create whose answer was lost is of unknown outcome (nothing else publishes)."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            response = request(
                self.context.http,
                method,
                f"{self.options.service}/xrpc/{nsid}",
                service="Bluesky",
                timeout=self.options.timeout,
                redact=self.redact,
                headers=sent,
                **kwargs,
            )
        except DeliveryFailed as exc:
            error, reason = "", exc.reason
            if exc.response is not None and not 300 <= (exc.status or 0) < 400:
                error, message = _error_of(exc.response, self.redact)
                detail = f"{message} ({error})" if message and error else message or error
                reason = f"Bluesky {nsid} answered {exc.status}: {detail or reason}"
            if isinstance(exc, TemporaryFailure):
                unknown = exc.unknown_outcome and creates
                raise TemporaryFailure(reason, exc.retry_after, unknown) from exc
            raise BlueskyError(reason, error, nsid) from exc
        return response.json()


def _error_of(response: requests.Response, redact: Redactor) -> tuple[str, str]:
    """The XRPC error body: ``{"error": name, "message": words}``, secrets masked (before
    the cut, so no half token survives it)."""
    try:
        body = response.json()
    except ValueError:
        return "", redact((response.text or "").strip())[:300]
    if not isinstance(body, dict):
        return "", ""
    error = redact(str(body.get("error") or ""))[:100]
    return error, redact(str(body.get("message") or ""))[:300]
