"""A digest copy is staged on the SMTP connection (envelope, DATA, body) while its claim
commits on another thread, and the final dot waits for the claim. A real SMTP server on
127.0.0.1 checks, on SQLite and PostgreSQL, that the two overlap, that nothing is
delivered before its claim is on disk, and that a copy whose claim did not come through
never arrives."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.digest.sending import Digests
from pipeline.errors import StoreError
from pipeline.feedback import Feedback
from pipeline.ledger import Claim
from pipeline.mailer import open_transport
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.suppression import Suppressions
from tests.conftest import invoke

WAIT = 30.0  # seconds; only a broken build waits this long


def opened(root: Path) -> tuple[Digests, Store]:
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    email = settings.email
    assert email is not None
    digests = Digests(
        settings, store, transport=lambda: open_transport(email), sleep=lambda s: None
    )
    return digests, store


def test_the_claim_commits_while_the_copy_is_staged_and_the_dot_waits_for_it(mail_project, inbox):
    handler, _ = inbox
    digests, store = opened(mail_project)
    recipients = threading.Semaphore(0)
    at_the_dot: list[tuple[int, list[str]]] = []
    accept_rcpt, accept_data = handler.handle_RCPT, handler.handle_DATA

    async def handle_RCPT(server, session, envelope, address, options):
        recipients.release()  # the copy is being staged
        return await accept_rcpt(server, session, envelope, address, options)

    async def handle_DATA(server, session, envelope):
        rows = digests.ledger.history("mail:")
        at_the_dot.append((len(rows), [e.state for e in rows if e.state == "sending"]))
        return await accept_data(server, session, envelope)

    handler.handle_RCPT, handler.handle_DATA = handle_RCPT, handle_DATA
    take = digests.ledger.take

    def claim_beside_the_staging(*args, **kwargs):
        # Had the claim to finish before the copy went on the wire, this would wait in vain.
        assert recipients.acquire(timeout=WAIT), "the copy was not staged beside its claim"
        return take(*args, **kwargs)

    digests.ledger.take = claim_beside_the_staging  # type: ignore[method-assign]
    try:
        report = digests.send("weekly-en")
    finally:
        store.close()
    assert len(report.sent) == len(handler.messages) == 3
    # When the server had a whole copy, its claim was committed, the one in doubt.
    assert at_the_dot == [(n, ["sending"]) for n in (1, 2, 3)]


def second_claim(digests: Digests, instead: Callable[[], Claim | None]) -> None:
    """The second claim of ``digests`` does ``instead``; the others are made."""
    take = digests.ledger.take
    taken: list[str] = []

    def claim(stream, item, key, **kwargs):
        taken.append(item)
        return instead() if len(taken) == 2 else take(stream, item, key, **kwargs)

    digests.ledger.take = claim  # type: ignore[method-assign]


def test_a_copy_whose_claim_went_to_another_process_is_never_delivered(mail_project, inbox):
    handler, _ = inbox
    digests, store = opened(mail_project)
    second_claim(digests, lambda: None)  # another process was first
    try:
        report = digests.send("weekly-en")
    finally:
        store.close()
    assert len(report.sent) == len(handler.messages) == 2
    assert sorted(report.sent) == sorted(m["To"].addresses[0].addr_spec for m in handler.messages)


def test_a_claim_that_fails_stops_the_send_and_its_copy_never_arrives(mail_project, inbox):
    handler, _ = inbox
    digests, store = opened(mail_project)

    def store_lost() -> Claim | None:
        raise StoreError("state: the database went away")

    second_claim(digests, store_lost)
    try:
        with pytest.raises(StoreError):
            digests.send("weekly-en")
    finally:
        store.close()
    assert len(handler.messages) == 1
    rerun = invoke(mail_project, "digest", "send", "weekly-en")
    assert rerun.exit_code == 0, rerun.output + rerun.stderr
    delivered = handler.to()
    assert len(delivered) == 3 and len(set(delivered)) == 3  # the rest, nobody twice


def test_an_address_suppressed_while_its_copy_is_staged_gets_nothing(mail_project, inbox):
    handler, _ = inbox
    digests, store = opened(mail_project)
    accept_data = handler.handle_DATA
    bounced: list[str] = []

    async def handle_DATA(server, session, envelope):
        if not bounced:  # a bounce report about someone still to come arrives now
            first = envelope.rcpt_tos[0]
            later = next(a for a in ("sonam@example.org", "anna@example.org") if a != first)
            Suppressions(store.engine).record(Feedback(later, "bounce", "5.1.1 gone", "dsn"))
            bounced.append(later)
        return await accept_data(server, session, envelope)

    handler.handle_DATA = handle_DATA
    try:
        report = digests.send("weekly-en")
    finally:
        store.close()
    assert bounced and not any(bounced[0] in to for to in handler.to())
    assert len(handler.messages) == len(report.sent) == 2
    ((who, why),) = report.failed
    assert who == bounced[0] and why.startswith("not sent: suppressed: bounced")
