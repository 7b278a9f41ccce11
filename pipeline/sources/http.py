"""HTTP for the sources that poll a server: one bounded GET with error mapping.

Every failure to read (no connection, a timeout, an HTTP error status) and every limit
exceeded becomes ``SourceUnavailable`` naming the source, the URL (credentials masked)
and what went wrong, so that the source's articles stay as they were and the run goes
on with the other sources.

An upstream server is not ours and may be broken or hostile, so a request is bounded:

* Size: the body is streamed and at most ``max_bytes`` are kept, counted after
  decompression (a 1 MB gzip of zeros inflates to 1 GB). gzip and deflate are decoded
  here in steps of at most ``CHUNK`` bytes; no other content coding is asked for or
  accepted, because every decoder would need the same bound.
* Time: the whole request, redirects and every read included, must finish within
  ``deadline`` seconds. The socket timeout only bounds the wait for each packet, so a
  server sending one byte a second would otherwise never be cut off. The request runs
  in a worker thread the caller stops waiting for at the deadline, because a drip
  inside the status line or headers cannot be interrupted from the reading thread.
* Redirects: at most ``max_redirects``, followed here. requests would follow up to 30
  and read each redirect's body whole, decompressed, even when told not to follow.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from pipeline.errors import SourceUnavailable
from pipeline.http_errors import innermost_reason, status_failure
from pipeline.redact import shown_url

MAX_BYTES = 20_000_000  # decompressed body; a large news feed is well under 5 MB
DEADLINE = 60.0  # seconds for one request, connect + redirects + all reads
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
_ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class Limits:
    """How much one request may cost. ``clock`` is injectable so tests need not race."""

    max_bytes: int = MAX_BYTES
    deadline: float = DEADLINE
    max_redirects: int = MAX_REDIRECTS
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def of(cls, settings: object) -> Limits:
        """The limits for a source: its own ``max_bytes`` / ``max_seconds`` if its
        settings have them, else the defaults above."""
        return cls(
            max_bytes=getattr(settings, "max_bytes", None) or MAX_BYTES,
            deadline=getattr(settings, "max_seconds", None) or DEADLINE,
        )


@dataclass(frozen=True)
class Fetched:
    """A response read within the limits: final URL, status, headers and whole body."""

    url: str
    status_code: int
    reason: str
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON; raises ValueError (or RecursionError when absurdly nested)."""
        return json.loads(self.content)


class _Answer(Protocol):
    """What ``unavailable`` reads: a requests.Response or a Fetched (frozen), so read-only."""

    @property
    def url(self) -> str: ...
    @property
    def status_code(self) -> int: ...
    @property
    def reason(self) -> str | None: ...


def fetch(
    http: requests.Session,
    url: str,
    *,
    source: str,
    timeout: float,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    allow: Collection[int] = (),
    limits: Limits = Limits(),
) -> Fetched:
    """GET ``url`` within ``limits``; a status >= 400 not in ``allow`` raises
    SourceUnavailable, as does every failure to read and every limit exceeded."""
    outcome: list[Fetched | BaseException] = []
    finished, cancelled = threading.Event(), threading.Event()

    def work() -> None:
        try:
            outcome.append(
                _fetch(http, url, source, timeout, params, headers, allow, limits, cancelled)
            )
        except BaseException as exc:  # handed to the waiting caller, who raises it
            outcome.append(exc)
        finally:
            finished.set()

    threading.Thread(target=work, name=f"fetch {source}", daemon=True).start()
    try:
        if not finished.wait(limits.deadline):
            # The worker notices at its next read and closes its connection; until then
            # it is left behind, which costs one idle socket, not this run's time.
            raise _too_slow(source, url, limits)
    finally:
        cancelled.set()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def unavailable(source: str, response: _Answer, detail: str = "") -> SourceUnavailable:
    """The error for a response that cannot be used, e.g. an HTTP error status."""
    status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    return SourceUnavailable(
        f"source {source!r}: {shown_url(response.url)} answered {status}"
        + (f": {detail}" if detail else "")
    )


