"""Property tests for POST /hooks/ses and /hooks/mailgun: whatever body arrives, signed or
not, the answer is 200, 400, 403 or 413 with a body — never a 5xx — and the recorder is
given only reports naming an address. Signed bodies carry random content, so the readers
behind the signature check are tried too, not only the check."""

from __future__ import annotations

import json
from itertools import count

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sns_signing import CERT_URL, TOPIC
from tests.test_provider_hooks import hooks as hooks  # the fixture
from tests.test_provider_hooks import mailgun_event
from tests.test_provider_hooks import sns_key as sns_key  # the fixture

RUNS = settings(
    max_examples=80,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SES_KEYS = [
    "notificationType", "eventType", "bounce", "complaint", "bounceType", "bounceSubType",
    "bouncedRecipients", "complainedRecipients", "emailAddress", "status", "diagnosticCode",
    "timestamp", "mail", "commonHeaders", "messageId", "headers", "name", "value",
    "complaintFeedbackType",
]  # fmt: skip
MAILGUN_KEYS = [
    "event", "severity", "recipient", "reason", "timestamp", "message", "headers",
    "message-id", "delivery-status", "code", "description",
]  # fmt: skip
SNS_KEYS = [
    "Type", "Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Token",
    "SubscribeURL", "Signature", "SignatureVersion", "SigningCertURL",
]  # fmt: skip
WORDS = [
    "Bounce", "Complaint", "Delivery", "Permanent", "Transient", "failed", "complained",
    "permanent", "temporary", "Notification", "SubscriptionConfirmation", "1", "2",
    "anna@example.org", "Anna <anna@example.org>", "@", "<x@y>", "Message-ID",
    "2026-12-05T11:59:58.000Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00",
    CERT_URL, TOPIC, "https://evil.example/x.pem", "https://sns.eu-west-1.amazonaws.com:x/",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)


def json_values(keys: list[str]) -> st.SearchStrategy:
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), inner, max_size=6)
        ),
        max_leaves=30,
    )


def bodies(keys: list[str]) -> st.SearchStrategy[bytes]:
    as_json = json_values(keys).map(lambda v: json.dumps(v).encode())
    nested = st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n)
    return st.binary(max_size=300) | as_json | nested


def assert_answered(answer, allowed: set[int]) -> None:
    assert answer.status in allowed, (answer.status, answer.body[:300])
    assert answer.body


def assert_addresses(hooks) -> None:
    for report in hooks.recorder.given:
        assert "@" in report.address and report.kind in ("bounce", "delay", "complaint")


@RUNS
@given(body=bodies(SNS_KEYS))
def test_any_body_posted_as_sns_is_refused_cleanly(hooks, body):
    assert_answered(hooks.post("/hooks/ses", body), {400, 403, 413})
    assert hooks.recorder.given == []


@RUNS
@given(
    fields=st.dictionaries(st.sampled_from(SNS_KEYS), json_values(SNS_KEYS), max_size=11),
    kind=st.sampled_from(["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]),
)
def test_sns_shaped_messages_with_random_fields_never_pass_unsigned(hooks, fields, kind):
    message = {"Type": kind, "SigningCertURL": CERT_URL, **fields}
    assert_answered(hooks.ses(message), {400, 403})
    assert hooks.recorder.given == []


@RUNS
@given(content=json_values(SES_KEYS).map(json.dumps) | st.text(max_size=200))
def test_signed_notifications_with_any_content_are_recorded_or_refused(hooks, content):
    answer = hooks.ses(hooks.sns.signed(Message=content, version="2"))
    assert_answered(answer, {200, 400, 413})
    assert_addresses(hooks)


@RUNS
@given(body=bodies(["signature", "event-data", "timestamp", "token", *MAILGUN_KEYS]))
def test_any_body_posted_as_a_mailgun_event_is_refused_cleanly(hooks, body):
    assert_answered(hooks.mailgun(body), {400, 403, 413})
    assert hooks.recorder.given == []


TOKENS = count()


@RUNS
@given(event=st.dictionaries(st.sampled_from(MAILGUN_KEYS), json_values(MAILGUN_KEYS), max_size=8))
def test_signed_mailgun_events_with_any_content_are_recorded_or_refused(hooks, event):
    answer = hooks.mailgun(mailgun_event(event, token=f"fuzz-{next(TOKENS)}"))
    assert_answered(answer, {200, 400})
    assert_addresses(hooks)
