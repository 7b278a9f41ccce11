"""DKIM signatures (RFC 6376, RFC 8463) on the bytes a transport sends.

``Signer(settings, key)`` is the ``sign`` callable every transport factory takes: it
is given ``pipeline.mailer.wire_bytes`` and returns them with a ``DKIM-Signature``
header in front (relaxed/relaxed; rsa-sha256, or ed25519-sha256 for an Ed25519 key).
The header is written and folded as every other header on the wire is (only at
whitespace, ``b=`` whole; see ``pipeline.mailer``), so the bytes signed are the bytes
sent and no later step re-encodes them.

Of the headers in ``SIGNED`` those present are signed. List-Unsubscribe and
List-Unsubscribe-Post must be (RFC 8058 §4: Gmail and Yahoo honour one-click
unsubscribe only from a signed header).

The key is read and judged once, where the settings are loaded (``config_problems``:
a located error naming the fix), and once more per ``Assembly`` for signing, never per
message. A transport plug-in signs only if its factory names a ``sign`` parameter; with
``email.dkim`` set, one that does not is a configuration error, never unsigned mail.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from pipeline.clock import Clock, system_clock
from pipeline.errors import ConfigError, PermanentFailure, Problem, display_path
from pipeline.plugins import TRANSPORTS, Plugins
from pipeline.settings.dkim import DkimSettings

# dkimpy (with dnspython) and cryptography load in the functions that sign or read a
# key, and the mailer in the one that signs: `check` and every command import this
# module to describe DKIM, and most sites configure none; the imports cost ~0.1 s.
if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.settings.email import EmailSettings
    from pipeline.yamlfile import YamlDocument

SIGNED = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Language",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
)
MIN_RSA_BITS = 1024  # receivers ignore smaller keys (RFC 8301 §3.2)
MAX_KEY_BYTES = 64_000  # a PEM key is a few kilobytes: anything larger is the wrong file
GENERATE = (
    "make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
    "-out config/dkim.pem` and publish the record `pipeline check` prints"
)


class KeyProblem(Exception):
    """What is wrong with a key, and what to do; never the key itself."""

    def __init__(self, message: str, fix: str = GENERATE):
        super().__init__(message)
        self.message, self.fix = message, fix


@dataclass(frozen=True)
class DkimKey:
    kind: str  # the k= of the DNS record: rsa or ed25519
    pem: bytes = field(repr=False)  # the private key, unencrypted PKCS#8
    public: str  # the p= of the DNS record
    bits: int

    @property
    def algorithm(self) -> str:
        return "rsa-sha256" if self.kind == "rsa" else "ed25519-sha256"


def parse_key(data: bytes) -> DkimKey:
    """A PEM private key (PKCS#1 or PKCS#8, RSA or Ed25519) as DKIM needs it."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if b"\\n" in data and b"\n" not in data.strip():
        data = data.replace(b"\\n", b"\n")  # one line in an environment file (Docker, systemd)
    try:
        key = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
    except TypeError:
        raise KeyProblem(
            "the private key is protected by a passphrase, which the pipeline cannot type",
            "write an unprotected copy with `openssl pkey -in key.pem -out dkim.pem` and "
            "keep that file readable only by the pipeline's user",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if b"PUBLIC KEY" in data:
            raise KeyProblem("it holds a public key; DKIM signs with the private one") from None
        raise KeyProblem("it holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyProblem(f"an RSA key of {key.key_size} bits is too short to be trusted")
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKey("rsa", pem, base64.b64encode(spki).decode("ascii"), key.key_size)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return DkimKey("ed25519", pem, base64.b64encode(raw).decode("ascii"), 256)
    name = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
    raise KeyProblem(f"it holds a key of type {name}; DKIM signs with RSA or Ed25519 keys only")


def load_key(settings: DkimSettings) -> DkimKey:
    """The configured key, inline or from its file; KeyProblem says what is wrong."""
    if settings.private_key:
        return parse_key(settings.private_key.encode("utf-8", "replace"))
    path = settings.private_key_file
    assert path is not None  # the settings require one of the two
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise KeyProblem(f"{display_path(path)} does not exist") from None
    except OSError as exc:
        raise KeyProblem(
            f"{display_path(path)} cannot be read ({exc.strerror})",
            "let the pipeline's user read it (`chmod 600` and `chown` to that user)",
        ) from None
    if len(data) > MAX_KEY_BYTES:
        raise KeyProblem(f"{display_path(path)} is larger than any key; is it the right file?")
    return parse_key(data)


class Signer:
    """Signs wire bytes with one key, loaded once.

    dkimpy parses and canonicalises the message (as its verifier will); the key signs
    through ``cryptography`` (OpenSSL). dkimpy's own ``sign`` does RSA in pure Python:
    12–17 ms a message for a 2048-bit key, five times the cost of sending it
    (bench/mailer_bench.py), where OpenSSL takes about one."""

    def __init__(
        self, settings: DkimSettings, key: DkimKey | None = None, clock: Clock = system_clock
    ):
        self.settings = settings
        self.key = key or _loaded(settings)
        self.clock = clock
        from cryptography.hazmat.primitives import serialization

        self._private = serialization.load_pem_private_key(self.key.pem, password=None)

    def __call__(self, data: bytes) -> bytes:
        import dkim as dkimpy
        from dkim.canonicalization import Relaxed

        from pipeline.mailer import header_line

        try:
            parsed = dkimpy.DKIM(data)
        except dkimpy.DKIMException as exc:  # a message it cannot parse: this one only
            raise PermanentFailure(f"the message cannot be DKIM-signed: {exc}") from None
        headers = [(name.lower(), value) for name, value in parsed.headers]
        present = {name for name, _ in headers}
        names = [n.lower() for n in SIGNED if n.lower().encode("ascii") in present]
        body_hash = hashlib.sha256(Relaxed.canonicalize_body(parsed.body)).digest()
        tags = {
            "v": "1",
            "a": self.key.algorithm,
            "c": "relaxed/relaxed",
            "d": self.settings.domain,
            "s": self.settings.selector,
            "t": str(int(self.clock().timestamp())),
            "h": ":".join(names),
            "bh": base64.b64encode(body_hash).decode("ascii"),
        }
        value = "; ".join(f"{tag}={text}" for tag, text in tags.items()) + "; b="
        # RFC 6376 §3.7: the signed headers (each name's last instance, as the verifier
        # takes them), then this header with b= empty and no final CRLF, canonicalised.
        chosen = [_last(headers, name.encode("ascii")) for name in names]
        own = (b"dkim-signature", b" " + value.encode("ascii"))
        hashed = b"".join(n + b":" + v for n, v in Relaxed.canonicalize_headers([*chosen, own]))
        signature = self._sign(hashed.removesuffix(b"\r\n"))
        return header_line("DKIM-Signature", value + base64.b64encode(signature).decode()) + data

    def _sign(self, hashed: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

        if isinstance(self._private, rsa.RSAPrivateKey):
            return self._private.sign(hashed, padding.PKCS1v15(), hashes.SHA256())
        assert isinstance(self._private, ed25519.Ed25519PrivateKey)
        return self._private.sign(hashlib.sha256(hashed).digest())  # RFC 8463 §3


def _last(headers: list[tuple[bytes, bytes]], name: bytes) -> tuple[bytes, bytes]:
    return next(header for header in reversed(headers) if header[0] == name)


def _loaded(settings: DkimSettings) -> DkimKey:
    try:
        return load_key(settings)
    except KeyProblem as problem:
        where = "email.dkim." + ("private_key" if settings.private_key else "private_key_file")
        raise ConfigError([Problem(where, None, None, problem.message, problem.fix)]) from None


def signer(email: EmailSettings, clock: Clock = system_clock) -> Signer | None:
    """The signer ``email.dkim`` asks for, or None."""
    return None if email.dkim is None else Signer(email.dkim, clock=clock)


def accepts_sign(factory: Any) -> bool:
    """Whether a transport factory names a ``sign`` parameter (``**options`` alone does
    not count: it may drop the signer and send unsigned mail)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "sign" in parameters and parameters["sign"].kind is not inspect.Parameter.POSITIONAL_ONLY


def config_problems(doc: YamlDocument, settings: Settings, plugins: Plugins) -> list[Problem]:
    """What ``email.dkim`` makes wrong once paths are resolved: a key file that is
    missing, unreadable or not a usable key; a transport that cannot sign."""
    email = settings.email
    if email is None or email.dkim is None:
        return []
    problems = []
    if email.dkim.private_key_file is not None:
        try:
            load_key(email.dkim)
        except KeyProblem as problem:
            path = ("email", "dkim", "private_key_file")
            message = f"`email.dkim.private_key_file`: {problem.message}"
            problems.append(doc.problem(path, message, problem.fix))
    if not accepts_sign(plugins.load(TRANSPORTS, email.delivery)):
        problems.append(
            doc.problem(
                ("email", "delivery"),
                f"`email.delivery`: the transport {email.delivery!r} cannot DKIM-sign (its "
                "factory takes no `sign` argument), and `email.dkim` is set",
                "upgrade the plug-in to one that accepts `sign`, or remove `email.dkim:` "
                "and let the provider sign",
            )
        )
    return problems


def check_lines(email: EmailSettings | None) -> tuple[list[str], list[str]]:
    """What ``pipeline check`` says of ``email.dkim``: (the DNS record to publish, warnings)."""
    if email is None or email.dkim is None:
        return [], []
    record = dns_record(email.dkim, Signer(email.dkim).key)
    lines = ["DKIM: publish this DNS record (then send yourself a test digest):", f"  {record}"]
    warning = alignment_warning(email)
    return lines, [warning] if warning else []


def dns_record(settings: DkimSettings, key: DkimKey) -> str:
    """The TXT record receivers look the key up in, as a DNS provider's form takes it."""
    return (
        f'{settings.selector}._domainkey.{settings.domain}  TXT "v=DKIM1; k={key.kind}; '
        f'p={key.public}"'
    )


def alignment_warning(email: EmailSettings) -> str | None:
    """Why DMARC would not count the signature: the From domain is neither the signing
    domain nor below it (relaxed alignment, RFC 7489 §3.1.1)."""
    if email.dkim is None:
        return None
    sender = parseaddr(email.from_)[1].rpartition("@")[2].lower().rstrip(".")
    domain = email.dkim.domain
    if sender == domain or sender.endswith("." + domain):
        return None
    return (
        f"email.dkim.domain {domain} is not the domain of the From address ({sender}) nor a "
        f"parent of it: DMARC will not count the signature; sign as {sender} or send from "
        f"an address at {domain}"
    )
