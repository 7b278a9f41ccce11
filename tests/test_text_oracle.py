"""The one-pass text functions give exactly what the earlier ones gave.

``tests/fixtures/text_oracle/text_v1.py.txt`` is a frozen copy of pipeline/text.py from
before they were made cheaper (lxml's own iteration, a bounded excerpt prefix, read-time
in one pass, ASCII fast paths). It is kept as text, not as a module, so that linters and
the duplicate finder leave the copy alone; it is loaded here and every function that
changed is compared with it on generated input and on a real article page."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline import text

ORACLE_DIR = Path(__file__).parent / "fixtures" / "text_oracle"


def _load_oracle() -> types.ModuleType:
    module = types.ModuleType("text_oracle_v1")
    source = (ORACLE_DIR / "text_v1.py.txt").read_text(encoding="utf-8")
    exec(compile(source, str(ORACLE_DIR / "text_v1.py"), "exec"), module.__dict__)
    return module


oracle = _load_oracle()
SEED = (ORACLE_DIR / "seed_page.txt").read_text(encoding="utf-8")

# What articles are made of: ASCII, Latin with accents and curly quotes, CJK, emoji
# (ZWJ families, flags, VS16), combining marks, and the whitespace html_to_text makes.
PIECES = [
    *("a", "Z", "9", " ", "  ", "\n", "\n\n", "\t", "\xa0", ".", ",", "'", "-", "—", "…"),
    *("don't", "e-mail", "3.5", "’", "“", "”", "é", "e\u0301", "ß", "Ǆ", "İ"),
    *("山", "冰川", "。", "，", "「", "」", "（", "ー", "カタカナ", "한국어", "\u1100\u1161"),
    *("👍", "👍🏽", "👨‍👩‍👧", "🇳🇵", "❤\ufe0f", "\u200d", "\ufe0f", "\U0001f1e6"),
    *("• ", "1. ", "12) ", "- ", "* "),
]
TEXTS = st.one_of(
    st.text(),
    st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
    st.lists(st.sampled_from(["word", " ", "\n", "冰", "。", "Ünïcode", "x."]), max_size=400).map(
        "".join
    ),
)
TAGS = [
    *("p", "br", "h2", "li", "ul", "ol", "div", "pre", "td", "th", "tr", "table", "span"),
    *("script", "style", "template", "a", "b", "em", "blockquote", "figure", "figcaption"),
    *("section", "hr", "dl", "dt", "dd", "caption", "head", "title", "body", "html", "nav"),
]
ATTRIBUTES = st.sampled_from(
    ["", ' start="3"', ' value="7"', ' start="x"', ' value=" -2 "', ' href="/a"', " hidden"]
)
MARKUP = st.lists(
    st.one_of(
        st.sampled_from(TAGS).flatmap(lambda t: ATTRIBUTES.map(lambda a: f"<{t}{a}>")),
        st.sampled_from(TAGS).map(lambda t: f"</{t}>"),
        st.sampled_from(["&amp;", "&lt;", "&#32;", "&nbsp;", "&#x1F44D;", "<!-- c -->", "<?pi?>"]),
        st.sampled_from([" ", "\n", "a < b", "x", "冰川", "  two  words ", "\t"]),
        st.text(max_size=5),
    ),
    max_size=60,
).map("".join)


def _html_fixtures() -> list[str]:
    return [
        "<p>a</p> <p>b</p>",
        "a<br> <br>b",
        "<ol start=3><li>x<li value=9>y</ol><ul><li>z</ul>",
        "<pre>  keep\n  this </pre>after",
        "<table><tr><td>Koshi<td>1,400 m</tr></table>",
        "<!-- hidden -->visible<script>gone</script>",
        "",
        "   ",
        "plain text, no markup",
        "<p>\ud800 lone surrogate</p>",
    ]


@pytest.mark.parametrize("html", _html_fixtures())
def test_html_to_text_on_known_cases(html):
    assert text.html_to_text(html) == oracle.html_to_text(html)


@settings(max_examples=800, deadline=None)
@given(MARKUP)
def test_html_to_text_matches_the_oracle_on_markup(html):
    assert text.html_to_text(html) == oracle.html_to_text(html)


@settings(max_examples=500, deadline=None)
@given(TEXTS)
def test_html_to_text_matches_the_oracle_on_text(value):
    assert text.html_to_text(value) == oracle.html_to_text(value)


@settings(max_examples=1000, deadline=None)
@given(TEXTS, st.integers(1, 300), st.booleans())
@example(SEED, 280, True)
@example(SEED, 500, False)
@example("a" * 2000, 1000, False)
@example(" " * 600 + "x", 5, False)
@example("e" + "\u0301" * 50 + "x" * 10, 3, True)
@example("a bcdefghijklmnop", 6, False)  # the last space is the second character
def test_excerpt_matches_the_oracle(value, limit, columns):
    assert text.excerpt(value, limit, columns=columns) == oracle.excerpt(
        value, limit, columns=columns
    )


@settings(max_examples=1000, deadline=None)
@given(TEXTS)
@example(SEED)
@example(SEED * 7)
@example("Nepal的湿地 don't e-mail 3.5")
@example("\u1100\u1161\u11a8")  # decomposed Hangul: one syllable once composed
def test_read_minutes_matches_the_oracle(value):
    assert text.read_minutes(value) == oracle.read_minutes(value)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(PIECES) | st.text(min_size=1, max_size=3))
def test_display_columns_matches_the_oracle(grapheme):
    assert text.display_columns(grapheme) == oracle.display_columns(grapheme)


def test_the_seed_page_end_to_end():
    """A real article page (ICIMOD news), through every function that changed."""
    html = "".join(f"<p>{line}</p>\n" for line in SEED.splitlines())
    plain = text.html_to_text(html)
    assert plain == oracle.html_to_text(html)
    assert text.read_minutes(plain) == oracle.read_minutes(plain)
    for limit in (1, 20, 140, 280, 500, 5000):
        for columns in (False, True):
            assert text.excerpt(plain, limit, columns=columns) == oracle.excerpt(
                plain, limit, columns=columns
            )


def test_the_plain_fast_path_holds_no_letter_digit_mark_or_cjk():
    """read_minutes counts words with ``re`` when a text is ASCII plus these: which is
    only right if none of them can be part of a word, a CJK letter, or changed by NFC."""
    import unicodedata

    import regex

    for char in text.PLAIN_PUNCTUATION:
        assert regex.match(r"[\p{L}\p{N}\p{M}]", char) is None, repr(char)
        assert text._CJK_LETTER.match(char) is None, repr(char)
        assert unicodedata.normalize("NFC", char) == char, repr(char)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from([*PIECES[:20], *text.PLAIN_PUNCTUATION, "don’t", "x’"])).map("".join)
)
def test_read_minutes_fast_path_matches_the_oracle(value):
    assert text.read_minutes(value) == oracle.read_minutes(value)


def test_ordinary_html_takes_the_tree_walk_and_text_after_html_the_events(monkeypatch):
    """Both ways give the same text (the oracle tests); the cheap one must be the usual."""
    walked = []
    real = text._walk
    monkeypatch.setattr(
        text, "_walk", lambda root, collector: walked.append(root.tag) or real(root, collector)
    )
    assert text.html_to_text("<p>one</p><p>two</p>") == "one\n\ntwo"
    assert walked == ["html"]
    assert text.html_to_text("a</html> b") == oracle.html_to_text("a</html> b") == "a b"
    assert walked == ["html"]  # two top-level elements: the parser's own events instead


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab1Z .-'’—…\xa0\n", max_size=60))
@example("a.b.c")  # two joins sharing a letter: replace() alone would miss the second
@example("a.-b")
@example("’a")
def test_plain_words_counts_what_the_pattern_finds(value):
    assert text._plain_words(value) == len(text._PLAIN_WORD.findall(value))


def test_characters_taken_as_a_grapheme_each_are_one_whatever_their_neighbours():
    """``_ALONE`` lets excerpt skip ``\\X``: right only for characters whose
    Grapheme_Cluster_Break is Other, which join no neighbour."""
    import regex

    alone = [chr(c) for c in range(0x30000) if text._ALONE.fullmatch(chr(c))]
    assert "冰" in alone and "。" in alone and "，" in alone and "\u302a" not in alone
    other = regex.compile(r"\p{Grapheme_Cluster_Break=Other}")
    assert [c for c in alone if not other.match(c)] == []


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="冰川。，「」（）ー 山\nab.1", max_size=80), st.integers(1, 60))
def test_excerpt_of_chinese_matches_the_oracle(value, limit):
    assert text.excerpt(value, limit, columns=True) == oracle.excerpt(value, limit, columns=True)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab \x00\x01\x08\t\n\r\x0b\x1f\ufffe\uffff\ud800\ufffd冰", max_size=30))
def test_xml_checks_match_the_oracle(value):
    assert text.xml_safe(value) == oracle.xml_safe(value)
    assert text.find_control_character(value) == oracle.find_control_character(value)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=[chr(c) for c in range(128) if c != 10] + ["\xa0", "\u3000", "é"]))
@example("\x1fa  b\x0c")
def test_a_line_keeps_its_words_with_one_space_between(line):
    """``_one_space`` skips rebuilding a line that is one-spaced already: only right if
    every ASCII character str.split takes for a space is looked for."""
    assert text._one_space(line) == " ".join(line.split())


LINKY = st.lists(
    st.sampled_from(
        [
            *("<a href='https://x.org/a'>", '<a href="javascript:alert(1)">', "</a>", "<a>"),
            *("<img src='data:x'>", '<img src="/rel.png">', "<img src=mailto:a@b.c>", "<p>"),
            *("</html>", "<html>", "<!-- c -->", "<?pi x?>", "text", " ", "<script>", "</svg>"),
            *("<a href=mailto:a@b.c>", "<svg><a href='javascript:x'>", "<IMG SRC='x:y'>"),
            *("<title><a href='javascript:y'></title>", "<a href='//host/p'>", "href", "src"),
        ]
    ),
    max_size=25,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(LINKY, st.sampled_from([None, "https://news.example.org/news/a/"]))
@example("a</html><a href='javascript:x'>x</a>", None)  # a second top-level node
def test_refused_links_are_the_ones_the_parser_target_found(html, base):
    """The links the sanitiser warns about come from lxml's tree now, not its events."""
    from pipeline import sanitising

    assert sanitising._refused_links(html, base, {}) == oracle._refused_links(html, base)
