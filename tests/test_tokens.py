"""Signed tokens (pipeline.tokens), pinned down to the byte: the format, the claims a
token must carry and nothing else, expiry on an injected clock (at the exact instant
and one second either side), and which secret signs them. Kept at a mutation score of
at least 85 % (see the report in the commit that added this file)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest

from pipeline import tokens
from pipeline.store import Store
from pipeline.tokens import (
    MAX_ID,
    MAX_TEXT,
    SECRET_NAME,
    InvalidToken,
    TokenClaims,
    address_hash,
    link_secret,
    sign,
    verify,
)
from tests.test_web_limits import Outbox, call, load, signed

SECRET = "s3cret-for-tests"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the format ----------------------------------------------------------------------------


def test_a_token_is_base64url_json_then_its_hmac_sha256():
    token = sign(SECRET, "unsubscribe", 7, "weekly-en", email="Pema@Example.org", expires=99)
    payload = {"a": address_hash("pema@example.org"), "l": "weekly-en", "p": "unsubscribe"}
    body = b64(json.dumps({**payload, "s": 7, "x": 99}, separators=(",", ":")).encode())
    mac = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()
    assert token == f"{body}.{b64(mac)}"
    assert "=" not in token


def test_claims_without_an_address_or_expiry_leave_them_out():
    token = sign(SECRET, "form", 0, "")
    body = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == {
        "p": "form",
        "s": 0,
        "l": "",
    }
    assert verify(SECRET, token, "form") == TokenClaims("form", 0, "", "", None)
    assert TokenClaims("form", 0, "") == TokenClaims("form", 0, "", "", None)


def test_an_expiry_of_zero_is_still_an_expiry():
    token = sign(SECRET, "form", 0, "", expires=0)
    assert verify(SECRET, token, "form", now=0).expires == 0
    with pytest.raises(InvalidToken, match="expired"):
        verify(SECRET, token, "form", now=1)


@pytest.mark.parametrize("length", range(8))  # every base64 padding case of the body
def test_every_body_length_round_trips(length):
    token = sign(SECRET, "unsubscribe", 12345, "x" * length, email="a@example.org", expires=7)
    claims = verify(SECRET, token, "unsubscribe", now=7)
    hashed = address_hash("a@example.org")
    assert claims == TokenClaims("unsubscribe", 12345, "x" * length, hashed, 7)


def test_the_address_hash_is_of_the_trimmed_lower_cased_address():
    expected = hashlib.sha256(b"pema@example.org").hexdigest()[:16]
    assert address_hash("  Pema@Example.ORG\n") == expected
    assert len(expected) == 16


def test_a_token_is_for_its_own_address_only():
    claims = verify(SECRET, sign(SECRET, "confirm", 3, "", email="pema@example.org"), "confirm")
    assert claims.is_for("PEMA@example.org ")
    assert not claims.is_for("anna@example.org")
    assert not TokenClaims("confirm", 3, "", "é" * 16).is_for("pema@example.org")  # no TypeError
    assert not verify(SECRET, sign(SECRET, "confirm", 3, ""), "confirm").is_for("")


# -- refused tokens ------------------------------------------------------------------------


def test_forged_altered_and_misused_tokens_are_refused():
    token = sign(SECRET, "unsubscribe", 7, "weekly-en")
    body, mac = token.split(".")
    other = sign(SECRET, "unsubscribe", 8, "weekly-en").split(".")[0]
    with pytest.raises(InvalidToken, match=r"^the link's signature does not match$"):
        verify(SECRET, f"{other}.{mac}", "unsubscribe")
    with pytest.raises(InvalidToken, match="signature does not match"):
        verify("another secret", token, "unsubscribe")
    with pytest.raises(InvalidToken, match=r"^the link is for 'unsubscribe', not 'confirm'$"):
        verify(SECRET, token, "confirm")
    for bad in (f"{body}.{mac}.x", body, f"{body}.é", f"{body}.{mac[:-2]}"):
        with pytest.raises(InvalidToken, match=r"^the link is malformed \("):
            verify(SECRET, bad, "unsubscribe")
    for bad in (f"{body}.!!", ".", f"{body}.{mac[:-1]}", f"{body[:-4]}.{mac}"):
        with pytest.raises(InvalidToken, match="signature does not match"):
            verify(SECRET, bad, "unsubscribe")


def test_an_empty_token_is_refused_as_such():
    with pytest.raises(InvalidToken, match=r"^the link has no token$"):
        verify(SECRET, "", "unsubscribe")


def signed_bytes(payload: bytes) -> str:
    body = b64(payload)
    return f"{body}.{b64(hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    "payload, error",
    [
        (b"\xff not UTF-8", "UnicodeDecodeError"),
        (b"{not json", "JSONDecodeError"),
        (b"[" * 100_000, "RecursionError"),
        (b'{"p": "p", "s": 1' + b"0" * 5000 + b', "l": ""}', "ValueError"),  # int digit limit
    ],
)
def test_a_signed_body_that_is_not_json_is_malformed(payload, error):
    with pytest.raises(InvalidToken, match=rf"^the link is malformed \({error}\)$"):
        verify(SECRET, signed_bytes(payload), "p")


GOOD = {"p": "p", "s": 1, "l": "l", "a": "a", "x": 10}
EXTRA = {**GOOD, "extra": 1}
NOT_TEXT = [{"p": 1}, {"l": None}, {"a": ["a"]}, {"l": "x" * (MAX_TEXT + 1)}, {"p": "p" * 101}]
NOT_TEXT += [{"a": "a" * 101}, {"l": "weekly\x00"}, {"l": "\ud800"}, {"a": "\n"}, {"p": "p\u2028"}]
NOT_INT = [{"s": "1"}, {"s": 1.0}, {"s": True}, {"s": -1}, {"s": MAX_ID + 1}, {"s": None}]
NOT_INT += [{"x": "10"}, {"x": 10.5}, {"x": False}, {"x": -1}, {"x": MAX_ID + 1}]


@pytest.mark.parametrize(
    "payload",
    [[], "p", 1, None, {"p": "p", "s": 1}, {"s": 1, "l": "l"}, {"p": "p", "l": "l"}, EXTRA],
)
def test_a_signed_payload_that_is_not_the_claims_is_refused(payload):
    with pytest.raises(InvalidToken, match=r"^the link's payload is not a set of claims$"):
        verify(SECRET, signed(SECRET, payload), "p", now=0)


@pytest.mark.parametrize("change", NOT_TEXT)
def test_claims_that_are_not_short_printable_text_are_refused(change):
    with pytest.raises(InvalidToken, match=r"^the link's claims are not text$"):
        verify(SECRET, signed(SECRET, {**GOOD, **change}), "p", now=0)


@pytest.mark.parametrize("change", NOT_INT)
def test_claims_that_are_not_whole_numbers_in_range_are_refused(change):
    with pytest.raises(InvalidToken, match=r"^the link's claims are not whole numbers$"):
        verify(SECRET, signed(SECRET, {**GOOD, **change}), "p", now=0)


def test_the_limits_themselves_are_allowed():
    assert MAX_ID == 2**63 - 1 and MAX_TEXT == 100
    edge = {**GOOD, "s": MAX_ID, "x": MAX_ID, "l": "l" * MAX_TEXT, "a": "a" * MAX_TEXT}
    assert verify(SECRET, signed(SECRET, edge), "p", now=0) == TokenClaims(
        "p", MAX_ID, "l" * MAX_TEXT, "a" * MAX_TEXT, MAX_ID
    )
    zero = {"p": "p", "s": 0, "l": "", "x": 0}
    assert verify(SECRET, signed(SECRET, zero), "p", now=0) == TokenClaims("p", 0, "", "", 0)
    spaced = {**GOOD, "l": "weekly en"}  # a space is printable
    assert verify(SECRET, signed(SECRET, spaced), "p", now=0).list_name == "weekly en"


# -- expiry, on an injected clock ----------------------------------------------------------


def test_a_token_is_valid_at_its_expiry_instant_and_expired_after_it():
    token = sign(SECRET, "confirm", 1, "", expires=1_000)
    assert verify(SECRET, token, "confirm", now=999).expires == 1_000
    assert verify(SECRET, token, "confirm", now=1_000).expires == 1_000
    assert verify(SECRET, token, "confirm", now=1_000.0).expires == 1_000
    for late in (1_000.001, 1_001):
        with pytest.raises(InvalidToken, match=r"^the link has expired$"):
            verify(SECRET, token, "confirm", now=late)


def test_without_an_expiry_a_token_never_expires():
    token = sign(SECRET, "unsubscribe", 1, "weekly-en")
    assert verify(SECRET, token, "unsubscribe", now=float(MAX_ID)).expires is None


def test_the_default_clock_is_the_current_utc_time(monkeypatch):
    assert abs(tokens._now() - time.time()) < 5
    future = sign(SECRET, "confirm", 1, "", expires=int(time.time()) + 3600)
    past = sign(SECRET, "confirm", 1, "", expires=int(time.time()) - 3600)
    assert verify(SECRET, future, "confirm").subscriber_id == 1
    with pytest.raises(InvalidToken, match="expired"):
        verify(SECRET, past, "confirm")
    monkeypatch.setattr(tokens, "_now", lambda: 0.0)  # the default really is _now
    assert verify(SECRET, past, "confirm").subscriber_id == 1


# -- which secret signs --------------------------------------------------------------------


class NoMemory:
    def value_or_create(self, name, make):
        raise AssertionError("a configured secret must not touch the state store")


def test_a_configured_secret_is_used_and_the_store_is_not_touched():
    assert link_secret("configured-secret", NoMemory()) == "configured-secret"


def test_without_one_a_secret_is_generated_once_and_kept(state_url):
    store = Store(state_url, "https://news.example.org")
    try:
        first = link_secret(None, store)
        assert link_secret("", store) == first == store.value("email:link-secret")["secret"]
        assert SECRET_NAME == "email:link-secret"
        assert len(base64.urlsafe_b64decode(first + "=")) == 32  # random bytes, not a word
    finally:
        store.close()


def test_the_web_endpoints_use_the_configured_secret_not_the_generated_one(
    project, state_url, monkeypatch
):
    root = project(with_examples=False)
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("# secret: ${UNSUBSCRIBE_SECRET}", "secret: ${UNSUBSCRIBE_SECRET}")
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", "configured-for-tests")
    config.write_text(text, encoding="utf-8")
    settings = load(root)
    assert settings.email.unsubscribe.secret == "configured-for-tests"
    store = Store(settings.state, settings.site.url)
    try:
        from pipeline.subscribers import SubscriberStore
        from pipeline.web.app import create_app

        person = SubscriberStore(store.engine).add_or_update("anna@example.org", language="en")[1]
        generated = link_secret(None, store)  # what would be used without the setting
        app = create_app(settings, store, transport=Outbox())

        def page(secret: str) -> int:
            token = sign(secret, "unsubscribe", person.id, "weekly-en", email=person.email)
            return call(app, "GET", "/unsubscribe", query=urlencode({"token": token}).encode())

        assert page("configured-for-tests").status == 200
        assert page(generated).status == 400
    finally:
        store.close()
