"""Property tests for the public pages: whatever path, query string and headers arrive at
`/`, `/feeds/` and `/digests/…`, the answer is a 200, 304 or 404 (a redirect for a
missing trailing slash) with a body unless 304, nosniff, and quickly — never a 5xx,
never a page of an edition nobody has received. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import quote, quote_from_bytes, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from pipeline.schema import editions
from tests.test_web_limits import Web, call, load

RUNS = settings(
    max_examples=150,
    deadline=None,  # bounded per request below
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = 3.0
SECRET = "UNSENT-EDITION-TEXT"
DIGESTS = ["weekly-en", "monthly-zh", "nope", "", "..", "weekly-en/..", "%00", "週刊"]
TIMES = ["2026-11-23T09:00+05:45", "2027-01-04T09:00+05:45", "feed.atom", "", "9" * 50, "\x00"]


@pytest.fixture
def web(project, state_url):
    site = Web(load(project(with_examples=False)), state_url)
    naive = dt.datetime(2026, 11, 23, 3, 15)
    rows = [("weekly-en@2026-11-23T09:00+05:45", "sent", "<p>sent one</p>")]
    rows.append(("weekly-en@2027-01-04T09:00+05:45", "sending", f"<p>{SECRET}</p>"))
    with site.store.engine.begin() as conn:
        for id_, status, body in rows:
            conn.execute(
                insert(editions).values(
                    id=id_, digest="weekly-en", scheduled_for=naive, status=status,
                    articles=json.dumps(["gone"]), subject="S", html=body, text=body,
                    detail=None, created_at=naive, finished_at=None,
                )
            )  # fmt: skip
    yield site
    site.store.close()


segments = st.one_of(st.sampled_from(DIGESTS + TIMES), st.text(max_size=30))
paths = st.one_of(
    st.sampled_from(["/", "/feeds/", "/digests/", "/digests"]),
    st.builds(lambda d: f"/digests/{d}/", segments),
    st.builds(lambda d: f"/digests/{d}", segments),
    st.builds(lambda d, t: f"/digests/{d}/{t}", segments, segments),
    st.builds(lambda d: f"/digests/{d}/feed.atom", segments),
)
query_values = st.one_of(
    st.sampled_from(["1", "2", "0", "-1", "99999999999", "en", "zh-CN", "1e3", ""]),
    st.text(max_size=40),
)
queries = st.one_of(
    st.dictionaries(st.sampled_from(["page", "lang", "x"]), query_values, max_size=3).map(
        lambda q: "&".join(f"{quote(k)}={quote(v)}" for k, v in q.items()).encode()
    ),
    st.binary(max_size=60).map(lambda b: quote_from_bytes(b, safe="=&").encode()),
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Accept-Language": st.one_of(
            st.sampled_from(["zh-CN,zh;q=0.9", "en;q=0", "*"]), header_text
        ),
        "If-None-Match": st.one_of(st.sampled_from(["*", '"x"', 'W/"', ""]), header_text),
    },
)


@RUNS
@given(path=paths, query=queries, sent=headers)
def test_any_request_to_the_public_pages_is_answered_without_a_server_error(web, path, query, sent):
    began = time.perf_counter()
    answer = call(web.app, "GET", quote(path, safe="/"), query=query, headers=sent)
    elapsed = time.perf_counter() - began
    assert answer.status in (200, 304, 307, 404), (answer.status, answer.body[:300])
    assert answer.values("x-content-type-options") == ["nosniff"]
    assert elapsed < SLOW, elapsed
    if answer.status == 307:  # /digests/NAME → /digests/NAME/ (or an extra slash dropped)
        # (Starlette re-encodes the path its own way: compare the segments.)
        target = urlsplit(answer.headers["location"]).path
        assert target.startswith("/") and target != path
        assert target.strip("/").count("/") == path.strip("/").count("/"), (path, target)
    elif answer.status != 304:
        assert answer.body
    assert SECRET.encode() not in answer.body  # reached nobody yet: never shown
    if answer.status == 404 and path.startswith("/digests/"):
        assert b"<h1>" in answer.body  # the 404 page, in the reader's language
