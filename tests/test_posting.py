"""The posting stage: once per (article, channel), retries, flood guards, crashes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.channels import ChannelContext
from pipeline.channels.file import FileChannel, FileOptions
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENDING, SENT, UNCERTAIN, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import MAX_WAIT, Poster, idempotency_key, post_stream
from pipeline.settings import default_template
from tests.conftest import REPO

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class ScriptedChannel(FileChannel):
    """The real file channel, whose sends first consume a script of failures to raise."""

    def __init__(self, name, options, context, script=(), dedupe_window=None, prepare_failures=()):
        super().__init__(name, options, context)
        self.script = list(script)
        self.prepare_failures = list(prepare_failures)
        self.keys: list[str] = []
        self.dedupe_window = dedupe_window
        self.closed = False

    def prepare(self, article):
        if self.prepare_failures:
            raise self.prepare_failures.pop(0)
        return super().prepare(article)

    def close(self):
        self.closed = True
        super().close()

    def send(self, post, key):
        self.keys.append(key)
        if self.script:
            failure = self.script.pop(0)
            if failure is not None:
                raise failure
        return super().send(post, key)

    def lines(self) -> list[dict]:
        path = self.options.path
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def channel(tmp_path, site, store):
    def make(script=(), dedupe_window=None, name="out", prepare_failures=(), **options):
        settings = FileOptions(
            type="file",
            path=tmp_path / f"{name}.jsonl",
            template=REPO / default_template("file"),
            **options,
        )
        context = ChannelContext(http=None, site=site, memory=store)  # type: ignore[arg-type]
        return ScriptedChannel(name, settings, context, script, dedupe_window, prepare_failures)

    return make


@pytest.fixture
def add(store, make_article):
    def add(n: int, hours_ago: float = 1, **fields):
        article = make_article(
            id=f"news/{n}",
            url=f"https://news.example.org/news/{n}/",
            title=fields.pop("title", f"Article {n}"),
            published=NOW - dt.timedelta(hours=hours_ago),
            **fields,
        )
        store.apply("news", Scan(changed=[Item(f"{n}.md", f"fp{n}", article)]))
        return article

    return add


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


class Clock:
    """The ledger's clock (naive UTC), moved by hand: retries across runs without waiting."""

    def __init__(self, start: dt.datetime = NOW):
        self.now = start.replace(tzinfo=None)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def poster(store, sleeps, **kw):
    return Poster(store, Ledger(store.engine, **kw), sleep=sleeps, clock=lambda: NOW)


def test_each_article_once_oldest_first_and_a_rerun_posts_nothing(store, channel, add, sleeps):
    add(1, hours_ago=3), add(2, hours_ago=2), add(3, hours_ago=1)
    out = channel()
    report = poster(store, sleeps).run_channel(out)
    assert [a for a, _ in report.sent] == ["news/1", "news/2", "news/3"]
    assert [line["id"] for line in out.lines()] == ["news/1", "news/2", "news/3"]
    assert out.lines()[0]["text"].endswith("https://news.example.org/news/1/")
    again = poster(store, sleeps).run_channel(out)
    assert again.sent == [] and len(out.lines()) == 3
    entries = Ledger(store.engine).entries(post_stream("out"))
    assert {e.state for e in entries.values()} == {SENT}
    assert entries["news/1"].remote_url and entries["news/1"].key == idempotency_key(
        "post:out", "news/1"
    )


def test_an_edited_article_is_not_posted_again(store, channel, add, sleeps):
    add(1)
    out = channel()
    poster(store, sleeps).run_channel(out)
    add(1, title="Article 1, corrected")
    assert poster(store, sleeps).run_channel(out).sent == []
    assert len(out.lines()) == 1


