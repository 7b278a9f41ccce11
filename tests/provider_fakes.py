"""Fake Amazon SES and Mailgun APIs on 127.0.0.1: each request is kept as it arrived
(method, path, headers, body bytes) and answered as the test scripts it, including
``DROP``: the request is read whole, then the connection is closed with no answer, as
when a provider's line drops after it got the message."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    def form(self) -> dict[str, bytes]:
        """The parts of a multipart/form-data body, name -> exact bytes."""
        boundary = re.search(r'boundary="?([^";]+)"?', self.headers["content-type"])
        assert boundary, self.headers["content-type"]
        parts: dict[str, bytes] = {}
        marker = b"--" + boundary.group(1).encode("ascii")
        for chunk in self.body.split(marker)[1:]:
            if chunk.startswith(b"--"):
                break
            head, _, value = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            assert name, head
            parts[name.group(1).decode()] = value.removesuffix(b"\r\n")
        return parts


@dataclass
class Answer:
    status: int = 200
    body: dict | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


DROP = Answer(status=0)  # read the request, then close the connection without a reply

Script = Callable[[Seen], Answer]


class FakeApi:
    """``fake.url``; ``fake.answer`` decides each reply; ``fake.seen`` the requests."""

    def __init__(self, answer: Script):
        self.answer = answer
        self.seen: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
            disable_nagle_algorithm = True  # else each answer waits ~40 ms for an ACK

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                fake.seen.append(seen)
                answer = fake.answer(seen)
                if answer.status == 0:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = answer.body.encode() if isinstance(answer.body, str) else None
                data = data if data is not None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- Amazon SES v2 ------------------------------------------------------------------------

SEND_PATH = "/v2/email/outbound-emails"
ACCOUNT_PATH = "/v2/email/account"


def sigv4_valid(seen: Seen, url: str, key_id: str, secret: str, region: str) -> bool:
    """Whether the request's SigV4 ``Authorization`` is the one ``key_id``/``secret`` make
    for SES in ``region`` over what arrived (method, path, signed headers, body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = seen.headers["authorization"]
    signed = re.search(r"SignedHeaders=([^,]+)", auth)
    given = re.search(r"Signature=([0-9a-f]+)", auth)
    if not auth.startswith(f"AWS4-HMAC-SHA256 Credential={key_id}/") or not signed or not given:
        return False
    headers = {name: seen.headers[name] for name in signed.group(1).split(";")}
    request = AWSRequest(method=seen.method, url=url + seen.path, headers=headers, data=seen.body)
    request.context["timestamp"] = seen.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key_id, secret), "ses", region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return expected == given.group(1)


def ses_raw(seen: Seen) -> bytes:
    """The raw message of a SendEmail request, as SES decodes it."""
    return base64.b64decode(seen.json()["Content"]["Raw"]["Data"])


def ses_recipient(seen: Seen) -> str:
    return seen.json()["Destination"]["ToAddresses"][0]


def ses_error(status: int, code: str, message: str, **headers: str) -> Answer:
    return Answer(status, {"message": message}, {"x-amzn-ErrorType": code, **headers})


class SesScript:
    """SES's answers: the account (``account``), then ``refuse`` per recipient (a list of
    answers, one per attempt), else 200 with a MessageId."""

    def __init__(self) -> None:
        self.account: dict = {"SendingEnabled": True, "SendQuota": {"MaxSendRate": 14.0}}
        self.refuse: dict[str, list[Answer]] = {}
        self.count = 0

    def __call__(self, seen: Seen) -> Answer:
        if seen.method == "GET" and seen.path == ACCOUNT_PATH:
            return Answer(200, self.account)
        if seen.method != "POST" or seen.path != SEND_PATH:
            return ses_error(404, "NotFoundException", f"no such route {seen.path}")
        waiting = self.refuse.get(ses_recipient(seen))
        if waiting:
            return waiting.pop(0)
        self.count += 1
        return Answer(200, {"MessageId": f"ses-{self.count}"})


# -- Mailgun -------------------------------------------------------------------------------


def mailgun_recipient(seen: Seen) -> str:
    return seen.form()["to"].decode()


class MailgunScript:
    """Mailgun's answers: ``refuse`` per recipient (one answer per attempt), else 200."""

    def __init__(self, domain: str = "mg.example.org") -> None:
        self.domain = domain
        self.refuse: dict[str, list[Answer]] = {}
        self.count = 0

    def __call__(self, seen: Seen) -> Answer:
        if seen.method != "POST" or seen.path != f"/v3/{self.domain}/messages.mime":
            return Answer(404, {"message": "Not Found"})
        waiting = self.refuse.get(mailgun_recipient(seen))
        if waiting:
            return waiting.pop(0)
        self.count += 1
        return Answer(200, {"id": f"<{self.count}@{self.domain}>", "message": "Queued. Thank you."})


@pytest.fixture
def ses_api() -> Iterator[tuple[FakeApi, SesScript]]:
    script = SesScript()
    with FakeApi(script) as fake:
        yield fake, script


@pytest.fixture
def mailgun_api() -> Iterator[tuple[FakeApi, MailgunScript]]:
    script = MailgunScript()
    with FakeApi(script) as fake:
        yield fake, script
