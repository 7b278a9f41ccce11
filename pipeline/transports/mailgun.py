"""``delivery: mailgun``: Mailgun's ``POST /v3/DOMAIN/messages.mime``, the raw message as
the ``message`` part and the one recipient as ``to``, with HTTP basic auth ``api:KEY``.

Outcomes, one message at a time, as ``pipeline.mailer`` describes for SMTP (the HTTP
mapping is ``pipeline.channels.http.request``'s):

- 200: sent; Mailgun's id (``<…@DOMAIN>``) is kept in ``last_id`` (and logged).
- 400 and other 4xx: ``PermanentFailure`` with Mailgun's words, e.g. a recipient the
  sandbox domain may not send to ("not allowed to send").
- 429, 5xx: ``TemporaryFailure`` honouring Retry-After; no connection: not delivered.
- connection dropped or timed out after the request went out: unknown outcome.
- 401 (key refused), 402 (payment), 404 (no such domain) and a 403 saying the domain or
  account is disabled, suspended or paused: ``MailerBroken``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import requests

from pipeline.channels.http import request
from pipeline.errors import PermanentFailure
from pipeline.mailer import MailerBroken, outgoing
from pipeline.pacing import LocalPacer
from pipeline.redact import Redactor
from pipeline.settings.email import EmailSettings
from pipeline.settings.providers import MailgunSettings

log = logging.getLogger(__name__)

Sign = Callable[[bytes], bytes]
SERVICE = "Mailgun"
BROKEN_STATUS = {
    401: "the API key was refused",
    402: "the account needs payment",
    404: "no such domain",
}
# 403 is also Mailgun's answer to one recipient a sandbox domain may not mail.
_ACCOUNT_DOWN = re.compile(r"disabled|suspend|paused|deactivated|banned|not activated", re.I)


class MailgunTransport:
    """One requests session, reused for every message."""

    def __init__(
        self,
        settings: MailgunSettings,
        *,
        rate: float = 0,
        sign: Sign | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ):
        self.settings = settings
        self.sign = sign
        self.last_id: str | None = None  # Mailgun's id of the last message sent
        self.url = f"{settings.api_url}/v3/{settings.domain}/messages.mime"
        self._http = session or requests.Session()
        self._pace = LocalPacer(rate, clock=clock, sleep=sleep)
        self._redact = Redactor([settings.api_key])

    def send(self, message: EmailMessage) -> None:
        _, recipient, data = outgoing(message, self.sign)
        self._pace()
        try:
            response = request(
                self._http,
                "POST",
                self.url,
                service=SERVICE,
                timeout=self.settings.timeout,
                redact=self._redact,
                auth=("api", self.settings.api_key),
                data={"to": recipient},
                files={"message": ("message.mime", data, "message/rfc822")},
            )
        except PermanentFailure as exc:
            raise _broken(exc) or exc from None
        try:
            self.last_id = str(response.json().get("id") or "") or None
        except (ValueError, AttributeError):
            self.last_id = None
        log.debug(
            "Mailgun accepted %s for %s as %s", message["Message-ID"], recipient, self.last_id
        )

    def close(self) -> None:
        self._http.close()


def _broken(exc: PermanentFailure) -> MailerBroken | None:
    """A refusal every message would meet, as ``MailerBroken``; None for this message's own."""
    if exc.status in BROKEN_STATUS:
        return MailerBroken(f"{exc.reason} ({BROKEN_STATUS[exc.status]}: check email.mailgun)")
    if exc.status == 403 and _ACCOUNT_DOWN.search(exc.reason):
        return MailerBroken(exc.reason)
    return None


def mailgun_transport(
    email: EmailSettings, *, sign: Sign | None = None, **kw: Any
) -> MailgunTransport:
    """``delivery: mailgun``: the ``email.mailgun`` domain (settings require it)."""
    assert email.mailgun is not None
    kw.setdefault("rate", email.rate)
    return MailgunTransport(email.mailgun, sign=sign, **kw)  # sign named: DKIM (pipeline.dkim)
