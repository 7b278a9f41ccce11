"""The delivery ledger on its own: claims, retries with growing delays, give-up, crash
evidence, settling by hand. The clock is injected; nothing waits on the wall clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import socket
import subprocess
import sys

import pytest

from pipeline import ledger as ledger_module
from pipeline.ledger import (
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    Claim,
    Ledger,
    Settlement,
    how_long,
    owner_is_gone,
    this_process,
)
from pipeline.store import Store

T0 = dt.datetime(2026, 11, 23, 3, 0)
S = "post:out"


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def store(state_url):
    store = Store(state_url, "https://news.example.org")
    yield store
    store.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(store, clock):
    return Ledger(store.engine, clock=clock, owner="here:1")


def dead_pid() -> int:
    """The pid of a process that has certainly ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def pending(ledger: Ledger, item: str, reason: str = "500", **kw) -> Settlement:
    """Claim ``item`` and settle it as a temporary failure; the settlement recorded."""
    claim = ledger.take(S, item, "k", **kw)
    assert claim is not None
    outcome = ledger.retry_later(claim, reason)
    ledger.record(S, outcome)
    return outcome


# -- claiming ------------------------------------------------------------------------------


def test_a_claim_is_recorded_before_sending_and_only_once(ledger, clock):
    assert ledger.take(S, "a", "key-a") == Claim(S, "a", 1, None)
    entry = ledger.entries(S)["a"]
    assert (entry.state, entry.attempts, entry.key, entry.owner) == (SENDING, 1, "key-a", "here:1")
    assert entry.created_at == entry.updated_at == T0
    assert entry.next_attempt_at is None and entry.failing_since is None
    assert ledger.take(S, "a", "key-a") is None  # being sent: not again
    assert ledger.claim(S, "a", "key-a") is False and ledger.claim(S, "z", "k") is True
    assert ledger.take("post:other", "a", "key-a") is not None  # another stream is apart
    for state in (SENT, FAILED, UNCERTAIN):
        ledger.take(S, state, "k")
        ledger.settle(S, state, state)
        assert ledger.take(S, state, "k") is None
        assert ledger.claim(S, state, "k") is False
    ledger.skip(S, {"old": "too old"})
    assert ledger.take(S, "old", "k") is None


def test_a_pending_row_is_claimed_again_only_when_due_and_counts_attempts(ledger, clock):
    first = pending(ledger, "a")
    assert first.next_attempt_at == T0 + dt.timedelta(minutes=5)
    clock.advance(minutes=4, seconds=59)
    assert ledger.take(S, "a", "k2") is None  # not due yet
    early = ledger.take(S, "a", "k2", early=True)  # a run's own retry round may
    assert early == Claim(S, "a", 2, T0)
    ledger.record(S, ledger.retry_later(early, "503"))
    clock.advance(minutes=6)
    again = ledger.take(S, "a", "k3")
    assert again == Claim(S, "a", 3, T0)
    entry = ledger.entries(S)["a"]
    assert (entry.state, entry.attempts, entry.key, entry.updated_at) == (
        SENDING,
        3,
        "k3",
        clock.now,
    )
    assert entry.created_at == T0


def test_a_claim_can_record_the_previous_outcome_in_the_same_transaction(ledger):
    ledger.take(S, "a", "k")
    assert ledger.take(S, "b", "k", settle_first=Settlement("a", SENT, remote_id="r1"))
    a = ledger.entries(S)["a"]
    assert a.state == SENT and a.remote_id == "r1"
    assert ledger.take(S, "b", "k", settle_first=Settlement("b", FAILED, "no")) is None
    ledger.take(S, "c", "k")
    assert ledger.claim(S, "d", "k", settle_first=Settlement("c", SENT)) is True
    assert ledger.entries(S)["c"].state == SENT
    assert ledger.entries(S)["b"].state == FAILED  # recorded even though nothing was claimed


