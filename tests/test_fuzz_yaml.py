"""Hostile YAML in every file a person edits: config/pipeline.yaml, schedules.yaml and
article front matter. Whatever the text, reading it either succeeds or raises a
ConfigError whose problems name the file (and a line when one is known), in bounded
time and memory; and what is accepted can be used (a schedule that passes the check
can be planned). The reader's own guarantees (tabs, aliases, nesting, duplicate keys,
positions from the same parse as the data) are pinned down at the end."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.errors import ConfigError, Problem
from pipeline.schedules import load_schedules
from pipeline.settings import load_settings
from pipeline.sources.markdown import FrontMatter
from pipeline.triggers import next_runs, runs_between
from pipeline.validation import problems_from_validation
from pipeline.yamlfile import parse_yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SETTINGS = load_settings(REPO / "config" / "pipeline.yaml")
NOW = dt.datetime(2026, 11, 29, 10, 7, tzinfo=dt.UTC)
FUZZ = settings(
    max_examples=80,
    deadline=2000,  # each example, slow machine included: a bomb would take 50 s
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what hostile YAML is made of ---------------------------------------------------------

ATOMS = [
    ":", ": ", ":\t", "\t", "\n", "\r\n", "  ", "- ", "[", "]", "{", "}", ",", "? ",
    "&a ", "*a", "&b [*a, *a, *a]", "!!str ", "!!int ", "!!binary ", "!foo ", "<<: ",
    "|\n", ">-\n", "#", "'", '"', "---\n", "...\n", "%YAML 1.1\n", "%TAG ! !x\n", "~",
    "null", "true", "no", "on", "9:30", "2025-02-30 10:00:00", "2024-06-03T09:30:00+05:45",
    "1e999", "-.inf", ".nan", "0x1F", "0o17", "1_000", "9" * 400, "\\", "\x85", "\u2028",
    "\ufeff", "\x00", "\x1b", "é", "山", "😀", "${HOME}", "${NOT_SET_ANYWHERE}",
]  # fmt: skip
WORDS = [
    "Asia/Kathmandu", "UTC", "Asia", "A" * 300, "../../etc/passwd", "Europe/Berlin/", "",
    "https://news.example.org", "news", "markdown", "feed", "wordpress", "rss", "json",
    "file", "mastodon", "smtp", "outbox", "127.0.0.1:8080", "127.0.0.1:99999", "09:00",
    "25:00", "monday", "munday", "weekdays", "0 9 * * 1", "*/0 * * * *", "0 9 31 2 *",
    "0 ²4 * * *", "cycle", "digest weekly-en", "post archive", "post nowhere", "1 hour",
    "15 minutes", "0 minutes", "1000000000 hours", f"{'9' * 5000} hours", "en", "zh-CN",
    "x" * 2000, "${UNSUBSCRIBE_SECRET}", "Mountain News <news@example.org>",
]  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, -1, 2**31, 2**63, 10**18, 10**100, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.sampled_from(WORDS), st.text(max_size=20))


def values(keys: list[str]) -> st.SearchStrategy[Any]:
    small = st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), SCALARS, max_size=3)
    return st.recursive(
        SCALARS | small,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(keys), inner),
        max_leaves=8,
    )


def scalar_text(value: Any, quote: bool) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if quote or not value else value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value) if not isinstance(value, float) else repr(value)


def render(value: Any, quote: bool, indent: int = 0) -> str:
    """Block-style YAML, the way people write these files."""
    pad = "  " * indent
    if isinstance(value, dict) and value:
        out = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{scalar_text(key, quote)}:\n{render(item, quote, indent + 1)}")
            else:
                out.append(f"{pad}{scalar_text(key, quote)}: {render(item, quote).strip()}")
        return "\n".join(out)
    if isinstance(value, list) and value:
        return "\n".join(f"{pad}- {render(item, quote, indent + 1).strip()}" for item in value)
    if isinstance(value, dict | list):
        return pad + ("{}" if isinstance(value, dict) else "[]")
    return pad + scalar_text(value, quote)


def paths_of(value: Any, here: tuple = ()) -> list[tuple]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*here, index))
    return found


def put(document: Any, path: tuple, value: Any) -> Any:
    """``document`` with ``value`` at ``path`` (or at the part of it that still exists)."""
    if not path:
        return value
    node = document
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return document
    with contextlib.suppress(IndexError, TypeError):
        node[path[-1]] = value
    return document


def hostile(base: dict, keys: list[str]) -> st.SearchStrategy[str]:
    """The base document with random values at real paths and random keys from the real
    schema, rendered as YAML, sometimes with hostile text spliced in; or plain noise."""
    paths = paths_of(base)

    @st.composite
    def variant(draw: Any) -> str:
        document = copy.deepcopy(base)
        for _ in range(draw(st.integers(0, 4))):
            path = draw(st.sampled_from(paths))
            if draw(st.booleans()) and path:
                path = (*path[:-1], draw(st.sampled_from(keys)))
            document = put(document, path, draw(values(keys)))
        text = render(document, quote=draw(st.booleans()))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(ATOMS + WORDS)) + text[at:]
        return text

    noise = st.lists(st.sampled_from(ATOMS + WORDS + keys) | st.text(max_size=5), max_size=60)
    return st.one_of(variant(), noise.map("".join))


def lines(text: str) -> int:
    """Line breaks as YAML counts them (NEL and the Unicode separators too)."""
    return sum(text.count(brk) for brk in ("\n", "\r", "\x85", "\u2028", "\u2029"))


def check_problems(problems: list[Problem], file: str, text: str, offset: int = 0) -> None:
    assert problems, "a ConfigError must say what is wrong"
    last = lines(text) + 1 + offset
    for problem in problems:
        assert problem.file == file, problem
        assert problem.message, problem
        if problem.line is not None:
            assert 1 <= problem.line <= last + 1, (problem, last)
        if problem.column is not None:
            assert problem.line is not None and problem.column >= 1, problem


# -- config/pipeline.yaml -----------------------------------------------------------------

CONFIG = {
    "site": {"name": "News", "url": "https://news.example.org", "timezone": "Asia/Kathmandu"},
    "sources": [
        {"name": "news", "type": "markdown", "path": "content", "max_bytes": 100000},
        {"name": "up", "type": "wordpress", "url": "https://wp.example.org", "max_pages": 3},
    ],
    "feeds": {"items": 20, "formats": ["rss"], "extra": [{"tag": "China"}]},
    "channels": {"archive": {"type": "file", "path": "var/posts.jsonl", "per_run": 5}},
    "email": {
        "from": "news@example.org",
        "rate": 5,
        "smtp": {"host": "localhost", "port": 25, "timeout": 10},
        "unsubscribe": {"url": "https://news.example.org/unsubscribe"},
    },
    "digests": {"weekly": {"title": "Weekly", "language": "en", "max_items": 5}},
    "web": {"listen": "127.0.0.1:8080", "subscribe_per_hour": 5},
}
CONFIG_KEYS = sorted(
    {str(step) for path in paths_of(CONFIG) for step in path if isinstance(step, str)}
    | {"excerpt_length", "timeout", "max_age_hours", "spacing_seconds", "max_attempts"}
    | {"min_items", "state", "language", "secret", "access_token", "delivery", "outbox"}
)


@FUZZ
@given(text=hostile(CONFIG, CONFIG_KEYS))
def test_any_config_file_is_loaded_or_refused_with_located_problems(tmp_path, text):
    path = tmp_path / "config" / "pipeline.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    started = time.perf_counter()
    try:
        load_settings(path)
    except ConfigError as exc:
        check_problems(exc.problems, str(path), text)
    assert time.perf_counter() - started < 2


# -- schedules.yaml -----------------------------------------------------------------------

SCHEDULES = {
    "timezone": "Asia/Kathmandu",
    "grace": "1 hour",
    "schedules": [
        {"name": "news", "do": "cycle", "every": "15 minutes"},
        {"name": "weekly", "do": "digest weekly-en", "on": "monday", "at": "09:00"},
        {"name": "monthly", "do": "feeds", "cron": "0 9 1 * *", "timezone": "UTC"},
        {"name": "paused", "do": "post archive", "at": ["10:00"], "enabled": False},
    ],
}
SCHEDULE_KEYS = ["name", "do", "every", "at", "on", "cron", "timezone", "enabled", "grace"]


@FUZZ
@given(text=hostile(SCHEDULES, [*SCHEDULE_KEYS, "schedules"]))
def test_any_schedules_file_is_loaded_or_refused_and_what_loads_can_be_planned(tmp_path, text):
    path = tmp_path / "schedules.yaml"
    path.write_text(text, encoding="utf-8", newline="")
    started = time.perf_counter()
    try:
        loaded = load_schedules(path, EXAMPLE_SETTINGS)
    except ConfigError as exc:
        check_problems(exc.problems, str(path), text)
    else:
        # What `pipeline check` accepts, `schedule --next` and `serve` can use: the
        # finding was `every: 1000000000 hours`, accepted and then a crash.
        for schedule in loaded.schedules:
            assert len(next_runs(schedule.trigger, schedule.zone, NOW, 3)) == 3
            runs_between(schedule.trigger, schedule.zone, NOW - schedule.grace, NOW)
            schedule.describe()
    assert time.perf_counter() - started < 2


# -- article front matter -----------------------------------------------------------------

FRONT = {
    "title": "Wetlands: at risk",
    "date": "2025-02-02T09:30:00+05:45",
    "author": ["Pema Gyamtsho", "Li Wei"],
    "tags": ["Nepal", "biodiversity"],
    "language": "en",
}
FRONT_KEYS = sorted(FrontMatter.model_fields)


def read_front_matter(head: str, file: str) -> list[Problem]:
    """What the markdown source does with front matter, up to the YAML layer's end."""
    try:
        doc = parse_yaml(head, file, line_offset=1)
    except ConfigError as exc:
        return exc.problems
    if not isinstance(doc.data, dict):
        return []
    try:
        FrontMatter.model_validate(doc.data)
    except ValidationError as exc:
        return problems_from_validation(doc, exc, FrontMatter)
    return []


