"""One HTTP request to a network, its outcome mapped onto the delivery errors.

- 2xx: the response is returned.
- 3xx: ``PermanentFailure`` naming the status and the ``Location``. Redirects are never
  followed: requests would turn a redirected POST (301/302/303) into a GET whose 200
  landing page looks like success while nothing was posted, and a 307/308 would re-send
  the body, with its Authorization header or signature, to whatever host the answer
  names. Only a credential-free GET may opt in (``follow_redirects``: lead images).
- 429 and 5xx: ``TemporaryFailure`` with how long the network asked us to wait
  (``Retry-After``, the ``*RateLimit-Reset*`` headers, or a JSON ``retry_after``).
- other 4xx (400, 401, 403, 404, 422, …): ``PermanentFailure`` with the network's reason.
- no connection: ``TemporaryFailure``, certainly not delivered.

Every reason built from the answer (its body, its ``Location``) passes through
``redact``, the channel's ``pipeline.redact.Redactor``, before it is cut to length: a
server that echoes the request would otherwise put the token or the webhook URL into the
delivery ledger, the history and the screen.
- a read timeout or a connection dropped after sending: ``TemporaryFailure`` with
  ``unknown_outcome``: the post may exist, so only a deduplicating network may retry.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import requests

from pipeline.clock import system_clock
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.http_errors import exchange_failure, status_failure
from pipeline.redact import Redactor, shown_url

Redact = Callable[[str], str]
REASON_LENGTH = 300
_REDIRECT_SAFE = frozenset({"GET", "HEAD"})

_REASON_KEYS = ("error_description", "error", "message", "description", "detail", "title")


def request(
    http: requests.Session,
    method: str,
    url: str,
    *,
    service: str,
    timeout: float,
    redact: Redact | None = None,
    follow_redirects: bool = False,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; raise the delivery error its outcome means.

    ``follow_redirects`` is honoured only for a GET or HEAD that carries no credentials
    (no Authorization header, no ``auth``): a lead image on a CDN that redirects."""
    redact = redact or Redactor()
    follow = follow_redirects and method.upper() in _REDIRECT_SAFE and not _credentialed(kwargs)
    # Failures are raised "from None": the requests error's text holds the full URL,
    # and for Telegram and every webhook the URL is the secret.
    failure: TemporaryFailure | None
    try:
        response = http.request(method, url, timeout=timeout, allow_redirects=follow, **kwargs)
    except requests.RequestException as exc:
        failure = exchange_failure(exc, service=service, timeout=timeout)
    else:
        failure = None
    if failure is not None:
        raise failure from None
    status = response.status_code
    answer: dict[str, Any] = {"status": status, "response": response}
    refused = status_failure(status)
    if refused is TemporaryFailure:
        raise TemporaryFailure(
            f"{service} answered {status}: {reason(response, redact)}",
            retry_after=retry_after(response),
            **answer,
        )
    if refused is not None:
        raise refused(f"{service} answered {status}: {reason(response, redact)}", **answer)
    if 300 <= status < 400:
        raise PermanentFailure(redirected(response, url, service, redact), **answer)
    return response


def redirected(response: requests.Response, url: str, service: str, redact: Redact) -> str:
    """Why a redirect counts as a failure, naming where it pointed (credentials masked)."""
    location = response.headers.get("Location", "").strip()
    target = redact(shown_url(urljoin(url, location))) if location else "no Location given"
    return (
        f"{service} answered {response.status_code} redirecting to {target}; redirects are "
        "not followed, so nothing was posted there: if the service has moved, put its new "
        "URL in the config"
    )


def _credentialed(kwargs: dict[str, Any]) -> bool:
    headers = {k.lower() for k in (kwargs.get("headers") or {})}
    return "authorization" in headers or kwargs.get("auth") is not None


def reason(response: requests.Response, redact: Redact | None = None) -> str:
    """The network's own words for a failure, secrets masked, then kept short (masked
    first: a cut could leave half a token that no longer matches)."""
    return _cut(_reason(response, redact or Redactor()))


def _cut(text: str) -> str:
    return text if len(text) <= REASON_LENGTH else text[: REASON_LENGTH - 1] + "…"


def _reason(response: requests.Response, redact: Redact) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message, code = body.get("message"), body.get("error")
        if isinstance(message, str) and isinstance(code, str) and message and code != message:
            return redact(f"{message.strip()} ({code.strip()})")  # AT Protocol's shape
        for key in _REASON_KEYS:
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return redact(value.strip())
        if isinstance(body.get("errors"), list | dict):
            return redact(str(body["errors"]))
    text = redact((response.text or "").strip())
    return text or redact(response.reason or "no reason given")


def retry_after(response: requests.Response, now: dt.datetime | None = None) -> float | None:
    """Seconds the network asked us to wait, from whichever convention it uses."""
    now = now or system_clock()
    headers = response.headers
    value = headers.get("Retry-After")
    if value:
        seconds = _seconds(value, now)
        if seconds is not None:
            return seconds
    for name in ("X-RateLimit-Reset-After",):  # Discord: seconds
        if headers.get(name):
            try:
                return max(0.0, float(headers[name]))
            except ValueError:
                pass
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):  # epoch seconds or a date
        if headers.get(name):
            seconds = _seconds(headers[name], now, epoch=True)
            if seconds is not None:
                return seconds
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for holder in (body, body.get("parameters") or {}):  # Discord, Telegram
            if isinstance(holder, dict) and isinstance(holder.get("retry_after"), int | float):
                return max(0.0, float(holder["retry_after"]))
    return None


def _seconds(value: str, now: dt.datetime, epoch: bool = False) -> float | None:
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if epoch and number > 1_000_000_000:  # a Unix time, not a delay
            return max(0.0, number - now.timestamp())
        return max(0.0, number)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())
