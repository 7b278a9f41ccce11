"""The public pages in a real headless Chromium, as a reader on a phone (375 px) and on a
desktop (1280 px), in English and in Chinese: no horizontal scrolling, every link on the
page answers, feed autodiscovery links in the head, readable contrast, and a click
through from the home page to an edition's web version and its subscribe link.

Skipped without Debian's chromium unless PIPELINE_REQUIRE_BROWSER is set (see
tests/test_web_browser.py); screenshots go to $PIPELINE_SCREENSHOTS if set."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests

from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.web.app import create_app
from tests.conftest import invoke
from tests.test_web_browser import CONTRAST, browser, pytestmark, shots  # noqa: F401
from tests.test_web_limits import Outbox

PUBLIC = "https://news.example.org"
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/feed+json"}
LOCALES = {"en": ("en-GB", "en"), "zh": ("zh-CN", "zh-CN")}  # browser locale, page language
NO_SIDEWAYS = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def site(mail_project, live_app):
    for name in ("weekly-en", "monthly-zh"):
        assert invoke(mail_project, "digest", "send", name).exit_code == 0
    assert invoke(mail_project, "feeds").exit_code == 0  # the files /feeds/… serves
    settings = load_settings(mail_project / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    yield live_app(create_app(settings, store, transport=Outbox()))
    store.close()


def answers(base: str, href: str) -> int:
    """The status a link on our pages gets: our public address is this test server."""
    local = base + href[len(PUBLIC) :] if href.startswith(PUBLIC) else href
    assert local.startswith(base), f"{href} leaves the site"
    return requests.get(local, timeout=10).status_code


@pytest.mark.parametrize("locale", list(LOCALES))
def test_each_public_page_reads_well_on_a_phone_and_a_desktop(site, browser, shots, locale):  # noqa: F811
    browser_locale, language = LOCALES[locale]
    archive_paths = ["/digests/", "/digests/weekly-en/", "/digests/monthly-zh/"]
    pages = {
        "home": "/",
        "feeds": "/feeds/",
        "all": archive_paths[0],
        "weekly": archive_paths[1],
        "monthly": archive_paths[2],
    }
    pages["missing"] = "/digests/no-such-digest/"
    for width in (375, 1280):
        context = browser.new_context(
            viewport={"width": width, "height": 900}, locale=browser_locale
        )
        page = context.new_page()
        for name, path in pages.items():
            response = page.goto(site + path)
            assert response.status == (404 if name == "missing" else 200), path
            assert page.get_attribute("html", "lang") == language, path
            assert page.evaluate(NO_SIDEWAYS), f"{path} scrolls sideways at {width} px"
            kinds = page.eval_on_selector_all(
                "head link[rel=alternate]", "links => links.map(l => [l.type, l.href])"
            )
            assert kinds and {kind for kind, _ in kinds} <= FEED_TYPES, path
            if path in archive_paths:
                assert {kind for kind, _ in kinds} == {"application/atom+xml"}
            else:
                assert {kind for kind, _ in kinds} == FEED_TYPES
            for selector in ("h1", "nav.top a"):
                assert page.eval_on_selector(selector, CONTRAST) >= 4.5, (path, selector)
            hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            for href in set(hrefs) | {href for _, href in kinds}:
                assert answers(site, href) == 200, (path, href)
            page.screenshot(path=str(shots / f"site-{locale}-{width}-{name}.png"), full_page=True)
        context.close()


@pytest.mark.parametrize("locale", list(LOCALES))
def test_from_the_home_page_to_an_edition_and_its_subscribe_link(site, browser, shots, locale):  # noqa: F811
    browser_locale, language = LOCALES[locale]
    digest, past, offer, subscribe_heading = {
        "en": ("This week at Mountain News", "Past editions", "Subscribe to receive it by email",
               "Subscribe to Mountain News"),
        "zh": ("山地新闻月报", "往期", "订阅，通过电子邮件接收", "订阅Mountain News"),
    }[locale]  # fmt: skip
    for width in (375, 1280):
        context = browser.new_context(
            viewport={"width": width, "height": 900}, locale=browser_locale
        )
        page = context.new_page()
        page.goto(site + "/")
        item = page.locator("ul.items > li", has=page.get_by_role("heading", name=digest))
        item.get_by_role("link", name=past, exact=True).click()
        page.wait_for_selector("ul.items time")
        page.locator("ul.items h3 a").first.click()
        page.wait_for_selector(f"text={offer}")
        assert re.search(r"/digests/[a-z-]+/\d{4}-\d\d-\d\dT", page.url)
        assert page.evaluate(NO_SIDEWAYS), f"the edition scrolls sideways at {width} px"
        assert "You are receiving" not in page.content() and "您收到这封邮件" not in page.content()
        page.screenshot(path=str(shots / f"site-{locale}-{width}-edition.png"), full_page=True)
        link = page.get_by_role("link", name=offer).get_attribute("href")
        assert urlsplit(link).path == "/subscribe"
        page.goto(site + "/subscribe?" + urlsplit(link).query)  # our public origin, served here
        assert page.title().startswith(subscribe_heading)
        assert page.eval_on_selector("select#language", "s => s.value") == (
            "en" if locale == "en" else "zh-CN"
        )
        assert page.get_attribute("html", "lang") == language
        context.close()