def test_without_insert_on_conflict_the_primary_key_refuses_a_second_claim(
    ledger, clock, monkeypatch
):
    monkeypatch.setattr(ledger_module, "_insert_unless_present", lambda dialect: None)
    assert ledger.take(S, "a", "k") == Claim(S, "a", 1, None)
    assert ledger.take(S, "a", "k") is None
    ledger.record(S, ledger.retry_later(Claim(S, "a", 1), "500"))
    clock.advance(minutes=5)
    assert ledger.take(S, "a", "k") == Claim(S, "a", 2, T0)
    assert ledger_module._insert_unless_present("mysql") is None


# -- retries across runs ------------------------------------------------------------------


def test_retry_delays_double_from_five_minutes_up_to_six_hours(ledger, clock):
    outcome = pending(ledger, "a", "451 try later")
    waits = []
    while outcome.state == PENDING:
        assert outcome.failing_since == T0
        assert outcome.detail.startswith("451 try later; next attempt after ")
        waits.append(outcome.next_attempt_at - clock.now)
        clock.now = outcome.next_attempt_at
        claim = ledger.take(S, "a", "k")
        outcome = ledger.retry_later(claim, "451 try later")
        ledger.record(S, outcome)
    minutes = [w.total_seconds() / 60 for w in waits]
    assert minutes[:8] == [5, 5, 10, 20, 40, 80, 160, 320]
    assert max(minutes) == 360 and minutes[-1] <= 360
    assert clock.now == T0 + dt.timedelta(days=3)  # the last try on the limit, not before
    entry = ledger.entries(S)["a"]
    assert entry.state == FAILED and entry.next_attempt_at is None
    assert entry.detail == (
        f"gave up after {entry.attempts} attempts over 3 days; the last: 451 try later"
    )
    assert entry.attempts == len(waits) + 1


def test_a_retry_after_beyond_the_delay_is_honoured_and_the_limit_is_configurable(store, clock):
    ledger = Ledger(
        store.engine,
        clock=clock,
        give_up_after=dt.timedelta(hours=1),
        retry_base=dt.timedelta(minutes=1),
        retry_cap=dt.timedelta(minutes=30),
    )
    claim = ledger.take(S, "a", "k")
    assert ledger.retry_later(claim, "429", 120).next_attempt_at == T0 + dt.timedelta(minutes=2)
    assert ledger.retry_later(claim, "429", 30).next_attempt_at == T0 + dt.timedelta(minutes=1)
    assert ledger.retry_later(claim, "429").next_attempt_at == T0 + dt.timedelta(minutes=1)
    late = Claim(S, "a", 5, T0 - dt.timedelta(minutes=50))
    clamped = ledger.retry_later(late, "503", 3600)
    assert clamped.next_attempt_at == T0 + dt.timedelta(minutes=10)  # the limit, no later
    capped = ledger.retry_later(Claim(S, "a", 5, T0 - dt.timedelta(minutes=45)), "503")
    assert capped.next_attempt_at == T0 + dt.timedelta(minutes=15)
    long = Ledger(store.engine, clock=clock, retry_cap=dt.timedelta(minutes=30))
    assert long.retry_later(
        Claim(S, "a", 5, T0 - dt.timedelta(hours=2)), "503"
    ).next_attempt_at == T0 + dt.timedelta(minutes=30)
    given_up = ledger.retry_later(Claim(S, "a", 7, T0 - dt.timedelta(hours=1)), "503")
    assert given_up == Settlement(
        "a", FAILED, "gave up after 7 attempts over 1 hour; the last: 503"
    )


def test_how_long_names_the_largest_whole_unit():
    assert how_long(dt.timedelta(days=3, hours=5)) == "3 days"
    assert how_long(dt.timedelta(days=1)) == "1 day"
    assert how_long(dt.timedelta(hours=5, minutes=59)) == "5 hours"
    assert how_long(dt.timedelta(minutes=1)) == "1 minute"
    assert how_long(dt.timedelta(seconds=59)) == "59 seconds"


