"""Headers on the wire, judged from the raw bytes a mail server receives (aiosmtpd's
``original_content``) and from the outbox files, never through a parser that decodes
them: List-Unsubscribe must reach the mail provider as a plain ``<https://…>`` link (the
standard library's generator used to re-fold it into RFC 2047 encoded words, and
providers then found no one-click unsubscribe); ASCII headers go out as written, folded
only at whitespace, lines at most 998 octets, CRLF line ends; non-ASCII ones are RFC
2047 words that decode to what was written."""

from __future__ import annotations

import copy
import datetime as dt
import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.digest.message import recipient
from pipeline.errors import PermanentFailure
from pipeline.mailer import OutboxTransport, wire_bytes
from pipeline.settings import load_settings
from pipeline.settings.email import SmtpSettings
from pipeline.store import Store
from pipeline.subscribers import SubscriberStore
from pipeline.tokens import link_secret, verify
from pipeline.transports.smtp import SmtpTransport
from tests.conftest import free_port, invoke
from tests.rawmail import MAX_LINE, RawInbox, RawMessage, split, unfolded

# The fixture replacing conftest's, so mail_project sends to an inbox keeping raw bytes.
from tests.rawmail import inbox as inbox

# Long enough that the header is far over 78 columns, as a real deployment's may be.
LONG_URL = "https://subscriptions.mountain-news-and-glacier-monitoring.example.org/newsletters/manage/unsubscribe"
LINK = re.compile(rb"List-Unsubscribe: <(https://[\x21-\x3b\x3d\x3f-\x7e]+)>")
ENCODED = "=?"


def with_long_unsubscribe_url(root: Path) -> None:
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("url: https://news.example.org/unsubscribe", f"url: {LONG_URL}")
    config.write_text(text, encoding="utf-8")


def assert_on_the_wire(message: RawMessage, root: Path) -> None:
    """What a mail provider reads: the checks every digest's raw bytes must pass."""
    raw = message.raw
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= MAX_LINE
    # The one-click link, verbatim on one physical line: <https://…?token=…>
    [line] = message.fields["list-unsubscribe"]
    match = LINK.fullmatch(line)
    assert match, line
    link = match.group(1).decode("ascii")
    assert link.startswith(LONG_URL + "?token=")
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        secret = link_secret(settings.email.unsubscribe.secret, store)
        claims = verify(secret, parse_qs(urlsplit(link).query)["token"][0], "unsubscribe")
        subscriber = SubscriberStore(store.engine).get_by_id(claims.subscriber_id)
    finally:
        store.close()
    to = b"".join(message.fields["to"])
    assert subscriber.email.encode() in to  # the link unsubscribes this very recipient
    assert message.fields["list-unsubscribe-post"] == [
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]
    # Every ASCII header as written: no encoded words, folded (if at all) at spaces.
    for name, lines in message.fields.items():
        value = unfolded(lines)
        if name not in ("subject", "to", "list-id"):
            assert ENCODED not in value, (name, value)
        for continuation in lines[1:]:
            assert continuation[:1] in b" \t"
    assert unfolded(message.fields["from"]) == "Mountain News <news@news.example.org>"
    assert unfolded(message.fields["reply-to"]) == "editors@news.example.org"


def header_text(message: RawMessage, name: str) -> str:
    """A header as a mail client shows it: RFC 2047 words decoded."""
    return str(make_header(decode_header(unfolded(message.fields[name]))))


def test_smtp_receives_list_unsubscribe_verbatim(mail_project, inbox) -> None:
    inbox_: RawInbox = inbox[0]
    with_long_unsubscribe_url(mail_project)
    for digest in ("weekly-en", "monthly-zh"):
        result = invoke(mail_project, "digest", "send", digest)
        assert result.exit_code == 0, result.output + result.stderr
    assert len(inbox_.raw) == 4
    for raw in inbox_.raw:
        message = split(raw)
        assert_on_the_wire(message, mail_project)
        if b"li.wen@" in b"".join(message.fields["to"]):
            # Non-ASCII stays RFC 2047 (no SMTPUTF8 needed: the addresses are ASCII).
            assert header_text(message, "subject") == "山地新闻月报"
            assert header_text(message, "to") == "李文 <li.wen@example.org>"
            assert ENCODED in unfolded(message.fields["subject"])
            assert header_text(message, "list-id") == "山地新闻月报 <monthly-zh.news.example.org>"
        else:
            assert all(ENCODED not in unfolded(lines) for lines in message.fields.values())
            assert unfolded(message.fields["subject"]) == "This week at Mountain News"
            assert (
                unfolded(message.fields["list-id"])
                == "This week at Mountain News <weekly-en.news.example.org>"
            )


