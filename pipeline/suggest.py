""" "Did you mean …?": the one place where a near miss a person wrote is matched to what
they probably meant, and worded.

A suggestion is only ever something that would then be accepted where it was written:
callers pass the words as a person writes them in the file (``from``, never the Python
name ``from_``), and may add the other words people use for them (``time`` for ``at``).
Matching ignores case and treats ``-``, ``_`` and spaces alike (``reply-to`` is
``reply_to``); among near misses, one with the same first letter wins (``munday`` is
``monday``, not ``sunday``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping

MAX_WORD = 64  # difflib is quadratic in the length; nothing longer is a near miss
CUTOFF = 0.6  # difflib's own default: "munday"/"monday" pass, "from"/"sender" do not
_SEPARATORS = re.compile(r"[-_\s]+")


def _folded(word: str) -> str:
    return _SEPARATORS.sub("_", word.strip().lower())


def nearest(
    word: str,
    choices: Iterable[str],
    *,
    synonyms: Mapping[str, str] | None = None,
    fuzzy: bool = True,
) -> str | None:
    """The choice ``word`` most likely stands for, or None if none is close. Without
    ``fuzzy`` only the same word written differently (case, ``-`` or ``_``) is found."""
    options = list(dict.fromkeys(choices))
    if len(word) > MAX_WORD or not options:
        return None
    folded = _folded(word)
    by_folded = {_folded(option): option for option in reversed(options)}
    meant = {_folded(k): v for k, v in (synonyms or {}).items()}.get(folded)
    if meant is not None and meant in options:
        return meant
    if folded in by_folded:
        return by_folded[folded]
    if not fuzzy:
        return None
    close = difflib.get_close_matches(folded, list(by_folded), n=3, cutoff=CUTOFF)
    close.sort(key=lambda option: option[:1] != folded[:1])  # stable: best first otherwise
    return by_folded[close[0]] if close else None


def did_you_mean(
    word: str,
    choices: Iterable[str],
    otherwise: str = "",
    *,
    synonyms: Mapping[str, str] | None = None,
    fuzzy: bool = True,
    written: Callable[[str], str] = lambda near: f"`{near}`",
) -> str:
    """``did you mean `X`?`` for the nearest choice, else ``otherwise``. ``written``
    shows the choice as it would be written where the mistake is (``<mj-column>``)."""
    near = nearest(word, choices, synonyms=synonyms, fuzzy=fuzzy)
    return _question(written(near)) if near is not None else otherwise


def _question(shown: str) -> str:
    return f"did you mean {shown}?"


def unknown_key_hint(
    key: str,
    allowed: Iterable[str],
    *,
    synonyms: Mapping[str, str] | None = None,
    meanings: Mapping[str, str] | None = None,
) -> str:
    """What to write instead of an unknown key: the nearest allowed one (with what it is
    for, from ``meanings``), or the list of allowed keys."""
    names = list(allowed)
    near = nearest(key, names, synonyms=synonyms)
    if near is not None:
        meaning = (meanings or {}).get(near)
        return _question(f"`{near}`") + (f" ({meaning})" if meaning else "")
    if names:
        return f"allowed keys here: {', '.join(names)}"
    return "remove it or check its spelling against the README"
