"""The delivery core on its own: one attempt ends sent, pending (retried in this run's
rounds, one pause per round), failed or uncertain, each on disk; a long Retry-After
pauses the stream; a broken transport leaves the item due on the next run. Both
databases."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

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


# -- what each outcome says, and when it is on disk ---------------------------------------


class Clock:
    """The ledger's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class Heard(list):
    """A courier's ``settled``: every (job, outcome) it reports, in order."""

    def __call__(self, job, outcome) -> None:
        self.append((job, outcome))

    def states(self) -> list[tuple[str, str]]:
        return [(outcome.item, outcome.state) for _, outcome in self]


def listening(ledger, tries=3, dedupes=False):
    heard = Heard()
    made = Courier(
        ledger,
        RetryPolicy(tries=tries),
        lambda seconds: None,
        heard,
        dedupes=dedupes,
        broken=(Broken,),
    )
    return made, heard


def left_sending(ledger, item, key="k-first", stream=STREAM):
    """The row a process killed mid-send leaves behind, as this process reads it."""
    crashed = Ledger(ledger.engine, clock=lambda: NOW, owner="crashed-host:1")
    assert crashed.claim(stream, item, key)
    return ledger.entries(stream)[item]


def test_settled_hears_every_outcome_with_the_job_it_is_about(ledger):
    deliver, heard = listening(ledger, tries=1)
    sent = deliver.take(STREAM, "sent", "k1", scripted(Receipt("r1")), about="ann@example.org")
    deliver.attempt(sent)
    busy = deliver.take(STREAM, "busy", "k2", scripted(TemporaryFailure("503")), about="bo")
    deliver.attempt(busy)
    assert deliver.refuse(STREAM, "refused", "no text", about="cy@example.org")
    deliver.abandon(left_sending(ledger, "lost"), "stopped", about="di@example.org")
    deliver.rounds()
    deliver.finish()
    assert [(j.stream, j.item, j.about, o.state) for j, o in heard] == [
        (STREAM, "sent", "ann@example.org", SENT),
        (STREAM, "refused", "cy@example.org", FAILED),
        (STREAM, "lost", "di@example.org", UNCERTAIN),
        (STREAM, "busy", "bo", PENDING),
    ]
    for job, _ in heard[1:3]:  # a refused or abandoned row can never be sent
        with pytest.raises(AssertionError, match=r"^an abandoned row is never sent$"):
            job.send()


def test_a_refused_item_is_failed_at_once_and_only_if_it_was_ours(ledger):
    deliver, heard = listening(ledger)
    deliver.attempt(deliver.take(STREAM, "sent", "k1", scripted(Receipt("r1"))))
    assert deliver.refuse(STREAM, "bad", "template: no title")
    row = ledger.entries(STREAM)["bad"]  # on disk before anything else happens
    assert (row.state, row.detail) == (FAILED, "template: no title")
    assert ledger.entries(STREAM)["sent"].state == SENT
    assert not deliver.refuse(STREAM, "bad", "again") and not deliver.refuse(STREAM, "sent", "x")
    deliver.finish()
    assert heard.states() == [("sent", SENT), ("bad", FAILED)]
    assert ledger.entries(STREAM)["sent"].state == SENT


def test_take_answers_none_for_an_item_that_is_not_ours(ledger):
    deliver, _ = listening(ledger)
    deliver.attempt(deliver.take(STREAM, "done", "k", scripted(Receipt("r1"))))
    again = scripted(Receipt("r2"))
    assert deliver.take(STREAM, "done", "k", again) is None
    deliver.finish()
    assert again.calls == 0 and ledger.entries(STREAM)["done"].remote_id == "r1"


