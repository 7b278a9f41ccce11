"""Rendering digest editions: MJML compiled once, what the subscriber sees in each
language, per-recipient personalisation, and template checks with file and line."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import lxml.html
import pytest

import pipeline.digest.render as render
from pipeline import i18n
from pipeline.digest.render import (
    SEAL,
    check_template,
    personalise,
    placeholders,
    render_edition,
)
from pipeline.errors import ConfigError
from pipeline.model import Article, Translation
from pipeline.settings import SiteSettings
from pipeline.settings.email import DigestSettings

SITE = SiteSettings(
    name="Mountain News",
    url="https://news.example.org",
    timezone="Asia/Kathmandu",
    logo="https://news.example.org/static/logo.png",
    postal_address="GPO Box 3226\nKathmandu, Nepal",
)
UTC = dt.UTC
URL = "https://news.example.org/unsubscribe?token=abc.def&digest=weekly-en"
VIEW = "https://news.example.org/digests/weekly-en/2026-11-09T09:00+05:45"
TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def digest(language: str = "en", **extra: object) -> DigestSettings:
    title = "山地新闻月报" if language.startswith("zh") else "This week at Mountain News"
    return DigestSettings.model_validate({"title": title, "language": language, **extra})


def article(slug: str, **fields: object) -> Article:
    values: dict = {
        "id": f"news/{slug}",
        "source": "news",
        "origin": f"examples/site/news/{slug}.md",
        "url": f"https://news.example.org/news/{slug}/",
        "language": "en",
        "section": "news",
        "body_html": "<p>Body.</p>",
        "read_minutes": 3,
    }
    return Article.model_validate(values | fields)


ENGLISH = [
    article(
        "hkh-snow-update-2026",
        title="Snow Update 2026: Below-normal snow persistence for a fourth year",
        authors=("Farid Ahmadi",),
        published=dt.datetime(2026, 11, 2, 20, 0, tzinfo=UTC),  # 3 Nov in Kathmandu
        summary="Snow stayed on the ground for a shorter time than normal across much of "
        "the Hindu Kush Himalaya this winter, according to our annual Snow Update…",
        image="https://news.example.org/media/snow-2026.jpg",
        image_alt="Snow-covered peaks above the Langtang valley in early spring",
    ),
    article(
        "wetlands",
        title="Wetlands & rivers: Nature’s “lifelines” at risk",
        authors=("Nusrat Jahan", "Li Wen"),
        published=dt.datetime(2026, 10, 27, 4, 0, tzinfo=UTC),
        summary="Wetlands, one of Earth’s most productive ecosystems, provide vital "
        "ecological, economic and cultural benefits <as water filters>.",
        read_minutes=2,
        image="https://news.example.org/media/wetlands.jpg",
    ),
    article(
        "international-mountain-day-2023",
        title="International Mountain Day 2023: Restoring mountain ecosystems",
        authors=("Pema Gyamtsho",),
        published=dt.datetime(2026, 10, 20, 3, 15, tzinfo=UTC),
        summary="Mountains are widely recognised as cradles of biodiversity.",
        read_minutes=4,
        translations=(
            Translation(
                id="news/guo-ji-shan-yue-ri-2023",
                language="zh-CN",
                url="https://news.example.org/news/guo-ji-shan-yue-ri-2023/",
                title="2023年国际山岳日:恢复山地生态系统",
            ),
        ),
    ),
]
CHINESE = [
    article(
        "bing-chuan-xiao-rong-bao-gao-2026",
        title="兴都库什-喜马拉雅冰川连续第五年出现大规模物质损失",
        authors=("李文", "王芳"),
        language="zh-CN",
        published=dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        summary="随着2026年消融季的结束，来自中国、尼泊尔和不丹多个监测冰川的最新数据显示，"
        "兴都库什-喜马拉雅地区的冰川已连续第五年出现大规模物质损失。",
    ),
    article(
        "guo-ji-shan-yue-ri-2023",
        title="2023年国际山岳日:恢复山地生态系统",
        authors=("Pema Gyamtsho",),
        language="zh-CN",
        published=dt.datetime(2026, 10, 20, 3, 15, tzinfo=UTC),
        summary="山地被广泛认为是生物多样性的发源地，其陡峭的斜坡孕育了各种繁复的生命形式。",
        read_minutes=5,
        translations=(
            Translation(
                id="news/international-mountain-day-2023",
                language="en",
                url="https://news.example.org/news/international-mountain-day-2023/",
                title="International Mountain Day 2023: Restoring mountain ecosystems",
            ),
        ),
    ),
]


def personal(rendered: render.RenderedEdition, name: str = "Anna Berg", view: str | None = VIEW):
    return personalise(rendered, unsubscribe_url=URL, name=name, view_url=view)


def test_mjml_is_compiled_once_per_edition_not_per_recipient(monkeypatch):
    calls = []
    real = render.mjml2html

    def counting(source: str, **options):
        calls.append(source)
        return real(source, **options)

    monkeypatch.setattr(render, "mjml2html", counting)
    rendered = render_edition(digest(), SITE, ENGLISH)
    copies = [personal(rendered, name) for name in ("Anna Berg", "Pema Gyamtsho", "")]
    assert len(calls) == 1
    assert len({html for html, _ in copies}) == 3


def test_english_edition_shows_every_article_in_html_and_text():
    rendered = render_edition(digest(), SITE, ENGLISH)
    html, text = personal(rendered)
    for item in ENGLISH:
        assert f'href="{item.url}"' in html and item.url in text
        assert item.title in text
        assert item.summary in text
    assert "Wetlands &amp; rivers: Nature’s “lifelines” at risk" in html
    assert "benefits &lt;as water filters&gt;." in html
    assert "Nusrat Jahan and Li Wen" in html and "Nusrat Jahan and Li Wen" in text
    assert "3 November 2026" in html and "3 November 2026" in text  # Kathmandu, not UTC
    assert "3 min read" in html and "2 min read" in text
    assert "阅读中文版" in html and "阅读中文版: https://news.example.org/news/guo-ji" in text
    assert 'hreflang="zh-CN"' in html
    assert "Hello Anna Berg," in html and "Hello Anna Berg," in text
    assert rendered.subject == "This week at Mountain News"
    assert rendered.preheader == ENGLISH[0].title
    assert '<html lang="en"' in html


def test_chinese_edition_speaks_chinese():
    rendered = render_edition(digest("zh-CN"), SITE, CHINESE)
    html, text = personal(rendered, name="李文")
    for part in (html, text):
        assert "2026年11月3日" in part
        assert "阅读时间 3 分钟" in part and "阅读时间 5 分钟" in part
        assert "李文、王芳" in part
        assert "Read in English" in part
        assert "李文，您好！" in part
        assert "阅读全文" in part and "退订" in part
    assert '<html lang="zh-CN"' in html
    assert 'lang="en"' in html  # the English link is marked as English
    assert "以下是Mountain News的 2 篇最新文章。" in text
    assert rendered.subject == "山地新闻月报"


def test_empty_name_takes_the_greeting_without_a_name():
    html, text = personal(render_edition(digest(), SITE, ENGLISH), name="  ")
    assert "Hello," in html and "Hello," in text
    assert "Hello ," not in html + text
    zh_html, zh_text = personal(render_edition(digest("zh-CN"), SITE, CHINESE), name="")
    assert "您好！" in zh_text and "，您好" not in zh_text + zh_html


def test_html_reads_in_dark_mode_has_preheader_and_mobile_columns():
    rendered = render_edition(digest(preheader="Glaciers, snow and wetlands"), SITE, ENGLISH)
    html, _ = personal(rendered)
    assert "@media (prefers-color-scheme: dark)" in html
    assert '<meta name="color-scheme" content="light dark"' in html
    assert "[data-ogsc]" in html  # Outlook.com's dark mode
    assert rendered.preheader == "Glaciers, snow and wetlands"
    hidden = re.search(r'<div style="display:none;[^"]*">([^<]*)</div>', html)
    assert hidden and hidden.group(1).startswith("Glaciers, snow and wetlands")
    assert "max-width:600px" in html
    assert "@media only screen and (min-width:480px)" in html  # columns stack below it
    assert "mj-column-per-36" in html and "mj-column-per-64" in html
    assert "fonts.googleapis.com" not in html


def test_every_image_has_alt_text():
    html, _ = personal(render_edition(digest(), SITE, ENGLISH))
    images = lxml.html.fromstring(html).xpath("//img")
    assert len(images) == 3  # logo and two lead images
    assert all(img.get("alt", "").strip() for img in images)
    alts = {img.get("src"): img.get("alt") for img in images}
    assert alts[SITE.logo] == "Mountain News"
    assert alts[ENGLISH[0].image] == ENGLISH[0].image_alt
    assert alts[ENGLISH[1].image] == ENGLISH[1].title  # no image_alt: the title


def test_footer_has_postal_address_reason_and_unsubscribe_link():
    html, text = personal(render_edition(digest(), SITE, ENGLISH))
    escaped = URL.replace("&", "&amp;")
    document = lxml.html.fromstring(html)
    links = {a.text_content().strip(): a.get("href") for a in document.xpath("//a")}
    assert links["Unsubscribe"] == URL  # lxml unescapes &amp;
    assert links["View in your browser"] == VIEW
    assert f'href="{escaped}"' in html
    for part in (html, text):
        assert "GPO Box 3226" in part and "Kathmandu, Nepal" in part
        assert "because you subscribed to “This week at Mountain News”" in part
    assert f"Unsubscribe: {URL}" in text and f"View in your browser: {VIEW}" in text


def test_personalise_escapes_in_html_and_keeps_text_raw():
    rendered = render_edition(digest(), SITE, ENGLISH)
    html, text = personal(rendered, name='<script>alert("x")</script> %%VIEW_URL%%')
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert '<script>alert("x")</script> %%VIEW_URL%%' in text  # text is not HTML
    assert URL.replace("&", "&amp;") in html and URL not in html
    assert URL in text


def test_text_part_is_readable_and_fully_personalised():
    rendered = render_edition(digest(), SITE, ENGLISH)
    key = rendered.html.rpartition(SEAL)[2].removesuffix("-->")
    assert rendered.text.endswith(f"{SEAL}{key}-->")
    assert all(token in rendered.html for token in placeholders(key).values())
    assert placeholders(key)["unsubscribe_url"] in rendered.text
    html, text = personal(rendered, view=None)
    for part in (html, text):
        assert "%%" not in part
        assert "View in your browser" not in part  # no view URL: no link to nowhere
    assert not TAG.search(text.replace(ENGLISH[1].summary, ""))  # its "<as …>" is text
    assert "&amp;" not in text and "&lt;" not in text
    assert "\n\n\n" not in text and text.endswith("\n")
    assert "1. Snow Update 2026" in text and "3. International Mountain Day 2023" in text
    assert "Wetlands & rivers: Nature’s “lifelines” at risk" in text


def test_strings_exist_in_every_language_and_other_languages_read_english():
    keys = {language: set(strings) for language, strings in i18n.STRINGS.items()}
    assert all(found == keys["en"] for found in keys.values())
    moment = dt.datetime(2026, 11, 2, 20, 0, tzinfo=UTC)
    assert i18n.format_date(moment, "en", "UTC") == "2 November 2026"
    assert i18n.format_date(moment, "en", "Asia/Kathmandu") == "3 November 2026"
    assert i18n.format_date(moment, "zh-CN", "Asia/Shanghai") == "2026年11月3日"
    assert i18n.format_date(moment, "fr", "UTC") == "2 November 2026"
    assert i18n.read_time(0, "en") == "1 min read"
    assert i18n.read_time(3, "zh-Hant") == "阅读时间 3 分钟"
    assert i18n.join_names(["A"], "en") == "A"
    assert i18n.join_names(["A", "B"], "en") == "A and B"
    assert i18n.join_names(["A", "B", "C"], "en") == "A, B and C"
    assert i18n.join_names(["李文", "王芳"], "zh-CN") == "李文、王芳"
    assert i18n.language_name("zh-CN", "zh-CN") == "中文"
    assert i18n.language_name("en", "en") == "English"
    assert i18n.translation_label("zh-CN") == "阅读中文版"
    assert i18n.translation_label("en-GB") == "Read in English"
    assert i18n.translation_label("fr") == "Read in French"


def test_check_template_passes_the_shipped_templates_in_both_languages():
    assert check_template(digest(), SITE) == []
    assert check_template(digest("zh-CN"), SITE) == []
    mixed = digest(languages=["en", "zh-CN"], max_items=12)
    assert check_template(mixed, SITE) == []


def test_check_template_warns_when_gmail_would_clip_the_edition():
    warnings = check_template(digest(max_items=100), SITE)
    assert len(warnings) == 1 and "102 KB" in warnings[0]
    huge = render_edition(
        digest(max_items=100), SITE, render.sample_articles(digest(max_items=100), SITE)
    )
    assert huge.warnings == tuple(warnings)


def custom(tmp_path: Path, mjml: str) -> DigestSettings:
    path = tmp_path / "templates" / "custom.mjml.j2"
    path.parent.mkdir()
    path.write_text(mjml, encoding="utf-8")
    return digest(template=path)


def shipped() -> str:
    return render.DEFAULT_TEMPLATE.read_text(encoding="utf-8")


def test_check_template_reports_jinja_syntax_error_with_file_and_line(tmp_path):
    source = shipped().replace("{% for part in item.meta_parts %}", "{% for part in %}")
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "{% for part in %}" in text)
    with pytest.raises(ConfigError) as caught:
        check_template(custom(tmp_path, source), SITE)
    [problem] = caught.value.problems
    assert problem.file.endswith("templates/custom.mjml.j2")
    assert problem.line == line
    assert problem.message.startswith("template error: ")
    assert str(problem).startswith(f"{problem.file}:{line}: template error")


def test_check_template_reports_misspelt_mjml_tag_with_its_line(tmp_path):
    source = "<mjml>\n  <mj-body>\n    <mj-section>\n      <mj-colum>\n" + (
        "        <mj-text>{{ digest.title }}</mj-text>\n      </mj-colum>\n"
        "    </mj-section>\n  </mj-body>\n</mjml>\n"
    )
    with pytest.raises(ConfigError) as caught:
        check_template(custom(tmp_path, source), SITE)
    lines = {(p.line, p.message, p.hint) for p in caught.value.problems}
    assert (4, "unknown MJML tag <mj-colum>", "did you mean <mj-column>?") in lines
    assert (6, "unknown MJML tag </mj-colum>", "did you mean <mj-column>?") in lines
    assert str(caught.value).startswith(f"{caught.value.problems[0].file}:4: unknown MJML tag")


def test_malformed_mjml_is_a_config_error_with_the_line(tmp_path):
    source = (
        "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
        "<mj-text>{{ digest.title }}\n</mj-column>\n</mj-section>\n</mj-body>\n</mjml>\n"
    )
    with pytest.raises(ConfigError) as caught:
        render_edition(custom(tmp_path, source), SITE, ENGLISH)
    assert [(p.line, p.message) for p in caught.value.problems] == [(5, "<mj-text> is not closed")]


def test_unknown_variable_names_the_template_line(tmp_path):
    source = shipped().replace("{{ item.summary }}", "{{ item.sumary }}")
    with pytest.raises(ConfigError) as caught:
        check_template(custom(tmp_path, source), SITE)
    [problem] = caught.value.problems
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "item.sumary" in text)
    assert (problem.line, "sumary" in problem.message) == (line, True)


def test_custom_template_without_text_twin_uses_the_shipped_text(tmp_path):
    settings = custom(tmp_path, shipped())
    html, text = personal(render_edition(settings, SITE, ENGLISH))
    assert "Read more: https://news.example.org/news/wetlands/" in text
    assert "Snow Update 2026" in html


def test_site_without_logo_or_address_still_renders_its_name():
    bare = SiteSettings(name="Mountain News", url="https://news.example.org")
    html, text = personal(render_edition(digest(), bare, ENGLISH[1:]))
    document = lxml.html.fromstring(html)
    assert document.xpath("//a[@href='https://news.example.org']")[0].text == "Mountain News"
    assert "Here are the 2 latest articles from Mountain News." in text
    one, _ = personal(render_edition(digest(), bare, ENGLISH[:1]))
    assert "Here is the latest article from Mountain News." in one


def test_a_template_writing_the_placeholder_literally_is_warned_about(tmp_path):
    """Only {{ ph.unsubscribe_url }} is filled in; a literal %%UNSUBSCRIBE_URL%% (or no
    link at all) would leave readers without a way out."""
    source = shipped().replace("{{ ph.unsubscribe_url }}", "%%UNSUBSCRIBE_URL%%")
    warnings = check_template(custom(tmp_path, source), SITE)
    assert warnings == [
        "the HTML part has no unsubscribe link: write {{ ph.unsubscribe_url }} in its template"
    ]
    assert check_template(digest(), SITE) == []


def test_a_template_without_the_preference_link_is_warned_about(tmp_path):
    """A project's copy of the template made before the preference page existed gives
    readers no way to it: check says so, for the part that lacks it."""
    start = shipped().index("{{ ph.if_preferences_url }}")
    end = shipped().index("{{ ph.end }}", start) + len("{{ ph.end }}")
    source = shipped()[:start] + shipped()[end:]
    assert "{{ ph.preferences_url }}" not in source
    warnings = check_template(custom(tmp_path, source), SITE)
    assert warnings == [
        "the HTML part has no link to the preference page: write {{ ph.preferences_url }} "
        "in its footer (see the packaged template: `pipeline templates copy`)"
    ]
