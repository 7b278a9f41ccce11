"""Serve the feed files that ``pipeline feeds`` writes, for deployments without a web server.

``FeedFiles(folder)`` is a plain ASGI app meant for ``Mount("/feeds", app=FeedFiles(folder))``.
It answers GET and HEAD for ``rss.xml``, ``atom.xml`` and ``feed.json`` anywhere inside
``folder`` and 404s everything else, so temp files, stray files, directories and paths that
resolve outside the folder (``..``, symlinks) are never served.

Choices:

* The ETag is a hash of the file's bytes, so it is strong, survives restarts and is the same
  in every worker. ``write_feeds`` replaces files atomically and leaves unchanged ones alone,
  so one cached version per path, keyed by (mtime_ns, size, inode) from ``fstat`` of the open
  file, means a file is read, hashed and compressed once per change, not once per request.
* gzip is a separate representation with its own ETag (``"<hash>-gzip"``). It is compressed
  with ``mtime=0`` so its bytes, hence its tag, are reproducible. It is only offered when it
  is smaller than the file. If-None-Match is compared (weakly, RFC 9110 13.1.2) with the tag
  of the representation this request would get, so a 304 never confirms the wrong one.
* ``Cache-Control: public, max-age=300``: feed readers poll every 15-60 minutes, so five
  minutes of staleness costs nothing, and revalidation after that is a cheap 304.
* Files are opened with O_NONBLOCK so that a FIFO named ``rss.xml`` cannot hang a thread.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from pipeline.feeds import FILENAMES, MEDIA_TYPES

CONTENT_TYPES = {FILENAMES[fmt]: f"{MEDIA_TYPES[fmt]}; charset=utf-8" for fmt in FILENAMES}
CACHE_CONTROL = "public, max-age=300"
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


@dataclass(frozen=True)
class _Version:
    """One state of one feed file, with everything a response needs."""

    key: tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino) of the bytes below
    body: bytes
    gzipped: bytes | None  # None when gzip would not make the file smaller
    tag: str  # opaque tag, without quotes; the gzip representation appends "-gzip"
    mtime: int  # whole seconds, as Last-Modified can express
    content_type: str


class FeedFiles:
    """ASGI app serving the feed files under ``folder``; caches live on the instance."""

    def __init__(self, folder: Path, content_types: Mapping[str, str] = CONTENT_TYPES) -> None:
        self.folder = Path(folder).resolve()
        # file name → Content-Type: the built-in formats', and any a plug-in adds
        self.content_types = dict(content_types)
        self._cache: dict[Path, _Version] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            # A body like every other refusal, so nobody mistakes it for an empty feed.
            text = [("content-type", "text/plain; charset=utf-8"), ("content-length", "18")]
            await _send(send, 405, [("allow", "GET, HEAD"), *text], b"Method Not Allowed")
            return
        version = await run_in_threadpool(self._load, _route_path(scope))
        if version is None:
            text = [("content-type", "text/plain; charset=utf-8"), ("content-length", "9")]
            await _send(send, 404, text, b"Not Found")
            return
        headers = Headers(scope=scope)
        zipped = version.gzipped is not None and _accepts_gzip(headers)
        tag = f'"{version.tag}-gzip"' if zipped else f'"{version.tag}"'
        common = [
            ("etag", tag),
            ("last-modified", formatdate(version.mtime, usegmt=True)),
            ("cache-control", CACHE_CONTROL),
            ("vary", "Accept-Encoding"),
        ]
        if not_modified(headers, tag, version.mtime):
            await _send(send, 304, common)
            return
        body = version.gzipped if zipped and version.gzipped is not None else version.body
        common += [("content-type", version.content_type), ("content-length", str(len(body)))]
        if zipped:
            common.append(("content-encoding", "gzip"))
        await _send(send, 200, common, b"" if scope["method"] == "HEAD" else body)

    def _load(self, route_path: str) -> _Version | None:
        """The current version of the feed at ``route_path``, or None if it is not one."""
        parts = route_path.split("/")[1:]
        if not route_path.startswith("/") or parts[-1] not in self.content_types:
            return None
        # Empty parts would make an absolute path ("//etc"), dot parts a way out.
        if any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts):
            return None
        try:
            target = self.folder.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, unreadable or a symlink loop
            return None
        if not target.is_relative_to(self.folder):  # a symlink pointing outside
            return None
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None
            key = (info.st_mtime_ns, info.st_size, info.st_ino)
            cached = self._cache.get(target)
            if cached is not None and cached.key == key:
                return cached
            chunks: list[bytes] = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        body = b"".join(chunks)
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        version = _Version(
            key=key,
            body=body,
            gzipped=gzipped if len(gzipped) < len(body) else None,
            tag=hashlib.sha256(body).hexdigest()[:32],
            mtime=info.st_mtime_ns // 1_000_000_000,
            content_type=self.content_types[parts[-1]],
        )
        self._cache[target] = version  # replaces the previous version of this path
        return version


def _route_path(scope: Scope) -> str:
    """The path below the mount point: Starlette's Mount extends root_path, keeps path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _accepts_gzip(headers: Headers) -> bool:
    """Whether Accept-Encoding gives gzip (or ``*``) a non-zero q-value."""
    weights: dict[str, float] = {}
    for item in ",".join(headers.getlist("accept-encoding")).split(","):
        coding, *params = (piece.strip().lower() for piece in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def not_modified(headers: Headers, tag: str, mtime: int) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = ",".join(headers.getlist("if-none-match"))
    if if_none_match.strip():
        if if_none_match.strip() == "*":
            return True
        return tag.strip('"') in _ENTITY_TAG.findall(if_none_match)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):  # malformed dates are ignored
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return mtime <= moment.timestamp()


async def _send(send: Send, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
