"""Text rules: excerpts a reader sees whole, plain text from HTML, read-time, XML safety."""

from __future__ import annotations

import string
from itertools import accumulate

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from pipeline.text import (
    excerpt,
    find_control_character,
    html_to_text,
    is_cjk,
    read_minutes,
    sanitize_html,
    xml_safe,
)


def graphemes(value: str) -> list[str]:
    return regex.findall(r"\X", value)


def normalised(value: str) -> str:
    return " ".join(value.split())


# -- excerpt: examples ----------------------------------------------------------------------


def test_english_is_cut_after_a_whole_word():
    assert excerpt("Wetlands are nature's lifelines and they are at risk", 20) == "Wetlands are…"


def test_punctuation_left_dangling_before_the_ellipsis_goes():
    assert excerpt("Salt, pepper, and rice", 14) == "Salt, pepper…"
    assert excerpt("Rivers — and the people who live by them", 9) == "Rivers…"


def test_chinese_is_cut_at_a_character():
    source = "湿地是地球上最重要的生态系统之一，保护湿地刻不容缓。"
    assert excerpt(source, 10) == "湿地是地球上最重要…"
    assert excerpt(source, 18) == "湿地是地球上最重要的生态系统之一…"  # no "，…"


def test_characters_outside_the_basic_plane_are_never_halved():
    result = excerpt("𠮷野家𠮷野家𠮷野家", 4)
    assert result == "𠮷野家…"
    result.encode("utf-16")  # a lone surrogate half would not encode


@pytest.mark.parametrize(
    ("source", "limit", "expected"),
    [
        ("Nepal的湿地 wetlands are important", 12, "Nepal的湿地…"),
        ("我们在Kathmandu采访了专家", 10, "我们在…"),  # "Kathmandu" is not split
        ("Kathmandu的湿地保护工作", 13, "Kathmandu的湿地…"),
        ("Nepal的wetlands are", 8, "Nepal的…"),  # the Chinese character is kept, "wet" not
        ("湿Kathmandu valley", 7, "湿…"),  # a break right after the first character counts
    ],
)
def test_mixed_english_and_chinese(source, limit, expected):
    assert excerpt(source, limit) == expected


@pytest.mark.parametrize(
    ("source", "limit", "expected"),
    [
        ("Short text.", 20, "Short text."),
        ("abcde", 5, "abcde"),
        ("  Two\n\n lines\t here ", 50, "Two. lines here"),  # a line break ends a sentence
        ("👨‍👩‍👧 family", 8, "👨‍👩‍👧 family"),  # 8 graphemes, though 12 code points
        ("The platform now called X", 40, "The platform now called X"),  # nothing trimmed
    ],
)
def test_text_that_fits_is_returned_without_an_ellipsis(source, limit, expected):
    assert excerpt(source, limit) == expected


@pytest.mark.parametrize(
    ("source", "limit", "expected"),
    [
        ("👨‍👩‍👧" * 5, 3, "👨‍👩‍👧👨‍👩‍👧…"),
        ("🇳🇵" * 5, 3, "🇳🇵🇳🇵…"),
        ("👍🏽" * 5, 4, "👍🏽👍🏽👍🏽…"),
        ("e\u0301" * 10, 4, "e\u0301" * 3 + "…"),
        ("Cafe\u0301 culture in Patan", 5, "Cafe\u0301…"),
        ("Our trip 👨‍👩‍👧 to 🇳🇵 Nepal", 13, "Our trip 👨‍👩‍👧…"),
        ("Our trip 👨‍👩‍👧 to 🇳🇵 Nepal", 16, "Our trip 👨‍👩‍👧 to 🇳🇵…"),
    ],
)
def test_emoji_and_combining_marks_stay_whole(source, limit, expected):
    result = excerpt(source, limit)
    assert result == expected
    assert len(graphemes(result)) <= limit


def test_an_entity_is_decoded_before_the_cut_and_never_split():
    plain = html_to_text("<p>Tom &amp; Jerry &amp; friends</p>")
    assert plain == "Tom & Jerry & friends"
    for limit in range(1, 25):
        result = excerpt(plain, limit)
        assert "&a" not in result and "amp;" not in result
        assert plain.startswith(result.removesuffix("…"))


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        excerpt("text", 0)


def test_a_very_long_article_gets_a_normal_excerpt():
    article = "Wetlands filter water and shelter birds. " * 200_000  # 8 million characters
    result = excerpt(article, 160)
    body = result.removesuffix("…")
    assert result.endswith("…") and 140 < len(result) <= 160
    assert article.startswith(body) and article[len(body)] == " "  # cut between words


