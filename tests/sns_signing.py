"""Signing as Amazon SNS does, with a certificate made here: what ``/hooks/ses`` must take
(and, altered, refuse) without any network."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from pipeline.sns import canonical

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    + TOPIC
    + "&Token=2336412f37fb687f5d51e6e2425"
)


def certificate(now: dt.datetime, days: int = 365) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Sns:
    """Makes signed SNS messages; ``fetch`` serves the certificate and records each GET."""

    key: rsa.RSAPrivateKey
    pem: bytes
    fetched: list[str] = field(default_factory=list)
    counter: int = 0

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        if url == CERT_URL:
            return self.pem
        return b"<ConfirmSubscriptionResponse/>"

    def signed(self, kind: str = "Notification", version: str = "1", **fields: str) -> dict:
        self.counter += 1
        message = {
            "Type": kind,
            "MessageId": f"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf3{self.counter:02d}",
            "TopicArn": TOPIC,
            "Message": "{}",
            "Timestamp": "2026-12-05T12:00:00.000Z",
            "SignatureVersion": version,
            "SigningCertURL": CERT_URL,
        }
        if kind != "Notification":
            message |= {"Token": "2336412f37fb687f5d51e6e2425", "SubscribeURL": SUBSCRIBE_URL}
        message |= fields
        return self.sign(message)

    def sign(self, message: dict, key: rsa.RSAPrivateKey | None = None) -> dict:
        algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        signature = (key or self.key).sign(canonical(message), padding.PKCS1v15(), algorithm)
        return {**message, "Signature": base64.b64encode(signature).decode()}


def bounce(kind: str = "Permanent", *addresses: str, shape: str = "notificationType") -> str:
    listed = addresses or ("anna@example.org",)
    return json.dumps(
        {
            shape: "Bounce",
            "bounce": {
                "bounceType": kind,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": a,
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                    for a in listed
                ],
                "timestamp": "2026-12-05T11:59:58.000Z",
                "feedbackId": "0102017f-bounce",
            },
            "mail": {
                "messageId": "0102017f-ses-id",
                "commonHeaders": {"messageId": "<e1.anna@news.example.org>"},
            },
        }
    )


def complaint(*addresses: str) -> str:
    return json.dumps(
        {
            "eventType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": a} for a in addresses],
                "complaintFeedbackType": "abuse",
                "timestamp": "2026-12-05T11:59:00.000Z",
            },
            "mail": {"headers": [{"name": "Message-ID", "value": "<e2@news.example.org>"}]},
        }
    )
