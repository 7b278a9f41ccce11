"""The words the digest says in each language, and dates, read-times and names for a reader.

Every string lives in ``STRINGS``, one dict per language, with ``{placeholders}`` filled in
by :func:`words`. A language tag picks its dict by its first part (``zh-CN``, ``zh-Hant``
and ``zh`` all read Chinese); a language with no dict reads English. To add a language,
add a dict with the same keys (``tests/test_digest_render.py`` checks the keys match).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "date_pattern": "d MMMM y",  # Babel (CLDR) pattern: 3 November 2026
        "read_time": "{minutes} min read",
        "list_separator": ", ",
        "list_and": " and ",
        "colon": ": ",
        "read_more": "Read more",
        "read_in": "Read in {language_name}",
        "greeting": "Hello,",
        "greeting_named": "Hello {name},",
        "intro_one": "Here is the latest article from {site}.",
        "intro_many": "Here are the {count} latest articles from {site}.",
        "why": "You are receiving this email because you subscribed to “{digest}” from {site}.",
        "unsubscribe": "Unsubscribe",
        "view_online": "View in your browser",
    },
    "zh": {
        "date_pattern": "y年M月d日",  # 2026年11月3日
        "read_time": "阅读时间 {minutes} 分钟",
        "list_separator": "、",
        "list_and": "、",
        "colon": "：",
        "read_more": "阅读全文",
        "read_in": "阅读{language_name}版",
        "greeting": "您好！",
        "greeting_named": "{name}，您好！",
        "intro_one": "以下是{site}的最新文章。",
        "intro_many": "以下是{site}的 {count} 篇最新文章。",
        "why": "您收到这封邮件，是因为您订阅了{site}的《{digest}》。",
        "unsubscribe": "退订",
        "view_online": "在浏览器中查看",
    },
}


def catalog_key(language: str) -> str:
    """The ``STRINGS`` key a language tag reads: its first part if known, else English."""
    base = language.replace("_", "-").split("-")[0].lower()
    return base if base in STRINGS else "en"


class _Keep(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def words(language: str, **values: object) -> dict[str, str]:
    """Every string for ``language`` with the given ``{placeholders}`` filled in."""
    filled = _Keep(values)
    return {key: text.format_map(filled) for key, text in STRINGS[catalog_key(language)].items()}


def format_date(moment: dt.datetime, language: str, timezone: str) -> str:
    """The calendar date of ``moment`` in ``timezone``, as readers of ``language`` write it."""
    zone = zoneinfo.ZoneInfo(timezone)
    local = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    key = catalog_key(language)
    return babel_format_date(local.date(), STRINGS[key]["date_pattern"], locale=key)


def read_time(minutes: int, language: str) -> str:
    """``3 min read`` / ``阅读时间 3 分钟``; never less than a minute."""
    return words(language, minutes=max(1, minutes))["read_time"]


def join_names(names: Sequence[str], language: str) -> str:
    """``A``, ``A and B``, ``A, B and C``; in Chinese ``A、B、C``."""
    names = [n for n in names if n.strip()]
    if len(names) < 2:
        return "".join(names)
    strings = STRINGS[catalog_key(language)]
    return strings["list_separator"].join(names[:-1]) + strings["list_and"] + names[-1]


def language_name(tag: str, in_language: str) -> str:
    """The name of language ``tag`` written in ``in_language`` (``中文``, ``English``)."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
        name = locale.get_language_name(Locale.parse(in_language.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        return tag
    return name or tag


def translation_label(tag: str) -> str:
    """A link label to the ``tag`` version, written in that language: ``阅读中文版``."""
    key = catalog_key(tag)
    return words(key, language_name=language_name(tag, key))["read_in"]
