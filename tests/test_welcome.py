"""The welcome email (``email.welcome.enabled``): one message after a confirmed sign-up,
in the subscriber's language, through the configured transport (DKIM-signed when that
is configured), never to a suppressed address, never twice — not even when the confirm
button is pressed eight times at once across two processes. Judged by the raw bytes
the SMTP server on 127.0.0.1 received (tests/rawmail.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from email.header import decode_header, make_header
from pathlib import Path
from urllib.parse import unquote

import dkim
import pytest
import requests

from pipeline.errors import ConfigError
from pipeline.feedback import Feedback
from pipeline.ledger import SENT, SKIPPED, Ledger
from pipeline.settings import load_settings
from pipeline.subscribers import ACTIVE, PENDING
from pipeline.suppression import Suppressions
from pipeline.tokens import sign
from pipeline.welcome import STREAM
from tests.conftest import free_port, invoke
from tests.prefs_site import Prefs, configure, prefs_web
from tests.rawmail import inbox as inbox  # the raw-bytes SMTP server for mail_project
from tests.rawmail import split, unfolded
from tests.test_dkim import dns, published, with_dkim
from tests.test_dkim import rsa_pem as rsa_pem  # the key fixture

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def welcoming(mail_project, inbox):
    """The example project with the welcome email on, its endpoints in-process."""
    configure(mail_project, welcome=True)
    site = prefs_web(mail_project)
    site.handler = inbox[0]
    yield site
    site.store.close()


def subject(raw: bytes) -> str:
    return str(make_header(decode_header(unfolded(split(raw).fields["subject"]))))


def sign_up_and_confirm(site: Prefs, email: str, name: str = "", language: str = "en") -> str:
    """Sign up on the form, then press the button of the mailed link; the token."""
    start = len(site.handler.raw)
    assert site.sign_up(email, name, language).status == 200
    (confirmation,) = site.handler.raw[start:]
    token = unquote(re.search(r"/confirm\?token=(\S+)", split(confirmation).parts["text/plain"])[1])
    assert site.people.get(email).status == PENDING
    done = site.post("/confirm", {"token": token})
    assert done.status == 200, done.text
    assert site.people.get(email).status == ACTIVE
    return token


def test_a_confirmed_subscriber_is_welcomed_once_in_english(welcoming):
    token = sign_up_and_confirm(welcoming, "new.reader@example.org", "New Reader")
    confirmation, welcome = welcoming.handler.raw
    assert subject(confirmation) == "Confirm your subscription to Mountain News"
    mail = split(welcome)
    assert subject(welcome) == "Welcome to Mountain News"
    assert unfolded(mail.fields["to"]) == "New Reader <new.reader@example.org>"
    assert unfolded(mail.fields["from"]) == "Mountain News <news@news.example.org>"
    assert unfolded(mail.fields["content-language"]) == "en"
    assert unfolded(mail.fields["message-id"]).startswith("<welcome.")
    text = mail.parts["text/plain"]
    assert text.startswith("Hello New Reader,\n\nThank you for confirming your subscription.")
    assert "You will receive:\n- This week at Mountain News\n" in text
    link = re.search(r"https://news\.example\.org/preferences\?token=(\S+)", text)
    assert welcoming.get("/preferences", f"token={link[1]}").status == 200  # it works
    assert "{{" not in text and "{%" not in text
    for _ in range(3):  # the button again, and the link again: no second welcome
        assert welcoming.post("/confirm", {"token": token}).status == 200
    assert len(welcoming.handler.raw) == 2
    entries = Ledger(welcoming.store.engine).entries(STREAM)
    person = welcoming.people.get("new.reader@example.org")
    assert [(e.item, e.state) for e in entries.values()] == [(str(person.id), SENT)]


def test_a_chinese_subscriber_is_welcomed_in_chinese(welcoming):
    sign_up_and_confirm(welcoming, "duzhe@example.org", "读者", "zh-CN")
    welcome = split(welcoming.handler.raw[1])
    assert subject(welcoming.handler.raw[1]) == "欢迎订阅Mountain News"
    assert unfolded(welcome.fields["content-language"]) == "zh-CN"
    text = welcome.parts["text/plain"]
    assert text.startswith("读者，您好！\n\n感谢您确认订阅。")
    assert "- 《山地新闻月报》" in text


def test_no_welcome_unless_it_is_switched_on(mail_project, inbox):
    site = prefs_web(mail_project)
    site.handler = inbox[0]
    sign_up_and_confirm(site, "quiet@example.org")
    assert [subject(r) for r in site.handler.raw] == ["Confirm your subscription to Mountain News"]
    assert Ledger(site.store.engine).entries(STREAM) == {}
    site.store.close()


def test_a_projects_own_template_is_used(mail_project, inbox):
    configure(mail_project, welcome=True)
    own = mail_project / "templates" / "welcome" / "en.txt.j2"
    own.parent.mkdir(parents=True)
    own.write_text("Subject: You're in, {{ name }}\n\nSee you on Friday.\n", encoding="utf-8")
    site = prefs_web(mail_project)
    site.handler = inbox[0]
    sign_up_and_confirm(site, "own@example.org", "Dawa")
    assert subject(site.handler.raw[1]) == "You're in, Dawa"
    assert split(site.handler.raw[1]).parts["text/plain"] == "See you on Friday.\n"
    site.store.close()


def test_a_suppressed_address_is_not_welcomed(welcoming):
    person = welcoming.people.add_or_update("angry@example.org", language="en", status=PENDING)[1]
    complaint = Feedback("angry@example.org", "complaint", "abuse report", "arf")
    Suppressions(welcoming.store.engine).record(complaint)
    token = sign(welcoming.secret, "confirm", person.id, "", email=person.email)
    assert welcoming.post("/confirm", {"token": token}).status == 200
    assert welcoming.handler.raw == []
    (entry,) = Ledger(welcoming.store.engine).entries(STREAM).values()
    assert entry.state == SKIPPED and "complaint" in entry.detail


def test_the_welcome_is_dkim_signed_like_a_digest(mail_project, inbox, rsa_pem):
    configure(mail_project, welcome=True)
    with_dkim(mail_project, rsa_pem)
    checked = invoke(mail_project, "check")
    records = published(checked.output)
    site = prefs_web(mail_project)
    site.handler = inbox[0]
    sign_up_and_confirm(site, "signed@example.org")
    welcome = site.handler.raw[1]
    assert subject(welcome) == "Welcome to Mountain News"
    assert welcome.startswith(b"DKIM-Signature: ")
    assert dkim.verify(welcome, dnsfunc=dns(records))
    site.store.close()


def test_an_unknown_welcome_key_is_refused_with_its_line(tmp_path):
    text = (REPO / "config" / "pipeline.yaml").read_text(encoding="utf-8")
    text = text.replace("\ndigests:", "  welcome:\n    enabled: true\n    enabeld: yes\n\ndigests:")
    path = tmp_path / "config" / "pipeline.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    line = text.splitlines().index("    enabeld: yes") + 1
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{path}:{line}:5:") and "unknown key `enabeld`" in problem
    assert "`enabled`" in problem


def test_eight_simultaneous_confirmations_in_two_processes_send_one_welcome(
    mail_project, inbox, live_app
):
    configure(mail_project, welcome=True)
    site = prefs_web(mail_project)
    site.handler = inbox[0]
    person = site.people.add_or_update("twice@example.org", language="en", status=PENDING)[1]
    token = sign(site.secret, "confirm", person.id, "", email=person.email)
    from pipeline.web.app import create_app

    here = live_app(create_app(site.settings, site.store))
    port = free_port()
    config = str(mail_project / "config" / "pipeline.yaml")
    other = subprocess.Popen(
        [sys.executable, "-c", f"from tests.prefs_site import serve; serve({config!r}, {port})"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        there = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(f"{there}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        start = threading.Barrier(8)
        answers: list[int] = []

        def press(base: str) -> None:
            start.wait()
            answers.append(requests.post(f"{base}/confirm", data={"token": token}).status_code)

        presses = [threading.Thread(target=press, args=(b,)) for b in [here, there] * 4]
        for thread in presses:
            thread.start()
        for thread in presses:
            thread.join(30)
    finally:
        other.terminate()
        other.wait(10)
    assert answers == [200] * 8
    assert [subject(r) for r in site.handler.raw] == ["Welcome to Mountain News"]
    assert b"twice@example.org" in site.handler.raw[0]
    assert site.people.get("twice@example.org").status == ACTIVE
    site.store.close()


def test_a_broken_welcome_template_is_logged_and_the_confirmation_stands(
    mail_project, inbox, caplog
):
    configure(mail_project, welcome=True)
    own = mail_project / "templates" / "welcome" / "en.txt.j2"
    own.parent.mkdir(parents=True)
    own.write_text("Subject: Hi\n\n{{ nobody }}\n", encoding="utf-8")
    site = prefs_web(mail_project)
    site.handler = inbox[0]
    token = sign_up_and_confirm(site, "early@example.org")  # confirmed: 200, active
    assert len(site.handler.raw) == 1  # the confirmation only
    assert "welcome/en.txt.j2" in caplog.text and "nobody" in caplog.text
    own.write_text("Subject: Hi\n\nMended.\n", encoding="utf-8")
    assert site.post("/confirm", {"token": token}).status == 200
    assert [subject(r) for r in site.handler.raw][1:] == ["Hi"]
    site.store.close()


def test_check_tries_the_welcome_template_of_each_language(mail_project):
    """A mistake in a welcome template shows in `pipeline check`, by file, before the
    first confirmation meets it; only while welcomes are switched on."""
    own = mail_project / "templates" / "welcome" / "zh.txt.j2"
    own.parent.mkdir(parents=True)
    own.write_text("Subject: 欢迎\n\n{{ nobody }}\n", encoding="utf-8")
    assert invoke(mail_project, "check").exit_code == 0  # switched off: not used
    configure(mail_project, welcome=True)
    result = invoke(mail_project, "check")
    assert result.exit_code == 2
    assert "welcome/zh.txt.j2" in result.stderr and "nobody" in result.stderr
    assert "welcome/en.txt.j2" not in result.stderr  # the packaged English one is fine
    own.write_text("欢迎\n\n内容\n", encoding="utf-8")
    result = invoke(mail_project, "check")
    assert result.exit_code == 2 and "welcome/zh.txt.j2:1" in result.stderr
    assert "no subject line" in result.stderr
    own.write_text("Subject: 欢迎 {{ name }}\n\n内容\n", encoding="utf-8")
    assert invoke(mail_project, "check").exit_code == 0


def test_history_lists_the_welcome_email_beside_digest_mail(welcoming, mail_project):
    from pipeline.timeline import WELCOME

    assert WELCOME == STREAM  # the timeline names the stream without importing this module
    sign_up_and_confirm(welcoming, "history@example.org", "Hist")
    shown = invoke(mail_project, "history", "--kind", "mail")
    assert shown.exit_code == 0, shown.output + shown.stderr
    line = next(line for line in shown.output.splitlines() if "history@example.org" in line)
    assert "sent" in line and "welcome" in line
    narrowed = invoke(mail_project, "history", "--kind", "mail", "--digest", "weekly-en")
    assert "history@example.org" not in narrowed.output  # not a digest's mail