@FUZZ
@given(head=hostile(FRONT, FRONT_KEYS))
def test_any_front_matter_is_read_or_refused_with_located_problems(head):
    started = time.perf_counter()
    problems = read_front_matter(head, "news/a.md")
    if problems:
        check_problems(problems, "news/a.md", head, offset=1)
        assert all(p.line is None or p.line >= 2 for p in problems)  # after the `---`
    assert time.perf_counter() - started < 2


@settings(FUZZ, max_examples=30)
@given(head=hostile(FRONT, FRONT_KEYS))
def test_any_front_matter_in_a_real_markdown_source_is_rejected_by_file_and_line(tmp_path, head):
    from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings

    (tmp_path / "a.md").write_text(f"---\n{head}\n---\nBody.\n", encoding="utf-8", newline="")
    source = MarkdownSource(
        MarkdownSourceSettings(name="news", type="markdown", path=tmp_path),
        EXAMPLE_SETTINGS.site,
    )
    scan = source.scan({}, {})
    for problem in scan.rejected:
        assert problem.file.endswith("a.md") and problem.line is not None, problem
        assert not problem.message.startswith("cannot be read"), problem  # unforeseen


# -- bounded memory -----------------------------------------------------------------------

# The finding: 450 bytes of front matter, 53 s and 2.2 GB.
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@st.composite
def alias_bombs(draw: Any) -> str:
    """ "Billion laughs": each level an anchored list of aliases of the level below, as a
    key of its own or inside a real key's value. 450 bytes took 53 s and 2.2 GB."""
    depth, width = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    key = draw(st.sampled_from(["title", "tags", "schedules", "site", "x"]))
    levels = [f"{key}0: &l0 {draw(st.sampled_from(['lol', '[lol, lol]', '{k: v}']))}"]
    for n in range(1, depth):
        levels.append(f"{key}{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    if draw(st.booleans()):  # the whole bomb inside one flow mapping
        return "{" + ", ".join(levels) + "}\n"
    return "\n".join(levels) + "\n"


@settings(FUZZ, max_examples=25)
@example(text=BOMB)
@given(text=st.one_of(hostile(FRONT, FRONT_KEYS), alias_bombs()).map(lambda t: t[:1024]))
def test_reading_a_kilobyte_takes_bounded_memory(text):
    tracemalloc.start()
    try:
        with contextlib.suppress(ConfigError):
            parse_yaml(text, "f.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024


# -- the reader's guarantees --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('title:\t"x"\n', "f.md:2:7", "a tab character here"),
        ("schedules:\n  - name: a\n    every:\t1 hour\n", "f.md:4:11", "a tab character"),
        ("tags: [a,\tb]\n", "f.md:2:10", "a tab character"),
        ("a:\n\tb: 1\n", "f.md:3:1", "this line is indented with a tab"),
        ("a:\n\tb: 1\n\n\tc: 2\nd: 3\n", "f.md:3:1", "lines 3 to 5 are indented with tabs"),
        ("a: [1,\n\t2]\n", "f.md:3:1", "this line is indented with a tab"),  # parses, then refused
        ("a: x\n\t\n", "f.md:3:1", "a blank line holding a tab"),
        ("\t" * 50_000 + "a: 1\n", "f.md:2:1", "this line is indented with a tab"),
        (BOMB, "f.md:2:4", "anchors and aliases (&name, *name) are not allowed"),
        ("a: &x 1\nb: 2\n", "f.md:2:4", "anchors and aliases"),
        ("a: {x: 1}\nb:\n  <<: {y: 2}\n", "f.md:4:3", "merge keys (<<) are not allowed"),
        ("title: a\ndate: b\ntitle: c\n", "f.md:4:1", "duplicate key `title`"),
        ("a: !!python/object:os.system x\n", "f.md:2:4", "the tag !!python/object"),
        ("a: !!int abc\n", "f.md:2:4", "'abc' is not !!int"),
        ("a: 1\n---\nb: 2\n", "f.md:3:1", "a second YAML document"),
        ("[a]: 1\n", "f.md:2:1", "a key must be a word or quoted text"),
        ("a: 1\x00\n", "f.md:2:5", "control characters are not allowed"),
        ("[" * 10_000, "f.md:2:33", "nested more than 32 levels deep"),
        ("{a: " * 10_000, "f.md:2:", "nested more than 32 levels deep"),
        ("".join(f"{'  ' * n}k:\n" for n in range(2000)), "f.md:34:", "nested more than"),
    ],
)
def test_what_the_reader_refuses_is_a_located_error_in_bounded_time(text, where, message):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "f.md", line_offset=1)
    assert time.perf_counter() - started < 1
    (problem,) = caught.value.problems
    assert str(problem).startswith(where) and message in problem.message, str(problem)
    assert problem.hint


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ('title: "a\tb"\n', {"title": "a\tb"}),  # a tab inside a value is the value's
        ("title: x # a\tcomment\n", {"title": "x"}),
        ("title: x\t\n", {"title": "x"}),  # at the end of a line it changes nothing
        ("title: x\t# note\n", {"title": "x"}),
        ("summary: |\n  a\tb\n", {"summary": "a\tb\n"}),
        ("a: 'x#'\t# c\tq\n", {"a": "x#"}),
        ("title: x\r\ndate: y\r\n", {"title": "x", "date": "y"}),
    ],
)
def test_harmless_tabs_and_line_ends_are_read(text, data):
    assert parse_yaml(text, "f.md").data == data


