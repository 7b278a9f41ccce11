"""The web endpoints over real HTTP on 127.0.0.1: RFC 8058 one-click unsubscribe, double
opt-in sign-up, the digest archive, and every forged or malformed request refused with
a clear status and nothing changed."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from pipeline.subscribers import ACTIVE, PENDING, UNSUBSCRIBED
from pipeline.tokens import sign
from tests.conftest import invoke

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def test_one_click_post_unsubscribes_from_that_digest_only(live_site):
    link = live_site.unsubscribe_link("anna@example.org")
    response = requests.post(link, data=ONE_CLICK, allow_redirects=False)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers and "Location" not in response.headers
    assert "anna@example.org will no longer receive “This week at Mountain News”" in response.text
    assert "anna@example.org" not in live_site.audience("weekly-en")
    assert "anna@example.org" in live_site.audience("monthly-zh")  # another list is untouched
    again = requests.post(link, data=ONE_CLICK)  # idempotent
    assert again.status_code == 200 and "no longer receive" in again.text


def test_a_get_on_the_unsubscribe_link_changes_nothing(live_site):
    link = live_site.unsubscribe_link("pema@example.org")
    page = requests.get(link)
    assert page.status_code == 200
    assert "Stop sending “This week at Mountain News” to pema@example.org?" in page.text
    assert '<button type="submit">Unsubscribe</button>' in page.text
    assert "pema@example.org" in live_site.audience("weekly-en")  # a mail scanner's GET is harmless
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_the_unsubscribe_page_speaks_the_subscribers_language(live_site):
    page = requests.get(live_site.unsubscribe_link("li.wen@example.org", "monthly-zh"))
    assert (
        '<html lang="zh-CN">' in page.text
        and "不再向 li.wen@example.org 发送《山地新闻月报》？" in page.text
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda link, live_site: link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"),
        lambda link, live_site: live_site.unsubscribe_link(
            "anna@example.org", secret="not-the-secret"
        ),
        lambda link, live_site: link.replace("token=", "token=x"),
        lambda link, live_site: f"{live_site.base}/unsubscribe?token=%00%ff..",
        lambda link, live_site: (
            f"{live_site.base}/unsubscribe?token="
            + sign(
                live_site.secret,
                "confirm",
                live_site.people.get("anna@example.org").id,
                "weekly-en",
            )
        ),
        lambda link, live_site: f"{live_site.base}/unsubscribe?token=",
        lambda link, live_site: f"{live_site.base}/unsubscribe",
    ],
    ids=[
        "altered-signature",
        "forged-with-another-key",
        "garbage",
        "binary",
        "other-purpose",
        "empty",
        "missing",
    ],
)
def test_forged_and_tampered_tokens_are_refused(live_site, tamper):
    link = tamper(live_site.unsubscribe_link("anna@example.org"), live_site)
    for response in (requests.get(link), requests.post(link, data=ONE_CLICK)):
        assert response.status_code == 400 and "This link does not work" in response.text
    assert "anna@example.org" in live_site.audience("weekly-en")


def test_a_token_cannot_be_reused_for_another_address(live_site):
    anna = live_site.people.get("anna@example.org")
    # Anna's id, but signed for Pema's address: as if Anna's row were deleted and reused.
    token = sign(live_site.secret, "unsubscribe", anna.id, "weekly-en", email="pema@example.org")
    response = requests.post(f"{live_site.base}/unsubscribe?token={token}", data=ONE_CLICK)
    assert response.status_code == 400
    assert {"anna@example.org", "pema@example.org"} <= set(live_site.audience("weekly-en"))


def test_one_click_post_without_the_rfc8058_body_is_refused(live_site):
    link = live_site.unsubscribe_link("anna@example.org")
    assert requests.post(link, data={"List-Unsubscribe": "Yes"}).status_code == 400
    assert requests.post(link, data="x", headers={"Content-Type": "text/plain"}).status_code == 415
    assert "anna@example.org" in live_site.audience("weekly-en")


def test_oversized_and_malformed_bodies_are_refused(live_site):
    link = live_site.unsubscribe_link("anna@example.org")
    big = {"List-Unsubscribe": "One-Click", "pad": "x" * 20_000}
    assert requests.post(link, data=big).status_code == 413

    def chunked():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 1000

    chunked_response = requests.post(
        link, data=chunked(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert chunked_response.status_code == 413
    broken = requests.post(
        link,
        data=b"--zzz\r\nContent-Disposition: form-data\r\n\r\nOne-Click",
        headers={"Content-Type": "multipart/form-data; boundary=zzz"},
    )
    assert broken.status_code == 400
    assert "anna@example.org" in live_site.audience("weekly-en")


def test_subscribe_sends_a_confirmation_and_only_the_link_activates(live_site):
    session = requests.Session()
    form = {
        "form_token": live_site.form_token(session),
        "email": "New.Reader@Example.org",
        "name": "New Reader",
        "language": "en",
    }
    response = live_site.post_form(form, session)
    assert response.status_code == 200 and "Check your inbox" in response.text
    person = live_site.people.get("new.reader@example.org")
    assert person.status == PENDING and person.topics == ()
    (message,) = live_site.handler.messages
    assert message["Subject"] == "Confirm your subscription to Mountain News"
    assert message["To"] == "New Reader <new.reader@example.org>"
    link = re.search(r"https://news\.example\.org/confirm\?token=\S+", message.get_content())
    local = live_site.base + urlsplit(link.group()).path + "?" + urlsplit(link.group()).query
    page = session.get(local)
    assert "Confirm subscription" in page.text
    assert live_site.people.get("new.reader@example.org").status == PENDING  # GET changes nothing
    done = session.post(local, data={"token": parse_qs(urlsplit(local).query)["token"][0]})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert live_site.people.get("new.reader@example.org").status == ACTIVE


def test_an_unsubscribed_address_comes_back_only_through_confirmation(live_site):
    live_site.people.set_status(live_site.people.get("anna@example.org").id, UNSUBSCRIBED)
    form = {"form_token": live_site.form_token(), "email": "anna@example.org", "language": "en"}
    assert live_site.post_form(form).status_code == 200
    assert live_site.people.get("anna@example.org").status == UNSUBSCRIBED  # not yet
    assert len(live_site.handler.messages) == 1


def test_cross_site_and_tokenless_posts_to_subscribe_are_refused(live_site):
    form = {"form_token": live_site.form_token(), "email": "victim@example.org", "language": "en"}
    evil = requests.post(
        f"{live_site.base}/subscribe", data=form, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    without = live_site.post_form({**form, "form_token": ""})
    assert without.status_code == 403
    no_origin = requests.post(f"{live_site.base}/subscribe", data=form)  # not from a browser page
    assert no_origin.status_code == 403
    sandboxed = live_site.post_form(form, headers={"Origin": "null"})
    assert sandboxed.status_code == 403
    assert live_site.people.get("victim@example.org") is None and live_site.handler.messages == []


def test_header_injection_in_name_or_email_is_refused(live_site):
    for field, value in (
        ("name", "Eve\r\nBcc: everyone@example.org"),
        ("email", "eve@example.org\r\nBcc: everyone@example.org"),
        ("email", "not-an-address"),
    ):
        form = {"form_token": live_site.form_token(), "email": "eve@example.org", "language": "en"}
        response = live_site.post_form({**form, field: value})
        assert response.status_code == 400, (field, value)
        assert 'role="alert"' in response.text
    assert live_site.people.get("eve@example.org") is None and live_site.handler.messages == []


def test_sign_ups_are_rate_limited_per_client(live_site):
    statuses = []
    for n in range(live_site.settings.web.subscribe_per_hour + 1):
        form = {
            "form_token": live_site.form_token(),
            "email": f"r{n}@example.org",
            "language": "en",
        }
        statuses.append(live_site.post_form(form).status_code)
    assert statuses[:-1] == [200] * live_site.settings.web.subscribe_per_hour
    assert statuses[-1] == 429
    assert len(live_site.handler.messages) == live_site.settings.web.subscribe_per_hour


def test_a_sent_edition_is_viewable_without_any_recipients_token(live_site, mail_project):
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    message = live_site.handler.messages[0]
    view = re.search(
        r"https://news\.example\.org/digests/\S+", message.get_body(("plain",)).get_content()
    )
    path = urlsplit(view.group()).path
    page = requests.get(live_site.base + path)
    assert page.status_code == 200 and "This week at Mountain News" in page.text
    assert "token=" not in page.text and "%%" not in page.text
    assert (
        requests.get(f"{live_site.base}/digests/weekly-en/2020-01-01T09:00+05:45").status_code
        == 404
    )


def test_the_subscribe_form_follows_the_browser_language(live_site):
    page = requests.get(
        f"{live_site.base}/subscribe", headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )
    assert '<html lang="zh-CN">' in page.text and "订阅Mountain News" in page.text
    assert '<label for="email">电子邮件地址</label>' in page.text
    english = requests.get(
        f"{live_site.base}/subscribe", headers={"Accept-Language": "fr, en;q=0.5"}
    )
    assert '<html lang="en">' in english.text


def test_an_expired_confirmation_link_is_refused(live_site):
    person, _ = live_site.people.add_or_update("late@example.org", language="en", status=PENDING)[
        ::-1
    ]
    token = sign(
        live_site.secret, "confirm", person.id, "", email=person.email, expires=int(time.time()) - 1
    )
    response = requests.post(f"{live_site.base}/confirm?token={token}", data={"token": token})
    assert response.status_code == 400
    assert live_site.people.get("late@example.org").status == PENDING


def test_a_confirmation_the_mail_server_refuses_says_to_try_later(live_site):
    live_site.handler.refuse["later@example.org"] = "451 4.3.0 Try again later"
    form = {"form_token": live_site.form_token(), "email": "later@example.org", "language": "en"}
    response = live_site.post_form(form)
    assert response.status_code == 503
    assert "could not send the confirmation email" in response.text
    assert live_site.people.get("later@example.org").status == PENDING  # never active


def test_every_response_says_nosniff_over_http(live_site):
    for path in ("/healthz", "/feeds/rss.xml", "/subscribe", "/unsubscribe", "/no/such/page"):
        response = requests.get(live_site.base + path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path


# -- topics: checkboxes of the ones the digests name ------------------------------------


@pytest.fixture
def site_with_topics(mail_project, inbox, live_app):
    """Starts the example project's endpoints with one more digest, for English readers
    who chose one of ``topics`` (a YAML list's items)."""
    from pipeline.mailer import open_transport
    from pipeline.settings import load_settings
    from pipeline.store import Store
    from pipeline.web.app import create_app
    from tests.conftest import Site

    stores = []

    def start(topics: str = "Nepal, Climate, nepal") -> Site:
        config = mail_project / "config" / "pipeline.yaml"
        digest = (
            "  nepal-en:\n    title: Nepal this week\n    language: en\n"
            f"    audience:\n      languages: [en]\n      topics: [{topics}]\n\nchannels:"
        )
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("\nchannels:", "\n" + digest, 1), encoding="utf-8")
        settings = load_settings(config)
        stores.append(store := Store(settings.state, settings.site.url))
        app = create_app(settings, store, transport=lambda: open_transport(settings.email))
        return Site(live_app(app), settings, store, inbox[0])

    yield start
    for store in stores:
        store.close()


