"""Text rules shared by every source and channel: sanitising (``pipeline.sanitising``),
plain text, excerpts, read-time.

Articles are English, Chinese or both, with emoji and combining characters, so lengths are
counted in graphemes (what a reader sees as one character), never in code points: cutting
inside a ZWJ family, a flag or an ``e`` + combining accent would show a broken glyph. A
summary's budget is in display columns instead (a Chinese character is twice as wide as a
Latin letter), so Chinese and English summaries fill about as many lines.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from itertools import accumulate, islice

import regex
from lxml import etree

from pipeline.sanitising import sanitize_html as sanitize_html  # callers use text.sanitize_html
from pipeline.sanitising import without_surrogates

# -- characters XML forbids -----------------------------------------------------------------

_XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_C0_FORBIDDEN = bytes(c for c in range(32) if c not in b"\t\n\r")
_U_FFFE, _U_FFFF = "\ufffe".encode(), "\uffff".encode()


def _xml_clean(text: str) -> bool:
    """Whether ``text`` holds none of the characters XML forbids. Nearly every text does,
    and asked of its UTF-8 bytes (a surrogate cannot be encoded; a control character
    stays a byte of its own; U+FFFE and U+FFFF are 3-byte sequences no other character
    contains) this is a few passes in C, ~5 times faster than ``_XML_FORBIDDEN``."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    unchanged = len(data.translate(None, _C0_FORBIDDEN)) == len(data)
    return unchanged and _U_FFFE not in data and _U_FFFF not in data


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids, which feedgen refuses to write."""
    return text if _xml_clean(text) else _XML_FORBIDDEN.sub("", text)


def find_control_character(text: str) -> tuple[int, int, str] | None:
    """First character XML forbids as (line, column, "U+0007"), both 1-based, or None.

    Lines are counted by ``\\n`` and columns in code points, so a person can find the
    invisible character an editor does not show.
    """
    found = None if _xml_clean(text) else _XML_FORBIDDEN.search(text)
    if found is None:
        return None
    at = found.start()
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at), f"U+{ord(found[0]):04X}"


# -- HTML to plain text ---------------------------------------------------------------------

_PARAGRAPH = "\n\n"
_BREAKS = {
    **dict.fromkeys(("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figure"), _PARAGRAPH),
    **dict.fromkeys(("ul", "ol", "dl", "table", "pre", "hr", "section", "article"), _PARAGRAPH),
    **dict.fromkeys(("header", "footer", "aside", "nav", "main", "address"), _PARAGRAPH),
    **dict.fromkeys(("br", "div", "li", "tr", "dt", "dd", "figcaption", "caption"), "\n"),
    **dict.fromkeys(("td", "th"), " | "),  # cells of a row: "Koshi | 1,400 m"
}
BULLET = "• "  # before each item of an unordered list; ordered ones get "1. ", "2. "
_NUMBER = re.compile(r"[+-]?\d{1,9}")
_DROP_CONTENT = frozenset({"script", "style", "template"})
_BLANK_LINES = re.compile(r"\n\n\n+")  # not \n{3,}: re searches a literal prefix ~20× faster


def _weight(gap: str) -> tuple[int, int]:
    """Orders gaps: none < a space < a line break < a blank line."""
    return gap.count("\n"), len(gap)


class _TextCollector:
    """lxml parser target: keeps the text a reader sees, with block edges as line breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = ""  # the break owed before the next text: merged, not stacked
        self.dropping = 0  # depth inside script, style or template
        self.preformatted = 0  # depth inside <pre>, where line breaks are content
        self.lists: list[list[int] | None] = []  # open lists: [next number] if ordered
        self.marker = ""  # the list item's "1. " or "• ", owed before its first text

    def start(self, tag: str, attrib: dict[str, str], nsmap: object = None) -> None:
        # lxml passes ``nsmap`` to a start() whose signature can take it, as one wrapped
        # in (*args) can (mutation testing does that): taking it always works either way.
        self._edge(tag, 1)
        if tag == "ol":
            self.lists.append([_number(attrib.get("start"), 1)])
        elif tag == "ul":
            self.lists.append(None)
        elif tag == "li":
            counter = self.lists[-1] if self.lists else None
            if counter is None:
                self.marker = BULLET
            else:  # <li value="7"> renumbers from there, as browsers do
                counter[0] = _number(attrib.get("value"), counter[0])
                self.marker = f"{counter[0]}. "
                counter[0] += 1

    def end(self, tag: str) -> None:
        self._edge(tag, -1)
        if tag in ("ol", "ul") and self.lists:
            self.lists.pop()
        elif tag == "li":
            self.marker = ""  # an item without text shows no number

    def _edge(self, tag: str, step: int) -> None:
        if tag in _DROP_CONTENT:
            self.dropping = max(0, self.dropping + step)
        elif tag == "pre":
            self.preformatted = max(0, self.preformatted + step)
        if tag == "br":  # each <br> is a line break of its own; two make a blank line
            self.pending += "\n" if step > 0 else ""
        elif tag in _BREAKS and _weight(_BREAKS[tag]) > _weight(self.pending):
            self.pending = _BREAKS[tag]  # the heavier break wins: </li><li> is one break

    def data(self, data: str) -> None:
        if self.dropping:
            return
        if not self.preformatted:
            if self.pending and data.isspace():  # spaces next to a line break show nothing
                return  # (lxml never passes empty text)
            # html_to_text makes each line's whitespace runs one space, once, at the end;
            # here only a line break must go, as it is no line break outside <pre>.
            data = data.replace("\n", " ")
        self.parts += (self.pending, self.marker, data)
        self.pending = self.marker = ""

    def close(self) -> str:
        return "".join(self.parts)


