"""The one definition of "now": a function returning a timezone-aware UTC datetime.

Everything that dates or ages something (locks, the run log, tokens, sign-up, rate
limits, status) takes a ``Clock`` and defaults to ``system_clock``, so that tests move
time by hand instead of sleeping. Columns of the state store hold naive UTC: convert
with ``naive_utc`` at that boundary only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """How the state store's columns keep a moment (UTC, without its zone)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def aware_utc(moment: dt.datetime) -> dt.datetime:
    """A moment read from a naive-UTC column, with its zone again."""
    return moment.replace(tzinfo=dt.UTC)
