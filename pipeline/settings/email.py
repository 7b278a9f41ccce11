"""``email:`` (how mail leaves) and ``digests:`` (what each digest holds and who gets it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.settings.base import Filters, OptionalSecret, Strict, normalise_language
from pipeline.settings.dkim import DkimSettings
from pipeline.settings.providers import SECTIONS, MailgunSettings, SesSettings
from pipeline.urls import WEB_URL

_ADDRESS = re.compile(r"^\s*(?:(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]+)>|(?P<bare>[^<>\s]+))\s*$")


def check_address(value: str) -> str:
    """``Name <addr@example.org>`` or ``addr@example.org``; the address must be valid."""
    match = _ADDRESS.match(value)
    if not match:
        raise ValueError("write news@example.org or Mountain News <news@example.org>")
    address = match.group("addr") or match.group("bare")
    refused = address_refused(address)
    if refused is not None:
        raise ValueError(f"{address!r} is not a valid email address: {refused}")
    return value.strip()


def address_refused(address: str) -> str | None:
    """Why email-validator refuses ``address`` (its syntax; nothing is looked up), or
    None. Imported on first use: its rules take ~0.04 s to build, and a site that sends
    no email never needs them."""
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


class SmtpSettings(Strict):
    host: str = Field(description="SMTP server host name.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Port; default 587 (starttls), 465 (ssl), 25 (none)."
    )
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="starttls (upgrade), ssl (implicit TLS) or none."
    )
    username: str | None = Field(None, description="Login name, if the server wants one.")
    password: OptionalSecret = Field(None, description="Login password.")
    timeout: float = Field(
        30, gt=0, le=600, allow_inf_nan=False, description="Seconds to wait for the server."
    )
    connections: int = Field(
        1,
        ge=1,
        le=50,
        description="SMTP connections each digest job keeps open at once (with a `queue:`, "
        "per worker job); `email.rate` holds across all of them together.",
    )

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class UnsubscribeSettings(Strict):
    url: str = Field(
        description="Public URL of the one-click unsubscribe endpoint (served by `pipeline "
        "serve`), e.g. https://news.example.org/unsubscribe."
    )
    secret: OptionalSecret = Field(
        None,
        description="Key that signs unsubscribe links; default: one generated on first use "
        "and kept in the state store.",
    )

    @property
    def origin(self) -> str:
        """scheme://host of the endpoints `pipeline serve` provides (unsubscribe, confirm,
        the digest archive): links in emails are built on it."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not WEB_URL.match(value):
            raise ValueError("must be an absolute URL; mail clients require https")
        return value


class BouncesSettings(Strict):
    domain: str | None = Field(
        None,
        description="Domain of the VERP envelope sender bounces+TOKEN@DOMAIN, whose MX points "
        "at `listen` (or at a server you import from); default: the From address's domain.",
    )
    listen: str | None = Field(
        None,
        description="host:port where `pipeline serve` accepts returned mail by SMTP, e.g. "
        "127.0.0.1:2525; unset: no listener (use `pipeline bounces import`).",
    )
    max_size: int = Field(
        1_000_000,
        ge=10_000,
        le=50_000_000,
        description="Largest returned message the listener accepts, in bytes.",
    )
    soft_limit: int = Field(
        3,
        ge=1,
        le=100,
        description="Temporary failures (4.x.x, delayed) of one address within "
        "`soft_window_days` that mark it bounced.",
    )
    soft_window_days: int = Field(
        7, ge=1, le=365, description="Days over which temporary failures are counted."
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        refused = address_refused(f"bounces@{value}")
        if refused is not None:
            raise ValueError(f"{value!r} is not a mail domain: {refused}")
        return value.strip().lower()

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: object) -> str | None:
        if value is None:
            return None
        host, _, port = str(value).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("write host:port, e.g. 127.0.0.1:2525")
        return str(value)


class WelcomeSettings(Strict):
    enabled: bool = Field(
        False,
        description="Send one welcome email when a subscriber confirms their sign-up, in "
        "their language (templates/welcome/LANGUAGE.txt.j2), at most once per address.",
    )


