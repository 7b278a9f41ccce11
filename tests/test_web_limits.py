"""The web endpoints' limits and uniform answers, called in-process (no sockets, so each
request takes about a millisecond and the clock is injected):

- at most three confirmation emails to one address a day, kept in the state store (so a
  restart forgets nothing), with the same page whether a mail went or not;
- a known and an unknown address take the same statements, signing and rendering;
- an empty or malformed token is a 400 "this link does not work" page everywhere;
- ``X-Content-Type-Options: nosniff`` on every response, 404s included;
- the per-client sign-up limit is one count for every web process on the state store.

``call`` is a minimal ASGI client (Starlette's TestClient would need httpx, which the
project does not install); ``tests/test_fuzz_web.py`` uses it too.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from sqlalchemy import event, select

from pipeline import signup as signup_module
from pipeline.schema import list_unsubscribes, state_values
from pipeline.settings import Settings, load_settings
from pipeline.signup import COUNTS, SignUp
from pipeline.store import Store
from pipeline.subscribers import ACTIVE, BOUNCED, PENDING, UNSUBSCRIBED, SubscriberStore
from pipeline.tokens import address_hash, link_secret
from pipeline.web.app import create_app
from pipeline.web.limits import SIGNUPS

T0 = 1_800_000_000.0  # 2027-01-15, a fixed instant for the injected clock


def lists_left(web: Web, email: str) -> set[str]:
    """The digests the subscriber with this address left with one click."""
    found = web.people.get(email)
    assert found is not None
    with web.store.engine.connect() as conn:
        query = select(list_unsubscribes.c.list_name)
        return set(conn.scalars(query.where(list_unsubscribes.c.subscriber_id == found.id)))


def at(unix_time: float) -> dt.datetime:
    """The injected clock's reading (aware UTC) for a moment the test keeps as seconds."""
    return dt.datetime.fromtimestamp(unix_time, dt.UTC)


DAY = 24 * 3600
BROKEN = "This link does not work"

# -- an in-process ASGI client -----------------------------------------------------------


@dataclass
class Answer:
    status: int
    header_list: list[tuple[str, str]]
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {name: value for name, value in self.header_list}

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.header_list if k == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def call(
    app,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    client: tuple[str, int] = ("198.51.100.7", 40000),
) -> Answer:
    """One request to ``app`` as uvicorn would hand it over: ``path`` percent-encoded,
    ``query`` the raw bytes after ``?``."""
    raw = [(b"host", b"testserver")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if body and b"content-length" not in dict(raw):
        raw.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query,
        "root_path": "",
        "headers": raw,
        "client": client,
        "server": ("testserver", 80),
    }
    pending = [body]
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Answer(
        start["status"],
        [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start.get("headers", [])],
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


def signed(secret: str, payload: object) -> str:
    """A genuinely signed token carrying any JSON ``payload`` (as ``sign`` formats it)."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


class Outbox:
    """A transport that keeps what it is given (the SMTP path is tested in test_web.py)."""

    def __init__(self) -> None:
        self.sent: list = []

    def __call__(self) -> Outbox:
        return self

    def send(self, message) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass

    def to(self) -> list[str]:
        return [str(m["To"]) for m in self.sent]


@dataclass
class Web:
    """The example project's web endpoints, in-process, on a clock the test moves."""

    settings: Settings
    state: str
    outbox: Outbox = field(default_factory=Outbox)
    now: list[float] = field(default_factory=lambda: [T0])
    clients: Iterator[int] = field(default_factory=lambda: iter(range(1, 60000)))

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Web({self.state!r})"

    def __post_init__(self) -> None:
        self.store = Store(self.state, self.settings.site.url)
        self.restart()
        self.people = SubscriberStore(self.store.engine)
        self.secret = link_secret(self.settings.email.unsubscribe.secret, self.store)

    def restart(self) -> None:
        """A new process: new app, new store connections, nothing kept in memory."""
        if hasattr(self, "app"):
            self.store.close()
            self.store = Store(self.state, self.settings.site.url)
        self.app = create_app(
            self.settings, self.store, transport=self.outbox, clock=lambda: at(self.now[0])
        )

    def client(self) -> tuple[str, int]:
        """A client of its own for each sign-up: the per-client hourly limit stays out of
        the way, as it does for a flood from many addresses."""
        n = next(self.clients)
        return (f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 40000)

    def get(self, path: str, query: str = "", **kw) -> Answer:
        return call(self.app, "GET", path, query=query.encode(), **kw)

    def post(self, path: str, form: dict[str, str], query: str = "", **kw) -> Answer:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}
        body = urlencode(form).encode()
        return call(self.app, "POST", path, query=query.encode(), body=body, headers=headers, **kw)

    def form_token(self) -> str:
        page = self.get("/subscribe").text
        return page.split('name="form_token" value="')[1].split('"')[0]

    def sign_up(self, email: str, name: str = "", language: str = "en") -> Answer:
        form = {"form_token": self.form_token(), "email": email, "name": name}
        form |= {"language": language, "topics": ""}
        origin = {"Origin": "http://testserver"}
        return self.post("/subscribe", form, headers=origin, client=self.client())


