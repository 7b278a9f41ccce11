"""``email.dkim:``: the domain, selector and private key digests are signed with.

The key itself is read and judged by ``pipeline.dkim`` (an inline key here, as it is
validated; a key file once paths are resolved, see ``pipeline.dkim.config_problems``).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.settings.base import OptionalSecret, Strict, shown

# A DNS name of letters, digits and hyphens (RFC 1035), IDNA-encoded if need be; an
# underscore is allowed in a selector, which some providers use.
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MAX_NAME = 253


def _dns_name(value: str, example: str) -> str:
    value = value.strip().rstrip(".").lower()
    if len(value) > MAX_NAME or not _NAME.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a DNS name; write it like {example}")
    return value


class DkimSettings(Strict):
    domain: str = Field(
        description="Signing domain (d=), e.g. example.org: the From address's domain or "
        "a parent of it, so that DMARC sees the signature as aligned."
    )
    selector: str = Field(
        description="Selector (s=): the key's name in DNS, published at "
        "SELECTOR._domainkey.DOMAIN, e.g. news2026."
    )
    private_key_file: Path | None = Field(
        None,
        description="PEM file of the RSA (2048 bits or more) or Ed25519 private key; "
        "relative to the project folder. Give this or `private_key`.",
    )
    private_key: OptionalSecret = Field(
        None,
        description="The PEM private key itself, from the environment "
        "(`private_key: ${DKIM_PRIVATE_KEY}`). Give this or `private_key_file`.",
    )

    @field_validator("domain", "selector")
    @classmethod
    def _names(cls, value: str, info: ValidationInfo) -> str:
        return _dns_name(value, "example.org" if info.field_name == "domain" else "news2026")

    @field_validator("private_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        from pipeline.dkim import KeyProblem, parse_key

        if value:
            try:
                parse_key(value.encode("utf-8", "replace"))
            except KeyProblem as problem:  # the value is a secret: never shown
                raise ValueError(f"{problem.message}; {problem.fix}") from None
        return value

    @model_validator(mode="after")
    def _one_key(self) -> DkimSettings:
        if (self.private_key_file is None) == (not self.private_key):
            raise ValueError(
                "give exactly one of `private_key_file:` (a PEM file) and "
                "`private_key: ${DKIM_PRIVATE_KEY}` (the key from the environment)"
            )
        return self

    def resolved(self, root: Path) -> DkimSettings:
        """With ``private_key_file`` relative to the project folder ``root``."""
        if self.private_key_file is None:
            return self
        return self.model_copy(update={"private_key_file": root / self.private_key_file})
