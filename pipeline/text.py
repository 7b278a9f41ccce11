"""Text rules shared by every source and channel: sanitising, plain text, excerpts, read-time.

Articles are English, Chinese or both, with emoji and combining characters, so lengths are
counted in graphemes (what a reader sees as one character), never in code points: cutting
inside a ZWJ family, a flag or an ``e`` + combining accent would show a broken glyph.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import islice

import nh3
import regex
from lxml import etree

# -- sanitising -----------------------------------------------------------------------------

_CLEANER = nh3.Cleaner(
    tags={
        *("p", "br", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "u", "s"),
        *("blockquote", "code", "pre", "ul", "ol", "li", "a", "img", "figure", "figcaption"),
        *("table", "thead", "tbody", "tr", "th", "td", "hr", "sup", "sub", "span", "div"),
    },
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "img": {"src", "alt", "width", "height", "title"}},
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def sanitize_html(html: str) -> str:
    """Article body with only harmless article markup left; script and style vanish whole."""
    # nh3 (and lxml) must encode to UTF-8, which a lone surrogate cannot be.
    return _CLEANER.clean(_SURROGATE.sub("\ufffd", html))


# -- characters XML forbids -----------------------------------------------------------------

_XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids, which feedgen refuses to write."""
    return _XML_FORBIDDEN.sub("", text)


def find_control_character(text: str) -> tuple[int, int, str] | None:
    """First character XML forbids as (line, column, "U+0007"), both 1-based, or None.

    Lines are counted by ``\\n`` and columns in code points, so a person can find the
    invisible character an editor does not show.
    """
    found = _XML_FORBIDDEN.search(text)
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
    **dict.fromkeys(("td", "th"), " "),
}
_DROP_CONTENT = frozenset({"script", "style", "template"})
_SPACE_RUN = re.compile(r"\s+")
_LINE_SPACE_RUN = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


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

    def start(self, tag: str, attrib: object) -> None:
        self._edge(tag, 1)

    def end(self, tag: str) -> None:
        self._edge(tag, -1)

    def _edge(self, tag: str, step: int) -> None:
        if tag in _DROP_CONTENT:
            self.dropping = max(0, self.dropping + step)
        elif tag == "pre":
            self.preformatted = max(0, self.preformatted + step)
        if tag == "br":  # each <br> is a line break of its own; two make a blank line
            self.pending += "\n" if step > 0 else ""
        elif _weight(_BREAKS.get(tag, "")) > _weight(self.pending):  # </li><li>: one break
            self.pending = _BREAKS[tag]

    def data(self, data: str) -> None:
        if self.dropping:
            return
        if not self.preformatted:
            data = _SPACE_RUN.sub(" ", data)
            if data == " " and self.pending:  # spaces next to a line break show nothing
                return
        self.parts += (self.pending, data)
        self.pending = ""

    def close(self) -> str:
        return "".join(self.parts)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML fragment (or of plain text, which passes through).

    Entities are decoded, tags dropped, blocks put on their own lines and paragraphs
    separated by a blank line. libxml2's HTML5 tokenizer treats malformed markup as a
    browser would, so ``a < b`` stays text. No-break spaces collapse like other spaces.
    """
    parser = etree.HTMLParser(target=_TextCollector(), recover=True, no_network=True)
    parser.feed(_SURROGATE.sub("\ufffd", html))
    raw: str = parser.close()
    lines = (_LINE_SPACE_RUN.sub(" ", line).strip() for line in raw.split("\n"))
    return _BLANK_LINES.sub(_PARAGRAPH, "\n".join(lines)).strip()


# -- graphemes, excerpts and read-time ------------------------------------------------------

_CJK_SET = (
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}"
    r"\u3000-\u303f\u30a0-\u30ff\u3200-\u33ff\ufe10-\ufe1f\ufe30-\ufe4f\uff00-\uffef]"
)
_CJK = regex.compile(_CJK_SET)
_CJK_LETTER = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}\u30fc]")
_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+(?:['’.\-][\p{L}\p{N}\p{M}]+)*")
_GRAPHEME = regex.compile(r"\X")
ELLIPSIS = "…"
# Would dangle in front of the ellipsis ("salt, pepper,…", "他说：「…"), so they go.
_DANGLING = frozenset(",;:—–-‐/&…([{，、；：－（【「『《〈“‘")


def is_cjk(grapheme: str) -> bool:
    """Whether a grapheme is Chinese, Japanese or Korean script or CJK punctuation.

    Such text has no spaces between words, so a line or excerpt may break after any of them.
    """
    return _CJK.match(grapheme) is not None


def _leading_graphemes(text: str, count: int) -> tuple[list[str], bool]:
    """The first ``count`` graphemes of the whitespace-normalised text, and whether that is all.

    Only a prefix a few times the needed length is normalised and segmented (doubling when
    long graphemes or whitespace runs make it too short), so a 5,000-word article costs
    no more than a short one.
    """
    size = 4 * count + 64
    while True:
        whole = size >= len(text)
        normal = _SPACE_RUN.sub(" ", text if whole else text[:size]).lstrip(" ")
        if whole:
            normal = normal.rstrip(" ")
        # count + 2: the last grapheme of a prefix may still grow (a combining mark after
        # it), and a trailing space may be the end of the text; the ones before are final.
        head = [found[0] for found in islice(_GRAPHEME.finditer(normal), count + 2)]
        if whole or len(head) == count + 2:
            return head[:count], whole and len(head) <= count
        size *= 2


def _breakable(before: str, after: str) -> bool:
    """A line may break between two graphemes at a space or next to CJK text."""
    return before == " " or after == " " or is_cjk(before) or is_cjk(after)


def excerpt(text: str, limit: int) -> str:
    """Plain-text excerpt of at most ``limit`` graphemes, counting the final ``…``.

    Whitespace runs become one space. Text that fits is returned whole and without ``…``.
    Otherwise the cut falls at the last word boundary (a space, or either side of a CJK
    character) that leaves room for ``…``, at a grapheme boundary if one word fills the
    whole budget, and never inside a grapheme.
    """
    if limit < 1:
        raise ValueError(f"an excerpt needs a limit of at least 1 grapheme, not {limit}")
    head, complete = _leading_graphemes(text, limit)
    if complete:
        return "".join(head)
    budget = limit - 1  # graphemes left once the ellipsis is counted
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
    text = unicodedata.normalize("NFC", text)  # decomposed Hangul would count thrice
    # CJK letters are counted while blanked out, so "Nepal的湿地" is one word and three characters.
    spaced, cjk = _CJK_LETTER.subn(" ", text)
    words = len(_WORD.findall(spaced))
    # words/230 + cjk/500 rounded half up, in integers so 690 words is exactly 3 minutes
    numerator, denominator = words * 500 + cjk * 230, 230 * 500
    return max(1, (2 * numerator + denominator) // (2 * denominator))
