"""Scale-out: a 20,000-recipient edition sent by 1, 2 and 4 ``pipeline worker`` processes,
and by one worker over 1 and 4 SMTP connections, against an SMTP server 20 ms away.

    python bench/scale_bench.py [--recipients 20000] [--window 20] [--rounds 3]

Needs the PostgreSQL every machine has (127.0.0.1:5432, trust, database ``test``;
``--database`` for another); the bench works in a schema of its own, dropped at the end.

Setup (not timed): a throw-away copy of the example project with ``queue: {engine:
procrastinate, batch_size: 500}``, the example site ingested and N English subscribers
imported. The SMTP server (``tests/smtp_sink.py``) runs in this process and holds each
DATA reply 20 ms without blocking the other connections, as a remote server's latency
does; it keeps only who got what.

Each configuration (``1 worker``, ``2 workers``, ``4 workers``, each with one SMTP
connection, and ``1 worker × 4 connections``) starts from an empty ledger: the digest is
fired as ``serve`` fires it, the workers plan and fan it out, and the rate is the
messages that arrive in ``--window`` seconds after the first ``--warmup`` seconds (the
edition outlasts the window at every setting, so it is the steady rate). Workers are then
killed and the ledger cleared for the next configuration. Configurations alternate within
each round, so drift on a shared machine hits them all alike; the table gives the median
and the spread (min–max) over the rounds, and each rate as a ratio to ``1 worker``.

Then ``rate held``: 4 workers with ``email.rate: 100`` (one rate shared through the
database), measured the same way: it should read 100 or just under.

Last, ``ledger``: ``Ledger.claim`` + ``settle`` of N rows on PostgreSQL, one process,
against a bare baseline of the same two statements (an INSERT and an UPDATE, each its own
transaction) with psycopg, in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402

from tests.smtp_sink import SinkServer  # noqa: E402

DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CONFIGS = {  # name: (workers, SMTP connections per worker)
    "1 worker": (1, 1),
    "2 workers": (2, 1),
    "4 workers": (4, 1),
    "1 worker × 4 connections": (1, 4),
}
RESET = (  # what a configuration leaves behind, cleared for the next one
    "DELETE FROM deliveries",
    "DELETE FROM edition_batches",
    "DELETE FROM edition_articles",
    "DELETE FROM editions",
    "DELETE FROM fires",
    "DELETE FROM runs",
    "DELETE FROM pacers",
    "DELETE FROM procrastinate_jobs",
    "DELETE FROM procrastinate_workers",
)


def with_schema(url: str, schema: str) -> str:
    return f"{url}?options=-csearch_path%3D{schema}"


class Project:
    def __init__(self, folder: Path, state: str, port: int, recipients: int):
        self.root = folder / "project"
        (self.root / "config").mkdir(parents=True)
        shutil.copy(REPO / "schedules.yaml", self.root / "schedules.yaml")
        shutil.copytree(REPO / "examples", self.root / "examples")
        self.base = (REPO / "config" / "pipeline.yaml").read_text(encoding="utf-8")
        self.base = self.base.replace("# state: sqlite:///var/state.db", f"state: {state}  #")
        self.state, self.port = state, port
        self.configure(connections=1, rate=0)
        self.cli("ingest")
        rows = "".join(f"reader{n:06}@example.org,Reader {n},en,\n" for n in range(recipients))
        (self.root / "readers.csv").write_text("email,name,language,topics\n" + rows, "utf-8")
        self.cli("subscribers", "import", str(self.root / "readers.csv"))
        self.engine = create_engine(state)

    def configure(self, connections: int, rate: float) -> None:
        smtp = f"  delivery: smtp\n  rate: {rate}\n  smtp:\n    host: 127.0.0.1\n"
        smtp += f"    port: {self.port}\n    security: none\n    connections: {connections}\n  # "
        config = self.base.replace("  delivery: outbox ", smtp)
        config += "queue:\n  engine: procrastinate\n  batch_size: 500\n  stalled_after: 10\n"
        (self.root / "config" / "pipeline.yaml").write_text(config, encoding="utf-8")

    def cli(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=self.root,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def fire(self) -> None:
        from pipeline.actions import parse_action
        from pipeline.queue.enqueue import Enqueuer
        from pipeline.queue.schema import ensure_schema
        from pipeline.settings import load_settings
        from pipeline.store import Store

        settings = load_settings(self.root / "config" / "pipeline.yaml")
        store = Store(settings.state, settings.site.url)
        try:
            ensure_schema(store.engine)
            action = parse_action("digest weekly-en", settings.digests, settings.channels)
            when = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
            assert Enqueuer(store.engine, settings).fire("bench", action, when) is not None
        finally:
            store.close()

    def reset(self) -> None:
        with self.engine.begin() as conn:
            for statement in RESET:
                conn.execute(text(statement))


def measure(
    project: Project, sink: SinkServer, workers: int, connections: int, rate: float, args
) -> float:
    """Messages a second arriving at the sink in the window, with this many workers."""
    project.reset()
    project.configure(connections, rate)
    sink.sink.arrivals.clear()
    sink.sink.received.clear()
    project.fire()
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker", "--concurrency", "1"],
            cwd=project.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        while not sink.sink.arrivals:  # start-up and planning are not the steady rate
            time.sleep(0.05)
        start = sink.sink.arrivals[0] + args.warmup
        end = start + args.window
        time.sleep(max(0.0, end - time.monotonic()) + 0.1)
        arrived = [t for t in list(sink.sink.arrivals) if start <= t < end]
        if len(sink.sink.arrivals) >= args.recipients:
            sys.exit("the edition ended inside the window: use more --recipients")
        return len(arrived) / args.window
    finally:
        for worker in running:
            worker.send_signal(signal.SIGKILL)
            worker.wait()


def ledger_rates(url: str, count: int) -> tuple[float, float]:
    """(claim+settle a second, bare INSERT+UPDATE a second) on PostgreSQL."""
    import psycopg

    from pipeline.ledger import SENT, Ledger
    from pipeline.store import Store

    store = Store(url, "https://news.example.org")
    ledger = Ledger(store.engine)
    started = time.perf_counter()
    for n in range(count):
        assert ledger.claim("mail:bench", str(n), key=f"<{n}@bench>")
        ledger.settle("mail:bench", str(n), SENT, remote_id=f"<{n}@bench>")
    ours = count / (time.perf_counter() - started)
    store.close()
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE bare_ledger (item text PRIMARY KEY, state text)")
        started = time.perf_counter()
        for n in range(count):
            conn.execute("INSERT INTO bare_ledger VALUES (%s, 'sending')", (str(n),))
            conn.execute("UPDATE bare_ledger SET state = 'sent' WHERE item = %s", (str(n),))
        bare = count / (time.perf_counter() - started)
    return ours, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ledger", type=int, default=5000, help="rows for the ledger rate")
    parser.add_argument("--database", default=DATABASE)
    args = parser.parse_args()

    schema = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(args.database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    state = with_schema(args.database, schema)
    try:
        with tempfile.TemporaryDirectory() as folder, SinkServer(delay=0.020) as sink:
            print(f"setting up {args.recipients:,} recipients …", flush=True)
            project = Project(Path(folder), state, sink.port, args.recipients)
            rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
            for round_ in range(args.rounds):
                for name, (workers, connections) in CONFIGS.items():
                    rates[name].append(measure(project, sink, workers, connections, 0, args))
                    print(f"round {round_ + 1}: {name}: {rates[name][-1]:.1f} msg/s", flush=True)
            held = measure(project, sink, 4, 1, 100, args)
            project.engine.dispose()
        one = statistics.median(rates["1 worker"])
        print(f"\n{args.recipients:,} recipients, SMTP 20 ms a message, {args.window:g} s windows")
        print("| setting | msg/s median | spread | ratio to 1 worker |")
        print("|---|---:|---:|---:|")
        for name, values in rates.items():
            median = statistics.median(values)
            spread = f"{min(values):.1f}–{max(values):.1f}"
            print(f"| {name} | {median:.1f} | {spread} | {median / one:.2f} |")
        print(f"\nrate held: email.rate 100 with 4 workers → {held:.1f} msg/s measured")
        ours, bare = ledger_rates(state, args.ledger)
        print(
            f"ledger on PostgreSQL: claim+settle {ours:.0f}/s, bare INSERT+UPDATE {bare:.0f}/s, "
            f"ratio {ours / bare:.2f}"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
