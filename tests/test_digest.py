"""Digest editions end to end: a real SMTP server on 127.0.0.1 checks what arrives."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pipeline.ledger import Ledger
from pipeline.mailer import Staged
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscribers import BOUNCED, SubscriberStore
from pipeline.tokens import link_secret, verify
from tests.conftest import PEOPLE, free_port, invoke


def opened(root: Path):
    settings = load_settings(root / "config" / "pipeline.yaml")
    return settings, Store(settings.state, settings.site.url)


def test_an_edition_reaches_each_subscriber_of_its_language_once(mail_project, inbox):
    handler, _ = inbox
    result = invoke(mail_project, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    assert "3 sent" in result.output
    assert sorted(handler.to()) == [
        "Anna Berg <anna@example.org>",
        "Pema Gyamtsho <pema@example.org>",
        "Sonam <sonam@example.org>",
    ]
    settings, store = opened(mail_project)
    secret = link_secret(settings.email.unsubscribe.secret, store)
    people = SubscriberStore(store.engine)
    tokens = set()
    for message in handler.messages:
        assert message.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]  # text first: clients show the last they can
        assert message["Subject"] == "This week at Mountain News"
        assert message["Date"] and message["Message-ID"].endswith("@news.example.org>")
        assert message["List-Id"] == "This week at Mountain News <weekly-en.news.example.org>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = message["List-Unsubscribe"].strip("<>")
        assert link.startswith("https://news.example.org/unsubscribe?token=")
        token = parse_qs(urlsplit(link).query)["token"][0]
        claims = verify(secret, token, "unsubscribe")
        address = email.utils.parseaddr(str(message["To"]))[1]
        assert people.get_by_id(claims.subscriber_id).email == address
        assert claims.list_name == "weekly-en"
        tokens.add(token)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        newest = "Snow Update 2026: Below-normal snow persistence for a fourth year"
        assert newest in text and newest in html
        assert "2023年国际山岳日" not in text  # an English digest carries English articles
        assert link.replace("&", "&amp;") in html or link in html
        assert "%%" not in html and "%%" not in text  # every placeholder filled
    assert len(tokens) == 3
    store.close()


def test_the_next_send_carries_only_new_articles_and_min_items_skips(mail_project, inbox):
    handler, _ = inbox
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    again = invoke(mail_project, "digest", "send", "weekly-en")
    assert again.exit_code == 0
    assert "edition skipped — 0 new articles; min_items is 1" in again.output
    assert len(handler.messages) == 3
    history = invoke(mail_project, "history").output
    assert "3 sent" in history and "skipped" in history
    # ten English articles, max_items 8: the two oldest were passed over, not queued
    assert "2 older articles left out; max_items is 8" in history
    fresh = mail_project / "examples" / "site" / "news" / "2026-11-20-late-snow.md"
    fresh.write_text(
        "---\ntitle: Late snow in the Khumbu\ndate: 2026-11-20T08:00:00+05:45\n"
        "author: Test Writer\n---\nSnow came late this year.\n",
        encoding="utf-8",
    )
    assert invoke(mail_project, "ingest").exit_code == 0
    handler.messages.clear()
    third = invoke(mail_project, "digest", "send", "weekly-en")
    assert "3 sent" in third.output
    text = handler.messages[0].get_body(("plain",)).get_content()
    assert "Late snow in the Khumbu" in text
    assert "The Road Ahead" not in text and "Snow Update 2026" not in text


def test_chinese_digest_goes_to_chinese_readers(mail_project, inbox):
    handler, _ = inbox
    assert invoke(mail_project, "digest", "send", "monthly-zh").exit_code == 0
    (message,) = handler.messages
    assert message["Subject"] == "山地新闻月报" and message["Content-Language"] == "zh-CN"
    text = message.get_body(("plain",)).get_content()
    assert "2023年国际山岳日" in text and "阅读时间" in text


def test_a_refused_mailbox_bounces_and_the_rest_are_delivered(mail_project, inbox):
    handler, _ = inbox
    handler.refuse["anna@example.org"] = "550 5.1.1 No such user"
    result = invoke(mail_project, "digest", "send", "weekly-en")
    assert result.exit_code == 1
    assert "failed: anna@example.org" in result.stderr and "550" in result.stderr
    assert len(handler.messages) == 2
    _, store = opened(mail_project)
    assert SubscriberStore(store.engine).get("anna@example.org").status == BOUNCED
    store.close()


class Clock:
    """The ledger's clock (naive UTC), moved by hand: retries across runs without waiting."""

    def __init__(self):
        self.now = dt.datetime(2026, 11, 23, 3, 15)

    def __call__(self) -> dt.datetime:
        return self.now