def test_filters_age_and_per_run_cap(store, channel, add, sleeps):
    add(1, language="zh-CN")
    add(2, section="blog")
    add(3, tags=("Bhutan",))
    add(4, hours_ago=24 * 30)  # a month old: outside max_age_hours
    add(5), add(6), add(7)
    out = channel(languages=("en",), sections=("news",), per_run=2, spacing_seconds=0.5)
    first = poster(store, sleeps).run_channel(out)
    assert [a for a, _ in first.sent] == ["news/3", "news/5"]
    assert sleeps == [0.5]  # spacing between the two posts
    second = poster(store, sleeps).run_channel(out)
    assert [a for a, _ in second.sent] == ["news/6", "news/7"]
    tagged = channel(name="tagged", tags=("bhutan",))
    assert [a for a, _ in poster(store, sleeps).run_channel(tagged).sent] == ["news/3"]


def test_one_run_reads_the_store_once_for_every_channel(store, channel, add, sleeps):
    """Candidates are read once per run, over the widest max_age_hours; each channel
    still gets only its own window and filters (issue 16: not repeated per channel)."""
    add(1, hours_ago=50, language="zh-CN")
    add(2, hours_ago=30)
    add(3, hours_ago=1)
    reads = []
    recent = store.recent
    store.recent = lambda since: reads.append(since) or recent(since)
    day = channel(name="day", max_age_hours=24)
    week = channel(name="week", max_age_hours=24 * 7, languages=("en",))
    all_zh = channel(name="zh", max_age_hours=24 * 7, languages=("zh-CN",))
    names = []
    reports = poster(store, sleeps).run([day, week, all_zh], on_channel=names.append)
    assert names == ["day", "week", "zh"]
    assert [a for a, _ in reports["day"].sent] == ["news/3"]
    assert [a for a, _ in reports["week"].sent] == ["news/2", "news/3"]
    assert [a for a, _ in reports["zh"].sent] == ["news/1"]
    assert reads == [NOW - dt.timedelta(hours=24 * 7)]
    poster(store, sleeps).run([day])  # a later run reads the store again
    assert len(reads) == 2


def test_a_channel_looks_up_only_the_candidates_it_may_choose(store, channel, make_article, sleeps):
    """Oldest first, in chunks of 500: once per_run unposted ones are found (and the rest
    are published later), the remaining candidates are not looked up in the ledger."""
    made = [
        make_article(
            id=f"news/{n:04d}",
            url=f"https://news.example.org/news/{n}/",
            published=NOW - dt.timedelta(minutes=2000 - n),
        )
        for n in range(1600)
    ]
    store.apply("news", Scan(changed=[Item(f"{a.id}.md", "fp", a) for a in made]))
    ledger = Ledger(store.engine)
    ledger.skip(post_stream("out"), {a.id: "posted before" for a in made[:600]})
    asked = []
    entries = ledger.entries

    def counted(stream, items=None, **kw):
        asked.append(None if items is None else len(items))  # None: due()'s pending rows
        return entries(stream, items, **kw)

    ledger.entries = counted
    found = Poster(store, ledger, sleep=sleeps, clock=lambda: NOW).candidates(channel(per_run=3))
    assert [a.id for a in found] == ["news/0600", "news/0601", "news/0602"]
    assert asked == [500, 500, None]  # not the third and fourth chunks


def test_rate_limit_is_honoured_then_it_succeeds(store, channel, add, sleeps):
    add(1)
    out = channel(script=[TemporaryFailure("429 slow down", retry_after=7)])
    report = poster(store, sleeps).run_channel(out)
    assert report.sent and sleeps == [7]
    assert len(set(out.keys)) == 1 and len(out.keys) == 2  # the same key on the retry


def test_server_errors_back_off_then_wait_for_their_next_attempt(store, channel, add, sleeps):
    add(1)
    clock = Clock()
    out = channel(script=[TemporaryFailure("500")] * 3, max_attempts=3)
    report = poster(store, sleeps, clock=clock).run_channel(out)
    assert report.pending and report.pending[0][1].startswith("500")
    assert sleeps == [1, 2]
    entry = Ledger(store.engine).entries("post:out")["news/1"]
    assert entry.state == PENDING and entry.attempts == 3
    assert entry.next_attempt_at == clock.now + dt.timedelta(minutes=5)
    assert poster(store, sleeps, clock=clock).run_channel(out).sent == []  # not due yet
    clock.advance(minutes=5)
    retried = poster(store, sleeps, clock=clock).run_channel(out)
    assert [a for a, _ in retried.sent] == ["news/1"] and len(out.lines()) == 1
    entry = Ledger(store.engine).entries("post:out")["news/1"]
    assert entry.state == SENT and entry.next_attempt_at is None and entry.failing_since is None


