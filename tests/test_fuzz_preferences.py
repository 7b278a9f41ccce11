"""Property test of the preference page's POST: whatever fields and values arrive with
a genuine link, the answer is acceptance (200, a page) or a clean refusal (4xx), never a
5xx, and what is stored afterwards is only what the page offers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.subscribers import ACTIVE, UNSUBSCRIBED
from tests.prefs_site import configure, prefs_web

RUNS = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ["lists", "language", "topics", "pause", "action", "token", "form_token"]
GOOD = ["weekly-en", "monthly-zh", "nepal-en", "en", "zh-CN", "Nepal", "Climate", "keep", "0"]
GOOD += ["1", "2", "4", "8", "save", "leave_all", "come_back", ""]

names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
values = st.one_of(
    st.sampled_from(GOOD),
    st.text(max_size=200),
    st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=100, max_size=2000),
    st.integers(-(2**70), 2**70).map(str),
)


@pytest.fixture
def fuzzed(project):
    root = project(with_examples=False)
    configure(root, topics=True)
    site = prefs_web(root, smtp=False)
    site.people.add_or_update("pema@example.org", name="Pema", language="en", topics=["Nepal"])
    yield site
    site.store.close()


@RUNS
@given(
    pairs=st.lists(st.tuples(names, values), max_size=12),
    with_tokens=st.booleans(),
    origin=st.sampled_from(["http://testserver", "https://evil.example", None]),
)
def test_any_posted_form_is_accepted_or_cleanly_refused(fuzzed, pairs, with_tokens, origin):
    token = fuzzed.token("pema@example.org")
    if with_tokens:
        page = fuzzed.page("pema@example.org").text
        form_token = page.split('name="form_token" value="')[1].split('"')[0]
        pairs = [("token", token), ("form_token", form_token), *pairs]
    answer = fuzzed.post_pairs("/preferences", pairs, f"token={token}", origin=origin)
    assert 200 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.body
    if origin != "http://testserver" or not with_tokens:
        assert answer.status >= 400
    person = fuzzed.people.get("pema@example.org")
    assert person.language in ("en", "zh-CN")
    assert set(person.topics) <= {"Nepal", "Climate"}
    assert person.status in (ACTIVE, UNSUBSCRIBED)
    assert fuzzed.people.left(person.id) <= {"weekly-en", "monthly-zh", "nepal-en"}
    if person.status == UNSUBSCRIBED:  # leave the next example something to change
        fuzzed.people.set_status(person.id, ACTIVE)