def digests_of(root: Path, clock: Clock, sleeps: list[float]):
    from pipeline.digest.sending import Digests
    from pipeline.mailer import open_transport

    settings, store = opened(root)
    ledger = Ledger(store.engine, clock=clock)
    transport = lambda: open_transport(settings.email)  # noqa: E731
    digests = Digests(settings, store, transport=transport, sleep=sleeps.append)
    digests.ledger = ledger  # (not the constructor: the same helper ran on the old code)
    return digests, store


def add_article(root: Path, slug: str, title: str) -> None:
    path = root / "examples" / "site" / "news" / f"2026-11-20-{slug}.md"
    path.write_text(
        f"---\ntitle: {title}\ndate: 2026-11-20T08:00:00+05:45\nauthor: Test Writer\n---\nBody.\n",
        encoding="utf-8",
    )
    assert invoke(root, "ingest").exit_code == 0


def test_a_recipient_refused_for_now_never_holds_up_the_next_edition(mail_project, inbox):
    """Finding 1: two recipients answering 451 used to keep every later hand-run send
    finishing the same edition (new articles never went out), at 7 s of backoff each."""
    handler, _ = inbox
    handler.refuse["anna@example.org"] = "451 4.7.1 Try again later"
    handler.refuse["sonam@example.org"] = "452 4.2.2 Mailbox full"
    clock, sleeps = Clock(), []
    digests, store = digests_of(mail_project, clock, sleeps)
    first = digests.send("weekly-en")
    assert sorted(who for who, _ in first.pending) == ["anna@example.org", "sonam@example.org"]
    assert first.sent == ["pema@example.org"]
    assert len(sleeps) == 1  # one pause for the run (was 1+2+4 s per recipient)
    assert "next attempt after 2026-11-23 03:20Z" in first.pending[0][1]
    assert digests.load(first.edition.id).status == "retrying"
    add_article(mail_project, "late-snow", "Late snow in the Khumbu")
    second = digests.send("weekly-en")  # not due yet: a new edition goes out at once
    assert second.edition.id != first.edition.id and second.sent == ["pema@example.org"]
    assert second.waiting == 2 and second.earlier == []
    assert "Late snow in the Khumbu" in handler.messages[-1].get_body(("plain",)).get_content()
    handler.refuse.clear()
    clock.now += dt.timedelta(minutes=5)
    third = digests.send("weekly-en")  # nothing new: the retries whose time has come
    assert (
        third.skipped and sorted(third.sent) == ["anna@example.org"] * 2 + ["sonam@example.org"] * 2
    )
    assert sorted(third.earlier) == sorted([first.edition.id, second.edition.id])
    assert digests.load(first.edition.id).status == "sent"
    assert digests.load(second.edition.id).status == "sent"
    received = [(str(m["To"]), str(m["Subject"]), m["Message-ID"]) for m in handler.messages]
    assert len(received) == len(set(received)) == 6  # each edition once per person
    store.close()


