"""Digest editions end to end: a real SMTP server on 127.0.0.1 checks what arrives."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscribers import BOUNCED, SubscriberStore
from pipeline.tokens import link_secret, verify
from tests.conftest import PEOPLE, invoke


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


def test_a_temporary_refusal_waits_and_the_next_send_finishes_the_edition(mail_project, inbox):
    handler, _ = inbox
    handler.refuse["anna@example.org"] = "451 4.7.1 Try again later"
    settings, store = opened(mail_project)
    from pipeline.digest.editions import Digests
    from pipeline.mailer import open_transport

    sleeps: list[float] = []
    digests = Digests(
        settings, store, transport=lambda: open_transport(settings.email), sleep=sleeps.append
    )
    first = digests.send("weekly-en")
    assert [who for who, _ in first.pending] == ["anna@example.org"] and len(first.sent) == 2
    assert sleeps == [1, 2, 4]  # backoff between the four tries
    del handler.refuse["anna@example.org"]
    second = digests.send("weekly-en")  # resumes the same edition
    assert second.edition.id == first.edition.id and second.sent == ["anna@example.org"]
    assert sorted(handler.to()).count("Anna Berg <anna@example.org>") == 1
    third = digests.send("weekly-en")
    assert third.skipped  # that edition is complete; nothing new since
    store.close()


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
    assert rerun.exit_code == 1 and "uncertain" in rerun.stderr
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
