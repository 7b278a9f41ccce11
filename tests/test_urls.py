"""pipeline.urls and the body links: every URL that leaves is a URI (RFC 3987 §3.1), and
only http/https (and mailto in bodies) leave at all."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.text import sanitize_html
from pipeline.urls import WEB_URL, UnsafeURL, as_uri, has_scheme, is_web_origin, safe_link

# RFC 3986 §3, the grammar the JSON Schema format "uri" and the W3C feed validator apply.
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|{_PCT})"
_HOST = rf"(?:\[[0-9A-Fa-f:.vV]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|{_PCT})*)"
_USERINFO = rf"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|{_PCT})*@)?"
URI = re.compile(
    rf"^[A-Za-z][A-Za-z0-9+\-.]*:(?://{_USERINFO}{_HOST}(?::[0-9]*)?)?"
    rf"(?:{_PCHAR}|/)*(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?$"
)
# A URI reference may also be relative; what matters is that no character is outside
# the URI character set (the validator's "IRI found where URL expected").
URI_CHARACTERS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")


def is_uri(value: str) -> bool:
    return URI.match(value) is not None


# -- as_uri --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iri", "uri"),
    [
        (
            "https://news.example.org/news/冰川消融/",
            "https://news.example.org/news/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D/",
        ),
        ("https://例子.广告/新闻?q=冰川#第二节", None),
        ("https://Bücher.example/", "https://xn--bcher-kva.example/"),
        ('https://example.org/a b/"<x>"?q=a b', "https://example.org/a%20b/%22%3Cx%3E%22?q=a%20b"),
        ("https://example.org/%E5%86%B0%zz", "https://example.org/%E5%86%B0%25zz"),
        ("https://example.org/a?", "https://example.org/a?"),  # nothing but the encoding changes
        ("https://user:pä@example.org:8080/", "https://user:p%C3%A4@example.org:8080/"),
        ("https://[2001:db8::1]:80/é", "https://[2001:db8::1]:80/%C3%A9"),
        ("/news/冰川/", "/news/%E5%86%B0%E5%B7%9D/"),
        ("#注释", "#%E6%B3%A8%E9%87%8A"),
    ],
)
def test_as_uri_encodes_what_a_uri_cannot_hold(iri, uri):
    got = as_uri(iri)
    if uri is not None:
        assert got == uri
    assert URI_CHARACTERS.match(got), got
    assert as_uri(got) == got


def test_an_idn_host_becomes_punycode_and_the_rest_utf8_escapes():
    got = as_uri("https://例子.广告/新闻?q=冰川#第二节")
    parts = urlsplit(got)
    assert parts.hostname == "xn--fsqu00a.xn--4rr70v"
    assert unquote(parts.path) == "/新闻" and unquote(parts.query) == "q=冰川"
    assert unquote(parts.fragment) == "第二节"
    assert is_uri(got)


def test_a_host_idna_refuses_is_an_unsafe_url():
    with pytest.raises(UnsafeURL, match="not a valid internationalised domain name"):
        as_uri("https://a_b.例子/")


iri_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("%/?#@:[] "),
    max_size=30,
)
labels = st.text(st.sampled_from("abcxyz019冰川消融例子广告üé"), min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(text=iri_text)
def test_any_text_becomes_a_uri_reference_and_stays_one(text):
    try:
        got = as_uri(text)
    except UnsafeURL:  # only for a host IDNA cannot encode
        return
    assert URI_CHARACTERS.match(got), got
    assert as_uri(got) == got


@settings(max_examples=200, deadline=None)
@given(host=st.lists(labels, min_size=1, max_size=3), path=iri_text, query=iri_text)
def test_web_iris_become_uris_that_decode_back(host, path, query):
    path = "/" + path.replace("?", "").replace("#", "")
    query = query.replace("#", "")
    iri = f"https://{'.'.join(host)}{path}?{query}"
    got = as_uri(iri)
    assert is_uri(got), got
    parts = urlsplit(got)
    if "%" not in path:  # an escape already written is kept, so it decodes once more
        assert unquote(parts.path) == path
    if "%" not in query:
        assert unquote(parts.query) == query


# -- safe_link -------------------------------------------------------------------------------

HOSTILE = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml;base64,PHN2Zz4=",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://example.org/x",
    "blob:https://example.org/x",
]


@pytest.mark.parametrize("url", HOSTILE)
@pytest.mark.parametrize("mailto", [False, True])
def test_only_http_and_https_leave(url, mailto):
    with pytest.raises(UnsafeURL) as caught:
        safe_link(url, allow_mailto=mailto)
    assert "https://" in caught.value.hint
    with pytest.raises(UnsafeURL):  # a base does not make them relative
        safe_link(url, base="https://example.org/news/a/", allow_mailto=mailto)


def test_mailto_only_where_allowed():
    assert safe_link("mailto:desk@example.org", allow_mailto=True) == "mailto:desk@example.org"
    with pytest.raises(UnsafeURL, match="mailto: link"):
        safe_link("mailto:desk@example.org")


@pytest.mark.parametrize("url", ["/news/a/", "news/a/", "//", "https://", "http:///x", ""])
def test_relative_or_host_less_links_are_refused_without_a_base(url):
    with pytest.raises(UnsafeURL):
        safe_link(url)


def test_relative_links_resolve_against_the_base():
    base = "https://news.example.org/news/冰川/"
    assert (
        safe_link("图.jpg", base=base)
        == "https://news.example.org/news/%E5%86%B0%E5%B7%9D/%E5%9B%BE.jpg"
    )
    assert safe_link("/about/", base=base) == "https://news.example.org/about/"
    assert safe_link("HTTPS://Example.org/", base=base) == "https://Example.org/"


@settings(max_examples=300, deadline=None)
@given(
    url=st.text(max_size=40)
    | st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE), st.text(max_size=10))
)
def test_whatever_safe_link_returns_is_an_http_uri(url):
    try:
        got = safe_link(url, allow_mailto=False)
    except UnsafeURL:
        return
    assert got.startswith(("http://", "https://")) and is_uri(got), got
    assert urlsplit(got).hostname


def test_has_scheme_reads_like_a_browser():
    assert has_scheme(" java\tscript:x") and has_scheme("mailto:a@b")
    assert not has_scheme("/a:b") and not has_scheme("#x") and not has_scheme("//host/p")


# -- links in article bodies -----------------------------------------------------------------

BASE = "https://news.example.org/news/冰川消融/"


def test_body_links_keep_only_safe_schemes_and_become_uris(caplog):
    body = (
        '<p><a href="jav&#x61;script:alert(1)">a</a> <a href="VBScript:x">b</a>'
        '<a href="https://例子.广告/新闻">c</a> <a href="mailto:desk@example.org">d</a>'
        '<a href="/zh/其他/">e</a> <a href="#注">f</a></p>'
        '<img src="data:image/png;base64,AAAA" alt="x"><img src="mailto:a@b" alt="y">'
        '<img src="图/冰川.jpg" alt="z">'
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.text"):
        clean = sanitize_html(body, base_url=BASE, article="news/冰川消融.md")
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', clean)
    assert hrefs == [
        "https://xn--fsqu00a.xn--4rr70v/%E6%96%B0%E9%97%BB",
        "mailto:desk@example.org",
        "https://news.example.org/zh/%E5%85%B6%E4%BB%96/",
        "https://news.example.org/news/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D/#%E6%B3%A8",
        "https://news.example.org/news/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D/%E5%9B%BE/%E5%86%B0%E5%B7%9D.jpg",
    ]
    for gone in ("javascript", "VBScript", "data:", "mailto:a@b"):
        assert gone not in clean
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, warnings
    assert all(w.startswith("news/冰川消融.md: dropped the ") for w in warnings)
    assert any("'javascript:alert(1)'" in w for w in warnings)
    assert any("image 'mailto:a@b'" in w for w in warnings)


def test_without_a_base_relative_body_links_stay_relative_but_encoded():
    clean = sanitize_html('<a href="/zh/其他/">e</a><img src="a.png">')
    assert 'href="/zh/%E5%85%B6%E4%BB%96/"' in clean and 'src="a.png"' in clean


payloads = st.sampled_from(HOSTILE) | st.builds(
    lambda scheme, rest: f"{scheme}:{rest}",
    st.sampled_from(["javascript", "data", "vbscript", "JAVASCRIPT", "file"]),
    st.text(max_size=10),
)


@settings(max_examples=200, deadline=None)
@given(payload=payloads, tag=st.sampled_from(["a", "img"]))
def test_no_unsafe_scheme_survives_sanitising(payload, tag):
    import html

    attr = "href" if tag == "a" else "src"
    clean = sanitize_html(f'<{tag} {attr}="{html.escape(payload)}">x</{tag}>', base_url=BASE)
    for value in re.findall(rf'{attr}="([^"]*)"', clean):
        value = html.unescape(value)
        assert value.startswith(("https://", "http://")), value
        assert URI_CHARACTERS.match(value), value


# -- the one pattern of a web address ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "origin", "url"),
    [
        ("https://www.example.org", True, True),
        ("HTTP://www.example.org:8080", True, True),
        ("https://www.example.org/", False, True),
        ("https://www.example.org/news?a=1#b", False, True),
        ("https://", False, False),
        ("ftp://www.example.org", False, False),
        ("www.example.org", False, False),
    ],
)
def test_one_pattern_tells_web_addresses_and_origins(value, origin, url):
    assert is_web_origin(value) is origin
    assert (WEB_URL.match(value) is not None) is url


def test_the_pattern_finds_addresses_in_text_up_to_a_space_or_quote():
    text = "failed on 'https://user:secret@feeds.example.org/a?b=1' then http://x.org/y z"
    found = [m.group() for m in WEB_URL.finditer(text)]
    assert found == ["https://user:secret@feeds.example.org/a?b=1", "http://x.org/y"]
