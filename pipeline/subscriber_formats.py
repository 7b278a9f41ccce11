"""What the columns of a subscriber file mean: this pipeline's own export, the exports of
Mailchimp, listmonk and Buttondown, or the columns a person names with ``--map``.

A ``Layout`` says which column holds which field; ``read_row`` turns one row into an
``Incoming`` subscriber or raises ValueError with the reason. Everything here is pure
(no database), so that ``subscriber_import`` can validate a whole file before it writes.

The exports recognised, by their header (names compared ignoring case, spaces, ``_``):

- Mailchimp (audience export, one CSV per status): ``Email Address``, ``First Name``,
  ``Last Name``, ``MEMBER_RATING``, ``OPTIN_TIME``, ``CONFIRM_TIME``, ``LAST_CHANGED``,
  ``LEID``, ``EUID``, ``TAGS``; the unsubscribed file adds ``UNSUB_TIME`` and
  ``UNSUB_REASON``…, the cleaned (bounced) file ``CLEAN_TIME``…. Times are UTC.
- listmonk (Subscribers → Export): ``uuid, email, name, attributes, status, created_at,
  updated_at``; status ``enabled``, ``disabled`` or ``blocklisted``; attributes JSON.
- Buttondown (Settings → Export): ``email`` (or ``email_address``), ``creation_date``,
  ``notes``, ``metadata`` (JSON), ``tags``, ``subscriber_type`` (or ``type``), ``source``…
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pipeline.schema import subscribers
from pipeline.settings.base import normalise_language
from pipeline.subscribers import ACTIVE, BOUNCED, PENDING, UNSUBSCRIBED, normalise_email

FIELDS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "language",
    "topics",
    "status",
    "status_detail",
    "left",
    "paused_until",
    "consent_source",
    "consent_at",
    "created_at",
)
"""What a column can hold; --map names these. ``left``: digests they left (``;``)."""

EXPORT_COLUMNS = (
    "email",
    "name",
    "language",
    "topics",
    "status",
    "status_detail",
    "digests",
    "left",
    "paused_until",
    "consent_source",
    "consent_at",
    "created_at",
)
"""The header of `subscribers export --format csv`, which imports as it is
(``digests``, each digest's status, is for people: ``left`` and ``status`` carry it)."""

# Every status word of the tools we read, as ours. A word meaning someone who must not
# be mailed, or whose consent is in doubt, never maps to active: Buttondown's `churned`
# (a paid subscription ended) and listmonk's `disabled` are kept out.
STATUS_WORDS: Mapping[str, str] = {
    **dict.fromkeys(
        (
            "active",
            "subscribed",
            "enabled",
            "confirmed",
            "regular",
            "premium",
            "trialed",
            "gifted",
            "unpaid",
            "churning",
        ),
        ACTIVE,
    ),
    **dict.fromkeys(("pending", "unconfirmed", "unactivated", "spammy", "nonsubscribed"), PENDING),
    **dict.fromkeys(
        (
            "unsubscribed",
            "blocklisted",
            "blacklisted",
            "disabled",
            "removed",
            "archived",
            "churned",
            "complained",
        ),
        UNSUBSCRIBED,
    ),
    **dict.fromkeys(("bounced", "cleaned", "undeliverable"), BOUNCED),
}


@dataclass(frozen=True)
class Layout:
    """Which column (0-based) holds which field, and what the file is."""

    tool: str  # "Mailchimp", "listmonk", "Buttondown", "this pipeline", "--map"
    columns: Mapping[str, int]
    source: str  # consent_source of whoever the file adds: "imported from Mailchimp"
    status: str | None = None  # the status the whole file gives (a Mailchimp unsubscribed export)
    json_column: int | None = None  # listmonk attributes / Buttondown metadata
    extra: Mapping[str, int] = field(default_factory=dict)  # tool columns read by helpers

    @property
    def given(self) -> frozenset[str]:
        """The fields the file gives; a known subscriber keeps the others as they are."""
        fields = set(self.columns)
        if {"first_name", "last_name"} & fields:
            fields.add("name")
        if self.json_column is not None:
            fields.update(("name", "language", "topics"))
        return frozenset(fields)


@dataclass(slots=True)
class Incoming:
    """One subscriber as a file (or `subscribers add`) gives them, validated."""

    line: int
    email: str
    name: str = ""
    language: str = ""
    topics: tuple[str, ...] = ()
    status: str = ACTIVE
    status_detail: str | None = None
    left: tuple[str, ...] = ()
    paused_until: dt.datetime | None = None
    consent_source: str | None = None
    consent_at: dt.datetime | None = None
    created_at: dt.datetime | None = None


def key(column: str) -> str:
    """A header name as compared: ``Email Address``, ``email_address`` → ``email address``."""
    return " ".join(re.split(r"[\s_\-]+", column.strip().lower())).strip()


def _indexes(header: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        found.setdefault(key(name), index)
    return found


def _pick(names: Mapping[str, int], wanted: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """field → index of the first of its possible column names the header has."""
    found: dict[str, int] = {}
    for name, columns in wanted.items():
        for column in columns:
            if column in names:
                found[name] = names[column]
                break
    return found


def recognise(header: Sequence[str]) -> Layout | None:
    """The layout of a known export (or of our own files), else None."""
    names = _indexes(header)
    if "email address" in names and names.keys() & {
        "optin time",
        "confirm time",
        "member rating",
        "leid",
        "euid",
        "last changed",
    }:
        status = (
            UNSUBSCRIBED if "unsub time" in names else BOUNCED if "clean time" in names else None
        )
        columns = _pick(
            names,
            {
                "email": ("email address",),
                "first_name": ("first name",),
                "last_name": ("last name",),
                "language": ("language",),
                "topics": ("tags",),
                "consent_at": ("confirm time", "optin time"),
            },
        )
        return Layout("Mailchimp", columns, "imported from Mailchimp", status)
    if {"email", "attributes"} <= names.keys():
        columns = _pick(
            names,
            {
                "email": ("email",),
                "name": ("name",),
                "status": ("status",),
                "consent_at": ("created at",),
            },
        )
        return Layout("listmonk", columns, "imported from listmonk", None, names["attributes"])
    if names.keys() & {"email", "email address"} and names.keys() & {
        "creation date",
        "subscriber type",
        "secondary id",
    }:
        columns = _pick(
            names,
            {
                "email": ("email", "email address"),
                "topics": ("tags",),
                "status": ("subscriber type", "type"),
                "consent_at": ("creation date",),
            },
        )
        json_column = names.get("metadata")
        return Layout("Buttondown", columns, "imported from Buttondown", None, json_column)
    if "email" in names:
        own = {f: (f.replace("_", " "),) for f in FIELDS}
        return Layout("this pipeline", _pick(names, own), "imported")
    return None


def parse_map(text: str) -> dict[str, str]:
    """``email=E-Mail,name=Full name`` → {field: column}; ValueError says what is wrong."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, column = part.partition("=")
        name = name.strip().lower()
        if not sep or not column.strip():
            raise ValueError(f"{part!r} is not FIELD=COLUMN (e.g. email=E-Mail)")
        if name not in FIELDS:
            raise ValueError(f"unknown field {name!r}; fields: {', '.join(FIELDS)}")
        mapping[name] = column.strip()
    if not mapping:
        raise ValueError("give at least one FIELD=COLUMN, e.g. email=E-Mail")
    return mapping


def apply_map(layout: Layout | None, header: Sequence[str], mapping: Mapping[str, str]) -> Layout:
    """The recognised layout (if any) with the columns ``mapping`` names instead.
    ValueError names a column the header does not have."""
    names = _indexes(header)
    columns = dict(layout.columns) if layout else {}
    for name, column in mapping.items():
        if key(column) not in names:
            raise ValueError(f"--map {name}={column}: the header has no column {column!r}")
        columns[name] = names[key(column)]
    if layout is None:
        return Layout("--map", columns, "imported")
    return replace(layout, columns=columns)


def parse_time(text: str) -> dt.datetime | None:
    """A moment as the exports write it, as naive UTC: ISO 8601 (``Z`` or an offset),
    Mailchimp's ``2024-03-01 09:15:00`` (UTC), Go's ``… +0000 UTC`` (listmonk)."""
    text = text.strip()
    if not text:
        return None
    text = re.sub(r"\s+(UTC|GMT)$", "", text)
    text = re.sub(r"\s+([+-]\d{2}:?\d{2})$", r"\1", text)
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Go writes nanoseconds
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is not a date and time (write 2026-11-23 09:00:00)"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def split_topics(text: str) -> tuple[str, ...]:
    """``Nepal;climate``, ``"Nepal","climate"`` (Mailchimp TAGS), ``["Nepal"]`` (JSON)."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return tuple(str(i).strip() for i in items if str(i).strip())
    parts = (p.strip().strip('"').strip() for p in re.split(r"[;,]", text))
    return tuple(p for p in parts if p)


def status_of(word: str) -> str:
    found = STATUS_WORDS.get(key(word))
    if found is None:
        raise ValueError(
            f"unknown status {word.strip()[:40]!r}; known: active, pending, unsubscribed, "
            "bounced (and the words of Mailchimp, listmonk and Buttondown)"
        )
    return found


class RowReader:
    """Turns rows of one file into ``Incoming``; languages are checked once each."""

    def __init__(self, layout: Layout, default_language: str):
        self.layout = layout
        self.default_language = default_language
        self._languages: dict[str, str] = {}

    def language(self, value: str) -> str:
        value = value.strip() or self.default_language
        known = self._languages.get(value)
        if known is None:
            known = self._languages[value] = normalise_language(value)
        return known

    def read(self, line: int, row: Sequence[str]) -> Incoming:
        """ValueError with the reason when the row cannot be imported."""
        columns, width = self.layout.columns, len(row)

        def cell(name: str) -> str:
            index = columns.get(name)
            return row[index] if index is not None and index < width else ""

        person = Incoming(line, normalise_email(cell("email")))
        extra = self._json(row)
        name = cell("name") or " ".join(
            p for p in (cell("first_name").strip(), cell("last_name").strip()) if p
        )
        if not name and extra:
            name = str(extra.get("name") or "") or " ".join(
                str(extra.get(k) or "").strip() for k in ("first_name", "last_name")
            )
        person.name = one_line("name", name).strip()
        person.language = self.language(cell("language") or str(extra.get("language") or ""))
        topics = split_topics(cell("topics"))
        if not topics and extra and isinstance(extra.get("topics"), list):
            topics = tuple(str(t).strip() for t in extra["topics"] if str(t).strip())
        person.topics = tuple(sorted(set(topics)))
        status = cell("status")
        person.status = status_of(status) if status.strip() else self.layout.status or ACTIVE
        if person.status != ACTIVE:
            person.status_detail = cell("status_detail").strip() or (
                f"{status.strip() or person.status} in the {self.layout.tool} export"
            )
        elif cell("status_detail").strip():
            person.status_detail = cell("status_detail").strip()
        person.left = tuple(one_line("left", n)[:100] for n in split_topics(cell("left")))
        person.paused_until = parse_time(cell("paused_until"))
        person.consent_at = parse_time(cell("consent_at"))
        person.consent_source = one_line("consent_source", cell("consent_source")).strip() or (
            self.layout.source
        )
        if person.status_detail is not None:
            person.status_detail = one_line("status_detail", person.status_detail)
        person.created_at = parse_time(cell("created_at"))
        check_widths(person)
        return person

    def _json(self, row: Sequence[str]) -> dict:
        index = self.layout.json_column
        if index is None or index >= len(row) or not row[index].strip():
            return {}
        try:
            found = json.loads(row[index])
        except ValueError:
            raise ValueError("its JSON column (attributes/metadata) is not valid JSON") from None
        return found if isinstance(found, dict) else {}


def one_line(name: str, value: str) -> str:
    """``value`` if it has no control characters: a name becomes the display name in To:,
    where a line break would add headers, and PostgreSQL refuses NUL in any text."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"the {name} must be one line, without control characters")
    return value


def check_widths(person: Incoming) -> None:
    """The subscribers table's column widths: PostgreSQL refuses longer, SQLite keeps them."""
    for name in ("email", "name", "language", "consent_source"):
        limit = getattr(subscribers.c[name].type, "length", None)
        value = getattr(person, name) or ""
        if limit and len(value) > limit:
            raise ValueError(f"the {name} is {len(value):,} characters long; at most {limit} fit")
