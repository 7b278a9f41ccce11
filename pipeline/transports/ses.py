"""``delivery: ses``: Amazon SES v2 ``SendEmail`` with the raw message, through boto3.

Outcomes, one message at a time, as ``pipeline.mailer`` describes for SMTP:

- 200: sent; SES's MessageId is kept in ``last_id`` (and logged).
- ``MessageRejected``, ``BadRequestException`` and other 4xx: ``PermanentFailure`` with
  SES's words (an address not verified in the sandbox, a message SES will not send).
- 429, throttling, a daily quota reached, 5xx: ``TemporaryFailure`` (with Retry-After
  when SES gives one); no connection made: ``TemporaryFailure``, not delivered.
- connection dropped or timed out after the request went out: unknown outcome
  (``TemporaryFailure(unknown_outcome=True)``); boto3's own retries are off, so nothing
  is ever sent twice behind the ledger's back.
- credentials missing or refused, account suspended, sending paused, the sender's
  address or domain not verified, the MAIL FROM domain or configuration set unknown:
  ``MailerBroken`` — every message would meet it.

The first send reads the account (``GetAccount``): sending disabled is ``MailerBroken``,
and SES's ``MaxSendRate`` caps ``email.rate`` (the lower one holds). Without the
``ses:GetAccount`` permission only ``email.rate`` holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.http_errors import status_failure
from pipeline.mailer import MailerBroken, outgoing
from pipeline.pacing import LocalPacer
from pipeline.settings.email import EmailSettings
from pipeline.settings.providers import SesSettings

log = logging.getLogger(__name__)

Sign = Callable[[bytes], bytes]
SERVICE = "Amazon SES"
# Every message would meet these: stop the send instead of failing each recipient.
BROKEN = {
    "AccountSuspendedException": "the SES account is suspended",
    "SendingPausedException": "sending is paused for this account or configuration set",
    "MailFromDomainNotVerifiedException": "the MAIL FROM domain is not verified in SES",
    "NotFoundException": "SES does not know the configuration set or identity",
}
THROTTLED = {
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
    "ThrottlingException",
}


class SesTransport:
    """One boto3 ``sesv2`` client, made on the first send and reused."""

    def __init__(
        self,
        settings: SesSettings,
        *,
        rate: float = 0,
        sign: Sign | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.rate = rate
        self.sign = sign
        self.sleep = sleep
        self.clock = clock
        self.last_id: str | None = None  # SES's MessageId of the last message sent
        self._client: Any = None
        self._pace = LocalPacer(rate, clock=clock, sleep=sleep)

    def send(self, message: EmailMessage) -> None:
        sender, recipient, data = outgoing(message, self.sign)
        client = self._client or self._open()
        request: dict[str, Any] = {
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": data}},
        }
        if self.settings.configuration_set:
            request["ConfigurationSetName"] = self.settings.configuration_set
        self._pace()
        try:
            answer = client.send_email(**request)
        except (ClientError, BotoCoreError) as exc:
            raise failure(exc, recipient, sender) from None
        self.last_id = str(answer.get("MessageId") or "") or None
        log.debug("SES accepted %s for %s as %s", message["Message-ID"], recipient, self.last_id)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _open(self) -> Any:
        s = self.settings
        config = Config(
            # boto3 would resend after a dropped connection: the ledger decides instead
            retries={"total_max_attempts": 1},
            connect_timeout=s.timeout,
            read_timeout=s.timeout,
            user_agent_extra="newsroom-pipeline",
        )
        client = boto3.session.Session().client(
            "sesv2",
            region_name=s.region,
            endpoint_url=s.endpoint_url,
            aws_access_key_id=s.access_key_id,
            aws_secret_access_key=s.secret_access_key,
            config=config,
        )
        self._limit_rate(client)
        self._client = client
        return client

    def _limit_rate(self, client: Any) -> None:
        """Sending disabled is ``MailerBroken``; SES's MaxSendRate caps ``rate``."""
        try:
            account = client.get_account()
        except ClientError as exc:
            if _code(exc) in BROKEN or _status(exc) == 401:
                raise failure(exc) from None
            log.info("SES GetAccount refused (%s); pacing at email.rate only", _code(exc))
            return
        except BotoCoreError as exc:
            if isinstance(exc, NoCredentialsError | PartialCredentialsError):
                raise failure(exc) from None
            log.info("SES GetAccount failed (%s); pacing at email.rate only", exc)
            return
        if account.get("SendingEnabled") is False:
            raise MailerBroken("sending is disabled for this SES account (GetAccount)")
        if account.get("EnforcementStatus") == "SHUTDOWN":
            raise MailerBroken("the SES account is shut down (EnforcementStatus SHUTDOWN)")
        ceiling = (account.get("SendQuota") or {}).get("MaxSendRate")
        if isinstance(ceiling, int | float) and ceiling > 0 and not 0 < self.rate <= ceiling:
            log.info("SES allows %g messages a second; pacing at that", ceiling)
            self.rate = float(ceiling)
            self._pace = LocalPacer(self.rate, clock=self.clock, sleep=self.sleep)


def failure(
    exc: ClientError | BotoCoreError, recipient: str = "", sender: str = ""
) -> DeliveryFailed | MailerBroken:
    """What a failed SES call means for this message (see the module's doc)."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return MailerBroken(
            f"{SERVICE}: no AWS credentials ({exc}); set email.ses.access_key_id and "
            "secret_access_key, or give the process a role"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return TemporaryFailure(f"{SERVICE}: cannot connect ({type(exc).__name__})")
    if isinstance(exc, BotoCoreError):  # read timeout, connection closed: sent, perhaps
        return TemporaryFailure(
            f"{SERVICE}: no answer ({type(exc).__name__}); the message may have been sent",
            unknown_outcome=True,
        )
    code, status = _code(exc), _status(exc)
    words = " ".join(str(exc.response.get("Error", {}).get("Message") or code).split())[:300]
    said = f"{SERVICE} answered {status} {code}: {words}"
    if code in BROKEN:
        return MailerBroken(f"{said} ({BROKEN[code]})")
    if code == "MessageRejected" and sender and _names_sender(words, sender):
        # "Email address is not verified ... failed the check: news@…": every message would
        return MailerBroken(f"{said} (verify the sender's address or domain in SES)")
    if status in (401, 403):
        return MailerBroken(f"{said} (check the credentials and the IAM permission ses:SendEmail)")
    if code in THROTTLED or status_failure(status) is TemporaryFailure:
        return TemporaryFailure(said, retry_after=_retry_after(exc), status=status)
    to = f" for {recipient}" if recipient else ""
    return PermanentFailure(f"{said}{to}", status=status)


def _names_sender(words: str, sender: str) -> bool:
    """Whether SES's refusal names the sender's address or domain (not the recipient's)."""
    domain = sender.rpartition("@")[2].lower()
    named = {w.strip(".,;:'\"<>()").lower() for w in words.split()}
    return sender.lower() in named or domain in named


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _status(exc: ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else 0


def _retry_after(exc: ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def ses_transport(email: EmailSettings, *, sign: Sign | None = None, **kw: Any) -> SesTransport:
    """``delivery: ses``: the ``email.ses`` account (settings require it)."""
    assert email.ses is not None
    kw.setdefault("rate", email.rate)
    return SesTransport(email.ses, sign=sign, **kw)  # sign named: DKIM (pipeline.dkim)
