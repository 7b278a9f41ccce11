"""Keeping secrets out of what people read: messages, logs and run history.

Two kinds of secret reach output. Credentials written into a URL (``user:password@``,
``?token=…``) are masked wherever a URL is shown, with ``shown_url``. Configured
secret values (API tokens, webhook URLs, passwords) can come back inside text a server
echoes, so ``Redactor`` replaces each known value wherever it appears, in the spellings
an echo may use (percent-encoded, JSON- or HTML-escaped, a URL's path alone).

Where it is applied:

- every channel holds a ``Redactor`` of its own options (``secrets_of(options)``), and
  ``pipeline.channels.http`` passes every reason built from a server's answer through it
  before the reason reaches the delivery ledger, history or the screen;
- ``install(settings)`` makes a Redactor of *every* secret in the loaded settings the
  process-wide one: the logging filter (``RedactingFilter``) and ``scrub``
  use it.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET = 6  # shorter values would mask ordinary words and are not secrets worth the name
MIN_PATH = 8  # a secret URL's path alone (what a server echoing its request line shows)
MIN_SEGMENT = 16  # a token-like piece of a secret URL's path (Discord's, Slack's, Teams')

# Query parameters that carry credentials in the APIs this project talks to and in
# signed URLs (S3, Azure SAS, Teams workflows).
_SECRET_PARAM = re.compile(
    r"(?i)^(?:.*(?:token|secret|passw|signature|api_?key|apikey|credential|session_?id).*"
    r"|pwd|pass|sig|key|auth|authorization|code|client_secret)$"
)
# A URL anywhere in a text: its credentials are masked whether or not they are configured.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>\\]+")
# Credentials a server may echo that no setting names: an Authorization header's value
# (Bluesky's session tokens, for one), a bearer token, and JSON Web Tokens.
_AUTH_HEADER = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?\s*(?:(?:bearer|basic|token)\s+)?)"
    r"[^\s\"',;}]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# Settings fields that hold a credential even when not marked ``Secret``.
_SECRET_FIELD = re.compile(r"(?i)(token|password|passwd|secret|api_?key|webhook_url)$")


def shown_url(url: str) -> str:
    """``url`` as it may be printed: no userinfo password, no credential query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc, changed = parts.netloc, False
    if "@" in netloc:
        changed = True
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.match(name) for name, _ in pairs):
            changed = True
            query = urlencode(
                [(n, MASK if _SECRET_PARAM.match(n) else v) for n, v in pairs], safe="*"
            )
    if not changed:  # byte for byte as given: urlunsplit would normalise it
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_credentials(url: str) -> list[str]:
    """The credential parts of a URL: its userinfo password, its secret query values."""
    if "://" not in url:
        return []
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    found += [v for n, v in parse_qsl(parts.query) if _SECRET_PARAM.match(n)]
    return found


def spellings(secret: str) -> set[str]:
    """``secret`` as it may appear in text: as is, percent-encoded, JSON- and HTML-escaped;
    for a URL also the other scheme, its request target, and its token-like pieces."""
    found = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        secret.replace("/", "\\/"),  # JSON as PHP and others write it
        html.escape(secret),
    }
    if "://" in secret:
        found |= _url_spellings(secret)
    return {s for s in found if len(s) >= MIN_SECRET}


def _url_spellings(url: str) -> set[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found = set(url_credentials(url))
    if parts.scheme in ("http", "https"):
        other = "https" if parts.scheme == "http" else "http"
        found.add(urlunsplit(parts._replace(scheme=other)))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(target) >= MIN_PATH:  # an echoed request line shows only this part
        found |= {target, parts.path} if len(parts.path) >= MIN_PATH else {target}
    found |= {s for s in parts.path.split("/") if len(s) >= MIN_SEGMENT}
    found |= {v for _, v in parse_qsl(parts.query) if len(v) >= MIN_SEGMENT}
    return found


class Redactor:
    """Masks every configured secret value, URLs' credentials, Authorization values and
    JSON Web Tokens in a text. Calling it on text that holds none returns it unchanged."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str | None) -> Redactor:
        """Also mask these values (e.g. a session token obtained at run time)."""
        new = {v for s in secrets if s for v in spellings(s)} - self._secrets
        if new:
            self._secrets |= new
            # Longest first, so a secret that contains another is masked whole.
            values = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in values))
        return self

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        text = _URL_IN_TEXT.sub(lambda m: shown_url(m.group(0)), text)
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
        return _JWT.sub(MASK, text)


def secrets_of(model: Any) -> list[str]:
    """Every secret value in a settings object (``Settings`` or one part of it, such as a
    channel's options): fields marked ``Secret`` or ``SecretStr``, fields named like a
    credential (token, password, secret, webhook_url), a channel's ``url`` (where posts go:
    for a webhook it is the credential), and the credentials inside every URL (a source's
    ``user:password@``, the state store's database password, ``?token=``)."""
    from pydantic import BaseModel, SecretStr

    from pipeline.settings.base import is_secret
    from pipeline.settings.channels import ChannelOptions

    found: list[str] = []

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str):
            found.extend([value] if secret else url_credentials(value))
        elif isinstance(value, BaseModel):
            for name, info in type(value).model_fields.items():
                named = is_secret(info) or bool(_SECRET_FIELD.search(name))
                posted_to = isinstance(value, ChannelOptions) and name == "url"
                walk(getattr(value, name), named or posted_to)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, secret)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item, secret)

    walk(model, False)
    return [s for s in dict.fromkeys(found) if s]


def redactor_for(model: Any) -> Redactor:
    """A Redactor of every secret in ``model`` (see ``secrets_of``)."""
    return Redactor(secrets_of(model))


_current = Redactor()


def install(settings: Any) -> Redactor:
    """Make the loaded settings' secrets the process-wide ones: every log record (through
    ``RedactingFilter``, attached here to the handlers that exist) and every
    ``scrub`` call masks them from now on. Call it once, right after loading settings."""
    global _current
    _current = redactor_for(settings)
    guard_handlers()
    return _current


def current() -> Redactor:
    """The Redactor ``install`` made (before it: URL credentials and tokens only)."""
    return _current


def scrub(text: str) -> str:
    """``text`` with every installed secret masked: for messages printed to people."""
    return _current(text)


# -- logging: every record masked before a handler writes it -------------------------------


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler writes it. It rewrites the record in
    place (message formatted, arguments dropped, traceback rendered to text), so every
    handler after it sees the clean version. Attached to handlers, not loggers: a
    logger's filters do not apply to records its children propagate to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        clean = current()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it; keep the raw text
            message = str(record.msg)
        record.msg, record.args = clean(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: clean(v) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = clean(_FORMATTER.formatException(record.exc_info))
            record.exc_info = None  # only the cleaned text may be shown now
        elif record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = clean(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
_FILTER = RedactingFilter()


def guard(handler: logging.Handler) -> logging.Handler:
    """``handler`` with the redacting filter (once)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(_FILTER)
    return handler


def guard_handlers() -> None:
    """Put the redacting filter on every handler that exists: the pipeline's, the root
    logger's, and Python's last-resort handler (which prints warnings to stderr when
    logging was never configured, as in ``pipeline post``)."""
    for name in ("pipeline", None):
        for handler in logging.getLogger(name).handlers:
            guard(handler)
    if logging.lastResort is not None:
        guard(logging.lastResort)
