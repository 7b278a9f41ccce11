"""YAML 1.2 reading that remembers where every value was written.

Every YAML file a person edits (config, schedules, article front matter) is read here,
so that each later complaint can name the file, line and column. YAML 1.2 keeps
``9:30`` a string and ``no`` a word (PyYAML's 1.1 rules turn them into 570 and False).
Timestamps come back as ISO strings so that callers apply their own time-zone rules.
"""

from __future__ import annotations

import datetime as dt
import difflib
import types
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pipeline.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]


class YamlDocument:
    """Plain data (dicts, lists, str, int, float, bool, None) plus where each part stood.

    The data comes from the fast (C) safe loader; the slower round-trip parse that knows
    line numbers runs only when a position is asked for, i.e. when something is wrong.
    """

    def __init__(self, data: Any, file: str, text: str, line_offset: int = 0):
        self.data = data
        self.file = file
        self.text = text
        self.line_offset = line_offset

    @cached_property
    def _tree(self) -> Any:
        return _loader("rt").load(self.text)

    def position(
        self, path: Iterable[str | int], key: bool = False
    ) -> tuple[int | None, int | None]:
        """1-based (line, column) of the value at ``path`` (of its key if ``key``), or of its
        nearest written parent."""
        node = self._tree
        start = (1 + self.line_offset, 1)
        line, col = start if isinstance(node, CommentedMap | CommentedSeq) else (None, None)
        steps = list(path)
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            try:
                if isinstance(node, CommentedMap) and step in node:
                    child = node[step]
                    if (key and last) or (isinstance(child, CommentedMap | CommentedSeq) and child):
                        line, col = node.lc.key(step)
                    else:
                        line, col = node.lc.value(step)
                    line, col = line + 1 + self.line_offset, col + 1
                    node = node[step]
                elif isinstance(node, CommentedSeq) and isinstance(step, int) and step < len(node):
                    line, col = node.lc.item(step)
                    line, col = line + 1 + self.line_offset, col + 1
                    node = node[step]
                else:
                    break
            except (KeyError, AttributeError, TypeError):
                break
        return line, col

    def problem(self, path: Iterable[str | int], message: str, hint: str = "") -> Problem:
        line, col = self.position(path)
        return Problem(self.file, line, col, message, hint)


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, dt.datetime | dt.date):
        return node.isoformat()
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


@cache  # building a YAML() scans for plug-ins on disk: once per kind, not once per file
def _loader(kind: str) -> YAML:
    yaml = YAML(typ=kind)
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    return yaml


def parse_yaml(text: str, file: str, line_offset: int = 0) -> YamlDocument:
    """Parse YAML 1.2 text; a syntax error becomes a ConfigError naming file:line:column."""
    try:
        data = _loader("safe").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or exc.context or "not valid YAML"
        raise ConfigError(
            [Problem(file, line, col, f"YAML syntax error: {what}", _syntax_hint(what))]
        ) from None
    except YAMLError as exc:
        raise ConfigError([Problem(file, None, None, f"YAML syntax error: {exc}")]) from None
    return YamlDocument(_plain(data), file, text, line_offset)


def _syntax_hint(what: str) -> str:
    if "duplicate key" in what:
        return "each key may appear once; remove or rename the second one"
    if "mapping values are not allowed" in what:
        return "a value containing ': ' must be quoted, e.g. title: \"Note: this\""
    if "tab" in what:
        return "indent with spaces, not tabs"
    if "unexpected ':'" in what:
        # The usual cause in schedules.yaml: times in a [list] must be quoted.
        return 'inside [ ] quote values that contain ":", e.g. at: ["10:00", "16:00"]'

    return "check indentation and quoting on this line and the one before"


def problems_from_validation(
    doc: YamlDocument, error: ValidationError, model: type[BaseModel], root: Path_ = ()
) -> list[Problem]:
    """Turn pydantic's errors on ``model`` into located Problems, one per mistake."""
    problems = []
    for err in error.errors(include_url=False):
        model_loc = tuple(err["loc"])
        path = root + _written_path(doc.data, root, model_loc)
        shown = dotted(path)
        kind = err["type"]
        if kind == "extra_forbidden":
            line, col = doc.position(path, key=True)
            parent = f" in `{dotted(path[:-1])}`" if path[:-1] else ""
            hint = unknown_key_hint(str(path[-1]), _fields_at(model, model_loc[:-1]))
            problems.append(Problem(doc.file, line, col, f"unknown key `{path[-1]}`{parent}", hint))
            continue
        if kind == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            key = str(ctx.get("discriminator", "type")).strip("'")
            allowed = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            close = difflib.get_close_matches(str(ctx.get("tag")), allowed, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"use one of: {', '.join(allowed)}"
            problems.append(
                doc.problem(
                    (*path, key),
                    f"`{dotted((*path, key))}`: unknown {key} {ctx.get('tag')!r}",
                    hint,
                )
            )
            continue
        if kind == "missing":
            message, hint = f"`{shown}` is required", f"add `{path[-1]}:` here"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            message, hint = f"`{shown}`: {msg}", _expected_hint(err)
        problems.append(doc.problem(path, message, hint))
    return problems


def dotted(path: Iterable[str | int]) -> str:
    """``sources[0].path`` style, as a person would point at it."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "(top level)"


def _written_path(data: Any, root: Path_, loc: Path_) -> Path_:
    """Drop the steps pydantic adds that are not in the file (discriminated-union tags)."""
    node = data
    for step in root:
        node = node[step] if isinstance(node, dict | list) else None
    out: list[str | int] = []
    for step in loc:
        if isinstance(node, dict):
            if step in node:
                node = node[step]
            elif isinstance(step, str) and step in node.values():
                continue  # the union member's tag, e.g. the `markdown` of `type: markdown`
            else:
                node = None
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            node = None
        out.append(step)
    return tuple(out)


def unknown_key_hint(key: str, allowed: list[str]) -> str:
    """What to write instead of an unknown key: the nearest allowed one, or the list."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    if allowed:
        return f"allowed keys here: {', '.join(allowed)}"
    return "remove it or check its spelling against the README"


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    """Field names of the model found by following ``loc`` through ``model``'s annotations."""
    candidates: list[Any] = [model]
    for step in loc:
        nxt: list[Any] = []
        for cand in _unwrap(candidates):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                if isinstance(step, str) and step in cand.model_fields:
                    nxt.append(cand.model_fields[step].annotation)
                elif any(_tag_matches(f.annotation, step) for f in cand.model_fields.values()):
                    nxt.append(cand)  # a discriminated union names the member by its tag
            elif get_origin(cand) in (list, tuple, dict):
                args = [a for a in get_args(cand) if a is not Ellipsis]
                nxt.append(args[-1])
        candidates = nxt
    names: list[str] = []
    for cand in _unwrap(candidates):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            names.extend(n for n in cand.model_fields if n not in names)
    return names


def _unwrap(annotations: list[Any]) -> list[Any]:
    out: list[Any] = []
    for ann in annotations:
        origin = get_origin(ann)
        if origin is Annotated:
            out.extend(_unwrap([get_args(ann)[0]]))
        elif origin in (Union, types.UnionType):
            out.extend(_unwrap(list(get_args(ann))))
        else:
            out.append(ann)
    return out


def _tag_matches(annotation: Any, step: str | int) -> bool:
    return get_origin(annotation) is Literal and step in get_args(annotation)


def _expected_hint(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return f"expected {ctx['expected']}"
    return ""
