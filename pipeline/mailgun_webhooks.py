"""Mailgun's webhooks: is a posted event really from Mailgun, and what does it report?

Mailgun signs each event: ``signature`` = HMAC-SHA256 of ``timestamp + token`` under the
webhook signing key. An event is taken only when that matches, its timestamp is within
``MAX_SKEW`` of our clock (a captured event cannot be posted again next week), and its
token was not seen before in that time (nor can it be posted again now).

``failed`` with severity ``permanent`` is a ``bounce``, ``temporary`` a ``delay``;
``complained`` is a ``complaint``; every other event (delivered, opened, …) gives nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parseaddr
from typing import Any

from pipeline.clock import Clock
from pipeline.feedback import Feedback, FeedbackKind
from pipeline.sns import load_json

SOURCE = "mailgun"
MAX_SKEW = dt.timedelta(minutes=15)
MAX_TOKENS = 100_000  # tokens remembered at most (far beyond MAX_SKEW's worth of events)


class Refused(Exception):
    """Not an event Mailgun signed just now; the words say why."""


def parse(body: bytes) -> tuple[dict[str, str], dict[str, Any]]:
    """(signature, event-data) of a webhook body; ``ValueError`` if it is not one."""
    posted = load_json(body)
    if not isinstance(posted, dict):
        raise ValueError("the body is not a JSON object")
    signature, event = posted.get("signature"), posted.get("event-data")
    if not isinstance(signature, dict) or not isinstance(event, dict):
        raise ValueError("a Mailgun webhook has a signature and an event-data object")
    fields = {name: signature.get(name) for name in ("timestamp", "token", "signature")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise ValueError("the signature needs timestamp, token and signature strings")
    return {k: str(v) for k, v in fields.items()}, event


class Signatures:
    """Checks signatures against ``key`` and remembers recent tokens (in this process)."""

    def __init__(self, key: str, clock: Clock):
        self.key = key.encode("utf-8")
        self.clock = clock
        self._seen: dict[str, dt.datetime] = {}  # token -> until when it is remembered
        self._lock = threading.Lock()

    @contextmanager
    def checked(self, signature: dict[str, str]) -> Iterator[None]:
        """Raise ``Refused`` unless the signature is good, fresh and new; the token is
        spent only if the block completes (an event we failed to apply may come again)."""
        # surrogatepass: JSON may carry a lone surrogate, which then matches nothing
        signed = (signature["timestamp"] + signature["token"]).encode("utf-8", "surrogatepass")
        expected = hmac.new(self.key, signed, hashlib.sha256).hexdigest()
        given = signature["signature"].lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected.encode("ascii"), given):
            raise Refused("the signature does not match (check email.mailgun.webhook_signing_key)")
        now = self.clock()
        try:
            sent = dt.datetime.fromtimestamp(int(signature["timestamp"]), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise Refused("the timestamp is not a time") from None
        if abs(now - sent) > MAX_SKEW:
            raise Refused(f"the timestamp is more than {MAX_SKEW} from now")
        token = signature["token"]
        with self._lock:
            self._forget(now)
            if token in self._seen:
                raise Refused("this token was used already (a replayed event)")
            self._seen[token] = now + 2 * MAX_SKEW
        try:
            yield
        except BaseException:
            with self._lock:
                self._seen.pop(token, None)
            raise

    def _forget(self, now: dt.datetime) -> None:
        expired = [t for t, until in self._seen.items() if until < now]
        for token in expired:
            del self._seen[token]
        while len(self._seen) >= MAX_TOKENS:
            self._seen.pop(next(iter(self._seen)))


def mailgun_feedback(event: dict[str, Any]) -> list[Feedback]:
    """The report in one event (none for events that are not failures or complaints)."""
    name = event.get("event")
    if name == "failed":
        severity = event.get("severity")
        what: FeedbackKind = "bounce" if severity == "permanent" else "delay"
        status = event.get("delivery-status")
        status = status if isinstance(status, dict) else {}
        words = [status.get("code"), status.get("message") or status.get("description")]
        said = " ".join(str(w) for w in words if isinstance(w, str | int) and str(w).strip())
        head = f"{severity or 'unknown'} failure ({event.get('reason') or 'unknown reason'})"
        reason = " ".join(f"{head}: {said}".split())[:500] if said else head
    elif name == "complained":
        what, reason = "complaint", "complaint (Mailgun complained event)"
    else:
        return []
    address = parseaddr(str(event.get("recipient", "")))[1]
    if "@" not in address:
        raise ValueError("the event names no recipient address")
    return [
        Feedback(
            address,
            what,
            reason,
            SOURCE,
            message_id=_message_id(event.get("message")),
            reported_at=_moment(event.get("timestamp")),
        )
    ]


def _message_id(message: object) -> str | None:
    """Our Message-ID, in angle brackets as in the header (Mailgun drops them)."""
    headers = message.get("headers") if isinstance(message, dict) else None
    value = headers.get("message-id") if isinstance(headers, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return f"<{value.strip().removeprefix('<').removesuffix('>')}>"


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
