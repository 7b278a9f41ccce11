"""The posting stage: once per (article, channel), retries, flood guards, crashes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.channels import ChannelContext
from pipeline.channels.file import FileChannel
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import PENDING, SENDING, SENT, UNCERTAIN, Ledger
from pipeline.posting import MAX_WAIT, Poster, idempotency_key, stream_of
from pipeline.settings import default_template
from pipeline.settings.channels import FileOptions
from pipeline.sources import Item, Scan
from pipeline.store import Store
from tests.conftest import REPO

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class ScriptedChannel(FileChannel):
    """The real file channel, whose sends first consume a script of failures to raise."""

    def __init__(self, name, options, context, script=(), dedupe_window=None):
        super().__init__(name, options, context)
        self.script = list(script)
        self.keys: list[str] = []
        self.dedupe_window = dedupe_window

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
def store(state_url, site):
    store = Store(state_url, site.url)
    yield store
    store.close()


@pytest.fixture
def channel(tmp_path, site, store):
    def make(script=(), dedupe_window=None, name="out", **options):
        settings = FileOptions(
            type="file",
            path=tmp_path / f"{name}.jsonl",
            template=REPO / default_template("file"),
            **options,
        )
        context = ChannelContext(http=None, site=site, memory=store)  # type: ignore[arg-type]
        return ScriptedChannel(name, settings, context, script, dedupe_window)

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
    entries = Ledger(store.engine).entries(stream_of("out"))
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


def test_rate_limit_is_honoured_then_it_succeeds(store, channel, add, sleeps):
    add(1)
    out = channel(script=[TemporaryFailure("429 slow down", retry_after=7)])
    report = poster(store, sleeps).run_channel(out)
    assert report.sent and sleeps == [7]
    assert len(set(out.keys)) == 1 and len(out.keys) == 2  # the same key on the retry


def test_server_errors_back_off_then_wait_for_the_next_run(store, channel, add, sleeps):
    add(1)
    out = channel(script=[TemporaryFailure("500")] * 3, max_attempts=3)
    report = poster(store, sleeps).run_channel(out)
    assert report.pending and report.pending[0][1].startswith("500")
    assert sleeps == [1, 2]
    assert Ledger(store.engine).entries("post:out")["news/1"].state == PENDING
    retried = poster(store, sleeps).run_channel(out)
    assert [a for a, _ in retried.sent] == ["news/1"] and len(out.lines()) == 1


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