def test_a_recipient_that_keeps_refusing_is_given_up_after_three_days(mail_project, inbox):
    handler, _ = inbox
    handler.refuse["anna@example.org"] = "450 4.2.1 Mailbox busy"
    clock, sleeps = Clock(), []
    digests, store = digests_of(mail_project, clock, sleeps)
    edition = digests.send("weekly-en").edition
    stream = f"mail:{edition.id}"
    anna = str(SubscriberStore(store.engine).get("anna@example.org").id)
    start, runs = clock.now, 1
    while (entry := digests.ledger.entries(stream)[anna]).state == "pending":
        clock.now = entry.next_attempt_at
        report = digests.send("weekly-en")
        runs += 1
    assert clock.now == start + dt.timedelta(days=3) and runs > 10
    assert entry.state == "failed" and "gave up after" in entry.detail
    assert entry.detail.endswith("450 4.2.1 Mailbox busy")
    assert report.failed and report.failed[0][0] == "anna@example.org"
    assert digests.load(edition.id).status == "sent"  # every recipient settled
    assert len(sleeps) == runs - 1  # one pause a run (none in the last: it gave up at once)
    store.close()


def test_a_send_that_loses_its_server_still_says_what_it_did(mail_project, inbox, monkeypatch):
    """Finding 3: a run ending in "cannot connect" printed only the error, nothing of
    what it had sent or left uncertain."""
    import pipeline.mailer

    handler, _ = inbox
    real_open = pipeline.mailer.open_transport

    async def drop_during_data(server, session, envelope):
        handler.messages.append(email.message_from_bytes(envelope.content))
        if len(handler.messages) == 2:  # the second message: accepted, then the line drops
            server.transport.close()
        return "250 Message accepted"

    def flaky(settings, **kw):
        transport = real_open(settings, **kw)
        stage = transport.stage

        def stage_then_lose_the_server(message):
            staged = stage(message)

            def finish():
                try:
                    staged.finish()
                finally:
                    if len(handler.messages) == 2:  # from now on nobody answers
                        port = free_port()
                        transport.settings = transport.settings.model_copy(update={"port": port})

            return Staged(finish, staged.abandon)

        transport.stage = stage_then_lose_the_server
        return transport

    more = mail_project / "more.csv"
    more.write_text(
        "email,name,language,topics\nyan@example.org,Yan,en,\nzed@example.org,Zed,en,\n"
    )
    assert invoke(mail_project, "subscribers", "import", str(more)).exit_code == 0
    handler.handle_DATA = drop_during_data
    monkeypatch.setattr(pipeline.mailer, "open_transport", flaky)
    result = invoke(mail_project, "digest", "send", "weekly-en")
    assert result.exit_code == 1
    assert "1 sent, 3 pending, 1 uncertain" in result.output
    assert "uncertain: pema@example.org — connection to 127.0.0.1" in result.stderr
    for who in ("sonam", "yan", "zed"):  # sonam and yan refused, then zed broke the mailer
        assert f"pending: {who}@example.org — cannot connect" in result.stderr
    assert "error: cannot connect" in result.stderr and "3 attempts in a row" in result.stderr
    assert "the next `pipeline digest send weekly-en` sends the rest" in result.stderr
    assert "pipeline deliveries uncertain --digest weekly-en" in result.stderr
    monkeypatch.setattr(pipeline.mailer, "open_transport", real_open)
    del handler.handle_DATA
    again = invoke(mail_project, "digest", "send", "weekly-en")  # the same edition, finished
    assert again.exit_code == 0, again.output + again.stderr
    assert "1 sent" in again.output  # zed: due at once, the mailer's fault, not theirs
    assert [str(m["To"]) for m in handler.messages][2:] == ["Zed <zed@example.org>"]


