"""How mail leaves: ``Transport.send(message)`` sends one message to its one recipient.

Built in: ``.eml`` files in an outbox folder (here), one SMTP connection per batch
(``pipeline.transports.smtp``, which documents how SMTP replies map onto outcomes), and
the providers' HTTP APIs (``pipeline.transports``). Every transport reports an outcome
the same way: it returns once the far side took responsibility for the message;
``PermanentFailure`` (never resent) or ``TemporaryFailure`` (``unknown_outcome`` when it
may have arrived: SMTP never deduplicates, so such a message is not resent);
``MailerBroken`` for what every message would meet (login refused, no server): the
caller stops the batch.

``stage(transport, message)`` splits a send in two for the digest's claim: everything
that does not yet deliver the message (for SMTP: the envelope, DATA and the body, but
not the final dot) while the ledger commits the claim, then ``finish()``. A transport
that cannot stage (an HTTP request is one step) does the whole send at ``finish()``.

Every transport sends the bytes of ``wire_bytes``: every header whose value is printable
ASCII goes out exactly as written, folded only at whitespace (to 78 columns where it
can, never inside a word), each line at most 998 octets (RFC 5322 §2.1.1); only
non-ASCII values (a Chinese subject, a display name) are RFC 2047-encoded. The email
package's own generator would re-fold any longer line and, finding no space, encode it
(``List-Unsubscribe: =?utf-8?q?=3Chttps...``), which mail providers do not read as a
link: one-click unsubscribe would be lost. A message that cannot go out as written (a
line over 998 octets with no space to fold at) is a ``PermanentFailure``.

Each takes ``sign`` (``pipeline.dkim.Signer``, from ``email.dkim``): it is given those
bytes and returns what is sent, a DKIM-Signature header added in front.

The outbox writes ``<Message-ID>.eml``, the bytes SMTP sends (CRLF), through a
temporary file and a hard link: a file is whole or absent, never overwritten, and the
same Message-ID is the same file. Passwords never appear in a failure's text.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import PermanentFailure, PipelineError
from pipeline.plugins import TRANSPORTS, Plugins
from pipeline.settings.email import EmailSettings

FOLD_AT = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters…
MAX_LINE = 998  # …and MUST be at most 998 octets, CRLF not counted
# Printable ASCII (and tab), perhaps already folded: a line break then whitespace.
_AS_WRITTEN = re.compile(r"[\x20-\x7e\t]*(?:\r?\n[ \t][\x20-\x7e\t]*)*")
_INJECTED = re.compile(r"\r?\n(?![ \t])|\r(?!\n)")  # a break that would start a header


class MailerBroken(PipelineError):
    """Every message would fail the same way (login, sender, TLS, no server): stop the batch."""


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Staged:
    """A send cut short of delivering: ``finish()`` delivers (or raises the send's
    failure, whenever it happened), ``abandon()`` leaves it undelivered."""

    finish: Callable[[], None]
    abandon: Callable[[], None]

    @classmethod
    def failing(cls, failure: Exception) -> Staged:
        """A send that failed before delivering anything: ``finish()`` raises it."""

        def fail() -> None:
            raise failure

        return cls(fail, _nothing)


def stage(transport: Transport, message: EmailMessage) -> Staged:
    """What of sending ``message`` can be done without delivering it, done now. A
    transport offers this with a ``stage(message) -> Staged`` method; for one that does
    not, everything happens at ``finish()``. A failure meanwhile is raised by
    ``finish()``, so the caller meets it where it would have met it in ``send``."""
    begin: Callable[[EmailMessage], Staged] | None = getattr(transport, "stage", None)
    if begin is None:
        return Staged(lambda: transport.send(message), _nothing)
    try:
        return begin(message)
    except Exception as exc:  # held for finish(): the claim decides whether it counts
        return Staged.failing(exc)


def _nothing() -> None:
    pass


def envelope(message: EmailMessage) -> tuple[str, str]:
    """(sender, recipient) from the headers, as ``send_message`` takes them; one recipient.
    A ``Return-Path`` (a VERP address, pipeline.verp) is the sender, and never sent:
    the receiving server writes its own from MAIL FROM (RFC 5321 §4.4). An
    ``EncodedMessage`` carries the pair its builder wrote into those headers."""
    if isinstance(message, EncodedMessage) and message.addresses is not None:
        return message.addresses
    given = message["Return-Path"] or message["Sender"] or message["From"] or ""
    sender = getaddresses([str(given)])[0][1]
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    recipients = [address for _, address in getaddresses(fields) if address]
    if not sender or len(recipients) != 1:
        raise ValueError(f"a message needs a From and one recipient, not {recipients}")
    return sender, recipients[0]


class EncodedMessage(EmailMessage):
    """A message whose payload is its body exactly as it goes on the wire (ASCII, CRLF
    line ends, parts already encoded and delimited by the Content-Type's boundary).

    A digest is built this way for each recipient (pipeline.digest.message): ``wire_bytes``
    then writes its headers and appends the body, instead of having the email package
    flatten (and parse the headers of) every part again.

    ``addresses`` is the envelope (sender, recipient) as the builder wrote it into the
    headers, so that ``envelope`` need not parse them back (the email package's address
    parser cost about 1 ms a message, a third of its CPU). Changing any header the
    envelope is read from forgets it, so a later edit (a test send's To) is never sent
    to the old address."""

    addresses: tuple[str, str] | None = None
    _ENVELOPE_HEADERS = frozenset({"return-path", "sender", "from", "to", "cc", "bcc"})

    def _changing(self, name: str) -> None:
        if name.lower() in self._ENVELOPE_HEADERS:
            self.addresses = None

    def __setitem__(self, name: str, value: Any) -> None:
        self._changing(name)
        super().__setitem__(name, value)

    def __delitem__(self, name: str) -> None:
        self._changing(name)
        super().__delitem__(name)

    def set_raw(self, name: str, value: Any) -> None:
        self._changing(name)
        super().set_raw(name, value)

    def replace_header(self, _name: str, _value: Any) -> None:
        self._changing(_name)
        super().replace_header(_name, _value)


class _WirePolicy(EmailPolicy):
    """The standard policy, except that printable-ASCII headers go out as written
    (``_fold_as_written``) instead of being re-folded and perhaps RFC 2047-encoded."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        # A header object (``message[name] = value``) is folded from its parsed value,
        # a raw one (``set_raw``, or a parsed message's) is the text itself.
        text = str(value)
        if _AS_WRITTEN.fullmatch(text):
            return _fold_as_written(name, text, self.linesep).encode("ascii")
        if _INJECTED.search(text.rstrip("\r\n")):
            raise PermanentFailure(f"the {name} header has a line break inside its value")
        return super().fold_binary(name, value)  # non-ASCII: RFC 2047 (or UTF-8)


_WIRE = {utf8: _WirePolicy(linesep="\r\n", utf8=utf8) for utf8 in (False, True)}


def _fold_as_written(name: str, value: str, linesep: str) -> str:
    """``name: value`` folded only before whitespace, to ``FOLD_AT`` columns where the
    words allow; a value already folded keeps its own line breaks. A line over
    ``MAX_LINE`` octets (a word too long to fold) is a PermanentFailure."""
    if len(name) + 2 + len(value) <= FOLD_AT and "\n" not in value:
        return f"{name}: {value}{linesep}"  # most headers: short, one line as written
    lines = re.split(r"\r?\n", value)
    if len(lines) == 1:
        lines = _fold_words(f"{name}: {value}", after=len(name) + 2)
    else:
        lines[0] = f"{name}: {lines[0]}"
    for line in lines:
        if len(line) > MAX_LINE:
            raise PermanentFailure(
                f"the {name} header has a {len(line)}-octet line with no space to fold at; "
                f"mail allows {MAX_LINE} (RFC 5322 §2.1.1), and a link in a List-* header "
                "must not be broken (RFC 2369): shorten the value"
            )
    return linesep.join(lines) + linesep


def _fold_words(line: str, after: int) -> list[str]:
    """Break ``line`` before runs of whitespace (past column ``after``) into pieces of at
    most FOLD_AT characters where possible; a longer word stays whole on its line."""
    # Never before trailing whitespace: a folded line must not be blank (RFC 5322 §3.2.2).
    words = re.finditer(r"(?<=\S)[ \t]+(?=\S)", line)
    breaks = [m.start() for m in words if m.start() > after]
    pieces, start = [], 0
    for index, at in enumerate(breaks):
        following = breaks[index + 1] if index + 1 < len(breaks) else len(line)
        if following - start > FOLD_AT:  # the next word would not fit: fold before it
            pieces.append(line[start:at])
            start = at
    pieces.append(line[start:])
    return pieces


def wire_bytes(message: EmailMessage, addresses: tuple[str, str] | None = None) -> bytes:
    """The message as both transports send it: no Bcc, CRLF line ends, headers as
    written (see the module's doc). UTF-8 headers only where an address needs SMTPUTF8,
    as ``smtplib.send_message`` decides. ``addresses``: its ``envelope``, if the caller
    has it already (reading the address headers again costs as much as the rest)."""
    sender, recipient = addresses or envelope(message)
    unsent = copy.copy(message)
    del unsent["Bcc"]
    del unsent["Resent-Bcc"]
    del unsent["Return-Path"]
    policy = _WIRE[not (sender + recipient).isascii()]
    if isinstance(message, EncodedMessage):
        headers = b"".join(policy.fold_binary(name, value) for name, value in unsent.raw_items())
        data = headers + b"\r\n" + str(message.get_payload()).encode("ascii")
    else:
        with io.BytesIO() as out:
            BytesGenerator(out, policy=policy).flatten(unsent, linesep="\r\n")
            data = out.getvalue()
    longest = max(map(len, data.split(b"\r\n")))
    if longest > MAX_LINE:  # a raw body part; headers were checked above
        raise PermanentFailure(f"the message has a {longest}-octet line; mail allows {MAX_LINE}")
    return data


def header_line(name: str, value: str) -> bytes:
    """One printable-ASCII header as ``wire_bytes`` writes it, for a header added to
    the bytes afterwards (a DKIM signature)."""
    return _fold_as_written(name, value, "\r\n").encode("ascii")


def outgoing(
    message: EmailMessage, sign: Callable[[bytes], bytes] | None
) -> tuple[str, str, bytes]:
    """(sender, recipient, the bytes to send): ``wire_bytes``, DKIM-signed when the
    transport was given a signer. Every transport sends what this gives."""
    sender, recipient = envelope(message)
    data = wire_bytes(message, (sender, recipient))
    return sender, recipient, data if sign is None else sign(data)


def outbox_name(message_id: str) -> str:
    """A file name for a Message-ID: the ID itself when safe, else a cleaned form + a hash."""
    raw = message_id.strip().removeprefix("<").removesuffix(">")
    safe = re.sub(r"[^a-z0-9@._+-]", "_", raw.lower()).lstrip(".")[:120]
    if safe != raw:  # lossy (or case-folded): keep distinct IDs distinct
        safe = f"{safe}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
    return f"{safe}.eml"


class OutboxTransport:
    """Writes each message to ``folder/<Message-ID>.eml`` atomically; never overwrites."""

    def __init__(self, folder: Path, sign: Callable[[bytes], bytes] | None = None):
        self.folder = Path(folder)
        self.sign = sign

    def send(self, message: EmailMessage) -> None:
        message_id = message["Message-ID"]
        if not message_id:
            raise ValueError("a message needs a Message-ID to be written to the outbox")
        target = self.folder / outbox_name(str(message_id))
        if target.exists():
            return  # written before: the same message
        _, _, data = outgoing(message, self.sign)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.link(temp, target)  # unlike rename, fails if the target exists
                except FileExistsError:
                    pass
                except OSError:  # a file system without hard links
                    if not target.exists():
                        os.replace(temp, target)
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(temp)
        except OSError as exc:
            raise MailerBroken(f"cannot write to the outbox {self.folder}: {exc}") from exc

    def close(self) -> None:
        pass


class TransportType(Protocol):
    """What a ``pipeline.transports`` entry point names: a transport made from ``email:``."""

    def __call__(self, email: EmailSettings, **options: Any) -> Transport: ...


def open_transport(email: EmailSettings, plugins: Plugins | None = None, **kw: Any) -> Transport:
    """The transport ``email.delivery`` names, found in ``plugins`` (default: the installed
    ones); ``kw`` goes to it (for SMTP: ``rate``, which defaults to ``email.rate``).

    With ``email.dkim`` it is given ``sign``: the caller's (``Assembly`` loads the key
    once for all its connections), else one made here. Without, no ``sign`` is passed,
    so a plug-in whose factory takes none still works."""
    opened: TransportType = (plugins or Plugins()).load(TRANSPORTS, email.delivery)
    if email.dkim is not None:
        from pipeline.dkim import accepts_sign, signer

        if not accepts_sign(opened):  # `check` says so first; never send unsigned
            raise MailerBroken(
                f"the transport {email.delivery!r} cannot DKIM-sign; see `pipeline check`"
            )
        if kw.get("sign") is None:
            kw["sign"] = signer(email)
    elif "sign" in kw and kw["sign"] is None:
        del kw["sign"]
    return opened(email, **kw)


def outbox_transport(
    email: EmailSettings, *, sign: Callable[[bytes], bytes] | None = None
) -> OutboxTransport:
    """``delivery: outbox``: .eml files in ``email.outbox``, no network."""
    return OutboxTransport(email.outbox, sign)
