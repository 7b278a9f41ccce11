"""The length of a status as Mastodon's server counts it (``StatusLengthValidator``).

Mastodon does not count characters as written. Before counting it rewrites the text:

- every URL its extractor finds becomes ``characters_reserved_per_url`` characters (23);
- every mention ``@user@domain`` becomes ``@user``;

and then counts grapheme clusters. The server refuses (422) a status over its limit, so
a post fitted by any other count may be refused, or cut shorter than it needed to be.

URLs are found the way Mastodon finds them: twitter-text's ``extract_urls_with_indices``
(without protocol-less URLs) with the regular expressions Mastodon replaces in
``config/initializers/twitter_regex.rb``. What that means in practice:

- a URL needs a scheme (``http``, ``https``, ``dat``, ``dweb``, ``ipfs``, ``ipns``, ``ssb``,
  ``gopher``, ``gemini``) and a host whose top-level domain twitter-text knows (its list of
  2020, the one Mastodon's twitter-text 3.1.0 ships; ``localhost`` or an IP address is not
  a URL and counts in full);
- a path does not end in ``. , ; : ! ? * " ' $ % & | @ ~ [ ] < > = 「 」`` nor in an
  unbalanced ``)``: "see https://example.org/a." counts the full stop as text;
- ``(…)`` stays in the URL only when balanced (one level may nest), as in
  ``https://en.wikipedia.org/wiki/Primer_(film)``; a path may end in ``)`` only when the
  parenthesised part is ASCII-ish (the twitter-text characters Mastodon's rule reuses);
- a URL right after a letter, a digit, ``@``, ``$`` or ``#`` is not a URL.

Mentions follow ``Account::MENTION_RE``; one followed by ``@``, a Latin accented letter or
``://`` is not a mention. Where a URL and a mention overlap the one that starts first wins.

The top-level domains come from the ``twitter-text-parser`` package, a port of the same
twitter-text release; everything else is written here from Mastodon's and twitter-text's
Ruby sources. Ruby's regular expressions are Onigmo; ``regex`` is a backtracking engine with
the same leftmost, greedy semantics, so the same pattern finds the same matches.
"""

from __future__ import annotations

import functools
import stringprep
from dataclasses import dataclass

import regex

from pipeline.channels.compose import graphemes

URL_LENGTH = 23  # StatusLengthValidator::URL_PLACEHOLDER_CHARS, and Mastodon's default
MAX_URL_LENGTH = 4096  # twitter-text: a longer URL (after IDNA) is not a URL
MAX_TCO_SLUG_LENGTH = 40  # twitter-text: t.co links with a longer slug are not URLs
MAX_DOMAIN_LENGTH = 253  # Mastodon's Extractor: a mention with a longer domain is ignored

# -- twitter-text's character classes (rb/lib/twitter-text/regex.rb, 3.1.0) -----------------

_UNICODE_SPACES = "\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_DIRECTIONAL = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INVALID = "\ufffe\ufeff\uffff"
# PUNCTUATION_CHARS as Ruby reads it: ASCII punctuation except the backslash.
_PUNCTUATION = r"!\"#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~"
_SPACE = r" \t\n\x0b\f\r"
_CTRL = r"\x00-\x1f\x7f"
_LATIN_ACCENTS = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259"
    "\u025b\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)

_DOMAIN_CHAR = f"[^{_DIRECTIONAL}{_PUNCTUATION}{_SPACE}{_CTRL}{_INVALID}{_UNICODE_SPACES}]"
_SUBDOMAIN = rf"(?:(?:{_DOMAIN_CHAR}(?:[_\-]|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)"
_DOMAIN_NAME = rf"(?:(?:{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)"
_PUNYCODE = r"(?:xn--[0-9a-z]+)"
_PRECEDING = rf"(?:[^A-Z0-9@＠$#＃{_INVALID}]|[{_DIRECTIONAL}]|^)"

# twitter-text's own path characters: Mastodon replaces them, but its new path-ending
# rule was built from twitter-text's balanced parentheses, made of these.
_TT_PATH_CHAR = rf"[a-z\p{{Cyrillic}}0-9!*';:=+,.$/%#\[\]\p{{Pd}}_~&|@{_LATIN_ACCENTS}]"
_TT_BALANCED = rf"\((?:{_TT_PATH_CHAR}+|(?:{_TT_PATH_CHAR}*\({_TT_PATH_CHAR}+\){_TT_PATH_CHAR}*))\)"

# -- Mastodon's replacements (config/initializers/twitter_regex.rb) -----------------------

