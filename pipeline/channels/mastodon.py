"""Mastodon (and compatible servers): one status per article, with the lead image.

Limits come from ``GET /api/v2/instance`` (``/api/v1/instance`` on older servers) and are
kept in the state store for a day; a dry run that cannot reach the server uses the kept
ones, or else Mastodon's defaults (500 characters, 23 a link) and says so. The text is
fitted by Mastodon's own count (``mastodon_length``: URLs as Mastodon finds them count
``characters_reserved_per_url``, ``@user@domain`` counts as ``@user``, the rest in
grapheme clusters). Each status carries an
``Idempotency-Key`` that the server remembers for about an hour, so a send whose fate is
unknown may be repeated with the same key within that window without a duplicate.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from pipeline.channels import ChannelContext, Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import fit, template_values
from pipeline.channels.http import request
from pipeline.channels.mastodon_length import status_length, urls
from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.model import Article
from pipeline.redact import shown_url
from pipeline.settings.channels import MastodonOptions
from pipeline.text import excerpt

log = logging.getLogger(__name__)

SERVICE = "Mastodon"
DEFAULT_LIMITS: dict[str, Any] = {
    "max_characters": 500,
    "characters_reserved_per_url": 23,
    "description_limit": 1500,  # alt text, in characters (Mastodon 4.4 reports it)
    "image_size_limit": None,  # bytes; None: unknown, let the server decide
    "supported_mime_types": [],  # empty: unknown, any image/* is tried
}
LIMITS_TTL = dt.timedelta(hours=24)
POLL_INTERVAL = 1.0  # seconds between checks of an image the server is still processing
MEDIA_POLLS = 5  # after this many checks the status goes out without the image


class MastodonChannel(ChannelBase[MastodonOptions]):
    options_model = MastodonOptions
    corrections = frozenset({"edit", "delete"})
    dedupe_window: dt.timedelta | None = dt.timedelta(hours=1)

    def __init__(
        self,
        name: str,
        options: MastodonOptions,
        context: ChannelContext,
        *,
        poll_interval: float = POLL_INTERVAL,
    ):
        super().__init__(name, options, context)
        self.poll_interval = poll_interval
        self._limits: dict[str, Any] | None = None
        self.memory_key = f"channel:{name}:instance"

    # -- limits -----------------------------------------------------------------------------

    def limits(self) -> dict[str, Any]:
        """The instance's limits: from this object, the store, or the server (daily)."""
        now = self.context.clock()
        cached = self._limits or self.context.memory.value(self.memory_key)
        usable = cached.get("instance") == self.options.instance and "max_characters" in cached
        if usable and now - _fetched_at(cached) < LIMITS_TTL:
            self._limits = cached
            return cached
        try:
            fetched = self._fetch_limits()
        except TemporaryFailure as exc:
            if usable:  # yesterday's limits beat not posting
                return cached
            if not self.context.preview:
                raise
            # A dry run offline: show the post as Mastodon's defaults would have it, once
            # per run (kept here, never in the store), and say so.
            note = (
                f"{self.options.instance} could not be reached ({exc.reason}); counted with "
                f"Mastodon's defaults: {DEFAULT_LIMITS['max_characters']} characters, "
                f"{DEFAULT_LIMITS['characters_reserved_per_url']} for each link"
            )
            assumed = {"instance": self.options.instance, "fetched_at": now.isoformat()}
            self._limits = {**DEFAULT_LIMITS, **assumed, "assumed": note}
            return self._limits
        limits = {**fetched, "instance": self.options.instance, "fetched_at": now.isoformat()}
        self.context.memory.save_value(self.memory_key, limits)
        self._limits = limits
        return limits

    def _fetch_limits(self) -> dict[str, Any]:
        for path in ("/api/v2/instance", "/api/v1/instance"):
            data = self._get_unless_missing(path)
            if data is None:
                continue  # an older server (or not Mastodon): try the next
            configuration = data.get("configuration") or {}
            statuses = configuration.get("statuses") or {}
            media = configuration.get("media_attachments") or {}
            found = {
                "max_characters": statuses.get("max_characters") or data.get("max_toot_chars"),
                "characters_reserved_per_url": statuses.get("characters_reserved_per_url"),
                "description_limit": media.get("description_limit"),
                "image_size_limit": media.get("image_size_limit"),
                "supported_mime_types": media.get("supported_mime_types"),
            }
            return {k: v if _valid(v) else DEFAULT_LIMITS[k] for k, v in found.items()}
        return dict(DEFAULT_LIMITS)

    def _get_unless_missing(self, path: str) -> dict[str, Any] | None:
        """The JSON at ``path``; None if the server answers 404."""
        try:
            response = self._call("GET", path)
        except PermanentFailure as exc:
            if exc.status == 404:
                return None
            raise
        data = _json(response)
        return data if isinstance(data, dict) else {}

    # -- the protocol ------------------------------------------------------------------------

    def prepare(self, article: Article) -> Post:
        limits = self.limits()
        limit = int(limits["max_characters"])
        per_url = int(limits["characters_reserved_per_url"])

        def measure(text: str) -> int:
            return status_length(text, per_url)

        # The template's {{ url }} as Mastodon will link it whole (see ``linkable``).
        values = {**template_values(article, self.context.site.name), "url": linkable(article.url)}
        text = fit(self.template, values, limit=limit, measure=measure)
        body = {
            "status": text,
            "visibility": self.options.visibility,
            "language": article.language.split("-")[0].lower(),  # Mastodon takes ISO 639
        }
        notes = (limits["assumed"],) if limits.get("assumed") else ()
        return Post(article, text, measure(text), limit, body, notes)

    def send(self, post: Post, key: str) -> Receipt:
        body = dict(post.body)
        if self.options.images and post.article.image:
            media_id = self._attach_image(post.article)
            if media_id:
                body["media_ids"] = [media_id]
        response = self._call(
            "POST", "/api/v1/statuses", json=body, headers={"Idempotency-Key": key}
        )
        status = _json(response)
        if not isinstance(status, dict) or not status.get("id"):
            # Accepted but unreadable: asking again with the same key returns the status.
            raise TemporaryFailure(
                f"{SERVICE} answered {response.status_code} without a status", unknown_outcome=True
            )
        return Receipt(
            remote_id=str(status["id"]), remote_url=status.get("url") or status.get("uri")
        )

    # -- corrections -------------------------------------------------------------------------

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """``PUT /api/v1/statuses/:id`` with the new text, keeping its attachments (the
        same body again is the same edit, so a repeat is harmless)."""
        path = f"/api/v1/statuses/{posted.remote_id}"
        current = _json(self._call("GET", path))
        attached = current.get("media_attachments") if isinstance(current, dict) else None
        body: dict[str, Any] = {"status": post.body["status"], "language": post.body["language"]}
        if attached:
            body["media_ids"] = [str(m["id"]) for m in attached if isinstance(m, dict)]
        status = _json(self._call("PUT", path, json=body))
        url = status.get("url") if isinstance(status, dict) else None
        return Receipt(posted.remote_id, url or posted.remote_url)

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """``DELETE /api/v1/statuses/:id``; a status already gone (404) counts as done."""
        try:
            self._call("DELETE", f"/api/v1/statuses/{posted.remote_id}")
        except PermanentFailure as exc:
            if exc.status != 404:
                raise
        return posted

    # -- the image ---------------------------------------------------------------------------

    def _attach_image(self, article: Article) -> str | None:
        """Upload the lead image with its alt text; None (post without it) if it cannot be."""
        assert article.image is not None
        limits = self.limits()
        image = self._download(article.image, limits)
        if image is None:
            return None
        alt = (article.image_alt or article.title).strip() or article.title
        description = excerpt(alt, int(limits["description_limit"]))
        try:
            response = self._call(
                "POST", "/api/v2/media", files={"file": image}, data={"description": description}
            )
            media = _json(response)
            media_id = str(media.get("id") or "") if isinstance(media, dict) else ""
            if not media_id:
                raise PermanentFailure(f"{SERVICE} answered {response.status_code} without an id")
            ready = response.status_code != 202 and media.get("url")
            if not ready and not self._processed(media_id):  # 202: still processing
                raise PermanentFailure(f"{SERVICE} was still processing the image")
            return media_id
        except PermanentFailure as exc:
            log.warning("%s: posting %s without its image: %s", self.name, article.id, exc.reason)
            return None
        except TemporaryFailure as exc:  # nothing is published yet, so retrying is safe
            raise TemporaryFailure(exc.reason, retry_after=exc.retry_after) from exc

    def _processed(self, media_id: str) -> bool:
        """Poll ``GET /api/v1/media/:id`` (206 while processing) until the image has a URL."""
        for _ in range(MEDIA_POLLS):
            time.sleep(self.poll_interval)
            response = self._call("GET", f"/api/v1/media/{media_id}")
            media = _json(response)
            if response.status_code == 200 and isinstance(media, dict) and media.get("url"):
                return True
        return False

    def _download(self, url: str, limits: dict[str, Any]) -> tuple[str, bytes, str] | None:
        """(file name, bytes, MIME type) of the image, or None if it cannot or should not be
        attached. No credentials go to the image's host."""
        try:
            response = request(
                self.context.http,
                "GET",
                url,
                service="image",
                timeout=self.options.timeout,
                redact=self.redact,
                follow_redirects=True,  # no credentials go with it, and images move to CDNs
            )
        except (DeliveryFailed, requests.RequestException) as exc:
            why = exc.reason if isinstance(exc, DeliveryFailed) else type(exc).__name__
            log.warning("%s: image %s not fetched: %s", self.name, shown_url(url), why)
            return None
        mime = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        supported = limits.get("supported_mime_types") or []
        size_limit = limits.get("image_size_limit")
        problem = None
        if not mime.startswith("image/"):
            problem = f"is {mime or 'untyped'}, not an image"
        elif supported and mime not in supported:
            problem = f"is {mime}, which the server does not take"
        elif size_limit and len(response.content) > size_limit:
            problem = f"is larger than the server's {size_limit} bytes"
        if problem:
            log.warning("%s: image %s %s", self.name, shown_url(url), problem)
            return None
        filename = urlsplit(url).path.rsplit("/", 1)[-1] or "image"
        return filename, response.content, mime

    # -- HTTP --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.options.access_token}"}
        headers.update(kwargs.pop("headers", {}))
        try:
            return request(
                self.context.http,
                method,
                self.options.instance + path,
                service=SERVICE,
                timeout=self.options.timeout,
                redact=self.redact,
                headers=headers,
                **kwargs,
            )
        except requests.RequestException as exc:  # e.g. a body cut off mid-way
            raise TemporaryFailure(
                f"{SERVICE}: {type(exc).__name__}", unknown_outcome=True
            ) from exc


def linkable(url: str) -> str:
    """``url`` written so that Mastodon links all of it. Mastodon's URL rule ends a link
    at an unbalanced parenthesis and leaves a final ``.``, ``!``, ``)``… out of it, so
    ``https://x.org/a)b/`` would link ``https://x.org/a``, another page. Each character
    where its link would end is percent-encoded (``)`` → ``%29``), which servers read as
    the same path. A URL Mastodon links nowhere (an unknown top-level domain) stays."""
    for _ in range(len(url)):
        found = next((entity for entity in urls(url) if entity.start == 0), None)
        if found is None or found.end >= len(url):
            break
        cut = "".join(f"%{byte:02X}" for byte in url[found.end].encode("utf-8"))
        url = url[: found.end] + cut + url[found.end + 1 :]
    return url


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _valid(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _fetched_at(cached: dict[str, Any]) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(cached["fetched_at"])
    except (KeyError, TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.UTC)
