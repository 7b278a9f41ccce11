"""Every store query of feeds, digests, posting, ``history`` and the ledger is served by
an index, so its cost follows what it returns, not how many articles the store holds
(issue 16). At 100,000 articles and 100,000 delivery rows, the statements the real code
runs (captured as they reach the driver, so a regressed query fails here) are EXPLAINed:

- SQLite (``EXPLAIN QUERY PLAN``), before and after ANALYZE (a real store is never
  analysed): no big table read whole (``SCAN`` without an index), and no search on a
  low-selectivity prefix only (``status=?``, ``state=?``) unless the statement stops at
  its LIMIT in index order — the plan that read every live article per chunk;
- PostgreSQL (``EXPLAIN (FORMAT JSON)``), after ANALYZE: no Seq Scan on a big table.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from pipeline.assembly import Assembly
from pipeline.digest.editions import Editions
from pipeline.ledger import Ledger
from pipeline.model import Article
from pipeline.settings import ExtraFeedSettings, load_settings
from pipeline.store import Store
from pipeline.timeline import KINDS, Filters, timeline

ARTICLES = 100_000
DELIVERIES = 100_000
RUNS = 20_000
BIG = ("articles", "article_tags", "deliveries", "runs")
LOW = {"status", "state"}  # columns with a handful of values: an index on them alone is a scan
START = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # article n is published n minutes later
NOW = START + dt.timedelta(minutes=ARTICLES + 60)


def numbers(dialect: str, count: int) -> str:
    """A FROM clause of rows n = 1 … count, made by the database itself (no round trips)."""
    if dialect == "sqlite":
        return (
            f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count})"
            " SELECT n FROM s) AS seq"
        )
    return f"generate_series(1, {count}) AS seq(n)"


def minutes_after(dialect: str, base: str, expr: str) -> str:
    if dialect == "sqlite":  # the text SQLAlchemy's SQLite DateTime stores
        return f"(datetime('{base}', '+' || ({expr}) || ' minutes') || '.000000')"
    return f"(timestamp '{base}' + ({expr}) * interval '1 minute')"


def iso(dialect: str, expr: str) -> str:
    """The JSON of an Article's publication time, ``expr`` minutes after START."""
    if dialect == "sqlite":
        return (
            f"strftime('%Y-%m-%dT%H:%M:%SZ', '2020-01-01 00:00:00', '+' || ({expr}) || ' minutes')"
        )
    return (
        f"to_char(timestamp '2020-01-01' + ({expr}) * interval '1 minute',"
        ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'
    )


def populate(conn: Connection) -> None:
    """100,000 articles (a tenth removed, a quarter Chinese translations of the next, a
    third in the blog section, a tag each and a rare one on ten), 100,000 delivery rows
    over a posting channel, another and a thousand digest editions (some pending, some
    sending), 20,000 runs."""
    d = conn.dialect.name
    template = Article(
        id="@ID@",
        source="news",
        origin="news/@ID@.md",
        url="https://news.example.org/@ID@/",
        title="Glacier report",
        published=START,
        language="en",
        section="news",
        tags=("China",),
        summary="Glaciers in the Hindu Kush Himalaya are losing mass.",
        body_html="<p>Glaciers in the Hindu Kush Himalaya are losing mass.</p>",
        read_minutes=1,
    ).model_dump_json(exclude={"guid", "translations"})
    # Each its own publication time, as in a real store: posting stops looking candidates
    # up once the rest are published later.
    template = template.replace('"published":"2020-01-01T00:00:00Z"', '"published":"@AT@"')
    assert "@AT@" in template
    at = minutes_after(d, "2020-01-01 00:00:00", "n")
    conn.execute(
        text(
            "INSERT INTO articles (id, source, item_key, fingerprint, content_hash, guid, status,"
            " published, language, section, translation_of, data, first_seen, changed_at)"
            f" SELECT 'news/' || n, 'news', n || '.md', 'fp', 'hash',"
            " 'tag:news.example.org,2020-01-01:news/' || n,"
            " CASE WHEN n % 10 = 0 THEN 'removed' ELSE 'live' END,"
            f" {at}, CASE WHEN n % 4 = 0 THEN 'zh-cn' ELSE 'en' END,"
            " CASE WHEN n % 3 = 0 THEN 'blog' ELSE 'news' END,"
            " CASE WHEN n % 4 = 0 THEN 'news/' || (n + 1) END,"
            f" replace(replace(:data, '@ID@', 'news/' || n), '@AT@', {iso(d, 'n')}),"
            f" {at}, {at}"
            f" FROM {numbers(d, ARTICLES)}"
        ),
        {"data": template},
    )
    conn.execute(
        text(
            "INSERT INTO article_tags (article_id, tag_key)"
            " SELECT 'news/' || n, CASE WHEN n % 2 = 0 THEN 'china' ELSE 'bhutan' END"
            f" FROM {numbers(d, ARTICLES)}"
        )
    )
    conn.execute(
        text(
            "INSERT INTO article_tags (article_id, tag_key)"
            f" SELECT 'news/' || (n * 9973), 'rare' FROM {numbers(d, 10)}"
        )
    )
    changed = minutes_after(d, "2025-01-01 00:00:00", "n")
    conn.execute(
        text(
            "INSERT INTO deliveries (stream, item, state, attempts, created_at, updated_at)"
            " SELECT CASE n % 10 WHEN 0 THEN 'post:archive' WHEN 1 THEN 'post:other'"
            "  ELSE 'mail:weekly-en@e' || (n % 1000) END,"
            " CASE WHEN n % 10 < 2 THEN 'news/' || n ELSE '' || n END,"
            " CASE WHEN n % 97 = 0 THEN 'pending' WHEN n % 89 = 0 THEN 'sending'"
            "  ELSE 'sent' END,"
            f" 1, {changed}, {changed} FROM {numbers(d, DELIVERIES)}"
        )
    )
    conn.execute(
        text(
            "INSERT INTO runs (schedule, action, scheduled_for, outcome, counts)"
            " SELECT CASE WHEN n % 2 = 0 THEN 'hourly' ELSE 'weekly' END,"
            " CASE WHEN n % 2 = 0 THEN 'cycle' ELSE 'digest weekly-en' END,"
            f" {minutes_after(d, '2024-01-01 00:00:00', 'n * 60')}, 'ok', '{{}}'"
            f" FROM {numbers(d, RUNS)}"
        )
    )
    conn.execute(
        text(
            "INSERT INTO editions (id, digest, scheduled_for, status, articles, subject, html,"
            " text, created_at)"
            " SELECT 'weekly-en@e' || (n * 10 + 2), 'weekly-en', "
            f" {minutes_after(d, '2025-01-01 00:00:00', 'n * 1440')}, 'sent', '[]', 's', 'h',"
            f" 't', {minutes_after(d, '2025-01-01 00:00:00', 'n * 1440')}"
            f" FROM {numbers(d, 9)}"
        )
    )