def form_inputs(page: str) -> list[tuple[str, str, str]]:
    """(type, name, value) of each input of the sign-up form, as a browser reads them."""
    from lxml import html

    form = html.fromstring(page).forms[0]
    return [(i.get("type", "text"), i.get("name"), i.get("value", "")) for i in form.inputs]


def test_the_form_offers_the_digests_topics_as_checkboxes(site_with_topics):
    site = site_with_topics()
    inputs = form_inputs(requests.get(f"{site.base}/subscribe").text)
    boxes = [(name, value) for kind, name, value in inputs if kind == "checkbox"]
    assert boxes == [("topics", "Nepal"), ("topics", "Climate")]  # config order, once each
    assert not [i for i in inputs if i[1] == "topics" and i[0] != "checkbox"]  # no free text


def test_the_example_form_asks_for_no_topics_when_no_digest_has_any(live_site):
    page = requests.get(f"{live_site.base}/subscribe").text
    assert [i for i in form_inputs(page) if i[1] == "topics"] == []
    assert "Topics" not in page


def test_ticked_topics_are_stored_as_configured(site_with_topics):
    site = site_with_topics()
    session = requests.Session()
    form = {
        "form_token": site.form_token(session),
        "email": "ticks@example.org",
        "language": "en",
        "topics": ["climate", "Nepal", "Nepal"],  # a browser posts one field per ticked box
    }
    assert site.post_form(form, session).status_code == 200
    assert site.people.get("ticks@example.org").topics == ("Climate", "Nepal")


