"""Plain text and excerpts as readers see them: blocks stay apart (a heading never runs
into its paragraph), lists keep their numbers, and a Chinese summary's budget is in
display columns, so it fills about as many lines as an English one."""

from __future__ import annotations

import itertools
import string

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from pipeline.text import display_columns, excerpt, html_to_text


def summary(html: str, limit: int = 280) -> str:
    """What a feed reader or digest shows for a body: the article's computed summary."""
    return excerpt(html_to_text(html), limit, columns=True)


def graphemes(value: str) -> list[str]:
    return regex.findall(r"\X", value)


def columns(value: str) -> int:
    return sum(display_columns(g) for g in graphemes(value))


# -- blocks -----------------------------------------------------------------------------


def test_a_heading_does_not_run_into_its_paragraph():
    body = (
        "<h2>A day of listening</h2><p>More than 120 residents came to the town hall in Jumla.</p>"
    )
    assert summary(body) == (
        "A day of listening. More than 120 residents came to the town hall in Jumla."
    )
    assert summary("<h2>倾听的一天</h2><p>超过120位居民来到会堂。</p>") == (
        "倾听的一天。超过120位居民来到会堂。"
    )


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("<p>Rivers rise</p><p>Roads close</p>", "Rivers rise. Roads close"),
        ("<h3>Rivers rise</h3>Roads close", "Rivers rise. Roads close"),
        ("<blockquote>Rivers rise</blockquote>Roads close", "Rivers rise. Roads close"),
        ("<pre>rivers rise</pre>Roads close", "rivers rise. Roads close"),
        ("<div>Rivers rise</div><div>Roads close</div>", "Rivers rise. Roads close"),
        ("Rivers rise<br>Roads close", "Rivers rise. Roads close"),
        ("<ul><li>Rivers rise</li><li>Roads close</li></ul>", "• Rivers rise • Roads close"),
        ("<ol><li>Rivers rise</li><li>Roads close</li></ol>", "1. Rivers rise 2. Roads close"),
        ("<p>Warnings:</p><ul><li>Rivers</li></ul>", "Warnings: • Rivers"),
        (
            "<table><tr><th>River</th><th>Level</th></tr><tr><td>Koshi</td><td>High</td></tr>"
            "</table>",
            "River | Level. Koshi | High",
        ),
        # A line that ends in punctuation, a quote after it, or an emoji needs no stop.
        ("<p>Rivers rise!</p><p>Roads close</p>", "Rivers rise! Roads close"),
        ("<p>He said “Go.”</p><p>Roads close</p>", "He said “Go.” Roads close"),
        ("<p>Rivers (rising)</p><p>Roads</p>", "Rivers (rising). Roads"),
        ("<p>A”</p><p>Roads</p>", "A”. Roads"),  # the quote closes a word, not a sentence
        ("<p>)</p><p>Roads</p>", ") Roads"),  # a line of punctuation alone
        ("<p>We ❤️</p><p>Roads</p>", "We ❤️ Roads"),
        ("<p>Caf\u00e9</p><p>Roads</p>", "Caf\u00e9. Roads"),
        ("<p>Cafe\u0301</p><p>Roads</p>", "Cafe\u0301. Roads"),  # a combining accent
        ("<p>河流上涨</p><p>道路关闭</p>", "河流上涨。道路关闭"),
        ("<p>河流上涨。</p><p>道路关闭</p>", "河流上涨。道路关闭"),  # no space after 。
        ("<p>「河流上涨。」</p><p>道路</p>", "「河流上涨。」道路"),
        ("<p>Rivers</p><p>道路关闭</p>", "Rivers. 道路关闭"),
        ("<p>河流</p><ul><li>道路</li></ul>", "河流 • 道路"),
        ("<p>Rivers rise  </p>\n\n  <p>  Roads</p>", "Rivers rise. Roads"),
        ("Rivers rise  roads\tclose", "Rivers rise roads close"),  # spaces are not blocks
    ],
)
def test_block_boundaries_separate_text(body, shown):
    assert summary(body) == shown