class EmailSettings(Strict):
    from_: str = Field(alias="from", description="Sender, e.g. Mountain News <news@example.org>.")
    reply_to: str | None = Field(None, description="Where replies go, if not to the sender.")
    delivery: str = Field(
        "outbox",
        description="outbox: write .eml files (no network); smtp: send; ses: Amazon SES; "
        "mailgun: Mailgun; or a plug-in's transport (pipeline.transports).",
    )
    outbox: Path = Field(Path("var/outbox"), description="Folder for .eml files (outbox delivery).")
    smtp: SmtpSettings | None = Field(None, description="The SMTP server (smtp delivery).")
    ses: SesSettings | None = Field(None, description="Amazon SES (ses delivery).")
    mailgun: MailgunSettings | None = Field(None, description="Mailgun (mailgun delivery).")
    rate: float = Field(
        0,
        ge=0,
        le=10_000,
        allow_inf_nan=False,
        description="At most this many messages a second; 0: as fast as the server takes.",
    )
    unsubscribe: UnsubscribeSettings = Field(description="One-click unsubscribe (RFC 8058).")
    list_id: str | None = Field(
        None, description="List-Id domain part; default: the site's host name."
    )
    bounces: BouncesSettings | None = Field(
        None,
        description="Returned mail and complaints: a VERP envelope sender per message, an "
        "SMTP listener in `serve`, suppression of dead and complaining addresses.",
    )
    dkim: DkimSettings | None = Field(
        None, description="Sign every message with DKIM (domain, selector, private key)."
    )
    welcome: WelcomeSettings = Field(
        WelcomeSettings(), description="The welcome email after a confirmed sign-up."
    )

    @property
    def bounce_domain(self) -> str | None:
        """Where returned mail goes (None: no `bounces:` section, nothing changes)."""
        if self.bounces is None:
            return None
        return self.bounces.domain or self.from_.rpartition("@")[2].strip(" >").lower()

    @field_validator("from_", "reply_to")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @model_validator(mode="after")
    def _smtp_given(self) -> EmailSettings:
        if self.delivery == "smtp" and self.smtp is None:
            raise ValueError("delivery: smtp needs an `smtp:` section with at least `host:`")
        needs = SECTIONS.get(self.delivery)
        if needs and getattr(self, self.delivery) is None:
            raise ValueError(
                f"delivery: {self.delivery} needs a `{self.delivery}:` section with {needs}"
            )
        return self


class AudienceSettings(Strict):
    languages: tuple[str, ...] = Field(
        (), description="Subscribers whose language is one of these."
    )
    topics: tuple[str, ...] = Field(
        (), description="Subscribers who chose at least one of these topics."
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_language(v) for v in values)


class DigestSettings(Filters):
    title: str = Field(
        description="Heading, and the subject line unless `subject` is set, e.g. This week "
        "at Mountain News."
    )
    language: str = Field(
        description="Language of the digest's own words and dates; also its articles' "
        "language unless `languages` says otherwise."
    )
    max_items: int = Field(10, ge=1, le=100, description="At most this many articles an edition.")
    min_items: int = Field(
        1, ge=1, le=100, description="Fewer new articles than this skips the edition (and says so)."
    )
    max_age_days: int = Field(
        7,
        ge=1,
        le=3660,
        description="The first edition takes the articles of this many days; later ones "
        "those since the previous edition sent, and at least this many days. Set it to the "
        "digest's schedule interval (1 daily, 7 weekly, 31 monthly).",
    )
    audience: AudienceSettings = Field(
        AudienceSettings(), description="Which subscribers get it; default: everyone active."
    )
    template: Path | None = Field(
        None, description="MJML template; default templates/digest.mjml.j2 (and .txt.j2)."
    )
    subject: str | None = Field(
        None,
        description="Subject line as a template, e.g. `{{ lead.title }} and {{ others }} "
        "more`; variables: lead (title, url, summary, authors, section), others, count, "
        "date, title, site. Default: the title.",
    )
    preheader: str | None = Field(
        None,
        description="Inbox preview text, a template like `subject`; default: the newest "
        "article's title.",
    )
    corrections: bool = Field(
        True,
        description="List the articles an earlier edition carried that were corrected "
        "since the previous edition.",
    )

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return normalise_language(value)

    @field_validator("subject", "preheader")
    @classmethod
    def _line_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        from pipeline.digest.subjects import check_line

        if value is not None:  # rendered against a sample edition: mistakes show here
            title, language = info.data.get("title", ""), info.data.get("language", "en")
            check_line(value, title=title, language=language)
        return value

    @model_validator(mode="after")
    def _min_below_max(self) -> DigestSettings:
        if self.min_items > self.max_items:
            raise ValueError("min_items cannot be larger than max_items")
        return self

    def article_languages(self) -> tuple[str, ...]:
        return self.languages or (self.language,)
