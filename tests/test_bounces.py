"""Bounces and complaints end to end, on SQLite and PostgreSQL: a digest sent through SMTP
carries a VERP envelope sender; a real DSN for that message, delivered over SMTP to the
listener or imported from an mbox or a Maildir, marks the subscriber bounced and the
next edition skips them; an ARF complaint suppresses the address; an auto-reply changes
nothing; a forged token is not trusted; a suppressed address is refused at the last step."""

from __future__ import annotations

import datetime as dt
import logging
import mailbox
import re
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.bounce_inbox import open_returned_mail
from pipeline.bounce_listener import bounce_listener
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscribers import ACTIVE, BOUNCED, UNSUBSCRIBED, SubscriberStore
from pipeline.suppression import Suppressions
from tests.conftest import PEOPLE, free_port, invoke, write_article
from tests.smtp_sink import SinkServer

FIXTURES = Path(__file__).parent / "fixtures" / "returned_mail"
PLACEHOLDER = "bounces+2-0123abcd-aaaaaaaaaaaaaaaa@news.example.org"
DOMAIN = "bounces.news.example.org"
NOW = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)  # the listener's clock
VERP = re.compile(rf"^bounces\+[0-9]+-[0-9a-f]{{8}}-[a-z2-7]{{16}}@{re.escape(DOMAIN)}$")


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer(keep=True) as server:
        yield server


@pytest.fixture
def root(project, sink) -> Path:
    """The example project sending through the sink, with returned mail to DOMAIN."""
    root = project()
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {sink.port}\n"
    smtp += "    security: none\n  # "
    bounces = f"  bounces:\n    domain: {DOMAIN}\n    listen: 127.0.0.1:{free_port()}\n"
    text = config.read_text(encoding="utf-8").replace("  delivery: outbox ", smtp)
    text = text.replace("  unsubscribe:\n", bounces + "  unsubscribe:\n", 1)
    config.write_text(text, encoding="utf-8")
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    return root


class Listener:
    """The listener `serve` runs, on the project's store and `email.bounces.listen`."""

    def __init__(self, root: Path):
        self.settings = load_settings(root / "config" / "pipeline.yaml")
        self.store = Store(self.settings.state, self.settings.site.url)
        inbox = open_returned_mail(self.settings, self.store, lambda: NOW)
        bounces = self.settings.email.bounces
        self.host, _, port = bounces.listen.rpartition(":")
        self.port = int(port)
        log = logging.getLogger("test.bounces")
        self.controller = bounce_listener(bounces.listen, inbox, DOMAIN, bounces.max_size, log)

    def deliver(self, rcpt: str, data: bytes) -> None:
        with smtplib.SMTP(self.host, self.port) as smtp:
            smtp.sendmail("", [rcpt], data)

    def close(self) -> None:
        self.controller.stop()
        self.store.close()


@pytest.fixture
def listener(root) -> Iterator[Listener]:
    started = Listener(root)
    yield started
    started.close()