def test_backoff_waits_are_per_run_not_per_post(store, channel, add, sleeps):
    """Finding 1 (for posts): five posts failing alike cost one wait per round, not five."""
    for n in range(1, 6):
        add(n, hours_ago=6 - n)
    out = channel(script=[TemporaryFailure("503")] * 20, max_attempts=4)
    report = poster(store, sleeps, clock=Clock()).run_channel(out)
    assert [a for a, _ in report.pending] == [f"news/{n}" for n in range(1, 6)]
    assert sleeps == [1, 2, 4]  # was [1, 2, 4] for each of the five posts
    assert len(out.keys) == 20 and report.sent == []


def test_a_post_that_keeps_failing_is_retried_with_growing_delays_then_given_up(
    store, channel, add, sleeps
):
    add(1), add(2, hours_ago=0.5)
    clock = Clock()
    out = channel(script=[TemporaryFailure("502 Bad Gateway")] * 1000, max_attempts=1)
    first = poster(store, sleeps, clock=clock).run_channel(out)
    # The failing post holds up nothing: the next one was tried in the same run.
    assert [a for a, _ in first.pending] == ["news/1", "news/2"]
    ledger = Ledger(store.engine)
    waits, start = [], clock.now
    while (entry := ledger.entries("post:out")["news/1"]).state == PENDING:
        assert entry.failing_since == start and "502 Bad Gateway" in entry.detail
        waits.append(entry.next_attempt_at - clock.now)
        clock.now = entry.next_attempt_at
        poster(store, sleeps, clock=clock).run_channel(out)
    minutes = [w.total_seconds() / 60 for w in waits]
    assert minutes[:5] == [5, 5, 10, 20, 40]  # doubling: each wait the time failed so far
    assert max(minutes) == 6 * 60  # capped
    assert clock.now == start + dt.timedelta(days=3)  # the last try falls on the limit
    assert entry.state == FAILED and entry.detail.startswith("gave up after")
    assert "3 days" in entry.detail and entry.detail.endswith("the last: 502 Bad Gateway")
    assert entry.attempts == len(waits) + 1 and entry.next_attempt_at is None
    assert poster(store, sleeps, clock=clock).run_channel(out).sent == []  # never again
    assert sleeps == []  # max_attempts 1: no waits in any run


def test_a_long_retry_after_defers_the_whole_channel(store, channel, add, sleeps):
    add(1), add(2)
    out = channel(script=[TemporaryFailure("429", retry_after=MAX_WAIT + 1)])
    report = poster(store, sleeps).run_channel(out)
    assert [a for a, _ in report.pending] == ["news/1"] and report.sent == [] and sleeps == []
    assert "news/2" not in Ledger(store.engine).entries("post:out")


def test_permanent_failure_is_recorded_with_the_reason_and_not_retried(store, channel, add, sleeps):
    add(1), add(2)
    out = channel(script=[PermanentFailure("401: The access token is invalid")])
    report = poster(store, sleeps).run_channel(out)
    assert report.failed == [("news/1", "401: The access token is invalid")]
    assert [a for a, _ in report.sent] == ["news/2"]
    assert poster(store, sleeps).run_channel(out).sent == []
    assert (
        Ledger(store.engine).entries("post:out")["news/1"].detail
        == "401: The access token is invalid"
    )


def test_unknown_outcome_is_uncertain_unless_the_channel_dedupes(store, channel, add, sleeps):
    add(1)
    timeout = TemporaryFailure("no answer", unknown_outcome=True)
    plain = channel(script=[timeout])
    report = poster(store, sleeps).run_channel(plain)
    assert report.uncertain and not plain.lines()
    assert poster(store, sleeps).run_channel(plain).sent == []  # never resent blindly
    dedupes = channel(name="masto", script=[timeout], dedupe_window=dt.timedelta(hours=1))
    report = poster(store, sleeps).run_channel(dedupes)
    assert report.sent and dedupes.keys[0] == dedupes.keys[1]