def load(root: Path) -> Settings:
    return load_settings(root / "config" / "pipeline.yaml")


@pytest.fixture
def web(project, state_url) -> Iterator[Web]:
    root = project(with_examples=False)
    site = Web(load(root), state_url)
    yield site
    site.store.close()


# -- 1. at most three confirmation emails to one address a day ---------------------------


def test_thirty_sign_ups_of_one_address_send_three_mails_and_answer_alike(web):
    answers = []
    for _ in range(30):
        answers.append(web.sign_up("victim@example.org"))
        web.now[0] += 60
    assert web.outbox.to() == ["victim@example.org"] * 3
    assert {a.status for a in answers} == {200}
    # Sent or not, the same page and headers: the form tells nobody about the limit.
    assert {a.body for a in answers} == {answers[0].body}
    assert {tuple(sorted(a.headers.items())) for a in answers} == {
        tuple(sorted(answers[0].headers.items()))
    }
    assert "Check your inbox" in answers[0].text
    web.sign_up("someone.else@example.org")  # the limit is per address
    assert web.outbox.to()[-1] == "someone.else@example.org"


def test_the_limit_is_kept_in_the_state_store_across_a_restart(web):
    for _ in range(2):
        web.sign_up("victim@example.org")
    web.restart()
    web.sign_up("victim@example.org")
    web.restart()
    web.sign_up("Victim@Example.org ")  # the same address, however it is typed
    assert len(web.outbox.sent) == 3


def test_the_day_slides_a_mail_becomes_possible_24_hours_after_the_first(web):
    for hours in (0, 1, 2):
        web.now[0] = T0 + hours * 3600
        web.sign_up("victim@example.org")
    web.now[0] = T0 + DAY - 1
    web.sign_up("victim@example.org")
    assert len(web.outbox.sent) == 3
    web.now[0] = T0 + DAY  # the first has left the window
    web.sign_up("victim@example.org")
    assert len(web.outbox.sent) == 4
    web.sign_up("victim@example.org")  # the second is still in it
    assert len(web.outbox.sent) == 4


def test_counts_name_no_address_and_are_forgotten_after_a_quiet_day(web):
    web.sign_up("victim@example.org")
    with web.store.engine.connect() as conn:
        rows = conn.execute(select(state_values).where(state_values.c.name.startswith(COUNTS)))
        rows = rows.all()
    assert len(rows) == 1
    assert "victim" not in rows[0].name and "victim" not in rows[0].value
    assert json.loads(rows[0].value) == {"sent": [T0]}
    signup = SignUp(web.settings, web.store, transport=web.outbox, clock=lambda: at(web.now[0]))
    assert signup.prune(T0 + DAY - 1) == 0  # still counted
    assert signup.prune(T0 + DAY) == 1
    with web.store.engine.connect() as conn:
        left = conn.scalars(
            select(state_values.c.name).where(state_values.c.name.startswith(COUNTS))
        )
        assert list(left) == []


def test_a_corrupt_count_is_read_as_no_mails(web):
    web.sign_up("victim@example.org")
    signup = SignUp(web.settings, web.store, transport=web.outbox, clock=lambda: at(web.now[0]))
    name = signup._count_name("victim@example.org")
    web.store.save_value(name, {"sent": "not a list"})
    assert signup.request("victim@example.org", name="", language="en", topics=())
    assert len(web.outbox.sent) == 2


