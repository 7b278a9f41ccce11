"""Post text: templates, fitting to a budget, and how networks count."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.channels.compose import (
    fit,
    graphemes,
    hashtag,
    load_channel_template,
    template_values,
    utf16_units,
)
from pipeline.channels.http import retry_after
from pipeline.channels.mastodon_length import status_length
from pipeline.errors import ConfigError, PermanentFailure
from pipeline.text import excerpt

URL = "https://news.example.org/news/a-rather-long-slug-for-an-article-about-glaciers/"


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "post.txt.j2"
    path.write_text("{{ title }}\n\n{{ summary }}\n\n{{ url }}\n", encoding="utf-8")
    return load_channel_template(path)


def test_text_that_fits_is_untouched(template):
    text = fit(template, {"title": "T", "summary": "S", "url": URL}, limit=500, measure=graphemes)
    assert text == f"T\n\nS\n\n{URL}"


def test_summary_is_cut_at_a_word_first_and_the_link_stays_whole(template):
    summary = "Glaciers in the Hindu Kush Himalaya lost mass for the fifth year running. " * 5
    values = {"title": "Glacier report", "summary": summary, "url": URL}
    text = fit(template, values, limit=200, measure=graphemes)
    assert graphemes(text) <= 200 and text.endswith(URL) and text.startswith("Glacier report")
    kept = text.split("\n\n")[1]
    assert kept.endswith("…") and summary.startswith(kept.removesuffix("…"))
    assert summary[len(kept) - 1] == " "  # cut between words


def test_title_is_shortened_only_when_the_summary_is_gone(template):
    values = {"title": "题目" * 100, "summary": "摘要" * 100, "url": URL}
    text = fit(template, values, limit=120, measure=graphemes)
    assert graphemes(text) <= 120 and URL in text and "摘要" not in text
    assert text.startswith("题目") and "…" in text


def test_a_template_that_cannot_fit_is_a_permanent_failure(tmp_path):
    path = tmp_path / "long.txt.j2"
    path.write_text("{{ url }} " + "x" * 50, encoding="utf-8")
    with pytest.raises(PermanentFailure, match="shorten the channel template"):
        fit(
            load_channel_template(path),
            {"title": "", "summary": "", "url": URL},
            limit=40,
            measure=graphemes,
        )


def test_template_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.txt.j2"
    path.write_text("{{ title }}\n{% if summary %}\n{{ summary }}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_channel_template(path)
    (problem,) = caught.value.problems
    assert problem.file.endswith("broken.txt.j2") and problem.line is not None


def test_measures_count_like_the_networks():
    family, flag, accent = "👨\u200d👩\u200d👧", "🇳🇵", "e\u0301"
    assert graphemes(family + flag + accent) == 3
    assert utf16_units(family) == 8 and utf16_units("山") == 1
    assert status_length(f"Read {URL} now") == len("Read  now") + 23


def test_hashtags():
    assert hashtag("climate change") == "#ClimateChange"
    assert hashtag("生物多样性") == "#生物多样性"
    assert hashtag("!!!") == ""


PIECES = ["a", "b", "c", " ", "山", "地", "👨\u200d👩\u200d👧", "🇳🇵", "e\u0301", "，"]
LONG_TEXT = st.lists(st.sampled_from(PIECES), max_size=300).map("".join)


@settings(max_examples=150, deadline=None)
@given(title=LONG_TEXT, summary=LONG_TEXT, limit=st.integers(min_value=len(URL) + 8, max_value=400))
def test_fitted_text_never_exceeds_the_budget_and_keeps_the_link(
    tmp_path_factory, title, summary, limit
):
    path = tmp_path_factory.mktemp("t") / "post.txt.j2"
    path.write_text("{{ title }}\n\n{{ summary }}\n\n{{ url }}\n", encoding="utf-8")
    text = fit(
        load_channel_template(path),
        {"title": title, "summary": summary, "url": URL},
        limit=limit,
        measure=graphemes,
    )
    assert graphemes(text) <= limit
    assert text.endswith(URL)


def response(status: int, headers: dict | None = None, body: bytes = b"") -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made.headers.update(headers or {})
    made._content = body
    return made


NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("headers", "body", "seconds"),
    [
        ({"Retry-After": "30"}, b"", 30),
        ({"Retry-After": "Mon, 23 Nov 2026 12:01:00 GMT"}, b"", 60),
        ({"X-RateLimit-Reset": "2026-11-23T12:05:00.000Z"}, b"", 300),  # Mastodon
        ({"RateLimit-Reset": str(int(NOW.timestamp()) + 90)}, b"", 90),  # Bluesky
        ({"X-RateLimit-Reset-After": "1.5"}, b"", 1.5),  # Discord
        ({}, b'{"ok": false, "parameters": {"retry_after": 7}}', 7),  # Telegram
        ({}, b"", None),
    ],
)
def test_retry_after_reads_every_networks_convention(headers, body, seconds):
    found = retry_after(response(429, headers, body), now=NOW)
    assert found == (pytest.approx(seconds) if seconds is not None else None)


def test_a_secret_in_the_url_never_reaches_the_error_or_its_traceback():
    import traceback

    from pipeline.channels.http import request
    from pipeline.errors import TemporaryFailure

    secret_url = "http://127.0.0.1:9/bot123456:SECRET-TOKEN/sendMessage"  # port 9: refused
    with requests.Session() as http, pytest.raises(TemporaryFailure) as caught:
        request(http, "POST", secret_url, service="Telegram", timeout=2, json={})
    shown = "".join(traceback.format_exception(caught.value))
    assert "SECRET-TOKEN" not in shown and "Telegram" in shown
    assert caught.value.unknown_outcome is False  # refused: certainly not delivered


# -- fitting at the edges of the budget --------------------------------------------------

REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "pipeline" / "templates" / "channels"
# No-break spaces (between a number and its unit) and a flag: a post that fits is sent
# exactly as the template made it, and lengths are counted in graphemes.
TITLE = "Glacier report: 1.2\xa0m of ice lost 🇳🇵"
SUMMARY = "Glaciers in the Hindu Kush Himalaya lost mass for the fifth year running, 1.2\xa0m."


def bluesky_post(limit: int | None, **values: str) -> str:
    """A post through the repository's Bluesky template: title, summary if any, link."""
    fields = {"title": TITLE, "summary": SUMMARY, "url": URL, **values}
    return fit(BLUESKY, fields, limit=limit, measure=graphemes)


