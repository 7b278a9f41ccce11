"""Keeping secrets out of what people read: messages, logs and run history.

Two kinds of secret reach output. Credentials written into a URL (``user:password@``,
``?token=…``) are masked wherever a URL is shown, with ``shown_url``. Configured
secret values (API tokens, webhook URLs, passwords) can come back inside text a server
echoes, so ``Redactor`` replaces each known value wherever it appears.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters that carry credentials in the APIs this project talks to.
_SECRET_PARAM = re.compile(
    r"(?i)^(access_?token|api_?key|apikey|auth|authorization|client_secret|code|key|"
    r"password|passwd|pwd|secret|sig|signature|token|x-amz-signature)$"
)


def shown_url(url: str) -> str:
    """``url`` as it may be printed: no userinfo password, no credential query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.match(name) for name, _ in pairs):
            query = urlencode(
                [(n, MASK if _SECRET_PARAM.match(n) else v) for n, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Redactor:
    """Replaces every configured secret value (and URLs' credentials) in a text."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret that contains another is masked whole; very short
        # values would mask ordinary words and are not secrets worth the name.
        values = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return text
