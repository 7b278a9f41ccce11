"""Pydantic's validation errors as located problems a person can act on.

Each error on a settings model (config/pipeline.yaml, article front matter) becomes one
``file:line:column: what — fix``, at the place in the file it is about: pydantic's own
path steps that are not in the file (a discriminated union's tag) are dropped, keys are
named as they are written (``from``, not the Python name ``from_``), an unknown key gets
the nearest allowed one, and one mistake is reported once (``fro:`` is not also "`from`
is required").
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from pipeline.errors import Problem
from pipeline.suggest import did_you_mean, nearest, unknown_key_hint

if TYPE_CHECKING:
    from pipeline.yamlfile import Path_, YamlDocument


def problems_from_validation(
    doc: YamlDocument, error: ValidationError, model: type[BaseModel], root: Path_ = ()
) -> list[Problem]:
    """Turn pydantic's errors on ``model`` into located Problems, one per mistake."""
    problems = []
    suggested: set[Path_] = set()  # keys an unknown key was taken for: not also "required"
    missing: list[tuple[Path_, Problem]] = []
    for err in error.errors(include_url=False):
        model_loc = tuple(err["loc"])
        path = root + _written_path(doc.data, root, model_loc)
        shown = dotted(path)
        kind = err["type"]
        if kind == "extra_forbidden":
            line, col = doc.position(path, key=True)
            parent = f" in `{dotted(path[:-1])}`" if path[:-1] else ""
            fields = _fields_at(model, model_loc[:-1])
            near = nearest(str(path[-1]), fields)
            if near is not None:
                suggested.add((*path[:-1], near))
            hint = unknown_key_hint(str(path[-1]), fields)
            problems.append(Problem(doc.file, line, col, f"unknown key `{path[-1]}`{parent}", hint))
            continue
        if kind == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            key = str(ctx.get("discriminator", "type")).strip("'")
            allowed = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            hint = did_you_mean(str(ctx.get("tag")), allowed, f"use one of: {', '.join(allowed)}")
            problems.append(
                doc.problem(
                    (*path, key),
                    f"`{dotted((*path, key))}`: unknown {key} {ctx.get('tag')!r}",
                    hint,
                )
            )
            continue
        if kind == "union_tag_not_found":
            problems.append(_untagged(doc, path, model, model_loc, err))
            continue
        if kind == "missing":
            problem = doc.problem(path, f"`{shown}` is required", f"add `{path[-1]}:` here")
            missing.append((path, problem))
            problems.append(problem)
            continue
        msg = err["msg"].removeprefix("Value error, ")
        hint = _expected_hint(err)
        if kind == "literal_error" and isinstance(err.get("input"), str):
            # a near miss of a name (a feed format, a transport): the one it stands for
            allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            hint = did_you_mean(err["input"], allowed, hint)
        problems.append(doc.problem(path, f"`{shown}`: {msg}", hint))
    # `fro: …` is one mistake, not two: its hint already says to write `from`.
    redundant = {id(problem) for path, problem in missing if path in suggested}
    return [problem for problem in problems if id(problem) not in redundant]


def _untagged(
    doc: YamlDocument, path: Path_, model: type[BaseModel], loc: Path_, err: Mapping[str, Any]
) -> Problem:
    """A mapping without the key that says which kind it is (``type:``), often because
    that key is misspelt; pydantic says "Unable to extract tag using discriminator"."""
    key = str((err.get("ctx") or {}).get("discriminator", "type")).strip("'")
    tags = ", ".join(_tags_at(model, loc, key))
    written = _at(doc.data, path)
    wrong = (
        [k for k in written if nearest(str(k), [key]) == key] if isinstance(written, dict) else []
    )
    if wrong:
        line, col = doc.position((*path, wrong[0]), key=True)
        message = f"unknown key `{wrong[0]}` in `{dotted(path)}`"
        hint = f"{did_you_mean(str(wrong[0]), [key])} (one of: {tags})"
        return Problem(doc.file, line, col, message, hint)
    return doc.problem(path, f"`{dotted(path)}` needs `{key}`", f"add `{key}:` — one of: {tags}")


def dotted(path: Iterable[str | int]) -> str:
    """``sources[0].path`` style, as a person would point at it."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "(top level)"


def _at(data: Any, path: Path_) -> Any:
    """The value at ``path`` in plain data (None where the path leads nowhere)."""
    for step in path:
        data = data[step] if isinstance(data, dict | list) else None  # type: ignore[index]
    return data


def _written_path(data: Any, root: Path_, loc: Path_) -> Path_:
    """Drop the steps pydantic adds that are not in the file (discriminated-union tags)."""
    node = _at(data, root)
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


def _models_at(model: type[BaseModel], loc: Path_) -> list[type[BaseModel]]:
    """The models that may describe the mapping at ``loc`` in ``model``, found by following
    ``loc`` through the annotations (every member of a union not yet told apart)."""
    candidates: list[Any] = [model]
    for step in loc:
        nxt: list[Any] = []
        for cand in _unwrap(candidates):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                fields = {_key(name, f): f for name, f in cand.model_fields.items()}
                if isinstance(step, str) and step in fields:
                    nxt.append(fields[step].annotation)
                elif any(_tag_matches(f.annotation, step) for f in fields.values()):
                    nxt.append(cand)  # a discriminated union names the member by its tag
            elif get_origin(cand) in (list, tuple, dict):
                args = [a for a in get_args(cand) if a is not Ellipsis]
                nxt.append(args[-1])
        candidates = nxt
    return [c for c in _unwrap(candidates) if isinstance(c, type) and issubclass(c, BaseModel)]


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    """The keys a file may hold at ``loc`` in ``model``, as written in the file (a field's
    alias, e.g. ``from``, where it has one: its Python name would be refused)."""
    names: list[str] = []
    for cand in _models_at(model, loc):
        keys = (_key(name, f) for name, f in cand.model_fields.items())
        names.extend(key for key in keys if key not in names)
    return names


def _tags_at(model: type[BaseModel], loc: Path_, key: str) -> list[str]:
    """The values ``key`` may take at ``loc``: the tags of a discriminated union."""
    tags: list[str] = []
    for cand in _models_at(model, loc):
        field = cand.model_fields.get(key)
        if field is not None and get_origin(field.annotation) is Literal:
            tags.extend(str(tag) for tag in get_args(field.annotation) if str(tag) not in tags)
    return tags


def _key(name: str, field: Any) -> str:
    """A field's key in the file: pydantic reads the alias, not the name, when one is set."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else field.alias or name


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
