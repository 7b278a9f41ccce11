"""A reader in a real headless Chromium: subscribe → confirmation email (caught by the SMTP
server on 127.0.0.1) → confirm → the next digest arrives → unsubscribe from its link.

Uses Debian's chromium (`apt-get install chromium`) through Playwright. Without it the
test is skipped, unless PIPELINE_REQUIRE_BROWSER is set (as `.ci/run` does), in which
case it fails. Screenshots go to $PIPELINE_SCREENSHOTS if set."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import invoke

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("PIPELINE_REQUIRE_BROWSER"):
    raise RuntimeError("PIPELINE_REQUIRE_BROWSER is set but chromium is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

# WCAG 2 contrast ratio of an element's text against its (nearest opaque) background.
CONTRAST = """element => {
  const rgb = s => s.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = element, bg = null;
  while (node) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) { bg = c; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const [a, b] = [lum(rgb(getComputedStyle(element).color)), lum(bg)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def local(base: str, public_link: str) -> str:
    """A link from an email (https://news.example.org/…) pointed at the test server."""
    parts = urlsplit(public_link)
    return f"{base}{parts.path}?{parts.query}"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("PIPELINE_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_subscribe_confirm_receive_and_unsubscribe_in_a_browser(
    live_site, mail_project, browser, shots
):
    handler = live_site.handler
    page = browser.new_page(viewport={"width": 375, "height": 800}, locale="en-GB")

    page.goto(f"{live_site.base}/subscribe")
    assert page.title() == "Subscribe to Mountain News · Mountain News"
    page.get_by_label("Email address").fill("browser.reader@example.org")
    page.get_by_label("Name (optional)").fill("Browser Reader")
    page.get_by_label("Language of the digest").select_option("en")
    for selector in ("h1", "label[for=email]", "button"):
        assert page.eval_on_selector(selector, CONTRAST) >= 4.5, selector
    page.screenshot(path=str(shots / "1-subscribe-375.png"), full_page=True)
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your inbox")
    page.screenshot(path=str(shots / "2-check-inbox-375.png"), full_page=True)

    (confirmation,) = handler.messages
    link = re.search(r"https://\S+/confirm\?token=\S+", confirmation.get_content()).group()
    page.goto(local(live_site.base, link))
    assert live_site.people.get("browser.reader@example.org").status == "pending"
    page.screenshot(path=str(shots / "3-confirm-375.png"), full_page=True)
    page.get_by_role("button", name="Confirm subscription").click()
    page.wait_for_selector("text=You are subscribed")
    assert live_site.people.get("browser.reader@example.org").status == "active"

    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    digests = [m for m in handler.messages if "browser.reader@example.org" in str(m["To"])]
    assert [m["Subject"] for m in digests] == [
        "Confirm your subscription to Mountain News",
        "This week at Mountain News",
    ]
    unsubscribe = digests[1]["List-Unsubscribe"].strip("<>")
    page.goto(local(live_site.base, unsubscribe))
    page.screenshot(path=str(shots / "4-unsubscribe-375.png"), full_page=True)
    assert "browser.reader@example.org" in live_site.audience("weekly-en")  # the GET did nothing
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You are unsubscribed")
    page.screenshot(path=str(shots / "5-unsubscribed-375.png"), full_page=True)
    assert "browser.reader@example.org" not in live_site.audience("weekly-en")


def test_the_chinese_sign_up_page_in_a_browser(live_site, browser, shots):
    page = browser.new_page(viewport={"width": 600, "height": 800}, locale="zh-CN")
    page.goto(f"{live_site.base}/subscribe")
    assert page.get_attribute("html", "lang") == "zh-CN"
    page.get_by_label("电子邮件地址").fill("duzhe@example.org")
    page.get_by_label("摘要语言").select_option("zh-CN")
    page.get_by_role("button", name="订阅").click()
    page.wait_for_selector("text=请查收邮件")
    page.screenshot(path=str(shots / "6-zh-check-inbox-600.png"), full_page=True)
    (message,) = live_site.handler.messages
    assert message["Subject"] == "请确认订阅Mountain News"
    assert message["Content-Language"] == "zh-CN"
