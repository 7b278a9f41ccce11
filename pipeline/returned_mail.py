"""Reading returned mail: delivery status notifications, complaints, auto-replies.

- RFC 3464 DSN (``multipart/report; report-type=delivery-status``): each recipient
  block whose ``Action`` is ``failed`` with a 5.x.x ``Status`` is a ``bounce``; ``failed``
  with 4.x.x, or ``delayed``, a ``delay``; ``delivered``/``relayed``/``expanded`` nothing.
- RFC 5965 ARF (``multipart/report; report-type=feedback-report``): a ``complaint``
  about the enclosed message's recipient (``Original-Rcpt-To``, else its ``To``);
  ``Feedback-Type: not-spam`` or ``auth-failure`` is not a complaint and is ignored.
- RFC 3834 auto-replies (``Auto-Submitted: auto-replied``, ``X-Autoreply``,
  ``Precedence: auto_reply``/``bulk``/``junk``, an "out of office" subject) are ignored.
- Anything else is ``unrecognised``: counted and logged by the caller, never an error.

Whom a report is about: the VERP address it was sent to (pipeline.verp), when that is
genuine — the envelope recipient, or a ``To``/``Delivered-To``/``X-Original-To`` header
of the report, or the ``Return-Path`` a receiving server wrote on the enclosed message —
else the report's own ``Final-Recipient``/``Original-Recipient``/``Original-Rcpt-To``.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses
from typing import Literal

from pipeline.feedback import Feedback, FeedbackKind

Kind = Literal["bounce", "delay", "complaint", "ignored", "unrecognised"]
Resolve = Callable[[str], str | None]
"""A VERP address → the subscriber's address it genuinely names, or None."""

_STATUS = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}\b")
_OUT_OF_OFFICE = re.compile(
    r"out of (the )?office|auto(matic)?[- ]?reply|autoreply|abwesenheit|vacation|"
    r"absence|自动回复|不在办公室",
    re.IGNORECASE,
)
NOT_COMPLAINTS = {"not-spam", "auth-failure"}


@dataclass(frozen=True)
class Reading:
    """What one message was: ``feedback`` for bounce, delay and complaint (one per
    recipient it names), ``why`` in words for every kind."""

    kind: Kind
    why: str
    feedback: tuple[Feedback, ...] = field(default=())


def read_message(data: bytes, resolve: Resolve, envelope_to: Iterable[str] = ()) -> Reading:
    """Classify one returned message (its raw bytes); never raises for what it is given."""
    try:
        message = email.message_from_bytes(data, policy=email.policy.compat32)
        return _read(message, resolve, list(envelope_to))
    except (RecursionError, MemoryError):  # absurdly nested MIME: not a report of ours
        return Reading("unrecognised", "too deeply nested to read")
    except Exception as exc:  # a hostile message must never stop the reader
        return Reading("unrecognised", f"cannot be read: {type(exc).__name__}")


def _read(message: Message, resolve: Resolve, envelope_to: list[str]) -> Reading:
    report_type = _param(message, "report-type").lower()
    if message.get_content_type() == "multipart/report" and report_type == "delivery-status":
        return _dsn(message, resolve, envelope_to)
    if message.get_content_type() == "multipart/report" and report_type == "feedback-report":
        return _arf(message, resolve, envelope_to)
    auto = _auto_reply(message)
    if auto:
        return Reading("ignored", f"an auto-reply ({auto})")
    return Reading("unrecognised", f"not a delivery or complaint report ({_type(message)})")


# -- RFC 3464 ---------------------------------------------------------------------------


def _dsn(message: Message, resolve: Resolve, envelope_to: list[str]) -> Reading:
    kinds = ("message/delivery-status", "message/global-delivery-status")
    status_part = next(_parts(message, *kinds), None)
    if status_part is None:
        return Reading("unrecognised", "a delivery report without a delivery-status part")
    blocks = _field_blocks(status_part)[1:]  # the first block is about the reporting server
    original = _enclosed(message)
    verp = _verp_recipient(message, original, resolve, envelope_to)
    message_id = _header(original, "Message-ID") if original is not None else None
    found: dict[tuple[str, str], Feedback] = {}
    for block in blocks:
        kind = _dsn_kind(block.get("action", ""), block.get("status", ""))
        if kind is None:
            continue
        address = verp or _typed_address(
            block.get("final-recipient") or block.get("original-recipient") or ""
        )
        if not address:
            continue
        words = [block.get("status", ""), block.get("diagnostic-code", "")]
        reason = " ".join(w for w in (_clean(w) for w in words) if w) or block.get("action", "")
        found.setdefault(
            (address, kind), Feedback(address, kind, reason, "dsn", message_id or None)
        )
    if not found:
        actions = sorted({b.get("action", "").strip().lower() for b in blocks} - {""})
        if actions and set(actions) <= {"delivered", "relayed", "expanded"}:
            return Reading("ignored", f"a delivery report saying {', '.join(actions)}")
        return Reading("unrecognised", "a delivery report naming no failed recipient")
    feedback = tuple(found.values())
    worst: Kind = "bounce" if any(f.kind == "bounce" for f in feedback) else "delay"
    names = ", ".join(sorted({f.address for f in feedback}))
    return Reading(worst, f"{worst} for {names}", feedback)


