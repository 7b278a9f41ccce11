"""``email.smtp.connections``: one send over several SMTP connections at once, everyone
still once; and ``email.rate`` held across connections (``LocalPacer``) and across
processes and machines (``SharedPacer``, on PostgreSQL's clock)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.pacing import LocalPacer, SharedPacer
from tests.conftest import invoke
from tests.smtp_sink import SinkServer


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer(delay=0.005) as server:
        yield server


def smtp_project(root: Path, port: int, connections: int, rate: float = 0) -> None:
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  rate: {rate}\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n"
    smtp += f"    security: none\n    connections: {connections}\n  # "
    config.write_text(
        config.read_text(encoding="utf-8").replace("  delivery: outbox ", smtp), "utf-8"
    )


def import_readers(root: Path, count: int) -> set[str]:
    readers = [f"reader{n:04}@example.org" for n in range(count)]
    rows = "".join(f"{address},Reader {n},en,\n" for n, address in enumerate(readers))
    (root / "readers.csv").write_text("email,name,language,topics\n" + rows, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "readers.csv")).exit_code == 0
    return set(readers)


def test_a_send_over_four_connections_reaches_everyone_once(project, sink):
    root = project()
    smtp_project(root, sink.port, connections=4)
    assert invoke(root, "ingest").exit_code == 0
    readers = import_readers(root, 80)
    result = invoke(root, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output
    received = sink.sink.recipients()
    assert set(received) == readers and max(received.values()) == 1
    assert sink.sink.connections() == 4  # four client connections, each used
    again = invoke(root, "digest", "send", "weekly-en")
    assert again.exit_code == 0 and sink.sink.count() == len(readers)  # nothing resent


def test_one_connection_stays_one_connection(project, sink):
    root = project()
    smtp_project(root, sink.port, connections=1)
    assert invoke(root, "ingest").exit_code == 0
    import_readers(root, 20)
    assert invoke(root, "digest", "send", "weekly-en").exit_code == 0
    assert sink.sink.connections() == 1 and sink.sink.count() == 20


def test_the_rate_holds_across_connections(project, sink):
    """20 messages at 40 a second take about 19/40 s however many connections send them;
    a rate kept per connection would take 19/160 s. The bound leaves room for the first
    message, whose connection is opened after its turn (a loaded machine makes that slow
    and so the measured span shorter)."""
    root = project()
    smtp_project(root, sink.port, connections=4, rate=40)
    assert invoke(root, "ingest").exit_code == 0
    import_readers(root, 20)
    assert invoke(root, "digest", "send", "weekly-en").exit_code == 0
    arrivals = sorted(sink.sink.arrivals)
    assert len(arrivals) == 20 and sink.sink.connections() == 4
    assert arrivals[-1] - arrivals[0] >= 19 / 40 - 0.15  # the first turn is not waited for


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)


def test_local_pacer_gives_each_call_its_own_turn_across_threads():
    time = FakeTime()
    pace = LocalPacer(10, clock=time.clock, sleep=time.sleep)
    threads = [threading.Thread(target=lambda: [pace() for _ in range(25)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 100 calls at one instant: the first goes at once, the others 0.1 s apart each
    assert sorted(time.slept) == pytest.approx([n / 10 for n in range(1, 100)])


def test_local_pacer_does_not_wait_once_the_turn_has_passed():
    time = FakeTime()
    pace = LocalPacer(2, clock=time.clock, sleep=time.sleep)
    pace()
    time.now += 0.2
    pace()  # its turn is 0.5 s after the first: 0.3 s to go
    time.now += 10
    pace()  # long past: at once, and the next turn counts from now
    pace()
    assert time.slept == pytest.approx([0.3, 0.5])


def test_local_pacer_at_rate_zero_never_waits():
    time = FakeTime()
    pace = LocalPacer(0, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        pace()
    assert time.slept == []


def test_shared_pacer_hands_out_turns_across_processes(state_url):
    """Two pacers on their own engines (as two workers on two machines): 30 calls at 0.1
    a second get turns 10 s apart on the database's clock, none shared. The calls take
    well under 10 s, so each wait lies within 10 s below its turn."""
    if state_url.startswith("sqlite"):
        pytest.skip("a shared rate is kept in PostgreSQL (with a queue)")
    from pipeline.store import Store

    stores = [Store(state_url, "https://news.example.org") for _ in range(2)]
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    pacers = [SharedPacer(s.engine, "email", 0.1, sleep=record) for s in stores]
    threads = [threading.Thread(target=lambda p=p: [p() for _ in range(15)]) for p in pacers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for store in stores:
            store.close()
    assert len(waits) == 29  # the first turn is now: no wait
    for n, wait in enumerate(sorted(waits), start=1):
        assert 10 * n - 10 < wait <= 10 * n, (n, wait)
