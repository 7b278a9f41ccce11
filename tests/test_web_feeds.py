"""The feed files endpoint, over real HTTP: uvicorn on 127.0.0.1 serving feeds written by
``pipeline feeds``, mounted at /feeds the way ``pipeline serve`` mounts it."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import feedparser
import pytest
import requests
from starlette.applications import Starlette
from starlette.routing import Mount

from pipeline.web import feedfiles
from pipeline.web.feedfiles import FeedFiles
from tests.conftest import invoke

TYPES = {
    "rss.xml": "application/rss+xml; charset=utf-8",
    "atom.xml": "application/atom+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
}
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}
STRONG_TAG = re.compile(r'^"[0-9a-f]{32}"$')


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    folder: Path  # the feeds folder: root / public / feeds

    def url(self, relative: str) -> str:
        return f"{self.base}/feeds/{relative}"

    def get(self, relative: str, **headers: str) -> requests.Response:
        return requests.get(self.url(relative), headers=headers, timeout=10)

    def raw(self, path: str, method: str = "GET") -> int:
        """Status for ``path`` sent byte for byte: requests would normalise ``..`` away."""
        connection = http.client.HTTPConnection(urlsplit(self.base).netloc, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


@pytest.fixture
def served(project, live_app) -> Served:
    root = project()
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "feeds").exit_code == 0
    folder = root / "public" / "feeds"
    app = Starlette(routes=[Mount("/feeds", app=FeedFiles(folder))])
    return Served(live_app(app), folder)


def test_every_feed_is_served_with_its_type_and_parses(served):
    files = sorted(p.relative_to(served.folder).as_posix() for p in served.folder.rglob("*.*"))
    assert len(files) == 12  # main feed + 3 extra feeds, 3 formats each
    assert "language/zh-cn/atom.xml" in files and "tag/china/feed.json" in files
    for relative in files:
        response = served.get(relative, **IDENTITY)
        assert response.status_code == 200, relative
        assert response.headers["Content-Type"] == TYPES[relative.rsplit("/", 1)[-1]]
        assert response.content == (served.folder / relative).read_bytes()
        if relative.endswith(".xml"):
            parsed = feedparser.parse(response.content)
            assert parsed.bozo == 0, (relative, parsed.get("bozo_exception"))
            assert parsed.entries, relative
        else:
            assert response.json()["version"] == "https://jsonfeed.org/version/1.1"


def test_validators_and_cache_headers(served):
    response = served.get("rss.xml", **IDENTITY)
    assert STRONG_TAG.match(response.headers["ETag"])
    mtime = (served.folder / "rss.xml").stat().st_mtime
    assert response.headers["Last-Modified"] == formatdate(int(mtime), usegmt=True)
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in response.headers
    # The tag depends on the bytes only: same bytes, same tag; other feeds, other tags.
    assert served.get("rss.xml", **IDENTITY).headers["ETag"] == response.headers["ETag"]
    assert served.get("atom.xml", **IDENTITY).headers["ETag"] != response.headers["ETag"]


def test_if_none_match(served):
    first = served.get("atom.xml", **IDENTITY)
    tag = first.headers["ETag"]
    for header in (tag, f'"other", {tag}', f"W/{tag}", "*"):
        response = served.get("atom.xml", **IDENTITY, **{"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        for name in ("ETag", "Last-Modified", "Cache-Control", "Vary"):
            assert response.headers[name] == first.headers[name], (header, name)
    for header in ('"other"', tag.strip('"'), f'"{tag.strip(chr(34))}x"'):
        response = served.get("atom.xml", **IDENTITY, **{"If-None-Match": header})
        assert response.status_code == 200, header


def test_if_modified_since(served):
    last_modified = served.get("feed.json", **IDENTITY).headers["Last-Modified"]
    assert served.get("feed.json", **{"If-Modified-Since": last_modified}).status_code == 304
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert served.get("feed.json", **{"If-Modified-Since": later}).status_code == 304
    for since in ("Thu, 01 Jan 1970 00:00:00 GMT", "yesterday", "", "Mon, 99 Foo 2024"):
        response = served.get("feed.json", **{"If-Modified-Since": since})
        assert response.status_code == 200, since
    # If-None-Match wins: a stale tag means 200 even when the date says "not modified".
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert served.get("feed.json", **both).status_code == 200


def test_a_changed_file_is_served_fresh(served):
    path = served.folder / "rss.xml"
    before = served.get("rss.xml", **IDENTITY)
    old_tag, old_date = before.headers["ETag"], before.headers["Last-Modified"]
    changed = path.read_bytes().replace(b"</channel>", b"<ttl>60</ttl></channel>")
    path.write_bytes(changed)
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))

    response = served.get("rss.xml", **IDENTITY, **{"If-None-Match": old_tag})
    assert response.status_code == 200
    assert response.content == changed
    assert response.headers["ETag"] != old_tag
    assert response.headers["Last-Modified"] == formatdate(int(later), usegmt=True)
    assert served.get("rss.xml", **{"If-Modified-Since": old_date}).status_code == 200
    fresh = {"If-None-Match": response.headers["ETag"]}
    assert served.get("rss.xml", **IDENTITY, **fresh).status_code == 304


def test_gzip_is_its_own_representation(served):
    identity = served.get("atom.xml", **IDENTITY)
    response = requests.get(served.url("atom.xml"), headers=GZIP, stream=True, timeout=10)
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == TYPES["atom.xml"]
    assert response.headers["Vary"] == "Accept-Encoding"
    assert int(response.headers["Content-Length"]) == len(raw) < len(identity.content)
    assert gzip.decompress(raw) == identity.content
    tag, plain_tag = response.headers["ETag"], identity.headers["ETag"]
    assert tag == plain_tag[:-1] + '-gzip"'

    # Each tag validates its own representation only.
    assert served.get("atom.xml", **GZIP, **{"If-None-Match": tag}).status_code == 304
    assert served.get("atom.xml", **IDENTITY, **{"If-None-Match": tag}).status_code == 200
    assert served.get("atom.xml", **GZIP, **{"If-None-Match": plain_tag}).status_code == 200
    both = {"If-None-Match": f"{plain_tag}, {tag}"}
    not_modified = served.get("atom.xml", **GZIP, **both)
    assert not_modified.status_code == 304
    assert not_modified.headers["ETag"] == tag
    # requests decodes gzip itself: what a client sees is the feed.
    assert served.get("atom.xml").content == identity.content


@pytest.mark.parametrize(
    ("accept", "zipped"),
    [
        ("gzip;q=0", False),
        ("gzip; q=0.0, identity", False),
        ("*;q=0", False),
        ("identity", False),
        ("br", False),
        ("gzip;q=bogus", False),
        ("*", True),
        ("br, gzip;q=0.5", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, *;q=0.1", True),
    ],
)
def test_accept_encoding(served, accept, zipped):
    response = requests.get(
        served.url("feed.json"), headers={"Accept-Encoding": accept}, timeout=10
    )
    assert response.status_code == 200
    assert ("Content-Encoding" in response.headers) is zipped
    assert response.headers["ETag"].endswith('-gzip"') is zipped
    assert response.json()["items"]


@pytest.mark.parametrize("encoding", [IDENTITY, GZIP])
def test_head_has_the_get_headers_and_no_body(served, encoding):
    get = requests.get(served.url("rss.xml"), headers=encoding, stream=True, timeout=10)
    body = get.raw.read(decode_content=False)
    head = requests.head(served.url("rss.xml"), headers=encoding, timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(body) > 0
    skip = {"date"}  # the only header allowed to differ between the two responses
    assert {k: v for k, v in head.headers.lower_items() if k not in skip} == {
        k: v for k, v in get.headers.lower_items() if k not in skip
    }
    conditional = {**encoding, "If-None-Match": head.headers["ETag"]}
    assert requests.head(served.url("rss.xml"), headers=conditional, timeout=10).status_code == 304


def test_paths_outside_the_folder_are_not_found(served, tmp_path):
    # A real feed file next to the feeds folder, so only the containment check can refuse it.
    secret = served.folder.parent / "secret"
    secret.mkdir()
    (secret / "rss.xml").write_bytes((served.folder / "rss.xml").read_bytes())
    assert served.raw("/feeds/rss.xml") == 200
    for path in (
        "/feeds/../secret/rss.xml",
        "/feeds/language/../../secret/rss.xml",
        "/feeds/%2e%2e/secret/rss.xml",
        "/feeds/%2E%2E%2Fsecret%2Frss.xml",
        "/feeds/./rss.xml",
        "/feeds//rss.xml",
        "/feeds/" + quote(str(secret / "rss.xml")),
        "/feeds/" + quote(str(secret / "rss.xml"), safe=""),
        "/feeds/..%5csecret%5crss.xml",
        "/feeds/rss.xml%00.txt",
    ):
        assert served.raw(path) == 404, path


def test_symlinks_must_stay_inside_the_folder(served, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "atom.xml").write_bytes((served.folder / "atom.xml").read_bytes())
    (served.folder / "leak").mkdir()
    (served.folder / "leak" / "atom.xml").symlink_to(outside / "atom.xml")
    (served.folder / "away").symlink_to(outside, target_is_directory=True)
    (served.folder / "alias").symlink_to(served.folder / "section", target_is_directory=True)
    (served.folder / "loop").mkdir()
    (served.folder / "loop" / "rss.xml").symlink_to(served.folder / "loop" / "rss.xml")
    assert served.get("leak/atom.xml").status_code == 404
    assert served.get("away/atom.xml").status_code == 404
    assert served.get("loop/rss.xml").status_code == 404
    inside = served.get("alias/blog/atom.xml", **IDENTITY)
    assert inside.status_code == 200
    assert inside.content == (served.folder / "section" / "blog" / "atom.xml").read_bytes()


def test_only_feed_files_are_served(served):
    (served.folder / "notes.txt").write_text("not a feed", encoding="utf-8")
    (served.folder / ".rss.xml.abc123.tmp").write_bytes(b"half a feed")
    (served.folder / "rss.xml.bak").write_bytes(b"old feed")
    (served.folder / "odd" / "rss.xml").mkdir(parents=True)  # a directory with a feed's name
    os.mkfifo(served.folder / "odd" / "feed.json")  # would block a naive open()
    for relative in (
        "",
        "language",
        "language/zh-cn/",
        "notes.txt",
        ".rss.xml.abc123.tmp",
        "rss.xml.bak",
        "rss.xml/",
        "odd/rss.xml",
        "odd/feed.json",
        "missing/rss.xml",
        "index.html",
    ):
        response = served.get(relative)
        assert response.status_code == 404, relative
        assert "ETag" not in response.headers


def test_non_ascii_folders(served):
    folder = served.folder / "tag" / "中国"
    folder.mkdir(parents=True)
    (folder / "feed.json").write_bytes((served.folder / "feed.json").read_bytes())
    response = served.get(quote("tag/中国/feed.json"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == TYPES["feed.json"]
    assert json.loads(response.content)["items"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_not_allowed(served, method):
    response = requests.request(method, served.url("rss.xml"), data=b"x", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.text == "Method Not Allowed"  # a refusal says so, like every other


def test_files_are_hashed_once_per_version(served, monkeypatch):
    hashed: list[int] = []
    real_sha256 = feedfiles.hashlib.sha256

    def counting(data: bytes):
        hashed.append(len(data))
        return real_sha256(data)

    monkeypatch.setattr(feedfiles, "hashlib", SimpleNamespace(sha256=counting))
    for _ in range(3):
        served.get("section/blog/rss.xml", **IDENTITY)
        served.get("section/blog/rss.xml", **GZIP)
    assert len(hashed) == 1
    path = served.folder / "section" / "blog" / "rss.xml"
    path.write_bytes(path.read_bytes() + b"\n")
    served.get("section/blog/rss.xml")
    served.get("section/blog/rss.xml")
    assert len(hashed) == 2
