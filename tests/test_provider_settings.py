"""email.ses and email.mailgun: what `delivery: ses|mailgun` needs, each mistake located."""

from __future__ import annotations

import pytest

from pipeline.settings import load_settings
from tests.test_settings import MINIMAL, problems, write_config

EMAIL = (
    "email:\n  from: news@news.example.org\n  delivery: {delivery}\n"
    "  unsubscribe:\n    url: https://news.example.org/unsubscribe\n"
)


@pytest.mark.parametrize(
    ("delivery", "needs"), [("ses", "with region"), ("mailgun", "with domain and api_key")]
)
def test_a_provider_delivery_without_its_section_is_a_located_error(tmp_path, delivery, needs):
    path = write_config(tmp_path, MINIMAL + EMAIL.format(delivery=delivery))
    (message,) = problems(path)
    assert message.startswith(f"{path}:8:1:"), message  # the line of `email:`
    assert f"delivery: {delivery} needs a `{delivery}:` section {needs}" in message


@pytest.mark.parametrize(
    ("section", "where", "words"),
    [
        ("  ses:\n    region: Ireland\n", "email.ses.region", "write e.g. eu-west-1"),
        ("  ses:\n    region: eu-west-1\n    access_key_id: AKID\n", "email.ses", "give both"),
        (
            "  ses:\n    region: eu-west-1\n    endpoint_url: email.amazonaws.com\n",
            "email.ses.endpoint_url",
            "absolute http(s) URL",
        ),
        (
            "  ses:\n    region: eu-west-1\n    notification_topics: [ses-feedback]\n",
            "email.ses.notification_topics",
            "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
        ),
        ("  mailgun:\n    domain: mg\n    api_key: ${K}\n", "email.mailgun.domain", "mg.example"),
        (
            "  mailgun:\n    domain: mg.example.org\n    api_key: ${K}\n    region: de\n",
            "email.mailgun.region",
            "'us' or 'eu'",
        ),
    ],
)
def test_provider_mistakes_are_located(tmp_path, monkeypatch, section, where, words):
    monkeypatch.setenv("K", "key-1")
    path = write_config(tmp_path, MINIMAL + EMAIL.format(delivery="outbox") + section)
    (message,) = problems(path)
    assert f"`{where}`" in message and words in message, message
    assert message.startswith(f"{path}:1"), message  # a line in the file


@pytest.mark.parametrize(
    "section",
    [
        "  mailgun:\n    domain: mg.example.org\n    api_key: key-literal\n",
        "  mailgun:\n    domain: mg.example.org\n    api_key: ${K}\n"
        "    webhook_signing_key: literal\n",
        "  ses:\n    region: eu-west-1\n    access_key_id: AKID\n    secret_access_key: abc\n",
    ],
)
def test_provider_secrets_must_come_from_the_environment(tmp_path, monkeypatch, section):
    monkeypatch.setenv("K", "key-1")
    path = write_config(tmp_path, MINIMAL + EMAIL.format(delivery="outbox") + section)
    (message,) = problems(path)
    assert "is a secret written into the file" in message


def test_a_complete_provider_section_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILGUN_KEY", "key-1")
    monkeypatch.setenv("MAILGUN_SIGNING", "sign-1")
    monkeypatch.setenv("AWS_SECRET", "s3cret")
    text = (
        MINIMAL
        + EMAIL.format(delivery="ses")
        + (
            "  ses:\n    region: eu-west-1\n    access_key_id: AKIDEXAMPLE\n"
            "    secret_access_key: ${AWS_SECRET}\n    configuration_set: newsroom\n"
            '    notification_topics: ["arn:aws:sns:eu-west-1:123456789012:ses-feedback"]\n'
            "  mailgun:\n    domain: MG.example.org\n    api_key: ${MAILGUN_KEY}\n"
            "    region: eu\n    webhook_signing_key: ${MAILGUN_SIGNING}\n"
        )
    )
    email = load_settings(write_config(tmp_path, text)).email
    assert email.ses.secret_access_key == "s3cret" and email.ses.configuration_set == "newsroom"
    assert email.mailgun.domain == "mg.example.org"
    assert email.mailgun.api_url == "https://api.eu.mailgun.net"
    assert "s3cret" not in repr(email) and "key-1" not in repr(email)
