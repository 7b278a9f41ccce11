"""The preference page in a real headless Chromium, in English and Chinese, on a phone
(375 px) and a desktop (1280 px): untick a digest, choose a topic, pause, save; the
store then holds what was chosen. Screenshots of the page and of the saved answer go to
$PIPELINE_SCREENSHOTS, else /tmp/prefs-shots/.

Uses Debian's chromium through Playwright, as tests/test_web_browser.py does: without it
the test is skipped, unless PIPELINE_REQUIRE_BROWSER is set, when it fails."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscribers import SubscriberStore
from pipeline.web.app import create_app
from tests.prefs_site import configure, prefs_web
from tests.test_web_browser import CONTRAST

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("PIPELINE_REQUIRE_BROWSER"):
    raise RuntimeError("PIPELINE_REQUIRE_BROWSER is set but chromium is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # the server's injected clock


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("PIPELINE_SCREENSHOTS") or "/tmp/prefs-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def served(mail_project, live_app):
    """The example project (with a digest for readers of Nepal or Climate) served on
    127.0.0.1; yields (base URL, the subscriber store, a preference link maker)."""
    configure(mail_project, topics=True)
    settings = load_settings(mail_project / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    base = live_app(create_app(settings, store, clock=lambda: NOW))
    links = prefs_web(mail_project, smtp=False)
    yield base, SubscriberStore(store.engine), links
    links.store.close()
    store.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_an_english_reader_changes_their_preferences(served, browser, shots, width):
    base, people, links = served
    page = browser.new_page(viewport={"width": width, "height": 900}, locale="en-GB")
    page.goto(f"{base}/preferences?token={links.token('pema@example.org')}")
    assert page.title() == "Your subscription · Mountain News"
    weekly = page.get_by_label("This week at Mountain News")
    assert weekly.is_checked() and page.get_by_label("Nepal this week").is_checked()
    assert page.get_by_label("Nepal", exact=True).is_checked()
    assert not page.get_by_label("Climate").is_checked()
    assert page.get_by_label("Pause all digests").input_value() == "0"
    assert _fits(page), "the page is wider than the window"
    page.screenshot(path=str(shots / f"en-{width}-page.png"), full_page=True)
    weekly.uncheck()
    page.get_by_label("Climate").check()
    page.get_by_label("Pause all digests").select_option(label="For 2 weeks")
    page.get_by_role("button", name="Save preferences").click()
    page.wait_for_selector("text=Your preferences are saved")
    page.screenshot(path=str(shots / f"en-{width}-saved.png"), full_page=True)
    pema = people.get("pema@example.org")
    assert people.left(pema.id) == {"weekly-en"}
    assert pema.topics == ("Climate", "Nepal") and pema.language == "en"
    assert pema.paused_until == dt.datetime(2026, 12, 15, 9, 0)

    page.get_by_role("link", name="Manage your subscription").click()  # back to the page
    assert not page.get_by_label("This week at Mountain News").is_checked()
    for selector in ("h1", "legend", "label[for=pause]", "button", "button.secondary", ".note"):
        assert page.eval_on_selector(selector, CONTRAST) >= 4.5, selector
    page.get_by_role("button", name="Unsubscribe from everything").click()
    page.wait_for_selector("text=You are unsubscribed")
    assert people.get("pema@example.org").status == "unsubscribed"
    page.goto(f"{base}/preferences?token={links.token('pema@example.org')}")
    assert page.get_by_role("button", name="Save preferences").count() == 0
    page.screenshot(path=str(shots / f"en-{width}-come-back.png"), full_page=True)
    page.get_by_role("button", name="Subscribe again").click()
    page.wait_for_selector("text=Check your inbox")
    assert people.get("pema@example.org").status == "unsubscribed"  # until confirmed


@pytest.mark.parametrize("width", [375, 1280])
def test_a_chinese_reader_changes_their_preferences(served, browser, shots, width):
    base, people, links = served
    page = browser.new_page(viewport={"width": width, "height": 900}, locale="zh-CN")
    page.goto(f"{base}/preferences?token={links.token('li.wen@example.org')}")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.title() == "您的订阅 · Mountain News"
    assert page.get_by_label("山地新闻月报").is_checked()
    assert _fits(page), "the page is wider than the window"
    page.screenshot(path=str(shots / f"zh-{width}-page.png"), full_page=True)
    page.get_by_label("Nepal", exact=True).check()
    page.get_by_label("暂停所有摘要").select_option(label="暂停 4 周")
    page.get_by_role("button", name="保存设置").click()
    page.wait_for_selector("text=设置已保存")
    page.screenshot(path=str(shots / f"zh-{width}-saved.png"), full_page=True)
    li = people.get("li.wen@example.org")
    assert li.topics == ("China", "Nepal") and li.language == "zh-CN"
    assert li.paused_until == dt.datetime(2026, 12, 29, 9, 0)
    assert people.left(li.id) == set()
    page.goto(f"{base}/preferences?token={links.token('li.wen@example.org')}")
    assert page.get_by_text("您的摘要已暂停至 2026年12月29日。").is_visible()
    page.screenshot(path=str(shots / f"zh-{width}-paused.png"), full_page=True)


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