def test_preview_writes_files_and_records_nothing(mail_project, inbox, tmp_path):
    handler, _ = inbox
    out = tmp_path / "preview"
    result = invoke(mail_project, "digest", "preview", "weekly-en", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "weekly-en.eml",
        "weekly-en.html",
        "weekly-en.txt",
    ]
    assert "<html" in (out / "weekly-en.html").read_text(encoding="utf-8").lower()
    parsed = email.message_from_bytes(
        (out / "weekly-en.eml").read_bytes(), policy=email.policy.SMTP
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert handler.messages == []
    assert "nothing has been posted or sent yet" in invoke(mail_project, "history").output
    # the preview took no articles: the real edition still has them
    assert "3 sent" in invoke(mail_project, "digest", "send", "weekly-en").output


def test_outbox_delivery_writes_eml_files(project, tmp_path):
    root = project()
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    invoke(root, "ingest")
    invoke(root, "subscribers", "import", str(root / "people.csv"))
    assert invoke(root, "digest", "send", "weekly-en").exit_code == 0
    files = sorted((root / "var" / "outbox").glob("*.eml"))
    assert len(files) == 3
    first = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.SMTP)
    assert first["Subject"] == "This week at Mountain News"


def test_a_send_killed_mid_batch_is_finished_without_sending_anyone_twice(mail_project, inbox):
    """A real `pipeline digest send` is killed while the 2nd message is in the SMTP DATA
    phase. The re-run marks that one uncertain (it may have arrived), does not resend
    the one already confirmed, and sends the remaining one."""
    handler, _ = inbox
    handler.hold_at = 2
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "digest", "send", "weekly-en"],
        cwd=mail_project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert handler.holding.wait(60), "the second message never reached DATA"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        handler.release.set()
    rerun = invoke(mail_project, "digest", "send", "weekly-en")
    assert rerun.exit_code == 1
    # Finding 3: by address, not by an internal subscriber id nobody can look up
    assert "uncertain: pema@example.org — the run stopped" in rerun.stderr
    delivered = handler.to()
    assert len(delivered) == 3 and len(set(delivered)) == 3  # nobody twice
    history = invoke(mail_project, "history").output
    assert "2 sent" in history and "1 uncertain" in history


def test_an_edition_nobody_would_receive_is_skipped_and_keeps_its_articles(project):
    root = project()
    assert invoke(root, "ingest").exit_code == 0
    empty = invoke(root, "digest", "send", "weekly-en")
    assert "edition skipped — no active subscribers in its audience" in empty.output
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    invoke(root, "subscribers", "import", str(root / "people.csv"))
    assert "3 sent" in invoke(root, "digest", "send", "weekly-en").output


def test_an_unexpected_error_mid_send_leaves_that_recipient_uncertain(mail_project):
    from pipeline.digest.sending import Digests

    class Surprising:
        def __init__(self):
            self.sent = 0

        def send(self, message):
            self.sent += 1
            if self.sent == 2:
                raise RuntimeError("the transport had a bug")

        def close(self):
            pass

    settings, store = opened(mail_project)
    transport = Surprising()
    digests = Digests(settings, store, transport=lambda: transport, sleep=lambda s: None)
    try:
        digests.send("weekly-en")
    except RuntimeError:
        pass
    else:
        raise AssertionError("the error was swallowed")
    rows = list(digests.ledger.history("mail:"))
    states = sorted(e.state for e in rows)
    assert states == ["sent", "uncertain"]  # not left "sending"
    assert "unexpected RuntimeError while sending" in next(e.detail for e in rows if e.detail)
    store.close()


def test_a_recipient_is_claimed_only_after_the_send_before_it_ended(mail_project):
    """The next copy is built while one is on the wire, but its claim waits: during each
    send the ledger holds exactly the rows of the sends so far, the current one alone in
    ``sending``, so a crash leaves at most one message of a connection in doubt."""
    from pipeline.digest.sending import Digests

    settings, store = opened(mail_project)
    seen: list[tuple[int, list[str]]] = []

    class Watching:
        def send(self, message):
            rows = digests.ledger.history("mail:")
            sending = [e.state for e in rows if e.state == "sending"]
            seen.append((len(rows), sending))

        def close(self):
            pass

    digests = Digests(settings, store, transport=Watching, sleep=lambda s: None)
    try:
        report = digests.send("weekly-en")
    finally:
        store.close()
    assert len(report.sent) == len(seen) >= 3
    assert seen == [(n, ["sending"]) for n in range(1, len(seen) + 1)]
