"""The SMTP listener of ``pipeline serve`` for returned mail (``email.bounces.listen``).

It accepts mail only for the bounce domain's ``bounces+…`` addresses (the VERP senders
of pipeline.verp) and ``bounces@`` itself (the address to register with mailbox
providers' feedback loops); any other recipient gets 550, so it is no open relay and no
inbox. A message over ``email.bounces.max_size`` gets 552. Each accepted message is read
and recorded (pipeline.bounce_inbox) before the 250: if recording fails (the database
is down), the answer is 451 and the sending server tries again later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller

from pipeline.bounce_inbox import ReturnedMail
from pipeline.errors import PipelineError
from pipeline.verp import LOCAL, is_verp


class BounceHandler:
    def __init__(self, inbox: ReturnedMail, domain: str, log: logging.Logger):
        self.inbox = inbox
        self.domain = domain.lower()
        self.log = log

    def accepts(self, address: str) -> bool:
        local, _, domain = address.strip().rpartition("@")
        if domain.lower() != self.domain:
            return False
        return local.lower() == LOCAL or is_verp(address, self.domain)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.accepts(address):
            return f"550 5.1.1 <{address}>: no such mailbox; this server takes returned mail only"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            reading = await loop.run_in_executor(
                None, self.inbox.receive, data, list(envelope.rcpt_tos), "by SMTP"
            )
        except Exception:
            self.log.exception("returned mail could not be recorded")
            return "451 4.3.0 cannot record the report now; try again later"
        return f"250 2.0.0 OK: {reading.kind}"


def bounce_listener(
    listen: str, inbox: ReturnedMail, domain: str, max_size: int, log: logging.Logger
) -> Controller:
    """A started listener on ``listen`` (host:port); ``.stop()`` it when done."""
    host, _, port = listen.rpartition(":")
    controller = Controller(
        BounceHandler(inbox, domain, log),
        hostname=host.strip("[]"),
        port=int(port),
        data_size_limit=max_size,
        decode_data=False,
        ready_timeout=10,
    )
    try:
        controller.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise PipelineError(
            f"cannot listen for returned mail on {listen}: {exc}; choose another "
            "`email.bounces.listen` or stop what uses it"
        ) from None
    return controller
