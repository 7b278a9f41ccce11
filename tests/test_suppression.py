"""The recorder of feedback (pipeline.suppression), on SQLite and PostgreSQL: temporary
failures counted within a window by the injected clock, complaints stronger than
bounces, sign-up lifting only a bounce, and any report's words stored without error."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.feedback import Feedback
from pipeline.subscribers import ACTIVE, BOUNCED, UNSUBSCRIBED, SubscriberStore
from pipeline.suppression import Suppressions, clean


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def people(store):
    people = SubscriberStore(store.engine)
    for email in ("anna@example.org", "pema@example.org"):
        people.add_or_update(email, language="en")
    return people


def delay(address: str = "anna@example.org") -> Feedback:
    return Feedback(address, "delay", "4.2.2 mailbox full", "dsn")


def test_temporary_failures_bounce_only_at_the_limit_within_the_window(store, people):
    clock = Clock()
    recorder = Suppressions(store.engine, clock, soft_limit=3, soft_window=dt.timedelta(days=7))
    assert recorder.record(delay()) == "temporary failure 1 of 3 within 7 days"
    clock.now += dt.timedelta(days=8)  # the first falls out of the window
    assert recorder.record(delay()) == "temporary failure 1 of 3 within 7 days"
    clock.now += dt.timedelta(days=3)
    assert recorder.record(delay()) == "temporary failure 2 of 3 within 7 days"
    assert (
        people.get("anna@example.org").status == ACTIVE and recorder.get("anna@example.org") is None
    )
    clock.now += dt.timedelta(days=3)
    assert recorder.record(delay()).startswith("bounce: suppressed, subscriber marked bounced")
    anna = people.get("anna@example.org")
    assert anna.status == BOUNCED and "3 temporary failures within 7 days" in anna.status_detail
    assert people.get("pema@example.org").status == ACTIVE
    assert [s.email for s in people.audience()] == ["pema@example.org"]
    assert [r.kind for r in recorder.history("Anna@Example.org")] == ["delay"] * 4


def test_a_complaint_replaces_a_bounce_and_only_a_bounce_is_lifted(store, people):
    recorder = Suppressions(store.engine, Clock())
    recorder.record(Feedback("pema@example.org", "bounce", "5.1.1 unknown", "dsn"))
    assert recorder.record(Feedback("pema@example.org", "bounce", "5.1.1", "dsn")).startswith(
        "bounce: already suppressed"
    )
    assert recorder.lift("pema@example.org").kind == "bounce"
    assert recorder.get("pema@example.org") is None
    recorder.record(Feedback("anna@example.org", "bounce", "5.1.1 unknown", "dsn"))
    outcome = recorder.record(Feedback("anna@example.org", "complaint", "abuse", "arf"))
    assert outcome == "complaint: suppressed, subscriber unsubscribed from every digest"
    assert recorder.get("anna@example.org").kind == "complaint"
    assert people.get("anna@example.org").status == UNSUBSCRIBED
    # a later bounce does not weaken it, and sign-up's lifting leaves it
    recorder.record(Feedback("anna@example.org", "bounce", "5.1.1", "dsn"))
    assert recorder.lift("anna@example.org") is None
    assert recorder.get("anna@example.org").kind == "complaint"
    assert recorder.lift("anna@example.org", complaints=True).kind == "complaint"


def test_an_address_that_is_no_subscriber_is_suppressed_all_the_same(store, people):
    recorder = Suppressions(store.engine, Clock())
    assert recorder.record(Feedback("Stranger@Example.NET", "bounce", "5.1.1", "ses")) == (
        "bounce: suppressed"
    )
    assert recorder.get("stranger@example.net").source == "ses"
    assert recorder.record(Feedback("not an address", "bounce", "x", "dsn")).startswith("ignored")


def test_a_confirmed_sign_up_lifts_a_bounce_but_a_complaint_gets_no_mail(store, people, tmp_path):
    from pipeline.settings import load_settings
    from pipeline.signup import SignUp
    from tests.conftest import REPO

    settings = load_settings(REPO / "config" / "pipeline.yaml")
    sent: list[str] = []

    class Transport:
        def send(self, message) -> None:
            sent.append(str(message["To"]))

        def close(self) -> None:
            pass

    recorder = Suppressions(store.engine, Clock())
    recorder.record(Feedback("anna@example.org", "bounce", "5.1.1", "dsn"))
    recorder.record(Feedback("pema@example.org", "complaint", "abuse", "arf"))
    signup = SignUp(settings, store, transport=Transport)
    assert signup.request("anna@example.org", name="Anna", language="en", topics=())
    assert not signup.request("pema@example.org", name="Pema", language="en", topics=())
    assert sent == ["anna@example.org"]
    from pipeline.signup import CONFIRM
    from pipeline.tokens import sign

    anna = people.get("anna@example.org")
    token = sign(signup.secret, CONFIRM, anna.id, "", email=anna.email)
    signup.confirm(token)
    assert recorder.get("anna@example.org") is None
    assert people.get("anna@example.org").status == ACTIVE
    assert "anna@example.org" in [s.email for s in people.audience()]
    # A confirmation link mailed before Pema's complaint, followed after it: she is
    # active again by her own hand, but her address stays suppressed and unmailed.
    pema = people.get("pema@example.org")
    signup.confirm(sign(signup.secret, CONFIRM, pema.id, "", email=pema.email))
    assert people.get("pema@example.org").status == ACTIVE
    assert recorder.get("pema@example.org").kind == "complaint"
    assert [s.email for s in people.audience()] == ["anna@example.org"]


words = st.text(max_size=300)  # any code points, NUL and lone surrogates included


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    address=st.one_of(st.emails(), words),
    kind=st.sampled_from(["bounce", "delay", "complaint"]),
    reason=words,
    source=words,
    message_id=st.one_of(st.none(), words),
)
def test_any_report_is_recorded_or_ignored_never_an_error(
    store, address, kind, reason, source, message_id
):
    recorder = Suppressions(store.engine, Clock())
    outcome = recorder.record(Feedback(address, kind, reason, source, message_id))
    # (the store is shared by the examples: temporary failures add up across them)
    assert re.match(r"(bounce|complaint): |temporary failure \d+ of 3 |ignored: ", outcome)
    if not outcome.startswith("ignored"):
        kept = recorder.history(address)[-1]
        assert kept.reason == (clean(reason) or "(no reason given)")
        assert kept.outcome == outcome