def test_concurrent_sign_ups_of_one_address_still_send_three(web):
    """The count is read and written in the transaction that upserts the address's row,
    so sign-ups racing each other (threads of one server) cannot all see "two sent"."""
    signup = SignUp(web.settings, web.store, transport=web.outbox, clock=lambda: at(T0))
    start = threading.Barrier(8)

    def sign_up(_: int) -> bool:
        start.wait()
        return signup.request("victim@example.org", name="", language="en", topics=())

    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(sign_up, range(8)))
    assert sent.count(True) == 3 and len(web.outbox.sent) == 3


def test_databases_without_an_upsert_get_the_same_behaviour(web, monkeypatch):
    """Other databases take the portable path (UPDATE, else INSERT): same outcomes."""
    monkeypatch.setattr(signup_module, "UPSERTS", {})
    web.people.add_or_update("active@example.org", name="Kept", language="en")
    before = web.people.get("active@example.org")
    for _ in range(4):
        web.sign_up("active@example.org", name="Stranger")
        web.sign_up("new@example.org", name="New")
    assert web.people.get("active@example.org") == before
    assert web.people.get("new@example.org").status == PENDING
    assert (
        sorted(web.outbox.to()) == ["Kept <active@example.org>"] * 3 + ["New <new@example.org>"] * 3
    )


def test_details_too_long_or_multi_line_are_refused_before_anything_is_stored(web):
    signup = SignUp(web.settings, web.store, transport=web.outbox)
    for name in ("x" * 201, "Eve\r\nBcc: all@example.org"):
        with pytest.raises(ValueError):
            signup.request("eve@example.org", name=name, language="en", topics=())
    assert web.people.get("eve@example.org") is None and web.outbox.sent == []


# -- 2. a known address answers like an unknown one --------------------------------------


class Trace:
    """What one request did: SQL statements, tokens signed, messages rendered, mails."""

    def __init__(self, web: Web, monkeypatch: pytest.MonkeyPatch):
        self.web = web
        self.statements: list[str] = []
        self.signed = 0
        self.rendered = 0
        event.listen(web.store.engine, "before_cursor_execute", self._statement)
        original_sign, original_message = signup_module.sign, SignUp.message

        def counting_sign(*args, **kw):
            self.signed += 1
            return original_sign(*args, **kw)

        def counting_message(signup, *args, **kw):
            self.rendered += 1
            return original_message(signup, *args, **kw)

        monkeypatch.setattr(signup_module, "sign", counting_sign)
        monkeypatch.setattr(SignUp, "message", counting_message)

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)

    def of(self, email: str) -> tuple:
        """Everything a sign-up of ``email`` did, with the address taken out of the page."""
        token = self.web.form_token()  # outside the trace: it is the same GET for everyone
        self.statements.clear()
        self.signed = self.rendered = 0
        mails = len(self.web.outbox.sent)
        form = {"form_token": token, "email": email, "name": "Someone", "language": "en"}
        answer = self.web.post(
            "/subscribe", form, headers={"Origin": "http://testserver"}, client=self.web.client()
        )
        page = answer.body.replace(email.encode(), b"ADDRESS")
        sent = len(self.web.outbox.sent) - mails
        return (answer.status, page, list(self.statements), self.signed, self.rendered, sent)


@pytest.mark.parametrize("status", [ACTIVE, PENDING, UNSUBSCRIBED, BOUNCED])
def test_a_known_address_takes_the_same_path_as_an_unknown_one(web, monkeypatch, status):
    person = web.people.add_or_update("known@example.org", name="Known", language="en")[1]
    web.people.set_status(person.id, status)
    trace = Trace(web, monkeypatch)
    trace.of("warm-up@example.org")  # the first sign-up of a process also prunes counts
    unknown = trace.of("unknown@example.org")
    known = trace.of("known@example.org")
    assert known == unknown
    status_code, _page, statements, signed_tokens, rendered, sent = known
    assert status_code == 200 and signed_tokens == 1 and rendered == 1 and sent == 1
    assert len(statements) >= 3  # the upsert, the row, the count: not an empty trace