def test_the_outbox_files_carry_the_same_headers(project) -> None:
    root = project()
    with_long_unsubscribe_url(root)
    (root / "people.csv").write_text(
        "email,name,language\nanna@example.org,Anna Berg,en\nli.wen@example.org,李文,zh-CN\n",
        encoding="utf-8",
    )
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    for digest in ("weekly-en", "monthly-zh"):
        assert invoke(root, "digest", "send", digest).exit_code == 0
    files = sorted((root / "var" / "outbox").glob("*.eml"))
    assert len(files) == 2
    for path in files:
        assert_on_the_wire(split(path.read_bytes()), root)


def test_smtp_sends_the_outbox_bytes(tmp_path) -> None:
    """One message through both transports: the server gets what the file holds."""
    handler = RawInbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        message = digest_like("李文", "li.wen@example.org")
        smtp = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, security="none"))
        smtp.send(message)
        smtp.close()
    finally:
        controller.stop()
    OutboxTransport(tmp_path).send(message)
    [written] = tmp_path.glob("*.eml")
    [received] = handler.raw
    assert received.rstrip(b"\r\n") == written.read_bytes().rstrip(b"\r\n")
    assert LINK.search(received) and ENCODED.encode() not in b"".join(
        split(received).fields["list-unsubscribe"]
    )


def digest_like(name: str, address: str, link: str = LONG_URL + "?token=" + "T" * 180):
    message = EmailMessage()
    message["From"] = "Mountain News <news@news.example.org>"
    message["To"] = recipient(name, address)
    message["Subject"] = "山地新闻月报：冰川与生物多样性"
    message["Message-ID"] = "<a1b2c3@news.example.org>"
    message.set_raw("List-Unsubscribe", f"<{link}>")
    message.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    message.set_content("冰川\n")
    return message


# -- the folding rule, for any header -------------------------------------------------------

WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(words=st.lists(WORD, min_size=1, max_size=30), name=st.sampled_from(["X-Note", "Subject"]))
def test_ascii_headers_unfold_to_exactly_what_was_written(words: list[str], name: str) -> None:
    value = " ".join(words)
    for setter in ("raw", "object"):
        if setter == "object" and "=?" in value:
            continue  # a header object decodes encoded-word syntax on the way in
        message = digest_like("Anna Berg", "anna@example.org")
        del message[name]
        if setter == "raw":
            message.set_raw(name, value)
        else:
            message[name] = value
        fields = split(wire_bytes(message)).fields
        lines = fields[name.lower()]
        assert unfolded(lines) == value  # nothing encoded, nothing added or lost
        for index, line in enumerate(lines):
            assert len(line) <= MAX_LINE
            # Longer than 78 only where a single word left no space to fold at.
            if len(line) > 78:
                assert b" " not in line.strip()[len(name) + 2 if index == 0 else 0 :]


@settings(max_examples=60, deadline=None)
@given(value=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200))
def test_non_ascii_headers_decode_to_what_was_written(value: str) -> None:
    message = digest_like("Anna Berg", "anna@example.org")
    del message["Subject"]
    message["Subject"] = value
    got = split(wire_bytes(message))
    assert max(len(line) for line in got.raw.split(b"\r\n")) <= MAX_LINE
    assert " ".join(header_text(got, "subject").split()) == " ".join(value.split())


def test_a_word_longer_than_a_mail_line_is_refused_not_mangled(tmp_path) -> None:
    message = digest_like("Anna Berg", "anna@example.org", link=LONG_URL + "?t=" + "x" * 1000)
    with pytest.raises(PermanentFailure, match=r"List-Unsubscribe header has a \d+-octet line"):
        OutboxTransport(tmp_path).send(message)
    assert list(tmp_path.iterdir()) == []


