"""Amazon SES bounce and complaint notifications (the ``Message`` of an SNS notification)
as ``Feedback``, one per recipient listed.

Both shapes SES publishes are read: identity notifications (``notificationType``) and
configuration-set event publishing (``eventType``). A ``Permanent`` bounce is a
``bounce``; ``Transient`` and ``Undetermined`` ones are a ``delay`` (counted, not final);
a complaint is a ``complaint``. Every other type (Delivery, Send, Open, …) is none of
our business and gives nothing.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from typing import Any

from pipeline.feedback import Feedback, FeedbackKind
from pipeline.sns import load_json

SOURCE = "ses"


def ses_feedback(message: str) -> list[Feedback]:
    """The reports in one notification; ``ValueError`` if it is not one SES sends."""
    notice = load_json(message)
    if not isinstance(notice, dict):
        raise ValueError("the SNS Message is not a JSON object")
    kind = notice.get("notificationType") or notice.get("eventType")
    if kind == "Bounce":
        event = _object(notice, "bounce")
        bounced = str(event.get("bounceType", ""))
        what: FeedbackKind = "bounce" if bounced == "Permanent" else "delay"
        listed = _list(event, "bouncedRecipients")
        head = f"{bounced or 'Undetermined'}/{event.get('bounceSubType', '')}".rstrip("/")
        reasons = [_said(head, r.get("status"), r.get("diagnosticCode")) for r in listed]
    elif kind == "Complaint":
        event = _object(notice, "complaint")
        what = "complaint"
        listed = _list(event, "complainedRecipients")
        head = f"complaint: {event.get('complaintFeedbackType') or 'abuse'}"
        reasons = [head for _ in listed]
    else:
        return []
    message_id = _our_message_id(notice.get("mail"))
    at = _moment(event.get("timestamp"))
    return [
        Feedback(_address(r), what, reason, SOURCE, message_id=message_id, reported_at=at)
        for r, reason in zip(listed, reasons, strict=True)
    ]


def _object(holder: dict[str, Any], name: str) -> dict[str, Any]:
    value = holder.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"the notification has no {name} object")
    return value


def _list(holder: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = holder.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        raise ValueError(f"the notification lists no {name}")
    return value


def _address(recipient: dict[str, Any]) -> str:
    address = parseaddr(str(recipient.get("emailAddress", "")))[1]
    if "@" not in address:
        raise ValueError("a listed recipient has no email address")
    return address


def _said(head: str, status: object, diagnostic: object) -> str:
    words = " ".join(str(w) for w in (status, diagnostic) if isinstance(w, str) and w)
    return f"{head}: {' '.join(words.split())}"[:500] if words else head


def _our_message_id(mail: object) -> str | None:
    """Our Message-ID header (not SES's own messageId), when the notification carries it."""
    if not isinstance(mail, dict):
        return None
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and isinstance(common.get("messageId"), str):
        return common["messageId"]
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value"))
    return None


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.astimezone(dt.UTC) if moment.tzinfo else None
    except (ValueError, OverflowError):  # not a time, or one beyond year 1 or 9999 in UTC
        return None
