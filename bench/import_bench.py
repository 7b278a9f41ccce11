"""Subscriber import against a bare CSV read in the same run, repeated, paired.

    python bench/import_bench.py [--rows 10000 100000] [--repeats 3] [--postgres URL]

Import: an empty store takes N rows (`email,name,language,topics`) through
``SubscriberStore.import_csv`` — read, validate, look up known addresses and
suppressions, write. Again: the same file into the now full store (every row known and
unchanged). Baseline: ``csv.reader`` over the same file plus the same email validation
(``normalise_email``) of every row, storing nothing.

Audience: in the full store, who the Chinese digest (10 % of the list) and the English
one (90 %) reach, through ``SubscriberStore.audience`` (the database selects), against
the selection it replaced, done in Python over every active subscriber (read all, then
filter by the left/suppressed sets, pause and language).

Each repeat runs import, baseline
and again back to back, so that the ratio compares runs on the same machine state; the
table shows the median of the repeats and their spread (max − min) in seconds.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from pipeline.schema import list_unsubscribes, metadata, subscribers, suppressions
from pipeline.store import Store
from pipeline.subscribers import (
    ACTIVE,
    SubscriberStore,
    in_audience,
    is_paused,
    normalise_email,
)

TOPICS = ("Nepal", "China", "climate", "Bhutan", "biodiversity")


def make_file(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("email", "name", "language", "topics"))
        for n in range(count):
            chinese = n % 10 == 0
            writer.writerow(
                (
                    f"Reader.{n:06d}@Example{n % 97}.org",
                    f"读者 {n}" if chinese else f"Reader {n}",
                    "zh_cn" if chinese else "en",
                    ";".join(rng.sample(TOPICS, rng.randint(0, 2))),
                )
            )


def bare_read(path: Path) -> int:
    valid = 0
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            try:
                normalise_email(row[0])
            except ValueError:
                continue
            valid += 1
    return valid


def audience_in_python(people: SubscriberStore, languages: tuple[str, ...], list_name: str):
    """The audience as it was chosen before the database did it: every active subscriber
    read and built, then filtered here."""
    with people.engine.connect() as conn:
        query = select(list_unsubscribes.c.subscriber_id)
        left = set(conn.scalars(query.where(list_unsubscribes.c.list_name == list_name)))
        suppressed = set(conn.scalars(select(suppressions.c.address)))
    now = people.clock()
    return [
        s
        for s in people.all(ACTIVE)
        if s.id not in left
        and s.email not in suppressed
        and not is_paused(s, now)
        and in_audience(s, languages, ())
    ]


def some_leave_or_bounce(people: SubscriberStore) -> None:
    """1 in 100 left the digest, 1 in 50 addresses are suppressed: what a list has."""
    now = people.clock()
    with people.engine.begin() as conn:
        rows = conn.execute(select(subscribers.c.id, subscribers.c.email)).all()
        conn.execute(
            insert(list_unsubscribes),
            [dict(subscriber_id=r.id, list_name="digest", created_at=now) for r in rows[::100]],
        )
        conn.execute(
            insert(suppressions),
            [
                dict(address=r.email, kind="bounce", reason="5.1.1", source="dsn", created_at=now)
                for r in rows[7::50]
            ],
        )


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def one_repeat(path: Path, count: int, url: str) -> dict[str, float]:
    store = Store(url, "https://bench.example.org")
    try:
        people = SubscriberStore(store.engine)
        imported, report = timed(lambda: people.import_csv(path, "en"))
        assert report.added == count and not report.rejected, "every row must go in"
        bare, valid = timed(lambda: bare_read(path))
        assert valid == count
        again, report = timed(lambda: people.import_csv(path, "en"))
        assert report.unchanged == count
        times = {"import": imported, "bare": bare, "again": again}
        some_leave_or_bounce(people)
        for language in ("zh-CN", "en"):
            wanted = (language,)
            sql, chosen = timed(lambda w=wanted: people.audience(w, (), "digest"))
            python, before = timed(lambda w=wanted: audience_in_python(people, w, "digest"))
            assert chosen == before
            times[f"{language} sql"], times[f"{language} python"] = sql, python
        return times
    finally:
        metadata.drop_all(store.engine)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", help="run against this PostgreSQL URL instead of SQLite")
    args = parser.parse_args()
    header = ("rows", "import s", "±", "bare s", "±", "ratio", "again s", "±", "ratio")
    widths = (8, 9, 6, 8, 6, 6, 8, 6, 6)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    audiences: list[tuple[int, list[dict[str, float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.rows:
            path = Path(tmp) / f"people-{count}.csv"
            make_file(path, count)
            runs = []
            for n in range(args.repeats):
                url = args.postgres or f"sqlite:///{tmp}/state-{count}-{n}.db"
                runs.append(one_repeat(path, count, url))

            def median(name: str, runs=runs) -> float:
                return statistics.median(r[name] for r in runs)

            def spread(name: str, runs=runs) -> float:
                return max(r[name] for r in runs) - min(r[name] for r in runs)

            # the ratio of each pair, then their median: pairs share the machine's state
            ratio = statistics.median(r["import"] / r["bare"] for r in runs)
            again = statistics.median(r["again"] / r["bare"] for r in runs)
            row = (
                f"{count:,}",
                f"{median('import'):.2f}",
                f"{spread('import'):.2f}",
                f"{median('bare'):.2f}",
                f"{spread('bare'):.2f}",
                f"{ratio:.2f}",
                f"{median('again'):.2f}",
                f"{spread('again'):.2f}",
                f"{again:.2f}",
            )
            print(" ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)), flush=True)
            audiences.append((count, runs))
    print("\naudience: rows, digest, in SQL s ±, in Python s ±, ratio (SQL / Python)")
    for count, runs in audiences:
        for language in ("zh-CN", "en"):
            sql = [r[f"{language} sql"] for r in runs]
            python = [r[f"{language} python"] for r in runs]
            ratio = statistics.median(a / b for a, b in zip(sql, python, strict=True))
            print(
                f"{count:>8,} {language:>6} {statistics.median(sql):8.3f} "
                f"{max(sql) - min(sql):6.3f} {statistics.median(python):8.3f} "
                f"{max(python) - min(python):6.3f} {ratio:6.2f}"
            )


if __name__ == "__main__":
    main()
