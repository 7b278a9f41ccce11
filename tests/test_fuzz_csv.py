"""Hostile subscriber CSV files: every row is imported or rejected with its line; the
import itself never raises, on either database, in bounded time and memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.store import Store
from pipeline.subscribers import SubscriberStore

HEADERS = [
    "email,name,language,topics",
    "Email,Name",
    "email",
    "name,email,extra",
    "E-Mail",
    # other tools' exports (tests/fixtures/imports) and our own
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,TAGS',
    '"Email Address","First Name",OPTIN_TIME,UNSUB_TIME,UNSUB_REASON,LEID',
    '"Email Address",CONFIRM_TIME,CLEAN_TIME,EUID',
    "uuid,email,name,attributes,status,created_at,updated_at",
    "id,email,creation_date,metadata,subscriber_type,tags",
    "email,name,language,topics,status,status_detail,digests,left,paused_until,"
    "consent_source,consent_at,created_at",
]
MAPS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "email=E-Mail",
            "email=Email,name=Name",
            "email=email,status=name",
            "email=email,left=extra,paused_until=name",
            "email=name,consent_at=email",
            "mail=E-Mail",
            "email",
            "=",
            ",,,",
        ]
    ),
    st.text(max_size=60),
)
FIELD = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "pema@example.org",
            "li.wen@example.org",
            "ANNA@Example.Org",
            "not-an-address",
            "a@b",
            "zh-CN",
            "en",
            "xx-invalid-",
            "Nepal;China",
            '"quoted, with comma"',
            "\x00",
            "=cmd|' /C calc'!A0",
            "x" * 300,
            "é@例子.广告",
            '{"language": "zh-CN", "topics": ["China"]}',
            '{"first_name": 3}',
            "[1, 2",
            "2024-03-01 09:15:40",
            "2023-08-14 06:45:10.123456789 +0000 UTC",
            "2024-13-45T99:00:00Z",
            "blocklisted",
            "unactivated",
            "cleaned",
            "weekly-en;monthly-zh",
            '"""Nepal"",""climate"""',
        ]
    ),
)
ROW = st.lists(FIELD, min_size=0, max_size=6).map(lambda fields: ",".join(fields))
DOCUMENT = st.tuples(
    st.sampled_from(HEADERS), st.lists(ROW, max_size=12), st.sampled_from(["\n", "\r\n", "\r"])
).map(lambda parts: parts[2].join([parts[0], *parts[1]]))


@pytest.fixture
def people(state_url, site):
    store = Store(state_url, site.url)
    yield SubscriberStore(store.engine)
    store.close()


def _import(people: SubscriberStore, path: Path, content: str | bytes, mapping: str | None = None):
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return people.import_csv(path, "en", mapping=mapping)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.one_of(DOCUMENT, st.binary(max_size=400)))
def test_any_csv_is_imported_or_rejected_by_line(people, tmp_path, content):
    path = tmp_path / "people.csv"
    started = time.perf_counter()
    report = _import(people, path, content)
    assert time.perf_counter() - started < 10
    for problem in report.rejected:
        assert problem.file.endswith("people.csv")
        assert problem.message


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.one_of(DOCUMENT, st.binary(max_size=400)), mapping=MAPS)
def test_any_export_with_any_map_is_imported_or_rejected_by_line(
    people, tmp_path, content, mapping
):
    """Other tools' headers, any --map (valid or not), any bytes: every rejection names
    the file and (unless the file cannot be read at all) the line; nothing escapes, and
    PostgreSQL never sees a value it refuses."""
    path = tmp_path / "people.csv"
    started = time.perf_counter()
    report = _import(people, path, content, mapping)
    assert time.perf_counter() - started < 10
    for problem in report.rejected:
        assert problem.file.endswith("people.csv")
        assert problem.line is not None or problem.message.startswith("cannot read it")
        assert problem.message
    if mapping is None and isinstance(content, str) and "@example.org" in content:
        assert report.rejected or report.added + report.updated + report.unchanged


def test_a_field_over_the_csv_module_limit_rejects_its_line_only(people, tmp_path):
    """csv refuses fields over 128 KB with an exception: that line is rejected, the rest
    of the file still goes in."""
    huge = "x" * (200 * 1024)
    content = (
        "email,name,language,topics\n"
        "pema@example.org,Pema,en,\n"
        f'anna@example.org,"{huge}",en,\n'
        "sonam@example.org,Sonam,en,\n"
    )
    tracemalloc.start()
    try:
        report = _import(people, tmp_path / "people.csv", content)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    imported = {s.email for s in people.all(None)}
    assert {"pema@example.org"} <= imported
    assert "anna@example.org" not in imported
    assert [p.line for p in report.rejected if p.line is not None]
