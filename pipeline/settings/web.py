"""Settings of the web endpoints `pipeline serve` runs beside the schedules."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from pipeline.settings.base import Strict
from pipeline.urls import is_web_origin


class WebSettings(Strict):
    listen: str = Field(
        "127.0.0.1:8080",
        description="host:port to serve on; put a TLS-terminating proxy in front for the public.",
    )
    subscribe_per_hour: int = Field(
        5, ge=1, le=10_000, description="Sign-up requests allowed per client address per hour."
    )
    allowed_origins: tuple[str, ...] = Field(
        (),
        description="Other sites whose pages may post the subscribe form (e.g. "
        "https://www.example.org); the endpoints' own origin is always allowed.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        ("127.0.0.1",),
        description="Proxies whose X-Forwarded-For names the real client (for rate limits).",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        match = re.fullmatch(r"[^\s:]+:(\d{1,5})", value)
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            raise ValueError("write host:port with a port from 1 to 65535, e.g. 127.0.0.1:8080")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not is_web_origin(value):
                raise ValueError(f"{value!r} is not an origin; write e.g. https://www.example.org")
        return tuple(v.lower() for v in values)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])