def test_each_outcome_is_on_disk_before_the_next_send_and_a_batch_commits_once_per_item(
    ledger,
):
    commits = []
    event.listen(ledger.engine, "commit", lambda conn: commits.append(conn))
    deliver, _ = listening(ledger)
    seen = []

    def send(n):
        def go() -> Receipt:
            seen.append({i: e.state for i, e in ledger.entries(STREAM).items()})
            return Receipt(f"r{n}")

        return go

    for n in range(3):
        deliver.attempt(deliver.take(STREAM, f"m{n}", f"k{n}", send(n)))
    deliver.finish()
    assert seen == [
        {"m0": "sending"},
        {"m0": SENT, "m1": "sending"},
        {"m0": SENT, "m1": SENT, "m2": "sending"},
    ]
    # A claim per item, each carrying the outcome before it, and the last outcome at finish.
    assert len(commits) == 3 + 1


def test_a_retry_round_records_each_outcome_before_the_next_send(ledger):
    deliver, _ = listening(ledger)
    seen = []

    def send(item):
        script = [TemporaryFailure("503")]

        def go() -> Receipt:
            if script:
                raise script.pop()
            row = ledger.entries(STREAM)[item]
            seen.append(
                (item, row.state, row.key, {i: e.state for i, e in ledger.entries(STREAM).items()})
            )
            return Receipt(item)

        return go

    for item in ("a", "b"):
        deliver.attempt(deliver.take(STREAM, item, f"key-{item}", send(item)))
    commits = []
    event.listen(ledger.engine, "commit", lambda conn: commits.append(conn))
    deliver.rounds()
    deliver.finish()
    assert seen == [
        ("a", "sending", "key-a", {"a": "sending", "b": PENDING}),
        ("b", "sending", "key-b", {"a": SENT, "b": "sending"}),
    ]
    # Each retry is its claim alone (an insert that finds the row, then the update); the
    # outcome before it goes with it, and the last one is written at the end.
    assert len(commits) == 2 + 2 + 1


def test_outcomes_of_two_streams_each_reach_their_own_rows(ledger):
    deliver, _ = listening(ledger)
    deliver.attempt(deliver.take("stream:a", "one", "k1", scripted(Receipt("a1"))))
    deliver.attempt(deliver.take("stream:b", "one", "k2", scripted(Receipt("b1"))))
    assert ledger.entries("stream:a")["one"].state == SENT  # written before b's claim
    deliver.attempt(deliver.take("stream:a", "two", "k3", scripted(Receipt("a2"))))
    deliver.finish()
    assert {
        (s, e.item, e.state, e.remote_id)
        for s in ("stream:a", "stream:b")
        for e in ledger.entries(s).values()
    } == {
        ("stream:a", "one", SENT, "a1"),
        ("stream:a", "two", SENT, "a2"),
        ("stream:b", "one", SENT, "b1"),
    }


def test_a_sent_row_keeps_the_version_it_said(ledger):
    deliver, _ = listening(ledger)
    job = deliver.take(STREAM, "post", "k", scripted(Receipt("r1", "https://x.example/r1")))
    job.version = "fingerprint-1"
    deliver.attempt(job)
    deliver.finish()
    row = ledger.entries(STREAM)["post"]
    assert (row.state, row.version, row.remote_url) == (
        SENT,
        "fingerprint-1",
        "https://x.example/r1",
    )


def test_why_an_unknown_outcome_is_not_resent(ledger):
    deliver, heard = listening(ledger)
    send = scripted(TemporaryFailure("read timed out", unknown_outcome=True))
    deliver.attempt(deliver.take(STREAM, "lost", "k", send))
    deliver.finish()
    why = "read timed out; not resent, to avoid a duplicate: check by hand"
    assert ledger.entries(STREAM)["lost"].detail == why and heard[0][1].detail == why


def test_what_may_have_arrived_and_is_left_at_the_end_is_uncertain_with_why(ledger):
    deliver, heard = listening(ledger, tries=2, dedupes=True)
    for item in ("a", "b"):
        timeout = TemporaryFailure(f"{item} timed out", unknown_outcome=True)
        deliver.attempt(deliver.take(STREAM, item, f"k-{item}", scripted(timeout, timeout)))
    deliver.rounds()
    deliver.finish()
    rows = ledger.entries(STREAM)
    tail = "it may have arrived, and is not resent later, when the far side would no longer "
    for item in ("a", "b"):
        assert rows[item].state == UNCERTAIN
        assert rows[item].detail == f"{item} timed out; {tail}recognise it: check by hand"
    assert heard.states() == [("a", UNCERTAIN), ("b", UNCERTAIN)]


