"""A digest sent end to end through each provider's API (a fake on 127.0.0.1), with the
ledger's guarantees per message as with SMTP: each recipient once; a 500 retried and
delivered once; a 400 failing only its recipient; a dropped connection leaving that one
uncertain and never resent. On SQLite and PostgreSQL (``project`` takes ``state_url``)."""

from __future__ import annotations

import base64
import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from pipeline.mailer import wire_bytes
from tests.conftest import PEOPLE, invoke
from tests.provider_fakes import (
    DROP,
    SEND_PATH,
    Answer,
    FakeApi,
    MailgunScript,
    Seen,
    SesScript,
    mailgun_recipient,
    ses_error,
    ses_raw,
    ses_recipient,
    sigv4_valid,
)
from tests.rawmail import split
from tests.test_digest import Clock, digests_of

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
WEEKLY = ["anna@example.org", "pema@example.org", "sonam@example.org"]


@dataclass
class Provider:
    name: str
    script: Callable[[], SesScript | MailgunScript]
    section: Callable[[str], str]
    recipient: Callable[[Seen], str]
    raw: Callable[[Seen], bytes]
    server_error: Answer
    refused: Answer
    refusal_words: str

    def sends(self, fake: FakeApi) -> list[Seen]:
        return [s for s in fake.seen if s.method == "POST"]


SES = Provider(
    "ses",
    SesScript,
    lambda url: (
        "  delivery: ses\n  ses:\n    region: eu-west-1\n    access_key_id: AKIDEXAMPLE\n"
        f"    secret_access_key: ${{TEST_AWS_SECRET}}\n    endpoint_url: {url}\n"
    ),
    ses_recipient,
    ses_raw,
    ses_error(500, "InternalFailure", "An internal error occurred"),
    ses_error(400, "MessageRejected", "Email address is not verified."),
    "400 MessageRejected: Email address is not verified.",
)
MAILGUN = Provider(
    "mailgun",
    MailgunScript,
    lambda url: (
        "  delivery: mailgun\n  mailgun:\n    domain: mg.example.org\n"
        f"    api_key: ${{TEST_MAILGUN_KEY}}\n    base_url: {url}\n"
    ),
    mailgun_recipient,
    lambda seen: seen.form()["message"],
    Answer(500, "Internal Server Error"),
    Answer(400, {"message": "'to' parameter is not a valid address. please check documentation"}),
    "400: 'to' parameter is not a valid address",
)