def test_a_sign_up_changes_nothing_of_a_known_subscriber_but_updates_a_pending_one(web):
    web.people.add_or_update("active@example.org", name="Kept", language="en", topics=["Nepal"])
    web.people.add_or_update("waiting@example.org", name="Old", language="en", status=PENDING)
    before = web.people.get("active@example.org")
    web.sign_up("active@example.org", name="Stranger", language="zh-CN")
    web.sign_up("waiting@example.org", name="New", language="zh-CN")
    assert web.people.get("active@example.org") == before
    waiting = web.people.get("waiting@example.org")
    assert (waiting.name, waiting.language, waiting.status) == ("New", "zh-CN", PENDING)
    new = web.people.get("new@example.org")
    assert new is None
    web.sign_up("new@example.org", name="Newcomer")
    assert web.people.get("new@example.org").status == PENDING
    # The active subscriber's confirmation is in their own name and language.
    assert web.outbox.to() == [
        "Kept <active@example.org>",
        "New <waiting@example.org>",
        "Newcomer <new@example.org>",
    ]


def test_known_and_unknown_sign_ups_take_about_as_long(web):
    """Secondary to the trace above: over many interleaved sign-ups, neither kind is
    consistently faster (the margin is wide: a loaded machine must not fail it)."""
    # Each address is asked for once, so the daily limit stays out of the measurement.
    signup = SignUp(web.settings, web.store, transport=web.outbox)
    for n in range(20):
        web.people.add_or_update(f"known{n}@example.org", language="en")
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for n in range(20):
        for kind in ("known", "unknown"):
            start = time.perf_counter()
            signup.request(f"{kind}{n}@example.org", name="", language="en", topics=())
            times[kind].append(time.perf_counter() - start)
    known, unknown = (statistics.median(times[k]) for k in ("known", "unknown"))
    assert 0.5 < known / unknown < 2.0, times


# -- 3. empty and malformed tokens: 400, "this link does not work" ------------------------