def _leave_sending(store, stream, item, key, created):
    """What a process killed mid-send leaves behind: a claimed row owned by a dead pid."""
    crashed = Ledger(store.engine, owner="crashed-host:1", clock=lambda: created)
    assert crashed.claim(stream, item, key)


def test_a_crash_mid_send_leaves_the_post_uncertain(store, channel, add, sleeps):
    add(1), add(2)
    out = channel()
    _leave_sending(
        store, "post:out", "news/1", "k1", NOW.replace(tzinfo=None) - dt.timedelta(hours=2)
    )
    report = poster(store, sleeps).run_channel(out)
    assert [a for a, _ in report.uncertain] == ["news/1"]
    assert [a for a, _ in report.sent] == ["news/2"]
    assert Ledger(store.engine).entries("post:out")["news/1"].state == UNCERTAIN


def test_a_crash_mid_send_is_resent_with_the_same_key_where_the_network_dedupes(
    store, channel, add, sleeps
):
    add(1)
    window = dt.timedelta(hours=1)
    masto = channel(name="masto", dedupe_window=window)
    created = NOW.replace(tzinfo=None) - dt.timedelta(minutes=90)  # stale, but the key is too old
    _leave_sending(store, "post:masto", "news/1", "old-key", created)
    assert poster(store, sleeps).run_channel(masto).uncertain  # past the key's lifetime
    add(2)
    fresh = NOW.replace(tzinfo=None) - dt.timedelta(minutes=70)
    _leave_sending(store, "post:masto", "news/2", "k2", fresh)
    report = poster(store, sleeps, stale_after=dt.timedelta(minutes=60)).run_channel(
        channel(name="masto", dedupe_window=dt.timedelta(hours=2))
    )
    assert [a for a, _ in report.sent] == ["news/2"]


def test_a_live_claim_by_another_process_is_left_alone(store, channel, add, sleeps):
    add(1)
    other = Ledger(store.engine, owner="other-host:42", clock=lambda: NOW.replace(tzinfo=None))
    assert other.claim("post:out", "news/1", "k")
    report = poster(store, sleeps).run_channel(channel())
    assert report.sent == [] and report.uncertain == []
    assert Ledger(store.engine).entries("post:out")["news/1"].state == SENDING


def test_dry_run_shows_posts_and_changes_nothing(store, channel, add, sleeps):
    add(1, title="山地 🏔️ news")
    out = channel()
    report = poster(store, sleeps).run_channel(out, dry_run=True)
    (post,) = report.previews
    assert post.text.startswith("山地 🏔️ news") and post.body["id"] == "news/1"
    assert not out.lines() and not Ledger(store.engine).has_any("post:out")
    assert [a for a, _ in poster(store, sleeps).run_channel(out).sent] == ["news/1"]


def test_one_channels_failure_never_stops_the_others(store, channel, add, sleeps):
    """Finding 2: an interrupted Mastodon post whose resend needs prepare(), while the
    instance answers 503, used to abort every channel in the run."""
    add(1), add(2)
    window = dt.timedelta(hours=2)  # the key is still fresh; the claim is over an hour old
    down = TemporaryFailure("GET /api/v2/instance: 503 Service Unavailable")
    masto = channel(name="masto", dedupe_window=window, prepare_failures=[down] * 5)
    created = NOW.replace(tzinfo=None) - dt.timedelta(minutes=70)
    _leave_sending(store, "post:masto", "news/1", "k1", created)
    broken = channel(name="broken", prepare_failures=[RuntimeError("template blew up")])
    out = channel()
    reports = poster(store, sleeps).run([masto, broken, out])
    assert [a for a, _ in reports["out"].sent] == ["news/1", "news/2"]  # the others ran
    assert reports["masto"].pending and "503" in reports["masto"].pending[0][1]
    assert not reports["masto"].ok and not reports["broken"].ok
    assert reports["broken"].failed == [("channel", "stopped by RuntimeError: template blew up")]
    # The interrupted row is left as it was, for a later run to resend with its key.
    row = Ledger(store.engine).entries("post:masto")["news/1"]
    assert row.state == SENDING and row.owner == "crashed-host:1"
    assert masto.closed and broken.closed and out.closed
    again = channel(name="masto", dedupe_window=window)
    later = poster(store, sleeps).run_channel(again)
    assert [a for a, _ in later.sent] == ["news/1", "news/2"] and again.keys[0] == "k1"