@pytest.fixture(params=[SES, MAILGUN], ids=["ses", "mailgun"])
def sent_through(request, project, monkeypatch):
    """(provider, its fake API, the script of its answers, the project mailing through it)."""
    provider: Provider = request.param
    monkeypatch.setenv("TEST_AWS_SECRET", AWS_SECRET)
    monkeypatch.setenv("TEST_MAILGUN_KEY", MAILGUN_KEY)
    script = provider.script()
    with FakeApi(script) as fake:
        root = project()
        config = root / "config" / "pipeline.yaml"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("  delivery: outbox ", provider.section(fake.url) + "  # "))
        (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
        assert invoke(root, "ingest").exit_code == 0
        assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
        yield provider, fake, script, root


def test_each_subscriber_gets_the_edition_once_as_smtp_would_send_it(sent_through):
    provider, fake, _, root = sent_through
    result = invoke(root, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    assert "3 sent" in result.output
    sends = provider.sends(fake)
    assert sorted(provider.recipient(s) for s in sends) == WEEKLY
    for seen in sends:
        if provider.name == "ses":
            assert sigv4_valid(seen, fake.url, "AKIDEXAMPLE", AWS_SECRET, "eu-west-1")
        else:
            assert (
                seen.headers["authorization"]
                == "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
            )
        raw = provider.raw(seen)
        message = split(raw)  # the bytes as the provider will relay them
        assert message.fields["list-unsubscribe-post"] == [
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
        ]
        assert b"List-Unsubscribe: <https://news.example.org/unsubscribe?token=" in raw
        assert message.fields["subject"] == [b"Subject: This week at Mountain News"]
        assert provider.recipient(seen).encode() in b"".join(message.fields["to"])
        assert "Snow Update 2026" in message.parts["text/plain"]
    again = invoke(root, "digest", "send", "weekly-en")
    assert "edition skipped" in again.output
    assert len(provider.sends(fake)) == 3  # nothing sent twice


def test_the_bytes_sent_are_the_wire_bytes_of_each_message(sent_through):
    """What the provider got is byte for byte what SMTP would have sent."""
    provider, fake, _, root = sent_through
    clock, sleeps = Clock(), []
    digests, store = digests_of(root, clock, sleeps)
    handed: list[EmailMessage] = []
    opened = digests.transport

    class Watched:
        def __init__(self) -> None:
            self.inner = opened()

        def send(self, message: EmailMessage) -> None:
            handed.append(message)
            self.inner.send(message)

        def close(self) -> None:
            self.inner.close()

    digests.transport = Watched
    digests.send("weekly-en")
    assert [provider.raw(s) for s in provider.sends(fake)] == [wire_bytes(m) for m in handed]
    assert len(handed) == 3
    store.close()


def test_a_server_error_is_retried_in_the_same_send_and_delivered_once(sent_through):
    provider, fake, script, root = sent_through
    script.refuse["anna@example.org"] = [provider.server_error]
    clock, sleeps = Clock(), []
    digests, store = digests_of(root, clock, sleeps)
    report = digests.send("weekly-en")
    assert sorted(report.sent) == WEEKLY and not report.pending and report.ok
    assert len(sleeps) == 1  # the one pause of the send before its retry round
    tries = Counter(provider.recipient(s) for s in provider.sends(fake))
    assert tries == {"anna@example.org": 2, "pema@example.org": 1, "sonam@example.org": 1}
    assert digests.load(report.edition.id).status == "sent"
    store.close()


def test_a_refusal_fails_only_that_recipient_with_the_providers_words(sent_through):
    provider, fake, script, root = sent_through
    script.refuse["anna@example.org"] = [provider.refused]
    clock, sleeps = Clock(), []
    digests, store = digests_of(root, clock, sleeps)
    report = digests.send("weekly-en")
    assert sorted(report.sent) == ["pema@example.org", "sonam@example.org"]
    ((who, why),) = report.failed
    assert who == "anna@example.org" and provider.refusal_words in why
    assert sleeps == []  # nothing to retry
    anna = digests.subscribers.get("anna@example.org")
    row = digests.ledger.entries(f"mail:{report.edition.id}")[str(anna.id)]
    assert row.state == "failed" and provider.refusal_words in row.detail
    clock.now += dt.timedelta(days=1)
    digests.send("weekly-en")
    assert Counter(provider.recipient(s) for s in provider.sends(fake))["anna@example.org"] == 1
    store.close()


def test_a_drop_after_the_request_leaves_that_one_uncertain_and_never_resent(sent_through):
    provider, fake, script, root = sent_through
    script.refuse["pema@example.org"] = [DROP]
    clock, sleeps = Clock(), []
    digests, store = digests_of(root, clock, sleeps)
    report = digests.send("weekly-en")
    assert sorted(report.sent) == ["anna@example.org", "sonam@example.org"]
    ((who, why),) = report.uncertain
    assert who == "pema@example.org" and why
    pema = digests.subscribers.get("pema@example.org")
    row = digests.ledger.entries(f"mail:{report.edition.id}")[str(pema.id)]
    assert row.state == "uncertain"
    for _ in range(2):  # later sends, days later: still never resent
        clock.now += dt.timedelta(days=2)
        digests.send("weekly-en")
    assert Counter(provider.recipient(s) for s in provider.sends(fake)) == {
        "anna@example.org": 1,
        "pema@example.org": 1,
        "sonam@example.org": 1,
    }
    store.close()
    listed = invoke(root, "deliveries", "uncertain", "--digest", "weekly-en")
    where = {"ses": "Amazon SES's sending events", "mailgun": "Mailgun's logs"}[provider.name]
    assert "pema@example.org" in listed.output and where in listed.output, listed.output


def test_only_the_send_endpoint_is_used_by_mailgun_and_ses_reads_its_account_once(sent_through):
    provider, fake, _, root = sent_through
    assert invoke(root, "digest", "send", "weekly-en").exit_code == 0
    others = [(s.method, s.path) for s in fake.seen if s.method != "POST"]
    if provider.name == "ses":
        assert others == [("GET", "/v2/email/account")]
        assert {s.path for s in provider.sends(fake)} == {SEND_PATH}
    else:
        assert others == []


def test_a_digest_through_each_provider_carries_a_dkim_signature_that_verifies(sent_through):
    """The provider relays the bytes it was given: the signature made over them verifies
    with the key of the TXT record `pipeline check` prints, List-Unsubscribe signed."""
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.test_dkim import dns, published, signed_headers, with_dkim

    provider, fake, _, root = sent_through
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with_dkim(root, pem)
    checked = invoke(root, "check")
    assert checked.exit_code == 0, checked.output
    records = published(checked.output)
    result = invoke(root, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    sends = provider.sends(fake)
    assert len(sends) == len(WEEKLY)
    for seen in sends:
        raw = provider.raw(seen)
        assert dkim.verify(raw, dnsfunc=dns(records)), raw[:600]
        assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed_headers(raw))
        tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"X: y", 1)
        assert not dkim.verify(tampered, dnsfunc=dns(records))
