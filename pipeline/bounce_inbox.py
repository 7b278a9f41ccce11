"""Returned mail in: each message read (pipeline.returned_mail) and what it reports
recorded (a ``FeedbackRecorder``, pipeline.suppression), whether it came to the SMTP
listener (pipeline.bounce_listener) or from a file: ``pipeline bounces import PATH``
reads one .eml file, an mbox file, or a Maildir folder (recognised by its contents).
"""

from __future__ import annotations

import logging
import mailbox
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError, display_path
from pipeline.feedback import FeedbackRecorder
from pipeline.returned_mail import Reading, Resolve, read_message
from pipeline.verp import recipient

MAX_MESSAGE = 10_000_000  # bytes: a returned message larger than this is not read


@dataclass
class ImportReport:
    counts: Counter[str] = field(default_factory=Counter)  # kind -> messages
    unreadable: list[str] = field(default_factory=list)  # "where: why"
    unrecognised: list[str] = field(default_factory=list)  # "where: why"
    outcomes: list[str] = field(default_factory=list)  # "address: what was done"


def verp_resolver(secret: str, email_of: Callable[[int], str | None]) -> Resolve:
    """Resolve VERP addresses signed with ``secret``; ``email_of`` looks up a subscriber."""
    return lambda address: recipient(secret, address, email_of)


class ReturnedMail:
    """Reads returned messages and records what they report; everything is passed in."""

    def __init__(
        self, recorder: FeedbackRecorder, resolve: Resolve, log: logging.Logger | None = None
    ):
        self.recorder = recorder
        self.resolve = resolve
        self.log = log or logging.getLogger(__name__)

    def receive(self, data: bytes, envelope_to: Iterable[str] = (), where: str = "") -> Reading:
        """Read one message and record each report in it; the reading, with outcomes logged."""
        reading = read_message(data, self.resolve, envelope_to)
        for feedback in reading.feedback:
            outcome = self.recorder.record(feedback)
            self.log.info("%s: %s — %s", feedback.address, outcome, feedback.reason)
        if reading.kind == "unrecognised":
            self.log.warning("returned mail %s not recognised: %s", where, reading.why)
        return reading

    def import_path(self, path: Path) -> ImportReport:
        """Read every message of ``path`` (a .eml file, an mbox file or a Maildir folder);
        a message that cannot be read is named by file and index, and the rest go on."""
        report = ImportReport()
        for where, data in _messages(path, report):
            reading = self.receive(data, where=where)
            report.counts[reading.kind] += 1
            if reading.kind == "unrecognised":
                report.unrecognised.append(f"{where}: {reading.why}")
            report.outcomes.extend(f"{f.address}: {f.kind}" for f in reading.feedback)
        return report


def _messages(path: Path, report: ImportReport) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of each message in ``path``; unreadable ones go to the report."""
    shown = display_path(path)
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise PipelineError(
                f"{shown} is a folder but not a Maildir (no cur/ or new/ inside); give a "
                ".eml file, an mbox file or a Maildir folder"
            )
        for sub in ("new", "cur"):
            files = sorted(p for p in (path / sub).glob("*") if not p.name.startswith("."))
            for file in files:
                data = _read(file, f"{shown}/{sub}/{file.name}", report)
                if data is not None:
                    yield f"{shown}/{sub}/{file.name}", data
        return
    try:
        with path.open("rb") as handle:
            start = handle.read(5)
    except OSError as exc:
        raise PipelineError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if start != b"From ":
        data = _read(path, shown, report)
        if data is not None:
            yield shown, data
        return
    try:
        box = mailbox.mbox(path, create=False)
        keys = box.keys()
    except (OSError, mailbox.Error) as exc:
        raise PipelineError(f"cannot read {shown} as an mbox file: {exc}") from None
    for index, key in enumerate(keys, 1):
        where = f"{shown} message {index}"
        try:
            data = box.get_bytes(key)
        except (OSError, mailbox.Error, ValueError) as exc:
            report.unreadable.append(f"{where}: {exc}")
            report.counts["unreadable"] += 1
            continue
        if len(data) > MAX_MESSAGE:
            report.unreadable.append(f"{where}: {len(data):,} bytes; at most {MAX_MESSAGE:,}")
            report.counts["unreadable"] += 1
            continue
        yield where, data
    box.close()


def _read(file: Path, where: str, report: ImportReport) -> bytes | None:
    try:
        size = file.stat().st_size
        if size > MAX_MESSAGE:
            report.unreadable.append(f"{where}: {size:,} bytes; at most {MAX_MESSAGE:,}")
            report.counts["unreadable"] += 1
            return None
        return file.read_bytes()
    except OSError as exc:
        report.unreadable.append(f"{where}: {exc.strerror or exc}")
        report.counts["unreadable"] += 1
        return None


def open_returned_mail(settings, store, clock, log: logging.Logger | None = None) -> ReturnedMail:
    """The reader and recorder of returned mail for this project's settings and store."""
    from pipeline.subscribers import SubscriberStore
    from pipeline.suppression import Suppressions
    from pipeline.tokens import link_secret

    email = settings.email
    if email is None:
        raise PipelineError("returned mail needs an `email:` section in the config")
    people = SubscriberStore(store.engine, clock)

    def email_of(subscriber_id: int) -> str | None:
        found = people.get_by_id(subscriber_id)
        return found.email if found else None

    secret = link_secret(email.unsubscribe.secret, store)
    recorder = Suppressions.configured(store.engine, email.bounces, clock)
    return ReturnedMail(recorder, verp_resolver(secret, email_of), log)
