"""An SMTP server on 127.0.0.1 that keeps only who was sent what over which connection.

For the queue's fault tests and ``bench/scale_bench.py``: thousands of messages, where
parsing each one (as ``conftest.Inbox`` does) would cost more than sending it. ``delay``
holds each DATA reply that long without blocking the other connections, as a remote
server's latency does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, delay: float = 0.0, keep: bool = False):
        self.delay = delay
        self.keep = keep  # keep each message's bytes, as received (not for benchmarks)
        self.received: list[tuple[str, int]] = []  # (envelope recipient, connection number)
        self.mail_from: list[str] = []  # the MAIL FROM of each message, in order
        self.raw: list[bytes] = []  # with ``keep``: each message's bytes
        self.arrivals: list[float] = []  # time.monotonic() of each message's end of DATA
        self._connections: dict[int, int] = {}
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            connection = self._connections.setdefault(id(session), len(self._connections))
            self.received.extend((rcpt, connection) for rcpt in envelope.rcpt_tos)
            self.mail_from.append(envelope.mail_from)
            if self.keep:
                self.raw.append(envelope.original_content)
            self.arrivals.append(time.monotonic())
        return "250 Message accepted"

    def count(self) -> int:
        return len(self.received)

    def recipients(self) -> Counter[str]:
        with self._lock:
            return Counter(rcpt for rcpt, _ in self.received)

    def connections(self) -> int:
        with self._lock:
            return len({connection for _, connection in self.received})


class SinkServer:
    """``with SinkServer(delay) as server:`` — ``server.port``, ``server.sink``."""

    def __init__(self, delay: float = 0.0, keep: bool = False):
        self.sink = Sink(delay, keep)
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SinkServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