_PATH_CHAR = r"[^\p{White_Space}<>()?]"
_BALANCED = rf"\((?:{_PATH_CHAR}+|(?:{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*))\)"
_PATH_END = rf"(?:[^\p{{White_Space}}()?!*\"'「」<>;:=,.$%\[\]~&|@]|(?:{_TT_BALANCED}))"
_PATH = rf"(?:(?:{_PATH_CHAR}*(?:{_BALANCED}{_PATH_CHAR}*)*{_PATH_END})|(?:{_PATH_CHAR}+/))"
_UCHARS = (
    "\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef"
    "\U00010000-\U0001fffd\U00020000-\U0002fffd\U00030000-\U0003fffd\U00040000-\U0004fffd"
    "\U00050000-\U0005fffd\U00060000-\U0006fffd\U00070000-\U0007fffd\U00080000-\U0008fffd"
    "\U00090000-\U0009fffd\U000a0000-\U000afffd\U000b0000-\U000bfffd\U000c0000-\U000cfffd"
    "\U000d0000-\U000dfffd\U000e1000-\U000efffd\ue000-\uf8ff\U000f0000-\U000ffffd"
    "\U00100000-\U0010fffd"
)
_QUERY_CHAR = rf"[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@\^{_UCHARS}]"
_QUERY_END = rf"[a-z0-9_&=#/\-{_UCHARS}]"
_SCHEMES = r"(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://"

_REST = (  # after the domain: port, path, query; each optional
    rf"(?::(?P<port>[0-9]+))?(?P<path>/{_PATH}*)?(?P<query>\?{_QUERY_CHAR}*{_QUERY_END})?"
)
_FLAGS = regex.IGNORECASE | regex.MULTILINE  # Ruby's /i; its ^ and $ are line anchors

# The same parts, compiled for the scanner.
_PRECEDING_CHAR = regex.compile(rf"[^A-Z0-9@＠$#＃{_INVALID}]|[{_DIRECTIONAL}]", _FLAGS)
_SCHEME = regex.compile(_SCHEMES, _FLAGS)
_DOMAIN_CHAR_RE = regex.compile(_DOMAIN_CHAR, _FLAGS)
_SUBDOMAIN_RUN = regex.compile(rf"(?:{_DOMAIN_CHAR}|[_\-])+", _FLAGS)
_NAME_RUN = regex.compile(rf"(?:{_DOMAIN_CHAR}|-)+", _FLAGS)
_TLD_FOLLOWED_BY_WORD = regex.compile(r"[0-9a-z@+\-]", _FLAGS)
_PUNYCODE_RE = regex.compile(_PUNYCODE, _FLAGS)
_REST_PATTERN = regex.compile(_REST, _FLAGS)
_TCO = regex.compile(r"^https?://t\.co/([a-z0-9]+)", regex.IGNORECASE)

# -- Mastodon's mentions (app/models/account.rb, app/lib/extractor.rb) ----------------------

_WORD_CHARS = r"\p{L}\p{M}\p{Nd}\p{Pc}"  # Onigmo's [[:word:]] on Unicode strings
_WORD = f"[{_WORD_CHARS}]"
_USERNAME = r"(?i:[a-z0-9_]+(?:[.\-]+[a-z0-9_]+)*)"
_MENTION = regex.compile(
    rf"(?<![=/{_WORD_CHARS}])@(?P<name>{_USERNAME}(?:@{_WORD}+(?:[.\-]+{_WORD}+)*)?)"
)
_END_MENTION = regex.compile(rf"(?:[@＠]|[{_LATIN_ACCENTS}]+|://)", regex.IGNORECASE)


@dataclass(frozen=True)
class Entity:
    """A URL or a mention Mastodon recognises: ``text[start:end]``, and what it counts as."""

    start: int
    end: int
    counted_as: str


def status_length(text: str, url_length: int = URL_LENGTH) -> int:
    """The length Mastodon checks against ``max_characters``."""
    return graphemes(countable_text(text, url_length))


def countable_text(text: str, url_length: int = URL_LENGTH) -> str:
    """``text`` as Mastodon counts it: URLs as ``url_length`` x's, mentions without domain."""
    if not text.strip():
        return ""  # Ruby's String#blank?
    kept: list[str] = []
    position = 0
    for entity in entities(text, url_length):
        kept += [text[position : entity.start], entity.counted_as]
        position = entity.end
    kept.append(text[position:])
    return "".join(kept)


def entities(text: str, url_length: int = URL_LENGTH) -> list[Entity]:
    """URLs and mentions, in order, none overlapping (twitter-text's
    ``remove_overlapping_entities``: sorted by start, a later one overlapping the last
    kept one is dropped)."""
    found = sorted(urls(text, url_length) + mentions(text), key=lambda e: e.start)
    kept: list[Entity] = []
    for entity in found:
        if not kept or kept[-1].end <= entity.start:
            kept.append(entity)
    return kept


