"""The mailer against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives, one
connection per batch, STARTTLS / implicit TLS / login, how refusals and dropped
connections map onto the delivery errors, rate limiting; and the outbox folder."""

from __future__ import annotations

import email
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.mailer import (
    MailerBroken,
    OutboxTransport,
    open_transport,
    outbox_name,
    wire_bytes,
)
from pipeline.settings.email import EmailSettings, SmtpSettings
from pipeline.transports.smtp import SmtpTransport

SUBJECT = "本周山地新闻：冰川与生物多样性"
HTML = (
    "<html><body><h1>本周新闻</h1><p>Glaciers are <b>losing</b> mass.</p>\n<p>.</p></body></html>"
)
TEXT = "本周新闻\n\nGlaciers are losing mass.\n.\nA line starting with a dot.\n"
USER, PASSWORD = "editor", "correct horse battery"


def message(to: str = "reader@example.org", n: int = 0, name: str = "读者") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Mountain News <news@example.org>"
    msg["To"] = formataddr((name, to))
    msg["Subject"] = SUBJECT
    msg["Message-ID"] = f"<digest{n}.0f3a@example.org>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(TEXT)
    msg.add_alternative(HTML, subtype="html")
    msg.set_boundary("==digest-boundary==")  # else each flattening picks a random one
    return msg


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    peer: Any


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient prefix → reply
    drop_in_data: bool = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for prefix, reply in self.refuse.items():
            if address.startswith(prefix):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.peer)
        )
        if self.drop_in_data:  # took the message, died before saying so
            server.transport.close()
        return "250 2.0.0 Accepted"


class Server(Controller):
    """aiosmtpd on 127.0.0.1 at a free port, counting the connections it accepts."""

    def __init__(self, handler: Handler, **kwargs: Any):
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        smtp = super().factory()
        self.sessions.append(smtp)
        return smtp

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def start(self) -> None:
        super().start()
        # The start-up probe connected before start() returned: wait until it has gone.
        _wait(lambda: all(s.transport is None for s in self.sessions))
        self.sessions.clear()

    @property
    def connections(self) -> int:
        return len(self.sessions)

    def drop_all(self) -> None:
        """Close every connection from the server's side, as an idle timeout would."""
        done = threading.Event()

        def close() -> None:
            for smtp in self.sessions:
                if smtp.transport is not None:
                    smtp.transport.close()
            self.loop.call_soon(done.set)

        self.loop.call_soon_threadsafe(close)
        done.wait(2)
        _wait(lambda: all(s.transport is None for s in self.sessions))


def _wait(condition: Callable[[], bool], seconds: float = 2) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[Server, Handler]]]:
    started: list[Server] = []

    def start(**kwargs: Any) -> tuple[Server, Handler]:
        handler = Handler()
        server = Server(handler, **kwargs)
        server.start()
        started.append(server)
        return server, handler

    yield start
    for server in started:
        server.stop()


def smtp(server: Server, security: str = "none", **kwargs: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=server.port, security=security, **kwargs)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)  # type: ignore[return-value]


# -- what arrives ----------------------------------------------------------------------------


def test_message_arrives_intact_with_envelope_from_headers(serve) -> None:
    server, handler = serve()
    transport = SmtpTransport(smtp(server))
    sent = message("reader@example.org")
    transport.send(sent)
    transport.close()
    [got] = handler.messages
    assert got.sender == "news@example.org"
    assert got.recipients == ["reader@example.org"]
    assert got.data.rstrip(b"\r\n") == wire_bytes(sent).rstrip(b"\r\n")
    parsed = parse(got.data)
    assert parsed["Subject"] == SUBJECT
    assert parsed["To"] == "读者 <reader@example.org>"
    assert parsed["Message-ID"] == "<digest0.0f3a@example.org>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content() == TEXT
    assert parsed.get_body(("html",)).get_content().rstrip("\n") == HTML


def test_many_messages_share_one_connection_and_close_says_quit(serve) -> None:
    server, handler = serve()
    transport = SmtpTransport(smtp(server))
    assert server.connections == 0  # lazy: nothing until the first send
    for n in range(25):
        transport.send(message(f"reader{n}@example.org", n))
    assert server.connections == 1
    transport.close()
    _wait(lambda: server.sessions[0].transport is None)  # QUIT: the server hung up
    assert [m.recipients for m in handler.messages] == [
        [f"reader{n}@example.org"] for n in range(25)
    ]


def test_a_message_needs_exactly_one_recipient(serve) -> None:
    server, _ = serve()
    msg = message()
    msg["Cc"] = "other@example.org"
    with pytest.raises(ValueError, match="one recipient"):
        SmtpTransport(smtp(server)).send(msg)
    assert server.connections == 0