def test_a_line_break_in_a_raw_header_is_refused(tmp_path) -> None:
    message = digest_like("Anna Berg", "anna@example.org")
    message.set_raw("X-Note", "hello\r\nBcc: everyone@example.org")
    with pytest.raises(PermanentFailure, match="X-Note header has a line break"):
        wire_bytes(message)


# -- addresses that need SMTPUTF8 ------------------------------------------------------------


class Options(RawInbox):
    """Keeps the MAIL FROM options (SMTPUTF8, BODY=8BITMIME) and the RCPT TO addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.mail_options: list[list[str]] = []
        self.rcpt: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.mail_options.append(list(envelope.mail_options))
        self.rcpt.append(list(envelope.rcpt_tos))
        return await super().handle_DATA(server, session, envelope)


def send_through_smtp(message: EmailMessage, utf8_server: bool = True) -> Options:
    handler = Options()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=utf8_server)
    controller.start()
    try:
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none"))
        try:
            transport.send(message)
        finally:
            transport.close()
    finally:
        controller.stop()
    return handler


def send_to(address: str, utf8_server: bool) -> Options:
    return send_through_smtp(digest_like("李文", address), utf8_server)


def test_a_non_ascii_address_goes_out_as_utf8_with_the_link_as_written() -> None:
    handler = send_to("李文@example.org", utf8_server=True)
    [options] = handler.mail_options
    assert "SMTPUTF8" in options and "BODY=8BITMIME" in options
    [raw] = handler.raw
    message = split(raw)
    # SMTPUTF8: headers in UTF-8 rather than encoded words (RFC 6532), link untouched.
    assert b"".join(message.fields["to"]) == "To: 李文 <李文@example.org>".encode()
    assert ENCODED.encode() not in raw.partition(b"\r\n\r\n")[0]
    assert LINK.fullmatch(message.fields["list-unsubscribe"][0])


def test_a_non_ascii_address_without_smtputf8_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentFailure, match="SMTPUTF8"):
        send_to("李文@example.org", utf8_server=False)


def test_digests_reach_international_addresses(mail_project, inbox) -> None:
    """An IDN domain goes out in its ASCII form (no SMTPUTF8 needed); a non-ASCII
    mailbox name as UTF-8 with SMTPUTF8; the unsubscribe link as written in both."""
    handler: RawInbox = inbox[0]
    people = mail_project / "international.csv"
    people.write_text(
        "email,name,language\nanna@bücher.example,Anna,en\n李文@example.org,李文,en\n",
        encoding="utf-8",
    )
    assert invoke(mail_project, "subscribers", "import", str(people)).exit_code == 0
    result = invoke(mail_project, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    to = {b"".join(split(raw).fields["to"]): split(raw) for raw in handler.raw}
    idn = to[b"To: Anna <anna@xn--bcher-kva.example>"]
    assert ENCODED.encode() not in idn.raw.partition(b"\r\n\r\n")[0]
    utf8 = to["To: 李文 <李文@example.org>".encode()]
    for message in (idn, utf8):
        assert LINK.fullmatch(message.fields["list-unsubscribe"][0])
        assert max(len(line) for line in message.raw.split(b"\r\n")) <= MAX_LINE


def test_the_preview_eml_is_what_smtp_would_send(project) -> None:
    root = project()
    with_long_unsubscribe_url(root)
    assert invoke(root, "ingest").exit_code == 0
    result = invoke(root, "digest", "preview", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    raw = (root / "var" / "preview" / "weekly-en.eml").read_bytes()
    [line] = split(raw).fields["list-unsubscribe"]
    assert line.startswith(b"List-Unsubscribe: <" + LONG_URL.encode()) and ENCODED not in str(line)


_BODY_TEXT = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
    | st.sampled_from(["=_", "--=_", "\r\n", "\r", "\n", "山地新闻 ", "a" * 90]),
    max_size=12,
).map("".join)


@settings(max_examples=80, deadline=None)
@given(text=_BODY_TEXT, html=_BODY_TEXT)
def test_a_digest_body_parses_back_to_its_parts(text: str, html: str) -> None:
    """The digest's body is written already encoded (not by the email package's
    generator): a mail client still finds the text and HTML parts, each decoding to what
    was rendered (one kind of line end), whatever they contain — Chinese (base64), lines
    that look like the boundary — in lines of CRLF at most 76 octets."""
    from email.parser import BytesParser
    from email.policy import default

    from pipeline.digest.message import build_message
    from pipeline.digest.render import RenderedEdition
    from pipeline.subscribers import Subscriber

    settings = load_settings(Path(__file__).parent.parent / "config" / "pipeline.yaml")
    digest = settings.digests["weekly-en"]
    rendered = RenderedEdition(subject="Weekly", preheader="", html=html, text=text)
    reader = Subscriber(7, "pema@example.org", "Pema", "en", (), "active")
    now = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
    args = ("weekly-en@x", "weekly-en", rendered, digest, reader, "s", now)
    message = build_message(settings, *args)
    raw = wire_bytes(message)
    body = raw.partition(b"\r\n\r\n")[2]
    assert b"\n" not in body.replace(b"\r\n", b"") and b"\r" not in body.replace(b"\r\n", b"")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    received = BytesParser(policy=default).parsebytes(raw)
    parts = [(p.get_content_type(), p.get_content()) for p in received.iter_parts()]

    def lines(value: str) -> str:
        return value.replace("\r\n", "\n").replace("\r", "\n")

    assert [kind for kind, _ in parts] == ["text/plain", "text/html"]
    assert [lines(content).rstrip("\n") for _, content in parts] == [
        lines(text).rstrip("\n"),
        lines(html).rstrip("\n"),
    ]


_KEY = "0123456789abcdef0123456789abcdef"
_PIECE = st.sampled_from(
    [f"%%{t}.{_KEY}%%" for t in ("NAME", "UNSUBSCRIBE_URL", "PREFERENCES_URL", "VIEW_URL")]
    + [f"%%IF_NAME.{_KEY}%%Dear %%NAME.{_KEY}%%,%%ELSE.{_KEY}%%Hello,%%END.{_KEY}%%"]
    + ["%%NAME%%", "=", " ", "a" * 74, "b" * 75, "=\n"]  # unkeyed tokens stay as written
)
_SEALED = st.lists(_BODY_TEXT | _PIECE, max_size=10).map(
    lambda pieces: "".join(pieces) + f"<!--personalise:{_KEY}-->"
)
_NAME = st.sampled_from(["", "Pema", "李文", 'A & <B> "C"', "x" * 80, "Zoë  Ann"])


def _sealed(*pieces: str) -> str:
    return "".join(pieces) + f"<!--personalise:{_KEY}-->"


@settings(max_examples=120, deadline=None)
@given(text=_SEALED, html=_SEALED, name=_NAME)
# a last line of 76 octets before a value, also one ending just after an =XX escape
@example(text=_sealed("a" * 76, f"%%NAME.{_KEY}%%"), html="", name="Pema")
@example(text=_sealed("a" * 74, "=", f"%%NAME.{_KEY}%%"), html="", name="Pema")
@example(text=_sealed("a" * 73, "==", f"%%NAME.{_KEY}%%"), html="", name="Pema")
@example(text=_sealed("a" * 72, "=b", f"%%NAME.{_KEY}%%"), html="", name="Pema")
def test_each_copy_decodes_to_the_personalised_parts(text: str, html: str, name: str) -> None:
    """Each reader's copy is the edition's fixed text, encoded once, joined to that
    reader's encoded values: a mail client decodes exactly what ``personalise`` makes
    for them, in CRLF lines of at most 76 octets, wherever the values fall."""
    from email.parser import BytesParser
    from email.policy import default

    from pipeline.digest.message import build_message, view_url
    from pipeline.digest.render import RenderedEdition, personalise
    from pipeline.preferences import preferences_url
    from pipeline.subscribers import Subscriber

    settings = load_settings(Path(__file__).parent.parent / "config" / "pipeline.yaml")
    assert settings.email is not None
    digest = settings.digests["weekly-en"]
    rendered = RenderedEdition(subject="Weekly", preheader="", html=html, text=text)
    reader = Subscriber(7, "pema@example.org", name, "en", (), "active")
    now = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
    edition = "weekly-en@2026-11-03T10:00"
    raw = wire_bytes(
        build_message(settings, edition, "weekly-en", rendered, digest, reader, "s", now)
    )
    body = raw.partition(b"\r\n\r\n")[2]
    assert b"\n" not in body.replace(b"\r\n", b"") and b"\r" not in body.replace(b"\r\n", b"")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    received = BytesParser(policy=default).parsebytes(raw)
    unsubscribe = str(received["List-Unsubscribe"]).strip("<>")
    expected = personalise(
        rendered,
        unsubscribe_url=unsubscribe,
        name=name,
        view_url=view_url(settings, "weekly-en", edition),
        preferences_url=preferences_url(settings.email.unsubscribe.origin, "s", reader),
    )

    def lines(value: str) -> str:
        return value.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")

    parts = {p.get_content_type(): p.get_content() for p in received.iter_parts()}
    assert lines(parts["text/html"]) == lines(expected[0])
    assert lines(parts["text/plain"]) == lines(expected[1])


def built_for(email: str, name: str, bounces: bool) -> EmailMessage:
    """A digest message for one subscriber, as ``Digests`` builds it."""
    from pipeline.digest.message import build_message
    from pipeline.digest.render import RenderedEdition
    from pipeline.settings.email import BouncesSettings
    from pipeline.subscribers import Subscriber

    settings = load_settings(Path(__file__).parent.parent / "config" / "pipeline.yaml")
    assert settings.email is not None
    if bounces:
        email_settings = settings.email.model_copy(update={"bounces": BouncesSettings()})
        settings = settings.model_copy(update={"email": email_settings})
    rendered = RenderedEdition(subject="Weekly", preheader="", html="<p>Hi</p>", text="Hi")
    reader = Subscriber(7, email, name, "en", (), "active")
    now = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
    digest = settings.digests["weekly-en"]
    return build_message(settings, "weekly-en@x", "weekly-en", rendered, digest, reader, "s", now)


def read_from_headers(message: EmailMessage) -> tuple[str, str]:
    """The envelope as the headers give it, not as the builder carried it."""
    from pipeline.mailer import envelope

    copied = copy.copy(message)
    copied.addresses = None  # type: ignore[attr-defined]
    return envelope(copied)


_LOCAL = st.text(st.sampled_from("abcxyz0189._+-李文é"), min_size=1, max_size=12).filter(
    lambda local: not local.startswith(".") and not local.endswith(".") and ".." not in local
)


@settings(max_examples=60, deadline=None)
@given(
    local=_LOCAL,
    domain=st.sampled_from(["example.org", "bücher.example", "mail.example.co.uk"]),
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    bounces=st.booleans(),
)
def test_the_carried_envelope_is_what_the_headers_say(
    local: str, domain: str, name: str, bounces: bool
) -> None:
    """A digest message carries its envelope so that sending need not parse its address
    headers back: for any subscriber address and name it must be exactly the pair the
    headers give (VERP sender or From; the To address, IDN domain in ASCII)."""
    from pipeline.mailer import envelope

    message = built_for(f"{local}@{domain}", name, bounces)
    assert message.addresses is not None  # type: ignore[attr-defined]
    assert envelope(message) == read_from_headers(message)
    assert envelope(message)[0].startswith("bounces+") == bounces


def test_a_changed_to_header_is_where_the_message_goes() -> None:
    """Editing an address header after building (as a test send might) forgets the
    carried envelope: the server is asked to deliver to the new To, never the old."""
    message = built_for("anna@example.org", "Anna", bounces=True)
    del message["To"]
    message["To"] = "Test <staff@example.org>"
    handler = send_through_smtp(message)
    assert handler.rcpt == [["staff@example.org"]]
    for header in ("From", "Return-Path", "Cc", "Bcc", "Sender"):
        again = built_for("anna@example.org", "Anna", bounces=False)
        if header in again:
            again.replace_header(header, "other@example.org")
        else:
            again[header] = "other@example.org"
        assert again.addresses is None  # type: ignore[attr-defined]
