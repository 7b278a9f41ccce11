"""Subscribers and signed links."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pipeline.schema import subscribers
from pipeline.store import Store
from pipeline.subscribers import ACTIVE, BOUNCED, UNSUBSCRIBED, SubscriberStore
from pipeline.tokens import InvalidToken, link_secret, sign, verify


@pytest.fixture
def store(store_url, site):
    store = Store(store_url, site.url)
    yield store
    store.close()


@pytest.fixture
def people(store):
    return SubscriberStore(store.engine)


def write_csv(tmp_path, text):
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_validates_every_row_and_imports_the_rest(tmp_path, people):
    path = write_csv(
        tmp_path,
        "email,name,language,topics\n"
        "pema@example.org,Pema Gyamtsho,en,Nepal;biodiversity\n"
        "not-an-address,Nobody,en,\n"
        "li.wen@example.org,李文,zh_cn,China\n"
        "anna@example.org,Anna,klingon-language-x,\n"
        "PEMA@Example.org,Pema again,en,\n"
        "sonam@example.org,,,\n",
    )
    report = people.import_csv(path, default_language="en")
    assert (report.added, report.updated) == (3, 0)
    lines = {p.line: p.message for p in report.rejected}
    assert set(lines) == {3, 5, 6}
    assert "must have an @-sign" in lines[3]
    assert "language tag" in lines[5]
    assert "already on line 2" in lines[6]
    assert all(p.file.endswith("people.csv") for p in report.rejected)
    li = people.get("li.wen@example.org")
    assert (li.name, li.language, li.topics, li.status) == ("李文", "zh-CN", ("China",), ACTIVE)
    assert people.get("sonam@example.org").language == "en"  # the site's default


def test_a_name_with_a_line_break_is_refused_so_it_cannot_add_mail_headers(tmp_path, people):
    path = write_csv(
        tmp_path,
        'email,name\neve@example.org,"Eve\nBcc: everyone@example.org"\nok@example.org,Ok\n',
    )
    report = people.import_csv(path, default_language="en")
    (problem,) = report.rejected
    assert problem.line == 3 and "one line" in problem.message  # the row ends on line 3
    assert people.get("eve@example.org") is None and people.get("ok@example.org") is not None


def test_reimport_updates_instead_of_duplicating_and_never_resubscribes(tmp_path, people):
    people.import_csv(
        write_csv(tmp_path, "email,name\npema@example.org,Pema\nanna@example.org,Anna\n"), "en"
    )
    anna = people.get("anna@example.org")
    people.set_status(anna.id, UNSUBSCRIBED, "one-click unsubscribe")
    report = people.import_csv(
        write_csv(
            tmp_path,
            "email,name,language\npema@example.org,Pema G.,en\nanna@example.org,Anna B.,en\n",
        ),
        "en",
    )
    assert (report.added, report.updated) == (0, 2)
    assert report.kept_inactive == ["anna@example.org"]
    assert people.get("anna@example.org").status == UNSUBSCRIBED
    assert [s.email for s in people.all()] == ["anna@example.org", "pema@example.org"]


def test_a_file_without_an_email_column_is_refused(tmp_path, people):
    report = people.import_csv(write_csv(tmp_path, "name,language\nPema,en\n"), "en")
    (problem,) = report.rejected
    assert problem.line == 1 and "no `email` column" in problem.message


def test_audience_filters_by_language_and_topic_and_skips_inactive(people):
    people.add_or_update("a@example.org", language="en", topics=["Nepal"])
    people.add_or_update("b@example.org", language="zh-CN", topics=["China", "climate"])
    people.add_or_update("c@example.org", language="en", topics=["climate"])
    _, d = people.add_or_update("d@example.org", language="en", topics=["climate"])
    people.set_status(d.id, BOUNCED, "550 5.1.1 no such user")
    assert [s.email for s in people.audience()] == [
        "a@example.org",
        "b@example.org",
        "c@example.org",
    ]
    assert [s.email for s in people.audience(languages=["en"])] == [
        "a@example.org",
        "c@example.org",
    ]
    assert [s.email for s in people.audience(topics=["CLIMATE"])] == [
        "b@example.org",
        "c@example.org",
    ]


def test_remove_deletes_personal_data(people):
    people.add_or_update("a@example.org", name="A", language="en")
    assert people.remove("A@example.org")
    assert people.get("a@example.org") is None and not people.remove("a@example.org")


def test_tokens_cannot_be_forged_altered_or_reused(store):
    secret = link_secret(None, store)
    assert secret == link_secret(None, store)  # generated once, kept
    token = sign(secret, "unsubscribe", 7, "weekly-en")
    claims = verify(secret, token, "unsubscribe")
    assert (claims.subscriber_id, claims.list_name) == (7, "weekly-en")
    _body, signature = token.split(".")
    import base64
    import json

    forged_body = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"p": "unsubscribe", "s": 8, "l": "weekly-en"},
                separators=(",", ":"),
                sort_keys=True,
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    for bad in (f"{forged_body}.{signature}", token[:-2] + "xx", "garbage", "", token + ".x"):
        with pytest.raises(InvalidToken):
            verify(secret, bad, "unsubscribe")
    # The same signature bytes written another way (a final character's spare bits set):
    # only the text sign() wrote is accepted, so no link has a second spelling.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert base64.urlsafe_b64decode(respelled.split(".")[1] + "=") == base64.urlsafe_b64decode(
        signature + "="
    )
    with pytest.raises(InvalidToken, match="signature"):
        verify(secret, respelled, "unsubscribe")
    with pytest.raises(InvalidToken, match="not 'confirm'"):
        verify(secret, token, "confirm")
    with pytest.raises(InvalidToken):
        verify("another-secret", token, "unsubscribe")


def test_an_oversize_line_is_rejected_by_its_number_and_the_rest_imported(tmp_path, people):
    """A field over csv's 128 KB limit ended the import with csv.Error (a traceback in
    the CLI); any line over 64 KB is now a located rejection of that line."""
    path = write_csv(
        tmp_path,
        "email,name,language,topics\n"
        "pema@example.org,Pema,en,Nepal\n"
        f"anna@example.org,{'x' * 200_000},en,\n"
        f"sonam@example.org,Sonam,en,{'y' * 70_000}\n"
        "li.wen@example.org,李文,zh-CN,China\n",
    )
    report = people.import_csv(path, default_language="en")
    assert report.added == 2
    assert [(p.line, p.message) for p in report.rejected] == [
        (3, "line is 200,022 characters long; a row may have 65,536"),
        (4, "line is 70,028 characters long; a row may have 65,536"),
    ]
    assert {s.email for s in people.all()} == {"pema@example.org", "li.wen@example.org"}


def test_an_unclosed_quote_swallowing_a_huge_field_is_rejected_not_raised(tmp_path, people):
    """Many short lines inside one quoted field still exceed csv's limit: rejected with
    the line where the row began, and nothing after it is taken for rows."""
    body = "\n".join("z" * 1000 for _ in range(200))
    path = write_csv(tmp_path, f'email,name\npema@example.org,Pema\nanna@example.org,"{body}\n')
    report = people.import_csv(path, default_language="en")
    assert report.added == 1
    (problem,) = report.rejected
    assert problem.line == 3 and "field larger than field limit" in problem.message
    assert "lines after it were not read" in problem.message and "quote" in problem.hint


def test_values_wider_than_their_columns_are_rejected_by_line(tmp_path, people):
    """PostgreSQL refuses a name over 200 characters (the whole import then failed with a
    traceback); SQLite kept it. Both now reject that row."""
    path = write_csv(tmp_path, f"email,name\npema@example.org,{'P' * 201}\nanna@example.org,Anna\n")
    report = people.import_csv(path, default_language="en")
    assert report.added == 1
    (problem,) = report.rejected
    assert (problem.line, problem.message) == (
        2,
        "the name is 201 characters long; at most 200 fit",
    )
    assert people.get("pema@example.org") is None


def test_records_are_dated_by_the_injected_clock_in_utc(store):
    nepal = dt.timezone(dt.timedelta(hours=5, minutes=45))
    now = [dt.datetime(2026, 11, 23, 9, 0, tzinfo=nepal)]  # aware, in any zone
    people = SubscriberStore(store.engine, clock=lambda: now[0])
    _, anna = people.add_or_update("anna@example.org", language="en")
    now[0] += dt.timedelta(days=2)
    people.set_status(anna.id, UNSUBSCRIBED, "left")
    with store.engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == anna.id)).one()
    assert row.created_at == dt.datetime(2026, 11, 23, 3, 15)  # naive UTC in the column
    assert row.updated_at == dt.datetime(2026, 11, 25, 3, 15)