BLUESKY = load_channel_template(REPO_TEMPLATES / "bluesky.txt.j2")


def test_a_post_that_fits_its_limit_exactly_is_sent_whole():
    whole = bluesky_post(None)
    assert whole == f"{TITLE}\n\n{SUMMARY}\n\n{URL}"
    # the flag is one grapheme though two code points: the limit is met, not exceeded
    assert bluesky_post(graphemes(whole)) == whole


def test_one_grapheme_over_the_limit_shortens_the_summary_and_nothing_else():
    whole = bluesky_post(None)
    text = bluesky_post(graphemes(whole) - 1)
    assert graphemes(text) <= graphemes(whole) - 1
    title, summary, url = text.split("\n\n")
    assert (title, url) == (TITLE, URL)
    assert summary.endswith("…") and " ".join(SUMMARY.split()).startswith(summary[:-1])
    assert len(summary) > len(SUMMARY) - 10  # a word or two went, not the whole summary


@pytest.mark.parametrize("spare", [0, 1, 2, 3])
def test_when_not_even_a_letter_of_the_summary_fits_it_is_dropped_and_the_title_stays_whole(
    spare,
):
    # The title and link alone fit, with up to 3 graphemes to spare: "\n\n" and "G…" need 4.
    alone = f"{TITLE}\n\n{URL}"
    text = bluesky_post(graphemes(alone) + spare)
    assert text == alone  # no lone "…", no blank summary paragraph, title not cut


@pytest.mark.parametrize(
    "summary",
    [
        SUMMARY,
        "湿地是地球上最重要的生态系统之一，保护湿地刻不容缓。" * 2,
        "Our trip 👨\u200d👩\u200d👧 to 🇳🇵 Nepal: Kathmandu的湿地 and the Koshi Tappu reserve",
    ],
    ids=["english", "chinese", "mixed"],
)
def test_the_longest_excerpt_of_the_summary_that_fits_is_kept(summary):
    alone = graphemes(f"{TITLE}\n\n{URL}")
    # every post the excerpt rules allow, shortest summary first
    posts = [bluesky_post(None, summary=excerpt(summary, n)) for n in range(2, len(summary))]
    for limit in range(alone + 4, graphemes(bluesky_post(None, summary=summary))):
        longest = [post for post in posts if graphemes(post) <= limit][-1]
        assert bluesky_post(limit, summary=summary) == longest


