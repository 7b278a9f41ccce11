"""DKIM: a digest sent through SMTP or written to the outbox carries a signature that
dkimpy's verifier accepts over the bytes the server received (or the file written),
given the public key `pipeline check` tells the user to publish; a key that cannot
sign is a located configuration error naming the fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.dkim import DkimKey, Signer, accepts_sign, parse_key
from pipeline.errors import ConfigError
from pipeline.mailer import MailerBroken, OutboxTransport, open_transport
from pipeline.plugins import BUILT_IN, TRANSPORTS, Entry, Plugins, installed_entries
from pipeline.settings import load_settings
from pipeline.settings.dkim import DkimSettings
from tests.conftest import invoke
from tests.rawmail import MAX_LINE, split

# The fixture replacing conftest's, so mail_project sends to an inbox keeping raw bytes.
from tests.rawmail import inbox as inbox

RECORD = re.compile(
    r'^ *(\S+)\._domainkey\.(\S+)  TXT "(v=DKIM1; k=\w+; p=[A-Za-z0-9+/=]+)"$', re.M
)
_PEM = serialization.Encoding.PEM
_PKCS8 = serialization.PrivateFormat.PKCS8
_CLEAR = serialization.NoEncryption()


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(_PEM, _PKCS8, _CLEAR)


def pem_of(key) -> bytes:
    return key.private_bytes(_PEM, _PKCS8, _CLEAR)


def dns(records: dict[str, str]):
    """dkimpy's DNS lookup answered from ``records`` (name → TXT text), nothing else."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        found = records.get(name.decode().rstrip("."))
        return found.encode() if found else None

    return lookup


def published(output: str) -> dict[str, str]:
    """The TXT records `pipeline check` printed, as a DNS zone would hold them."""
    return {f"{s}._domainkey.{d}": txt for s, d, txt in RECORD.findall(output)}


def with_dkim(root: Path, pem: bytes | None, block: str | None = None) -> None:
    """Add an `email.dkim:` section (a key file config/dkim.pem) to the project."""
    if pem is not None:
        (root / "config" / "dkim.pem").write_bytes(pem)
    block = block or (
        "  dkim:\n    domain: news.example.org\n    selector: news2026\n"
        "    private_key_file: config/dkim.pem\n"
    )
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8").replace(
        "  unsubscribe:\n", block + "  unsubscribe:\n"
    )
    config.write_text(text, encoding="utf-8")


def signed_headers(raw: bytes) -> list[str]:
    fields = split(raw).fields
    value = b"".join(fields["dkim-signature"]).decode("ascii")
    tags = re.search(r"h=([^;]*)", value)
    assert tags is not None
    return [name.strip() for name in "".join(tags.group(1).split()).split(":")]


def test_a_digest_sent_over_smtp_verifies_over_the_bytes_the_server_received(
    mail_project, inbox, rsa_pem
) -> None:
    handler, _ = inbox
    with_dkim(mail_project, rsa_pem)
    checked = invoke(mail_project, "check")
    assert checked.exit_code == 0, checked.output
    records = published(checked.output)
    assert list(records) == ["news2026._domainkey.news.example.org"]
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    assert len(handler.raw) == 3  # the English subscribers
    for raw in handler.raw:
        assert raw.startswith(
            b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=news.example.org;"
        )
        assert dkim.verify(raw, dnsfunc=dns(records)), raw[:600]
        names = signed_headers(raw)
        for header in ("from", "to", "subject", "date", "message-id", "mime-version"):
            assert header in names
        assert {"content-type", "list-id", "list-unsubscribe", "list-unsubscribe-post"} <= set(
            names
        )
        # Folded as every header on the wire: at whitespace, b= whole, lines ≤ 998.
        lines = split(raw).fields["dkim-signature"]
        assert all(len(line) <= MAX_LINE for line in lines)
        assert all(line[:1] == b" " for line in lines[1:])
        assert any(re.fullmatch(rb" b=[A-Za-z0-9+/]{300,}={0,2}", line) for line in lines)


