"""A message rate: at most ``rate`` messages a second, whoever sends them.

``LocalPacer`` holds for the threads of one process (the SMTP connections of one send);
``SharedPacer`` holds for every process sharing a PostgreSQL state store (the workers of
a queue, on any machine): the next free moment is one row, moved by one statement on the
database's own clock, so machines whose clocks disagree still share one rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SharedPacer alone imports SQLAlchemy: the mailer imports this module
    from sqlalchemy import Engine


class LocalPacer:
    """Each call waits until ``1/rate`` seconds after the previous call's turn."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._next_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self.rate <= 0:
            return
        with self._lock:  # take a turn; wait for it outside the lock
            now = self.clock()
            turn = now if self._next_at is None else max(now, self._next_at)
            self._next_at = turn + 1 / self.rate
        if turn > now:
            self.sleep(turn - now)


_TAKE_TURN = (
    "INSERT INTO pacers (name, next_at) "
    "VALUES (:name, EXTRACT(EPOCH FROM clock_timestamp()) + :step) "
    "ON CONFLICT (name) DO UPDATE SET next_at = "
    "GREATEST(pacers.next_at, EXTRACT(EPOCH FROM clock_timestamp())) + :step "
    "RETURNING next_at - :step - EXTRACT(EPOCH FROM clock_timestamp())"
)


class SharedPacer:
    """``LocalPacer`` across processes and machines, on PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from sqlalchemy import text

        self.engine = engine
        self.name = name
        self.rate = rate
        self.sleep = sleep
        self._take_turn = text(_TAKE_TURN)

    def __call__(self) -> None:
        if self.rate <= 0:
            return
        with self.engine.begin() as conn:
            wait = float(
                conn.execute(
                    self._take_turn, {"name": self.name, "step": 1 / self.rate}
                ).scalar_one()
            )
        if wait > 0:
            self.sleep(wait)
