"""The digest window: how far back in publication time an edition looks for articles.

An edition at time T (its scheduled time; the clock for a send by hand) takes the
matching articles published at or after its window start, and only those no earlier
edition of the digest carried or passed over:

* the first edition of a digest (no earlier edition carried anything; skipped ones do
  not count): T minus the digest's ``max_age_days``. As Mailchimp's RSS campaigns send
  the last day, week or month the first time, a new digest never mails the archive.
* a later edition: the earlier of the previous edition's time minus ``max_age_days``
  and the time of the edition before that one (if any).

So a later edition takes everything published since the previous one, and also what
the previous one was due to carry (published since the edition before it, or in the
``max_age_days`` before it) but did not get because it arrived, or came to match, too
late; nothing older. Skipped editions carry nothing, so after one the window still
reaches back to the last edition sent. What the window holds beyond ``max_items`` is
passed over (recorded, and counted in the edition's detail); what falls before it is
never a candidate.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Engine

from pipeline.schema import editions

SKIPPED_EDITION = "skipped"  # an edition that carried nothing (pipeline.digest.editions)


def window_start(engine: Engine, digest: str, max_age_days: int, at: dt.datetime) -> dt.datetime:
    """The oldest publication time an edition of ``digest`` at ``at`` (aware) takes."""
    max_age = dt.timedelta(days=max_age_days)
    with engine.connect() as conn:
        previous = conn.scalars(
            select(editions.c.scheduled_for)
            .where(
                editions.c.digest == digest,
                editions.c.status != SKIPPED_EDITION,
                editions.c.scheduled_for < at.astimezone(dt.UTC).replace(tzinfo=None),
            )
            .order_by(editions.c.scheduled_for.desc())
            .limit(2)
        ).all()
    times = [t.replace(tzinfo=dt.UTC) for t in previous]  # stored as naive UTC
    if not times:
        return at - max_age
    return min([times[0] - max_age, *times[1:]])