def test_due_rows_oldest_first_and_dropping_a_pending_one(ledger, clock):
    pending(ledger, "b")
    clock.advance(seconds=1)
    pending(ledger, "a")
    ledger.take(S, "c", "k")
    assert ledger.due(S) == []
    clock.now = T0 + dt.timedelta(minutes=5)
    assert [e.item for e in ledger.due(S)] == ["b"]
    clock.advance(seconds=1)
    assert [e.item for e in ledger.due(S)] == ["b", "a"]
    entry = ledger.entries(S)["a"]
    assert ledger.is_due(entry) and not ledger.is_due(ledger.entries(S)["c"])
    assert ledger.is_due(entry, T0 + dt.timedelta(minutes=5, seconds=1))
    assert not ledger.is_due(entry, T0 + dt.timedelta(minutes=5))
    assert ledger.drop(S, "a", "the subscriber left")
    dropped = ledger.entries(S)["a"]
    assert (dropped.state, dropped.detail, dropped.next_attempt_at) == (
        SKIPPED,
        "the subscriber left",
        None,
    )
    assert not ledger.drop(S, "c", "not pending")


# -- settling ------------------------------------------------------------------------------


def test_settle_moves_only_a_row_being_sent_and_clears_the_retry_times(ledger, clock):
    pending(ledger, "a")
    clock.advance(minutes=5)
    ledger.take(S, "a", "k")
    clock.advance(seconds=3)
    ledger.settle(S, "a", SENT, remote_id="42", remote_url="https://x/42", detail="ok")
    entry = ledger.entries(S)["a"]
    assert (entry.state, entry.remote_id, entry.remote_url, entry.detail) == (
        SENT,
        "42",
        "https://x/42",
        "ok",
    )
    assert entry.next_attempt_at is None and entry.failing_since is None
    assert entry.updated_at == clock.now
    ledger.settle(S, "a", FAILED, detail="late")  # no longer sending: unchanged
    assert ledger.entries(S)["a"].state == SENT
    ledger.take(S, "b", "k")
    for wrong in (SKIPPED, SENDING, "lost"):
        with pytest.raises(ValueError, match="cannot settle"):
            ledger.settle(S, "b", wrong)


def test_skip_records_why_and_never_overwrites(ledger):
    ledger.skip(S, {})
    assert not ledger.has_any(S)
    ledger.take(S, "a", "k")
    ledger.skip(S, {"a": "filtered", "b": "too old"})
    rows = ledger.entries(S)
    assert rows["a"].state == SENDING
    assert (rows["b"].state, rows["b"].attempts, rows["b"].detail) == (SKIPPED, 0, "too old")
    assert ledger.has_any(S) and not ledger.has_any("post:none")
    assert ledger.entries(S, []) == {} and list(ledger.entries(S, ["b", "z"])) == ["b"]


def test_settling_uncertain_rows_by_hand(ledger, clock):
    for item in ("a", "b", "c"):
        ledger.take(S, item, "k")
        ledger.settle(S, item, UNCERTAIN, detail="timed out")
        clock.advance(seconds=1)
    ledger.take("mail:w@1", "7", "<m>")
    ledger.settle("mail:w@1", "7", UNCERTAIN)
    assert [e.item for e in ledger.uncertain()] == ["a", "b", "c", "7"]
    assert [e.item for e in ledger.uncertain("mail:")] == ["7"]
    assert ledger.settle_by_hand(S, "a", sent=True, note="seen on the account")
    a = ledger.entries(S)["a"]
    assert (a.state, a.detail) == (SENT, "settled by hand as sent (seen on the account)")
    assert ledger.settle_by_hand(S, "b", sent=False)
    b = ledger.entries(S)["b"]
    assert (b.state, b.next_attempt_at, b.failing_since) == (PENDING, None, None)
    assert b.detail == "settled by hand as not sent; sent again on the next run"
    assert ledger.is_due(b) and [e.item for e in ledger.due(S)] == ["b"]
    assert not ledger.settle_by_hand(S, "a", sent=False)  # not uncertain any more
    assert [e.item for e in ledger.uncertain(S)] == ["c"]


