"""Property tests for the web endpoints: whatever form body or token arrives, the answer
is a 2xx, 3xx or 4xx with a body (an HTML page, or a short plain-text refusal for a body
that is not a form), with ``nosniff``, and it comes quickly — never a 5xx.

Forms: random fields and values, in URL encoding (UTF-8, Latin-1, UTF-16), multipart
(with odd boundaries, file parts and truncation) or raw bytes, up to and just past the
16 KB limit. Tokens: random text, valid tokens truncated or altered, and genuinely
signed tokens carrying random JSON (so the claims check, not the signature, is tried).

Called in-process (``call`` from test_web_limits; about a millisecond a request), and a
few examples through the real uvicorn server, where the bytes of the request line are
parsed for real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from urllib.parse import quote, quote_from_bytes, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.tokens import address_hash, sign
from pipeline.web.app import MAX_BODY
from tests.test_web_limits import Answer, Web, call, load, signed

RUNS = settings(
    max_examples=60,
    deadline=None,  # the time bound is asserted per request below, with its own margin
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = 3.0  # seconds: far above the milliseconds a request takes, even on a loaded machine
ORIGIN = "http://testserver"
FIELDS = ["email", "name", "language", "topics", "form_token", "token", "List-Unsubscribe"]
PURPOSES = ["unsubscribe", "confirm", "form", ""]


@pytest.fixture
def web(project, state_url):
    settings = load(project(with_examples=False))
    site = Web(settings, state_url)
    site.anna = site.people.add_or_update("anna@example.org", name="Anna", language="en")[1]
    yield site
    site.store.close()


def check(answer: Answer, elapsed: float, size: int = 0) -> None:
    """The property every answer has."""
    assert 200 <= answer.status < 500, (answer.status, answer.body[:500])
    assert answer.body, answer.status
    kind = answer.headers.get("content-type", "")
    assert kind.startswith(("text/html", "text/plain")), kind
    assert answer.values("x-content-type-options") == ["nosniff"]
    assert elapsed < SLOW, elapsed
    if size > MAX_BODY:
        assert answer.status == 413


# -- strategies ----------------------------------------------------------------------------

names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=20))
values = st.one_of(
    st.sampled_from(["en", "zh-CN", "One-Click", "a@example.org", "Nepal, China", ""]),
    st.emails().map(str),
    st.text(max_size=300),
    st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=200, max_size=3000),
)
pairs = st.lists(st.tuples(names, values), max_size=10)


@st.composite
def form_bodies(draw) -> tuple[bytes, str]:
    """(body, Content-Type) of a form, or of something posing as one."""
    fields = draw(pairs)
    kind = draw(st.sampled_from(["urlencoded", "multipart", "raw"]))
    if kind == "urlencoded":
        encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
        body = urlencode(fields, encoding=encoding, errors="replace").encode()
        content_type = draw(
            st.sampled_from(
                [
                    "application/x-www-form-urlencoded",
                    f"application/x-www-form-urlencoded; charset={encoding}",
                    "Application/X-WWW-Form-URLEncoded ;",
                ]
            )
        )
    elif kind == "multipart":
        boundary = draw(st.text(alphabet="abcXYZ0123456789-_'()+,./:=?", min_size=1, max_size=70))
        parts = []
        for name, value in fields:
            file = '; filename="f.txt"' if draw(st.booleans()) and not parts else ""
            head = f'Content-Disposition: form-data; name="{name}"{file}'
            parts.append(f"--{boundary}\r\n{head}\r\n\r\n{value}\r\n")
        body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")
        body = body[: draw(st.integers(0, len(body)))]  # often cut short
        declared = draw(st.sampled_from([boundary, "other", ""]))
        content_type = f"multipart/form-data; boundary={declared}"
    else:
        body = draw(st.binary(max_size=2000))
        content_type = draw(
            st.sampled_from(["", "text/plain", "application/json", "multipart/form-data"])
        )
    target = draw(st.one_of(st.none(), st.integers(MAX_BODY - 200, MAX_BODY + 200)))
    if target is not None and len(body) < target:  # up to the limit, and just past it
        body += b"&pad=" + b"x" * max(0, target - len(body) - 5)
    return body, content_type


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@st.composite
def claim_sets(draw, web: Web) -> object:
    """Random JSON, or claims close to real ones with some of them wrong."""
    if draw(st.booleans()):
        return draw(json_values)
    claims = {
        "p": draw(st.sampled_from(PURPOSES) | json_values),
        "s": draw(st.sampled_from([web.anna.id, 0, -1, 2**63, 2**64]) | json_values),
        "l": draw(st.sampled_from(["weekly-en", "", "x" * 101, "\x00"]) | json_values),
        "a": draw(st.just(address_hash(web.anna.email)) | json_values),
        "x": draw(st.sampled_from([0, 2**40, 2**70]) | json_values),
    }
    keep = draw(st.lists(st.sampled_from(list(claims)), unique=True))
    extra = draw(st.dictionaries(st.text(max_size=3), json_values, max_size=2))
    return {**{k: claims[k] for k in keep}, **extra}


@st.composite
def tokens(draw, web: Web) -> str:
    valid = sign(web.secret, "unsubscribe", web.anna.id, "weekly-en", email=web.anna.email)
    kind = draw(st.sampled_from(["text", "alphabet", "truncated", "altered", "signed"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "alphabet":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
        return draw(st.text(alphabet=alphabet, max_size=200))
    if kind == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == "altered":
        at = draw(st.integers(0, len(valid) - 1))
        replacement = draw(st.characters(max_codepoint=0x7F).filter(lambda c: c != valid[at]))
        return valid[:at] + replacement + valid[at + 1 :]
    if draw(st.booleans()):  # a payload that is not JSON at all, signed
        body = base64.urlsafe_b64encode(draw(st.binary(max_size=100))).rstrip(b"=").decode()
        mac = hmac.new(web.secret.encode(), body.encode(), hashlib.sha256).digest()
        return f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    return signed(web.secret, draw(claim_sets(web)))


def timed(function, *args, **kw) -> tuple[Answer, float]:
    start = time.perf_counter()
    answer = function(*args, **kw)
    return answer, time.perf_counter() - start


# -- the properties ------------------------------------------------------------------------


@RUNS
@given(data=st.data())
def test_any_form_body_gets_a_page_and_never_a_5xx(web, data):
    endpoint = data.draw(st.sampled_from(["/subscribe", "/unsubscribe", "/confirm"]))
    body, content_type = data.draw(form_bodies())
    headers = {"Content-Type": content_type} if content_type else {}
    if data.draw(st.booleans()):
        headers["Origin"] = data.draw(st.sampled_from([ORIGIN, "null", "http://[::1", "x"]))
    if data.draw(st.booleans()):
        headers["Accept-Language"] = (
            data.draw(st.text(max_size=40)).encode("latin-1", "replace").decode("latin-1")
        )
    if endpoint == "/subscribe" and data.draw(st.booleans()):  # past the form-token check
        token = web.form_token()
        body = f"form_token={quote(token)}&".encode() + body
    query = b""
    if endpoint != "/subscribe" and data.draw(st.booleans()):
        query = b"token=" + quote_from_bytes(data.draw(st.binary(max_size=60))).encode()
    answer, elapsed = timed(
        call,
        web.app,
        "POST",
        endpoint,
        query=query,
        body=body,
        headers=headers,
        client=web.client(),
    )
    check(answer, elapsed, len(body))


@RUNS
@given(data=st.data())
def test_a_valid_form_token_with_random_fields_gets_a_page(web, data):
    """Deeper than the test above: every request passes the origin and form-token checks,
    so the fields reach the validation, the store and the mail."""
    fields = dict(data.draw(pairs))
    fields["form_token"] = web.form_token()
    if data.draw(st.booleans()):
        fields["language"] = data.draw(st.sampled_from(["en", "zh-CN"]))
    if data.draw(st.booleans()):
        fields["email"] = data.draw(st.emails().map(str) | st.text(max_size=80))
    origin = {"Origin": ORIGIN}
    answer, elapsed = timed(web.post, "/subscribe", fields, headers=origin, client=web.client())
    check(answer, elapsed)
    assert answer.status in (200, 400, 429)


@settings(RUNS, max_examples=150)  # a token request is cheap: no mail, one or two reads
@given(data=st.data())
def test_any_token_gets_a_page_and_never_a_5xx(web, data):
    token = data.draw(tokens(web))
    endpoint = data.draw(st.sampled_from(["/unsubscribe", "/confirm"]))
    method = data.draw(st.sampled_from(["GET", "POST"]))
    query = urlencode({"token": token}) if data.draw(st.booleans()) else ""
    if method == "GET":
        answer, elapsed = timed(web.get, endpoint, query)
    else:
        form = {"List-Unsubscribe": "One-Click", "token": token}
        answer, elapsed = timed(web.post, endpoint, form, query)
    check(answer, elapsed)
    assert answer.status in (200, 400)
    assert answer.headers["content-type"].startswith("text/html")
    if answer.status == 400:
        assert "This link does not work" in answer.text


@settings(RUNS, max_examples=25)
@given(data=st.data())
def test_raw_request_lines_through_uvicorn_never_get_a_5xx(web, live_app, data):
    """Through the real server: the bytes of the address are parsed by uvicorn."""
    if not hasattr(web, "base"):
        web.base = live_app(web.app)
    endpoint = data.draw(st.sampled_from(["/unsubscribe", "/confirm", "/subscribe", "/feeds/"]))
    raw = data.draw(st.binary(max_size=80))
    # Any byte a client could put in a request line: printable ASCII as it is, the rest
    # percent-encoded (a raw space or control byte is a malformed request line).
    path = endpoint + "?token=" + quote_from_bytes(raw, safe="!$&'()*+,;=:@/?.~-_%")
    connection = http.client.HTTPConnection(urlsplit(web.base).netloc, timeout=10)
    try:
        start = time.perf_counter()
        connection.request(data.draw(st.sampled_from(["GET", "POST"])), path)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    assert 200 <= response.status < 500 and body, (response.status, path)
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert elapsed < SLOW


def test_the_claims_strategy_reaches_a_valid_unsubscribe(web):
    """The token strategy is not blind: real claims signed get through (a control)."""
    claims = {"p": "unsubscribe", "s": web.anna.id, "l": "weekly-en"}
    claims["a"] = address_hash(web.anna.email)
    assert web.get("/unsubscribe", urlencode({"token": signed(web.secret, claims)})).status == 200
    assert json.loads(json.dumps(claims)) == claims
