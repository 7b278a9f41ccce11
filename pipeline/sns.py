"""Amazon SNS messages posted to an HTTP(S) endpoint: is this one really from SNS?

SNS signs each message with the key of a certificate it publishes at
``SigningCertURL``. A message is accepted only when that URL is https on an
``sns.REGION.amazonaws.com`` host (so a forger cannot name a certificate of their own),
the certificate is valid at the moment given, and its key verifies ``Signature`` over
the canonical string SNS documents: chosen fields as ``Name\\nValue\\n`` in a fixed
order, SHA1withRSA for ``SignatureVersion`` 1 and SHA256withRSA for 2. Certificates are
fetched once per URL (``fetch`` is passed in; tests give a locally made one).

A subscription is confirmed by a GET of its ``SubscribeURL``, itself only ever an
``sns.REGION.amazonaws.com`` https address.

https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Fetch = Callable[[str], bytes]

NOTIFICATION = "Notification"
CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBED = "UnsubscribeConfirmation"
SIGNED = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED[UNSUBSCRIBED] = SIGNED[CONFIRMATION]
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SNS_HOST = re.compile(r"sns\.[a-z]{2}(-[a-z]+)+-[0-9]\.amazonaws\.com(\.cn)?")
MAX_CERTIFICATE = 64 * 1024
CACHED = 32  # certificates kept; SNS rotates them rarely


class Forged(Exception):
    """Not a message SNS signed (or not one this endpoint takes); the words say why."""


class Unavailable(Exception):
    """The signing certificate could not be fetched now: ask SNS to deliver again later."""


def parse(body: bytes) -> dict[str, str]:
    """The posted JSON as a dict of strings; ``ValueError`` for anything else."""
    message = load_json(body)
    kind = message.get("Type") if isinstance(message, dict) else None
    if not isinstance(kind, str) or kind not in SIGNED:
        raise ValueError("not an SNS message (Type must be Notification or a confirmation)")
    for name in (*SIGNED[message["Type"]], "Signature", "SignatureVersion", "SigningCertURL"):
        if name == "Subject" and name not in message:
            continue
        if not isinstance(message.get(name), str):
            raise ValueError(f"an SNS {message['Type']} needs a string {name}")
    return message


def load_json(data: bytes | str) -> Any:
    """``json.loads``, with nesting too deep for it a ``ValueError`` like any bad JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def canonical(message: dict[str, str]) -> bytes:
    """The string SNS signs for this message's type."""
    fields = (n for n in SIGNED[message["Type"]] if n in message)
    return "".join(f"{name}\n{message[name]}\n" for name in fields).encode("utf-8")


def is_sns_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return (
            parts.scheme == "https"
            and SNS_HOST.fullmatch(parts.hostname or "") is not None
            and parts.port in (None, 443)  # a port that is no number: ValueError
            and not parts.username
        )
    except ValueError:
        return False


class Verifier:
    """Checks SNS signatures, fetching each signing certificate once."""

    def __init__(self, fetch: Fetch):
        self.fetch = fetch
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def verify(self, message: dict[str, str], now: dt.datetime) -> None:
        """Return if SNS signed ``message``; else raise ``Forged``."""
        algorithm = HASHES.get(message["SignatureVersion"])
        if algorithm is None:
            raise Forged(f"unknown SignatureVersion {message['SignatureVersion'][:10]!r}")
        url = message["SigningCertURL"]
        if not is_sns_url(url) or not urlsplit(url).path.endswith(".pem"):
            raise Forged("SigningCertURL is not an https .pem on an sns.REGION.amazonaws.com host")
        certificate = self._certificate(url)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Forged("the signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Forged("the signing certificate has no RSA key")
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
            key.verify(signature, canonical(message), padding.PKCS1v15(), algorithm())
        except (InvalidSignature, binascii.Error, ValueError):
            raise Forged("the signature does not match the message") from None

    def _certificate(self, url: str) -> x509.Certificate:
        with self._lock:
            known = self._certificates.get(url)
        if known is not None:
            return known
        try:
            data = self.fetch(url)
        except Exception as exc:  # whatever the fetch met: the network, a 404, too large
            raise Unavailable(f"cannot fetch {url}: {type(exc).__name__}") from None
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise Forged("SigningCertURL does not hold a PEM certificate") from None
        with self._lock:
            if len(self._certificates) >= CACHED:
                self._certificates.pop(next(iter(self._certificates)))
            self._certificates[url] = certificate
        return certificate


def confirm(message: dict[str, str], fetch: Fetch) -> None:
    """Confirm a subscription by a GET of its SubscribeURL (an SNS host, nothing else)."""
    url = message["SubscribeURL"]
    if not is_sns_url(url):
        raise Forged("SubscribeURL is not an https sns.REGION.amazonaws.com address")
    fetch(url)


def fetch_https(url: str, timeout: float = 10) -> bytes:
    """GET an SNS address: https, no redirects, at most ``MAX_CERTIFICATE`` bytes."""
    with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
        response.raise_for_status()
        data = response.raw.read(MAX_CERTIFICATE + 1, decode_content=True)
    if len(data) > MAX_CERTIFICATE:
        raise ValueError(f"{url} answered more than {MAX_CERTIFICATE} bytes")
    return bytes(data)
