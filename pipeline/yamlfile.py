"""YAML 1.2 reading that remembers where every value was written.

Every YAML file a person edits (config, schedules, article front matter) is read here,
so that each later complaint can name the file, line and column. YAML 1.2 keeps
``9:30`` a string and ``no`` a word (PyYAML's 1.1 rules turn them into 570 and False).
Timestamps come back as ISO strings so that callers apply their own time-zone rules.

One parse gives both the data and the positions: the events of libyaml (through
ruamel.yaml's C extension) are turned into plain dicts, lists and scalars here, and each
value's line and column is noted on the way. There is no second, slower "located" parse
that could disagree with the fast one (it did: a tab after a colon passed the C loader
and crashed the round-trip loader that only ran to report a position).

Refused with ``file:line:column: message — hint``, because none of these files needs them
and each has hurt or confused: a tab before a value (editors show tabs at different
widths), a duplicate key, anchors and aliases (``&a``/``*a``: 450 bytes of
"billion laughs" took 53 s and 2 GB), merge keys (``<<``), tags other than the standard
scalar ones, more than one document, and nesting deeper than ``MAX_DEPTH``. Reading is
therefore linear in the size of the text, in time and memory, whatever it holds.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NoReturn, cast

from _ruamel_yaml import CParser  # ruamel.yaml.clib: libyaml, the fast parser
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.util import create_timestamp, timestamp_regexp

from pipeline.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]
MAX_DEPTH = 32  # config needs 5 levels, front matter 2; this stops [[[[… long before harm

_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# The YAML 1.2 core schema as ruamel.yaml resolves it (so data read before stays the same).
_INT = re.compile(r"[-+]?(?:0b[0-1_]+|0o[0-7_]+|[0-9_]+|0x[0-9a-fA-F_]+)")
_FLOAT = re.compile(
    r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
    r"|[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?"
)
# The form a date-time is nearly always written in (2024-01-11T09:00:00+05:45, ...Z or no
# zone), in which datetime.fromisoformat reads what ruamel's create_timestamp does
# (tests/test_fuzz_yaml.py compares them): an offset's minutes under 60, as it refuses more.
_ISO_SECONDS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|[-+][0-9]{2}:[0-5][0-9])?"
)
_CORE = "tag:yaml.org,2002:"
_TEXT_TAGS = frozenset(("!", _CORE + "str"))
_TYPED_TAGS: dict[str, Any] = {
    _CORE + "int": int,
    _CORE + "float": float | int,
    _CORE + "bool": bool,
}
_TYPED_TAGS[_CORE + "null"] = type(None)
_BLANKS = re.compile(r"[ \t]*")
_LINE_ENDS = ("", "\n", "\r", "#")  # what may follow a tab: the end of a line, a comment
_COMMENT = re.compile(r"(?:^|(?<=[ \t]))#", re.MULTILINE)
_NO_KEY = object()
_REFUSALS = {  # kind: (message, hint), formatted with the details
    "anchor": (
        "anchors and aliases (&name, *name) are not allowed",
        "write the value out in full where it is needed",
    ),
    "merge": (
        "merge keys (<<) are not allowed",
        "write the keys out in full where they are needed",
    ),
    "duplicate": (
        "duplicate key `{key}`",
        "the first is on line {first}; each key may appear once: remove or rename one",
    ),
    "tag": (
        "the tag {tag} is not supported here",
        "remove the tag; quote the value if it must stay text",
    ),
    "typed": ("{value!r} is not {tag}", "fix the value or remove the tag"),
    "key": ("a key must be a word or quoted text, not a list or mapping", "write `key: value`"),
    "document": (
        "a second YAML document (a second `---`)",
        "keep one document: remove the `---` line",
    ),
    "depth": (
        f"nested more than {MAX_DEPTH} levels deep",
        "these files need only a few levels; check the brackets and indentation",
    ),
}  # a mapping waiting for its next key, not for a value


class YamlDocument:
    """Plain data (dicts, lists, str, int, float, bool, None) plus where each part stood.

    ``marks`` maps each path to the 0-based (key line, key column, value line, value
    column) of what was written there, recorded by the same parse that made ``data``."""

    def __init__(
        self,
        data: Any,
        file: str,
        text: str,
        line_offset: int = 0,
        marks: dict[Path_, tuple[int, int, int, int]] | None = None,
    ):
        self.data = data
        self.file = file
        self.text = text
        self.line_offset = line_offset
        self._marks = marks or {}

    def position(
        self, path: Iterable[str | int], key: bool = False
    ) -> tuple[int | None, int | None]:
        """1-based (line, column) of the value at ``path`` (of its key if ``key``), or of its
        nearest written parent."""
        node = self.data
        at: tuple[int | None, int | None] = (
            (1 + self.line_offset, 1) if isinstance(node, dict | list) else (None, None)
        )
        steps, walked = list(path), cast(Path_, ())
        for index, step in enumerate(steps):
            walked = (*walked, step)
            mark = self._marks.get(walked)
            if mark is None:
                break
            node = node[step]
            last = index == len(steps) - 1
            key_line, key_col, line, col = mark
            if (key and last) or (isinstance(node, dict | list) and node):
                line, col = key_line, key_col
            at = (line + 1 + self.line_offset, col + 1)
        return at

    def problem(self, path: Iterable[str | int], message: str, hint: str = "") -> Problem:
        line, col = self.position(path)
        return Problem(self.file, line, col, message, hint)


def parse_yaml(text: str, file: str, line_offset: int = 0) -> YamlDocument:
    """Parse YAML 1.2 text; any mistake becomes a ConfigError naming file:line:column."""
    return _Reader(text, file, line_offset).read()


class _Frame:
    """A mapping or list being filled, where it is, and (for a mapping) the pending key."""

    __slots__ = ("container", "key", "key_col", "key_line", "path")

    def __init__(self, container: dict | list, path: Path_):
        self.container = container
        self.path = path
        self.key: Any = _NO_KEY
        self.key_line = self.key_col = 0


class _Reader:
    def __init__(self, text: str, file: str, line_offset: int):
        self.text = text
        self.file = file
        self.line_offset = line_offset
        self.marks: dict[Path_, tuple[int, int, int, int]] = {}
        # Where scalars stand, to tell a tab inside a value from one between tokens;
        # only collected when there is a tab at all (almost never).
        self.spans: list[tuple[int, int]] | None = [] if "\t" in text else None

    def read(self) -> YamlDocument:
        parser = None
        try:
            parser = CParser(self.text)
            data = self._build(parser.get_event)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = exc.problem or exc.context or "not valid YAML"
            if mark is None:
                self._fail(None, None, f"YAML syntax error: {what}", _syntax_hint(what))
            self._tab_in_indentation(mark.line)
            lines = self.text.splitlines()
            hint = _syntax_hint(what, lines[mark.line] if mark.line < len(lines) else "")
            self._fail(mark.line, mark.column, f"YAML syntax error: {what}", hint)
        except ReaderError as exc:
            line, col = self._line_col(min(exc.position, len(self.text)))
            self._fail(line, col, f"not valid YAML text: {exc.reason}", "remove that character")
        except (YAMLError, UnicodeError, ValueError) as exc:
            self._fail(None, None, f"not valid YAML: {exc}", "check the file's quoting")
        finally:
            if parser is not None:
                parser.dispose()
        if self.spans:
            self._check_tabs()
        return YamlDocument(data, self.file, self.text, self.line_offset, self.marks)

    def _build(self, next_event: Any) -> Any:
        stack: list[_Frame] = []
        marks, spans = self.marks, self.spans
        root: Any = None
        documents = 0
        while (event := next_event()) is not None:
            kind = type(event)
            start = event.start_mark
            if kind is ScalarEvent:
                if event.anchor is not None:
                    self._refuse(start, "anchor")
                if spans is not None:
                    spans.append((start.index, event.end_mark.index))
                frame = stack[-1] if stack else None
                if frame is not None and frame.key is _NO_KEY and type(frame.container) is dict:
                    self._key(frame, event)
                    continue
                if event.tag is not None:
                    value = self._tagged(event)
                else:
                    value = event.value if event.style else _resolve(event.value)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if event.anchor is not None:
                    self._refuse(start, "anchor")
                if event.tag is not None and event.tag not in (_CORE + "map", _CORE + "seq"):
                    self._unsupported(event)
                if len(stack) >= MAX_DEPTH:
                    self._refuse(start, "depth")
                frame = stack[-1] if stack else None
                if frame is not None and frame.key is _NO_KEY and type(frame.container) is dict:
                    self._refuse(start, "key")
                value = {} if kind is MappingStartEvent else []
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                stack.pop()
                continue
            elif kind is AliasEvent:
                self._refuse(start, "anchor")
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self._refuse(start, "document")
                continue
            else:
                continue  # stream and document ends
            # Put the value where it belongs, noting where it was written.
            if frame is None:
                root = value
                path: Path_ = ()
            elif type(frame.container) is dict:
                path = (*frame.path, frame.key)
                frame.container[frame.key] = value
                marks[path] = (frame.key_line, frame.key_col, start.line, start.column)
                frame.key = _NO_KEY
            else:
                path = (*frame.path, len(frame.container))
                frame.container.append(value)  # type: ignore[union-attr]  # a list here
                marks[path] = (start.line, start.column, start.line, start.column)
            if kind is not ScalarEvent:
                stack.append(_Frame(value, path))
        return root

    def _key(self, frame: _Frame, event: Any) -> None:
        key, start = event.value, event.start_mark
        if event.tag is not None:
            self._tagged(event)  # refuses the tags that are not understood
        if key == "<<" and event.implicit[0]:
            self._refuse(start, "merge")
        if key in frame.container:
            first = self.marks[(*frame.path, key)][0] + 1 + self.line_offset
            self._refuse(start, "duplicate", key=_short(key), first=first)
        frame.key, frame.key_line, frame.key_col = key, start.line, start.column

    def _tagged(self, event: Any) -> Any:
        """A scalar with an explicit tag: only the standard scalar ones are understood."""
        if event.tag in _TEXT_TAGS:
            return event.value
        expected = _TYPED_TAGS.get(event.tag)
        if expected is None:
            self._unsupported(event)
        value = _resolve(event.value)
        if not isinstance(value, expected):
            start, tag = event.start_mark, event.tag.replace(_CORE, "!!")
            self._refuse(start, "typed", value=_short(event.value), tag=tag)
        return value

    def _unsupported(self, event: Any) -> NoReturn:
        self._refuse(event.start_mark, "tag", tag=_short(str(event.tag).replace(_CORE, "!!")))

    def _refuse(self, mark: Any, kind: str, **values: Any) -> NoReturn:
        message, hint = _REFUSALS[kind]
        self._fail(mark.line, mark.column, message.format(**values), hint.format(**values))

    def _check_tabs(self) -> None:
        """A tab between or before tokens is refused: editors show it at different widths,
        and YAML parsers disagree about it. Tabs inside values, in comments and at the
        end of a line change nothing and pass. Linear in the text, however many tabs."""
        text, spans = self.text, sorted(self.spans or ())
        starts = [s for s, _ in spans]

        def inside(index: int) -> int:
            """The end of the scalar ``index`` is in, or 0 if it is in none."""
            k = bisect.bisect_right(starts, index) - 1
            return spans[k][1] if k >= 0 and index < spans[k][1] else 0

        comments: dict[int, int] = {}  # line start -> where its comment starts
        index = text.find("\t")
        while index != -1:
            if end := inside(index):
                index = text.find("\t", end)
                continue
            line_start = text.rfind("\n", 0, index) + 1
            if line_start not in comments:
                line_end = text.find("\n", index) % (len(text) + 1)  # -1: the last line
                hashes = (m.start() for m in _COMMENT.finditer(text, line_start, line_end))
                comments[line_start] = next((i for i in hashes if not inside(i)), len(text))
            after = _BLANKS.match(text, index).end()  # type: ignore[union-attr]  # [ \t]* always matches
            if comments[line_start] > index and text[after : after + 1] not in _LINE_ENDS:
                line, col = self._line_col(index)
                if not text[line_start:index].strip(" "):  # only blanks before it: indentation
                    self._tab_indented(text.split("\n"), line)
                self._fail(line, col, "a tab character here", "YAML needs spaces: replace the tab")
            index = text.find("\t", after)

    def _tab_in_indentation(self, upto_line: int) -> None:
        """After a syntax error: a tab in some line's indentation is the likely cause."""
        if "\t" not in self.text:
            return
        lines = self.text.splitlines()
        for number, line in enumerate(lines[: upto_line + 1]):
            if _indented_with_tab(line):
                self._tab_indented(lines, number)
        if upto_line < len(lines) and "\t" in lines[upto_line] and not lines[upto_line].strip():
            self._fail(upto_line, 0, "a blank line holding a tab", f"delete the tab; {_NO_TABS}")

    def _tab_indented(self, lines: list[str], number: int) -> NoReturn:
        """``lines[number]`` is indented with a tab: say so, for the whole block of lines
        indented with tabs that it starts (blank lines do not end a block)."""
        last = end = number
        while end + 1 < len(lines) and (
            _indented_with_tab(lines[end + 1]) or not lines[end + 1].strip()
        ):
            end += 1
            if lines[end].strip():
                last = end
        first_shown = number + 1 + self.line_offset
        if last > number:
            message = f"lines {first_shown} to {last + 1 + self.line_offset} are indented with tabs"
        else:
            message = "this line is indented with a tab"
        self._fail(number, lines[number].index("\t"), message, _NO_TABS)

    def _line_col(self, index: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, index)
        return line, index - (self.text.rfind("\n", 0, index) + 1)

    def _fail(self, line: int | None, col: int | None, message: str, hint: str = "") -> NoReturn:
        shown_line = None if line is None else line + 1 + self.line_offset
        shown_col = None if col is None or line is None else col + 1
        raise ConfigError([Problem(self.file, shown_line, shown_col, message, hint)]) from None