def _fetch(
    http: requests.Session,
    url: str,
    source: str,
    timeout: float,
    params: Mapping[str, str | int] | None,
    headers: Mapping[str, str] | None,
    allow: Collection[int],
    limits: Limits,
    cancelled: threading.Event,
) -> Fetched:
    end = limits.clock() + limits.deadline
    sent = {"Accept-Encoding": _ACCEPT_ENCODING, **(headers or {})}
    current, auth = url, None
    for hop in range(limits.max_redirects + 1):
        remaining = end - limits.clock()
        if remaining <= 0 or cancelled.is_set():
            raise _too_slow(source, url, limits)
        wait = min(timeout, remaining)
        try:
            response = _send(http, current, params if hop == 0 else None, sent, auth, wait)
        except requests.Timeout as exc:
            if wait < timeout:
                raise _too_slow(source, url, limits) from exc
            raise SourceUnavailable(
                f"source {source!r}: {shown_url(current)} did not answer within {timeout:g} seconds"
            ) from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(
                f"source {source!r}: cannot read {shown_url(current)}: {innermost_reason(exc)}"
            ) from exc
        with closing(response):  # unread bodies (redirects, errors) are dropped, not read
            target = http.get_redirect_target(response)
            if target is None:
                refused = status_failure(response.status_code) is not None
                if refused and response.status_code not in allow:
                    raise unavailable(source, response)
                body = _read_body(response, source, limits, end, cancelled)
                return Fetched(
                    response.url,
                    response.status_code,
                    response.reason or "",
                    response.headers,
                    body,
                )
            following = urljoin(response.url, target)
            if urlsplit(following).scheme not in ("http", "https"):
                detail = f"a redirect to {shown_url(following)}, which is not http(s)"
                raise unavailable(source, response, detail)
            # Credentials in the URL go only where requests itself would send them:
            # the same host (or its https upgrade), never to a host redirected to.
            if http.should_strip_auth(current, following):
                auth = None
            elif hop == 0:
                auth = requests.utils.get_auth_from_url(url)
                auth = auth if any(auth) else None
            current = following
    raise SourceUnavailable(
        f"source {source!r}: {shown_url(url)} redirected more than {limits.max_redirects} "
        "times (the limit); use the final URL in the configuration"
    )


def _send(
    http: requests.Session,
    url: str,
    params: Mapping[str, str | int] | None,
    headers: Mapping[str, str],
    auth: Any,
    timeout: float,
) -> requests.Response:
    """One GET through the session's adapter, with its headers, cookies and proxies.

    Not ``http.get``: even with ``allow_redirects=False`` requests reads the whole body of
    a redirect (to prepare ``response.next``), decompressing it, with no limit at all.
    """
    prepared = http.prepare_request(
        requests.Request("GET", url, params=params, headers=headers, auth=auth)
    )
    full = prepared.url  # with the query string; None only before prepare()
    assert full is not None
    environment = http.merge_environment_settings(full, {}, True, None, None)
    response = http.get_adapter(full).send(prepared, timeout=timeout, **environment)
    requests.cookies.extract_cookies_to_jar(http.cookies, prepared, response.raw)
    return response


