"""What the receiving side says about an address after a message has left.

Returned mail (RFC 3464 delivery status notifications, to the VERP address), complaint
reports (RFC 5965 feedback loops) and providers' notifications (Amazon SES through SNS,
Mailgun's webhooks) all arrive in different shapes; each reader turns what it got into
``Feedback`` and hands it to one ``FeedbackRecorder``, which decides what it means for
the subscriber (bounced, suppressed, or one more temporary failure counted).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

FeedbackKind = Literal["bounce", "delay", "complaint"]
"""``bounce``: delivery failed for good (5.x.x); ``delay``: failed for now (4.x.x), counted
toward a limit; ``complaint``: the recipient reported the mail as spam."""


@dataclass(frozen=True)
class Feedback:
    address: str  # the recipient the report is about
    kind: FeedbackKind
    reason: str  # the report's own words (status code and diagnostic), for history
    source: str  # who said it: "dsn", "arf", "ses", "mailgun", "import", ...
    message_id: str | None = None  # the Message-ID of our message, when the report names it
    reported_at: dt.datetime | None = None  # aware UTC, when the report says


class FeedbackRecorder(Protocol):
    def record(self, feedback: Feedback) -> str:
        """Apply one report; return what was done, in words for logs and history."""
        ...