# -- TLS and login -----------------------------------------------------------------------------


def test_starttls_with_a_trusted_certificate(serve, server_tls, client_tls) -> None:
    server, handler = serve(tls_context=server_tls, require_starttls=True)
    transport = SmtpTransport(smtp(server, "starttls"), ssl_context=client_tls)
    transport.send(message())
    transport.send(message(n=1))
    transport.close()
    assert len(handler.messages) == 2
    assert server.connections == 1
    assert server.sessions[0].session.ssl is not None


def test_starttls_refuses_a_server_that_does_not_offer_it(serve, client_tls) -> None:
    server, handler = serve()
    transport = SmtpTransport(smtp(server, "starttls"), ssl_context=client_tls)
    with pytest.raises(MailerBroken, match="does not offer STARTTLS; refusing to send in clear"):
        transport.send(message())
    assert handler.messages == []


def test_untrusted_certificate_breaks_the_mailer(serve, server_tls) -> None:
    server, handler = serve(tls_context=server_tls)
    transport = SmtpTransport(smtp(server, "starttls"))  # default context: test CA unknown
    with pytest.raises(MailerBroken, match=r"TLS with 127\.0\.0\.1:\d+ failed"):
        transport.send(message())
    assert handler.messages == []


def test_implicit_tls(serve, server_tls, client_tls) -> None:
    server, handler = serve(ssl_context=server_tls)
    transport = SmtpTransport(smtp(server, "ssl"), ssl_context=client_tls)
    for n in range(3):
        transport.send(message(n=n))
    transport.close()
    assert len(handler.messages) == 3
    assert server.connections == 1


def _authenticator(seen: list[str]) -> Callable[..., AuthResult]:
    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        seen.append(mechanism)
        ok = auth_data == LoginPassword(USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)

    return check


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_login_over_starttls(serve, server_tls, client_tls, mechanism) -> None:
    seen: list[str] = []
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    server, handler = serve(
        tls_context=server_tls,
        authenticator=_authenticator(seen),
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=[other],
    )
    settings = smtp(server, "starttls", username=USER, password=PASSWORD)
    transport = SmtpTransport(settings, ssl_context=client_tls)
    transport.send(message())
    transport.send(message(n=1))
    transport.close()
    assert seen == [mechanism]  # once: the connection is reused
    assert len(handler.messages) == 2


def test_refused_login_breaks_the_mailer_without_showing_the_password(
    serve, server_tls, client_tls
) -> None:
    seen: list[str] = []
    server, handler = serve(
        tls_context=server_tls, authenticator=_authenticator(seen), auth_required=True
    )
    settings = smtp(server, "starttls", username=USER, password="wrong password")
    with pytest.raises(MailerBroken, match="SMTP login refused: 535") as caught:
        SmtpTransport(settings, ssl_context=client_tls).send(message())
    assert "wrong password" not in str(caught.value)
    assert seen and handler.messages == []


def test_login_without_auth_offered_breaks_the_mailer(serve, server_tls) -> None:
    # auth_require_tls: AUTH is not even advertised over a clear connection
    server, _ = serve(tls_context=server_tls, authenticator=_authenticator([]))
    settings = smtp(server, "none", username=USER, password=PASSWORD)
    with pytest.raises(MailerBroken, match="offers no login"):
        SmtpTransport(settings).send(message())


# -- refusals ----------------------------------------------------------------------------------


def test_550_on_rcpt_is_permanent_and_the_connection_goes_on(serve) -> None:
    server, handler = serve()
    handler.refuse["nobody"] = "550 5.1.1 No such user here"
    transport = SmtpTransport(smtp(server))
    with pytest.raises(PermanentFailure) as caught:
        transport.send(message("nobody@example.org"))
    assert caught.value.status == 550
    assert "550 5.1.1 No such user here" in caught.value.reason
    assert "nobody@example.org" in caught.value.reason
    transport.send(message("reader@example.org", 1))
    transport.close()
    assert [m.recipients for m in handler.messages] == [["reader@example.org"]]
    assert server.connections == 1


def test_451_on_rcpt_is_temporary_and_certainly_not_delivered(serve) -> None:
    server, handler = serve()
    handler.refuse["busy"] = "451 4.7.1 Greylisted, try again later"
    transport = SmtpTransport(smtp(server))
    with pytest.raises(TemporaryFailure) as caught:
        transport.send(message("busy@example.org"))
    assert caught.value.status == 451
    assert not caught.value.unknown_outcome
    assert "Greylisted" in caught.value.reason
    transport.close()