def _read_body(
    response: requests.Response,
    source: str,
    limits: Limits,
    end: float,
    cancelled: threading.Event,
) -> bytes:
    shown, limit = shown_url(response.url), limits.max_bytes
    announced = response.headers.get("Content-Length", "").strip()
    if announced.isascii() and announced.isdigit() and int(announced) > limit:
        raise _too_big(source, shown, limit, f"announces {int(announced):,} bytes")
    try:
        decoder = _Decoder(response.headers.get("Content-Encoding", ""))
    except ValueError as exc:
        raise SourceUnavailable(f"source {source!r}: cannot read {shown}: {exc}") from None
    body, received = bytearray(), 0

    def take(pieces: Iterable[bytes]) -> None:
        nonlocal body
        for piece in pieces:
            body += piece
            if len(body) > limit:
                raise _too_big(source, shown, limit, "decompresses to more than that")
            if limits.clock() > end or cancelled.is_set():
                raise _too_slow(source, response.url, limits)

    try:
        while True:
            if limits.clock() > end or cancelled.is_set():
                raise _too_slow(source, response.url, limits)
            # read1: whatever has arrived, so a drip returns here to meet the deadline
            data = response.raw.read1(CHUNK, decode_content=False)
            if not data:
                break
            received += len(data)
            if received > limit:
                raise _too_big(source, shown, limit, "sends more than that")
            take(decoder.feed(data))
        take(decoder.finish())
    except ValueError as exc:  # not valid gzip / deflate
        raise SourceUnavailable(f"source {source!r}: cannot read {shown}: {exc}") from None
    except urllib3.exceptions.ReadTimeoutError:
        raise SourceUnavailable(
            f"source {source!r}: {shown} stopped sending for longer than the timeout"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SourceUnavailable(
            f"source {source!r}: cannot read {shown}: {innermost_reason(exc)}"
        ) from None
    return bytes(body)


def _too_big(source: str, shown: str, limit: int, what: str) -> SourceUnavailable:
    return SourceUnavailable(
        f"source {source!r}: {shown} {what}; the limit for one response is {limit:,} bytes"
    )


def _too_slow(source: str, url: str, limits: Limits) -> SourceUnavailable:
    return SourceUnavailable(
        f"source {source!r}: {shown_url(url)} did not finish within {limits.deadline:g} "
        "seconds, the limit for one request"
    )


class _Decoder:
    """Undoes a response's content codings (at most two, each gzip or deflate).

    Each zlib call is asked for at most CHUNK bytes of output, so memory stays small
    whatever the compression ratio; what does not fit waits in ``unconsumed_tail``.
    """

    def __init__(self, header: str):
        codings = [c.strip().lower() for c in header.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        for coding in codings:
            if coding not in ("gzip", "x-gzip", "deflate"):
                raise ValueError(f"unsupported Content-Encoding {coding!r}")
        if len(codings) > 2:
            raise ValueError(f"{len(codings)} nested content codings")
        self._stages = [_Inflater(c != "deflate") for c in reversed(codings)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        pieces: Iterable[bytes] = (data,)
        for stage in self._stages:
            pieces = stage.through(pieces)
        return iter(pieces)

    def finish(self) -> Iterator[bytes]:
        pieces: Iterable[bytes] = ()
        for stage in self._stages:
            pieces = stage.through(pieces)  # no stage holds output back, so no flush
        return iter(pieces)


class _Inflater:
    def __init__(self, gzip: bool):
        self.gzip = gzip
        self._z: Any = None
        self._members = 0
        self._head = b""  # the first bytes of a deflate body, until its kind is known
        self._ended = False

    def through(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            yield from self.feed(piece)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._ended:
            return
        while True:
            if self._z is None or self._z.eof:
                if self._z is not None and not self.gzip:
                    self._ended = True  # bytes after a deflate stream: ignored
                    return
                if not data:
                    return
                wbits = 16 + zlib.MAX_WBITS if self.gzip else self._deflate_wbits(data)
                if wbits is None:
                    self._head += data
                    return
                data, self._head = self._head + data, b""
                self._z = zlib.decompressobj(wbits)
                self._members += 1
            try:
                out = self._z.decompress(data, CHUNK)
            except zlib.error as exc:
                if self._members > 1:  # junk after a complete gzip member, as browsers allow
                    self._ended = True
                    return
                kind = "gzip" if self.gzip else "deflate"
                raise ValueError(f"the body is not valid {kind} ({exc})") from None
            if out:
                yield out
            if self._z.eof:
                data = self._z.unused_data
                continue
            data = self._z.unconsumed_tail
            if not data and len(out) < CHUNK:
                return

    def _deflate_wbits(self, data: bytes) -> int | None:
        """ "deflate" is meant to be zlib-wrapped (RFC 9110) but is often sent raw."""
        head = self._head + data
        if len(head) < 2:
            return None
        wrapped = head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