@pytest.mark.parametrize(
    ("before", "cut", "joined"),
    [
        ("Breaking:", "Breaking: glaciers…", "Breaking: "),
        ("Glacier news: now", "Glacier news: now.…", "Glacier news: now. "),
    ],
)
def test_a_long_run_of_whitespace_does_not_shorten_the_excerpt(before, cut, joined):
    # Pasted text padded with blank lines: the excerpt still uses the whole budget.
    after = "glaciers in the Himalaya are melting fast"
    source = before + "\n" * 500 + " " * 500 + after
    assert excerpt(source, 20) == cut
    assert excerpt(source, 200) == joined + after


# -- excerpt: properties --------------------------------------------------------------------

ASCII_WORDS = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)
HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
CJK = st.text(alphabet=HAN | st.sampled_from("，。、；：「」ーカあ한𠮷"), min_size=1, max_size=10)
EMOJI = st.sampled_from(["👨‍👩‍👧", "🇳🇵", "🇨🇳", "👍🏽", "❤️", "🏳️‍🌈", "😀", "1️⃣"])
COMBINED = st.sampled_from(["e\u0301", "a\u0308\u0323", "क्षि", "नमस्ते", "\u1100\u1161\u11a8"])
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "\xa0", ", ", "—", "-", "，", "、"])
PIECES = st.one_of(ASCII_WORDS, CJK, EMOJI, COMBINED, SEPARATORS, st.text(max_size=5))
TEXTS = st.lists(PIECES, max_size=120).map("".join)
LIMITS = st.integers(2, 40) | st.integers(2, 400)  # small ones cut more often


def one_line(source: str) -> str:
    """The whole text as an excerpt puts it on one line (a budget it always fits)."""
    return excerpt(source, 2 * len(source) + 2)


@given(TEXTS, LIMITS)
def test_excerpt_is_whole_graphemes_from_the_start_within_the_limit(source, limit):
    result = excerpt(source, limit)
    plain = one_line(source)  # only a prefix of the text is read: it must agree
    if "\n" not in source:
        assert plain == normalised(source)
    assert len(graphemes(result)) <= limit
    if len(graphemes(plain)) <= limit:
        assert result == plain
        return
    assert result.endswith("…")
    kept = result.removesuffix("…")
    assert plain.startswith(kept)
    ends = {0, *accumulate(len(g) for g in graphemes(plain))}
    assert len(kept) in ends, "the cut splits a grapheme"
    assert kept == "".join(graphemes(plain)[: len(graphemes(kept))])
    assert kept == kept.rstrip()
    assert not kept.endswith((",", "，", "、", "—", "-"))


@given(st.lists(ASCII_WORDS, min_size=1, max_size=80), LIMITS)
def test_spaced_text_is_cut_between_words_as_late_as_possible(words, limit):
    source = " ".join(words)
    result = excerpt(source, limit)
    if result == source:
        return
    kept = result.removesuffix("…")
    if len(words[0]) <= limit - 1:
        count = len(kept.split(" "))
        assert kept.split(" ") == words[:count]
        assert len(" ".join(words[: count + 1])) > limit - 1  # the next word would not fit
    else:  # a single word longer than the budget is cut inside
        assert kept == source[: limit - 1]


@given(st.text(alphabet=HAN, min_size=1, max_size=500), LIMITS)
def test_chinese_uses_the_whole_budget(source, limit):
    expected = source if len(source) <= limit else source[: limit - 1] + "…"
    assert excerpt(source, limit) == expected


# -- HTML -----------------------------------------------------------------------------------

PLAIN = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="<&")
    | st.sampled_from(" \n\t"),
    max_size=20,
)
ENTITIES = st.sampled_from(
    [
        ("&amp;", "&"),
        ("&quot;", '"'),
        ("&#233;", "é"),
        ("&#x4E2D;", "中"),
        ("&nbsp;", " "),
        ("&mdash;", "—"),
        ("&hellip;", "…"),
        ("&#x1F600;", "😀"),
    ]
)
WRAPPERS = st.sampled_from(
    ["p", "div", "li", "h2", "blockquote", "b", "em", "span", 'a href="/?a=1&amp;b=2"']
)
INVISIBLE = st.sampled_from(
    [
        "<br>",
        "<hr>",
        '<img src="a.png" alt="A &amp; B">',
        "<script>if (a < b && c) { x = '&amp;'; }</script>",
        "<style>p::before { content: '<&>'; }</style>",
        "<!-- a < b & c -->",
    ]
)


