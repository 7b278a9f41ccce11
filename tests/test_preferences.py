"""The preference page every digest links to: the link in both parts of every digest,
a GET that changes nothing, unticking a digest, language and topics and a pause that
the next edition follows, unsubscribing from everything and coming back only through a
confirmation, and every forged, cross-site or other-purpose request refused. Mail is
judged as the SMTP server received it (tests/rawmail.py)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import unquote

import pytest

from pipeline.subscribers import ACTIVE, UNSUBSCRIBED
from pipeline.tokens import sign
from tests.conftest import invoke
from tests.prefs_site import Prefs, configure, prefs_web
from tests.rawmail import inbox as inbox  # the raw-bytes SMTP server for mail_project
from tests.rawmail import split, unfolded

NOV_1 = dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC).timestamp()
BROKEN = "This link does not work"
LINK = re.compile(r"https://news\.example\.org/preferences\?token=([\w.%-]+)")


@pytest.fixture
def prefs(mail_project, inbox):
    """The example project (four subscribers, a digest for readers of Nepal or Climate
    besides weekly-en and monthly-zh) in-process on a clock set to 1 November 2026."""
    configure(mail_project, topics=True)
    site = prefs_web(mail_project)
    site.now[0] = NOV_1
    site.handler = inbox[0]
    yield site
    site.store.close()


def recipients(site: Prefs, start: int = 0) -> list[str]:
    """The To address of each message the SMTP server received since ``start``."""
    found = []
    for raw in site.handler.raw[start:]:
        to = unfolded(split(raw).fields["to"])
        found.append(re.search(r"[\w.]+@example\.org", to).group())
    return found


def state(site: Prefs, email: str):
    person = site.people.get(email)
    return person, site.people.left(person.id)


def test_every_digest_links_to_the_preference_page_in_both_parts(prefs, mail_project):
    for digest in ("weekly-en", "monthly-zh"):
        assert invoke(mail_project, "digest", "send", digest).exit_code == 0
    assert len(prefs.handler.raw) == 4
    for raw in prefs.handler.raw:
        message = split(raw)
        to = re.search(r"[\w.]+@example\.org", unfolded(message.fields["to"])).group()
        text, html = message.parts["text/plain"], message.parts["text/html"]
        chinese = to == "li.wen@example.org"
        label = "管理订阅" if chinese else "Manage your subscription"
        (in_text,) = LINK.findall(text)
        assert f"{label}{'：' if chinese else ': '}https://news.example.org/preferences" in text
        (in_html,) = re.findall(
            r'href="https://news\.example\.org/preferences\?token=([^"]+)"', html
        )
        assert re.search(rf'preferences\?token={re.escape(in_html)}"[^>]*>{label}</a>', html)
        assert unquote(in_text) == unquote(in_html.replace("&amp;", "&"))
        page = prefs.get("/preferences", f"token={in_text}")  # the link opens their page
        assert page.status == 200 and f"{to} " in page.text


def test_a_get_changes_nothing(prefs):
    before = state(prefs, "pema@example.org")
    for _ in range(3):
        page = prefs.page("pema@example.org")
        assert page.status == 200
    assert prefs.get("/preferences", f"token={prefs.token('pema@example.org')}&action=leave_all")
    assert state(prefs, "pema@example.org") == before
    assert prefs.handler.raw == []
    assert page.headers["referrer-policy"] == "same-origin"  # the token goes to no other site
    assert page.headers["cache-control"] == "no-store"


def test_unticking_leaves_only_that_digest_and_ticking_rejoins_it(prefs):
    page = prefs.page("pema@example.org").text
    assert 'value="weekly-en" checked>This week at Mountain News' in page
    assert 'value="nepal-en" checked>Nepal this week' in page
    assert "山地新闻月报" not in page  # not for an English reader
    kept = [("lists", "nepal-en"), ("language", "en"), ("topics", "Nepal"), ("pause", "0")]
    done = prefs.submit("pema@example.org", kept)
    assert done.status == 200 and "Your preferences are saved" in done.text
    back = f'<a href="/preferences?token={prefs.token("pema@example.org")}">Manage your'
    assert back in done.text  # and back to the page
    person, left = state(prefs, "pema@example.org")
    assert left == {"weekly-en"} and person.status == ACTIVE
    digests = prefs.digests()
    assert "pema@example.org" not in [s.email for s in digests.audience("weekly-en")]
    assert "pema@example.org" in [s.email for s in digests.audience("nepal-en")]
    assert 'value="weekly-en">This week' in prefs.page("pema@example.org").text  # unticked
    prefs.submit("pema@example.org", [*kept, ("lists", "weekly-en")])
    assert state(prefs, "pema@example.org")[1] == set()


def test_language_and_topic_changes_take_effect_on_the_next_edition(prefs):
    chinese = [("language", "zh-CN"), ("pause", "0"), ("lists", "weekly-en")]
    assert prefs.submit("anna@example.org", chinese).status == 200
    nepal = [("language", "en"), ("topics", "Nepal"), ("lists", "weekly-en"), ("pause", "0")]
    assert prefs.submit("sonam@example.org", nepal).status == 200
    sonam = prefs.people.get("sonam@example.org")
    assert sonam.topics == ("Bhutan", "Nepal")  # a topic the page never showed is kept
    digests = prefs.digests()
    for name in ("weekly-en", "monthly-zh", "nepal-en"):
        digests.send(name)
    got = recipients(prefs)
    weekly = ["pema@example.org", "sonam@example.org"]
    monthly = ["li.wen@example.org", "anna@example.org"]  # anna now reads Chinese
    nepal = ["pema@example.org", "sonam@example.org"]  # sonam now chose Nepal
    assert sorted(got) == sorted([*weekly, *monthly, *nepal])
    anna = [split(r) for r in prefs.handler.raw if b"anna@example.org" in r]
    assert [unfolded(m.fields["content-language"]) for m in anna] == ["zh-CN"]


def test_a_pause_skips_the_next_edition_and_ends_on_its_date(prefs, mail_project):
    done = prefs.submit(
        "pema@example.org",
        [
            ("lists", "weekly-en"),
            ("lists", "nepal-en"),
            ("language", "en"),
            ("topics", "Nepal"),
            ("pause", "2"),
        ],
    )
    assert done.status == 200
    person = prefs.people.get("pema@example.org")
    assert person.paused_until == dt.datetime(2026, 11, 15, 6, 0)  # two weeks on the clock
    page = prefs.page("pema@example.org").text
    assert "Your digests are paused until 15 November 2026." in re.sub(r"<[^>]+>", "", page)
    assert '<option value="keep">Stay paused until 15 November 2026</option>' in page
    assert page.index('value="keep"') < page.index('value="0"')  # the default: as it is
    prefs.digests().send("weekly-en")
    assert sorted(recipients(prefs)) == ["anna@example.org", "sonam@example.org"]
    assert (
        prefs.submit(
            "pema@example.org",
            [
                ("lists", "weekly-en"),
                ("lists", "nepal-en"),
                ("language", "en"),
                ("topics", "Nepal"),
                ("pause", "keep"),
            ],
        ).status
        == 200
    )
    assert prefs.people.get("pema@example.org").paused_until == person.paused_until
    article = mail_project / "examples" / "site" / "news" / "2026-11-20-pause.md"
    article.write_text(
        "---\ntitle: After the pause\ndate: 2026-11-20T08:00:00+05:45\n"
        "author: Test Writer\n---\nBody.\n",
        encoding="utf-8",
    )
    assert invoke(mail_project, "ingest").exit_code == 0
    prefs.now[0] = dt.datetime(2026, 11, 15, 6, 0, 1, tzinfo=dt.UTC).timestamp()
    start = len(prefs.handler.raw)
    prefs.digests().send("weekly-en")
    assert sorted(recipients(prefs, start)) == [
        "anna@example.org",
        "pema@example.org",
        "sonam@example.org",
    ]
    assert "paused until" not in prefs.page("pema@example.org").text


def test_unsubscribing_from_everything_and_coming_back_only_by_confirmation(prefs):
    done = prefs.submit("anna@example.org", [], action="leave_all")
    assert done.status == 200 and "You are unsubscribed" in done.text
    assert prefs.people.get("anna@example.org").status == UNSUBSCRIBED
    page = prefs.page("anna@example.org").text
    assert "Subscribe again" in page and "Save preferences" not in page
    assert "anna@example.org receives no digests from Mountain News" in page
    back = prefs.submit("anna@example.org", [], action="come_back")
    assert back.status == 200 and "Check your inbox" in back.text
    (raw,) = prefs.handler.raw
    mail = split(raw)
    assert unfolded(mail.fields["subject"]) == "Confirm your subscription to Mountain News"
    assert "anna@example.org" in unfolded(mail.fields["to"])
    assert prefs.people.get("anna@example.org").status == UNSUBSCRIBED  # not yet
    assert "anna@example.org" not in [s.email for s in prefs.digests().audience("weekly-en")]
    token = re.search(r"/confirm\?token=(\S+)", mail.parts["text/plain"]).group(1)
    confirmed = prefs.post("/confirm", {"token": unquote(token)})
    assert confirmed.status == 200 and "You are subscribed" in confirmed.text
    assert prefs.people.get("anna@example.org").status == ACTIVE
    assert "anna@example.org" in [s.email for s in prefs.digests().audience("weekly-en")]


def test_someone_who_left_every_digest_is_offered_to_come_back(prefs):
    prefs.submit("anna@example.org", [("language", "en"), ("pause", "0")])  # nothing ticked
    assert state(prefs, "anna@example.org")[1] == {"weekly-en"}
    page = prefs.page("anna@example.org").text
    assert "Subscribe again" in page and "Save preferences" in page
    assert prefs.submit("anna@example.org", [], action="come_back").status == 200
    assert recipients(prefs) == ["anna@example.org"]
    assert state(prefs, "anna@example.org")[1] == {"weekly-en"}  # until confirmed


def test_cross_site_and_forged_posts_are_refused_and_change_nothing(prefs):
    before = state(prefs, "pema@example.org")
    page = prefs.page("pema@example.org").text
    form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    token = prefs.token("pema@example.org")
    form = [("token", token), ("form_token", form_token), ("action", "leave_all")]
    for origin in ("https://evil.example", "null", None):
        answer = prefs.post_pairs("/preferences", form, f"token={token}", origin=origin)
        assert answer.status == 403, origin
    no_form_token = [("token", token), ("action", "leave_all")]
    assert prefs.post_pairs("/preferences", no_form_token, f"token={token}").status == 403
    huge = [*form, ("topics", "x" * 20_000)]
    assert prefs.post_pairs("/preferences", huge, f"token={token}").status == 413
    many = [*form, *[("topics", "Nepal")] * 200]
    assert prefs.post_pairs("/preferences", many, f"token={token}").status == 400
    assert state(prefs, "pema@example.org") == before


def test_tokens_of_other_purposes_expired_or_forged_are_refused(prefs):
    pema = prefs.people.get("pema@example.org")
    others = [
        sign(prefs.secret, "unsubscribe", pema.id, "weekly-en", email=pema.email),
        sign(prefs.secret, "confirm", pema.id, "", email=pema.email),
        sign(prefs.secret, "preferences", pema.id, "", email=pema.email, expires=int(NOV_1) - 1),
        sign(prefs.secret, "preferences", pema.id, "", email="someone.else@example.org"),
        sign("another secret", "preferences", pema.id, "", email=pema.email),
        "",
    ]
    for token in others:
        page = prefs.get("/preferences", f"token={token}")
        assert page.status == 400 and BROKEN in page.text, token
    own = prefs.token("pema@example.org")
    unsubscribe = prefs.post("/unsubscribe", {"List-Unsubscribe": "One-Click"}, f"token={own}")
    assert unsubscribe.status == 400  # nor does it work as an unsubscribe link
    assert state(prefs, "pema@example.org")[1] == set()


@pytest.mark.parametrize(
    "field, value",
    [("lists", "no-such-digest"), ("language", "fr"), ("topics", "Bhutan"), ("pause", "3")],
)
def test_values_the_page_never_offered_are_refused(prefs, field, value):
    before = state(prefs, "pema@example.org")
    form = [("lists", "weekly-en"), ("language", "en"), ("pause", "0"), (field, value)]
    answer = prefs.submit("pema@example.org", form)
    assert answer.status == 400 and 'role="alert"' in answer.text
    assert state(prefs, "pema@example.org") == before


def test_a_chinese_reader_has_the_page_and_its_answer_in_chinese(prefs):
    page = prefs.page("li.wen@example.org", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in page.text and "<h1>您的订阅</h1>" in page.text
    assert 'value="monthly-zh" checked>山地新闻月报' in page.text
    done = prefs.submit(
        "li.wen@example.org", [("lists", "monthly-zh"), ("language", "zh-CN"), ("pause", "1")]
    )
    assert done.status == 200 and "设置已保存" in done.text
    assert prefs.people.get("li.wen@example.org").paused_until == dt.datetime(2026, 11, 8, 6)


def test_a_projects_own_page_template_still_frames_the_preference_page(mail_project, inbox):
    """A project that copied web/page.html.j2 before the preference page existed keeps
    it: the page fills that template's blocks."""
    from pipeline.templating import packaged_folder

    own = mail_project / "templates" / "web" / "page.html.j2"
    own.parent.mkdir(parents=True)
    packaged = (packaged_folder() / "web" / "page.html.j2").read_text(encoding="utf-8")
    own.write_text(packaged.replace("<main>", "<main data-ours>"), encoding="utf-8")
    site = prefs_web(mail_project)
    page = site.page("anna@example.org")
    assert page.status == 200 and "<main data-ours>" in page.text
    assert "Save preferences" in page.text
    site.store.close()
