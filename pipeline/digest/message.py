"""One subscriber's copy of an edition, as the mail server will receive it."""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import urlencode, urlsplit

from email_validator import EmailNotValidError, validate_email

from pipeline.digest.render import Form, RenderedEdition, escape_html, forms, reader_values
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
    values = reader_values(
        unsubscribe_url=unsubscribe,
        name=subscriber.name,
        view_url=view_url(settings, digest_name, edition_id),
        preferences_url=preferences_url(email.unsubscribe.origin, secret, subscriber),
    )
    html, text = forms(rendered, values)
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
    parts = ((_encoded(text), str, "plain"), (_encoded(html), escape_html, "html"))
    message.set_payload(_alternative(boundary, values, parts))
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


QP_JOINABLE = 75  # octets of a last line that can still take a soft line break's "="


@dataclass(frozen=True)
class _EncodedForm:
    """A form (pipeline.digest.render) with its fixed pieces encoded once for the wire:
    quoted-printable pieces joined to each reader's encoded values by soft line breaks
    (``=`` CRLF, which decoders remove), so a copy costs a join, not an encoding of the
    whole part. Base64 cannot be cut like that: ``pieces`` is empty and each copy is
    encoded whole (fast, and only for mostly-Chinese parts)."""

    form: Form
    encoding: str  # quoted-printable | base64
    pieces: tuple[bytes, ...]

    def body(self, values: dict[str, str], escape: Callable[[str], str]) -> bytes:
        if self.encoding == "base64":
            data = _wire_text(self.form.fill(values, escape))
            chunks = (data[i : i + 57] for i in range(0, len(data), 57))
            return b"\r\n".join(binascii.b2a_base64(c, newline=False) for c in chunks)
        segments = [self.pieces[0]]
        for name, piece in zip(self.form.names, self.pieces[1:], strict=True):
            segments += (_quoted(escape(values[name])), piece)
        joined = b"=\r\n".join(segment for segment in segments if segment)
        return joined.rstrip(b"\r\n")  # the CRLF before the boundary is the boundary's


@functools.lru_cache(maxsize=32)
def _encoded(form: Form) -> _EncodedForm:
    """Quoted-printable keeps the markup readable; base64 where it is shorter
    (mostly-Chinese text), as the standard library itself chooses; judged on the fixed
    text, which is all but a few dozen characters of a part."""
    data = _wire_text("".join(form.pieces))
    if len(binascii.b2a_qp(data, istext=True)) <= len(data) * 4 // 3:
        return _EncodedForm(form, "quoted-printable", tuple(_quoted(p) for p in form.pieces))
    return _EncodedForm(form, "base64", ())


def _wire_text(content: str) -> bytes:
    """One kind of line end, as the generator would have made it, in UTF-8."""
    return content.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")


def _quoted(content: str) -> bytes:
    """Quoted-printable in CRLF lines, whose last line leaves room for the soft line
    break that may join it to what follows (lines of at most 76 octets, RFC 2045)."""
    quoted = binascii.b2a_qp(_wire_text(content), istext=True)
    start = quoted.rfind(b"\n") + 1
    if len(quoted) - start > QP_JOINABLE:
        # A line of 76 octets ends in a literal octet: b2a_qp breaks a line before an
        # =XX escape that would pass octet 76 (tested), so this cut splits no escape.
        cut = start + QP_JOINABLE
        quoted = quoted[:cut] + b"=\n" + quoted[cut:]
    return quoted.replace(b"\n", b"\r\n")


def _alternative(
    boundary: str,
    values: dict[str, str],
    parts: tuple[tuple[_EncodedForm, Callable[[str], str], str], ...],
) -> str:
    """The multipart/alternative body as it goes on the wire (CRLF), each part UTF-8
    encoded by binascii (C), not by ``set_content`` and the generator (pure Python: with
    the parsing of each part's headers, most of the time spent per recipient)."""
    lines = []
    for encoded, escape, subtype in parts:
        lines += [
            f"--{boundary}",
            f'Content-Type: text/{subtype}; charset="utf-8"',
            f"Content-Transfer-Encoding: {encoded.encoding}",
            "",
            encoded.body(values, escape).decode("ascii"),
        ]
    lines.append(f"--{boundary}--")
    return "\r\n".join(lines) + "\r\n"