def test_refused_sender_breaks_the_mailer(serve) -> None:
    server, handler = serve()

    async def handle_MAIL(server, session, envelope, address, mail_options):
        return "553 5.7.1 Sender address rejected: not owned by user"

    handler.handle_MAIL = handle_MAIL  # type: ignore[attr-defined]
    transport = SmtpTransport(smtp(server))
    with pytest.raises(MailerBroken, match=r"refused the sender news@example\.org: 553"):
        transport.send(message())
    transport.close()  # the caller's finally: QUIT


def test_data_refusals_by_class(serve) -> None:
    server, handler = serve()
    replies = iter(
        ["554 5.7.1 Looks like spam", "452 4.3.1 Insufficient storage", "299 queued, maybe"]
    )

    async def handle_DATA(server, session, envelope):
        return next(replies)

    handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    transport = SmtpTransport(smtp(server))
    with pytest.raises(PermanentFailure) as permanent:
        transport.send(message())
    assert permanent.value.status == 554
    with pytest.raises(TemporaryFailure) as temporary:
        transport.send(message(n=1))
    assert temporary.value.status == 452 and not temporary.value.unknown_outcome
    with pytest.raises(TemporaryFailure) as odd:  # neither 250 nor a refusal: cannot tell
        transport.send(message(n=2))
    assert odd.value.unknown_outcome
    transport.close()


# -- dropped connections -----------------------------------------------------------------------


def test_a_connection_dropped_between_messages_is_reopened_transparently(serve) -> None:
    server, handler = serve()
    transport = SmtpTransport(smtp(server))
    transport.send(message("first@example.org"))
    server.drop_all()
    transport.send(message("second@example.org", 1))
    transport.close()
    assert [m.recipients for m in handler.messages] == [
        ["first@example.org"],
        ["second@example.org"],
    ]
    assert server.connections == 2


def test_a_server_idle_timeout_is_survived(serve) -> None:
    server, handler = serve(timeout=0.2)
    transport = SmtpTransport(smtp(server))
    transport.send(message())
    _wait(lambda: server.sessions[0].transport is None)
    transport.send(message(n=1))
    transport.close()
    assert len(handler.messages) == 2


def test_a_drop_during_data_leaves_the_outcome_unknown(serve) -> None:
    server, handler = serve()
    handler.drop_in_data = True
    transport = SmtpTransport(smtp(server))
    with pytest.raises(TemporaryFailure) as caught:
        transport.send(message())
    assert caught.value.unknown_outcome
    assert "may have been delivered" in caught.value.reason
    assert len(handler.messages) == 1  # it did arrive: exactly why it must not be resent
    handler.drop_in_data = False
    transport.send(message(n=1))  # the next message gets a new connection
    transport.close()
    assert server.connections == 2


# -- staged sends (the digest's claim commits meanwhile) -----------------------------------


def test_a_staged_message_arrives_at_finish_and_an_abandoned_one_never(serve) -> None:
    server, handler = serve()
    transport = SmtpTransport(smtp(server))
    staged = transport.stage(message("first@example.org"))
    _wait(lambda: server.connections == 1)
    assert handler.messages == []  # envelope and body sent, the dot not yet
    staged.finish()
    transport.stage(message("second@example.org", 1)).abandon()
    transport.send(message("third@example.org", 2))
    transport.close()
    assert [m.recipients for m in handler.messages] == [
        ["first@example.org"],
        ["third@example.org"],
    ]
    # The same bytes as a plain send, dot-stuffing undone by the server.
    assert parse(handler.messages[0].data).get_body(("html",)).get_content() == HTML + "\n"
    assert server.connections == 2  # the abandoned transaction took its connection along


STAGE_THEN = """
import os, signal, sys
from email.message import EmailMessage
from pipeline.settings.email import SmtpSettings
from pipeline.transports.smtp import SmtpTransport

msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = "news@example.org", "reader@example.org", "Hi"
msg["Message-ID"] = "<staged@example.org>"
msg.set_content("A body.\\n.\\nA line that was a lone dot.\\n" * 200)
transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=int(sys.argv[1]), security="none"))
staged = transport.stage(msg)
if sys.argv[2] == "finish":
    staged.finish()
    transport.close()
else:
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup: the socket just goes
"""


@pytest.mark.parametrize("then", ["finish", "kill"])
def test_a_process_killed_between_stage_and_finish_leaves_no_message(serve, then) -> None:
    import subprocess
    import sys

    server, handler = serve()
    process = subprocess.run(
        [sys.executable, "-c", STAGE_THEN, str(server.port), then], capture_output=True, timeout=60
    )
    assert process.returncode == (0 if then == "finish" else -9), process.stderr
    _wait(lambda: server.connections == 1 and server.sessions[0].transport is None)
    assert len(handler.messages) == (1 if then == "finish" else 0)


