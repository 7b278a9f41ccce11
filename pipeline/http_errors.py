"""What a failed HTTP exchange means, decided in one place for sources and channels.

An answer's status: 429 and 5xx are worth trying again later (``TemporaryFailure``),
any other 4xx is a refusal that retrying cannot change (``PermanentFailure``); redirects
are the caller's own business (a source follows them, a channel never does).

A request that got no answer: whether it may have arrived (a read timeout, a connection
dropped after sending) or certainly did not (no connection was made), and the innermost
reason, which requests wraps several levels deep. A channel turns this into a delivery
error; a source, which simply reads again next run, into ``SourceUnavailable``.
"""

from __future__ import annotations

import requests

from pipeline.errors import PermanentFailure, TemporaryFailure


def status_failure(status: int) -> type[TemporaryFailure] | type[PermanentFailure] | None:
    """The delivery error an answer's status means; None for a 1xx, 2xx or 3xx."""
    if status == 429 or status >= 500:
        return TemporaryFailure
    if status >= 400:
        return PermanentFailure
    return None


def exchange_failure(
    exc: requests.RequestException, *, service: str, timeout: float
) -> TemporaryFailure:
    """The delivery error for a request that got no usable answer: always worth another
    try, and of unknown outcome unless the request certainly never left."""
    kind = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return TemporaryFailure(f"{service}: cannot connect ({kind})")
    if isinstance(exc, requests.ReadTimeout):
        return TemporaryFailure(
            f"{service}: no answer within {timeout:g} s; the post may have been made",
            unknown_outcome=True,
        )
    if isinstance(exc, requests.ConnectionError):
        never_connected = "NewConnectionError" in repr(exc) or "NameResolution" in repr(exc)
        return TemporaryFailure(
            f"{service}: connection failed ({kind})", unknown_outcome=not never_connected
        )
    # e.g. an answer cut off part-way
    return TemporaryFailure(f"{service}: the answer was broken ({kind})", unknown_outcome=True)


def innermost_reason(exc: BaseException) -> str:
    """The most telling words of a failed request: requests wraps urllib3's errors
    several levels deep, and the innermost says the most."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    text = str(getattr(inner, "reason", None) or inner) or type(exc).__name__
    return " ".join(text.split())