def urls(text: str, url_length: int = URL_LENGTH) -> list[Entity]:
    """twitter-text's ``extract_urls_with_indices(text, extract_url_without_protocol:
    false)`` with Mastodon's patterns: the matches of ``url_pattern()`` in Ruby's ``scan``
    order, those without a scheme passed over (but still consumed, as Ruby does)."""
    if ":" not in text:
        return []
    scanner, found, position = _Scanner(text), [], 0
    while position < len(text):
        match = scanner.match_at(position)
        if match is None:
            position += 1
            continue
        start, end, domain, has_scheme = match
        position = end
        kept = checked_length(text[start:end], domain) if has_scheme else None
        if kept is not None:
            found.append(Entity(start, start + kept, "x" * url_length))
    return found


def checked_length(url: str, domain: str) -> int | None:
    """twitter-text's checks on a URL the pattern found: how much of it is kept (a t.co
    link loses any path after its slug), or None if it is not a URL after all (a t.co
    slug over 40 characters, a host that IDNA refuses, over 4,096 characters)."""
    tco = _TCO.match(url)
    if tco:
        if len(tco[1]) > MAX_TCO_SLUG_LENGTH:
            return None
        url = tco[0]
    return len(url) if _valid_domain(len(url), domain) else None


def mentions(text: str) -> list[Entity]:
    """Mastodon's ``Extractor.extract_mentions_or_lists_with_indices``; each counts as
    ``@user``, whatever its domain."""
    if "@" not in text and "＠" not in text:
        return []
    found = []
    for match in _MENTION.finditer(text):
        if _END_MENTION.match(text, match.end()):
            continue
        user, _, domain = match["name"].partition("@")
        if len(domain) > MAX_DOMAIN_LENGTH:
            continue
        found.append(Entity(match.start("name") - 1, match.end("name"), "@" + user))
    return found


@functools.cache
def tld_lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """twitter-text 3.1.0's generic and country-code top-level domains, in its order."""
    from twitter_text.regexp.valid_cctld import valid_cctld
    from twitter_text.regexp.valid_gtld import valid_gtld

    # Each is "(?:(?:com|org|…)(?=[^0-9a-zA-Z@+-]|$))", as twitter-text's Ruby has it.
    head, tail = "(?:(?:", ")(?=[^0-9a-zA-Z@+-]|$))"
    lists = []
    for compiled in (valid_gtld, valid_cctld):
        pattern = compiled.pattern
        if not (pattern.startswith(head) and pattern.endswith(tail)):
            raise RuntimeError("twitter-text-parser changed its TLD patterns; pin 3.0.0")
        lists.append(tuple(pattern[len(head) : -len(tail)].split("|")))
    return lists[0], lists[1]


@functools.cache
def url_pattern() -> regex.Pattern[str]:
    """twitter-text's ``valid_url`` with Mastodon's parts, as one regular expression: the
    definition of what Mastodon counts as a URL. Its backtracking is cubic on a long run of
    dotted labels without a known top-level domain, so ``urls`` evaluates it with
    ``_Scanner`` instead; the tests hold the two to the same matches."""
    generic, country = tld_lists()
    follow = r"(?=[^0-9a-z@+\-]|$)"
    gtld = f"(?:(?:{'|'.join(map(regex.escape, generic))}){follow})"
    cctld = f"(?:(?:{'|'.join(map(regex.escape, country))}){follow})"
    domain = rf"(?:{_SUBDOMAIN}*{_DOMAIN_NAME}(?:{gtld}|{cctld}|{_PUNYCODE}))"
    return regex.compile(
        rf"(?P<before>{_PRECEDING})"
        rf"(?P<url>(?P<protocol>{_SCHEMES})?(?P<domain>{domain}){_REST})",
        _FLAGS,
    )