def test_every_url_in_a_post_counts_as_the_network_counts_it():
    mastodon = status_length
    one = "https://example.org/reports/" + "glacier-mass-balance-" * 20
    two = "http://example.net/b?c=d"
    assert mastodon(f"See {one}") == len("See ") + 23
    assert mastodon(f"See {one} and {two}") == len("See  and ") + 2 * 23
    assert mastodon(f"{one} {two} {URL}") == 2 + 3 * 23
    # Long links make this post over 500 characters, but Mastodon counts 23 a link: it fits
    # its 500 and goes out whole.
    template = load_channel_template(REPO_TEMPLATES / "mastodon.txt.j2")
    summary = f"Data: {one} and the report at {two}."
    values = {"title": "Glaciers", "summary": summary, "url": URL, "tags": ()}
    whole = f"Glaciers\n\n{summary}\n\n{URL}"
    assert fit(template, values, limit=500, measure=mastodon) == whole
    assert mastodon(whole) < 500 < len(whole)


def test_a_plain_text_post_is_not_html_escaped():
    template = load_channel_template(REPO_TEMPLATES / "bluesky.txt.j2")
    values = {"title": "Rivers & lakes: <2026> report", "summary": "", "url": URL}
    text = fit(template, values, limit=None, measure=graphemes)
    assert text == f"Rivers & lakes: <2026> report\n\n{URL}"


def test_lengths_are_whole_numbers():
    # `pipeline post --dry-run` shows them: "8 characters", not "8.0".
    assert isinstance(utf16_units("👨\u200d👩\u200d👧"), int)
    assert isinstance(status_length(f"{URL} {URL}"), int)


def test_a_post_that_cannot_fit_says_what_the_limit_is(tmp_path):
    path = tmp_path / "long.txt.j2"
    path.write_text("{{ url }} " + "x" * 50, encoding="utf-8")
    with pytest.raises(PermanentFailure) as caught:
        fit(
            load_channel_template(path),
            {"title": "T", "summary": "S", "url": URL},
            limit=40,
            measure=len,
        )
    assert str(caught.value) == (
        "the post cannot fit in 40 characters even without summary and title; "
        "shorten the channel template"
    )


# -- what a channel template can use ------------------------------------------------------


def test_a_template_gets_every_documented_value(tmp_path, make_article):
    path = tmp_path / "all.txt.j2"
    path.write_text(
        "{{ title }}|{{ summary }}|{{ url }}|{{ authors }}|{{ tags | join(',') }}|{{ site }}"
        "|{{ article.id }}|{{ tags | map('hashtag') | join(' ') }}",
        encoding="utf-8",
    )
    article = make_article(authors=("Pema Gyamtsho", "Anna Berg"))
    text = fit(
        load_channel_template(path),
        template_values(article, "Mountain News"),
        limit=None,
        measure=graphemes,
    )
    assert text.split("|") == [
        "Glaciers lose mass for a fifth year",
        "New data from monitored glaciers show another year of heavy losses.",
        "https://news.example.org/news/glacier-report/",
        "Pema Gyamtsho, Anna Berg",
        "Nepal,climate change",
        "Mountain News",
        "news/glacier-report",
        "#Nepal #ClimateChange",
    ]


def test_a_misspelt_name_in_a_template_fails_the_post_and_names_the_template(tmp_path):
    path = tmp_path / "typo.txt.j2"
    path.write_text("{{ titel }}\n{{ url }}\n", encoding="utf-8")
    with pytest.raises(PermanentFailure, match=r"^template typo\.txt\.j2: 'titel' is undefined"):
        fit(load_channel_template(path), {"title": "T", "url": URL}, limit=None, measure=graphemes)


def test_an_html_template_escapes_the_article_text(tmp_path):
    path = tmp_path / "post.html.j2"
    path.write_text("<b>{{ title }}</b> {{ tags | map('hashtag') | join(' ') }}", encoding="utf-8")
    values = {"title": "Salt & <pepper>", "tags": ("r&d",)}
    text = fit(load_channel_template(path, autoescape=True), values, limit=None, measure=graphemes)
    assert text == "<b>Salt &amp; &lt;pepper&gt;</b> #RD"
