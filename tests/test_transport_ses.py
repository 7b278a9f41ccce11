"""delivery: ses — the SES v2 API as a fake on 127.0.0.1 sees it: a SigV4-signed
SendEmail whose raw data is exactly the bytes SMTP would send, and each answer mapped
onto the outcome the ledger records."""

from __future__ import annotations

import re
import socket
from email.message import EmailMessage

import pytest

from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.mailer import MailerBroken, open_transport, wire_bytes
from pipeline.settings.email import EmailSettings
from pipeline.transports.ses import SesTransport
from tests.provider_fakes import (
    ACCOUNT_PATH,
    DROP,
    SEND_PATH,
    Answer,
    ses_error,
    ses_raw,
    ses_recipient,
    sigv4_valid,
)
from tests.provider_fakes import ses_api as ses_api  # the fixture

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
LONG_LINK = "https://news.example.org/unsubscribe?token=" + "T" * 150


def email_settings(url: str, **ses: object) -> EmailSettings:
    return EmailSettings.model_validate(
        {
            "from": "Mountain News <news@news.example.org>",
            "delivery": "ses",
            "rate": ses.pop("rate", 0),
            "ses": {
                "region": "eu-west-1",
                "access_key_id": KEY_ID,
                "secret_access_key": SECRET,
                "endpoint_url": url,
                "timeout": 5,
                **ses,
            },
            "unsubscribe": {"url": "https://news.example.org/unsubscribe"},
        }
    )


def message(to: str = "Anna Berg <anna@example.org>") -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Mountain News <news@news.example.org>"
    m["To"] = to
    m["Subject"] = "山地新闻 — this week"
    m["Message-ID"] = "<e1.anna@news.example.org>"
    m["List-Unsubscribe"] = f"<{LONG_LINK}>"
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    m.set_content("Glaciers lose mass for a fifth year.\n")
    return m


def transport(url: str, **kw) -> SesTransport:
    opened = open_transport(email_settings(url, **kw.pop("ses", {})), **kw)
    assert isinstance(opened, SesTransport)  # found through its entry point
    return opened


def sends(fake) -> list:
    return [s for s in fake.seen if s.path == SEND_PATH]


def test_sendemail_carries_the_wire_bytes_signed_for_the_key_and_region(ses_api):
    fake, _ = ses_api
    ses = transport(fake.url, ses={"configuration_set": "newsroom"})
    ses.send(message())
    ses.close()
    account, send = fake.seen
    assert (account.method, account.path) == ("GET", ACCOUNT_PATH)
    assert (send.method, send.path) == ("POST", SEND_PATH)
    auth = send.headers["authorization"]
    assert re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={KEY_ID}/\d{{8}}/eu-west-1/ses/aws4_request, "
        r"SignedHeaders=[a-z0-9;-]*host;[a-z0-9;-]*x-amz-date[a-z0-9;-]*, Signature=[0-9a-f]{64}",
        auth,
    ), auth
    assert sigv4_valid(send, fake.url, KEY_ID, SECRET, "eu-west-1")
    assert not sigv4_valid(send, fake.url, KEY_ID, SECRET, "us-east-1")
    assert not sigv4_valid(send, fake.url, KEY_ID, SECRET[:-1], "eu-west-1")
    assert ses_raw(send) == wire_bytes(message())
    assert f"List-Unsubscribe: <{LONG_LINK}>\r\n".encode() in ses_raw(send)
    assert send.json()["Destination"] == {"ToAddresses": ["anna@example.org"]}
    assert send.json()["ConfigurationSetName"] == "newsroom"
    assert ses.last_id == "ses-1"


def test_a_signer_given_to_the_transport_signs_what_goes_out(ses_api):
    fake, _ = ses_api
    ses = transport(fake.url, sign=lambda data: b"DKIM-Signature: v=1; test\r\n" + data)
    ses.send(message())
    assert ses_raw(sends(fake)[0]) == b"DKIM-Signature: v=1; test\r\n" + wire_bytes(message())


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (
            ses_error(400, "MessageRejected", "Email address is not verified."),
            PermanentFailure,
            "400 MessageRejected: Email address is not verified. for anna@example.org",
        ),
        (ses_error(400, "BadRequestException", "Illegal header"), PermanentFailure, "Illegal"),
        (
            ses_error(
                429,
                "TooManyRequestsException",
                "Maximum sending rate exceeded.",
                **{"Retry-After": "7"},
            ),
            TemporaryFailure,
            "Maximum sending rate",
        ),
        (ses_error(400, "LimitExceededException", "Daily quota"), TemporaryFailure, "quota"),
        (ses_error(500, "InternalFailure", "oops"), TemporaryFailure, "500 InternalFailure"),
        (ses_error(503, "ServiceUnavailable", "later"), TemporaryFailure, "503"),
        (
            ses_error(403, "UnrecognizedClientException", "The security token is invalid"),
            MailerBroken,
            "ses:SendEmail",
        ),
        (ses_error(403, "AccessDeniedException", "not authorized"), MailerBroken, "IAM"),
        (ses_error(400, "AccountSuspendedException", "suspended"), MailerBroken, "suspended"),
        (ses_error(400, "SendingPausedException", "paused"), MailerBroken, "paused"),
        (ses_error(400, "MailFromDomainNotVerifiedException", "x"), MailerBroken, "MAIL FROM"),
        (
            ses_error(
                400,
                "MessageRejected",
                "Email address is not verified. The following "
                "identities failed the check in region EU-WEST-1: news@news.example.org",
            ),
            MailerBroken,
            "verify the sender's address or domain",
        ),
        (
            ses_error(
                400,
                "MessageRejected",
                "Email address is not verified. The following "
                "identities failed the check in region EU-WEST-1: anna@example.org",
            ),
            PermanentFailure,
            "failed the check in region EU-WEST-1: anna@example.org",
        ),
    ],
)
def test_each_answer_is_the_outcome_smtp_would_give(ses_api, answer, kind, words):
    fake, script = ses_api
    script.refuse["anna@example.org"] = [answer]
    with pytest.raises(kind) as raised:
        transport(fake.url).send(message())
    assert words in str(raised.value)
    assert len(sends(fake)) == 1  # boto3 retried nothing by itself
    if kind is TemporaryFailure:
        assert not raised.value.unknown_outcome
        assert raised.value.retry_after == (7.0 if answer.status == 429 else None)
    if kind is not MailerBroken:
        assert raised.value.status == answer.status


