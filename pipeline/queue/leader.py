"""One scheduler leads: a PostgreSQL advisory lock, held by the leading ``serve``.

Several ``serve`` processes may run (on several machines) for a queue; only the holder of
the lock fires schedules, and the others stand by, trying for it every few seconds. The
lock is held by a connection of its own: when the leader dies, or its machine or
network does, PostgreSQL ends that session and frees the lock, and a standby takes over
on its next try and catches up what was due. If two ever fire the same moment anyway
(a leader cut off from the database but still running), the fire's identity in the
``fires`` table enqueues it once.
"""

from __future__ import annotations

from typing import Any

from pipeline.queue.schema import libpq_url

# One lock per database schema: two projects sharing a server each have their leader.
_TRY = "SELECT pg_try_advisory_lock(hashtext('newsroom-pipeline leader:' || current_schema()))"


class Leadership:
    def __init__(self, state_url: str):
        self.url = libpq_url(state_url)
        self._conn: Any = None

    def try_lead(self) -> bool:
        """Take the lead if it is free; True while this process leads."""
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True)
        try:
            return bool(self._conn.execute(_TRY).fetchone()[0])
        except psycopg.OperationalError:  # the connection broke: a new one next time
            self._conn.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
