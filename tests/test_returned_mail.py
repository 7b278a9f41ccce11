"""Reading returned mail (pipeline.returned_mail, pipeline.verp): real DSN samples of
Postfix, Exim and Gmail, an ARF complaint, an out-of-office reply, a reply that is no
report; VERP tokens that cannot be forged; and fuzzing: whatever arrives, no exception."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bounce_inbox import ReturnedMail
from pipeline.feedback import Feedback
from pipeline.returned_mail import read_message
from pipeline.verp import parse, recipient, verp_address

FIXTURES = Path(__file__).parent / "fixtures" / "returned_mail"
SECRET = "s3cret-for-tests"
PEOPLE = {2: "anna@example.org", 3: "pema@example.org"}
PLACEHOLDER = "bounces+2-0123abcd-aaaaaaaaaaaaaaaa@news.example.org"
MESSAGE_ID = "<0123abcd0123abcd0123abcd0123abcd@news.example.org>"


def resolve(address: str) -> str | None:
    return recipient(SECRET, address, PEOPLE.get)


def genuine(subscriber_id: int = 2) -> str:
    email = PEOPLE[subscriber_id]
    return verp_address(SECRET, "news.example.org", subscriber_id, email, MESSAGE_ID)


def sample(name: str, verp: str = PLACEHOLDER) -> bytes:
    """A fixture as received, its (not genuine) VERP address replaced by ``verp``."""
    return (FIXTURES / name).read_text(encoding="utf-8").replace(PLACEHOLDER, verp).encode()


@pytest.mark.parametrize(
    ("name", "address", "status"),
    [
        ("postfix_bounce.eml", "anna@example.org", "5.1.1"),
        ("exim_bounce.eml", "anna@example.org", "5.0.0"),
        ("gmail_bounce.eml", "anna.berg.old@gmail.com", "5.1.1"),
    ],
)
def test_a_permanent_failure_is_a_bounce_for_the_final_recipient(name, address, status):
    reading = read_message(sample(name), resolve)  # the fixture's token is not genuine
    assert reading.kind == "bounce"
    (feedback,) = reading.feedback
    assert (feedback.address, feedback.kind, feedback.source) == (address, "bounce", "dsn")
    assert feedback.reason.startswith(status) and "550" in feedback.reason
    assert feedback.message_id == MESSAGE_ID


@pytest.mark.parametrize("name", ["postfix_bounce.eml", "exim_bounce.eml", "gmail_bounce.eml"])
def test_a_genuine_verp_address_names_the_recipient_even_when_the_dsn_is_mangled(name):
    # The report names an address the list never had (a forwarding target, a typo'd
    # rewrite); the envelope it came back to names Anna, and is signed.
    mangled = sample(name, genuine(2))
    for named in (b"anna@example.org", b"anna.berg.old@gmail.com"):
        mangled = mangled.replace(named, b"a.berg@mailhost.internal")
    reading = read_message(mangled, resolve)
    assert [f.address for f in reading.feedback] == ["anna@example.org"]


def test_the_verp_address_a_message_was_delivered_to_counts_without_any_header():
    data = sample("postfix_bounce.eml", "bounces@news.example.org")  # headers: no token
    data = data.replace(b"anna@example.org", b"someone-else@example.net")
    reading = read_message(data, resolve, envelope_to=[genuine(3)])
    assert [f.address for f in reading.feedback] == ["pema@example.org"]


def test_a_forged_or_altered_token_is_not_trusted():
    real = genuine(3)
    found = parse(real)
    assert found is not None
    forged = [
        real.replace(f"+{found.subscriber_id}-", "+2-"),  # another subscriber's id
        real.replace(found.message_ref, "ffffffff"),  # another message
        real.replace(found.signature, "a" * 16),  # made up
        f"bounces+3-{found.message_ref}-{'b' * 16}@news.example.org",
    ]
    for address in forged:
        assert resolve(address) is None, address
        reading = read_message(sample("postfix_bounce.eml", address), resolve)
        # the report's own Final-Recipient, not the subscriber the token claims
        assert [f.address for f in reading.feedback] == ["anna@example.org"]
    other_secret = verp_address("another", "news.example.org", 3, PEOPLE[3], MESSAGE_ID)
    assert resolve(other_secret) is None
    # a token made for an address the subscriber no longer has
    assert recipient(SECRET, real, {3: "pema.new@example.org"}.get) is None


def test_verp_fits_a_local_part_and_survives_a_server_that_changes_case():
    address = genuine(2)
    local = address.rpartition("@")[0]
    assert len(local) <= 64  # RFC 5321 §4.5.3.1.1
    assert resolve(address.upper()) == "anna@example.org"
    assert resolve(f"<{address}>") == "anna@example.org"


def test_a_delayed_report_is_a_delay():
    reading = read_message(sample("postfix_delayed.eml"), resolve)
    assert reading.kind == "delay"
    assert [(f.address, f.kind) for f in reading.feedback] == [("anna@example.org", "delay")]
    assert reading.feedback[0].reason.startswith("4.2.2")


def test_a_failure_with_a_4xx_status_is_a_delay_and_a_success_is_nothing():
    four = sample("postfix_bounce.eml").replace(b"Status: 5.1.1", b"Status: 4.4.7")
    assert read_message(four, resolve).kind == "delay"
    delivered = sample("postfix_bounce.eml").replace(b"Action: failed", b"Action: delivered")
    reading = read_message(delivered, resolve)
    assert (reading.kind, reading.feedback) == ("ignored", ())


def test_an_arf_report_is_a_complaint_about_the_original_recipient():
    reading = read_message(sample("arf_complaint.eml"), resolve)
    assert reading.kind == "complaint"
    (feedback,) = reading.feedback
    assert (feedback.address, feedback.kind, feedback.source) == (
        "anna@example.org",
        "complaint",
        "arf",
    )
    assert "abuse" in feedback.reason and feedback.message_id == MESSAGE_ID
    # without Original-Rcpt-To, the enclosed message's To
    bare = sample("arf_complaint.eml").replace(b"Original-Rcpt-To: <anna@example.org>\n", b"")
    assert [f.address for f in read_message(bare, resolve).feedback] == ["anna@example.org"]
    # the enclosed message's Return-Path, when it is a genuine VERP address, comes first
    verp = sample("arf_complaint.eml", genuine(3))
    assert [f.address for f in read_message(verp, resolve).feedback] == ["pema@example.org"]


def test_a_not_spam_report_is_no_complaint():
    data = sample("arf_complaint.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert read_message(data, resolve).kind == "ignored"


def test_auto_replies_are_ignored_and_other_mail_is_unrecognised():
    assert read_message(sample("out_of_office.eml"), resolve).kind == "ignored"
    for header in (b"X-Autoreply: yes", b"Precedence: bulk", b"Subject: Out of office"):
        plain = EmailMessage()
        plain["To"] = genuine(2)
        plain.set_content("away")
        data = header + b"\n" + bytes(plain)
        assert read_message(data, resolve).kind == "ignored", header
    assert read_message(sample("not_a_report.eml"), resolve).kind == "unrecognised"


# -- fuzzing ----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4000))
def test_any_bytes_are_read_without_an_exception(data):
    reading = read_message(data, resolve)
    assert reading.kind in ("bounce", "delay", "complaint", "ignored", "unrecognised")


fields = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@FUZZ
@given(
    report_type=st.sampled_from(["delivery-status", "feedback-report", "", "x"]),
    part_type=st.sampled_from(
        ["message/delivery-status", "message/feedback-report", "text/plain", "message/rfc822"]
    ),
    action=st.one_of(st.sampled_from(["failed", "delayed", "delivered", ""]), fields),
    status=st.one_of(st.sampled_from(["5.1.1", "4.2.2", "9.9.9", ""]), fields),
    final=st.one_of(st.sampled_from(["rfc822; a@example.org", "rfc822;", "x400; a"]), fields),
    extra=fields,
    enclosed=st.sampled_from(["message/rfc822", "text/rfc822-headers", "text/plain"]),
)
def test_structured_but_wrong_reports_never_raise(
    report_type, part_type, action, status, final, extra, enclosed
):
    body = (
        f"Reporting-MTA: dns; x\n\nFinal-Recipient: {final}\nAction: {action}\n"
        f"Status: {status}\nFeedback-Type: {extra}\nOriginal-Rcpt-To: {extra}\n"
    )
    data = (
        f"To: {extra}\nMIME-Version: 1.0\nContent-Type: multipart/report; "
        f'report-type={report_type}; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        f"{extra}\n--b\nContent-Type: {part_type}\n\n{body}\n--b\nContent-Type: {enclosed}\n\n"
        f"Return-Path: <{extra}>\nTo: {extra}\nMessage-ID: {extra}\n\n--b--\n"
    ).encode("utf-8", "surrogateescape")
    reading = read_message(data, resolve)
    for feedback in reading.feedback:
        assert "@" in feedback.address and feedback.kind in ("bounce", "delay", "complaint")


class Kept:
    """A recorder that keeps what it is given (the store's own is tested elsewhere)."""

    def __init__(self) -> None:
        self.got: list[Feedback] = []

    def record(self, feedback: Feedback) -> str:
        self.got.append(feedback)
        return "kept"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.binary(max_size=600), min_size=1, max_size=4),
    st.sampled_from(["eml", "mbox", "maildir"]),
)
def test_importing_any_file_mbox_or_maildir_never_raises(tmp_path_factory, messages, form):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "in"
    if form == "eml":
        path.write_bytes(messages[0])
    elif form == "mbox":
        path.write_bytes(
            b"".join(b"From x@y Sat Dec  5 09:00:00 2026\n" + m + b"\n" for m in messages)
        )
    else:
        box = mailbox.Maildir(path, create=True)
        for index, data in enumerate(messages):
            (path / "new" / f"{index}.host").write_bytes(data)
        box.close()
    report = ReturnedMail(Kept(), resolve).import_path(path)
    assert sum(report.counts.values()) >= 1


@FUZZ
@given(st.text(max_size=200))
def test_any_recipient_address_is_judged_without_an_exception(address):
    import logging

    from pipeline.bounce_listener import BounceHandler

    handler = BounceHandler(ReturnedMail(Kept(), resolve), "news.example.org", logging.getLogger())
    accepted = handler.accepts(address)
    assert accepted is False or address.strip().lower().endswith("@news.example.org")
    assert resolve(address) is None or parse(address) is not None
    assert handler.accepts(genuine(2)) and handler.accepts("Bounces@News.Example.org")
