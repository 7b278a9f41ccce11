"""One subscriber's copy of an edition, as the mail server will receive it."""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
from contextlib import suppress
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import urlencode, urlsplit

from email_validator import EmailNotValidError, validate_email

from pipeline.digest.render import RenderedEdition, personalise
from pipeline.mailer import EncodedMessage
from pipeline.preferences import preferences_url
from pipeline.settings import Settings
from pipeline.settings.email import DigestSettings
from pipeline.subscribers import Subscriber
from pipeline.tokens import UNSUBSCRIBE_TOKEN, sign
from pipeline.verp import verp_address


def build_message(
    settings: Settings,
    edition_id: str,
    digest_name: str,
    rendered: RenderedEdition,
    digest: DigestSettings,
    subscriber: Subscriber,
    secret: str,
    now: dt.datetime,
) -> EmailMessage:
    """multipart/alternative (text, then HTML) with RFC 8058 one-click unsubscribe
    headers and a Message-ID stable for (edition, subscriber)."""
    email, site = settings.email, settings.site
    assert email is not None
    token = sign(secret, UNSUBSCRIBE_TOKEN, subscriber.id, digest_name, email=subscriber.email)
    unsubscribe = f"{email.unsubscribe.url}?{urlencode({'token': token})}"
    html, text = personalise(
        rendered,
        unsubscribe_url=unsubscribe,
        name=subscriber.name,
        view_url=view_url(settings, digest_name, edition_id),
        preferences_url=preferences_url(email.unsubscribe.origin, secret, subscriber),
    )
    domain = email.list_id or urlsplit(site.url).hostname or "localhost"
    from_address = parseaddr(email.from_)[1]
    sender_domain = from_address.rpartition("@")[2] or domain
    identifier = message_id(edition_id, subscriber.id, sender_domain)
    bounce_domain = email.bounce_domain
    # "=_" cannot occur in quoted-printable or base64 text, so no part can contain the
    # boundary and there is nothing to search for (as the generator would).
    boundary = f"=_{_digest_id(edition_id, subscriber.id)}"
    message = EncodedMessage()
    return_path = bounce_domain and verp_address(
        secret, bounce_domain, subscriber.id, subscriber.email, identifier
    )
    to_address = recipient_address(subscriber.email)
    headers = {
        # only the envelope (MAIL FROM): pipeline.mailer never sends this header
        "Return-Path": return_path,
        "From": email.from_,
        "To": recipient(subscriber.name, to_address),
        "Reply-To": email.reply_to,
        "Subject": rendered.subject,
        "Date": format_datetime(now.astimezone(dt.UTC)),
        "Message-ID": identifier,
        "List-Id": f"{digest.title} <{digest_name}.{domain}>",
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated",
        "Content-Language": digest.language,
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/alternative; boundary="{boundary}"',
    }
    for name, value in headers.items():
        if not value:
            continue
        if value.isascii() and "\r" not in value and "\n" not in value:
            # Plain ASCII as we wrote it: stored as is, not parsed into header
            # objects (that parsing was a third of the time per recipient), and sent
            # as is (pipeline.mailer.wire_bytes): List-Unsubscribe stays <https://…>.
            message.set_raw(name, value)
        else:
            message[name] = value  # encoded (RFC 2047), and line breaks refused
    # The body is stored already encoded: the generator writes a string payload of a
    # multipart message as it is (pipeline.mailer.wire_bytes), instead of flattening
    # two parts anew for every recipient.
    message.set_payload(_alternative(boundary, ((text, "plain"), (html, "html"))))
    sender = return_path or from_address
    if sender and to_address:  # else `envelope` reads the headers, and says what is wrong
        message.addresses = (sender, to_address)
    return message


def recipient_address(email: str) -> str:
    """The address as mail goes to it: an internationalised domain in its ASCII (IDNA)
    form, so only a non-ASCII local part needs a server that speaks SMTPUTF8."""
    if not email.isascii():
        # (An address the validator now refuses was imported earlier: the server judges.)
        with suppress(EmailNotValidError):
            email = validate_email(email, check_deliverability=False).ascii_email or email
    return email


def recipient(name: str, email: str) -> str:
    """The To header's value, for ``recipient_address(email)``. A non-ASCII local part is
    written as is (``formataddr`` refuses it) and sent as UTF-8 (RFC 6532)."""
    email = recipient_address(email)
    if email.isascii():
        return formataddr((name, email))
    local, _, domain = email.rpartition("@")
    return str(Address(display_name=name, username=local, domain=domain))


def message_id(edition_id: str, subscriber_id: int, sender_domain: str) -> str:
    """The same for every try of one edition to one subscriber (the ledger keeps it, so
    an uncertain delivery can be looked up in the mail server's log)."""
    return f"<{_digest_id(edition_id, subscriber_id)}@{sender_domain}>"


def _digest_id(edition_id: str, subscriber_id: int) -> str:
    return hashlib.sha256(f"{edition_id}\n{subscriber_id}".encode()).hexdigest()[:32]


def view_url(settings: Settings, digest_name: str, edition_id: str) -> str | None:
    """The edition in a browser (served by ``pipeline serve``, beside /unsubscribe); None
    for one that is never stored, so has no page (a preview, ``NAME@preview``): its
    "View in your browser" link is left out rather than lead to a 404."""
    assert settings.email is not None
    origin = settings.email.unsubscribe.origin
    when = edition_id.partition("@")[2]
    if not when[:1].isdigit():
        return None
    return f"{origin}/digests/{digest_name}/{when}"


def _alternative(boundary: str, parts: tuple[tuple[str, str], ...]) -> str:
    """The multipart/alternative body as it goes on the wire (CRLF), each part UTF-8
    encoded by binascii (C), not by ``set_content`` and the generator (pure Python: with
    the parsing of each part's headers, most of the time spent per recipient).
    Quoted-printable keeps the markup readable; base64 where it is shorter (mostly-Chinese
    text), as the standard library itself chooses."""
    lines = []
    for content, subtype in parts:
        # one kind of line end before encoding, as the generator would have made it
        data = content.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
        quoted = binascii.b2a_qp(data, istext=True)
        if len(quoted) <= len(data) * 4 // 3:
            encoding, encoded = "quoted-printable", quoted.rstrip(b"\n").replace(b"\n", b"\r\n")
        else:
            chunks = (data[i : i + 57] for i in range(0, len(data), 57))
            encoding = "base64"
            encoded = b"\r\n".join(binascii.b2a_base64(c, newline=False) for c in chunks)
        lines += [
            f"--{boundary}",
            f'Content-Type: text/{subtype}; charset="utf-8"',
            f"Content-Transfer-Encoding: {encoding}",
            "",
            encoded.decode("ascii"),
        ]
    lines.append(f"--{boundary}--")
    return "\r\n".join(lines) + "\r\n"