def test_changing_one_signed_header_byte_breaks_the_signature(mail_project, inbox, rsa_pem) -> None:
    handler, _ = inbox
    with_dkim(mail_project, rsa_pem)
    records = published(invoke(mail_project, "check").output)
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    raw = handler.raw[0]
    assert dkim.verify(raw, dnsfunc=dns(records))
    for header in (b"List-Unsubscribe: <https://", b"Subject: This", b"From: Mountain"):
        at = raw.index(header) + len(header) - 1
        changed = raw[:at] + bytes([raw[at] ^ 0x20]) + raw[at + 1 :]
        assert not dkim.verify(changed, dnsfunc=dns(records)), header
    # An unsigned header may be added on the way (Received, for one).
    assert dkim.verify(b"Received: from relay\r\n" + raw, dnsfunc=dns(records))
    # The wrong key (another selector's record) does not verify either.
    other = parse_key(pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    wrong = {k: f"v=DKIM1; k=rsa; p={other.public}" for k in records}
    assert not dkim.verify(raw, dnsfunc=dns(wrong))


def test_outbox_files_verify_and_a_chinese_digest_too(project, rsa_pem) -> None:
    root = project()
    with_dkim(root, rsa_pem)
    (root / "people.csv").write_text(
        "email,name,language,topics\npema@example.org,Pema,en,\nli@example.org,李文,zh-CN,\n",
        encoding="utf-8",
    )
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    records = published(invoke(root, "check").output)
    for name in ("weekly-en", "monthly-zh"):
        assert invoke(root, "digest", "send", name).exit_code == 0
    files = sorted((root / "var" / "outbox").glob("*.eml"))
    assert len(files) == 2
    for file in files:
        data = file.read_bytes()
        assert dkim.verify(data, dnsfunc=dns(records))
        assert b"list-unsubscribe-post" in b"".join(split(data).fields["dkim-signature"])
    zh = next(f.read_bytes() for f in files if b"=?utf-8?" in split(f.read_bytes()).raw[:2000])
    assert dkim.verify(zh, dnsfunc=dns(records))


def test_an_ed25519_key_signs_ed25519_sha256(tmp_path) -> None:
    key = parse_key(pem_of(ed25519.Ed25519PrivateKey.generate()))
    assert key.kind == "ed25519"
    settings = DkimSettings(domain="example.org", selector="ed", private_key_file=tmp_path / "k")
    outbox = OutboxTransport(tmp_path / "out", Signer(settings, key))
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "News <news@example.org>"
    message["To"] = "reader@example.net"
    message["Subject"] = "Hello"
    message["Message-ID"] = "<1@example.org>"
    message["List-Unsubscribe"] = "<https://example.org/u?t=1>"
    message.set_content("Body\n")
    outbox.send(message)
    data = next((tmp_path / "out").glob("*.eml")).read_bytes()
    assert b"a=ed25519-sha256" in data
    record = {"ed._domainkey.example.org": f"v=DKIM1; k=ed25519; p={key.public}"}
    assert dkim.verify(data, dnsfunc=dns(record))
    assert not dkim.verify(data.replace(b"Subject: Hello", b"Subject: Hellp"), dnsfunc=dns(record))


def test_the_key_is_loaded_once_for_all_connections(mail_project, inbox, rsa_pem) -> None:
    """Two sends, one signer: the file may go after the Assembly has read it."""
    from pipeline.assembly import Assembly
    from pipeline.store import Store

    with_dkim(mail_project, rsa_pem)
    settings = load_settings(mail_project / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        opener = Assembly(settings, store).transport()
        (mail_project / "config" / "dkim.pem").unlink()
        first, second = opener(), opener()
        assert first.sign is second.sign is not None  # type: ignore[attr-defined]
    finally:
        store.close()


# -- configuration mistakes: located, with the fix ----------------------------------------


def check_fails(root: Path) -> str:
    result = invoke(root, "check")
    assert result.exit_code == 2, result.output
    return result.output


def line_of(root: Path, text: str) -> int:
    lines = (root / "config" / "pipeline.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_missing_key_file_is_located_and_says_how_to_make_one(project) -> None:
    root = project(with_examples=False)
    with_dkim(root, None)
    output = check_fails(root)
    assert f"pipeline.yaml:{line_of(root, 'private_key_file')}:" in output
    assert "does not exist" in output and "openssl genpkey" in output


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: b"not a key at all\n", "no PEM private key"),
        (
            lambda: (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                .public_key()
                .public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            ),
            "a public key; DKIM signs with the private one",
        ),
        (
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                _PEM, _PKCS8, serialization.BestAvailableEncryption(b"pass")
            ),
            "passphrase",
        ),
        (lambda: pem_of(ec.generate_private_key(ec.SECP256R1())), "RSA or Ed25519"),
    ],
)
def test_a_key_that_cannot_sign_is_a_located_error(project, make, said) -> None:
    root = project(with_examples=False)
    with_dkim(root, make())
    output = check_fails(root)
    assert f"pipeline.yaml:{line_of(root, 'private_key_file')}:" in output
    assert said in output