_NO_TABS = "YAML needs spaces: indent with spaces, not tabs"


def _indented_with_tab(line: str) -> bool:
    return "\t" in line[: len(line) - len(line.lstrip(" \t"))] and bool(line.strip())


def _resolve(value: str) -> Any:
    """A plain scalar by the YAML 1.2 core schema (quoted ones are always text)."""
    if value in _NULLS:
        return None
    first = value[0]
    if first in "tTfF":
        return _BOOLS.get(value, value)
    if first not in "-+.0123456789":
        return value
    try:
        if _INT.fullmatch(value):
            return _integer(value)
        if _FLOAT.fullmatch(value):
            return _float(value)
        if _ISO_SECONDS.fullmatch(value):  # nearly every `date:`; ~4 times faster than below
            return datetime.fromisoformat(value).isoformat()
        if _DATETIME.fullmatch(value):
            return create_timestamp(**timestamp_regexp.match(value).groupdict()).isoformat()
    except (ValueError, OverflowError):
        pass  # e.g. 30 February or 5,000 digits: left as written, for a located error later
    return value


def _integer(text: str) -> int | str:
    digits = text.replace("_", "").lstrip("+-")
    base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2], 10)
    if not digits:
        return text
    number = int(digits[2:] if base != 10 else digits, base)
    return -number if text.startswith("-") else number


def _float(text: str) -> float:
    lowered = text.replace("_", "").lower()
    if lowered.endswith(("inf", "nan")):
        return float(lowered.replace(".", ""))
    return float(lowered)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _syntax_hint(what: str, line: str = "") -> str:
    if "mapping values are not allowed" in what:
        return "a value containing ': ' must be quoted, e.g. title: \"Note: this\""
    if "tab" in what or "\t" in line:
        return "indent with spaces, not tabs"
    if "unexpected ':'" in what:
        # The usual cause in schedules.yaml: times in a [list] must be quoted.
        return 'inside [ ] quote values that contain ":", e.g. at: ["10:00", "16:00"]'
    return "check indentation and quoting on this line and the one before"


__all__ = ["MAX_DEPTH", "YamlDocument", "parse_yaml"]
