"""Signed tokens for links in emails and forms: unsubscribe, confirm a sign-up, the
preference page, and the subscribe form's anti-forgery token.

A token names a purpose, a subscriber, a list and (a hash of) the address it was made
for, and is signed with HMAC-SHA256, so it cannot be forged, altered, or used for
another person, address, list or purpose; it may carry an expiry. Format:
``base64url(json payload) "." base64url(signature)``; no secret data is inside.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from pipeline.clock import system_clock
from pipeline.errors import PipelineError

SECRET_NAME = "email:link-secret"
UNSUBSCRIBE_TOKEN = "unsubscribe"  # the purpose of a one-click unsubscribe link's token
PREFERENCES_TOKEN = "preferences"  # the preference page's link, in every digest's footer
# Claims are only ever what ``sign`` wrote, so anything else in a genuinely signed
# payload (a list, a float id, an id past the database's integers, a list name longer
# than the column) is refused here rather than reaching the database.
MAX_ID = 2**63 - 1
MAX_TEXT = 100  # the longest list name the store keeps (list_unsubscribes.list_name)


class InvalidToken(PipelineError):
    """The token is malformed, tampered with, or for another purpose."""


@dataclass(frozen=True)
class TokenClaims:
    purpose: str
    subscriber_id: int
    list_name: str
    address: str = ""  # address_hash() of the email it was made for ("" if none)
    expires: int | None = None  # unix time

    def is_for(self, email: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
        return hmac.compare_digest(self.address.encode(), address_hash(email).encode())


def address_hash(email: str) -> str:
    """Binds a token to an address, so an id reused after a deletion does not match."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(
    secret: str,
    purpose: str,
    subscriber_id: int,
    list_name: str,
    *,
    email: str = "",
    expires: int | None = None,
) -> str:
    claims: dict[str, object] = {"p": purpose, "s": subscriber_id, "l": list_name}
    if email:
        claims["a"] = address_hash(email)
    if expires is not None:
        claims["x"] = expires
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    body = _b64(payload)
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def _now() -> float:
    """Unix time, as tokens carry it: the system clock's reading."""
    return system_clock().timestamp()


def verify(secret: str, token: str, purpose: str, now: float | None = None) -> TokenClaims:
    """The claims of a genuine, unexpired token for ``purpose``; InvalidToken otherwise.

    ``now`` (unix time) is the clock to judge expiry by, default the current time: a
    token is still valid at its expiry second and refused after it."""
    if not token:
        raise InvalidToken("the link has no token")
    try:
        body, signature = token.split(".")
        expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
        given = _unb64(signature)
        # Only the text sign() wrote: base64 decoders ignore a final character's spare
        # bits, so several texts decode to one signature.
        if not hmac.compare_digest(expected, given) or _b64(given) != signature:
            raise InvalidToken("the link's signature does not match")
        found = _claims(json.loads(_unb64(body)))
    except (ValueError, RecursionError) as exc:  # base64, UTF-8, JSON nested too deep
        raise InvalidToken(f"the link is malformed ({type(exc).__name__})") from None
    if found.purpose != purpose:
        raise InvalidToken(f"the link is for {found.purpose!r}, not {purpose!r}")
    if found.expires is not None and (_now() if now is None else now) > found.expires:
        raise InvalidToken("the link has expired")
    return found


def _claims(raw: object) -> TokenClaims:
    """The claims exactly as ``sign`` writes them, or InvalidToken."""
    if not isinstance(raw, dict) or not {"p", "s", "l"} <= raw.keys() <= {"p", "s", "l", "a", "x"}:
        raise InvalidToken("the link's payload is not a set of claims")
    purpose, subscriber, list_name = raw["p"], raw["s"], raw["l"]
    address, expires = raw.get("a", ""), raw.get("x")
    texts = (purpose, list_name, address)
    # Printable: no NUL (PostgreSQL refuses it), no lone surrogate (not encodable).
    if not all(isinstance(v, str) and len(v) <= MAX_TEXT and v.isprintable() for v in texts):
        raise InvalidToken("the link's claims are not text")
    if not _is_int(subscriber) or not (expires is None or _is_int(expires)):
        raise InvalidToken("the link's claims are not whole numbers")
    return TokenClaims(purpose, subscriber, list_name, address, expires)


def _is_int(value: object) -> bool:
    # bool is an int to Python, and JSON's true must not pass for subscriber 1
    return type(value) is int and 0 <= value <= MAX_ID


def link_secret(configured: str | None, memory) -> str:
    """The configured secret, else one generated on first use and kept in the state store
    (``memory`` is the Store), so links keep working across restarts."""
    if configured:
        return configured
    return memory.value_or_create(SECRET_NAME, lambda: {"secret": secrets.token_urlsafe(32)})[
        "secret"
    ]


def short_signature(secret: str, purpose: str, *fields: str) -> str:
    """A 16-character signature of ``fields`` for ``purpose``, in lower-case base32: for
    places a full token does not fit, such as the local part of a VERP address (at most
    64 octets, RFC 5321 §4.5.3.1.1, and lower-cased by some servers on the way back).
    80 bits of HMAC-SHA256: enough against guessing, where each guess costs a mail."""
    text = "\n".join((purpose, *fields)).encode()
    mac = hmac.new(secret.encode(), text, hashlib.sha256).digest()[:10]
    return base64.b32encode(mac).decode().lower()


def short_signature_matches(secret: str, signature: str, purpose: str, *fields: str) -> bool:
    expected = short_signature(secret, purpose, *fields)
    return hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace"))