def test_an_unreadable_key_file_says_to_fix_permissions(project, rsa_pem) -> None:
    import os

    root = project(with_examples=False)
    with_dkim(root, rsa_pem)
    (root / "config" / "dkim.pem").unlink()
    (root / "config" / "dkim.pem").mkdir()  # unreadable as a file, even for root
    output = check_fails(root)
    assert "cannot be read" in output and "chmod" in output
    assert os.path.isdir(root / "config" / "dkim.pem")


def test_the_key_from_the_environment_as_the_other_secrets(project, rsa_pem, monkeypatch) -> None:
    root = project(with_examples=False)
    block = "  dkim:\n    domain: news.example.org\n    selector: s1\n    private_key: {}\n"
    with_dkim(root, None, block.format("${DKIM_KEY}"))
    # As an environment file holds it: one line, \n for each line break.
    monkeypatch.setenv("DKIM_KEY", rsa_pem.decode().replace("\n", "\\n"))
    result = invoke(root, "check")
    assert result.exit_code == 0, result.output
    assert 's1._domainkey.news.example.org  TXT "' in result.output
    assert rsa_pem.decode().splitlines()[1] not in result.output
    monkeypatch.setenv(
        "DKIM_KEY", "-----BEGIN PRIVATE KEY-----\nrubbish\n-----END PRIVATE KEY-----"
    )
    output = check_fails(root)
    assert f"pipeline.yaml:{line_of(root, 'private_key:')}:" in output
    assert "rubbish" not in output


def test_a_key_written_into_the_file_is_refused(project, rsa_pem) -> None:
    root = project(with_examples=False)
    literal = rsa_pem.decode().replace("\n", "\\n")
    block = (
        f'  dkim:\n    domain: news.example.org\n    selector: s1\n    private_key: "{literal}"\n'
    )
    with_dkim(root, None, block)
    output = check_fails(root)
    assert "is a secret written into the file" in output
    assert rsa_pem.decode().splitlines()[1] not in output


def test_neither_key_is_refused(project) -> None:
    root = project(with_examples=False)
    with_dkim(root, None, "  dkim:\n    domain: news.example.org\n    selector: s1\n")
    assert "exactly one of" in check_fails(root)


def test_both_keys_are_refused(project, rsa_pem, monkeypatch) -> None:
    root = project(with_examples=False)
    monkeypatch.setenv("DKIM_KEY", rsa_pem.decode())
    both = (
        "  dkim:\n    domain: news.example.org\n    selector: s1\n"
        "    private_key_file: config/dkim.pem\n    private_key: ${DKIM_KEY}\n"
    )
    with_dkim(root, rsa_pem, both)
    assert "exactly one of" in check_fails(root)


def test_check_warns_when_the_from_domain_is_not_aligned(project, rsa_pem) -> None:
    root = project(with_examples=False)
    with_dkim(
        root,
        rsa_pem,
        "  dkim:\n    domain: mail.example.net\n    selector: s1\n"
        "    private_key_file: config/dkim.pem\n",
    )
    result = invoke(root, "check")
    assert result.exit_code == 0
    assert "not the domain of the From address (news.example.org)" in result.output


def test_a_parent_of_the_from_domain_is_aligned(project, rsa_pem) -> None:
    root = project(with_examples=False)
    parent = (
        "  dkim:\n    domain: example.org\n    selector: s1\n"
        "    private_key_file: config/dkim.pem\n"
    )
    with_dkim(root, rsa_pem, parent)
    result = invoke(root, "check")
    assert result.exit_code == 0 and "s1._domainkey.example.org" in result.output
    assert "From address" not in result.output


# -- plug-in transports ------------------------------------------------------------------


class Sent:
    messages: ClassVar[list] = []


def unsigning_transport(email):
    """A third-party factory written before `sign` existed."""

    class Keep:
        def send(self, message) -> None:
            Sent.messages.append(message)

        def close(self) -> None:
            pass

    return Keep()