def test_an_excerpt_cut_inside_the_window_agrees_with_the_whole():
    # the run of line breaks sits where only a prefix of the text is read at first
    text = "word " * 30 + "end" + "\n" * 200 + "1. item" + " more" * 100
    whole = excerpt(text, 10_000)
    assert "end 1. item" in whole  # a list item's number separates by itself
    for limit in range(150, 200):
        cut = excerpt(text, limit).removesuffix("…")
        assert whole.startswith(cut)


def test_only_the_text_before_the_end_is_put_on_one_line():
    from pipeline.text import _one_line

    assert _one_line("Rivers rise\nRoads close", 8) == "Rivers r"
    assert _one_line("Rivers rise\nRoads close", 12) == "Rivers rise. "
    assert _one_line("Rivers rise\nRoads close", 100) == "Rivers rise. Roads close"


def test_long_graphemes_never_shorten_an_excerpt():
    # 5 code points a grapheme: the first prefix read holds fewer graphemes than asked for
    family = "👨‍👩‍👧"
    for limit in range(2, 120):
        assert excerpt(family * 200, limit) == family * (limit - 1) + "…"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("<ol><li>Boil</li><li>Stir</li><li>Serve</li></ol>", "1. Boil\n2. Stir\n3. Serve"),
        ("<ol start='4'><li>Boil</li><li>Stir</li></ol>", "4. Boil\n5. Stir"),
        (
            "<ol><li>Boil</li><li value='7'>Stir</li><li>Serve</li></ol>",
            "1. Boil\n7. Stir\n8. Serve",
        ),
        ("<ol start='x'><li value=''>Boil</li></ol>", "1. Boil"),  # nonsense: from 1
        ("<ol start='-2'><li>Boil</li><li>Stir</li></ol>", "-2. Boil\n-1. Stir"),
        ("<ul><li>Salt</li><li><b>Rice</b></li></ul>", "• Salt\n• Rice"),
        ("<li>Salt</li>", "• Salt"),  # an item outside any list
        ("<ol><li>Boil</li><li> </li><li>Serve</li></ol>", "1. Boil\n3. Serve"),  # empty item
        (
            "<ol><li>Boil<ul><li>water</li></ul></li><li>Stir</li></ol>",
            "1. Boil\n\n• water\n\n2. Stir",
        ),
        ("<ol><li><p>Boil</p></li></ol>", "1. Boil"),
        ("<ul><li>a</li></ul><ol><li>b</li></ol>", "• a\n\n1. b"),  # each list its own
        ("<ol><li>a</li></ol><li>b</li>", "1. a\n\n• b"),  # the list ended with </ol>
        ("<ul><li>x<ol><li>a</li></ol></li><li>y</li></ul>", "• x\n\n1. a\n\n• y"),
        ("<ol><li></li></ol><p>After</p>", "After"),  # an empty item's number goes with it
        ("<ul><li><b></b>Salt</li></ul>", "• Salt"),
        ("<table><tr><td>a</td><td></td><td>c</td></tr></table>", "a | c"),
    ],
)
def test_plain_text_keeps_list_numbers_and_cells(body, text):
    assert html_to_text(body) == text


BLOCKS = st.sampled_from(["p", "h2", "h4", "li", "blockquote", "div", "pre", "td", "dd"])
WORD = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)


@given(st.lists(st.tuples(BLOCKS, st.lists(WORD, min_size=1, max_size=4)), min_size=2))
def test_no_two_blocks_read_as_one_sentence(blocks):
    # every word made unique, so each pair of neighbours is found where it is
    blocks = [
        (tag, [f"{w}{b}x{n}" for n, w in enumerate(words)]) for b, (tag, words) in enumerate(blocks)
    ]
    html = "".join(f"<{tag}>{' '.join(words)}</{tag}>" for tag, words in blocks)
    line = excerpt(html_to_text(html), 100_000)
    for (_, first), (_, second) in itertools.pairwise(blocks):
        # the last word of a block and the first of the next are never just spaced
        assert f"{first[-1]} {second[0]}" not in line, line
        assert first[-1] in line and second[0] in line