def _number(value: str | None, default: int) -> int:
    """An ``<ol start>`` or ``<li value>`` attribute as a number, else ``default``."""
    found = _NUMBER.fullmatch(value.strip()) if value else None
    return int(found[0]) if found else default


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML fragment (or of plain text, which passes through).

    Entities are decoded, tags dropped, blocks put on their own lines and paragraphs
    separated by a blank line; list items start with their number (``1. ``) or ``• ``,
    and the cells of a table row are separated by `` | ``. libxml2's HTML5 tokenizer
    treats malformed markup as a browser would, so ``a < b`` stays text. No-break spaces
    collapse like other spaces.
    """
    # A tree walked with lxml's own iteration: a parser target costs a Python call per
    # event from inside libxml2, and a dict of attributes per tag.
    html = without_surrogates(html)
    parser = etree.HTMLParser(recover=True, no_network=True)
    parser.feed(html)
    root = parser.close()
    collector = _TextCollector()
    if root is None or root.getprevious() is not None or root.getnext() is not None:
        # Nothing, or more than one top-level node (text after ``</html>`` makes a second
        # ``<html>``), where the tree has dropped the whitespace between them: the events
        # themselves, which have it, as before. Rare; never in a sanitised body.
        target = etree.HTMLParser(  # type: ignore[call-overload]
            target=collector, recover=True, no_network=True
        )
        target.feed(html)
        target.close()
    else:
        _walk(root, collector)
    raw = collector.close()
    # each line's whitespace runs as one space, and none at its ends
    lines = map(_one_space, raw.split("\n"))
    return _BLANK_LINES.sub(_PARAGRAPH, "\n".join(lines)).strip()


# What str.split takes for whitespace in ASCII besides the space (and the line break that
# ends a line); and two spaces, which re finds twice as fast as ``in``.
_ASCII_BLANKS = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
_TWO_SPACES = re.compile("  ")


def _one_space(line: str) -> str:
    """The line with each whitespace run as one space, and none at its ends. Most lines
    are so already, ASCII with single spaces, which a few searches in C tell; splitting
    a paragraph into words and joining them again was a third of html_to_text."""
    plain = line.isascii() and " " not in line[:1] + line[-1:]
    if plain and not _TWO_SPACES.search(line) and not any(map(line.__contains__, _ASCII_BLANKS)):
        return line
    return " ".join(line.split())


def _walk(root: etree._Element, collector: _TextCollector) -> None:
    """Feed ``collector`` the events a parser target would have had: each element's start
    and end, its text after the start and its tail after the end. Comments and processing
    instructions show nothing, but the text after them does (``iterwalk`` skips them,
    tails included). A loop, not recursion: nesting depth costs no stack."""
    parents: list[etree._Element] = []
    children: list[Iterator[etree._Element]] = [iter((root,))]
    while children:
        node = next(children[-1], None)
        if node is None:
            children.pop()
            if parents:
                parent = parents.pop()
                collector.end(parent.tag)  # type: ignore[arg-type]
                if parent.tail:
                    collector.data(parent.tail)
            continue
        tag = node.tag
        if isinstance(tag, str):
            collector.start(tag, node.attrib)  # type: ignore[arg-type]
            if node.text:
                collector.data(node.text)
            parents.append(node)
            children.append(iter(node))
        elif node.tail:
            collector.data(node.tail)


# -- graphemes, excerpts and read-time ------------------------------------------------------

_CJK_SET = (
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}"
    r"\u3000-\u303f\u30a0-\u30ff\u3200-\u33ff\ufe10-\ufe1f\ufe30-\ufe4f\uff00-\uffef]"
)
_CJK = regex.compile(_CJK_SET)
_CJK_LETTER = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}\u30fc]")
_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+(?:['’.\-][\p{L}\p{N}\p{M}]+)*")
# Beyond ASCII, the punctuation and spaces English text is full of: none is a letter,
# digit or mark, none is changed by NFC (tests/test_text.py checks both).
PLAIN_PUNCTUATION = "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u2022\xa0\xab\xbb\xb7\xb0\xa9"
_BEYOND_PLAIN = re.compile(f"[^\\x00-\\x7f{PLAIN_PUNCTUATION}]")
# A word of plain text; _plain_words counts them without it (tests/test_text_oracle.py)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9]+(?:['’.\-][A-Za-z0-9]+)*")
_GRAPHEME = regex.compile(r"\X")
_CJK_LETTERS = regex.compile(_CJK_LETTER.pattern + "+")
# Characters that are a grapheme each whatever stands beside them (Grapheme_Cluster_Break
# Other, tests/test_text_oracle.py checks): ASCII, the plain punctuation, CJK punctuation (not
# the tone marks U+302A-F), Han, fullwidth forms.
_ALONE = re.compile(
    f"[\\x20-\\x7e{PLAIN_PUNCTUATION}\u3000-\u3029\u3030-\u303f\u4e00-\u9fff\uff01-\uff60]*"
)
ELLIPSIS = "…"
# Would dangle in front of the ellipsis ("salt, pepper,…", "他说：「…"), so they go.
_DANGLING = frozenset(",;:—–-‐/&…([{，、；：－（【「『《〈“‘")
# Looked past when asking how a line ends: "He said “Go.”" ends with a full stop.
_CLOSING = frozenset("\"'”’」』）)]】》〉")
_LIST_ITEM = re.compile(r"(?:[•\-*]|\d{1,9}[.)]) ")  # a line html_to_text starts with a marker
_SKIPPED = frozenset(("Mn", "Me", "Cf"))  # accents, variation selectors, joiners
_REGIONAL_INDICATOR = re.compile("[\U0001f1e6-\U0001f1ff]")


def is_cjk(grapheme: str) -> bool:
    """Whether a grapheme is Chinese, Japanese or Korean script or CJK punctuation.

    Such text has no spaces between words, so a line or excerpt may break after any of them.
    """
    return _CJK.match(grapheme) is not None


@functools.lru_cache(maxsize=8192)  # a language has few graphemes; summaries ask for each often
def display_columns(grapheme: str) -> int:
    """How wide a grapheme shows: 2 columns if East Asian Width calls it Wide or
    Fullwidth (Han, kana, Hangul, fullwidth forms, most emoji), or it is an emoji
    presentation (VS16) or a flag; 1 otherwise, Ambiguous ones (``…``, ``“``) included."""
    if grapheme.isascii():  # East Asian Width: Narrow or Neutral, all of it
        return 1
    if "\ufe0f" in grapheme or len(_REGIONAL_INDICATOR.findall(grapheme)) == 2:
        return 2
    return 2 if any(unicodedata.east_asian_width(c) in ("W", "F") for c in grapheme) else 1


def _gap(text: str, start: int, end: int) -> str:
    """What the whitespace ``text[start:end]`` becomes in an excerpt's one line: nothing
    at either end of the text, one space within a line. A line break is a block edge
    (html_to_text puts headings, paragraphs, items, rows and ``<br>`` on lines of their
    own): a line that ends without punctuation gets a full stop (``。`` after CJK), so a
    heading does not run into its paragraph as one sentence; a list item's marker
    (``• ``, ``2. ``) separates by itself."""
    if start == 0 or end == len(text):
        return ""
    if "\n" not in text[start:end]:
        return " "
    # Past closing quotes and brackets, and the marks on the last letter (only within
    # the word before the break: each character is stepped over once in all).
    before = at = start - 1
    while at > 0 and (text[at] in _CLOSING or unicodedata.category(text[at]) in _SKIPPED):
        at -= 1
    if _LIST_ITEM.match(text, end):
        return " "
    if unicodedata.category(text[at]).startswith(("P", "S")):  # punctuation, symbol, emoji
        return "" if is_cjk(text[before]) else " "
    return "。" if is_cjk(text[at]) else ". "


def _one_line(text: str, end: int) -> str:
    """``text[:end]`` as an excerpt shows it: whitespace runs become ``_gap``s, decided
    with the text after ``end`` in view (only a run reaching ``end`` may come out
    otherwise than in the whole text).

    Only the runs that hold a line break need ``_gap``'s judgement; the text between them
    is joined by single spaces with ``str.split``, in C, rather than run by run."""
    end = min(end, len(text))
    parts: list[str] = []
    done = 0
    at = text.find("\n", 0, end)
    while at != -1:
        start, stop = at, at + 1  # widened to the whole run around this line break
        while start > done and text[start - 1].isspace():
            start -= 1
        while stop < end and text[stop].isspace():
            stop += 1
        parts += (" ".join(text[done:start].split()), _gap(text, start, stop))
        done = stop
        at = text.find("\n", done, end)
    # A run at the start is dropped (``_gap``: nothing at the ends), as split does; one
    # at ``end`` is a space unless the text ends there.
    last = " ".join(text[done:end].split())
    trailing = last and end < len(text) and text[end - 1].isspace()
    parts.append(last + " " if trailing else last)
    return "".join(parts)


def _leading_graphemes(text: str, count: int) -> tuple[list[str], bool]:
    """The first ``count`` graphemes of the text on one line (``_one_line``), and
    whether that is all.

    Only a prefix a little longer than needed is normalised and segmented (doubling when
    long graphemes or whitespace runs make it too short), so a 5,000-word article costs
    no more than a short one. Most graphemes are one code point and most whitespace runs
    one space, so ``count`` and a margin are nearly always enough at the first try.
    """
    size = count + count // 8 + 16
    while True:
        whole = size >= len(text)
        normal = _one_line(text, size)  # all of it when size reaches its end
        # count + 2: the last grapheme of a prefix may still grow (a combining mark after
        # it), and a whitespace run at its end may be the end of the text or a full stop
        # and a space (2 graphemes); the ones before are final.
        # ASCII: one character is one grapheme (CR LF would be one, but _one_line has
        # made every whitespace run a space or a sentence break).
        # So is a character that joins no neighbour (Han, CJK and fullwidth punctuation),
        # which is most Chinese text: ``\\X`` over it costs as much as the rest together.
        if normal.isascii() or _ALONE.fullmatch(normal):
            head = list(normal[: count + 2])
        else:
            head = [found[0] for found in islice(_GRAPHEME.finditer(normal), count + 2)]
        if whole or len(head) == count + 2:
            return head[:count], whole and len(head) <= count
        size *= 2


def _breakable(before: str, after: str) -> bool:
    """A line may break between two graphemes at a space or next to CJK text."""
    return before == " " or after == " " or is_cjk(before) or is_cjk(after)


def excerpt(text: str, limit: int, *, columns: bool = False) -> str:
    """Plain-text excerpt of at most ``limit`` graphemes (with ``columns``: display
    columns, see ``display_columns``), counting the final ``…`` as one.

    The text is put on one line: whitespace runs become one space, and a line break a
    sentence break (see ``_gap``). Text that fits is returned whole and without ``…``.
    Otherwise the cut falls at the last word boundary (a space, or either side of a CJK
    character) that leaves room for ``…``, at a grapheme boundary if one word fills the
    whole budget, and never inside a grapheme.

    Columns are for what people read (summaries: 280 columns are 280 letters or 140
    Chinese characters, about as many lines); graphemes for what a network counts.
    """
    if limit < 1:
        raise ValueError(f"an excerpt needs a limit of at least 1 grapheme, not {limit}")
    # Every grapheme takes at least one column, so ``limit`` graphemes are always enough.
    head, complete = _leading_graphemes(text, limit)
    joined = "".join(head)
    reach: Sequence[int]  # columns up to and including each grapheme
    if columns and not joined.isascii():
        reach = list(accumulate(map(display_columns, head)))
    else:  # each grapheme counts one (an ASCII one is one column wide)
        reach = range(1, len(head) + 1)
    if complete and (not reach or reach[-1] <= limit):
        return joined
    # the graphemes that fit in the columns left once the ellipsis is counted
    budget = bisect.bisect_right(reach, limit - 1)
    if joined.isascii() and len(joined) == len(head):
        # No CJK, and one character a grapheme: the last word boundary is beside the
        # last space up to the budget, found by rfind in C rather than by _breakable's
        # two is_cjk calls for each grapheme back to it.
        space = joined.rfind(" ", 0, budget + 1)
        cut = budget if space in (-1, budget) else space + 1
    else:
        cut = next((i for i in range(budget, 0, -1) if _breakable(head[i - 1], head[i])), budget)
    for end in (cut, budget):  # a word cut that leaves only punctuation falls back
        kept = head[:end]
        while kept and (kept[-1] == " " or kept[-1] in _DANGLING):
            kept.pop()
        if kept:
            return "".join(kept) + ELLIPSIS
    return ELLIPSIS


def read_minutes(text: str) -> int:
    """Minutes to read plain text: 230 words or 500 CJK characters a minute, at least one.

    Words are runs of letters and digits outside CJK scripts (``don't``, ``3.5`` and
    ``e-mail`` are one word each); CJK punctuation is not counted as something read.
    """
    if text.isascii() or _BEYOND_PLAIN.search(text) is None:
        # ASCII and typographic punctuation only (most English): no CJK, nothing to
        # normalise, and a word is ASCII letters and digits (see _plain_words).
        words, cjk = _plain_words(text), 0
    else:
        text = unicodedata.normalize("NFC", text)  # decomposed Hangul would count thrice
        # CJK letters are counted by runs (a match each would cost 5 times as much), and
        # blanked out for the words: "Nepal的湿地" is one word and 3 characters.
        cjk = sum(map(len, _CJK_LETTERS.findall(text)))
        words = len(_WORD.findall(_CJK_LETTERS.sub(" ", text)))
    # words/230 + cjk/500 rounded half up, in integers so 690 words is exactly 3 minutes
    numerator, denominator = words * 500 + cjk * 230, 230 * 500
    return max(1, (2 * numerator + denominator) // (2 * denominator))


# Each byte of a plain text's UTF-8 as its part in a word: a letter or digit (a), a
# character that joins two of them (j: ' . -), or neither (a space; every byte of a
# multi-byte character too, as no plain punctuation beyond ASCII is a letter or digit).
_WORD_BYTES = bytes(
    ord("a")
    if chr(byte).isascii() and chr(byte).isalnum()
    else ord("j")
    if chr(byte) in "'.-"
    else 32
    for byte in range(256)
)


def _plain_words(text: str) -> int:
    """How many words ``_PLAIN_WORD`` finds in a plain text, counted in C passes over its
    bytes (the pattern takes ~3 times as long). A word is letters and digits joined by
    single joiners, so once each joiner between two letters is made a letter itself,
    words are the runs of letters: each starts the text, or follows a space or a joiner
    that joins nothing. A joiner is made a letter in two passes, as ``replace`` skips the
    second of two joins that share a letter (``a.b.c``)."""
    marks = text.replace("’", "'").encode("utf-8").translate(_WORD_BYTES)
    marks = marks.replace(b"aja", b"aaa").replace(b"aja", b"aaa")
    return marks.count(b" a") + marks.count(b"ja") + marks.startswith(b"a")
