"""Feed rendering against bare feedgen on the same entries, at 1,000 / 10,000 / 100,000.

    python bench/feeds_bench.py [--sizes 1000,10000,100000]

For each size N, one feed holding all N articles is rendered:
- ``ours``: pipeline.feeds.render for rss + atom (fixed timestamps, media, dc,
  translation links, the issue-135 workaround);
- ``bare``: a plain FeedGenerator given the same title, link, id, description,
  content, dates, author and categories, then rss_str + atom_str — the ceiling;
- ``json``: pipeline.feeds.render_json alone (feedgen has no JSON Feed).
The ratio ours/bare is the price of what the pipeline adds. Last, the job as it runs:
``write_feeds`` over a store of N articles, 50 items a feed, main feed + 3 extra feeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from feedgen.feed import FeedGenerator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.feeds import ATOM, RSS, FeedSpec, render, render_json, write_feeds
from pipeline.model import Article, Item, Scan, Translation
from pipeline.settings import ExtraFeedSettings, FeedSettings, SiteSettings
from pipeline.store import Store

SITE = "https://bench.example.org"
BODY = "<p>" + "Glaciers in the Hindu Kush Himalaya are losing mass. " * 40 + "</p>"


def articles(count: int) -> list[Article]:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    out = []
    for n in range(count):
        chinese = n % 4 == 0
        out.append(
            Article(
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
        )
    return out


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


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def job(items: list[Article]) -> float:
    """write_feeds as `pipeline feeds` runs it, from a store holding every article."""
    site = SiteSettings(name="Bench", url=SITE)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/state.db", SITE)
        store.apply("news", Scan(changed=[Item(a.id, "f", a) for a in items]))
        extra = (
            ExtraFeedSettings(language="zh-CN"),
            ExtraFeedSettings(section="blog"),
            ExtraFeedSettings(tag="China"),
        )
        feeds = FeedSettings(output=Path(tmp) / "feeds", items=50, extra=extra)
        seconds = timed(lambda: write_feeds(store, site, feeds))
        store.close()
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    spec = FeedSpec("Bench", "Bench", "en", SITE, f"{SITE}/feeds", "Bench")
    print(f"{'articles':>9} {'ours s':>8} {'bare s':>8} {'ratio':>6} {'json s':>7} {'job s':>7}")
    previous = None
    for size in sizes:
        items = articles(size)
        ours = timed(lambda items=items: render(spec, items, {"rss": RSS, "atom": ATOM}))
        baseline = timed(lambda items=items: bare(items))
        json_s = timed(lambda items=items: render_json(spec, items))
        job_s = job(items)
        scale = (
            f"  ({ours / previous[1]:.1f}x time for {size / previous[0]:.0f}x input)"
            if previous
            else ""
        )
        print(
            f"{size:>9} {ours:>8.2f} {baseline:>8.2f} {ours / baseline:>6.2f} {json_s:>7.2f}"
            f" {job_s:>7.3f}{scale}"
        )
        previous = (size, ours)


if __name__ == "__main__":
    main()
