"""Feeds and posting against the size of the store; feed rendering against bare feedgen.

    python bench/feeds_bench.py [--job 10000,100000,1000000] [--post 10000,100000]
                                [--render 1000,10000] [--repeats 3] [--only job,post,render]
    BENCH_PIPELINE=/path/to/other/checkout python bench/feeds_bench.py …   # its code instead

**job**: ``write_feeds`` as ``pipeline feeds`` runs it — the main feed and three extra
feeds (language, section, tag), 50 items each, RSS + Atom + JSON — from a store of N
articles. Its baseline in the same run: the same 4 × 50 articles, fetched beforehand,
rendered and written by the same ``write_feeds`` (the floor no store can beat). Each
repeat writes into a new folder; the medians, spread (min–max) and CPU seconds are
printed. The store is built with one INSERT … SELECT per table (a recursive CTE) and
kept in /tmp/feeds-bench/ (a million articles is ~2.5 GB: delete it afterwards).

**post**: ``pipeline post --dry-run`` as a whole process over a store of N articles, all
of them candidates (published within the last N minutes), with one file channel and
with 16; wall and CPU seconds of the child process.

**render**: one feed holding all N articles: ``pipeline.feeds.render`` (RSS + Atom)
against a plain FeedGenerator given the same entries (``bare``), and JSON Feed alone.

BENCH_PIPELINE puts another checkout first on sys.path (and on the children's
PYTHONPATH), e.g. the commit before a change, for before/after figures from one script.
A store built by newer code is copied for older code with the indexes its schema does
not know dropped and its revision set back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("BENCH_PIPELINE") or HERE).resolve()
sys.path.insert(0, str(CODE))

from feedgen.feed import FeedGenerator  # noqa: E402

from pipeline import migrations  # noqa: E402
from pipeline.feeds import (  # noqa: E402
    ATOM,
    RSS,
    FeedSpec,
    plan_feeds,
    render,
    render_json,
    write_feeds,
)
from pipeline.model import Article, Translation  # noqa: E402
from pipeline.schema import metadata  # noqa: E402
from pipeline.settings import ExtraFeedSettings, FeedSettings, SiteSettings  # noqa: E402
from pipeline.store import Store  # noqa: E402

SITE = "https://bench.example.org"
BODY = "<p>" + "Glaciers in the Hindu Kush Himalaya are losing mass. " * 40 + "</p>"
CACHE = Path("/tmp/feeds-bench")  # stores named N-REVISION.db
EXTRA = (
    ExtraFeedSettings(language="zh-CN"),
    ExtraFeedSettings(section="blog"),
    ExtraFeedSettings(tag="China"),
)


def article(n: int, count: int) -> Article:
    chinese = n % 4 == 0
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return Article(
        id=f"news/{n}",
        guid=f"tag:bench.example.org,2020-01-01:news/{n}",
        source="news",
        origin=f"news/{n}.md",
        url=f"{SITE}/news/{n}/",
        title=f"冰川报告 {n}" if chinese else f"Glacier report {n}",
        authors=("Staff Writer",),
        published=start + dt.timedelta(hours=count - n),
        language="zh-CN" if chinese else "en",
        section="news" if n % 3 else "blog",
        tags=("Nepal", "China") if n % 2 else ("Bhutan",),
        summary="Glaciers in the Hindu Kush Himalaya are losing mass…",
        body_html=BODY,
        read_minutes=2,
        image=f"{SITE}/media/{n}.jpg" if n % 5 == 0 else None,
        translations=(Translation(id="x", language="en", url=f"{SITE}/x/", title="X"),)
        if chinese
        else (),
    )


# -- the store ---------------------------------------------------------------------------


def _template(chinese: bool) -> str:
    """An article's stored JSON with @N@ for its number, @T@ for its translation and @P@
    for its publication time."""
    made = Article(
        id="news/@N@",
        source="news",
        origin="news/@N@.md",
        url=f"{SITE}/news/@N@/",
        title="冰川报告 @N@" if chinese else "Glacier report @N@",
        authors=("Staff Writer",),
        published=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        language="zh-CN" if chinese else "en",
        section="news",
        tags=("Nepal", "China"),
        summary="Glaciers in the Hindu Kush Himalaya are losing mass…",
        body_html=BODY,
        read_minutes=2,
        translation_of="news/@T@" if chinese else None,
    )
    text = made.model_dump_json(exclude={"guid", "translations"})
    text = text.replace('"published":"2020-01-01T00:00:00Z"', '"published":"@P@"')
    assert "@P@" in text, "the stored JSON of a publication time has changed"
    return text


def build(path: Path, count: int) -> None:
    """N articles in one INSERT … SELECT: newest first by number, published a minute
    apart up to now; a quarter Chinese translations of the next, a third blog posts,
    every other tagged China."""
    store = Store(f"sqlite:///{path}", SITE)  # this code's schema
    store.close()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    seq = f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count})"
    at = "datetime(:now, '-' || n || ' minutes') || '.000000'"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # a throw-away store
    with conn:
        conn.execute(
            f"{seq} INSERT INTO articles (id, source, item_key, fingerprint, content_hash, guid,"
            " status, published, language, section, translation_of, data, first_seen,"
            " changed_at)"
            " SELECT 'news/' || n, 'news', n || '.md', 'fp', 'hash',"
            " 'tag:bench.example.org,2020-01-01:news/' || n, 'live',"
            f" {at}, CASE WHEN n % 4 = 0 THEN 'zh-cn' ELSE 'en' END,"
            " CASE WHEN n % 3 = 0 THEN 'blog' ELSE 'news' END,"
            " CASE WHEN n % 4 = 0 THEN 'news/' || (n + 1) END,"
            " replace(CASE WHEN n % 4 = 0 THEN replace(replace(:zh, '@N@', n), '@T@', n + 1)"
            "  ELSE replace(:en, '@N@', n) END,"
            "  '@P@', strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || n || ' minutes')),"
            f" {at}, {at} FROM s",
            {"now": str(now), "zh": _template(True), "en": _template(False)},
        )
        conn.execute(
            f"{seq} INSERT INTO article_tags (article_id, tag_key)"
            " SELECT 'news/' || n, CASE WHEN n % 2 = 1 THEN 'china' ELSE 'bhutan' END FROM s"
        )
    conn.close()


def stored(count: int) -> str:
    """The URL of a store of ``count`` articles for the code in use (built once)."""
    head = migrations.head()
    path = CACHE / f"{count}-{head}.db"
    if path.exists():
        return f"sqlite:///{path}"
    CACHE.mkdir(parents=True, exist_ok=True)
    newer = sorted(p for p in CACHE.glob(f"{count}-*.db") if p.stem.split("-")[1] > head)
    started = time.perf_counter()
    if newer:  # older code: the same rows, without the indexes it does not know
        shutil.copy(newer[-1], path)
        known = {index.name for table in metadata.tables.values() for index in table.indexes}
        conn = sqlite3.connect(path)
        with conn:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            for (name,) in names.fetchall():
                if name.startswith("ix_") and name not in known:
                    conn.execute(f"DROP INDEX {name}")
            conn.execute("UPDATE alembic_version SET version_num = ?", (head,))
        conn.close()
    else:
        build(path, count)
    took = time.perf_counter() - started
    print(f"  (store of {count:,} articles at revision {head}: {took:.0f} s)", flush=True)
    return f"sqlite:///{path}"


# -- timing ------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of this process running ``action``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(samples: list[tuple[float, float]]) -> str:
    walls = [w for w, _ in samples]
    cpu = statistics.median(c for _, c in samples)
    return f"{statistics.median(walls):7.3f} ({min(walls):.3f}–{max(walls):.3f}) cpu {cpu:6.3f}"


class Prefetched:
    """The articles each feed shows, fetched beforehand: ``write_feeds`` without a store."""

    def __init__(self, store: Store, site: SiteSettings, feeds: FeedSettings):
        self.found = {
            _key(feed.filters): store.latest(feeds.items, **feed.filters)
            for feed in plan_feeds(site, feeds)
        }

    def latest(self, limit: int, **filters: str | None) -> list[Article]:
        return self.found[_key(filters)]


def _key(filters: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in filters.items() if v))


def job(sizes: list[int], repeats: int) -> None:
    print(f"\njob: 4 feeds × 50 items × rss/atom/json, {repeats} repeats, median (min–max) s")
    print(f"{'stored':>10}  {'job (wall, cpu)':<36} {'prefetched (wall, cpu)':<36} ratio")
    site = SiteSettings(name="Bench", url=SITE)
    for size in sizes:
        url = stored(size)
        store = Store(url, SITE)
        with tempfile.TemporaryDirectory() as tmp:
            feeds = FeedSettings(output=Path(tmp) / "feeds", items=50, extra=EXTRA)
            floor = Prefetched(store, site, feeds)
            ours: list[tuple[float, float]] = []
            bare: list[tuple[float, float]] = []
            for n in range(repeats + 1):  # the first of each warms the caches
                out = Path(tmp) / f"run{n}"
                mine = feeds.model_copy(update={"output": out / "store"})
                theirs = feeds.model_copy(update={"output": out / "floor"})
                a = timed(lambda q=store, f=mine: write_feeds(q, site, f))
                b = timed(lambda q=floor, f=theirs: write_feeds(q, site, f))
                if n:
                    ours.append(a)
                    bare.append(b)
                shutil.rmtree(out)
        store.close()
        ratio = statistics.median(w for w, _ in ours) / statistics.median(w for w, _ in bare)
        print(f"{size:>10,}  {summary(ours):<36} {summary(bare):<36} {ratio:.2f}", flush=True)


def post(sizes: list[int], channels: list[int], repeats: int) -> None:
    print(f"\npost --dry-run (whole process), {repeats} repeats, median (min–max) s")
    print(f"{'stored':>10} {'channels':>8}  wall, cpu")
    config = (HERE / "config" / "pipeline.yaml").read_text(encoding="utf-8")
    config = config[: config.index("\nchannels:")] + "\nchannels:\n"
    for size in sizes:
        url = stored(size)
        for count in channels:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                (root / "config").mkdir()
                lines = [
                    f"  ch{i}:\n    type: file\n    path: var/ch{i}.jsonl\n" for i in range(count)
                ]
                text = config.replace("# state: sqlite:///var/state.db", f"state: {url}  #")
                body = text + "".join(
                    f"{line}    max_age_hours: 100000\n    per_run: 50\n" for line in lines
                )
                (root / "config" / "pipeline.yaml").write_text(body, encoding="utf-8")
                shutil.copy(HERE / "schedules.yaml", root / "schedules.yaml")
                samples = [_post_once(root) for _ in range(repeats)]
            print(f"{size:>10,} {count:>8}  {summary(samples)}", flush=True)


def _post_once(root: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", "config/pipeline.yaml", "post", "--dry-run"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"post --dry-run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


# -- rendering against bare feedgen --------------------------------------------------------


def bare(items: list[Article]) -> tuple[bytes, bytes]:
    fg = FeedGenerator()
    fg.id(f"{SITE}/feeds/atom.xml")
    fg.title("Bench")
    fg.description("Bench")
    fg.link(href=SITE, rel="alternate")
    fg.language("en")
    for a in items:
        fe = fg.add_entry(order="append")
        fe.guid(a.guid)
        fe.title(a.title)
        fe.link(href=a.url)
        fe.description(a.summary)
        fe.content(a.body_html, type="html")
        fe.published(a.published)
        fe.updated(a.modified)
        fe.author({"name": a.authors[0]})
        fe.category([{"term": t} for t in a.tags])
    return fg.rss_str(pretty=True), fg.atom_str(pretty=True)


def rendering(sizes: list[int]) -> None:
    spec = FeedSpec("Bench", "Bench", "en", SITE, f"{SITE}/feeds", "Bench")
    print(
        f"\nrender: one feed of N articles\n{'articles':>9} {'ours s':>8} {'bare s':>8}"
        f" {'ratio':>6} {'json s':>7}"
    )
    for size in sizes:
        items = [article(n, size) for n in range(size)]
        ours, _ = timed(lambda items=items: render(spec, items, {"rss": RSS, "atom": ATOM}))
        baseline, _ = timed(lambda items=items: bare(items))
        json_s, _ = timed(lambda items=items: render_json(spec, items))
        print(f"{size:>9} {ours:>8.2f} {baseline:>8.2f} {ours / baseline:>6.2f} {json_s:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="10000,100000,1000000")
    parser.add_argument("--post", default="10000,100000")
    parser.add_argument("--channels", default="1,16")
    parser.add_argument("--render", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="job,post,render")
    args = parser.parse_args()
    sizes = {
        name: [int(s) for s in getattr(args, name).split(",") if s]
        for name in ("job", "post", "render")
    }
    only = set(args.only.split(","))
    print(
        f"code: {CODE} (store revision {migrations.head()}); {platform.node()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z"
    )
    if "job" in only:
        job(sizes["job"], args.repeats)
    if "post" in only:
        post(sizes["post"], [int(c) for c in args.channels.split(",")], args.repeats)
    if "render" in only:
        rendering(sizes["render"])


if __name__ == "__main__":
    main()
