"""One HTTP request to a network, its outcome mapped onto the delivery errors.

- 2xx/3xx: the response is returned.
- 429 and 5xx: ``TemporaryFailure`` with how long the network asked us to wait
  (``Retry-After``, the ``*RateLimit-Reset*`` headers, or a JSON ``retry_after``).
- other 4xx (400, 401, 403, 404, 422, …): ``PermanentFailure`` with the network's reason.
- no connection: ``TemporaryFailure``, certainly not delivered.
- a read timeout or a connection dropped after sending: ``TemporaryFailure`` with
  ``unknown_outcome``: the post may exist, so only a deduplicating network may retry.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any

import requests

from pipeline.errors import PermanentFailure, TemporaryFailure

_REASON_KEYS = ("error_description", "error", "message", "description", "detail", "title")


def request(
    http: requests.Session, method: str, url: str, *, service: str, timeout: float, **kwargs: Any
) -> requests.Response:
    """Send one request; raise the delivery error its outcome means."""
    # Failures are raised "from None": the requests error's text holds the full URL,
    # and for Telegram and every webhook the URL is the secret.
    try:
        response = http.request(method, url, timeout=timeout, **kwargs)
    except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
        failure = TemporaryFailure(f"{service}: cannot connect ({type(exc).__name__})")
    except requests.ReadTimeout:
        failure = TemporaryFailure(
            f"{service}: no answer within {timeout:g} s; the post may have been made",
            unknown_outcome=True,
        )
    except requests.ConnectionError as exc:
        never_connected = "NewConnectionError" in repr(exc) or "NameResolution" in repr(exc)
        failure = TemporaryFailure(
            f"{service}: connection failed ({type(exc).__name__})",
            unknown_outcome=not never_connected,
        )
    except requests.RequestException as exc:  # e.g. an answer cut off part-way
        failure = TemporaryFailure(
            f"{service}: the answer was broken ({type(exc).__name__})", unknown_outcome=True
        )
    else:
        failure = None
    if failure is not None:
        raise failure from None
    status = response.status_code
    answer = {"status": status, "response": response}
    if status == 429 or status >= 500:
        raise TemporaryFailure(
            f"{service} answered {status}: {reason(response)}",
            retry_after=retry_after(response),
            **answer,
        )
    if status >= 400:
        raise PermanentFailure(f"{service} answered {status}: {reason(response)}", **answer)
    return response


def reason(response: requests.Response) -> str:
    """The network's own words for a failure, kept short."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message, code = body.get("message"), body.get("error")
        if isinstance(message, str) and isinstance(code, str) and message and code != message:
            return f"{message.strip()} ({code.strip()})"[:300]  # AT Protocol's shape
        for key in _REASON_KEYS:
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
        if isinstance(body.get("errors"), list | dict):
            return str(body["errors"])[:300]
    text = (response.text or "").strip()
    return text[:300] or (response.reason or "no reason given")


def retry_after(response: requests.Response, now: dt.datetime | None = None) -> float | None:
    """Seconds the network asked us to wait, from whichever convention it uses."""
    now = now or dt.datetime.now(dt.UTC)
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
