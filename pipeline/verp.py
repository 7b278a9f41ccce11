"""VERP: an envelope sender per message, so returned mail names its recipient.

Each digest message goes out with MAIL FROM ``bounces+SUBSCRIBER-MESSAGE-SIGNATURE@DOMAIN``
(``bounces+12-3f9a0c1d-k3j5…@news.example.org``): the subscriber's id, the first eight
characters of the message's Message-ID, and a signature (pipeline.tokens) over both and
the subscriber's address. Whatever a remote server does to the report it sends back
(a DSN that quotes the wrong address, or none), the address it was sent *to* names the
recipient. A forged or altered token, or one for an address the subscriber no longer
has, is not trusted: the report's own Final-Recipient is used instead.

The From header is left as configured; only the envelope changes (the ``Return-Path``
header of the message, which pipeline.mailer uses as MAIL FROM and never sends).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.tokens import address_hash, short_signature, short_signature_matches

PURPOSE = "verp"
LOCAL = "bounces"
_ADDRESS = re.compile(
    rf"^{LOCAL}\+(?P<id>[0-9]{{1,19}})-(?P<ref>[0-9a-f]{{8}})-(?P<sig>[a-z2-7]{{16}})@(?P<domain>[^@\s]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verp:
    subscriber_id: int
    message_ref: str  # the first 8 characters of the message's Message-ID
    domain: str
    signature: str


def message_ref(message_id: str) -> str:
    return message_id.strip("<> ")[:8].lower()


def verp_address(secret: str, domain: str, subscriber_id: int, email: str, message_id: str) -> str:
    ref = message_ref(message_id)
    signature = short_signature(secret, PURPOSE, str(subscriber_id), ref, address_hash(email))
    return f"{LOCAL}+{subscriber_id}-{ref}-{signature}@{domain}"


def is_verp(address: str, domain: str | None = None) -> bool:
    """Shaped like one of ours (for ``domain``, if given); the signature is not checked."""
    found = parse(address)
    return found is not None and (domain is None or found.domain == domain.lower())


def parse(address: str) -> Verp | None:
    found = _ADDRESS.match(address.strip().strip("<>"))
    if found is None or not found["domain"].isascii():
        return None
    subscriber = int(found["id"])
    if subscriber > 2**63 - 1:
        return None
    return Verp(subscriber, found["ref"].lower(), found["domain"].lower(), found["sig"].lower())


def recipient(secret: str, address: str, email_of: Callable[[int], str | None]) -> str | None:
    """The subscriber's address a genuine VERP ``address`` names (``email_of`` looks a
    subscriber id up); None when it is not one of ours, altered, or forged."""
    found = parse(address)
    if found is None:
        return None
    email = email_of(found.subscriber_id)
    if email is None:
        return None
    fields = (str(found.subscriber_id), found.message_ref, address_hash(email))
    return email if short_signature_matches(secret, found.signature, PURPOSE, *fields) else None
