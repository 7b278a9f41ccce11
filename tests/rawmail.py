"""Mail as the receiving server has it: the raw bytes aiosmtpd was sent (before any
parsing), split into header lines and decoded text parts the way a mail client does,
without ``email.parser`` (which would decode a mangled header and hide the bug).

``inbox`` here replaces the fixture of the same name in conftest for the modules that
import it, so ``mail_project`` and ``live_site`` send through it."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Inbox, free_port

MAX_LINE = 998  # RFC 5322 §2.1.1, CRLF not counted


class RawInbox(Inbox):
    """conftest's Inbox that also keeps every message's bytes exactly as received."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.original_content)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def inbox() -> Iterator[tuple[RawInbox, int]]:
    handler = RawInbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    yield handler, port
    handler.release.set()
    controller.stop()


@dataclass
class RawMessage:
    raw: bytes
    header_lines: list[bytes]  # physical lines of the top-level header block
    fields: dict[str, list[bytes]]  # lower-cased name -> physical lines of each field
    parts: dict[str, str]  # "text/plain" / "text/html" -> decoded text


def split(raw: bytes) -> RawMessage:
    """Header block, fields and decoded text parts of one raw message (a single part or
    a multipart/alternative of text parts, as the pipeline sends)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = _fields(lines)
    parts: dict[str, str] = {}
    content_type = unfolded(fields.get("content-type", [b"Content-Type: text/plain"]))
    boundary = re.search(r'boundary="?([^";\s]+)"?', content_type)
    if boundary is None:
        parts[_type(content_type)] = _decode(fields, body)
    else:
        marker = b"--" + boundary.group(1).encode("ascii")
        for chunk in body.split(marker)[1:]:
            if chunk.startswith(b"--"):
                break
            part_head, _, part_body = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
            part_fields = _fields(part_head.split(b"\r\n"))
            kind = unfolded(part_fields["content-type"])
            parts[_type(kind)] = _decode(part_fields, part_body)
    return RawMessage(raw, lines, fields, parts)


def unfolded(lines: list[bytes]) -> str:
    """One field's value with its folding removed (RFC 5322 §2.2.3): the CRLFs go, the
    whitespace after them stays. ASCII only: a raw 8-bit byte fails here."""
    value = b"\r\n".join(lines).partition(b":")[2].removeprefix(b" ")
    return value.replace(b"\r\n", b"").decode("ascii")


def _fields(lines: list[bytes]) -> dict[str, list[bytes]]:
    fields: dict[str, list[bytes]] = {}
    current: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            current.append(line)
            continue
        name = line.partition(b":")[0].decode("ascii").lower()
        current = [line]
        assert name not in fields, f"{name} appears twice"
        fields[name] = current
    return fields


def _type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _decode(fields: dict[str, list[bytes]], body: bytes) -> str:
    encoding = unfolded(fields.get("content-transfer-encoding", [b"x: 7bit"])).strip().lower()
    if encoding == "quoted-printable":
        data = binascii.a2b_qp(body)
    elif encoding == "base64":
        data = base64.b64decode(body)
    else:
        data = body
    charset = re.search(r'charset="?([\w-]+)', unfolded(fields["content-type"]))
    text = data.decode(charset.group(1) if charset else "ascii")
    return text.replace("\r\n", "\n")
