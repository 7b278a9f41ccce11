"""Subscriber import from other tools' exports, in bulk, and the subscriber commands
add, show, export and list, on both databases."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from pipeline.cli.app import Project
from pipeline.schema import list_unsubscribes, subscribers, suppressions
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscriber_export import records
from pipeline.subscribers import ACTIVE, BOUNCED, PENDING, UNSUBSCRIBED, SubscriberStore
from tests.conftest import invoke

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def people(store):
    return SubscriberStore(store.engine, clock=lambda: NOW)


@pytest.fixture
def root(project, monkeypatch):
    monkeypatch.setattr(Project, "clock", lambda project: NOW)
    return project(with_examples=False)


def opened(root: Path):
    settings = load_settings(root / "config" / "pipeline.yaml")
    return settings, Store(settings.state, settings.site.url)


def suppress(store: Store, address: str, kind: str, reason: str, source: str) -> None:
    """As a bounce or complaint report leaves it (pipeline.suppression)."""
    with store.engine.begin() as conn:
        conn.execute(
            insert(suppressions).values(
                address=address,
                kind=kind,
                reason=reason,
                source=source,
                created_at=dt.datetime(2026, 1, 1),
            )
        )


def fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copy(FIXTURES / name, tmp_path / name))


# -- other tools' exports ------------------------------------------------------------------


def test_a_mailchimp_export_imports_without_edits(root, tmp_path):
    result = invoke(
        root, "subscribers", "import", str(fixture("mailchimp_subscribed_members.csv", tmp_path))
    )
    assert result.exit_code == 0, result.output
    assert "read as a Mailchimp export" in result.output
    assert "4 added, 0 updated, 0 unchanged" in result.output
    _settings, store = opened(root)
    people = SubscriberStore(store.engine)
    pema = people.get("pema.gyamtsho@example.org")
    assert (pema.name, pema.language, pema.topics, pema.status) == (
        "Pema Gyamtsho",
        "en",  # Mailchimp exports no language: the site's
        ("Nepal", "climate"),
        ACTIVE,
    )
    # the confirmation of the double opt-in, in UTC, and where it came from
    assert (pema.consent_source, pema.consent_at) == (
        "imported from Mailchimp",
        dt.datetime(2024, 3, 1, 9, 15, 40),
    )
    assert pema.created_at == NOW.replace(tzinfo=None)
    assert people.get("li.wen@example.org").name == "文 李"
    assert people.get("sonam@example.org").name == "Sonam"
    store.close()


def test_mailchimp_unsubscribed_and_cleaned_exports_never_make_anyone_active(root, tmp_path):
    for name in ("mailchimp_subscribed_members.csv", "mailchimp_unsubscribed_members.csv"):
        result = invoke(root, "subscribers", "import", str(fixture(name, tmp_path)))
        assert result.exit_code == 0, result.output
    assert "not mailed: karma@example.org (unsubscribed in the Mailchimp export)" in result.output
    cleaned = invoke(
        root, "subscribers", "import", str(fixture("mailchimp_cleaned_members.csv", tmp_path))
    )
    assert cleaned.exit_code == 0, cleaned.output
    # the subscribed file again (an old copy): Anna left in Mailchimp and stays out
    again = invoke(
        root, "subscribers", "import", str(fixture("mailchimp_subscribed_members.csv", tmp_path))
    )
    assert "kept unsubscribed/bounced: anna.berg@example.org" in again.output
    _settings, store = opened(root)
    people = SubscriberStore(store.engine)
    statuses = {s.email: s.status for s in people.all()}
    assert statuses["karma@example.org"] == UNSUBSCRIBED  # new, imported as unsubscribed
    assert statuses["anna.berg@example.org"] == UNSUBSCRIBED  # was active here; left there
    assert statuses["old.address@example.org"] == BOUNCED
    assert statuses["pema.gyamtsho@example.org"] == ACTIVE
    audience = [s.email for s in people.audience(("en",))]
    assert "anna.berg@example.org" not in audience and "karma@example.org" not in audience
    store.close()


def test_listmonk_export_keeps_status_attributes_and_date(people, tmp_path):
    report = people.import_csv(fixture("listmonk_subscribers.csv", tmp_path), "en")
    assert (report.tool, report.added, report.rejected) == ("listmonk", 3, [])
    dawa = people.get("dawa@example.org")
    assert (dawa.topics, dawa.consent_source, dawa.consent_at) == (
        ("Nepal", "mountaineering"),
        "imported from listmonk",
        dt.datetime(2023, 8, 14, 6, 45, 10, 123456),
    )
    assert people.get("mei.lin@example.org").language == "zh-CN"
    assert people.get("blocked@example.org").status == UNSUBSCRIBED


def test_buttondown_export_maps_subscriber_types(people, tmp_path):
    report = people.import_csv(fixture("buttondown_subscribers.csv", tmp_path), "en")
    assert (report.tool, report.added, report.rejected) == ("Buttondown", 4, [])
    nima = people.get("nima@example.org")
    assert (nima.name, nima.topics, nima.status, nima.consent_at) == (
        "Nima Lhamo",
        ("Nepal", "climate"),
        ACTIVE,
        dt.datetime(2024, 4, 18, 7, 21, 4, 512312),
    )
    assert people.get("waiting@example.org").status == PENDING  # never confirmed
    assert people.get("gone@example.org").status == UNSUBSCRIBED
    assert people.get("dead.mailbox@example.org").status == BOUNCED


def test_a_suppressed_address_in_an_export_stays_inactive(store, people, tmp_path):
    suppress(store, "sonam@example.org", "bounce", "550 5.1.1 no such user", "dsn")
    report = people.import_csv(fixture("mailchimp_subscribed_members.csv", tmp_path), "en")
    assert people.get("sonam@example.org").status == BOUNCED
    assert report.suppressed == [
        "sonam@example.org (suppressed after a bounce (dsn): 550 5.1.1 no such user)"
    ]


def test_an_unknown_header_names_the_file_the_header_and_the_map_fix(root, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("E-Mail,Full name,Sprache\npema@example.org,Pema,en\n", encoding="utf-8")
    result = invoke(root, "subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "crm.csv:1: no `email` column: the header `E-Mail,Full name,Sprache`" in result.output
    assert '--map "email=E-Mail,name=Name"' in result.output
    mapped = invoke(
        root,
        "subscribers",
        "import",
        str(path),
        "--map",
        "email=E-Mail,name=Full name,language=Sprache",
    )
    assert mapped.exit_code == 0, mapped.output
    assert "1 added" in mapped.output
    _settings, store = opened(root)
    assert SubscriberStore(store.engine).get("pema@example.org").name == "Pema"
    store.close()


def test_a_map_naming_an_unknown_field_or_column_is_refused(root, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("E-Mail\npema@example.org\n", encoding="utf-8")
    bad_field = invoke(root, "subscribers", "import", str(path), "--map", "mail=E-Mail")
    assert bad_field.exit_code == 2 and "unknown field 'mail'" in bad_field.output
    bad_column = invoke(root, "subscribers", "import", str(path), "--map", "email=Email")
    assert bad_column.exit_code == 1
    assert "crm.csv:1: --map email=Email: the header has no column 'Email'" in bad_column.output


def test_a_big_file_is_imported_in_bulk_with_bad_rows_named(people, tmp_path):
    lines = ["email,name,language,topics"]
    for n in range(3000):
        lines.append(f"reader{n}@example.org,Reader {n},en,Nepal")
    lines[1001] = "not-an-address,Nobody,en,"
    lines[2001] = "reader5@example.org,Twice,en,"  # already on line 7
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = people.import_csv(path, "en")
    assert (report.added, report.updated) == (2998, 0)
    assert [(p.line, p.message.split(":")[0]) for p in report.rejected] == [
        (1002, "An email address must have an @-sign."),
        (2002, "reader5@example.org is already on line 7"),
    ]
    assert len(people.all()) == 2998
    again = people.import_csv(path, "en")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2998)


# -- export and the round trip ---------------------------------------------------------------


def test_an_export_imported_into_an_empty_store_gives_the_same_subscribers(root, tmp_path):
    people_csv = tmp_path / "people.csv"
    people_csv.write_text(
        "email,name,language,topics\n"
        "pema@example.org,Pema Gyamtsho,en,Nepal;climate\n"
        'anna@example.org,"Berg, Anna",en,\n'
        "li.wen@example.org,李文,zh-CN,China\n"
        "sonam@example.org,Sonam,en,\n",
        encoding="utf-8",
    )
    assert invoke(root, "subscribers", "import", str(people_csv)).exit_code == 0
    settings, store = opened(root)
    people = SubscriberStore(store.engine)
    anna, sonam = people.get("anna@example.org"), people.get("sonam@example.org")
    people.leave(anna.id, "weekly-en")
    people.set_status(sonam.id, BOUNCED, "550 5.1.1 no such user")
    with store.engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == "pema@example.org")
            .values(paused_until=dt.datetime(2026, 12, 24))
        )
    before = records(store.engine, settings.digests)
    store.close()
    exported = tmp_path / "export.csv"
    result = invoke(root, "subscribers", "export", "--output", str(exported))
    assert result.exit_code == 0, result.output
    assert "wrote 4 subscribers" in result.output

    settings, store = opened(root)
    with store.engine.begin() as conn:  # an empty store
        conn.execute(delete(list_unsubscribes))
        conn.execute(delete(subscribers))
    store.close()
    result = invoke(root, "subscribers", "import", str(exported))
    assert result.exit_code == 0, result.output
    settings, store = opened(root)
    after = records(store.engine, settings.digests)
    store.close()
    assert after == before
    assert {r["email"]: r["digests"] for r in after}["anna@example.org"] == {
        "weekly-en": "unsubscribed"
    }


def test_json_export_has_every_field(root, tmp_path):
    assert invoke(root, "subscribers", "add", "pema@example.org", "--name", "Pema").exit_code == 0
    result = invoke(root, "subscribers", "export", "--format", "json")
    assert result.exit_code == 0, result.output
    (pema,) = json.loads(result.stdout)
    assert pema == {
        "email": "pema@example.org",
        "name": "Pema",
        "language": "en",
        "topics": [],
        "status": "active",
        "status_detail": "",
        "digests": {"weekly-en": "active"},
        "left": [],
        "paused_until": "",
        "consent_source": "added by staff",
        "consent_at": "2026-11-23T09:00:00Z",
        "created_at": "2026-11-23T09:00:00Z",
    }


# -- add, show, list ------------------------------------------------------------------------


def test_add_then_show_every_field(root):
    result = invoke(
        root, "subscribers", "add", "Li.Wen@Example.org", "--name", "李文", "--language", "zh_cn",
        "--topics", "China;climate",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == "added li.wen@example.org\n"
    shown = invoke(root, "subscribers", "show", "li.wen@example.org")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        "email:          li.wen@example.org",
        "name:           李文",
        "language:       zh-CN",
        "topics:         China;climate",
        "status:         active",
        "digests:        monthly-zh: active",
        "paused until:   not paused",
        "consent source: added by staff",
        "consent date:   2026-11-23T09:00:00Z",
        "created:        2026-11-23T09:00:00Z",
    ]
    missing = invoke(root, "subscribers", "show", "nobody@example.org")
    assert missing.exit_code == 1 and "no subscriber nobody@example.org" in missing.output


def test_add_never_reactivates_and_keeps_suppressed_people_out(root):
    assert invoke(root, "subscribers", "add", "anna@example.org").exit_code == 0
    _, store = opened(root)
    people = SubscriberStore(store.engine)
    people.set_status(people.get("anna@example.org").id, UNSUBSCRIBED, "one-click unsubscribe")
    suppress(store, "spam.report@example.org", "complaint", "abuse report", "arf")
    store.close()
    again = invoke(root, "subscribers", "add", "anna@example.org", "--name", "Anna")
    assert again.exit_code == 1
    assert "kept unsubscribed/bounced: anna@example.org" in again.output
    held = invoke(root, "subscribers", "add", "spam.report@example.org")
    assert held.exit_code == 1 and "kept suppressed: spam.report@example.org" in held.output
    bad = invoke(root, "subscribers", "add", "not-an-address")
    assert bad.exit_code == 2 and "not-an-address" in bad.output
    _settings, store = opened(root)
    people = SubscriberStore(store.engine)
    assert people.get("anna@example.org").status == UNSUBSCRIBED
    assert people.get("anna@example.org").name == "Anna"  # details still updated
    assert people.get("spam.report@example.org").status == UNSUBSCRIBED
    store.close()


def test_list_shows_who_is_paused_until_when(root):
    for email in ("pema@example.org", "anna@example.org", "sonam@example.org"):
        assert invoke(root, "subscribers", "add", email).exit_code == 0
    _settings, store = opened(root)
    with store.engine.begin() as conn:
        for email, until in (
            ("pema@example.org", dt.datetime(2026, 12, 24)),  # ahead of NOW: paused
            ("anna@example.org", dt.datetime(2026, 11, 1)),  # over
        ):
            conn.execute(
                update(subscribers).where(subscribers.c.email == email).values(paused_until=until)
            )
    store.close()
    result = invoke(root, "subscribers", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split("\t")[0]: line for line in result.stdout.splitlines()}
    assert lines["pema@example.org"].endswith("\tweekly-en: active\tpaused until 2026-12-24")
    assert lines["anna@example.org"].endswith("\tweekly-en: active")
    assert "paused" not in lines["sonam@example.org"]
    shown = invoke(root, "subscribers", "show", "anna@example.org")
    assert "paused until:   2026-11-01T00:00:00Z (over)" in shown.output


def test_a_bad_date_rejects_its_row_only_and_map_overrides_a_recognised_export(people, tmp_path):
    path = tmp_path / "mailchimp.csv"
    path.write_text(
        '"Email Address","First Name",OPTIN_TIME,CONFIRM_TIME,LEID,Sprache\n'
        'pema@example.org,Pema,,"2024-03-01 09:15:40",1,zh-CN\n'
        'anna@example.org,Anna,,"01/03/2024 9:15",2,en\n'
        "sonam@example.org,Sonam,,,3,en\n",
        encoding="utf-8",
    )
    report = people.import_csv(path, "en", mapping="language=sprache")
    assert (report.tool, report.added) == ("Mailchimp", 2)
    ((line, message),) = [(p.line, p.message) for p in report.rejected]
    assert line == 3 and message.startswith("'01/03/2024 9:15' is not a date and time")
    assert people.get("pema@example.org").language == "zh-CN"
    assert people.get("sonam@example.org").consent_at is None
    assert people.get("sonam@example.org").consent_source == "imported from Mailchimp"
