"""The delivery core on its own: one attempt ends sent, pending (retried in this run's
rounds, one pause per round), failed or uncertain, each on disk; a long Retry-After
pauses the stream; a broken transport leaves the item due on the next run. Both
databases."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.channels import Receipt
from pipeline.delivery import Courier, Paused, RetryPolicy
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENT, UNCERTAIN, Ledger
from pipeline.store import Store

NOW = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
STREAM = "test:stream"


class Broken(Exception):
    """A transport that cannot go on (the mail server refuses the login)."""


@pytest.fixture
def ledger(state_url):
    store = Store(state_url, "https://news.example.org")
    yield Ledger(store.engine, clock=lambda: NOW, owner="here:1")
    store.close()


def scripted(*outcomes):
    """A send that raises or answers each of ``outcomes`` in turn; its calls are counted."""
    script = list(outcomes)

    def send() -> Receipt:
        send.calls += 1  # type: ignore[attr-defined]
        outcome = script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    send.calls = 0  # type: ignore[attr-defined]
    return send


def courier(ledger, tries=3, dedupes=False):
    pauses, settled = [], []
    made = Courier(
        ledger,
        RetryPolicy(tries=tries),
        pauses.append,
        lambda job, outcome: settled.append((outcome.item, outcome.state)),
        dedupes=dedupes,
        broken=(Broken,),
    )
    return made, pauses, settled


def test_each_outcome_is_on_disk_and_heard_once(ledger):
    deliver, pauses, settled = courier(ledger)
    sends = {
        "sent": scripted(Receipt("r1", "https://x.example/r1")),
        "refused": scripted(PermanentFailure("403 forbidden")),
        "lost": scripted(TemporaryFailure("timeout", unknown_outcome=True)),
        "busy": scripted(TemporaryFailure("503"), TemporaryFailure("503"), Receipt("r4")),
    }
    for item, send in sends.items():
        deliver.attempt(deliver.take(STREAM, item, f"k-{item}", send))
    deliver.rounds()
    deliver.finish()

    rows = ledger.entries(STREAM)
    assert {i: e.state for i, e in rows.items()} == {
        "sent": SENT,
        "refused": FAILED,
        "lost": UNCERTAIN,
        "busy": SENT,
    }
    assert rows["sent"].remote_id == "r1" and rows["busy"].remote_id == "r4"
    assert sorted(settled) == sorted((i, e.state) for i, e in rows.items())
    assert pauses == [1.0, 2.0]  # one pause per round, whatever the number of items
    assert sends["lost"].calls == 1  # never resent: it may have arrived


def test_what_still_fails_waits_for_its_next_attempt(ledger):
    deliver, pauses, settled = courier(ledger, tries=2)
    send = scripted(TemporaryFailure("503"), TemporaryFailure("503"))
    deliver.attempt(deliver.take(STREAM, "busy", "k", send))
    deliver.rounds()
    deliver.finish()
    row = ledger.entries(STREAM)["busy"]
    assert row.state == PENDING and row.next_attempt_at == NOW.replace(tzinfo=None) + (
        dt.timedelta(minutes=5)
    )
    assert settled == [("busy", PENDING)] and send.calls == 2 and pauses == [1.0]


def test_a_far_side_that_dedupes_gets_an_unknown_outcome_again_with_the_same_key(ledger):
    deliver, _, _ = courier(ledger, dedupes=True)
    keys = []
    send = scripted(TemporaryFailure("timeout", unknown_outcome=True), Receipt("r1"))
    job = deliver.take(STREAM, "lost", "the-key", lambda: keys.append(job.key) or send())
    deliver.attempt(job)
    deliver.rounds()
    deliver.finish()
    assert ledger.entries(STREAM)["lost"].state == SENT and keys == ["the-key", "the-key"]


def test_a_long_retry_after_pauses_the_stream(ledger):
    deliver, pauses, _ = courier(ledger)
    send = scripted(TemporaryFailure("429", retry_after=3600))
    with pytest.raises(Paused):
        deliver.attempt(deliver.take(STREAM, "limited", "k", send))
    deliver.finish()
    row = ledger.entries(STREAM)["limited"]
    assert row.state == PENDING and row.next_attempt_at == NOW.replace(tzinfo=None) + (
        dt.timedelta(hours=1)
    )
    assert pauses == []


def test_a_short_retry_after_is_waited_out_on_the_spot(ledger):
    deliver, pauses, _ = courier(ledger)
    send = scripted(TemporaryFailure("429", retry_after=7), Receipt("r1"))
    deliver.attempt(deliver.take(STREAM, "limited", "k", send))
    deliver.finish()
    assert ledger.entries(STREAM)["limited"].state == SENT and pauses == [7]


def test_a_broken_transport_leaves_the_item_due_on_the_next_run(ledger):
    deliver, _, settled = courier(ledger)
    deliver.attempt(deliver.take(STREAM, "first", "k1", scripted(Receipt("r1"))))
    with pytest.raises(Broken):
        deliver.attempt(deliver.take(STREAM, "second", "k2", scripted(Broken("login refused"))))
    rows = ledger.entries(STREAM)
    assert rows["first"].state == SENT  # recorded with the next claim, before the failure
    assert rows["second"].state == PENDING and rows["second"].next_attempt_at is None
    assert ledger.is_due(rows["second"]) and ("second", PENDING) in settled


def test_an_unexpected_error_leaves_the_item_uncertain_and_is_raised(ledger):
    deliver, _, _ = courier(ledger)
    with pytest.raises(ZeroDivisionError):
        deliver.attempt(deliver.take(STREAM, "odd", "k", scripted(ZeroDivisionError("x"))))
    row = ledger.entries(STREAM)["odd"]
    assert row.state == UNCERTAIN and "unexpected ZeroDivisionError" in (row.detail or "")