def test_an_unexpected_error_while_sending_leaves_the_post_uncertain(store, channel, add, sleeps):
    add(1), add(2)
    out = channel(script=[KeyError("id")])
    other = channel(name="other")
    reports = poster(store, sleeps).run([out, other])
    assert [a for a, _ in reports["out"].uncertain] == ["news/1"]
    assert reports["out"].failed == [("channel", "stopped by KeyError: 'id'")]
    assert Ledger(store.engine).entries("post:out")["news/1"].state == UNCERTAIN
    assert [a for a, _ in reports["other"].sent] == ["news/1", "news/2"]


def test_a_timeout_on_a_deduplicating_channel_is_uncertain_when_the_run_ends_unsure(
    store, channel, add, sleeps
):
    add(1)
    timeout = TemporaryFailure("read timed out", unknown_outcome=True)
    masto = channel(
        name="masto", script=[timeout] * 4, dedupe_window=dt.timedelta(hours=1), max_attempts=4
    )
    report = poster(store, sleeps).run_channel(masto)
    assert sleeps == [1, 2, 4] and len(set(masto.keys)) == 1
    # Resent later, outside Mastodon's one-hour key window, it could appear twice.
    assert [a for a, _ in report.uncertain] == ["news/1"]
    assert Ledger(store.engine).entries("post:masto")["news/1"].state == UNCERTAIN


def test_a_long_retry_after_sets_the_next_attempt(store, channel, add, sleeps):
    add(1)
    clock = Clock()
    out = channel(script=[TemporaryFailure("429", retry_after=3600)])
    poster(store, sleeps, clock=clock).run_channel(out)
    entry = Ledger(store.engine).entries("post:out")["news/1"]
    assert entry.next_attempt_at == clock.now + dt.timedelta(hours=1)
    clock.advance(minutes=59)
    assert poster(store, sleeps, clock=clock).run_channel(out).sent == []
    clock.advance(minutes=1)
    assert [a for a, _ in poster(store, sleeps, clock=clock).run_channel(out).sent] == ["news/1"]


def test_a_pending_post_whose_article_is_gone_is_dropped(store, channel, add, sleeps):
    clock = Clock()
    ledger = Ledger(store.engine, clock=clock)
    claim = ledger.take("post:out", "news/gone", "k")
    ledger.record("post:out", ledger.retry_later(claim, "500"))
    clock.advance(hours=1)
    assert poster(store, sleeps, clock=clock).run_channel(channel()).sent == []
    entry = ledger.entries("post:out")["news/gone"]
    assert entry.state == "skipped" and "no longer in the store" in entry.detail


def test_a_rate_limit_in_a_retry_round_leaves_nothing_half_done(store, channel, add, sleeps):
    add(1, hours_ago=2), add(2, hours_ago=1)
    masto = channel(
        name="masto",
        dedupe_window=dt.timedelta(hours=1),
        script=[
            TemporaryFailure("read timed out", unknown_outcome=True),  # 1: may have arrived
            TemporaryFailure("500"),  # 2: certainly not
            TemporaryFailure("429", retry_after=MAX_WAIT + 1),  # 1 again, in round 1
        ],
    )
    report = poster(store, sleeps, clock=Clock()).run_channel(masto)
    assert sleeps == [1]
    assert [a for a, _ in report.uncertain] == ["news/1"]
    assert [a for a, _ in report.pending] == ["news/2"]
    states = {i: e.state for i, e in Ledger(store.engine).entries("post:masto").items()}
    assert states == {"news/1": UNCERTAIN, "news/2": PENDING}  # nothing left "sending"