def test_a_connection_dropped_after_the_request_is_an_unknown_outcome_never_resent(ses_api):
    fake, script = ses_api
    script.refuse["anna@example.org"] = [DROP]
    ses = transport(fake.url)
    with pytest.raises(TemporaryFailure) as raised:
        ses.send(message())
    assert raised.value.unknown_outcome and "may have been sent" in raised.value.reason
    assert len(sends(fake)) == 1
    ses.send(message("Pema <pema@example.org>"))  # the transport goes on afterwards
    assert [ses_recipient(s) for s in sends(fake)] == ["anna@example.org", "pema@example.org"]


def test_no_connection_is_a_temporary_failure_that_certainly_did_not_send():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens there once closed
    with pytest.raises(TemporaryFailure) as raised:
        transport(f"http://127.0.0.1:{port}").send(message())
    assert not raised.value.unknown_outcome and "cannot connect" in raised.value.reason


def test_the_accounts_max_send_rate_caps_the_pace(ses_api):
    fake, script = ses_api
    script.account["SendQuota"]["MaxSendRate"] = 2.0
    waits: list[float] = []
    ses = transport(fake.url, sleep=waits.append, clock=lambda: 100.0)
    for _ in range(3):
        ses.send(message())
    assert waits == [0.5, 1.0]  # two a second, though email.rate is 0 (no limit)
    waits.clear()
    slower = transport(fake.url, ses={"rate": 1}, sleep=waits.append, clock=lambda: 100.0)
    for _ in range(3):
        slower.send(message())
    assert waits == [1.0, 2.0]  # email.rate is lower: it holds
    assert [s.path for s in fake.seen].count(ACCOUNT_PATH) == 2  # once per transport


@pytest.mark.parametrize(
    ("account", "words"),
    [
        ({"SendingEnabled": False}, "sending is disabled"),
        ({"SendingEnabled": True, "EnforcementStatus": "SHUTDOWN"}, "shut down"),
    ],
)
def test_an_account_that_cannot_send_breaks_the_mailer_before_any_message(ses_api, account, words):
    fake, script = ses_api
    script.account = account
    with pytest.raises(MailerBroken, match=words):
        transport(fake.url).send(message())
    assert sends(fake) == []


def test_without_permission_to_read_the_account_email_rate_alone_holds(ses_api):
    fake, script = ses_api
    script.account = None  # answered below
    real = fake.answer

    def no_get_account(seen):
        if seen.path == ACCOUNT_PATH:
            return ses_error(403, "AccessDeniedException", "not authorized: ses:GetAccount")
        return real(seen)

    fake.answer = no_get_account
    waits: list[float] = []
    ses = transport(fake.url, ses={"rate": 4}, sleep=waits.append, clock=lambda: 0.0)
    ses.send(message())
    ses.send(message())
    assert waits == [0.25] and len(sends(fake)) == 2


def test_no_credentials_anywhere_breaks_the_mailer(ses_api, monkeypatch, tmp_path):
    fake, _ = ses_api
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = email_settings(fake.url)
    bare = settings.ses.model_copy(update={"access_key_id": None, "secret_access_key": None})
    with pytest.raises(MailerBroken, match="no AWS credentials"):
        SesTransport(bare).send(message())
    assert fake.seen == []


def test_credentials_from_the_environment_sign_the_request(ses_api, monkeypatch):
    fake, _ = ses_api
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    settings = email_settings(fake.url)
    bare = settings.ses.model_copy(update={"access_key_id": None, "secret_access_key": None})
    SesTransport(bare).send(message())
    assert "Credential=AKIDFROMENV/" in sends(fake)[0].headers["authorization"]


def test_the_secret_key_never_appears_in_a_failure(ses_api):
    fake, script = ses_api
    script.refuse["anna@example.org"] = [ses_error(400, "MessageRejected", "bad")]
    with pytest.raises(PermanentFailure) as raised:
        transport(fake.url).send(message())
    assert "wJalrXUtnFEMI" not in repr(raised.value) and "wJalrXUtnFEMI" not in str(
        raised.value.response
    )


def test_an_answer_without_a_message_id_still_counts_as_sent(ses_api):
    fake, _ = ses_api
    fake.answer = lambda seen: Answer(200, {})
    ses = transport(fake.url)
    ses.send(message())
    assert ses.last_id is None
