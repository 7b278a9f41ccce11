"""delivery: mailgun — Mailgun's messages.mime as a fake on 127.0.0.1 sees it: basic auth
``api:KEY``, the recipient in ``to`` and, as the ``message`` part, exactly the bytes
SMTP would send; each answer mapped onto the outcome the ledger records."""

from __future__ import annotations

import base64

import pytest

from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.mailer import MailerBroken, open_transport, wire_bytes
from pipeline.settings.email import EmailSettings
from pipeline.transports.mailgun import MailgunTransport
from tests.provider_fakes import (
    DROP,
    Answer,
)
from tests.provider_fakes import mailgun_api as mailgun_api  # the fixture
from tests.test_transport_ses import LONG_LINK, message

API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def email_settings(url: str, **mailgun: object) -> EmailSettings:
    return EmailSettings.model_validate(
        {
            "from": "Mountain News <news@news.example.org>",
            "delivery": "mailgun",
            "mailgun": {"domain": "mg.example.org", "api_key": API_KEY, "base_url": url, **mailgun},
            "unsubscribe": {"url": "https://news.example.org/unsubscribe"},
        }
    )


def transport(url: str, **kw) -> MailgunTransport:
    opened = open_transport(email_settings(url), **kw)
    assert isinstance(opened, MailgunTransport)  # found through its entry point
    return opened


def test_messages_mime_carries_the_wire_bytes_with_basic_auth(mailgun_api):
    fake, _ = mailgun_api
    mailgun = transport(fake.url)
    mailgun.send(message())
    mailgun.close()
    (seen,) = fake.seen
    assert (seen.method, seen.path) == ("POST", "/v3/mg.example.org/messages.mime")
    expected = base64.b64encode(f"api:{API_KEY}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected}"
    form = seen.form()
    assert form["to"] == b"anna@example.org"
    assert form["message"] == wire_bytes(message())
    assert f"List-Unsubscribe: <{LONG_LINK}>\r\n".encode() in form["message"]
    assert mailgun.last_id == "<1@mg.example.org>"


def test_a_signer_given_to_the_transport_signs_what_goes_out(mailgun_api):
    fake, _ = mailgun_api
    transport(fake.url, sign=lambda data: b"DKIM-Signature: v=1; t\r\n" + data).send(message())
    assert fake.seen[0].form()["message"] == b"DKIM-Signature: v=1; t\r\n" + wire_bytes(message())


def test_the_eu_region_and_default_addresses():
    eu = email_settings("https://x.example").mailgun.model_copy(update={"base_url": None})
    assert MailgunTransport(eu).url == "https://api.mailgun.net/v3/mg.example.org/messages.mime"
    eu = eu.model_copy(update={"region": "eu"})
    assert MailgunTransport(eu).url.startswith("https://api.eu.mailgun.net/v3/mg.example.org/")


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (
            Answer(400, {"message": "to parameter is not a valid address"}),
            PermanentFailure,
            "Mailgun answered 400: to parameter is not a valid address",
        ),
        (
            Answer(
                403,
                {
                    "message": "Domain mg.example.org is not allowed to send: Free accounts "
                    "are for test purposes only"
                },
            ),
            PermanentFailure,
            "not allowed to send",
        ),
        (
            Answer(429, {"message": "Too many requests"}, {"Retry-After": "12"}),
            TemporaryFailure,
            "429",
        ),
        (Answer(500, "Internal Server Error"), TemporaryFailure, "500"),
        (Answer(502, "Bad Gateway"), TemporaryFailure, "502"),
        (Answer(401, "Forbidden"), MailerBroken, "the API key was refused"),
        (Answer(402, {"message": "Payment required"}), MailerBroken, "payment"),
        (Answer(404, {"message": "Domain not found: mg.example.org"}), MailerBroken, "no such"),
        (Answer(403, {"message": "Domain mg.example.org is disabled"}), MailerBroken, "disabled"),
        (Answer(403, {"message": "Sending paused for this account"}), MailerBroken, "paused"),
    ],
)
def test_each_answer_is_the_outcome_smtp_would_give(mailgun_api, answer, kind, words):
    fake, script = mailgun_api
    script.refuse["anna@example.org"] = [answer]
    with pytest.raises(kind) as raised:
        transport(fake.url).send(message())
    assert words in str(raised.value)
    assert API_KEY not in str(raised.value)
    assert len(fake.seen) == 1
    if kind is TemporaryFailure:
        assert not raised.value.unknown_outcome
        assert raised.value.retry_after == (12.0 if answer.status == 429 else None)


def test_a_connection_dropped_after_the_request_is_an_unknown_outcome(mailgun_api):
    fake, script = mailgun_api
    script.refuse["anna@example.org"] = [DROP]
    mailgun = transport(fake.url)
    with pytest.raises(TemporaryFailure) as raised:
        mailgun.send(message())
    assert raised.value.unknown_outcome
    mailgun.send(message("Pema <pema@example.org>"))
    assert [s.form()["to"] for s in fake.seen] == [b"anna@example.org", b"pema@example.org"]


def test_the_rate_holds(mailgun_api):
    fake, _ = mailgun_api
    waits: list[float] = []
    settings = email_settings(fake.url).model_copy(update={"rate": 5.0})
    mailgun = open_transport(settings, sleep=waits.append, clock=lambda: 0.0)
    for _ in range(3):
        mailgun.send(message())
    assert waits == pytest.approx([0.2, 0.4]) and len(fake.seen) == 3
