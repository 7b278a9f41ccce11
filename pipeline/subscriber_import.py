"""Bringing subscribers in, many at once: a file (``import_file``) or one person typed by
staff (``SubscriberImport.store``), under one set of rules (see pipeline.subscribers):

- a new address comes in with the status the file gives it (active unless it says
  unsubscribed, bounced or pending), and inactive whatever the file says when the
  address is suppressed (pipeline.suppression);
- a known one gets the name, language and topics the file gives (columns it lacks stay as
  they were) and becomes inactive when the file says so; nothing here ever makes an
  unsubscribed, bounced or suppressed person active again;
- consent (source and date) is kept for a new person, and added to a known one who has
  none on record.

Speed: every row is validated first (no database work per row), then the known
addresses and suppressions are read in chunks of ``CHUNK`` and everything is written in
one transaction with executemany statements: a few dozen round trips for 10,000 rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import String, any_, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from pipeline.clock import Clock, naive_utc, system_clock
from pipeline.errors import Problem, display_path
from pipeline.schema import chunks, list_unsubscribes, subscribers, suppressions
from pipeline.settings.email import DigestSettings
from pipeline.subscriber_formats import (
    Incoming,
    Layout,
    RowReader,
    apply_map,
    parse_map,
    recognise,
)
from pipeline.subscribers import (
    ACTIVE,
    BOUNCED,
    PENDING,
    UNSUBSCRIBED,
    ImportReport,
    Subscriber,
    reached_by,
    unreached_message,
)

FIX = "fix or delete this row"
CHUNK = 500  # addresses per IN (...) list: far under every driver's parameter limit
MAX_LINE = 64 * 1024
"""Longest CSV line read, in characters: a subscriber row is a few hundred. Longer lines
are rejected before the csv module sees them, whose field limit (128 KB) would otherwise
end the import with an error instead of naming the one line."""


def import_file(
    engine: Engine,
    path: Path,
    default_language: str,
    digests: Mapping[str, DigestSettings] | None = None,
    mapping: str | None = None,
    clock: Clock = system_clock,
) -> ImportReport:
    """Add or update every valid row of a CSV file (ours, or another tool's export, or
    with ``mapping`` as ``--map`` gives it); each bad row is reported by its line and
    the rest imported. With ``digests``, active people no digest reaches are reported."""
    shown = display_path(path)
    report = ImportReport()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        report.rejected.append(Problem(shown, None, None, f"cannot read it: {exc}"))
        return report
    reader = csv.reader(_lines(text, shown, report))
    try:
        header = next(reader, [])
    except csv.Error as exc:
        report.rejected.append(Problem(shown, 1, None, f"cannot read the header: {exc}"))
        return report
    layout = _layout(shown, header, mapping, report)
    if layout is None:
        return report
    report.tool = layout.tool
    rows = RowReader(layout, default_language)
    people: list[Incoming] = []
    seen: dict[str, int] = {}
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Only a row spanning lines gets here (an over-long line never reaches the
            # reader), so a quote was left open and swallowed the lines after it:
            # reading on would take pieces of that field for rows. Stop; importing
            # the mended file again changes nothing that is already in.
            what = f"cannot read this row: {exc}; the lines after it were not read"
            hint = 'close the quote (") this row opens, then import the file again'
            report.rejected.append(Problem(shown, start, None, what, hint))
            break
        if not row:
            continue
        line = reader.line_num
        try:
            person = rows.read(line, row)
        except ValueError as exc:
            report.rejected.append(Problem(shown, line, None, str(exc), FIX))
            continue
        if person.email in seen:
            what = f"{person.email} is already on line {seen[person.email]}"
            report.rejected.append(Problem(shown, line, None, what, "keep one row per address"))
            continue
        seen[person.email] = line
        people.append(person)
    SubscriberImport(engine, clock).store(people, layout.given, report, shown, digests)
    return report


def _layout(
    shown: str, header: Sequence[str], mapping: str | None, report: ImportReport
) -> Layout | None:
    """The file's layout, or None with the problem reported (at line 1)."""
    layout = recognise(header)
    if mapping:
        try:
            layout = apply_map(layout, header, parse_map(mapping))
        except ValueError as exc:
            report.rejected.append(Problem(shown, 1, None, str(exc), _map_hint(shown, header)))
            return None
    if layout is None or "email" not in layout.columns:
        line = ",".join(header)[:200]
        what = (
            f"no `email` column: the header `{line}` is not this pipeline's "
            "(email,name,language,topics) nor a Mailchimp, listmonk or Buttondown export"
        )
        report.rejected.append(Problem(shown, 1, None, what, _map_hint(shown, header)))
        return None
    return layout