def _tokens(web: Web) -> dict[str, str | None]:
    anna = web.people.get("anna@example.org")
    valid = {"p": "unsubscribe", "s": anna.id, "l": "weekly-en", "a": address_hash(anna.email)}
    return {
        "valid": signed(web.secret, valid),  # the control: each other differs from it once
        "missing": None,
        "empty": "",
        "garbage": "not-a-token",
        "three-parts": "a.b.c",
        "json-list": signed(web.secret, ["unsubscribe", anna.id, "weekly-en"]),
        "json-string": signed(web.secret, "unsubscribe"),
        "json-number": signed(web.secret, 7),
        "json-null": signed(web.secret, None),
        "id-as-text": signed(web.secret, {**valid, "s": str(anna.id)}),
        "id-true": signed(web.secret, {**valid, "s": True}),
        "id-too-big": signed(web.secret, {**valid, "s": 2**64}),
        "list-with-nul": signed(web.secret, {**valid, "l": "weekly\x00"}),
        "list-surrogate": signed(web.secret, {**valid, "l": "\ud800"}),
        "address-not-ascii": signed(web.secret, {**valid, "a": "é" * 16}),
        "nested": signed(web.secret, {**valid, "l": {"x": [1]}}),
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("endpoint", ["/unsubscribe", "/confirm"])
def test_every_empty_or_malformed_token_is_a_broken_link(web, endpoint, method):
    web.people.add_or_update("anna@example.org", language="en")
    tokens = _tokens(web)
    valid = tokens.pop("valid")
    if endpoint == "/unsubscribe" and method == "GET":
        assert web.get(endpoint, urlencode({"token": valid})).status == 200
    for kind, token in tokens.items():
        query = "" if token is None else urlencode({"token": token})
        if method == "GET":
            answer = web.get(endpoint, query)
        else:
            form = {"List-Unsubscribe": "One-Click"} if endpoint == "/unsubscribe" else {}
            answer = web.post(endpoint, form | ({"token": token} if token else {}), query)
        assert answer.status == 400, (kind, answer.status, answer.text)
        assert BROKEN in answer.text and 'role="alert"' in answer.text, kind
        assert answer.headers["content-type"].startswith("text/html"), kind
    assert lists_left(web, "anna@example.org") == set()


def test_an_empty_token_one_click_post_is_refused_and_changes_nothing(web):
    web.people.add_or_update("anna@example.org", language="en")
    answer = web.post("/unsubscribe", {"List-Unsubscribe": "One-Click"}, "token=")
    assert answer.status == 400 and BROKEN in answer.text
    assert "use the link at the bottom of the email" in answer.text
    assert lists_left(web, "anna@example.org") == set()


# -- 4. nosniff on every response --------------------------------------------------------


def test_every_response_says_nosniff_once(web):
    feeds = web.settings.feeds.output
    feeds.mkdir(parents=True, exist_ok=True)
    (feeds / "rss.xml").write_text("<rss version='2.0'><channel/></rss>", encoding="utf-8")
    etag = web.get("/feeds/rss.xml").headers["etag"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    origin = {"Origin": "http://testserver"}
    answers = [  # (expected status, answer)
        (200, web.get("/healthz")),
        (200, web.get("/feeds/rss.xml")),
        (304, web.get("/feeds/rss.xml", headers={"If-None-Match": etag})),
        (200, call(web.app, "HEAD", "/feeds/rss.xml")),
        (404, web.get("/feeds/nothing.xml")),
        (405, call(web.app, "POST", "/feeds/rss.xml", body=b"x", headers=form)),
        (200, web.get("/subscribe")),
        (403, web.post("/subscribe", {"email": "a@example.org"})),
        (415, call(web.app, "POST", "/subscribe", body=b"x", headers=origin)),
        (413, call(web.app, "POST", "/subscribe", body=b"x" * 17000, headers=form)),
        (400, call(web.app, "POST", "/subscribe", headers={"Content-Length": "x"})),
        (400, web.get("/unsubscribe")),
        (400, web.get("/confirm", "token=x")),
        (404, web.get("/digests/weekly-en/2020-01-01T09:00+05:45")),
        (404, web.get("/digests/nope/x")),
        (404, web.get("/no/such/page")),
        (405, call(web.app, "PUT", "/healthz")),
    ]
    for n, (status, answer) in enumerate(answers):
        assert answer.status == status, n
        assert answer.values("X-Content-Type-Options") == ["nosniff"], n


def test_an_edition_address_with_a_nul_is_no_edition(web):
    """PostgreSQL refuses NUL in text: such an address must not reach the database."""
    assert web.get("/digests/weekly-en/2020%00").status == 404


# -- 5. one per-client limit for every web process on the state store --------------------

ONE_CLIENT = ("203.0.113.9", 40000)


@pytest.fixture
def other_process(web: Web) -> Iterator[Any]:
    """A second web process on the same state store (its own app, engine and memory) and
    on the same injected clock, as a balancer's second machine would be."""
    store = Store(web.state, web.settings.site.url)
    yield create_app(web.settings, store, transport=web.outbox, clock=lambda: at(web.now[0]))
    store.close()


def form_token_of(app: Any) -> str:
    page = call(app, "GET", "/subscribe").text
    return page.split('name="form_token" value="')[1].split('"')[0]


def sign_up_at(
    app: Any, email: str, client: tuple[str, int] = ONE_CLIENT, token: str | None = None
) -> Answer:
    """One sign-up posted to ``app`` from ``client`` (the same client every time unless
    told otherwise, unlike ``Web.sign_up``)."""
    form = {"form_token": token or form_token_of(app), "email": email, "name": ""}
    form |= {"language": "en", "topics": ""}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://testserver"}
    body = urlencode(form).encode()
    return call(app, "POST", "/subscribe", body=body, headers=headers, client=client)


def signup_rows(web: Web) -> list[tuple[str, str]]:
    with web.store.engine.connect() as conn:
        query = select(state_values.c.name, state_values.c.value)
        rows = conn.execute(query.where(state_values.c.name.startswith(SIGNUPS)))
        return [(name, value) for name, value in rows]


def test_two_processes_share_one_limit_and_refuse_as_one_process_does(web, other_process):
    per_hour = web.settings.web.subscribe_per_hour
    processes = [web.app, other_process]
    answers = [sign_up_at(processes[n % 2], f"r{n}@example.org") for n in range(per_hour)]
    assert [a.status for a in answers] == [200] * per_hour
    refused = [sign_up_at(app, "late@example.org") for app in processes]
    # What one process alone answers its client's sign-up past the limit.
    alone = ("198.51.100.20", 40000)
    for n in range(per_hour):
        assert sign_up_at(web.app, f"alone{n}@example.org", alone).status == 200
    expected = sign_up_at(web.app, "alone-late@example.org", alone)
    assert expected.status == 429 and expected.headers["retry-after"] == "3600"
    assert "Too many sign-ups from your network" in expected.text
    for answer in refused:
        assert (answer.status, answer.header_list, answer.body) == (
            expected.status,
            expected.header_list,
            expected.body,
        )
    assert web.people.get("late@example.org") is None
    assert len(web.outbox.sent) == 2 * per_hour
    web.restart()  # a restarted process forgets nothing either
    assert sign_up_at(web.app, "later@example.org").status == 429


def test_the_shared_hour_slides_with_the_injected_clock(web, other_process):
    per_hour = web.settings.web.subscribe_per_hour
    processes = [web.app, other_process]
    for n in range(per_hour):
        web.now[0] = T0 + 60 * n
        assert sign_up_at(processes[n % 2], f"r{n}@example.org").status == 200
    web.now[0] = T0 + 3599
    assert sign_up_at(other_process, "a@example.org").status == 429
    web.now[0] = T0 + 3600  # the first has left the hour
    assert sign_up_at(other_process, "b@example.org").status == 200
    assert sign_up_at(web.app, "c@example.org").status == 429  # the second has not
    web.now[0] = T0 + 2 * 3600 + 60 * per_hour  # a quiet hour: a whole hour's worth again
    statuses = [sign_up_at(processes[n % 2], f"s{n}@example.org").status for n in range(per_hour)]
    assert statuses == [200] * per_hour
    assert sign_up_at(web.app, "d@example.org").status == 429


def test_sign_ups_racing_in_two_processes_never_pass_the_limit(web, other_process):
    """Each process's threads post at once, past the limit: exactly ``per_hour`` pass,
    since the count is checked and taken with the client's row locked."""
    per_hour = web.settings.web.subscribe_per_hour
    racers = 3 * per_hour
    processes = [web.app, other_process]
    tokens = [form_token_of(processes[n % 2]) for n in range(racers)]
    start = threading.Barrier(racers)

    def sign_up(n: int) -> int:
        start.wait()
        return sign_up_at(processes[n % 2], f"r{n}@example.org", token=tokens[n]).status

    with ThreadPoolExecutor(racers) as pool:
        statuses = list(pool.map(sign_up, range(racers)))
    assert statuses.count(200) == per_hour and statuses.count(429) == racers - per_hour
    assert len(web.outbox.sent) == per_hour
    [(_, value)] = signup_rows(web)
    assert json.loads(value) == {"at": [T0] * per_hour}


def test_the_shared_count_names_no_client_and_is_forgotten_after_a_quiet_hour(web):
    assert sign_up_at(web.app, "a@example.org").status == 200
    [(name, value)] = signup_rows(web)
    assert ONE_CLIENT[0] not in name and ONE_CLIENT[0] not in value
    assert json.loads(value) == {"at": [T0]}
    web.now[0] = T0 + 3600  # the next sign-up, from anyone, prunes the quiet client's row
    assert sign_up_at(web.app, "b@example.org", ("198.51.100.20", 40000)).status == 200
    [(other, value)] = signup_rows(web)
    assert other != name and json.loads(value) == {"at": [T0 + 3600]}


def test_two_processes_share_the_confirmation_mails_of_one_address(web, other_process):
    """Already so before the per-client limit moved: the count per address is in the
    state store, taken in the transaction that locks the address's subscriber row."""
    processes = [web.app, other_process]
    for n in range(6):
        client = (f"198.51.100.{n + 1}", 40000)  # the per-client limit stays out of the way
        assert sign_up_at(processes[n % 2], "victim@example.org", client).status == 200
    assert web.outbox.to() == ["victim@example.org"] * 3
