"""`pipeline digest send NAME --to ADDRESS`: the next edition, for one address, its
subject marked as a test, sent through the configured transport; nothing recorded, so
the real edition that follows is exactly what it would have been. Judged from the raw
bytes the SMTP server received, and from the state store's tables on both databases."""

from __future__ import annotations

import re
from email.header import decode_header, make_header

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from pipeline.schema import deliveries, edition_articles, editions, runs
from pipeline.settings import load_settings
from tests.conftest import invoke

# The fixture replacing conftest's, so mail_project sends to an inbox keeping raw bytes.
from tests.rawmail import inbox as inbox
from tests.rawmail import split, unfolded

RECORDS = (editions, edition_articles, deliveries, runs)


def recorded(root) -> dict[str, list]:
    """Every row of the tables a send records in."""
    url = load_settings(root / "config" / "pipeline.yaml").state
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: sorted(map(tuple, conn.execute(select(t)).all())) for t in RECORDS}
    finally:
        engine.dispose()


def subject(raw: bytes) -> str:
    """The Subject a mail client shows (RFC 2047 words decoded), from the raw field."""
    return str(make_header(decode_header(unfolded(split(raw).fields["subject"]))))


def send_test(root, digest: str, address: str) -> str:
    """`pipeline digest send DIGEST --to ADDRESS`, which must succeed; its output."""
    result = invoke(root, "digest", "send", digest, "--to", address)
    assert result.exit_code == 0, result.output
    assert "nothing was recorded" in result.output
    return result.output


def test_a_test_send_reaches_one_address_and_records_nothing(mail_project, inbox) -> None:
    handler, _ = inbox
    before = recorded(mail_project)
    send_test(mail_project, "weekly-en", "pema@example.org")
    assert len(handler.raw) == 1
    raw = handler.raw[0]
    assert b"\r\nSubject: [Test] This week at Mountain News\r\n" in raw
    assert b"\r\nTo: Pema Gyamtsho <pema@example.org>\r\n" in raw  # as the subscriber gets it
    assert "Pema Gyamtsho" in split(raw).parts["text/plain"]
    assert recorded(mail_project) == before
    # Again: another message (its own Message-ID), still nothing recorded.
    send_test(mail_project, "weekly-en", "pema@example.org")
    assert len(handler.raw) == 2
    ids = [unfolded(split(r).fields["message-id"]) for r in handler.raw]
    assert ids[0] != ids[1]
    assert recorded(mail_project) == before
    # The real edition afterwards: every subscriber, the same articles, a real subject.
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    real = handler.raw[2:]
    assert len(real) == 3
    assert all(b"\r\nSubject: This week at Mountain News\r\n" in r for r in real)
    titles = re.findall(r"^\d+\. (.+)$", split(handler.raw[0]).parts["text/plain"], re.M)
    assert titles and titles == re.findall(
        r"^\d+\. (.+)$", split(real[0]).parts["text/plain"], re.M
    )


def test_a_stranger_gets_the_chinese_digest_with_a_chinese_test_mark(mail_project, inbox) -> None:
    handler, _ = inbox
    before = recorded(mail_project)
    assert "not a subscriber" in send_test(mail_project, "monthly-zh", "editor@example.net")
    (raw,) = handler.raw
    assert subject(raw) == "[测试] 山地新闻月报"
    line = b"".join(split(raw).fields["subject"])
    assert line.isascii() and b"=?utf-8?" in line  # RFC 2047, as every non-ASCII subject
    assert b"\r\nTo: editor@example.net\r\n" in raw
    text = split(raw).parts["text/plain"]
    assert "您好！" in text  # the greeting without a name, in the digest's language
    assert recorded(mail_project) == before


def test_a_failed_test_send_says_so_and_records_nothing(mail_project, inbox) -> None:
    handler, _ = inbox
    handler.refuse["pema@example.org"] = "550 5.1.1 no such mailbox"
    before = recorded(mail_project)
    result = invoke(mail_project, "digest", "send", "weekly-en", "--to", "pema@example.org")
    assert result.exit_code == 1
    assert "was not sent" in result.output and "550" in result.output
    assert recorded(mail_project) == before  # not even the subscriber marked bounced
    people = invoke(mail_project, "subscribers", "list", "--status", "bounced")
    assert "pema@example.org" not in people.output


def test_test_sends_to_the_outbox_are_kept_apart(project) -> None:
    root = project()
    assert invoke(root, "ingest").exit_code == 0
    for _ in range(2):
        send_test(root, "weekly-en", "me@example.org")
    files = list((root / "var" / "outbox").glob("*.eml"))
    assert len(files) == 2
    assert all(b"\r\nSubject: [Test] This week" in f.read_bytes() for f in files)
    # The outbox of test sends is not taken for a project that has published before.
    assert invoke(root, "digest", "send", "weekly-en", "--dry-run").exit_code == 0


def test_not_an_address_or_with_dry_run_is_a_usage_error(mail_project, inbox) -> None:
    handler, _ = inbox
    bad = invoke(mail_project, "digest", "send", "weekly-en", "--to", "pema.example.org")
    assert bad.exit_code == 2
    assert "--to" in bad.output and "you@example.org" in bad.output
    both = invoke(mail_project, "digest", "send", "weekly-en", "--to", "a@b.org", "--dry-run")
    assert both.exit_code == 2 and "--dry-run" in both.output
    unknown = invoke(mail_project, "digest", "send", "weekly", "--to", "a@example.org")
    assert unknown.exit_code == 2 and "weekly-en" in unknown.output
    assert handler.raw == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(address=st.text(max_size=80))
def test_any_to_argument_is_sent_or_refused_clearly(mail_project, inbox, address) -> None:
    handler, _ = inbox
    if address.startswith("-"):
        address = "x" + address  # an option, not the argument
    count = len(handler.raw)
    result = invoke(mail_project, "digest", "send", "weekly-en", "--to", address)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 2:
        assert "--to" in result.output
        assert len(handler.raw) == count
    elif result.exit_code == 0:
        assert len(handler.raw) == count + 1


def test_a_test_of_an_edition_a_real_send_would_skip_says_so(mail_project, inbox) -> None:
    handler, _ = inbox
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0  # takes all
    result = invoke(mail_project, "digest", "send", "weekly-en", "--to", "a@example.org")
    assert result.exit_code == 0
    assert "would skip this edition: 0 new articles; min_items is 1" in result.output
    assert len(handler.raw) == 4  # three subscribers, then the test all the same
