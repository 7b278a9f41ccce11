"""The vocabulary every settings model uses: strict models, language and time-zone
checks, names, and the marker for secrets."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache, lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo

from pipeline.suggest import did_you_mean
from pipeline.urls import UnsafeURL, safe_link

SECRET = "secret"
Secret = Annotated[str, Field(json_schema_extra={SECRET: True})]
"""A credential: must be written as ``${ENV_VAR}`` in the file, never literally; masked
in ``repr`` (see ``Strict``) so a logged or printed settings object never shows it."""
OptionalSecret = Annotated[str | None, Field(json_schema_extra={SECRET: True})]
"""A credential that may be left out (``Secret | None`` would lose the marker)."""


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(SECRET))


_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
MAX_NAME = 64  # names of sources, channels, digests and schedules: keys in the store
_ZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
MAX_ZONE_NAME = 64  # the longest IANA name has 32 characters


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def __repr_args__(self):
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            secret = name in fields and is_secret(fields[name]) and value
            yield name, "***" if secret else value


def shown(value: object, limit: int = 60) -> str:
    """``repr`` of a value a person wrote, cut short: a message must stay one line even
    when the file holds a megabyte where a word belongs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_language(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a language tag; use BCP 47, e.g. en or zh-CN")
    return value


@lru_cache(maxsize=64)  # a site has a few languages, and ingest asks for one per article
def normalise_language(value: str) -> str:
    """BCP 47 casing, so that filters match: ``zh-cn`` and ``zh_CN`` become ``zh-CN``."""
    first, *rest = check_language(value.strip().replace("_", "-")).split("-")
    rest = [p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p.lower() for p in rest]
    return "-".join([first.lower(), *rest])


# What people write for a zone that is not one: an abbreviation names an offset several
# places share (CST is Chicago, China and Cuba) and says nothing of daylight saving. The
# likeliest first; each zone listed uses that abbreviation (tests/test_settings.py checks).
ZONE_ABBREVIATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "IST": (("Asia/Kolkata", "India"), ("Europe/Dublin", "Ireland"), ("Asia/Jerusalem", "Israel")),
    "IDT": (("Asia/Jerusalem", "Israel"),),
    "CST": (
        ("America/Chicago", "US and Canada Central"),
        ("Asia/Shanghai", "China"),
        ("America/Havana", "Cuba"),
        ("Asia/Taipei", "Taiwan"),
    ),
    "CDT": (("America/Chicago", "US and Canada Central"), ("America/Havana", "Cuba")),
    "EDT": (("America/New_York", "US and Canada Eastern"),),
    "MDT": (("America/Denver", "US and Canada Mountain"),),
    "PST": (("America/Los_Angeles", "US and Canada Pacific"), ("Asia/Manila", "Philippines")),
    "PDT": (("America/Los_Angeles", "US and Canada Pacific"),),
    "AKST": (("America/Anchorage", "Alaska"),),
    "AKDT": (("America/Anchorage", "Alaska"),),
    "HDT": (("America/Adak", "Aleutian Islands"),),
    "AST": (("America/Halifax", "Atlantic Canada"), ("America/Puerto_Rico", "Caribbean")),
    "ADT": (("America/Halifax", "Atlantic Canada"),),
    "NST": (("America/St_Johns", "Newfoundland"),),
    "NDT": (("America/St_Johns", "Newfoundland"),),
    "BST": (("Europe/London", "United Kingdom"),),
    "WEST": (("Europe/Lisbon", "Portugal"),),
    "CEST": (("Europe/Berlin", "Germany"), ("Europe/Paris", "France")),
    "EEST": (("Europe/Athens", "Greece"), ("Europe/Helsinki", "Finland")),
    "MSK": (("Europe/Moscow", "Moscow"),),
    "SAST": (("Africa/Johannesburg", "South Africa"),),
    "WAT": (("Africa/Lagos", "West Africa"),),
    "CAT": (("Africa/Maputo", "Central Africa"),),
    "EAT": (("Africa/Nairobi", "East Africa"),),
    "PKT": (("Asia/Karachi", "Pakistan"),),
    "WIB": (("Asia/Jakarta", "Western Indonesia"),),
    "HKT": (("Asia/Hong_Kong", "Hong Kong"),),
    "JST": (("Asia/Tokyo", "Japan"),),
    "KST": (("Asia/Seoul", "South Korea"),),
    "AWST": (("Australia/Perth", "Western Australia"),),
    "ACST": (("Australia/Adelaide", "South Australia"), ("Australia/Darwin", "Northern Territory")),
    "ACDT": (("Australia/Adelaide", "South Australia"),),
    "AEST": (
        ("Australia/Sydney", "New South Wales, Victoria"),
        ("Australia/Brisbane", "Queensland"),
    ),
    "AEDT": (("Australia/Sydney", "New South Wales, Victoria"),),
    "NZST": (("Pacific/Auckland", "New Zealand"),),
    "NZDT": (("Pacific/Auckland", "New Zealand"),),
}
_ABBREVIATION = re.compile(r"[A-Za-z]{2,5}")


def check_timezone(value: str) -> str:
    """An IANA zone name, e.g. Asia/Kathmandu; ValueError (never OSError) otherwise."""
    # ZoneInfo opens a file named after the zone: a long name raised OSError (name too
    # long), a folder name IsADirectoryError. Only names shaped like zone names get there.
    try:
        if len(value) > MAX_ZONE_NAME or not _ZONE.fullmatch(value):
            raise ValueError
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        meant = ZONE_ABBREVIATIONS.get(value.upper())
        if meant is not None:
            places = [f"{zone} ({where})" for zone, where in meant]
            listed = (
                f", e.g. {places[0]}"
                if len(places) == 1
                else f": {', '.join(places[:-1])} or {places[-1]}"
            )
            raise ValueError(
                f"{shown(value)} is an abbreviation, not a time zone — write the IANA name "
                f"of the place you mean{listed}"
            ) from None
        # Difflib finds MST for IST: a short word is matched only when it differs in case.
        fuzzy = not _ABBREVIATION.fullmatch(value)
        hint = did_you_mean(
            value, _timezones(), "use an IANA name such as Asia/Kathmandu", fuzzy=fuzzy
        )
        raise ValueError(f"unknown time zone {shown(value)}; {hint}") from None
    return value


@cache
def _timezones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def check_name(value: str) -> str:
    if not NAME.fullmatch(value) or len(value) > MAX_NAME:
        raise ValueError(f"use lower-case letters, digits, - and _ (at most {MAX_NAME}), e.g. news")
    return value


class Filters(Strict):
    """Which articles something applies to; an empty list means all."""

    languages: tuple[str, ...] = Field((), description="Only articles in these languages.")
    sections: tuple[str, ...] = Field((), description="Only articles in these sections.")
    tags: tuple[str, ...] = Field((), description="Only articles with at least one of these tags.")

    @field_validator("languages")
    @classmethod
    def _languages(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_language(v) for v in values)

    def matches(self, language: str, section: str, tags: tuple[str, ...]) -> bool:
        if self.languages and language.lower() not in {v.lower() for v in self.languages}:
            return False
        if self.sections and section not in self.sections:
            return False
        wanted = {t.lower() for t in self.tags}
        return not wanted or bool(wanted & {t.lower() for t in tags})


def http_url(value: str) -> str:
    """An absolute http(s) URL from a setting, as the URI every output will carry (an
    IDN host in IDNA, a non-ASCII path percent-encoded), without a trailing slash."""
    try:
        return safe_link(value.rstrip("/"))
    except UnsafeURL:
        raise ValueError("must be an absolute http(s) URL, e.g. https://example.org") from None
