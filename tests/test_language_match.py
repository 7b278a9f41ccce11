"""Subscribers' languages match digests by RFC 4647 basic filtering: a reader of ``zh``
gets the ``zh-CN`` digest, and an active subscriber no digest reaches is pointed out."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from pipeline.schema import suppressions
from pipeline.settings.email import AudienceSettings, DigestSettings
from pipeline.store import Store
from pipeline.subscribers import (
    PENDING,
    SubscriberStore,
    in_audience,
    language_matches,
    unreached_message,
)
from tests.conftest import invoke


@pytest.mark.parametrize(
    ("first", "second", "match"),
    [
        ("zh", "zh-CN", True),  # a reader of any Chinese takes the zh-CN digest
        ("zh-CN", "zh", True),  # and a digest for any Chinese takes a zh-CN reader
        ("en", "en-GB", True),
        ("zh-TW", "zh-CN", False),
        ("zh-Hant", "zh-Hant-TW", True),
        ("zh-Hans", "zh-Hant", False),
        ("ZH", "zh-cn", True),  # case never matters
        ("en", "eng", False),  # a prefix only counts up to a "-"
        ("en-GB", "en-US", False),
        ("en", "en", True),
        ("fr", "en", False),
        ("*", "fr", True),  # the wildcard range
    ],
)
def test_languages_match_by_basic_filtering(first, second, match):
    assert language_matches(first, second) is match
    assert language_matches(second, first) is match


SUBTAG = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=1,
    max_size=8,
)
TAG = st.lists(SUBTAG, min_size=1, max_size=4).map("-".join)


@given(TAG, SUBTAG, SUBTAG)
def test_a_range_matches_every_longer_tag_of_it_and_no_sibling(tag, one, other):
    assert language_matches(tag, f"{tag}-{one}")
    assert language_matches(tag.upper(), f"{tag}-{one}".lower())
    if one.lower() != other.lower():
        assert not language_matches(f"{tag}-{one}", f"{tag}-{other}")
    # a tag that only starts with the same letters is another language
    assert not language_matches(tag, tag + one)


# -- who a digest reaches, in the state store ---------------------------------------------


def digest(language: str, *languages: str, topics: tuple[str, ...] = ()) -> DigestSettings:
    return DigestSettings(
        title=f"Digest {language}",
        language=language,
        audience=AudienceSettings(languages=languages, topics=topics),
    )


@pytest.fixture
def people(store_url, site):
    store = Store(store_url, site.url)
    yield SubscriberStore(store.engine)
    store.close()


def test_a_digest_reaches_the_readers_its_language_matches(people):
    for address, language in [
        ("zh@example.org", "zh"),
        ("cn@example.org", "zh-CN"),
        ("tw@example.org", "zh-TW"),
        ("en@example.org", "en"),
        ("gb@example.org", "en-GB"),
    ]:
        people.add_or_update(address, language=language)
    assert [s.email for s in people.audience(("zh-CN",))] == ["cn@example.org", "zh@example.org"]
    assert [s.email for s in people.audience(("en-GB",))] == ["en@example.org", "gb@example.org"]
    assert [s.email for s in people.audience(("zh",))] == [
        "cn@example.org",
        "tw@example.org",
        "zh@example.org",
    ]


def test_active_subscribers_no_digest_reaches_are_listed(people):
    digests = {
        "weekly-en": digest("en", "en"),
        "monthly-zh": digest("zh-CN", "zh-CN"),
        "nepal": digest("en", "en", topics=("Nepal",)),
    }
    people.add_or_update("zh@example.org", language="zh")
    people.add_or_update("tw@example.org", language="zh-TW", topics=["Nepal"])
    people.add_or_update("fr@example.org", language="fr")
    people.add_or_update("waiting@example.org", language="fr", status=PENDING)  # not active
    unreached = people.unreached(digests)
    assert [s.email for s in unreached] == ["fr@example.org", "tw@example.org"]
    message = unreached_message(unreached[1], digests)
    assert message == (
        "tw@example.org is active but no digest reaches them (language zh-TW, topics Nepal); "
        "digests: weekly-en (en), monthly-zh (zh-CN), nepal (en; topics Nepal)"
    )
    assert "no digests are configured" in unreached_message(unreached[0], {})
    assert people.unreached({"all": digest("en")}) == []  # no audience languages: everyone


# -- end to end: the import warns, the SMTP server receives --------------------------------


def test_import_warns_about_rows_no_digest_reaches_and_zh_gets_the_zh_cn_digest(
    mail_project, inbox
):
    handler, _ = inbox
    recipients: list[list[str]] = []
    original = handler.handle_DATA

    async def record(server, session, envelope):  # the envelope: where the mail really goes
        recipients.append(list(envelope.rcpt_tos))
        return await original(server, session, envelope)

    handler.handle_DATA = record
    csv = mail_project / "more.csv"
    csv.write_text(
        "email,name,language,topics\n"
        "zhong@example.org,钟,zh,\n"
        "taipei@example.org,台北,zh-TW,\n"
        "london@example.org,London,en-GB,\n",
        encoding="utf-8",
    )
    result = invoke(mail_project, "subscribers", "import", str(csv))
    assert result.exit_code == 0, result.output + result.stderr  # imported all the same
    assert "3 added" in result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "more.csv:3: taipei@example.org is active but no digest reaches them" in warnings[0]
    assert "language zh-TW" in warnings[0] and "monthly-zh (zh-CN)" in warnings[0]

    assert invoke(mail_project, "digest", "send", "monthly-zh").exit_code == 0
    got = sorted(address for rcpt in recipients for address in rcpt)
    assert got == ["li.wen@example.org", "zhong@example.org"]
    recipients.clear()
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    assert "london@example.org" in [address for rcpt in recipients for address in rcpt]


def test_check_warns_about_active_subscribers_no_digest_reaches(project):
    root = project()
    assert "reaches them" not in invoke(root, "check").stderr  # no store yet: none made
    assert not (root / "var").exists()  # not even its folder
    csv = root / "people.csv"
    csv.write_text(
        "email,name,language\nanna@example.org,Anna,en\ntaipei@example.org,台北,zh-TW\n",
        encoding="utf-8",
    )
    assert invoke(root, "subscribers", "import", str(csv)).exit_code == 0
    result = invoke(root, "check")
    assert result.exit_code == 0, result.output + result.stderr
    warned = [line for line in result.stderr.splitlines() if "no digest reaches" in line]
    assert len(warned) == 1 and "taipei@example.org" in warned[0]


# -- the audience query agrees with the definition ------------------------------------------

POPULATION = [  # (language, topics, how they stand)
    ("zh", ("Nepal",), ""),
    ("zh-CN", (), ""),
    ("zh-TW", ("climate",), ""),
    ("zh-Hant", (), ""),
    ("zh-Hant-TW", ("Nepal", "Climate"), ""),
    ("en", (), ""),
    ("en-GB", ("nepal",), ""),
    ("en-US", (), "paused"),
    ("en-US", (), "pause ended"),
    ("en", ("Nepal",), "left"),
    ("en-GB", (), "suppressed"),
    ("eng", (), ""),
    ("fr", ("Nepal",), ""),
    ("fr-CA", (), "pending"),
]
WANTED = st.lists(
    st.sampled_from(["zh", "zh-CN", "zh-Hant", "zh-hant-tw", "EN", "en-GB", "en-gb-x", "fr", "*"])
    | TAG,
    max_size=3,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(WANTED, st.lists(st.sampled_from(["Nepal", "NEPAL", "climate", "sport"]), max_size=2))
@example(["EN"], [])  # not "eng"
@example(["zh-hant-tw"], ["nepal"])  # its prefixes "zh" and "zh-Hant" too
def test_the_audience_is_exactly_who_the_matching_rules_take(people, languages, topics):
    """The database narrows the audience by language (pipeline.subscribers); the result
    is the same as applying ``in_audience`` to every active, unpaused, unsuppressed
    subscriber who has not left the digest."""
    now = people.clock()
    if not people.all():
        for n, (language, chosen, standing) in enumerate(POPULATION):
            status = PENDING if standing == "pending" else "active"
            _, person = people.add_or_update(
                f"p{n}@example.org", language=language, topics=chosen, status=status
            )
            if standing == "paused":
                people.set_preferences(
                    person.id,
                    language=language,
                    topics=chosen,
                    paused_until=now + dt.timedelta(days=7),
                )
            elif standing == "pause ended":
                people.set_preferences(
                    person.id, language=language, topics=chosen, paused_until=now
                )
            elif standing == "left":
                people.leave(person.id, "weekly")
            elif standing == "suppressed":
                with people.engine.begin() as conn:
                    conn.execute(
                        insert(suppressions).values(
                            address=person.email,
                            kind="bounce",
                            reason="5.1.1",
                            source="dsn",
                            created_at=now,
                        )
                    )
    standings = {f"p{n}@example.org": s for n, (_, _, s) in enumerate(POPULATION)}
    expected = [
        s.email
        for s in people.all()
        if standings[s.email] in ("", "pause ended") and in_audience(s, languages, topics)
    ]
    got = [s.email for s in people.audience(languages, topics, list_name="weekly")]
    assert got == expected
    # someone who left another digest still gets this one
    assert "p9@example.org" in [s.email for s in people.audience(("en",), (), list_name="monthly")]