def test_what_is_still_owed_at_the_end_is_reported_as_the_ledger_has_it(ledger):
    deliver, heard = listening(ledger, tries=1)
    for item in ("left", "busy"):
        deliver.attempt(deliver.take(STREAM, item, "k", scripted(TemporaryFailure("503"))))
    assert ledger.drop(STREAM, "left", "the subscriber left")  # meanwhile
    deliver.finish()
    ((job, outcome),) = heard
    assert (job.item, outcome.state) == ("busy", PENDING)
    assert outcome.detail == ledger.entries(STREAM)["busy"].detail
    assert outcome.detail == "503; next attempt after 2026-11-03 10:05Z"


def test_a_retry_after_on_the_last_try_is_not_waited_but_sets_the_next_attempt(ledger):
    soon = Ledger(
        ledger.engine, clock=lambda: NOW, owner="here:1", retry_base=dt.timedelta(seconds=30)
    )
    deliver, pauses, _ = courier(soon, tries=1)
    send = scripted(TemporaryFailure("429", retry_after=90))
    deliver.attempt(deliver.take(STREAM, "limited", "k", send))
    deliver.rounds()
    deliver.finish()
    row = ledger.entries(STREAM)["limited"]
    assert pauses == [] and send.calls == 1 and row.state == PENDING
    assert row.next_attempt_at == NOW.replace(tzinfo=None) + dt.timedelta(seconds=90)


def test_a_retry_after_of_exactly_max_wait_is_waited_out(ledger):
    deliver, pauses, _ = courier(ledger)
    send = scripted(TemporaryFailure("429", retry_after=120.0), Receipt("r1"))
    deliver.attempt(deliver.take(STREAM, "limited", "k", send))
    deliver.finish()
    assert pauses == [120.0] and ledger.entries(STREAM)["limited"].state == SENT


def test_a_long_retry_after_is_on_disk_with_why_when_the_stream_pauses(ledger):
    deliver, _, _ = courier(ledger)
    with pytest.raises(Paused):
        deliver.attempt(
            deliver.take(
                STREAM, "limited", "k", scripted(TemporaryFailure("429", retry_after=3600))
            )
        )
    row = ledger.entries(STREAM)["limited"]  # before finish: nothing is left to flush
    assert row.state == PENDING and row.detail == "429; next attempt after 2026-11-03 11:00Z"


def test_a_broken_transport_says_why_and_keeps_the_failing_since(ledger):
    clock = Clock()
    later = Ledger(ledger.engine, clock=clock, owner="here:1")
    deliver, _, _ = courier(later)
    deliver.attempt(deliver.take(STREAM, "m", "k", scripted(TemporaryFailure("503"))))
    deliver.finish()
    clock.advance(hours=1)
    fresh, _, _ = courier(later)
    with pytest.raises(Broken):
        fresh.attempt(fresh.take(STREAM, "m", "k", scripted(Broken("535 login refused"))))
    row = ledger.entries(STREAM)["m"]
    assert row.state == PENDING and row.detail == "535 login refused; sent on the next run"
    assert row.failing_since == NOW.replace(tzinfo=None)  # the give-up clock runs on


# -- a row a stopped run left ``sending`` ----------------------------------------------------


def test_a_resumed_row_is_sent_with_its_version_and_only_once(ledger):
    deliver, heard = listening(ledger, dedupes=True)
    entry = left_sending(ledger, "post")
    send = scripted(Receipt("r1"))
    assert deliver.resume(entry, send, version="v2")
    assert not deliver.resume(entry, scripted(Receipt("r2")), version="v3")  # ours now
    deliver.finish()
    row = ledger.entries(STREAM)["post"]
    assert (row.state, row.remote_id, row.version, row.owner) == (SENT, "r1", "v2", "here:1")
    assert heard.states() == [("post", SENT)] and send.calls == 1


