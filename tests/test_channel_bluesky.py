"""The Bluesky channel against a real HTTP server standing in for a PDS."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time

import pytest
import regex
import requests
from werkzeug import Request, Response

from pipeline.channels import ChannelContext
from pipeline.channels.bluesky import BlueskyChannel, BlueskyOptions, record_key
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import SENT, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, idempotency_key, post_stream
from pipeline.settings import default_template
from pipeline.store import Store
from tests.conftest import REPO

XRPC = "/xrpc/"
SESSION = XRPC + "com.atproto.server.createSession"
REFRESH = XRPC + "com.atproto.server.refreshSession"
CREATE = XRPC + "com.atproto.repo.createRecord"
GET = XRPC + "com.atproto.repo.getRecord"
UPLOAD = XRPC + "com.atproto.repo.uploadBlob"
DID = "did:plc:newsroom123"
HANDLE = "news.example.org"
CLOCK = dt.datetime(2026, 11, 3, 10, 30, 15, 123456, tzinfo=dt.UTC)
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status, headers, content_type="application/json")


class FakePds:
    """Enough of a PDS: sessions with expiring tokens, a repo of records, blobs."""

    def __init__(self, server):
        self.server = server
        self.generation = 0
        self.access = self.refresh = ""
        self.records: dict[str, dict] = {}
        self.password = "app-pass-word"
        self.refresh_works = True
        self.session_delay = 0.0
        self.upload_fails = False
        self.faults: list[Response | float] = []  # for createRecord: a response or a delay
        self.lock = threading.Lock()
        for path, handler in [
            (SESSION, self.create_session),
            (REFRESH, self.refresh_session),
            (CREATE, self.create_record),
            (GET, self.get_record),
            (UPLOAD, self.upload_blob),
        ]:
            server.expect_request(path).respond_with_handler(handler)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def calls(self, path: str) -> list[Request]:
        return [r for r, _ in self.server.log if r.path == path]

    def _tokens(self) -> Response:
        self.generation += 1
        self.access, self.refresh = f"access-{self.generation}", f"refresh-{self.generation}"
        body = {"accessJwt": self.access, "refreshJwt": self.refresh, "did": DID}
        return _json({**body, "handle": HANDLE})

    def expire(self) -> None:
        self.access = "expired"

    def create_session(self, request: Request) -> Response:
        time.sleep(self.session_delay)
        body = request.get_json()
        if body != {"identifier": HANDLE, "password": self.password}:
            error = {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
            return _json(error, 401)
        return self._tokens()

    def refresh_session(self, request: Request) -> Response:
        if (
            not self.refresh_works
            or request.headers.get("Authorization") != f"Bearer {self.refresh}"
        ):
            return _json({"error": "ExpiredToken", "message": "Token has been revoked"}, 400)
        return self._tokens()

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.access}"

    def _expired(self) -> Response:
        return _json({"error": "ExpiredToken", "message": "Token has expired"}, 400)

    def create_record(self, request: Request) -> Response:
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Response):
                return fault
            time.sleep(fault)  # the client gives up; the post is made all the same
        if not self._authorised(request):
            return self._expired()
        body = request.get_json()
        rkey = body["rkey"]
        with self.lock:
            if rkey in self.records:  # the reference PDS: a plain Error, so a 500
                return _json(
                    {"error": "InternalServerError", "message": "Internal Server Error"}, 500
                )
            self.records[rkey] = body["record"]
        uri = f"at://{body['repo']}/{body['collection']}/{rkey}"
        return _json({"uri": uri, "cid": "bafyreib2rxk3rh6kzwq"})

    def get_record(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._expired()
        rkey = request.args["rkey"]
        if rkey not in self.records:
            uri = f"at://{request.args['repo']}/{request.args['collection']}/{rkey}"
            return _json(
                {"error": "RecordNotFound", "message": f"Could not locate record: {uri}"}, 400
            )
        uri = f"at://{request.args['repo']}/{request.args['collection']}/{rkey}"
        return _json({"uri": uri, "cid": "bafyreib2rxk3rh6kzwq", "value": self.records[rkey]})

    def upload_blob(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._expired()
        if self.upload_fails:
            return _json({"error": "InvalidRequest", "message": "BlobTooLarge"}, 400)
        blob = {
            "$type": "blob",
            "ref": {"$link": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
            "mimeType": request.headers["Content-Type"],
            "size": len(request.get_data()),
        }
        return _json({"blob": blob})


@pytest.fixture
def pds(httpserver) -> FakePds:
    return FakePds(httpserver)


@pytest.fixture
def memory(state_url, site):
    store = Store(state_url, site.url)
    yield store
    store.close()


@pytest.fixture
def bluesky(pds, memory, site):
    """A channel factory; every channel shares one state store, as separate runs do."""
    sessions: list[requests.Session] = []

    def make(name: str = "bluesky", **options) -> BlueskyChannel:
        settings = BlueskyOptions(
            type="bluesky",
            handle=HANDLE,
            app_password=options.pop("app_password", pds.password),
            service=pds.url,
            template=REPO / default_template("bluesky"),
            **options,
        )
        sessions.append(requests.Session())
        context = ChannelContext(http=sessions[-1], site=site, memory=memory, clock=lambda: CLOCK)
        return BlueskyChannel(name, settings, context)

    yield make
    for session in sessions:
        session.close()


def key_for(article_id: str, channel: str = "bluesky") -> str:
    return idempotency_key(post_stream(channel), article_id)


def post_one(channel: BlueskyChannel, article):
    return channel.send(channel.prepare(article), key_for(article.id, channel.name))


# -- the record -------------------------------------------------------------------------


def test_post_body_is_the_create_record_request(bluesky, make_article):
    article = make_article()
    post = bluesky().prepare(article)
    record = post.body["record"]
    assert post.body["collection"] == "app.bsky.feed.post"
    assert record["$type"] == "app.bsky.feed.post"
    assert record["createdAt"] == "2026-11-03T10:30:15.123Z"
    assert record["langs"] == ["en"]
    assert record["text"] == post.text and post.limit == 300
    assert post.text.endswith(article.url) and article.title in post.text
    assert record["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {"uri": article.url, "title": article.title, "description": article.summary},
    }
    [facet] = record["facets"]
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": article.url}]


def test_send_creates_the_record_and_reports_its_uri_and_link(bluesky, pds, make_article):
    article = make_article()
    channel = bluesky()
    receipt = post_one(channel, article)
    [create] = pds.calls(CREATE)
    assert create.headers["Authorization"] == "Bearer access-1"
    body = create.get_json()
    rkey = record_key(key_for(article.id))
    assert body["repo"] == DID and body["collection"] == "app.bsky.feed.post"
    assert body["rkey"] == rkey and TID.match(rkey)
    assert body["record"] == channel.prepare(article).body["record"]  # no thumb: no image
    assert receipt.remote_id == f"at://{DID}/app.bsky.feed.post/{rkey}"
    assert receipt.remote_url == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"


@pytest.mark.parametrize(
    "title",
    [
        "山地生态系统 👨‍👩‍👧 🇳🇵 cafe\u0301 report",
        "👨‍👩‍👧👨‍👩‍👧🇳🇵🇳🇵 e\u0301e\u0301 尼泊尔冰川",
    ],
)
def test_link_facet_counts_utf8_bytes_after_wide_characters(bluesky, make_article, title):
    article = make_article(title=title, summary="摘要：冰川 🧊 继续消融。")
    record = bluesky().prepare(article).body["record"]
    [facet] = record["facets"]
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert record["text"].encode()[start:end].decode() == article.url
    assert start > record["text"].index(article.url)  # bytes, not code points


@pytest.mark.parametrize(
    "title",
    [
        " ".join(["Glaciers"] * 60),  # 539 graphemes of English words
        "喜马拉雅山脉的冰川正在加速消融" * 30,  # 450 Chinese characters
        "👨‍👩‍👧" * 200 + "🇳🇵" * 100,  # 300 graphemes, 4,400 bytes
        "e\u0301" * 400,
    ],
)
def test_long_titles_fit_300_graphemes_and_keep_the_link_whole(bluesky, make_article, title):
    article = make_article(title=title, summary="A summary " * 40)
    post = bluesky().prepare(article)
    text = post.text
    assert len(regex.findall(r"\X", text)) <= 300 and post.length <= 300
    assert len(text.encode()) <= 3000  # the lexicon's byte limit too
    assert text.endswith(article.url)
    [facet] = post.body["record"]["facets"]
    assert text.encode()[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode() == (
        article.url
    )
    assert "\ufffd" not in text and text.encode().decode() == text


def test_record_key_is_a_valid_stable_tid_in_the_past():
    keys = [key_for(f"news/{n}") for n in range(200)]
    tids = [record_key(k) for k in keys]
    assert all(TID.match(t) for t in tids) and len(set(tids)) == 200
    assert tids == [record_key(k) for k in keys]
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    for tid in tids:
        value = 0
        for char in tid:
            value = value * 32 + alphabet.index(char)
        assert value < 2**63
        micros = value >> 10
        assert (
            dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
            <= dt.datetime.fromtimestamp(micros / 1e6, dt.UTC)
            < dt.datetime.now(dt.UTC)
        )


# -- the card's thumbnail ---------------------------------------------------------------


def test_lead_image_is_uploaded_with_its_type_and_becomes_the_thumb(
    bluesky, pds, httpserver, make_article
):
    httpserver.expect_request("/images/glacier.png").respond_with_data(
        PNG, content_type="image/png"
    )
    article = make_article(image=httpserver.url_for("/images/glacier.png"))
    channel = bluesky()
    post = channel.prepare(article)
    assert "thumb" not in post.body["record"]["embed"]["external"]
    channel.send(post, key_for(article.id))
    [upload] = pds.calls(UPLOAD)
    assert upload.headers["Content-Type"] == "image/png"
    assert upload.headers["Authorization"] == "Bearer access-1"
    assert upload.get_data() == PNG
    thumb = pds.calls(CREATE)[0].get_json()["record"]["embed"]["external"]["thumb"]
    assert thumb["$type"] == "blob" and thumb["mimeType"] == "image/png"
    assert thumb["size"] == len(PNG)
    assert "thumb" not in post.body["record"]["embed"]["external"]  # body left as prepared


@pytest.mark.parametrize(
    ("status", "content_type", "data", "uploads"),
    [
        (404, "text/plain", b"gone", 0),  # cannot be fetched
        (200, "text/html", b"<html></html>", 0),  # not an image
        (200, "image/jpeg", b"\xff" * 1_000_001, 0),  # over the card's 1 MB limit
        (200, "image/jpeg", b"\xff" * 1000, 1),  # the PDS refuses the blob
    ],
)
def test_an_unusable_image_gives_a_card_without_thumb(
    bluesky, pds, httpserver, make_article, status, content_type, data, uploads
):
    httpserver.expect_request("/images/lead").respond_with_data(
        data, status=status, content_type=content_type
    )
    pds.upload_fails = True
    article = make_article(image=httpserver.url_for("/images/lead"))
    receipt = post_one(bluesky(), article)
    assert len(pds.calls(UPLOAD)) == uploads and receipt.remote_id
    external = pds.calls(CREATE)[0].get_json()["record"]["embed"]["external"]
    assert external["uri"] == article.url and "thumb" not in external


# -- the session ------------------------------------------------------------------------


def test_one_session_for_many_posts_runs_and_instances(bluesky, pds, memory, make_article):
    channel = bluesky()
    for n in range(3):
        post_one(channel, make_article(id=f"news/{n}", url=f"https://news.example.org/{n}/"))
    assert len(pds.calls(SESSION)) == 1
    assert pds.calls(SESSION)[0].get_json() == {"identifier": HANDLE, "password": pds.password}
    stored = memory.value("channel:bluesky:session")
    assert {k: stored[k] for k in ("accessJwt", "refreshJwt", "did", "handle")} == {
        "accessJwt": "access-1",
        "refreshJwt": "refresh-1",
        "did": DID,
        "handle": HANDLE,
    }
    post_one(bluesky(), make_article(id="news/next", url="https://news.example.org/next/"))
    assert len(pds.calls(SESSION)) == 1  # the next run reuses the stored session
    assert len(pds.records) == 4


def test_expired_token_is_refreshed_and_the_call_repeated(bluesky, pds, memory, make_article):
    post_one(bluesky(), make_article(id="news/1", url="https://news.example.org/1/"))
    pds.expire()
    post_one(bluesky(), make_article(id="news/2", url="https://news.example.org/2/"))
    [refresh] = pds.calls(REFRESH)
    assert refresh.headers["Authorization"] == "Bearer refresh-1"
    assert len(pds.calls(SESSION)) == 1 and len(pds.records) == 2
    assert memory.value("channel:bluesky:session")["accessJwt"] == "access-2"
    assert memory.value("channel:bluesky:session")["refreshJwt"] == "refresh-2"


def test_a_refused_refresh_falls_back_to_one_new_session(bluesky, pds, make_article):
    post_one(bluesky(), make_article(id="news/1", url="https://news.example.org/1/"))
    pds.expire()
    pds.refresh_works = False
    channel = bluesky()
    post_one(channel, make_article(id="news/2", url="https://news.example.org/2/"))
    post_one(channel, make_article(id="news/3", url="https://news.example.org/3/"))
    assert len(pds.calls(REFRESH)) == 1
    assert len(pds.calls(SESSION)) == 2 and len(pds.records) == 3


def test_bad_app_password_fails_permanently_with_blueskys_words(bluesky, pds, make_article):
    channel = bluesky(app_password="wrong")
    for n in range(2):
        article = make_article(id=f"news/{n}", url=f"https://news.example.org/{n}/")
        with pytest.raises(PermanentFailure) as failure:
            post_one(channel, article)
        assert "Invalid identifier or password" in failure.value.reason
    assert len(pds.calls(SESSION)) == 1  # not once per post: createSession is rate-limited
    assert pds.calls(CREATE) == []


# -- faults -----------------------------------------------------------------------------


def test_429_asks_to_wait_until_ratelimit_reset(bluesky, pds, make_article):
    reset = int(time.time()) + 90
    pds.faults.append(
        _json(
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            429,
            {"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
        )
    )
    with pytest.raises(TemporaryFailure) as failure:
        post_one(bluesky(), make_article())
    assert 80 <= failure.value.retry_after <= 91
    assert not failure.value.unknown_outcome
    assert "Rate Limit Exceeded" in failure.value.reason


def test_a_slow_sign_in_is_temporary_and_certainly_not_a_post(bluesky, pds, make_article):
    pds.session_delay = 1.0
    with pytest.raises(TemporaryFailure) as failure:
        post_one(bluesky(timeout=0.3), make_article())
    assert not failure.value.unknown_outcome  # nothing was published: safe to retry
    assert pds.calls(CREATE) == []


def test_500_is_temporary(bluesky, pds, make_article):
    pds.faults.append(_json({"error": "InternalServerError", "message": "oops"}, 500))
    with pytest.raises(TemporaryFailure) as failure:
        post_one(bluesky(), make_article())
    assert not failure.value.unknown_outcome and pds.records == {}


def test_a_timed_out_create_is_of_unknown_outcome_and_found_on_retry(bluesky, pds, make_article):
    article = make_article()
    channel = bluesky(timeout=0.3)
    post = channel.prepare(article)
    pds.faults.append(1.0)  # answers too late, but makes the post
    with pytest.raises(TemporaryFailure) as failure:
        channel.send(post, key_for(article.id))
    assert failure.value.unknown_outcome
    deadline = time.time() + 5
    while not pds.records and time.time() < deadline:
        time.sleep(0.05)
    receipt = channel.send(post, key_for(article.id))  # the engine may retry: dedupe_window
    assert channel.dedupe_window is not None
    assert len(pds.calls(CREATE)) == 1 and len(pds.records) == 1
    assert receipt.remote_id == f"at://{DID}/app.bsky.feed.post/{record_key(key_for(article.id))}"


# -- through the posting stage ----------------------------------------------------------


def test_poster_posts_each_article_once_across_runs(bluesky, pds, memory, make_article):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    articles = [
        make_article(
            id=f"news/{n}",
            url=f"https://news.example.org/news/{n}/",
            title=f"冰川报告 {n} 👨‍👩‍👧",
            published=now - dt.timedelta(hours=n + 1),
        )
        for n in range(3)
    ]
    memory.apply("news", Scan(changed=[Item(f"{a.id}.md", "fp", a) for a in articles]))
    poster = Poster(memory, Ledger(memory.engine), sleep=lambda s: None)
    first = poster.run([bluesky()])["bluesky"]
    assert first.ok and len(first.sent) == 3
    assert len(pds.calls(CREATE)) == 3 and len(pds.calls(SESSION)) == 1
    second = poster.run([bluesky()])["bluesky"]
    assert second.ok and second.sent == []
    assert len(pds.calls(CREATE)) == 3 and len(pds.calls(SESSION)) == 1
    entries = Ledger(memory.engine).entries(post_stream("bluesky"))
    assert {e.state for e in entries.values()} == {SENT}
    assert all(
        e.remote_url.startswith(f"https://bsky.app/profile/{HANDLE}/post/")
        for e in entries.values()
    )
