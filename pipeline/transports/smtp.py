"""``delivery: smtp``: one SMTP connection, opened on the first message and reused.

How the server's replies map onto outcomes:

- 250 after the end of DATA: returns; the server has taken responsibility for it.
- RCPT or DATA refused with 5xx (550 no such mailbox, 552 too big, 554 spam):
  ``PermanentFailure``, ``status`` = the code, the server's words in ``reason``.
- refused with 4xx (450/451/452 greylisting, mailbox full) or 421 (closing):
  ``TemporaryFailure`` with ``status``; certainly not delivered.
- cannot connect (refused, timed out, greeting not 220): ``TemporaryFailure``, not
  delivered; the third such failure in a row raises ``MailerBroken`` instead.
- connection dropped or timed out before the end of DATA was sent: ``TemporaryFailure``,
  not delivered (a server delivers nothing of a transaction whose final dot never came,
  RFC 5321 §4.1.1.4); but if the server closed a connection left idle between messages
  (a drop or 421 on the first command), it is reopened once and the message sent.
- dropped or timed out after the final dot, before the reply:
  ``TemporaryFailure(unknown_outcome=True)``: it may have been accepted, and SMTP never
  deduplicates, so it is not resent.
- ``MailerBroken`` (the caller stops the batch) for what every message would meet:
  login refused or not offered, sender refused, no STARTTLS, TLS/certificate failure.

``stage(message)`` does everything but the final dot: MAIL FROM, RCPT TO, DATA and the
whole body go out while the caller commits its claim (``pipeline.digest.sending``), and
``finish()`` sends the dot and reads the reply. The server holds the body until then and
delivers nothing if the connection ends first: a process killed between the two leaves
no message behind. ``send`` is the two at once.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from typing import Any

from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.mailer import MailerBroken, Staged, outgoing
from pipeline.pacing import LocalPacer
from pipeline.settings.email import EmailSettings, SmtpSettings

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 3  # consecutive failures to connect before the mailer is broken
_LINE_START_DOT = re.compile(rb"(?m)^\.")
END_OF_DATA = b".\r\n"


class _Connection(smtplib.SMTP):
    """smtplib.SMTP that remembers where in a transaction it is, to place a failure:
    the last command sent (mail, rcpt, data), then ``body`` once the server asked for
    it, ``end`` once the final dot went out (from there, the message may be delivered)."""

    phase = ""

    def __init__(self, host: str, **kwargs: Any):
        super().__init__(**kwargs)  # no host: connect() is called apart, to classify failures
        self._host = host  # what STARTTLS and SMTP_SSL check the certificate against

    def putcmd(self, cmd: str, args: str = "") -> None:
        self.phase = cmd.lower()  # every command goes through here: mail, rcpt, data, …
        super().putcmd(cmd, args)

    def reset_or_close(self, code: int) -> None:
        """After a refusal, as ``sendmail`` does: a 421 means the server is closing. The
        refusal keeps its phase (RSET is no step of the transaction)."""
        phase = self.phase
        if code == 421:
            self.close()
        else:
            with suppress(smtplib.SMTPServerDisconnected):
                self.rset()
        self.phase = phase


class _SslConnection(_Connection, smtplib.SMTP_SSL):
    """The same, over implicit TLS."""


class _Stale(Exception):
    """The server closed an idle connection; reconnect and send again."""


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:300]


class SmtpTransport:
    """One SMTP connection, opened on the first send and reused for every message."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        rate: float = 0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
        connect_attempts: int = CONNECT_ATTEMPTS,
        sign: Callable[[bytes], bytes] | None = None,
    ):
        self.settings = settings
        self.sign = sign
        self.rate = rate
        self.sleep = sleep
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.connect_attempts = connect_attempts
        self.server = f"{settings.host}:{settings.effective_port}"
        self._conn: _Connection | None = None
        self._pace = LocalPacer(rate, clock=clock, sleep=sleep)
        self._failed_connects = 0

    def send(self, message: EmailMessage) -> None:
        self.stage(message).finish()

    def stage(self, message: EmailMessage) -> Staged:
        """The transaction up to the final dot; ``finish()`` ends it."""
        # the outbox's bytes, not smtplib's re-folded ones
        sender, recipient, data = outgoing(message, self.sign)
        self._pace()
        try:
            conn = self._begin(data, sender, recipient)
        except _Stale:
            log.info("%s closed the idle connection; reconnecting", self.server)
            conn = self._begin(data, sender, recipient, retry=False)
        return Staged(lambda: self._end(conn, sender, recipient), lambda: self._drop(conn))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except OSError:
                conn.close()

    def _begin(self, data: bytes, sender: str, recipient: str, retry: bool = True) -> _Connection:
        """What ``sendmail`` does up to the end of the body (without flattening the
        message again): MAIL FROM, RCPT TO, DATA, the dot-stuffed body."""
        reused = self._conn is not None
        conn = self._conn or self._connect()
        conn.phase = ""
        with self._outcome(conn, sender, recipient, reused and retry):
            options: list[str] = []
            if not (sender + recipient).isascii():
                if not conn.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError(
                        "the address needs SMTPUTF8, which the server does not offer"
                    )
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            if conn.does_esmtp and conn.has_extn("size"):
                options.insert(0, f"size={len(data)}")
            code, reply = conn.mail(sender, options)
            if code != 250:
                conn.reset_or_close(code)
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            code, reply = conn.rcpt(recipient)
            if code not in (250, 251):
                conn.reset_or_close(code)
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
            conn.putcmd("data")
            code, reply = conn.getreply()
            if code != 354:
                conn.reset_or_close(code)
                raise smtplib.SMTPDataError(code, reply)
            conn.phase = "body"
            body = _LINE_START_DOT.sub(b"..", data)
            conn.send(body if body.endswith(b"\r\n") else body + b"\r\n")
        return conn

    def _end(self, conn: _Connection, sender: str, recipient: str) -> None:
        """The final dot, and the server's answer: delivered, refused, or unknown."""
        if conn is not self._conn:  # dropped meanwhile: the server discarded the body
            raise TemporaryFailure(f"connection to {self.server} lost before the end of DATA")
        with self._outcome(conn, sender, recipient, stale_possible=False):
            conn.phase = "end"
            conn.send(END_OF_DATA)
            code, reply = conn.getreply()
            if code != 250:
                conn.reset_or_close(code)
                raise smtplib.SMTPDataError(code, reply)

    def _drop(self, conn: _Connection) -> None:
        """Leave a staged message undelivered: the connection goes without its dot."""
        if conn is self._conn:
            log.info(
                "dropping the connection to %s mid-DATA: that message is not sent", self.server
            )
            self._discard()

    @contextmanager
    def _outcome(
        self, conn: _Connection, sender: str, recipient: str, stale_possible: bool
    ) -> Iterator[None]:
        """smtplib's exceptions as outcomes (see the module's doc)."""
        try:
            yield
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(recipient, (0, b"refused"))
            raise _refusal(f"recipient {recipient} refused", code, reply) from None
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code == 421 and stale_possible:
                raise _Stale() from None
            if exc.smtp_code == 421:
                raise _refusal(f"{self.server} is closing", 421, exc.smtp_error) from None
            raise MailerBroken(f"SMTP server refused the sender {sender}: {_what(exc)}") from None
        except smtplib.SMTPDataError as exc:
            if not 400 <= exc.smtp_code < 600:  # a garbled answer: start afresh
                phase = conn.phase
                self._discard()
                if phase == "end":
                    raise TemporaryFailure(
                        f"{self.server} answered the end of DATA with {_what(exc)}; the "
                        "message may have been delivered",
                        unknown_outcome=True,
                    ) from None
                raise TemporaryFailure(
                    f"{self.server} answered DATA with {_what(exc)}; nothing was delivered"
                ) from None
            raise _refusal("message refused", exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPNotSupportedError as exc:  # a non-ASCII address, no SMTPUTF8
            raise PermanentFailure(f"{recipient}: {exc}") from None
        except OSError as exc:  # dropped, reset, timed out, or an unexpected reply
            phase = conn.phase
            self._discard()
            if phase == "mail" and stale_possible:
                raise _Stale() from None
            if phase == "end":
                raise TemporaryFailure(
                    f"connection to {self.server} lost during DATA ({_what(exc)}); "
                    "the message may have been delivered",
                    unknown_outcome=True,
                ) from None
            where = "before DATA" if phase in ("", "mail", "rcpt") else "before the end of DATA"
            raise TemporaryFailure(
                f"connection to {self.server} lost {where} ({_what(exc)})"
            ) from None
        except BaseException:  # interrupted mid-conversation: never reuse that connection
            self._discard()
            raise
        finally:
            if self._conn is not None and self._conn.sock is None:  # smtplib closed it (421)
                self._conn = None

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> _Connection:
        if self.settings.security == "ssl":
            conn: _Connection = _SslConnection(
                self.settings.host, timeout=self.settings.timeout, context=self.ssl_context
            )
        else:
            conn = _Connection(self.settings.host, timeout=self.settings.timeout)
        try:
            self._open(conn)
        except TemporaryFailure as failure:
            conn.close()
            self._failed_connects += 1
            if self._failed_connects >= self.connect_attempts:
                raise MailerBroken(
                    f"{failure.reason} ({self._failed_connects} attempts in a row)"
                ) from None
            raise
        except BaseException:
            conn.close()
            raise
        self._failed_connects = 0
        log.debug("connected to %s (%s)", self.server, self.settings.security)
        self._conn = conn
        return conn

    def _open(self, conn: _Connection) -> None:
        """Connect, EHLO, STARTTLS and EHLO again if asked for, login: all, or a failure."""
        s = self.settings
        try:
            code, reply = conn.connect(s.host, s.effective_port)
            # A staged message's final dot is a small write after the body's large one:
            # with Nagle's algorithm it would wait for the server's delayed ACK (40 ms).
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if code != 220:
                raise TemporaryFailure(f"{self.server} greeted with {code} {_text(reply)}")
            conn.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise MailerBroken(
                        f"{self.server} does not offer STARTTLS; refusing to send in clear "
                        "(set security: ssl or none if that is what the server wants)"
                    )
                conn.starttls(context=self.ssl_context)
                conn.ehlo_or_helo_if_needed()  # STARTTLS forgot the first EHLO
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise MailerBroken(
                f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise MailerBroken(f"{self.server} offers no login (AUTH) here") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise TemporaryFailure(f"cannot connect to {self.server}: {_what(exc)}") from None
        except smtplib.SMTPException as exc:  # EHLO/STARTTLS refused, no AUTH method in common
            raise MailerBroken(f"{self.server} refused the session: {_what(exc)}") from None
        except ssl.SSLError as exc:  # certificate not trusted, not TLS at all, …
            raise MailerBroken(f"TLS with {self.server} failed: {_what(exc)}") from None
        except OSError as exc:  # refused, unreachable, unknown host, timed out
            raise TemporaryFailure(f"cannot connect to {self.server}: {_what(exc)}") from None


def _refusal(what: str, code: int, reply: bytes | str) -> DeliveryFailed:
    failure = TemporaryFailure if 400 <= code < 500 else PermanentFailure
    return failure(f"{what}: {code} {_text(reply)}", status=code)


def _what(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    detail = next((d for d in (getattr(exc, "verify_message", None), str(exc)) if d), "")
    return f"{type(exc).__name__}: {detail}".rstrip(": ")


def smtp_transport(
    email: EmailSettings, *, sign: Callable[[bytes], bytes] | None = None, **kw: Any
) -> SmtpTransport:
    """``delivery: smtp``: the ``email.smtp`` server (settings require it)."""
    assert email.smtp is not None
    kw.setdefault("rate", email.rate)
    return SmtpTransport(email.smtp, sign=sign, **kw)