# -- display columns --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grapheme", "width"),
    [
        ("a", 1),
        ("é", 1),
        ("e\u0301", 1),
        ("…", 1),  # East Asian Ambiguous: narrow outside East Asian fonts' own text
        ("“", 1),
        ("ｶ", 1),  # halfwidth katakana
        ("中", 2),
        ("𠮷", 2),
        ("。", 2),
        ("，", 2),  # fullwidth
        ("Ａ", 2),
        ("한", 2),
        ("\u1100\u1161\u11a8", 2),  # conjoining jamo: one wide syllable
        ("😀", 2),
        ("❤️", 2),  # emoji presentation of a narrow symbol
        ("❤", 1),
        ("🇳🇵", 2),  # a flag
        ("👨‍👩‍👧", 2),  # one family, not three people
        ("नमस्ते"[:2], 1),
    ],
)
def test_display_columns(grapheme, width):
    assert display_columns(grapheme) == width


ENGLISH = (
    "Wetlands filter water, shelter migrating birds and store carbon; across Nepal they are "
    "shrinking as towns grow and rivers are diverted for irrigation and power. "
) * 4
CHINESE = (
    "湿地过滤水源，为迁徙的鸟类提供栖息地并储存碳；在尼泊尔，随着城镇扩张和河流改道，湿地正在萎缩。"
    * 8
)


def test_a_chinese_summary_takes_half_the_characters_of_an_english_one():
    english, chinese = summary(f"<p>{ENGLISH}</p>"), summary(f"<p>{CHINESE}</p>")
    assert 270 <= columns(english) <= 280 and len(english) == columns(english)
    assert columns(chinese) == 280 - 1  # 139 wide characters' worth, then the narrow …
    assert len(chinese) == 139 + 1 and chinese.endswith("…")
    assert CHINESE.startswith(chinese.removesuffix("…"))


def test_graphemes_stay_the_unit_where_a_network_counts_them():
    assert excerpt(CHINESE, 100) == CHINESE[:99] + "…"
    assert excerpt(CHINESE, 100, columns=True) == CHINESE[:49] + "…"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("中文", 4, "中文"),  # 4 columns fit whole
        ("中文", 3, "中…"),
        ("中文字", 4, "中…"),
        ("中", 1, "…"),  # not even one wide character and the ellipsis
        ("ab中", 4, "ab中"),
        ("ab中", 3, "ab…"),
        ("Nepal的湿地保护", 10, "Nepal的湿…"),  # 5 + 2 + 2 + 1
        ("Nepal的湿地保护", 9, "Nepal的…"),
        ("😀😀😀", 5, "😀😀…"),
        ("a😀", 2, "a…"),
    ],
)
def test_column_budgets(text, limit, expected):
    assert excerpt(text, limit, columns=True) == expected


HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
MIXED = st.lists(
    st.one_of(
        st.text(alphabet=HAN, min_size=1, max_size=6),
        st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
        st.sampled_from(["😀", "🇳🇵", "e\u0301", "，", "。", " ", "\n", "\n\n", "Ａ"]),
    ),
    max_size=80,
).map("".join)


@given(MIXED, st.integers(1, 300))
def test_a_column_budget_is_never_exceeded_nor_a_grapheme_split(text, limit):
    result = excerpt(text, limit, columns=True)
    assert columns(result) <= limit
    whole = excerpt(text, 10_000, columns=True)
    kept = result.removesuffix("…")
    assert whole.startswith(kept)
    assert graphemes(kept) == graphemes(whole)[: len(graphemes(kept))]
    if columns(whole) <= limit:
        assert result == whole


@given(st.text(alphabet=HAN, min_size=1, max_size=400), st.integers(1, 500))
def test_chinese_fills_its_column_budget(text, limit):
    expected = text if 2 * len(text) <= limit else text[: (limit - 1) // 2] + "…"
    assert excerpt(text, limit, columns=True) == expected