def _map_hint(shown: str, header: Sequence[str]) -> str:
    """The --map option, with this file's likeliest email column as the example."""
    email = next((h for h in header if "mail" in h.lower()), header[0] if header else "E-Mail")
    example = f"email={email.strip()}" if "," not in email and "=" not in email else "email=COL"
    return (
        f"say which column is which with --map, e.g. `pipeline subscribers import {shown} "
        f'--map "{example},name=Name"` (fields: email, name, first_name, last_name, '
        "language, topics, status, consent_at, …)"
    )


def _lines(text: str, shown: str, report: ImportReport) -> Iterator[str]:
    """The file's lines for the csv reader, an over-long one reported by its number and
    replaced by an empty line (which the reader skips, keeping the count)."""
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        if len(line) > MAX_LINE:
            what = f"line is {len(line):,} characters long; a row may have {MAX_LINE:,}"
            report.rejected.append(Problem(shown, number, None, what, FIX))
            line = "\n"
        yield line


class SubscriberImport:
    """Writes validated people (``Incoming``) to the state store in bulk."""

    def __init__(self, engine: Engine, clock: Clock = system_clock):
        self.engine = engine
        self.clock = lambda: naive_utc(clock())

    def store(
        self,
        people: Sequence[Incoming],
        given: frozenset[str],
        report: ImportReport,
        shown: str,
        digests: Mapping[str, DigestSettings] | None = None,
    ) -> None:
        """Add or update ``people`` (one per address) by the module's rules; ``given``
        are the fields the source gives (a known person keeps the others)."""
        now = self.clock()
        with self.engine.begin() as conn:
            known = _known(conn, [p.email for p in people])
            held = _held(conn, [p.email for p in people])
            added: list[dict] = []
            changed: list[dict] = []
            leaving: dict[str, tuple[str, ...]] = {}
            for person in people:
                status = self._decide(person, known.get(person.email), held, report)
                if person.left:
                    leaving[person.email] = person.left
                before = known.get(person.email)
                if before is None:
                    added.append(_new_row(person, status, held, now))
                    report.added += 1
                else:
                    values = _changes(before, person, given, status, held)
                    if values:
                        changed.append({"b_id": before.id, "b_now": now, **_bound(before, values)})
                        report.updated += 1
                    else:
                        report.unchanged += 1
                final = status or (before.status if before else ACTIVE)
                if digests is not None and final == ACTIVE:
                    self._check_reached(person, before, given, digests, report, shown)
            if added:
                conn.execute(insert(subscribers), added)
            if changed:
                conn.execute(_UPDATE, changed)
            if leaving:
                _leave(conn, leaving, now)

    @staticmethod
    def _decide(
        person: Incoming, before, held: Mapping[str, tuple[str, str]], report: ImportReport
    ) -> str | None:
        """The status to write (None: keep the known one)."""
        current = before.status if before is not None else None
        if person.email in held:
            report.suppressed.append(f"{person.email} ({held[person.email][1]})")
            return held[person.email][0] if current in (None, ACTIVE, PENDING) else None
        if current in (UNSUBSCRIBED, BOUNCED):
            if person.status not in (UNSUBSCRIBED, BOUNCED):
                report.kept_inactive.append(person.email)
            return None
        if person.status in (UNSUBSCRIBED, BOUNCED):
            report.marked_inactive.append(f"{person.email} ({person.status_detail})")
            return person.status
        # A file may add someone as pending, never turn a pending sign-up active.
        return person.status if current is None else None

    @staticmethod
    def _check_reached(person, before, given, digests, report, shown) -> None:
        seen = Subscriber(
            0,
            person.email,
            person.name,
            person.language if before is None or "language" in given else before.language,
            person.topics
            if before is None or "topics" in given
            else tuple(json.loads(before.topics)),
            ACTIVE,
        )
        if not reached_by(seen, digests):
            hint = "change the row's language or topics, or a digest's `audience:`"
            problem = Problem(shown, person.line, None, unreached_message(seen, digests), hint)
            report.unreached.append(problem)