def test_values_are_read_by_yaml_1_2_as_before():
    text = (
        "a: 9:30\nb: no\nc: on\nd: 017\ne: 0x1F\nf: 1_000\ng: .inf\nh: 2024-06-03\n"
        "i: 2025-02-02 09:30:00\nj: 2025-02-02T09:30:00Z\nk: '1'\nl: ~\nm: True\nn: 1e3\n"
        "o: 2025-02-30 10:00:00\np: !!str 12\nq: " + "9" * 5000 + "\n"
    )
    data = parse_yaml(text, "f").data
    assert data == {
        "a": "9:30",
        "b": "no",
        "c": "on",
        "d": 17,
        "e": 31,
        "f": 1000,
        "g": float("inf"),
        "h": "2024-06-03",
        "i": "2025-02-02T09:30:00",
        "j": "2025-02-02T09:30:00+00:00",
        "k": "1",
        "l": None,
        "m": True,
        "n": 1000.0,
        "o": "2025-02-30 10:00:00",  # not a date: left as written for a located error
        "p": "12",
        "q": "9" * 5000,  # beyond Python's int() limit: left as written
    }


def test_positions_come_from_the_same_parse_as_the_data():
    text = (
        "site:\n  name: News\n  url: x\nsources:\n  - name: a\n    type: markdown\n"
        '  - {name: b, "type": feed}\ntags: [x,\n  y]\nempty: []\n'
    )
    doc = parse_yaml(text, "f.md", line_offset=1)
    assert doc.position(("site",)) == (2, 1)  # a mapping: its key
    assert doc.position(("site", "url")) == (4, 8)
    assert doc.position(("sources", 0)) == (6, 5)
    assert doc.position(("sources", 1, "type")) == (8, 23)
    assert doc.position(("sources", 1, "type"), key=True) == (8, 15)
    assert doc.position(("tags", 1)) == (10, 3)
    assert doc.position(("empty",)) == (11, 8)
    assert doc.position(("sources", 7, "name")) == (5, 1)  # nearest written parent
    assert doc.position(("nowhere",)) == (1 + 1, 1)