@pytest.fixture
def big(state_url: str, project) -> Iterator[tuple[Store, Assembly]]:
    """A store of 100,000 articles and the example project's settings around it."""
    root = project(with_examples=False)
    settings = load_settings(root / "config" / "pipeline.yaml")
    extra = (*settings.feeds.extra, ExtraFeedSettings(section="nothing-here"))
    extra += (ExtraFeedSettings(tag="rare"),)
    feeds = settings.feeds.model_copy(update={"extra": extra})
    settings = settings.model_copy(update={"feeds": feeds})
    store = Store(state_url, settings.site.url)
    with store.engine.begin() as conn:
        populate(conn)
    parts = Assembly(settings, store, clock=lambda: NOW, sleep=lambda s: None)
    try:
        yield store, parts
    finally:
        store.close()


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements (with their parameters) run on ``engine`` meanwhile."""
    found: list[tuple[str, Any]] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            found.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def shown(statement: str) -> str:
    """A statement for a failure message: one line, its long IN lists cut short."""
    line = " ".join(statement.split())
    return line if len(line) <= 400 else line[:400] + " …"


def sqlite_problems(conn: Connection, statement: str, parameters: Any) -> list[str]:
    plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    # Stops at its LIMIT in index order: walking an index on few values is then cheap.
    stops = " LIMIT " in statement and not any(
        line.startswith("USE TEMP B-TREE FOR ORDER BY") for line in plan
    )
    problems = []
    for line in plan:
        scan = re.match(r"SCAN (\w+)(.*)", line)
        if scan and scan.group(1) in BIG and ("INDEX" not in scan.group(2) or not stops):
            problems.append(line)
        search = re.match(r"SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \((.*)\)", line)
        if search and search.group(1) in BIG and not stops:
            columns = {
                c.split("=")[0].split(">")[0].split("<")[0] for c in search[2].split(" AND ")
            }
            if columns <= LOW:
                problems.append(line)
    return [f"{line}\n    in {shown(statement)}" for line in problems]


def postgres_problems(conn: Connection, statement: str, parameters: Any) -> list[str]:
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
    problems = []

    def walk(node: dict, limited: bool) -> None:
        # Under a LIMIT a Seq Scan may stop at once (the first 1,001 rows of a common
        # tag): whether it did is for the work check, which runs it.
        seq = node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG
        if seq and not limited:
            problems.append(f"Seq Scan on {node['Relation Name']}\n    in {shown(statement)}")
        for child in node.get("Plans", ()):
            walk(child, limited or node.get("Node Type") == "Limit")

    walk(plan[0]["Plan"], False)
    return problems


def check(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    explain = sqlite_problems if engine.dialect.name == "sqlite" else postgres_problems
    with engine.connect() as conn:
        return [p for statement, params in statements for p in explain(conn, statement, params)]


def bound(returned: int, parameters: Any, per_value: int) -> int:
    """The most work a statement may do: a little per row it returns and per value it
    looks up, never a pass over the store (a scan of 100,000 articles is ~13,000 on
    SQLite's scale, ~90,000 rows on PostgreSQL's)."""
    return 1000 + 2 * returned + per_value * len(parameters or ())


def sqlite_work(conn: Connection, statement: str, parameters: Any) -> list[str]:
    """Run it, counting SQLite VM instructions (in hundreds): a plan can look indexed
    (``SEARCH … (status=?)``, a walk in date order stopped by LIMIT) yet read every row
    when few rows match; the count says what it really read."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    raw = conn.connection.driver_connection
    raw.set_progress_handler(count, 100)
    try:
        returned = len(raw.execute(statement, parameters).fetchall())
    finally:
        raw.set_progress_handler(None, 100)
    if steps[0] <= bound(returned, parameters, 2):
        return []
    return [f"{steps[0] * 100:,} instructions for {returned} rows\n    in {shown(statement)}"]


