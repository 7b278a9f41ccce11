"""A Chinese summary fills about as many lines as an English one in the digest email on
a 375 px wide phone screen, measured in a real headless Chromium (skipped without it,
unless PIPELINE_REQUIRE_BROWSER is set)."""

from __future__ import annotations

import os
import shutil

import pytest

from pipeline.digest.render import render_edition
from pipeline.settings.email import DigestSettings
from pipeline.text import excerpt, html_to_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("PIPELINE_REQUIRE_BROWSER"):
    raise RuntimeError("PIPELINE_REQUIRE_BROWSER is set but chromium is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

ENGLISH = (
    "<h2>Wetlands in trouble</h2><p>Wetlands filter water, shelter migrating birds and "
    "store carbon; across Nepal they are shrinking as towns grow and rivers are diverted "
    "for irrigation and power. Surveys in the Terai found that a third of the ponds mapped "
    "in 1990 have gone, and the birds that wintered there with them.</p>"
)
CHINESE = (
    "<h2>湿地告急</h2><p>湿地过滤水源，为迁徙的鸟类提供栖息地并储存碳；在尼泊尔，随着城镇扩张和"
    "河流改道用于灌溉和发电，湿地正在萎缩。对特莱平原的调查发现，1990年绘制的池塘已有三分之一消失，"
    "在那里越冬的鸟类也随之不见。保护区管理人员表示，恢复工作需要社区、地方政府和水电项目共同参与，"
    "否则剩下的湿地也将在二十年内消失。</p>"
) * 2
# The lines each summary's text takes: one client rect per line box of its text.
LINES = """element => {
  const range = document.createRange();
  range.selectNodeContents(element);
  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
}"""


def lines_at_375px(browser, site, make_article, language: str, summary: str) -> int:
    digest = DigestSettings(title="Digest", language=language)
    article = make_article(language=language, summary=summary)
    rendered = render_edition(digest, site, [article])
    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        page.set_content(rendered.html)
        return page.get_by_text(summary, exact=True).evaluate(LINES)
    finally:
        page.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_chinese_and_english_summaries_take_about_as_many_lines(browser, site, make_article):
    english = excerpt(html_to_text(ENGLISH), site.excerpt_length, columns=True)
    chinese = excerpt(html_to_text(CHINESE), site.excerpt_length, columns=True)
    english_lines = lines_at_375px(browser, site, make_article, "en", english)
    chinese_lines = lines_at_375px(browser, site, make_article, "zh-CN", chinese)
    assert english_lines >= 5, (english_lines, chinese_lines)
    assert abs(chinese_lines - english_lines) <= 1, (english_lines, chinese_lines)
    # counted in characters, the same budget made the Chinese one about twice as long
    by_graphemes = excerpt(html_to_text(CHINESE), site.excerpt_length)
    doubled = lines_at_375px(browser, site, make_article, "zh-CN", by_graphemes)
    assert doubled >= 1.6 * english_lines, (english_lines, doubled)