def send(root: Path, sink: SinkServer) -> dict[str, str]:
    """Send the next weekly-en edition; recipient → the MAIL FROM the sink saw."""
    before = len(sink.sink.received)
    result = invoke(root, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    got = sink.sink.received[before:]
    return {rcpt: sink.sink.mail_from[before + i] for i, (rcpt, _) in enumerate(got)}


def next_edition(root: Path, sink: SinkServer) -> list[str]:
    """A new article, then the next edition: who received it."""
    front = "title: Late snow in the Khumbu\ndate: 2026-11-20T08:00:00+05:45\nauthor: Desk"
    write_article(root / "examples" / "site" / "news", "2026-11-20-late-snow.md", front)
    assert invoke(root, "ingest").exit_code == 0
    return sorted(send(root, sink))


def status(root: Path, address: str) -> tuple[str, str | None]:
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        found = SubscriberStore(store.engine).get(address)
        assert found is not None
        return found.status, found.status_detail
    finally:
        store.close()


def dsn(name: str, verp: str, **replace: str) -> bytes:
    text = (FIXTURES / name).read_text(encoding="utf-8").replace(PLACEHOLDER, verp)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.replace("\n", "\r\n").encode()


def test_each_message_has_its_own_verp_sender_and_the_from_header_is_unchanged(root, sink):
    senders = send(root, sink)
    assert sorted(senders) == ["anna@example.org", "pema@example.org", "sonam@example.org"]
    assert all(VERP.match(s) for s in senders.values()), senders
    assert len(set(senders.values())) == 3
    for raw in sink.sink.raw:
        head = raw.partition(b"\r\n\r\n")[0]
        assert b"\r\nFrom: Mountain News <news@news.example.org>\r\n" in b"\r\n" + head + b"\r\n"
        assert b"Return-Path" not in head and b"bounces+" not in raw


def test_without_a_bounces_section_the_envelope_sender_is_the_from_address(project, sink):
    root = project()
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {sink.port}\n"
    text = config.read_text(encoding="utf-8").replace(
        "  delivery: outbox ", smtp + "    security: none\n  # "
    )
    config.write_text(text, encoding="utf-8")
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    assert set(send(root, sink).values()) == {"news@news.example.org"}


def test_a_dsn_delivered_to_the_listener_bounces_the_recipient_and_the_next_edition_skips_them(
    root, sink, listener
):
    senders = send(root, sink)
    anna = senders["anna@example.org"]
    # The remote server's report names an address the list never had: the VERP
    # envelope it was sent to is what identifies Anna.
    report = dsn("postfix_bounce.eml", anna, **{"anna@example.org": "a.berg@mailhost.internal"})
    listener.deliver(anna, report)
    state, detail = status(root, "anna@example.org")
    assert state == BOUNCED and "5.1.1" in detail and "User unknown" in detail
    assert status(root, "pema@example.org")[0] == ACTIVE
    assert next_edition(root, sink) == ["pema@example.org", "sonam@example.org"]
    shown = invoke(root, "bounces", "show", "anna@example.org").output
    assert "subscriber: anna@example.org, bounced" in shown
    assert "suppressed: bounced" in shown and "(dsn: 5.1.1" in shown
    listed = invoke(root, "bounces", "list").output
    assert listed.startswith("anna@example.org\tbounce\t")


def test_the_listener_takes_mail_only_for_the_bounce_domains_bounces_addresses(root, listener):
    for refused in ("editor@" + DOMAIN, "bounces+1@news.example.org", "someone@example.org"):
        with smtplib.SMTP(listener.host, listener.port) as smtp:
            smtp.ehlo()
            code, reply = smtp.docmd("MAIL", "FROM:<>")
            assert code == 250
            code, reply = smtp.docmd("RCPT", f"TO:<{refused}>")
            assert code == 550 and b"returned mail only" in reply, refused
    too_big = b"Subject: x\r\n\r\n" + b"x" * 1_100_000
    with pytest.raises(smtplib.SMTPException) as refused_size:
        listener.deliver("bounces@" + DOMAIN, too_big)
    assert "552" in str(refused_size.value) or "size" in str(refused_size.value).lower()


@pytest.mark.parametrize("form", ["mbox", "maildir"])
def test_a_dsn_imported_from_an_mbox_or_maildir_bounces_the_recipient(root, sink, tmp_path, form):
    senders = send(root, sink)
    messages = [
        dsn("exim_bounce.eml", senders["sonam@example.org"], **{"anna@example.org": "s@x.example"}),
        dsn("out_of_office.eml", senders["pema@example.org"]),
        dsn("not_a_report.eml", senders["pema@example.org"]),
    ]
    path = tmp_path / f"returned.{form}"
    box = mailbox.mbox(path) if form == "mbox" else mailbox.Maildir(path)
    for data in messages:
        box.add(data)
    box.close()
    result = invoke(root, "bounces", "import", str(path))
    assert result.exit_code == 0, result.output + result.stderr
    assert "1 bounce, 1 ignored, 1 unrecognised" in result.output
    assert "sonam@example.org: bounce" in result.output
    assert (
        "not a report:" in result.stderr and "not a delivery or complaint report" in result.stderr
    )
    assert status(root, "sonam@example.org")[0] == BOUNCED
    assert status(root, "pema@example.org")[0] == ACTIVE
    assert next_edition(root, sink) == ["anna@example.org", "pema@example.org"]


def test_an_unreadable_import_names_the_file(root, tmp_path):
    folder = tmp_path / "not-a-maildir"
    folder.mkdir()
    result = invoke(root, "bounces", "import", str(folder))
    assert result.exit_code == 1 and "is a folder but not a Maildir" in result.stderr
    maildir = tmp_path / "Maildir"
    mailbox.Maildir(maildir).close()
    (maildir / "new" / "big.host").write_bytes(b"x" * 10_000_001)
    result = invoke(root, "bounces", "import", str(maildir))
    assert result.exit_code == 1
    assert "unreadable:" in result.stderr and "new/big.host: 10,000,001 bytes" in result.stderr


def test_an_arf_complaint_suppresses_the_address_for_good(root, sink, listener):
    senders = send(root, sink)
    report = dsn("arf_complaint.eml", "unused", **{"Original-Rcpt-To: <anna@example.org>": ""})
    report = report.replace(PLACEHOLDER.encode(), senders["anna@example.org"].encode())
    listener.deliver("bounces@" + DOMAIN, report)
    state, detail = status(root, "anna@example.org")
    assert state == UNSUBSCRIBED and "complaint" in detail
    # an old list imported again does not bring her back, nor does removing her first
    again = invoke(root, "subscribers", "import", str(root / "people.csv"))
    assert "kept suppressed: anna@example.org" in again.output
    assert invoke(root, "subscribers", "remove", "anna@example.org").exit_code == 0
    again = invoke(root, "subscribers", "import", str(root / "people.csv"))
    assert "kept suppressed: anna@example.org" in again.output
    assert status(root, "anna@example.org")[0] == UNSUBSCRIBED
    assert next_edition(root, sink) == ["pema@example.org", "sonam@example.org"]


def test_an_auto_reply_changes_nothing(root, sink, listener):
    senders = send(root, sink)
    listener.deliver(
        senders["anna@example.org"], dsn("out_of_office.eml", senders["anna@example.org"])
    )
    assert status(root, "anna@example.org") == (ACTIVE, None)
    assert Suppressions(listener.store.engine).history("anna@example.org") == []
    assert "anna@example.org" in next_edition(root, sink)


def test_a_forged_verp_token_is_not_trusted(root, sink, listener):
    senders = send(root, sink)
    pema = senders["pema@example.org"]
    forged = pema[: pema.index("@") - 16] + "a" * 16 + pema[pema.index("@") :]
    # Addressed to a token naming Pema but not signed by us: the report's own words
    # (it is about Sonam) are all that is believed.
    report = dsn("postfix_bounce.eml", forged, **{"anna@example.org": "sonam@example.org"})
    listener.deliver(forged, report)
    assert status(root, "pema@example.org")[0] == ACTIVE
    assert status(root, "sonam@example.org")[0] == BOUNCED


def test_an_address_suppressed_during_a_send_is_refused_at_the_last_step(root, sink):
    """The audience is read before the first message; a bounce that arrives meanwhile
    stops the message at the last step before the transport, failed with the reason."""
    from pipeline.assembly import Assembly
    from pipeline.feedback import Feedback
    from pipeline.mailer import open_transport

    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    handed: list[str] = []

    class Recording:
        def __init__(self) -> None:
            self.inner = open_transport(settings.email)

        def send(self, message) -> None:
            handed.append(str(message["To"]))
            if len(handed) == 1:  # a report about Sonam arrives while Anna's goes out
                Suppressions(store.engine).record(
                    Feedback("sonam@example.org", "bounce", "5.1.1 gone", "dsn")
                )
            self.inner.send(message)

        def close(self) -> None:
            self.inner.close()

    try:
        digests = Assembly(settings, store).digests(transport=Recording)
        report = digests.send("weekly-en")
    finally:
        store.close()
    assert not any("sonam" in to for to in handed)
    assert sorted(report.sent) == ["anna@example.org", "pema@example.org"]
    ((who, why),) = report.failed
    assert who == "sonam@example.org" and why.startswith("not sent: suppressed: bounced")
    history = invoke(root, "history", "--kind", "mail").output
    assert "not sent: suppressed: bounced" in history


def test_serve_runs_the_listener_beside_the_web_endpoints(root):
    settings = load_settings(root / "config" / "pipeline.yaml")
    host, _, port = settings.email.bounces.listen.rpartition(":")
    web = free_port()
    config = str(root / "config" / "pipeline.yaml")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "--config",
            config,
            "serve",
            "--web-only",
            "--listen",
            f"127.0.0.1:{web}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):  # waiting for a process to start, not for time to pass
            try:
                with smtplib.SMTP(host, int(port), timeout=5) as smtp:
                    smtp.ehlo()
                    code, _ = smtp.docmd("MAIL", "FROM:<>")
                    assert code == 250
                    code, _ = smtp.docmd("RCPT", f"TO:<nobody@{DOMAIN}>")
                    assert code == 550
                    break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            pytest.fail("serve never listened for returned mail")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert b"listening for returned mail" in err


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("listen: 2525", "write host:port, e.g. 127.0.0.1:2525"),
        ("domain: not a domain", "is not a mail domain"),
        ("soft_limit: 0", "greater than or equal to 1"),
        ("sof_limit: 3", "sof_limit"),
    ],
)
def test_a_bad_bounces_setting_is_located(project, setting, said):
    root = project()
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("  unsubscribe:\n", f"  bounces:\n    {setting}\n  unsubscribe:\n", 1)
    config.write_text(text, encoding="utf-8")
    line = text.splitlines().index(f"    {setting}") + 1
    result = invoke(root, "check")
    assert result.exit_code == 2
    assert f"pipeline.yaml:{line}:" in result.stderr and said in result.stderr, result.stderr
