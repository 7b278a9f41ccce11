"""Post text: templates, fitting to a budget, and how networks count."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.channels.compose import fit, graphemes, hashtag, load_template, urls_as, utf16_units
from pipeline.channels.http import retry_after
from pipeline.errors import ConfigError, PermanentFailure

URL = "https://news.example.org/news/a-rather-long-slug-for-an-article-about-glaciers/"


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "post.txt.j2"
    path.write_text("{{ title }}\n\n{{ summary }}\n\n{{ url }}\n", encoding="utf-8")
    return load_template(path)


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
            load_template(path),
            {"title": "", "summary": "", "url": URL},
            limit=40,
            measure=graphemes,
        )


def test_template_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.txt.j2"
    path.write_text("{{ title }}\n{% if summary %}\n{{ summary }}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_template(path)
    (problem,) = caught.value.problems
    assert problem.file.endswith("broken.txt.j2") and problem.line is not None


def test_measures_count_like_the_networks():
    family, flag, accent = "👨\u200d👩\u200d👧", "🇳🇵", "e\u0301"
    assert graphemes(family + flag + accent) == 3
    assert utf16_units(family) == 8 and utf16_units("山") == 1
    assert urls_as(23)(f"Read {URL} now") == len("Read  now") + 23


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
        load_template(path),
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
