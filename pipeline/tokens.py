"""Signed tokens for links in emails and forms: unsubscribe, confirm a sign-up, and the
subscribe form's anti-forgery token.

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
import time
from dataclasses import dataclass

from pipeline.errors import PipelineError

SECRET_NAME = "email:link-secret"


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
        return hmac.compare_digest(self.address, address_hash(email))


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


def verify(secret: str, token: str, purpose: str, now: float | None = None) -> TokenClaims:
    """The claims of a genuine, unexpired token for ``purpose``; InvalidToken otherwise."""
    try:
        body, signature = token.split(".")
        expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise InvalidToken("the link's signature does not match")
        claims = json.loads(_unb64(body))
        expires = claims.get("x")
        found = TokenClaims(
            str(claims["p"]),
            int(claims["s"]),
            str(claims["l"]),
            str(claims.get("a", "")),
            int(expires) if expires is not None else None,
        )
    except InvalidToken:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidToken(f"the link is malformed ({type(exc).__name__})") from None
    if found.purpose != purpose:
        raise InvalidToken(f"the link is for {found.purpose!r}, not {purpose!r}")
    if found.expires is not None and (time.time() if now is None else now) > found.expires:
        raise InvalidToken("the link has expired")
    return found


def link_secret(configured: str | None, memory) -> str:
    """The configured secret, else one generated on first use and kept in the state store
    (``memory`` is the Store), so links keep working across restarts."""
    if configured:
        return configured
    return memory.value_or_create(SECRET_NAME, lambda: {"secret": secrets.token_urlsafe(32)})[
        "secret"
    ]