@st.composite
def html_with_its_text(draw) -> tuple[str, str]:
    """A fragment of markup, entities and text, and the text a reader would see in it."""
    markup, seen = [], []
    for _ in range(draw(st.integers(0, 15))):
        kind = draw(st.sampled_from(["text", "entity", "element", "invisible"]))
        if kind == "text":
            markup.append(piece := draw(PLAIN))
            seen.append(piece)
        elif kind == "entity":
            entity, character = draw(ENTITIES)
            markup.append(entity)
            seen.append(character)
        elif kind == "element":
            tag, piece = draw(WRAPPERS), draw(PLAIN)
            markup.append(f"<{tag}>{piece}</{tag.split()[0]}>")
            seen.append("• " + piece if tag == "li" and piece.strip() else piece)
        else:
            markup.append(draw(INVISIBLE))
    return " ".join(markup), " ".join(seen)


@given(html_with_its_text(), LIMITS)
def test_an_excerpt_of_html_has_no_markup_or_entities(case, limit):
    markup, seen = case
    plain = html_to_text(markup)
    assert normalised(plain) == normalised(seen)
    result = excerpt(plain, limit)
    assert "<" not in result and "&amp" not in result and "&#" not in result


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="<&")))
def test_plain_text_passes_through_html_to_text(source):
    assert html_to_text(xml_safe(source)) == normalised(xml_safe(source))


@given(st.lists(st.sampled_from(["<", ">", "</", "<![", "<!--", "&", "&#", ";", "p", "b", " "])))
def test_html_to_text_survives_any_malformed_markup(pieces):
    result = html_to_text("".join(pieces))
    assert result == result.strip() and "\n\n\n" not in result


def test_paragraphs_lines_and_lists_are_separated():
    markup = (
        "<h2>Wetlands</h2>\n<p>Nature's <b>lifelines</b>\n are at risk.</p>"
        "<ul>\n  <li>Koshi Tappu</li>\n  <li>Rara</li>\n</ul>"
        "<p>Line one<br>line two</p><table><tr><td>1</td><td>2</td></tr></table>"
    )
    assert html_to_text(markup) == (
        "Wetlands\n\nNature's lifelines are at risk.\n\n• Koshi Tappu\n• Rara\n\n"
        "Line one\nline two\n\n1 | 2"
    )


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("a < b and c > d", "a < b and c > d"),
        ("Salt &amp; pepper&nbsp;&nbsp;and&#160;rice", "Salt & pepper and rice"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("before<script>alert('<p>hi</p>')</script><style>p {}</style>after", "beforeafter"),
        ("", ""),
        ("   \n ", ""),
        ("one<br><br>two", "one\n\ntwo"),  # two line breaks make a blank line
        ("<p>Koshi </p><p> Rara</p>", "Koshi\n\nRara"),  # no space left at a line's ends
        ("a\ud800b", "a\ufffdb"),  # a lone surrogate shows as the replacement character
        ("<template>row <template>nested</template> more</template>shown", "shown"),
    ],
)
def test_html_to_text_edge_cases(markup, expected):
    assert html_to_text(markup) == expected


def test_table_rows_are_lines_and_cells_are_separated():
    markup = "<table><tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></table>"
    assert html_to_text(markup) == "1 | 2\n3 | 4"


def test_preformatted_text_keeps_its_line_breaks_and_only_there():
    markup = "<p>Run:</p><pre>pipeline ingest\npipeline feeds</pre><p>then\n  wait.</p>"
    assert html_to_text(markup) == "Run:\n\npipeline ingest\npipeline feeds\n\nthen wait."
    nested = "<pre>outer<pre>inner</pre>still\npre</pre>after\nit"
    assert html_to_text(nested) == "outer\n\ninner\n\nstill\npre\n\nafter it"


def test_sanitize_replaces_a_lone_surrogate_instead_of_failing():
    assert sanitize_html("<p>a\ud800b</p>") == "<p>a\ufffdb</p>"