def test_history_newest_first_with_a_limit(ledger, clock):
    for item in ("a", "b", "c"):
        ledger.take(S, item, "k")
        clock.advance(seconds=1)
    ledger.take("mail:w@1", "z", "k")
    assert [e.item for e in ledger.history()] == ["z", "c", "b", "a"]  # all, by default
    assert [e.item for e in ledger.history("post:", limit=2)] == ["c", "b"]
    assert len(ledger.history("post:", limit=None)) == len(ledger.history("post:", 0)) == 3
    assert [e.item for e in ledger.history("post:", limit=50)] == ["c", "b", "a"]


# -- crash evidence ------------------------------------------------------------------------


def test_interrupted_rows_are_those_of_a_stopped_process(store, clock):
    here = socket.gethostname()
    gone = Ledger(store.engine, clock=clock, owner=f"{here}:{dead_pid()}")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    alive = Ledger(store.engine, clock=clock, owner=f"{here}:{child.pid}")
    remote = Ledger(store.engine, clock=clock, owner="elsewhere:1")
    gone.take(S, "gone", "k")
    alive.take(S, "alive", "k")
    remote.take(S, "remote", "k")
    me = Ledger(store.engine, clock=clock, owner="me:1", stale_after=dt.timedelta(minutes=30))
    me.take(S, "mine", "k")
    assert [e.item for e in me.interrupted(S)] == ["gone"]  # fresh: only the dead one
    clock.advance(minutes=30)
    assert [e.item for e in me.interrupted(S)] == ["gone"]  # stale only after 30 minutes
    clock.advance(seconds=1)
    assert sorted(e.item for e in me.interrupted(S)) == ["alive", "gone", "remote"]
    child.kill()
    child.wait()
    assert me.reclaim(me.interrupted(S)[0])
    took = next(e for e in me.entries(S).values() if e.owner == "me:1" and e.item != "mine")
    assert took.attempts == 2 and took.updated_at == clock.now and took.state == SENDING
    stale = remote.entries(S)["remote"]
    assert not me.reclaim(dataclasses.replace(stale, owner="x:9"))  # not whose it is
    me.settle(S, "remote", SENT)
    assert not me.reclaim(stale)  # no longer sending


def test_rows_held_exclusively_are_interrupted_whoever_claimed_them(store, clock):
    """A digest batch's rows: its job runs again only after its worker stopped, so a
    row of it still sending is interrupted at once, even one claimed on another host."""
    remote = Ledger(store.engine, clock=clock, owner="elsewhere:1")
    me = Ledger(store.engine, clock=clock, owner="me:1")
    for item in ("a", "b", "c"):
        remote.take(S, item, "k")
    remote.settle(S, "c", SENT)
    assert me.interrupted(S) == []  # another host's: not yet (stale_after)
    assert sorted(e.item for e in me.interrupted(S, ["a", "c", "z"])) == ["a"]
    assert me.interrupted(S, []) == []


def test_owner_is_gone_only_for_a_dead_process_on_this_host(monkeypatch):
    here = socket.gethostname()
    assert this_process() == f"{here}:{os.getpid()}"
    assert owner_is_gone(f"{here}:{dead_pid()}")
    assert not owner_is_gone(f"elsewhere:{dead_pid()}")  # cannot tell for another host
    assert not owner_is_gone(None) and not owner_is_gone("") and not owner_is_gone(f"{here}:")
    assert not owner_is_gone(f"{here}:12ab")
    monkeypatch.setattr(socket, "gethostname", lambda: "rack:7")  # a host name with a colon
    assert owner_is_gone(f"rack:7:{dead_pid()}")
    assert not owner_is_gone(f"7:{dead_pid()}")

    def refused(pid: int, signal: int) -> None:
        raise PermissionError  # alive, but another user's

    pid = dead_pid()
    monkeypatch.setattr(os, "kill", refused)
    assert not owner_is_gone(f"rack:7:{pid}")