def with_plugin() -> Plugins:
    extra = Entry(TRANSPORTS, "keep", f"{__name__}:unsigning_transport", "keep-mail")
    return Plugins(find=lambda: [*installed_entries(), extra])


def test_a_plugin_transport_without_sign_works_without_dkim_and_is_refused_with_it(
    project, rsa_pem
) -> None:
    root = project(with_examples=False)
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8").replace("delivery: outbox ", "delivery: keep ")
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config, with_plugin())
    assert settings.email is not None
    assert open_transport(settings.email, with_plugin()) is not None  # no `sign` passed
    with_dkim(root, rsa_pem)
    with pytest.raises(ConfigError) as refused:
        load_settings(config, with_plugin())
    (problem,) = refused.value.problems
    assert problem.line == line_of(root, "delivery: keep")
    assert "cannot DKIM-sign" in problem.message and "accepts `sign`" in problem.hint
    # Settings made without the file's checks still never send unsigned.
    email = settings.email.model_copy(
        update={"dkim": DkimSettings(domain="x.org", selector="s", private_key_file=root / "k")}
    )
    with pytest.raises(MailerBroken):
        open_transport(email, with_plugin())


def test_only_a_named_sign_parameter_counts() -> None:
    def named(email, *, sign=None): ...
    def options(email, **kw): ...

    assert accepts_sign(named) and not accepts_sign(options)
    assert all(accepts_sign(Plugins().load(TRANSPORTS, n)) for n in ("outbox", "smtp")), (
        "the built-ins sign"
    )
    assert BUILT_IN


# -- fuzzing the new settings ------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    domain=st.text(max_size=80),
    selector=st.text(max_size=40),
    key=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.hex())),
)
def test_any_dkim_section_is_accepted_or_a_located_error(tmp_path_factory, domain, selector, key):
    import json

    root = tmp_path_factory.mktemp("fuzz")
    (root / "config").mkdir()
    (root / "config" / "k.pem").write_text(key, encoding="utf-8", errors="replace")
    config = (
        "site: {name: N, url: 'https://example.org'}\nsources: []\n"
        "email:\n  from: n@example.org\n  unsubscribe: {url: 'https://example.org/u'}\n"
        f"  dkim:\n    domain: {json.dumps(domain)}\n    selector: {json.dumps(selector)}\n"
        "    private_key_file: config/k.pem\n"
    )
    (root / "config" / "pipeline.yaml").write_text(config, encoding="utf-8")
    try:
        load_settings(root / "config" / "pipeline.yaml")
    except ConfigError as error:
        assert all(p.line is not None and p.message for p in error.problems)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_key_never_raises_anything_but_a_key_problem(data) -> None:
    from pipeline.dkim import KeyProblem

    try:
        assert isinstance(parse_key(data), DkimKey)
    except KeyProblem as problem:
        assert problem.message and problem.fix


LINE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))  # what a header line holds


@pytest.fixture(scope="module")
def signer_and_dns(rsa_pem):
    import datetime as dt

    key = parse_key(rsa_pem)
    settings = DkimSettings(domain="example.org", selector="s", private_key_file=Path("k"))
    at = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
    record = {"s._domainkey.example.org": f"v=DKIM1; k=rsa; p={key.public}"}
    return Signer(settings, key, clock=lambda: at), dns(record), at


@settings(max_examples=40, deadline=None)
@given(
    subject=st.text(LINE, max_size=200),
    body=st.text(max_size=500),
    name=st.text(LINE, max_size=40),
)
def test_whatever_the_content_the_bytes_sent_verify(signer_and_dns, subject, body, name) -> None:
    from email.message import EmailMessage
    from email.utils import formataddr

    from pipeline.errors import PermanentFailure
    from pipeline.mailer import wire_bytes

    sign, lookup, at = signer_and_dns
    message = EmailMessage()
    message["From"] = formataddr((name, "news@example.org"))
    message["To"] = "reader@example.net"
    message["Subject"] = subject
    message["List-Unsubscribe"] = "<https://example.org/u?token=abc>"
    message.set_content(body)
    try:
        data = sign(wire_bytes(message))
    except PermanentFailure:
        return  # a message that cannot go out as written (an over-long line)
    assert dkim.verify(data, dnsfunc=lookup)
    assert f"t={int(at.timestamp())};".encode() in data.partition(b"\r\n\r\n")[0]