def test_sanitize_removes_what_could_run_and_keeps_the_article():
    dirty = (
        '<p onclick="steal()">Read <a href="javascript:alert(1)">this</a> and '
        '<a href="https://example.org/a" target="_blank" onmouseover="x()">that</a>.</p>'
        '<script>alert("x")</script><style>body { display: none }</style>'
        '<img src="https://example.org/crane.jpg" alt="A crane" onerror="x()">'
        '<iframe src="https://evil.example"></iframe><a href="mailto:desk@example.org">desk</a>'
    )
    clean = sanitize_html(dirty)
    for gone in ("script", "alert", "style", "display", "onclick", "onerror", "javascript:"):
        assert gone not in clean
    assert "iframe" not in clean and "target" not in clean
    assert '<a href="https://example.org/a" rel="noopener noreferrer">that</a>' in clean
    assert '<img src="https://example.org/crane.jpg" alt="A crane">' in clean
    assert 'href="mailto:desk@example.org"' in clean
    assert html_to_text(clean) == "Read this and that.\n\ndesk"


def test_sanitize_keeps_article_markup():
    body = (
        '<h2>Title</h2><figure><img src="/a.png" alt="x" width="10" height="5">'
        "<figcaption>Cap</figcaption></figure><blockquote><p><em>Q</em> <sup>1</sup></p>"
        "</blockquote><pre><code>x = 1</code></pre><table><thead><tr><th>h</th></tr></thead>"
        "<tbody><tr><td>d</td></tr></tbody></table><hr>"
    )
    assert sanitize_html(body) == body


# -- read-time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "minutes"),
    [
        ("word " * 230, 1),
        ("word " * 690, 3),
        ("word " * 344, 1),
        ("word " * 345, 2),  # 1.5 minutes rounds up
        ("word " * 574, 2),  # 2.496 minutes rounds down
        ("word " * 575, 3),  # 2.5 minutes rounds up
        ("中" * 749, 1),  # 1.498 minutes
        ("中" * 750, 2),  # 1.5 minutes
        ("中" * 1500, 3),
        ("", 1),
        ("word " * 460 + "湿" * 500, 3),  # 2 + 1 minutes
        ("don't e-mail " * 345, 3),  # 690 words: "don't" and "e-mail" are one word each
        ("Nepal的湿地。" * 230, 2),  # 230 words + 690 characters, the "。" not counted
    ],
)
def test_read_minutes(source, minutes):
    assert read_minutes(source) == minutes


# -- XML safety -----------------------------------------------------------------------------


def test_xml_safe_removes_what_xml_forbids_and_keeps_the_rest():
    source = "a\x00b\x07c\x1f\td\ne\rf\ufffeg\uffffh\ud800i 中 👍🏽 \x85"
    assert xml_safe(source) == "abc\td\ne\rfghi 中 👍🏽 \x85"
    etree.Element("title").text = xml_safe(source)  # what feedgen does; raw would raise


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("Title\nbody with a bell\x07 here", (2, 17, "U+0007")),
        ("\x00at the start", (1, 1, "U+0000")),
        ("one\ntwo\nthree\ufffe", (3, 6, "U+FFFE")),
        ("lone \ud83d half", (1, 6, "U+D83D")),
        ("fine\ttabs\r\nand 中文 👨‍👩‍👧", None),
        ("\nab\x07 c\nd\ne", (2, 3, "U+0007")),  # lines after it do not count
    ],
)
def test_find_control_character_says_where(source, found):
    assert find_control_character(source) == found


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_xml_safe_output_is_accepted_by_lxml(source):
    safe = xml_safe(source)
    assert find_control_character(safe) is None
    assert (find_control_character(source) is None) == (safe == source)
    etree.Element("x").text = safe


# -- CJK ------------------------------------------------------------------------------------


@pytest.mark.parametrize("grapheme", ["中", "あ", "カ", "ー", "한", "，", "。", "「", "Ａ", "𠮷"])
def test_cjk_graphemes(grapheme):
    assert is_cjk(grapheme)


@pytest.mark.parametrize("grapheme", ["a", "é", "e\u0301", "न", "👍🏽", "🇨🇳", " ", "", "1", "—"])
def test_not_cjk_graphemes(grapheme):
    assert not is_cjk(grapheme)


def test_each_thread_resolves_relative_links_against_its_own_article():
    """The Cleaner is reused (one per thread), and its link filter reads the base URL of
    the body being cleaned: bodies cleaned at once in threads must not take another's."""
    from concurrent.futures import ThreadPoolExecutor

    def clean(n: int) -> tuple[int, str]:
        base = f"https://news.example.org/news/{n}/"
        return n, sanitize_html('<a href="img.jpg">x</a>' * 50, base_url=base)

    with ThreadPoolExecutor(4) as pool:
        for n, body in pool.map(clean, range(200)):
            assert body.count(f"/news/{n}/img.jpg") == 50, n
