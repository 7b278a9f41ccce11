"""One digest edition to N subscribers over SMTP, against a bare smtplib loop in the same run.

    python bench/digest_bench.py [--count 10000] [--scale] [--runs 3] [--state sqlite|postgres]

Setup (not timed): a throw-away project like the tests' ``project`` fixture (the repo's
config/, templates/ and examples/ copied to a temp folder), email delivery pointed at an
aiosmtpd server that discards (``mailer_bench.serve``: a separate process on 127.0.0.1,
so it does not share our GIL), the state a SQLite file in the project's ``var/``, the
example site ingested and N English subscribers inserted in one statement. With
``--state postgres`` the state store is a fresh schema on the local PostgreSQL
(``PIPELINE_BENCH_POSTGRES``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
instead of the SQLite file.

- ``ours``: ``Digests(...).send("weekly-en")`` end to end, as ``pipeline digest send``
  runs it: choose the articles, render Jinja → MJML → HTML once, freeze the edition, then
  per subscriber sign an unsubscribe token, personalise, build the message, claim a
  ledger row while the message is staged on the connection (all but the final dot),
  end the message once the claim is committed, settle the row.
- ``bare``: the same edition's messages, built beforehand with ``Digests.message``,
  sent with ``smtplib.SMTP(host, port).send_message`` in a loop on one connection
  (``mailer_bench.bare``): SMTP plus the standard library flattening each message. At
  most 2,000 distinct messages are built and cycled (sending flattens every message
  anew, so reuse costs as much as new).
- ``wire``: the same messages as bytes, encoded beforehand, sent with
  ``smtplib.SMTP.sendmail`` in a loop on one connection — the wire's own ceiling.

``bare x`` and ``wire x`` are ours/bare and ours/wire in messages per second (targets:
at least 0.5 of bare, at least 0.6 of wire). Each side runs ``--runs`` times (default 3),
alternating; the table gives the median and the spread of the rates.
``cpu`` is this process only (the server's share is in the wall time). The last line
splits ours per message, timed inside the run: ``message`` (token, personalise, build
the EmailMessage), ``stage`` (``SmtpTransport.stage``: envelope, DATA, body), ``finish``
(the final dot and the server's answer), ``settle`` (the last), everything else (from the
median run; waiting for a claim that outlasts its stage is here), and in brackets
``claim`` (``Ledger.take``: one commit that claims this message and settles the one
before), which runs on its own thread beside ``stage``. Every ``ours``
run gets a fresh project (a new edition needs unsent articles). ``--scale`` adds a run
at 10x the count. At 10,000 with 3 runs it takes about 6 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.policy
import os
import shutil
import smtplib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import requests
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # pipeline
sys.path.insert(0, str(Path(__file__).resolve().parent))  # mailer_bench

from mailer_bench import bare, discard_server

from pipeline.digest.sending import Digests, EditionReport
from pipeline.ingest import ingest
from pipeline.mailer import Staged, Transport, open_transport, wire_bytes
from pipeline.schema import subscribers
from pipeline.settings import Settings, load_settings
from pipeline.sources import build_sources
from pipeline.store import Store
from pipeline.subscribers import ACTIVE, SubscriberStore
from pipeline.tokens import link_secret

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
DIGEST = "weekly-en"
DISTINCT = 2000  # messages built for the bare loop, cycled beyond that
# Steps on the sending thread, which add up to the wall time with "other"; "claim" runs
# on the claim thread at the same time as "stage" (only what it adds shows in "other").
SPLIT = ("message", "stage", "finish", "settle")
TARGET, WIRE_TARGET = 0.5, 0.6
POSTGRES = os.environ.get(
    "PIPELINE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NAMES = ("Pema Gyamtsho", "Anna Berg", "Sonam Wangchuk", "Zoë Ünal-Brontë", "")


def postgres_schema() -> str:
    """A new empty schema on the bench server; its URL sets the search path to it."""
    schema = f"digest_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return schema


def drop_schemas(prefix: str = "digest_bench_") -> None:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        names = conn.scalars(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": prefix + "%"}
        ).all()
        for name in names:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


def make_project(root: Path, port: int, count: int, state: str) -> tuple[Settings, Store]:
    """The example project sending to 127.0.0.1:port, ingested, with ``count`` subscribers,
    its state in SQLite or in a fresh PostgreSQL schema."""
    (root / "config").mkdir(parents=True)
    shutil.copytree(REPO / "examples", root / "examples")
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n"
    smtp += "    security: none\n  # "
    config_text = (REPO / "config" / "pipeline.yaml").read_text(encoding="utf-8")
    if "  delivery: outbox " not in config_text:
        raise SystemExit("config/pipeline.yaml has no `  delivery: outbox` line to replace")
    config_text = config_text.replace("  delivery: outbox ", smtp)
    if state == "postgres":
        options = f"-csearch_path%3D{postgres_schema()}"
        config_text = f"state: {POSTGRES}?options={options}\n" + config_text
    config.write_text(config_text, encoding="utf-8")
    settings = load_settings(config)
    store = Store(settings.state, settings.site.url)
    with requests.Session() as http:
        report = ingest(build_sources(settings.sources, settings.site, http), store)
    if not report.ok:
        raise SystemExit(f"ingesting the example site failed: {report}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        {
            "email": f"reader{i:06d}@example.org",
            "name": f"{NAMES[i % len(NAMES)]} {i}" if NAMES[i % len(NAMES)] else "",
            "language": "en",
            "topics": "[]",
            "status": ACTIVE,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(subscribers), rows)
    return settings, store


def ours(settings: Settings, store: Store, count: int) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of the send, and seconds spent in each step (see SPLIT)."""
    split = dict.fromkeys(SPLIT, 0.0)

    def timed(step: str, action: Callable[..., T]) -> Callable[..., T]:
        def run(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                return action(*args, **kwargs)
            finally:
                split[step] += time.perf_counter() - start

        return run

    email = settings.email
    assert email is not None

    def transport() -> Transport:
        opened = open_transport(email)
        stage = timed("stage", opened.stage)  # type: ignore[attr-defined]

        def staged(message: EmailMessage) -> Staged:
            begun = stage(message)
            return Staged(timed("finish", begun.finish), begun.abandon)

        opened.stage = staged  # type: ignore[attr-defined]
        return opened

    digests = Digests(settings, store, transport=transport, sleep=time.sleep)
    # Wrapped on these instances only: two perf_counter calls a step, about a microsecond.
    digests.message = timed("message", digests.message)  # type: ignore[method-assign]
    # take: the claim of one message, with the settling of the one before in its commit
    claimed = [0.0]

    def take(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return digests.ledger.__class__.take(digests.ledger, *args, **kwargs)
        finally:
            claimed[0] += time.perf_counter() - start

    digests.ledger.take = take  # type: ignore[method-assign]
    digests.ledger.settle = timed("settle", digests.ledger.settle)  # type: ignore[method-assign]
    start, cpu = time.perf_counter(), time.process_time()
    report = digests.send(DIGEST)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    check(report, count)
    split["other"] = wall - sum(split.values())
    split["(claim, beside stage)"] = claimed[0]
    return wall, cpu, split


def check(report: EditionReport, count: int) -> None:
    if report.skipped or not report.ok or len(report.sent) != count:
        raise SystemExit(
            f"the edition was not sent whole: skipped={report.skipped!r}, "
            f"sent={len(report.sent)}, failed={report.failed[:3]}, "
            f"pending={report.pending[:3]}, uncertain={report.uncertain[:3]}"
        )


def prepare(settings: Settings, store: Store, count: int) -> list[EmailMessage]:
    """The bare loop's messages: one edition's, for up to DISTINCT of its subscribers."""
    email = settings.email
    assert email is not None
    digests = Digests(settings, store, transport=lambda: open_transport(email), sleep=time.sleep)
    edition = digests.edition(DIGEST)
    digest = settings.digests[DIGEST]
    secret = link_secret(email.unsubscribe.secret, store)
    audience = SubscriberStore(store.engine).audience(
        digest.audience.languages, digest.audience.topics
    )
    if len(audience) != count:
        raise SystemExit(f"audience of {DIGEST} is {len(audience)}, not {count}")
    return [digests.message(edition, digest, s, secret) for s in audience[:DISTINCT]]


def wire_loop(port: int, messages: list[bytes], count: int) -> tuple[float, float]:
    """Pre-encoded bytes through ``sendmail`` on one connection: SMTP and nothing else."""
    start, cpu = time.perf_counter(), time.process_time()
    smtp = smtplib.SMTP("127.0.0.1", port)
    for i in range(count):
        smtp.sendmail(
            "digest@example.org", [f"reader{i:06d}@example.org"], messages[i % len(messages)]
        )
    smtp.quit()
    return time.perf_counter() - start, time.process_time() - cpu


def rates(count: int, runs: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """Median messages per second, its spread (lowest, highest) and median CPU ms."""
    per_second = [count / wall for wall, _ in runs]
    cpu_ms = statistics.median(cpu / count * 1000 for _, cpu in runs)
    return statistics.median(per_second), min(per_second), max(per_second), cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="subscribers (default 10,000)")
    parser.add_argument("--scale", action="store_true", help="also run at 10x the count")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    try:
        run(args)
    finally:
        if args.state == "postgres":
            drop_schemas()


def run(args: argparse.Namespace) -> None:
    counts = [args.count, args.count * 10] if args.scale else [args.count]
    with discard_server() as port, tempfile.TemporaryDirectory(prefix="digest-bench-") as temp:
        made = 0

        def fresh(count: int) -> tuple[Settings, Store]:
            nonlocal made
            made += 1
            return make_project(Path(temp) / f"project-{made}", port, count, args.state)

        settings, store = fresh(args.count)
        try:
            messages = prepare(settings, store, args.count)
        finally:
            store.close()
        encoded = [wire_bytes(m) for m in messages]
        wire_data = encoded[0]
        received = BytesParser(policy=email.policy.default).parsebytes(wire_data)
        assert isinstance(received, EmailMessage)
        html = received.get_body(("html",))
        size = len(html.get_content().encode()) if html else 0
        wire_size = len(wire_data)
        print(
            f"edition {DIGEST}: HTML {size / 1024:.1f} KB, {wire_size / 1024:.1f} KB on the wire; "
            f"state on {args.state}; {args.runs} runs each, medians (spread)"
        )
        print(
            f"{'messages':>9} {'ours/s':>15} {'bare/s':>15} {'wire/s':>15} "
            f"{'bare x':>6} {'wire x':>6} {'cpu ms ours/bare/wire':>22}",
            flush=True,
        )
        splits: list[tuple[int, float, dict[str, float]]] = []
        for count in counts:
            ours_runs: list[tuple[float, float, dict[str, float]]] = []
            bare_runs: list[tuple[float, float]] = []
            wire_runs: list[tuple[float, float]] = []
            for _ in range(args.runs):
                bare_runs.append(bare(port, messages, count))
                wire_runs.append(wire_loop(port, encoded, count))
                settings, store = fresh(count)
                try:
                    ours_runs.append(ours(settings, store, count))
                finally:
                    store.close()
            o = rates(count, [(w, c) for w, c, _ in ours_runs])
            b, w = rates(count, bare_runs), rates(count, wire_runs)
            cells = "".join(f" {r[0]:>5.0f} ({r[1]:>3.0f}–{r[2]:>3.0f})" for r in (o, b, w))
            print(
                f"{count:>9,}{cells} {o[0] / b[0]:>6.2f} {o[0] / w[0]:>6.2f} "
                f"{o[3]:>8.2f} {b[3]:>6.2f} {w[3]:>6.2f}  targets {TARGET} and {WIRE_TARGET}",
                flush=True,
            )
            median_run = sorted(ours_runs, key=lambda r: r[0])[len(ours_runs) // 2]
            splits.append((count, median_run[0], median_run[2]))
        for count, o_wall, split in splits:
            steps = ", ".join(f"{k} {v / count * 1000:.2f}" for k, v in split.items())
            ms = o_wall / count * 1000
            print(f"ms a message at {count:,} (median run): ours {ms:.2f} = {steps}")


if __name__ == "__main__":
    main()