# -- what the tests above leave implicit ----------------------------------------------------


def test_the_insert_is_one_statement_that_says_whether_it_inserted():
    from sqlalchemy.dialects import postgresql, sqlite

    values = {"stream": S, "item": "a", "state": SENDING, "attempts": 1}
    for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        statement = ledger_module._insert_unless_present(name)
        sql = " ".join(str(statement.compile(dialect=dialect, column_keys=list(values))).split())
        assert re.search(r"ON CONFLICT DO NOTHING RETURNING (deliveries\.)?item$", sql), sql


def test_the_default_clock_is_utc_whatever_the_local_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    try:
        utc = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert abs(ledger_module.Ledger(None).now() - utc) < dt.timedelta(seconds=5)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_live_owner_is_only_asked_whether_it_lives():
    """A live process on this host is not gone (else its claim would be handed to another
    poster while it is still sending), and nothing but signal 0 is sent to it."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not owner_is_gone(f"{socket.gethostname()}:{child.pid}")
        assert child.poll() is None  # signal 0: nothing was sent to it
    finally:
        child.kill()
        child.wait()


def test_claiming_a_pending_row_moves_that_row_only(store, ledger, clock):
    pending(ledger, "a")
    pending(ledger, "b")
    clock.advance(minutes=5)
    other = Ledger(store.engine, clock=clock, owner="there:2")
    assert other.take(S, "a", "k2") == Claim(S, "a", 2, T0)
    rows = ledger.entries(S)
    assert (rows["a"].state, rows["a"].owner) == (SENDING, "there:2")
    assert (rows["b"].state, rows["b"].owner, rows["b"].attempts) == (PENDING, "here:1", 1)


def test_a_row_settled_by_hand_as_not_sent_is_claimed_at_once(ledger, clock):
    ledger.take(S, "a", "k")
    ledger.settle(S, "a", UNCERTAIN)
    clock.advance(seconds=9)
    assert ledger.settle_by_hand(S, "a", sent=False)
    assert ledger.entries(S)["a"].updated_at == clock.now
    assert ledger.take(S, "a", "k") == Claim(S, "a", 2, None)


def test_dropping_clears_the_retry_times(ledger, clock):
    pending(ledger, "a")
    clock.advance(seconds=7)
    assert ledger.drop(S, "a", "gone")
    entry = ledger.entries(S)["a"]
    assert (entry.failing_since, entry.next_attempt_at, entry.updated_at) == (None, None, clock.now)


def test_reclaim_takes_over_one_interrupted_row_only(store, clock):
    crashed = Ledger(store.engine, clock=clock, owner="gone:1")
    crashed.take(S, "a", "k")
    crashed.take(S, "b", "k")
    me = Ledger(store.engine, clock=clock, owner="me:1")
    assert me.reclaim(crashed.entries(S)["a"])
    rows = me.entries(S)
    assert (rows["a"].owner, rows["b"].owner, rows["b"].attempts) == ("me:1", "gone:1", 1)


def test_rows_changed_at_the_same_moment_list_in_a_stable_order(ledger):
    for stream, item in (("post:b", "2"), ("post:a", "2"), ("post:b", "1"), ("post:a", "1")):
        ledger.take(stream, item, "k")
        ledger.settle(stream, item, UNCERTAIN)
    assert [(e.stream, e.item) for e in ledger.uncertain()] == [
        ("post:a", "1"),
        ("post:a", "2"),
        ("post:b", "1"),
        ("post:b", "2"),
    ]
    for item in ("1", "2"):
        ledger.take("post:c", item, "k")
    assert [e.item for e in ledger.history("post:c")] == ["1", "2"]
