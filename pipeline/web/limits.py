"""The sign-up form's limit per client, shared by every web process on one state store.

``pipeline serve --web-only`` may run on several machines behind a load balancer. A
count in each process's memory would let one client sign up ``web.subscribe_per_hour``
times per process, so the count is kept in the state store instead: one
``state_values`` row per client, named by a keyed hash of its address (the table never
holds the address itself), holding the times of its sign-ups in the last hour.

Each sign-up is checked and counted in one transaction that first locks the client's
row (creating it if need be), so two processes at once cannot both take the last place:
on PostgreSQL the upsert takes a row lock that the other transaction waits for, on
SQLite it takes the database's write lock. SQLite uses the same code, not a count in
memory: it needs no setup (``state_values`` is always there), costs one small write per
sign-up that already writes two rows, and keeps the count across a restart.

Times are read from the injected clock, never the wall clock. Rows of clients quiet for
an hour are deleted, so the table holds only what the limit needs.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import Engine, delete, select, update

from pipeline.clock import Clock, system_clock
from pipeline.schema import state_values
from pipeline.signup import upsert

# state_values names: this prefix + a keyed hash of the client's address; each row
# keeps {"at": [unix times of its sign-ups in the last hour]}.
SIGNUPS = "web:signups:"
WINDOW = 3600.0
PRUNE_EVERY = WINDOW


class SharedRateLimit:
    """At most ``per_hour`` events per key in any hour (a sliding window), counted in
    the state store, so every process using that store shares one count per key.

    ``secret`` keys the hash that names a key's row: a plain hash of an IPv4 address
    is undone by trying all 2³² of them."""

    def __init__(
        self,
        engine: Engine,
        per_hour: int,
        *,
        secret: str,
        clock: Clock = system_clock,
        prefix: str = SIGNUPS,
    ):
        self.engine = engine
        self.per_hour = per_hour
        self.secret = secret
        self.clock = clock
        self.prefix = prefix
        self.pruned_at = float("-inf")

    def allow(self, key: str) -> bool:
        """Count one event for ``key`` and say True, or say False (counting nothing) if
        it already had ``per_hour`` in the last hour."""
        now = self.clock().timestamp()
        name = self.row_name(key)
        with self.engine.connect() as conn:
            seen = conn.scalar(select(state_values.c.value).where(state_values.c.name == name))
        # Times leave the window only as the clock moves on, so a count found full without
        # a lock is still full: a flood from one client costs a read per request, no write.
        if len(_recent(seen, now)) >= self.per_hour:
            return False
        allowed = self._count(name, now)
        if now - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = now
            self.prune(now)
        return allowed

    def _count(self, name: str, now: float) -> bool:
        with self.engine.begin() as conn:
            # First a write, so the rest of the transaction runs alone for this key: the
            # upsert creates the row or rewrites it unchanged, which locks it on
            # PostgreSQL (another process's transaction waits here until this one
            # commits, then reads what it wrote) and takes the write lock on SQLite.
            empty = json.dumps({"at": []})
            upsert(
                conn,
                state_values,
                "name",
                {"name": name, "value": empty},
                {"value": state_values.c.value},
            )
            seen = conn.scalar(select(state_values.c.value).where(state_values.c.name == name))
            times = _recent(seen, now)
            allowed = len(times) < self.per_hour
            if allowed:
                times.append(now)
            conn.execute(
                update(state_values)
                .where(state_values.c.name == name)
                .values(value=json.dumps({"at": times}))
            )
        return allowed

    def row_name(self, key: str) -> str:
        keyed = hmac.new(self.secret.encode(), key.encode(), hashlib.sha256).hexdigest()
        return self.prefix + keyed[:32]

    def prune(self, now: float) -> int:
        """Delete the rows of keys with no event in the last hour; how many went."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(state_values.c.name, state_values.c.value).where(
                    state_values.c.name.startswith(self.prefix, autoescape=True)
                )
            ).all()
        stale = [(name, value) for name, value in rows if not _recent(value, now)]
        if stale:
            with self.engine.begin() as conn:
                for name, value in stale:  # unless an event was counted since the read
                    conn.execute(
                        delete(state_values).where(
                            state_values.c.name == name, state_values.c.value == value
                        )
                    )
        return len(stale)


def _recent(value: str | None, now: float) -> list[float]:
    """The times in a row's value still inside the window (none for no row, or for a
    value this code did not write)."""
    try:
        times = [float(t) for t in json.loads(value or "{}").get("at", [])]
    except (ValueError, TypeError, AttributeError):
        return []
    return [t for t in times if t > now - WINDOW]