def _among(conn: Connection, column: Any, chunk: Sequence[str]) -> Any:
    """``column IN chunk``. On PostgreSQL as ``= ANY(one array parameter)``: psycopg
    prepares a statement run five times, and the server's generic plan for ``IN ($1, …,
    $500)`` scans the table each time (0.2 s a chunk at 10,000 rows instead of 5 ms)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("among", list(chunk), type_=ARRAY(String)))
    return column.in_(chunk)


def _known(conn: Connection, emails: Sequence[str]) -> dict[str, Any]:
    """address → its subscribers row, for the known ones."""
    found: dict[str, Any] = {}
    for chunk in chunks(emails, CHUNK):
        query = select(subscribers).where(_among(conn, subscribers.c.email, chunk))
        found.update((row.email, row) for row in conn.execute(query))
    return found


def _held(conn: Connection, emails: Sequence[str]) -> dict[str, tuple[str, str]]:
    """address → (the status it must keep, why) for the suppressed ones."""
    found: dict[str, tuple[str, str]] = {}
    for chunk in chunks(emails, CHUNK):
        query = select(suppressions).where(_among(conn, suppressions.c.address, chunk))
        for row in conn.execute(query):
            status = UNSUBSCRIBED if row.kind == "complaint" else BOUNCED
            why = f"suppressed after a {row.kind} ({row.source}): {row.reason}"
            found[row.address] = (status, why)
    return found


def _new_row(
    person: Incoming, status: str | None, held: Mapping[str, tuple[str, str]], now: dt.datetime
) -> dict:
    detail = held[person.email][1] if person.email in held else person.status_detail
    return {
        "email": person.email,
        "name": person.name,
        "language": person.language,
        "topics": json.dumps(list(person.topics)),
        "status": status or ACTIVE,
        "status_detail": detail,
        "created_at": person.created_at or now,
        "updated_at": now,
        "paused_until": person.paused_until,
        "consent_source": person.consent_source,
        "consent_at": person.consent_at,
    }


def _changes(
    before, person: Incoming, given: frozenset[str], status: str | None, held
) -> dict[str, object]:
    """The columns of a known subscriber this person changes."""
    values: dict[str, object] = {}
    if "name" in given and before.name != person.name:
        values["name"] = person.name
    if "language" in given and before.language != person.language:
        values["language"] = person.language
    topics = json.dumps(list(person.topics))
    if "topics" in given and json.loads(before.topics) != list(person.topics):
        values["topics"] = topics
    if status is not None and status != before.status:
        values["status"] = status
        values["status_detail"] = (
            held[person.email][1] if person.email in held else person.status_detail
        )
    if "paused_until" in given and before.paused_until != person.paused_until:
        values["paused_until"] = person.paused_until
    # Consent is added to a known person who has none on record, when the file says
    # something of it: a plain list is no evidence of how a sign-up form's reader agreed.
    if before.consent_source is None and (person.consent_at or "consent_source" in given):
        values["consent_source"] = person.consent_source
        values["consent_at"] = person.consent_at
    return values


_COLUMNS = (
    "name",
    "language",
    "topics",
    "status",
    "status_detail",
    "paused_until",
    "consent_source",
    "consent_at",
)
# One statement for every changed row (executemany): each row sets all the columns,
# the unchanged ones to what they were.
_UPDATE = (
    update(subscribers)
    .where(subscribers.c.id == bindparam("b_id"))
    .values(updated_at=bindparam("b_now"), **{c: bindparam(f"b_{c}") for c in _COLUMNS})
)


def _bound(before, values: Mapping[str, object]) -> dict[str, object]:
    return {f"b_{c}": values.get(c, getattr(before, c)) for c in _COLUMNS}


def _leave(conn: Connection, leaving: Mapping[str, tuple[str, ...]], now: dt.datetime) -> None:
    """Record the digests people left (our own export's ``left``), once each."""
    ids: dict[str, int] = {}
    for chunk in chunks(list(leaving), CHUNK):
        query = select(subscribers.c.id, subscribers.c.email).where(subscribers.c.email.in_(chunk))
        ids.update((email, id_) for id_, email in conn.execute(query))
    already: set[tuple[int, str]] = set()
    id_list = [str(i) for i in ids.values()]
    for chunk in chunks(id_list, CHUNK):
        query = select(list_unsubscribes.c.subscriber_id, list_unsubscribes.c.list_name).where(
            list_unsubscribes.c.subscriber_id.in_([int(i) for i in chunk])
        )
        already.update((row[0], row[1]) for row in conn.execute(query))
    rows = [
        {"subscriber_id": ids[email], "list_name": name, "created_at": now}
        for email, names in leaving.items()
        for name in dict.fromkeys(n[:100] for n in names)
        if (ids[email], name) not in already
    ]
    if rows:
        conn.execute(insert(list_unsubscribes), rows)
