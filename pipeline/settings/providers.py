"""``email.ses`` and ``email.mailgun``: the mail providers' HTTP APIs (``delivery: ses`` /
``delivery: mailgun``), each with what its transport and its notifications need."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.settings.base import OptionalSecret, Secret, Strict
from pipeline.urls import WEB_URL

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.I)
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:[A-Za-z0-9_-]{1,256}")
MAILGUN_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


def _api_url(value: str | None) -> str | None:
    if value is not None and not WEB_URL.fullmatch(value):
        raise ValueError(
            "must be an absolute http(s) URL, e.g. https://email.eu-west-1.amazonaws.com"
        )
    return value.rstrip("/") if value else value


class SesSettings(Strict):
    region: str = Field(description="AWS region of the SES account, e.g. eu-west-1.")
    access_key_id: str | None = Field(
        None,
        description="Access key id; default: boto3's usual chain (AWS_ACCESS_KEY_ID, "
        "~/.aws/credentials, an instance or task role).",
    )
    secret_access_key: OptionalSecret = Field(
        None, description="Secret access key of `access_key_id`."
    )
    configuration_set: str | None = Field(
        None,
        description="SES configuration set to send with (its event destination publishes "
        "bounces and complaints to SNS).",
    )
    endpoint_url: str | None = Field(
        None, description="API address; default: the region's SES endpoint."
    )
    notification_topics: tuple[str, ...] = Field(
        (),
        description="ARNs of the SNS topics whose bounce and complaint notifications "
        "POST /hooks/ses takes (any AWS account can sign messages of its own topics, so "
        "every other topic is refused).",
    )
    timeout: float = Field(
        30, gt=0, le=600, allow_inf_nan=False, description="Seconds to wait for SES."
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError(f"{value[:40]!r} is not an AWS region; write e.g. eu-west-1")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _api_url(value)

    @field_validator("notification_topics")
    @classmethod
    def _topics(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _TOPIC.fullmatch(value):
                raise ValueError(
                    f"{value[:80]!r} is not an SNS topic ARN; write "
                    "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
                )
        return values

    @model_validator(mode="after")
    def _key_pair(self) -> SesSettings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "give both access_key_id and secret_access_key, or neither (then boto3 "
                "finds credentials in the environment or the instance role)"
            )
        return self


class MailgunSettings(Strict):
    domain: str = Field(description="The sending domain as Mailgun knows it, e.g. mg.example.org.")
    api_key: Secret = Field(description="Mailgun API key (Sending API key).")
    region: Literal["us", "eu"] = Field(
        "us", description="us or eu: where the domain was created in Mailgun."
    )
    base_url: str | None = Field(
        None, description="API address; default: https://api.mailgun.net (us) or the eu one."
    )
    webhook_signing_key: OptionalSecret = Field(
        None,
        description="HTTP webhook signing key (Mailgun: Sending → Webhooks); without it "
        "POST /hooks/mailgun refuses every notification.",
    )
    timeout: float = Field(
        30, gt=0, le=600, allow_inf_nan=False, description="Seconds to wait for Mailgun."
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not _DOMAIN.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not a domain name; write e.g. mg.example.org")
        return value.lower()

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return _api_url(value)

    @property
    def api_url(self) -> str:
        return self.base_url or MAILGUN_URLS[self.region]


SECTIONS = {"ses": "region", "mailgun": "domain and api_key"}
"""The provider deliveries, each needing ``email.NAME``, and what that must hold."""