def test_cannot_connect_is_temporary_then_breaks_the_mailer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none"))
    for _ in range(2):
        with pytest.raises(TemporaryFailure, match="cannot connect") as caught:
            transport.send(message())
        assert not caught.value.unknown_outcome
    with pytest.raises(MailerBroken, match=r"cannot connect.*3 attempts in a row"):
        transport.send(message())


def test_a_server_that_never_greets_times_out_as_temporary() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts into the backlog, never says 220
        settings = SmtpSettings(
            host="127.0.0.1", port=silent.getsockname()[1], security="none", timeout=0.2
        )
        with pytest.raises(TemporaryFailure, match=r"cannot connect.*timed out"):
            SmtpTransport(settings).send(message())


# -- rate --------------------------------------------------------------------------------------


def test_rate_spaces_messages_with_the_injected_clock(serve) -> None:
    server, handler = serve()
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    transport = SmtpTransport(smtp(server), rate=4, sleep=sleep, clock=lambda: now[0])
    for n in range(3):
        transport.send(message(n=n))
    assert slept == [0.25, 0.25]
    now[0] += 1.0  # a pause longer than the spacing costs nothing
    transport.send(message(n=3))
    now[0] += 0.1
    transport.send(message(n=4))
    assert slept == [0.25, 0.25, 0.15]
    transport.close()
    assert len(handler.messages) == 5


def test_no_rate_never_sleeps(serve) -> None:
    server, _ = serve()
    transport = SmtpTransport(smtp(server), sleep=lambda s: pytest.fail("slept"))
    for n in range(3):
        transport.send(message(n=n))
    transport.close()


# -- outbox ------------------------------------------------------------------------------------


def test_outbox_writes_a_parseable_eml_as_smtp_would_send_it(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "outbox")
    sent = message()
    outbox.send(sent)
    [file] = (tmp_path / "outbox").iterdir()
    assert file.name == "digest0.0f3a@example.org.eml"
    data = file.read_bytes()
    assert data == wire_bytes(sent)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    parsed = parse(data)
    assert parsed["Subject"] == SUBJECT
    assert parsed.get_body(("plain",)).get_content() == TEXT
    assert parsed.get_body(("html",)).get_content().rstrip("\n") == HTML


def test_outbox_is_idempotent_by_message_id(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path)
    first = message("reader@example.org")
    outbox.send(first)
    again = message("someone-else@example.org")  # same Message-ID: the same message
    outbox.send(again)
    outbox.send(message(n=1))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["digest0.0f3a@example.org.eml", "digest1.0f3a@example.org.eml"]
    assert (tmp_path / names[0]).read_bytes() == wire_bytes(first)


def test_outbox_writes_atomically_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = OutboxTransport(tmp_path)

    def crash(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", crash)
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(MailerBroken, match="cannot write to the outbox"):
        outbox.send(message())
    assert list(tmp_path.iterdir()) == []  # no partial .eml, no temporary file
    monkeypatch.undo()
    outbox.send(message())
    assert [p.name for p in tmp_path.iterdir()] == ["digest0.0f3a@example.org.eml"]


def test_outbox_names_are_safe_and_distinct() -> None:
    assert outbox_name("<abc.123@example.org>") == "abc.123@example.org.eml"
    unsafe = outbox_name("<../../etc/passwd@x>")
    assert "/" not in unsafe and not unsafe.startswith(".")
    assert outbox_name("<A@x>") != outbox_name("<a@x>")  # case-insensitive file systems
    assert len(outbox_name("<" + "x" * 500 + "@x>")) < 200


def test_open_transport_follows_the_settings(tmp_path: Path, serve) -> None:
    base = {"from": "news@example.org", "unsubscribe": {"url": "https://x.example.org/u"}}
    outbox = open_transport(EmailSettings.model_validate({**base, "outbox": str(tmp_path)}))
    assert isinstance(outbox, OutboxTransport) and outbox.folder == tmp_path
    server, handler = serve()
    settings = EmailSettings.model_validate(
        {
            **base,
            "delivery": "smtp",
            "rate": 50,
            "smtp": {"host": "127.0.0.1", "port": server.port, "security": "none"},
        }
    )
    transport = open_transport(settings)
    assert isinstance(transport, SmtpTransport) and transport.rate == 50
    transport.send(message())
    transport.close()
    assert len(handler.messages) == 1
