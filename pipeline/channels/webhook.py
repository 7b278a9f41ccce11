"""Webhook: any HTTP endpoint gets one JSON POST per article.

The request::

    POST {url}
    Content-Type: application/json
    Idempotency-Key: {key}                 the same on every retry of this article here
    X-Pipeline-Timestamp: 1767225600       only with `secret:`; Unix time in seconds
    X-Pipeline-Signature: sha256={hex}     only with `secret:`

    {"event": "article.published", "channel": "{name}", "key": "{key}",
     "article": {"id", "url", "title", "summary", "authors", "language", "section",
                 "tags", "published", "updated", "image", "image_alt"},
     "text": "{the channel template, plain text}"}

The body is UTF-8 JSON; times are ISO 8601 with offset; ``updated``, ``image`` and
``image_alt`` may be null. ``key`` (also the ``Idempotency-Key``) is stable for the
(article, channel) pair: receivers should store it and ignore a repeat.

Signature, as Stripe and GitHub do it. The signed message is the timestamp header's value,
a full stop, and the raw body bytes exactly as received; the signature is the lower-case
hex HMAC-SHA256 of that message keyed with the secret (UTF-8). To verify::

    message = request.headers["X-Pipeline-Timestamp"].encode() + b"." + request.body
    expected = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-Pipeline-Signature"])

and reject timestamps more than five minutes from now, so a captured request cannot be
replayed later. Verify before parsing: re-serialised JSON is not the same bytes. Each
retry is signed afresh (new timestamp, same body and key).

Corrections (pipeline.corrections) are events of their own, signed the same way, each
with a key of its own: ``article.updated`` (the body as above, the article as it now is)
when a posted article's title, summary or URL changed, and ``article.deleted`` (its
``article`` only ``{"id": ...}``) when it was unpublished or deleted.

The answer: any 2xx is success; a JSON body's ``id`` (and an http(s) ``url``) are
recorded. 429 and 5xx are retried, other 4xx fail, a 3xx fails too (redirects are never
followed: the body and its signature go only to the configured URL), and a timeout is
marked uncertain: we cannot know that the receiver dedupes, so nothing of unknown fate
is sent twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import requests

from pipeline.channels import Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import graphemes
from pipeline.channels.http import request
from pipeline.errors import DeliveryFailed, TemporaryFailure
from pipeline.model import Article
from pipeline.settings.channels import WebhookOptions

EVENT = "article.published"
UPDATED, DELETED = "article.updated", "article.deleted"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``{timestamp}.{body}`` keyed with ``secret``."""
    message = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def article_json(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "url": article.url,
        "title": article.title,
        "summary": article.summary,
        "authors": list(article.authors),
        "language": article.language,
        "section": article.section,
        "tags": list(article.tags),
        "published": article.published.isoformat(),
        "updated": article.updated.isoformat() if article.updated else None,
        "image": article.image,
        "image_alt": article.image_alt,
    }


class WebhookChannel(ChannelBase[WebhookOptions]):
    options_model = WebhookOptions
    dedupe_window: dt.timedelta | None = None  # receivers may dedupe on the key; we can't know
    corrections = frozenset({"edit", "delete"})  # each an event of its own
    repeatable_corrections = False  # an event is a new request: a repeat arrives twice

    def prepare(self, article: Article) -> Post:
        text = self.text(article, limit=None, measure=graphemes)
        body = {"event": EVENT, "channel": self.name, "article": article_json(article)}
        return Post(article, text, graphemes(text), None, {**body, "text": text})

    def send(self, post: Post, key: str) -> Receipt:
        return self._event(EVENT, key, post.body)

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        """An ``article.updated`` event: the article as it now is, and the new text."""
        self._event(UPDATED, key, post.body)
        return posted

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        """An ``article.deleted`` event naming the article."""
        self._event(DELETED, key, {"article": {"id": article_id}})
        return posted

    def _event(self, event: str, key: str, content: Any) -> Receipt:
        payload: dict[str, Any] = {"event": event, "channel": self.name, "key": key}
        payload |= {k: v for k, v in content.items() if k not in payload}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.options.secret:
            timestamp = str(int(self.context.clock().timestamp()))
            headers["X-Pipeline-Timestamp"] = timestamp
            headers["X-Pipeline-Signature"] = signature(self.options.secret, timestamp, body)
        outcome = self._post(body, headers)
        if isinstance(outcome, DeliveryFailed):
            raise outcome  # outside the handler: no chained exception shows the URL
        return _receipt(outcome)

    def _post(self, body: bytes, headers: dict[str, str]) -> requests.Response | DeliveryFailed:
        try:
            return request(
                self.context.http,
                "POST",
                self.options.url,
                service="webhook",
                timeout=self.options.timeout,
                redact=self.redact,
                data=body,
                headers=headers,
            )
        except DeliveryFailed as exc:  # fresh, unchained: the URL may hold a token
            return type(exc)(exc.reason, **_extras(exc))
        except requests.RequestException as exc:  # e.g. a body cut off mid-answer
            return TemporaryFailure(
                f"webhook: the request failed ({type(exc).__name__}); it may have arrived",
                unknown_outcome=True,
            )


def _extras(exc: DeliveryFailed) -> dict[str, Any]:
    if isinstance(exc, TemporaryFailure):
        return {"retry_after": exc.retry_after, "unknown_outcome": exc.unknown_outcome}
    return {}


def _receipt(response: requests.Response) -> Receipt:
    """What the receiver said it made: ``id`` and an http(s) ``url`` from a JSON answer."""
    try:
        answer = response.json()
    except ValueError:
        return Receipt()
    if not isinstance(answer, dict):
        return Receipt()
    remote_id, url = answer.get("id"), answer.get("url")
    if isinstance(remote_id, bool) or not isinstance(remote_id, str | int) or remote_id == "":
        remote_id = None
    if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        url = None
    return Receipt(remote_id=None if remote_id is None else str(remote_id), remote_url=url)