@settings(FUZZ, max_examples=50)
@given(text=hostile(CONFIG, CONFIG_KEYS))
def test_every_value_read_has_a_position_inside_the_text(text):
    try:
        doc = parse_yaml(text, "f.yaml", line_offset=3)
    except ConfigError:
        return
    for path in paths_of(doc.data)[1:]:
        line, column = doc.position(path)
        assert line is not None and 4 <= line <= lines(text) + 4 and column >= 1, (path, line)


_TWO_DIGITS = st.sampled_from(["00", "01", "09", "12", "13", "23", "24", "29", "31", "59", "60"])


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(["0000", "0001", "1970", "2024", "9999"]),
    st.lists(_TWO_DIGITS, min_size=5, max_size=5),
    st.sampled_from(["", "Z", "+05:45", "-00:00", "+23:59", "+24:00", "-12:30", "+99:00"]),
)
@example("2024", ["02", "30", "09", "00", "00"], "+05:45")  # not a day: kept as written
def test_a_common_date_time_is_read_as_ruamel_reads_it(year, parts, zone):
    """The reader takes ``datetime.fromisoformat`` for the usual form of a date-time:
    it must give what ruamel's ``create_timestamp`` gives, or the text as written."""
    from ruamel.yaml.util import create_timestamp, timestamp_regexp

    from pipeline.yamlfile import _ISO_SECONDS, _resolve

    value = f"{year}-{parts[0]}-{parts[1]}T{parts[2]}:{parts[3]}:{parts[4]}{zone}"
    assert _ISO_SECONDS.fullmatch(value)
    try:
        expected = create_timestamp(**timestamp_regexp.match(value).groupdict()).isoformat()
    except (ValueError, OverflowError):
        expected = value
    assert _resolve(value) == expected