def test_a_topic_not_offered_is_refused_and_nothing_is_stored(site_with_topics):
    site = site_with_topics()
    session = requests.Session()
    form = {
        "form_token": site.form_token(session),
        "email": "forged@example.org",
        "language": "en",
        "topics": ["Nepal", "Sports"],
    }
    response = site.post_form(form, session)
    assert response.status_code == 400
    assert "Choose topics from the list." in response.text
    ticked = html_checked(response.text)
    assert ticked == ["Nepal"]  # what they ticked stays ticked, the unknown one is gone
    assert site.people.get("forged@example.org") is None
    assert site.handler.messages == []


def test_every_offered_topic_can_be_ticked_at_once(site_with_topics):
    """One form field per ticked box: 40 topics and the other fields still post."""
    site = site_with_topics(", ".join(f"t{n}" for n in range(40)))
    session = requests.Session()
    form = {
        "form_token": site.form_token(session),
        "email": "all@example.org",
        "language": "en",
        "topics": [f"t{n}" for n in range(40)],
    }
    assert site.post_form(form, session).status_code == 200
    assert len(site.people.get("all@example.org").topics) == 40


def html_checked(page: str) -> list[str]:
    from lxml import html

    form = html.fromstring(page).forms[0]
    return [i.get("value") for i in form.inputs if i.get("type") == "checkbox" and i.checked]
