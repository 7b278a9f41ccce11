"""HTTP for the sources that poll a server: one GET with a timeout and error mapping.

Every failure to read (no connection, a timeout, an HTTP error status) becomes
``SourceUnavailable`` naming the source, the URL and what went wrong, so that the
source's articles stay as they were and the run goes on with the other sources.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import requests

from pipeline.errors import SourceUnavailable


def fetch(
    http: requests.Session,
    url: str,
    *,
    source: str,
    timeout: float,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    allow: Collection[int] = (),
) -> requests.Response:
    """GET ``url``; a status >= 400 not in ``allow`` raises SourceUnavailable."""
    try:
        response = http.get(url, params=params, headers=dict(headers or {}), timeout=timeout)
    except requests.Timeout as exc:
        raise SourceUnavailable(
            f"source {source!r}: {url} did not answer within {timeout:g} seconds"
        ) from exc
    except requests.RequestException as exc:
        raise SourceUnavailable(f"source {source!r}: cannot read {url}: {_reason(exc)}") from exc
    if response.status_code >= 400 and response.status_code not in allow:
        raise unavailable(source, response)
    return response


def unavailable(source: str, response: requests.Response, detail: str = "") -> SourceUnavailable:
    """The error for a response that cannot be used, e.g. an HTTP error status."""
    status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    return SourceUnavailable(
        f"source {source!r}: {response.url} answered {status}" + (f": {detail}" if detail else "")
    )


def _reason(exc: requests.RequestException) -> str:
    # requests wraps urllib3 errors several levels deep; the innermost says the most.
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    return str(getattr(inner, "reason", None) or inner) or type(exc).__name__