class _Scanner:
    """``url_pattern()`` matched at one position after another, in linear time.

    The pattern is ``preceding (scheme)? domain rest``, where everything in ``rest`` is
    optional: once a domain matches, the match is made, so only the domain needs care.
    A domain is ``subdomain* name tld``: labels each ending in ``.``, and since a label's
    characters exclude ``.``, each label is fixed by where it starts. The greedy ``*``
    takes as many subdomains as it can and gives them back one by one until ``name tld``
    matches, so the domain ends at the right-most label from which ``name tld`` matches.
    That is worked out once per label (``best``) instead of once per start position, and
    each run of label characters is read once (``run_ends``), however many positions in it
    a match is tried from.
    """

    def __init__(self, text: str):
        self.text = text
        self.best: dict[int, int | None] = {}  # label start -> end of the domain, or None
        self.run_ends: dict[regex.Pattern[str], dict[int, int]] = {
            _SUBDOMAIN_RUN: {},
            _NAME_RUN: {},
        }

    def match_at(self, position: int) -> tuple[int, int, str, bool] | None:
        """(start, end, domain, has scheme) of the URL the pattern matches when tried at
        ``position``, or None."""
        text = self.text
        if _PRECEDING_CHAR.match(text, position):  # the preceding character, consumed
            found = self._url_at(position + 1)
            if found:
                return found
        if position == 0 or text[position - 1] == "\n":  # Ruby's ^ matches any line start
            return self._url_at(position)
        return None

    def _url_at(self, start: int) -> tuple[int, int, str, bool] | None:
        scheme = _SCHEME.match(self.text, start)
        if scheme:
            end = self._domain_end(scheme.end())
            if end is not None:
                return start, self._rest_end(end), self.text[scheme.end() : end], True
        end = self._domain_end(start)
        if end is not None:
            return start, self._rest_end(end), self.text[start:end], False
        return None

    def _rest_end(self, domain_end: int) -> int:
        rest = _REST_PATTERN.match(self.text, domain_end)
        assert rest is not None  # every part of it is optional
        return rest.end()

    def _domain_end(self, start: int) -> int | None:
        """Where ``subdomain* name tld`` starting at ``start`` ends, or None."""
        chain = []  # label starts not yet worked out, left to right
        position: int | None = start
        while position is not None and position not in self.best:
            chain.append(position)
            position = self._label_end(position, _SUBDOMAIN_RUN)
            position = None if position is None else position + 1  # past the "."
        after = self.best.get(position) if position is not None else None
        for label in reversed(chain):  # right-most first: what the greedy * finds
            if after is None:
                after = self._name_and_tld(label)
            self.best[label] = after
        return self.best[start]

    def _name_and_tld(self, label: int) -> int | None:
        """The end of ``name tld`` at ``label``, or None."""
        name_end = self._label_end(label, _NAME_RUN)
        if name_end is None:
            return None
        return _tld_end(self.text, name_end + 1)

    def _label_end(self, start: int, run: regex.Pattern[str]) -> int | None:
        """Index of the ``.`` ending a label that starts at ``start`` (``run`` being its
        characters), or None: it must start and end with a domain character."""
        text, ends = self.text, self.run_ends[run]
        end = ends.get(start)
        if end is None:
            match = run.match(text, start)
            end = match.end() if match else start
            for inside in range(start, end):  # a run ends where any suffix of it ends
                ends[inside] = end
        if end == start or end >= len(text) or text[end] != ".":
            return None
        if not (_DOMAIN_CHAR_RE.match(text, start) and _DOMAIN_CHAR_RE.match(text, end - 1)):
            return None
        return end


def _tld_end(text: str, start: int) -> int | None:
    """The end of the first of gTLD, ccTLD (each in twitter-text's order, followed by
    neither a letter, a digit, ``@``, ``+`` nor ``-``) and Punycode that matches."""
    index, lengths = _tld_index()
    best: tuple[int, int] | None = None  # (list position, end)
    for length in lengths:
        end = start + length
        if end > len(text):
            break
        rank = index.get(text[start:end].lower())
        if rank is None or (best is not None and best[0] < rank):
            continue
        if not _TLD_FOLLOWED_BY_WORD.match(text, end):
            best = rank, end
    if best is not None:
        return best[1]
    punycode = _PUNYCODE_RE.match(text, start)
    return punycode.end() if punycode else None


@functools.cache
def _tld_index() -> tuple[dict[str, int], tuple[int, ...]]:
    """Each top-level domain (lower case) with its place in the alternation, and the
    lengths there are."""
    generic, country = tld_lists()
    index: dict[str, int] = {}
    for rank, tld in enumerate(generic + country):
        index.setdefault(tld.lower(), rank)
    return index, tuple(sorted({len(t) for t in index}))


def _valid_domain(url_length: int, domain: str) -> bool:
    """twitter-text's ``is_valid_domain``: the host converts to ASCII (IDNA 2003, as
    libidn does for Ruby, unassigned code points refused) and the URL stays within
    4,096 characters with its host in Punycode."""
    if any(stringprep.in_table_a1(character) for character in domain):
        return False
    try:
        ascii_length = len(domain.encode("idna"))
    except UnicodeError:
        return False
    return url_length + max(0, ascii_length - len(domain)) <= MAX_URL_LENGTH