def postgres_work(conn: Connection, statement: str, parameters: Any) -> list[str]:
    """Run it under EXPLAIN ANALYZE: the rows its scans of the big tables read (kept or
    filtered out, every loop) against the rows it returns."""
    plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
    top = plan.scalar()[0]["Plan"]
    read = [0]

    def walk(node: dict) -> None:
        if node.get("Relation Name") in BIG:
            per_loop = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
            read[0] += per_loop * node.get("Actual Loops", 1)
        for child in node.get("Plans", ()):
            walk(child)

    walk(top)
    # 20 rows a value: PostgreSQL rightly reads a channel's 10,000 ledger rows off the
    # (stream, state) index rather than probe 500 items one by one.
    if read[0] <= bound(top.get("Actual Rows", 0), parameters, 20):
        return []
    return [f"{read[0]:,} rows read for {top.get('Actual Rows')}\n    in {shown(statement)}"]


def work(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    measure = sqlite_work if engine.dialect.name == "sqlite" else postgres_work
    with engine.connect() as conn:
        return [p for statement, params in statements for p in measure(conn, statement, params)]


def analyze(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


JOBS: dict[str, Callable[[Store, Assembly], object]] = {
    # the four configured feeds plus a section nobody writes in and a tag on ten articles
    "feeds": lambda store, parts: parts.write_feeds(),
    "digest": lambda store, parts: Editions(parts.settings, store, clock=lambda: NOW).next_articles(
        "weekly-en"
    ),
    "post --dry-run": lambda store, parts: parts.post(
        parts.channels(None, preview=True),
        dry_run=True,  # type: ignore[arg-type]
    ),
    "ledger": lambda store, parts: (
        Ledger(store.engine, clock=lambda: NOW).due("post:archive"),
        Ledger(store.engine, clock=lambda: NOW).interrupted("post:archive"),
    ),
    "history": lambda store, parts: (
        timeline(store.engine),
        timeline(store.engine, Filters(kinds=KINDS)),
        timeline(store.engine, Filters(channels=("archive",))),
        timeline(store.engine, Filters(digests=("weekly-en",))),
        Ledger(store.engine).history("post:", 50),
    ),
}

# What each job must have asked, so a job that stopped querying cannot pass unseen.
EXPECTED = {
    "feeds": ("articles.language", "articles.section", "article_tags", "translation_of IN"),
    "digest": ("FROM articles", "edition_articles"),
    "post --dry-run": ("FROM articles", "FROM deliveries"),
    "ledger": ("deliveries.state",),
    "history": ("FROM runs", "FROM deliveries", "FROM editions"),
}


def test_every_query_of_the_jobs_is_served_by_an_index(big):
    store, parts = big
    engine = store.engine
    statements: dict[str, list[tuple[str, Any]]] = {}
    for name, job in JOBS.items():
        with captured(engine) as found:
            job(store, parts)
        statements[name] = found
        for fragment in EXPECTED[name]:
            assert any(fragment in s for s, _ in found), f"{name} never asked {fragment!r}"
    rounds = ["before ANALYZE", "after ANALYZE"] if engine.dialect.name == "sqlite" else []
    rounds.append("after ANALYZE")
    problems = []
    for when in dict.fromkeys(rounds):
        if when == "after ANALYZE":
            analyze(engine)
        for name, found in statements.items():
            problems += [f"{name} ({when}): {p}" for p in check(engine, found)]
            problems += [f"{name} ({when}): {p}" for p in work(engine, found)]
    assert not problems, "\n".join(problems)