def test_a_resumed_row_meeting_a_long_retry_after_is_uncertain_at_once(ledger):
    deliver, heard = listening(ledger, dedupes=True)
    entry = left_sending(ledger, "post")
    with pytest.raises(Paused):
        deliver.resume(entry, scripted(TemporaryFailure("429", retry_after=3600)))
    row = ledger.entries(STREAM)["post"]
    assert row.state == UNCERTAIN
    assert row.detail == "429; it may have arrived, and cannot be resent in time"
    assert heard.states() == [("post", UNCERTAIN)]


def test_a_resumed_row_meeting_a_broken_transport_is_due_on_the_next_run(ledger):
    deliver, heard = listening(ledger, dedupes=True)
    entry = left_sending(ledger, "post")
    with pytest.raises(Broken):
        deliver.resume(entry, scripted(Broken("login refused")))
    row = ledger.entries(STREAM)["post"]
    assert row.state == PENDING and ledger.is_due(row) and row.failing_since is None
    assert heard.states() == [("post", PENDING)]


def test_an_abandoned_row_is_uncertain_on_disk_at_once_with_why(ledger):
    deliver, heard = listening(ledger)
    deliver.abandon(left_sending(ledger, "post"), "the run stopped while sending")
    row = ledger.entries(STREAM)["post"]
    assert (row.state, row.detail) == (UNCERTAIN, "the run stopped while sending")
    assert heard.states() == [("post", UNCERTAIN)]


# -- retry rounds ------------------------------------------------------------------------------


def test_a_stop_mid_round_leaves_the_rest_owed_and_reported(ledger):
    deliver, heard = listening(ledger)
    for item in ("a", "b", "c"):
        send = scripted(TemporaryFailure("503"), Receipt(item))
        deliver.attempt(deliver.take(STREAM, item, f"k-{item}", send))
    asked = []
    deliver.rounds(stop=lambda: asked.append(1) or len(asked) > 2)  # after a's retry
    assert [job.item for job in deliver.owed] == ["b", "c"]
    deliver.finish()
    assert heard.states() == [("a", SENT), ("b", PENDING), ("c", PENDING)]


def test_a_row_settled_meanwhile_is_passed_over_and_the_round_goes_on(ledger):
    deliver, heard = listening(ledger)
    sends = {item: scripted(TemporaryFailure("503"), Receipt(item)) for item in ("a", "b")}
    for item, send in sends.items():
        deliver.attempt(deliver.take(STREAM, item, f"k-{item}", send))
    deliver.sleep = lambda seconds: ledger.drop(STREAM, "a", "the subscriber left")
    deliver.rounds()
    deliver.finish()
    assert sends["a"].calls == 1 and sends["b"].calls == 2
    assert heard.states() == [("b", SENT)] and ledger.entries(STREAM)["a"].state == "skipped"


def test_what_a_failing_round_did_not_reach_stays_owed(ledger):
    deliver, heard = listening(ledger)
    sends = {
        "a": scripted(TemporaryFailure("503"), Broken("login refused")),
        "b": scripted(TemporaryFailure("503")),
        "c": scripted(TemporaryFailure("503")),
    }
    for item, send in sends.items():
        deliver.attempt(deliver.take(STREAM, item, f"k-{item}", send))
    with pytest.raises(Broken):
        deliver.rounds()
    assert [job.item for job in deliver.owed] == ["b", "c"]
    deliver.finish()
    assert heard.states() == [("a", PENDING), ("b", PENDING), ("c", PENDING)]
    assert sends["b"].calls == sends["c"].calls == 1


def test_a_courier_alike_shares_all_but_its_own_work(ledger):
    deliver, _ = listening(ledger, tries=2, dedupes=True)
    deliver.attempt(deliver.take(STREAM, "a", "k", scripted(TemporaryFailure("503"))))
    other = deliver.alike()
    assert (other.ledger, other.policy, other.sleep, other.settled) == (
        deliver.ledger,
        deliver.policy,
        deliver.sleep,
        deliver.settled,
    )
    assert (other.dedupes, other.broken) == (True, (Broken,))
    assert other.owed == [] and [job.item for job in deliver.owed] == ["a"]