def _dsn_kind(action: str, status: str) -> FeedbackKind | None:
    action = action.strip().lower()
    code = _STATUS.match(status)
    if action == "delayed":
        return "delay"
    if action != "failed":
        return None
    if code is not None and code[1] == "4":
        return "delay"
    return "bounce"  # failed: 5.x.x, or a failure that gives no usable status


# -- RFC 5965 ---------------------------------------------------------------------------


def _arf(message: Message, resolve: Resolve, envelope_to: list[str]) -> Reading:
    report = next(_parts(message, "message/feedback-report"), None)
    if report is None:
        return Reading("unrecognised", "a feedback report without a feedback-report part")
    fields: dict[str, str] = {}
    for block in _field_blocks(report):
        for name, value in block.items():
            fields.setdefault(name, value)
    feedback_type = fields.get("feedback-type", "").strip().lower() or "abuse"
    if feedback_type in NOT_COMPLAINTS:
        return Reading("ignored", f"a feedback report of type {feedback_type}")
    original = _enclosed(message)
    address = _verp_recipient(message, original, resolve, envelope_to)
    if address is None:
        address = _typed_address(fields.get("original-rcpt-to", ""))
    if address is None and original is not None:
        address = _first_address(_header(original, "To"))
    if address is None:
        return Reading("unrecognised", "a complaint that names no recipient")
    message_id = _header(original, "Message-ID") if original is not None else ""
    reason = _clean(f"{feedback_type} report by {fields.get('user-agent', 'a mailbox provider')}")
    feedback = Feedback(address, "complaint", reason, "arf", message_id or None)
    return Reading("complaint", f"complaint about {address}", (feedback,))


# -- RFC 3834 ---------------------------------------------------------------------------


def _auto_reply(message: Message) -> str | None:
    submitted = _header(message, "Auto-Submitted").lower()
    if submitted.startswith("auto-replied"):
        return "Auto-Submitted: auto-replied"
    for name in ("X-Autoreply", "X-Autorespond"):
        if message.get(name) is not None:
            return name
    precedence = _header(message, "Precedence").lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"Precedence: {precedence}"
    if _OUT_OF_OFFICE.search(_header(message, "Subject")):
        return "an out-of-office subject"
    if submitted.startswith("auto-generated"):
        return "Auto-Submitted: auto-generated"
    return None


# -- the parts of a report --------------------------------------------------------------


def _parts(message: Message, *types: str) -> Iterator[Message]:
    for part in message.walk():
        if part.get_content_type() in types:
            yield part


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The blocks of header-style fields of a delivery-status or feedback-report part,
    each as lower-cased name → value (the first of a name)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parsed the blocks already
        return [
            {str(k).lower(): _clean(str(v)) for k, v in reversed(block.items())}
            for block in payload
            if isinstance(block, Message)
        ]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload or "")
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
        block: dict[str, str] = {}
        name = ""
        for line in chunk.splitlines():
            if line[:1] in (" ", "\t") and name:
                block[name] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if colon and name and name not in block:
                block[name] = value.strip()
            elif not colon:
                name = ""
        if block:
            blocks.append({k: _clean(v) for k, v in block.items()})
    return blocks


def _enclosed(message: Message) -> Message | None:
    """The returned copy of our message: message/rfc822 (its headers and perhaps body)
    or text/rfc822-headers (only its headers), if the report has one."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return email.message_from_bytes(raw, policy=email.policy.compat32)
    return None


def _verp_recipient(
    message: Message, original: Message | None, resolve: Resolve, envelope_to: list[str]
) -> str | None:
    """The subscriber a genuine VERP address among the report's addressees names."""
    candidates = list(envelope_to)
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        candidates += [a for _, a in getaddresses([_header(message, name)]) if a]
    if original is not None:
        candidates += [a for _, a in getaddresses([_header(original, "Return-Path")]) if a]
    for candidate in candidates:
        found = resolve(candidate)
        if found:
            return found
    return None


def _typed_address(value: str) -> str | None:
    """``rfc822; someone@example.org`` (RFC 3464 §2.3.2) → the address, if one."""
    kind, semicolon, address = value.partition(";")
    if not semicolon:
        address = kind
    elif kind.strip().lower() not in ("rfc822", "utf-8"):
        return None
    return _first_address(address)


def _first_address(value: str) -> str | None:
    for _, address in getaddresses([value]):
        if "@" in address and " " not in address.strip():
            return address.strip()
    return None


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return _clean(str(value)) if value is not None else ""


def _param(message: Message, name: str) -> str:
    value = message.get_param(name, header="content-type")
    if isinstance(value, tuple):  # RFC 2231-encoded
        value = value[2]
    return _clean(str(value or ""))


def _type(message: Message) -> str:
    return message.get_content_type()


def _clean(text: str) -> str:
    return " ".join(text.split())
