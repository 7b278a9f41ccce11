"""POST /hooks/ses and /hooks/mailgun: signed notifications reach the recorder as
``Feedback``; forged, stale, replayed or malformed ones are refused (403 or 400) and
nothing is recorded. In-process (``call``), on both databases (the app has a store)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field

import pytest

from pipeline.feedback import Feedback
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.web.app import MAX_NOTIFICATION, create_app
from tests.sns_signing import (
    CERT_URL,
    SUBSCRIBE_URL,
    TOPIC,
    Sns,
    bounce,
    certificate,
    complaint,
)
from tests.test_web_limits import Answer, Outbox, call

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
SIGNING_KEY = "whsec-0123456789abcdef"
HOOKS = (
    "  ses:\n    region: eu-west-1\n"
    f'    notification_topics: ["{TOPIC}"]\n'
    "  mailgun:\n    domain: mg.example.org\n    api_key: ${TEST_MAILGUN_KEY}\n"
    "    webhook_signing_key: ${TEST_MAILGUN_SIGNING}\n"
)


@dataclass
class Recorder:
    """Records what it was given (the lead wires the real recorder)."""

    given: list[Feedback] = field(default_factory=list)
    fail: bool = False

    def record(self, feedback: Feedback) -> str:
        if self.fail:
            raise OSError("the store is down")
        self.given.append(feedback)
        return f"{feedback.kind} recorded for {feedback.address}"


@dataclass
class Hooks:
    app: object
    recorder: Recorder
    sns: Sns
    now: list[dt.datetime]

    def __repr__(self) -> str:
        return "Hooks()"

    def post(self, path: str, body: bytes | dict, **headers: str) -> Answer:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        return call(self.app, "POST", path, body=data, headers=headers)

    def ses(self, message: dict) -> Answer:
        return self.post("/hooks/ses", message, **{"Content-Type": "text/plain; charset=UTF-8"})

    def mailgun(self, body: dict | bytes) -> Answer:
        return self.post("/hooks/mailgun", body, **{"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def sns_key():
    return certificate(NOW)  # an RSA key takes a moment: one for the module


def make_hooks(root, monkeypatch, sns_key, state_url, extra: str = HOOKS, recorder=None):
    monkeypatch.setenv("TEST_MAILGUN_KEY", "key-1")
    monkeypatch.setenv("TEST_MAILGUN_SIGNING", SIGNING_KEY)
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("  unsubscribe:\n", extra + "  unsubscribe:\n", 1))
    settings = load_settings(config)
    store = Store(state_url, settings.site.url)
    recorder = recorder if recorder is not None else Recorder()
    sns = Sns(*sns_key)
    now = [NOW]
    app = create_app(
        settings,
        store,
        transport=Outbox(),
        clock=lambda: now[0],
        feedback=recorder,
        sns_fetch=sns.fetch,
    )
    return Hooks(app, recorder, sns, now), store


@pytest.fixture
def hooks(project, monkeypatch, sns_key, state_url):
    made, store = make_hooks(project(with_examples=False), monkeypatch, sns_key, state_url)
    yield made
    store.close()


# -- SES through SNS -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_permanent_bounce_is_recorded_for_every_recipient(hooks, version):
    message = hooks.sns.signed(
        version=version, Message=bounce("Permanent", "anna@example.org", "Pema <pema@example.org>")
    )
    answer = hooks.ses(message)
    assert answer.status == 200, answer.text
    assert "bounce recorded for anna@example.org" in answer.text
    assert hooks.recorder.given == [
        Feedback(
            address,
            "bounce",
            "Permanent/General: 5.1.1 smtp; 550 5.1.1 user unknown",
            "ses",
            message_id="<e1.anna@news.example.org>",
            reported_at=dt.datetime(2026, 12, 5, 11, 59, 58, tzinfo=dt.UTC),
        )
        for address in ("anna@example.org", "pema@example.org")
    ]


def test_transient_bounces_are_delays_and_complaints_complaints(hooks):
    for shape in ("notificationType", "eventType"):  # identity and configuration-set events
        assert hooks.ses(hooks.sns.signed(Message=bounce("Transient", shape=shape))).status == 200
    assert hooks.ses(hooks.sns.signed(Message=bounce("Undetermined"))).status == 200
    assert hooks.ses(hooks.sns.signed(Message=complaint("sonam@example.org"))).status == 200
    kinds = [(f.kind, f.address) for f in hooks.recorder.given]
    assert kinds == [("delay", "anna@example.org")] * 3 + [("complaint", "sonam@example.org")]
    assert hooks.recorder.given[-1].message_id == "<e2@news.example.org>"
    assert hooks.recorder.given[-1].reason == "complaint: abuse"


def test_other_events_are_taken_and_ignored(hooks):
    delivered = json.dumps({"eventType": "Delivery", "delivery": {"recipients": ["a@b.org"]}})
    answer = hooks.ses(hooks.sns.signed(Message=delivered, Subject="Amazon SES Delivery"))
    assert answer.status == 200 and hooks.recorder.given == []


def test_the_certificate_is_fetched_once_and_only_from_sns(hooks):
    for _ in range(3):
        assert hooks.ses(hooks.sns.signed(Message=bounce())).status == 200
    assert hooks.sns.fetched == [CERT_URL]


def test_a_subscription_is_confirmed_by_a_get_of_its_subscribe_url(hooks):
    answer = hooks.ses(hooks.sns.signed("SubscriptionConfirmation", version="2"))
    assert answer.status == 200 and answer.text == "Subscription confirmed."
    assert hooks.sns.fetched == [CERT_URL, SUBSCRIBE_URL]
    assert hooks.recorder.given == []


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/?Action=ConfirmSubscription",
        "http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
        "https://sns.eu-west-1.amazonaws.com.evil.example/",
        "https://user@sns.eu-west-1.amazonaws.com/",
        "https://sns.eu-west-1.amazonaws.com:8443/",
        "https://sns.eu-west-1.amazonaws.com:port/",
        "https://[sns.eu-west-1.amazonaws.com/",
    ],
)
def test_a_signed_confirmation_elsewhere_than_sns_is_never_fetched(hooks, url):
    answer = hooks.ses(hooks.sns.signed("SubscriptionConfirmation", SubscribeURL=url))
    assert answer.status == 403
    assert hooks.sns.fetched == [CERT_URL]


def tampered(message: dict, **changes: str) -> dict:
    return {**message, **changes}


@pytest.mark.parametrize(
    ("change", "fetched"),
    [
        (lambda m, s: tampered(m, Message=bounce("Permanent", "victim@example.org")), True),
        (lambda m, s: tampered(m, TopicArn=TOPIC + "-2"), True),
        (lambda m, s: tampered(m, Timestamp="2026-12-05T12:00:01.000Z"), True),
        (lambda m, s: tampered(m, Signature="AAAA"), True),
        (lambda m, s: tampered(m, Signature="not base64!"), True),
        (lambda m, s: tampered(m, SignatureVersion="3"), False),
        (lambda m, s: tampered(m, SigningCertURL="https://evil.example/cert.pem"), False),
        (lambda m, s: tampered(m, SigningCertURL=CERT_URL.replace("https", "http")), False),
        (lambda m, s: tampered(m, SigningCertURL=CERT_URL.replace(".pem", ".txt")), False),
        (lambda m, s: s.sign(m, key=certificate(NOW)[0]), True),  # another key
    ],
)
def test_a_forged_notification_is_refused_and_nothing_recorded(hooks, change, fetched):
    message = hooks.sns.signed(Message=bounce())
    answer = hooks.ses(change(message, hooks.sns))
    assert answer.status == 403, answer.text
    assert hooks.recorder.given == []
    assert hooks.sns.fetched == ([CERT_URL] if fetched else [])


def test_a_topic_not_listed_is_refused_though_signed(hooks):
    other = "arn:aws:sns:eu-west-1:999999999999:someone-elses"
    answer = hooks.ses(hooks.sns.signed(Message=bounce(), TopicArn=other))
    assert answer.status == 403 and "notification_topics" in answer.text
    assert hooks.recorder.given == []


def test_an_expired_certificate_is_refused(project, monkeypatch, state_url):
    old = certificate(NOW - dt.timedelta(days=400), days=30)
    made, store = make_hooks(project(with_examples=False), monkeypatch, old, state_url)
    assert made.ses(made.sns.signed(Message=bounce())).status == 403
    assert made.recorder.given == []
    store.close()


def test_without_a_recorder_or_with_it_down_the_provider_is_asked_to_retry(hooks):
    hooks.recorder.fail = True
    assert hooks.ses(hooks.sns.signed(Message=bounce())).status == 503
    hooks.recorder.fail = False
    assert hooks.ses(hooks.sns.signed(Message=bounce())).status == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'{"Type": "Notification"}', b"\xff\xfe", json.dumps({"Type": 1}).encode()],
)
def test_a_body_that_is_not_an_sns_message_is_400(hooks, body):
    answer = hooks.post("/hooks/ses", body)
    assert answer.status == 400 and hooks.sns.fetched == []


def test_a_signed_message_whose_content_is_not_ses_is_400(hooks):
    for content in ("not json", "[1]", json.dumps({"notificationType": "Bounce"})):
        assert hooks.ses(hooks.sns.signed(Message=content)).status == 400
    assert hooks.recorder.given == []


def test_a_notification_for_many_recipients_is_taken_and_a_larger_body_is_413(hooks):
    """SNS messages are up to 256 KB: far over the sign-up forms' limit, under the hooks'."""
    many = [f"a{i}@example.org" for i in range(400)]
    assert hooks.ses(hooks.sns.signed(Message=bounce("Permanent", *many))).status == 200
    assert sorted(f.address for f in hooks.recorder.given) == sorted(many)
    huge = json.dumps({"Message": "x" * MAX_NOTIFICATION}).encode()
    assert hooks.ses(huge).status == 413


def test_without_the_sections_the_hooks_are_404(project, monkeypatch, sns_key, state_url):
    made, store = make_hooks(project(with_examples=False), monkeypatch, sns_key, state_url, "")
    assert made.ses(made.sns.signed(Message=bounce())).status == 404
    assert made.mailgun(b"{}").status == 404
    store.close()


# -- Mailgun ---------------------------------------------------------------------------------


def mailgun_event(
    event: dict, at: dt.datetime = NOW, token: str = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f9"
) -> dict:
    timestamp = str(int(at.timestamp()))
    digest = hmac.new(SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()},
        "event-data": event,
    }


FAILED = {
    "event": "failed",
    "severity": "permanent",
    "reason": "bounce",
    "recipient": "anna@example.org",
    "timestamp": 1796472000.25,
    "message": {"headers": {"message-id": "e1.anna@news.example.org"}},
    "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
}


def test_a_signed_permanent_failure_is_a_bounce(hooks):
    answer = hooks.mailgun(mailgun_event(FAILED))
    assert answer.status == 200, answer.text
    assert hooks.recorder.given == [
        Feedback(
            "anna@example.org",
            "bounce",
            "permanent failure (bounce): 550 5.1.1 The email account does not exist",
            "mailgun",
            message_id="<e1.anna@news.example.org>",
            reported_at=dt.datetime.fromtimestamp(1796472000.25, dt.UTC),
        )
    ]


def test_temporary_failures_are_delays_complaints_complaints_the_rest_ignored(hooks):
    events = [
        {**FAILED, "severity": "temporary", "reason": "generic"},
        {"event": "complained", "recipient": "Pema <pema@example.org>"},
        {"event": "delivered", "recipient": "sonam@example.org"},
        {"event": "opened", "recipient": "sonam@example.org"},
    ]
    for n, event in enumerate(events):
        assert hooks.mailgun(mailgun_event(event, token=f"token-{n}")).status == 200
    assert [(f.kind, f.address) for f in hooks.recorder.given] == [
        ("delay", "anna@example.org"),
        ("complaint", "pema@example.org"),
    ]


def test_a_wrong_signature_is_refused(hooks):
    body = mailgun_event(FAILED)
    body["signature"]["signature"] = "0" * 64
    assert hooks.mailgun(body).status == 403
    other = mailgun_event(FAILED)
    other["signature"]["token"] += "x"  # a token the signature is not for
    assert hooks.mailgun(other).status == 403
    assert hooks.recorder.given == []


def test_a_stale_event_is_refused(hooks):
    body = mailgun_event(FAILED, at=NOW - dt.timedelta(minutes=16))
    answer = hooks.mailgun(body)
    assert answer.status == 403 and "timestamp" in answer.text
    hooks.now[0] = NOW - dt.timedelta(minutes=10)  # the same event, read at its own time
    assert hooks.mailgun(body).status == 200


def test_a_replayed_event_is_refused(hooks):
    body = mailgun_event(FAILED)
    assert hooks.mailgun(body).status == 200
    hooks.now[0] = NOW + dt.timedelta(minutes=5)
    answer = hooks.mailgun(body)
    assert answer.status == 403 and "replayed" in answer.text
    assert len(hooks.recorder.given) == 1


def test_an_event_that_could_not_be_recorded_may_come_again(hooks):
    body = mailgun_event(FAILED)
    hooks.recorder.fail = True
    assert hooks.mailgun(body).status == 503
    hooks.recorder.fail = False
    assert hooks.mailgun(body).status == 200  # Mailgun's retry: the token was not spent
    assert len(hooks.recorder.given) == 1


def test_without_a_signing_key_every_event_is_refused(project, monkeypatch, sns_key, state_url):
    no_key = HOOKS.replace("    webhook_signing_key: ${TEST_MAILGUN_SIGNING}\n", "")
    made, store = make_hooks(project(with_examples=False), monkeypatch, sns_key, state_url, no_key)
    answer = made.mailgun(mailgun_event(FAILED))
    assert answer.status == 403 and "webhook_signing_key" in answer.text
    assert made.recorder.given == []
    store.close()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"signature": "x", "event-data": {}}',
        b'{"signature": {"timestamp": 1, "token": "t", "signature": "s"}, "event-data": {}}',
        json.dumps(mailgun_event({"event": "failed", "recipient": "nobody"})).encode(),
    ],
)
def test_a_body_that_is_not_a_mailgun_event_is_400(hooks, body):
    assert hooks.mailgun(body).status == 400 and hooks.recorder.given == []


def test_the_served_app_records_into_the_suppressions_by_default(
    project, monkeypatch, sns_key, state_url
):
    """`pipeline serve` passes no recorder: a provider's bounce and complaint reach the
    same suppression as returned mail, and the next edition's audience leaves both out."""
    from pipeline.subscribers import BOUNCED, UNSUBSCRIBED, SubscriberStore
    from pipeline.suppression import Suppressions

    root = project(with_examples=False)
    made, store = make_hooks(root, monkeypatch, sns_key, state_url)
    try:
        settings = load_settings(root / "config" / "pipeline.yaml")
        app = create_app(
            settings, store, transport=Outbox(), clock=lambda: NOW, sns_fetch=made.sns.fetch
        )
        people = SubscriberStore(store.engine, clock=lambda: NOW)
        for address in ("anna@example.org", "pema@example.org", "sonam@example.org"):
            people.add_or_update(address, name="", language="en", topics=[])
        hooks = Hooks(app, Recorder(), made.sns, [NOW])
        assert hooks.mailgun(mailgun_event(FAILED)).status == 200
        complained = {"event": "complained", "recipient": "pema@example.org"}
        assert hooks.mailgun(mailgun_event(complained, token="b" * 50)).status == 200
        assert hooks.recorder.given == []  # the default recorder took them, not this one
        assert people.get("anna@example.org").status == BOUNCED
        assert people.get("pema@example.org").status == UNSUBSCRIBED
        suppressed = Suppressions(store.engine)
        assert suppressed.get("anna@example.org") and suppressed.get("pema@example.org")
        reached = [s.email for s in people.audience(("en",), ())]
        assert reached == ["sonam@example.org"]
    finally:
        store.close()
