"""URLs that leave the project: always URIs, and only schemes a reader can safely follow.

Editors write IRIs (``https://news.example.org/news/冰川消融/``, ``https://例子.广告/``);
feeds, JSON Feed, mail headers and social payloads need URIs (the W3C feed validator
says "IRI found where URL expected", JSON Feed's ``uri`` format refuses them). ``as_uri``
is the one conversion, RFC 3987 §3.1: the host to IDNA, everything else UTF-8 and
percent-encoded, escapes already there kept, so it is safe to apply twice.

``safe_link`` adds the scheme rule: only ``http`` and ``https`` (and, in article bodies,
``mailto``) leave the project. ``javascript:``, ``data:``, ``vbscript:``, ``file:`` and
every other scheme raise ``UnsafeURL``, as does a relative or host-less link, which means
nothing in a feed reader or a mail client.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import idna

__all__ = [
    "WEB_SCHEMES",
    "WEB_URL",
    "UnsafeURL",
    "as_uri",
    "has_scheme",
    "is_web_origin",
    "safe_link",
]

WEB_SCHEMES = frozenset({"http", "https"})
# The one pattern of a web address as people write it in config and as it turns up in
# text: http(s)://, a host (and port), then anything up to a space, a quote or a bracket.
WEB_URL = re.compile(r"\bhttps?://(?P<host>[^/?#\s'\"<>]+)(?P<rest>[^\s'\"<>]*)", re.IGNORECASE)

# RFC 3986 characters a URI may carry as they are, per component. '%' is handled apart:
# kept when it starts a valid escape, encoded as %25 otherwise.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_SUB_DELIMS = "!$&'()*+,;="
_PATH_SAFE = frozenset(_UNRESERVED + _SUB_DELIMS + ":@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")  # query and fragment: pchar / "/" / "?"
_USERINFO_SAFE = frozenset(_UNRESERVED + _SUB_DELIMS + ":")
_HOST_SAFE = _USERINFO_SAFE | frozenset("[]")  # reg-name, or an IP literal with its brackets
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a browser (WHATWG URL) ignores: C0 controls and spaces at either end, and tabs and
# line breaks anywhere. "java\tscript:" is javascript: to a browser, so it is to us too.
_EDGE = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# RFC 3986 Appendix B. Unlike urllib's urlsplit it keeps an empty query or fragment
# ("…/a?" stays "…/a?") and never drops or reorders anything, so nothing but the
# encoding changes.
_REFERENCE = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$", re.S)


class UnsafeURL(ValueError):
    """A URL that may not leave the project: ``problem`` says why, ``hint`` what to write.

    ``field`` names the article field it came from (``url``, ``image``) when known, so a
    source can point at the line that holds it.
    """

    def __init__(self, problem: str, hint: str, field: str | None = None) -> None:
        self.problem, self.hint, self.field = problem, hint, field
        super().__init__(f"`{field}`: {problem} — {hint}" if field else f"{problem} — {hint}")

    def of(self, field: str) -> UnsafeURL:
        """The same complaint, naming the field it concerns."""
        return UnsafeURL(self.problem, self.hint, field)


def _encode(text: str, safe: frozenset[str]) -> str:
    """Percent-encode what ``safe`` does not allow, as UTF-8; keep valid %XX escapes."""
    if safe.issuperset(text):  # the usual case, asked in C: nothing to encode ('%' is not safe)
        return text
    text = _SURROGATE.sub("\ufffd", text)  # a lone surrogate has no UTF-8 form
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%" and _ESCAPE.match(text, i):
            out.append(text[i : i + 3])
            i += 3
            continue
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
        i += 1
    return "".join(out)


def _ascii_host(host: str) -> str:
    """The host in IDNA (``例子.广告`` → ``xn--fsqu00a.xn--4rr70v``); ASCII hosts unchanged."""
    if host.isascii():  # a space or quote there would leave a non-URI; escaped, it cannot
        return _encode(host, _HOST_SAFE)
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise UnsafeURL(
            f"host {_show(host)} is not a valid internationalised domain name ({error})",
            "copy the address from a browser's address bar",
        ) from None


def _split_authority(authority: str) -> tuple[str, str, str, str]:
    """``user@host:port`` as (``user``, ``@``, ``host``, ``:port``); IPv6 keeps its brackets."""
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("[") and "]" in hostport:
        host, _, port = hostport.partition("]")
        return userinfo, at, host + "]", port
    host, colon, port = hostport.partition(":")
    return userinfo, at, host, colon + port


def _authority(authority: str) -> str:
    userinfo, at, host, port = _split_authority(authority)
    return f"{_encode(userinfo, _USERINFO_SAFE)}{at}{_ascii_host(host)}{_encode(port, _PATH_SAFE)}"


def as_uri(url: str) -> str:
    """The URI form of an IRI or URI reference (RFC 3987 §3.1); idempotent.

    The host becomes IDNA; userinfo, path, query and fragment become UTF-8 with every
    character a URI may not hold percent-encoded (non-ASCII, spaces, ``"<>\\^`{|}``),
    while escapes already present (``%E5%86%B0``) stay as written. Relative references
    are converted too. Raises ``UnsafeURL`` for a host IDNA cannot encode.
    """
    found = _REFERENCE.match(url)
    assert found is not None  # every string matches: each group is optional
    scheme, authority, path, query, fragment = found.groups()
    if scheme is not None and not _SCHEME.match(scheme + ":"):
        # "冰川:x" or "<https://host>" has no scheme: all of it, "//" included, is a
        # path whose first segment holds a colon. Written "./" first, as RFC 3986 §4.2
        # asks, so that no reader takes that segment for a scheme or what follows the
        # "//" for a host.
        rest = f"//{authority}{path}" if authority is not None else path
        scheme, authority, path = None, None, f"./{scheme}:{rest}"
    uri = f"{scheme}:" if scheme is not None else ""
    if authority is not None:
        uri += "//" + _authority(authority)
    uri += _encode(path, _PATH_SAFE)
    if query is not None:
        uri += "?" + _encode(query, _QUERY_SAFE)
    if fragment is not None:
        uri += "#" + _encode(fragment, _QUERY_SAFE)
    return uri


def is_web_origin(value: str) -> bool:
    """Whether ``value`` is a scheme and host alone (``https://www.example.org``)."""
    found = WEB_URL.fullmatch(value)
    return found is not None and not found["rest"]


def has_scheme(url: str) -> bool:
    """Whether ``url`` names a scheme, read as a browser reads it; False for a relative
    reference (``/news/a/``, ``images/a.jpg``, ``#notes``, ``//host/path``)."""
    return _SCHEME.match(_TAB_NEWLINE.sub("", _EDGE.sub("", url))) is not None


def safe_link(url: str, *, base: str | None = None, allow_mailto: bool = False) -> str:
    """``url`` as a URI if a reader may follow it, else ``UnsafeURL`` saying why.

    Allowed: absolute ``http``/``https`` URLs with a host, and ``mailto:`` when
    ``allow_mailto`` (links in article bodies). A relative reference is resolved against
    ``base`` when one is given (``images/a.jpg`` next to the article), and refused
    otherwise. As a browser does, surrounding spaces and control characters are dropped
    and tabs and line breaks inside removed before the scheme is read, so
    ``" java\\tscript:"`` is refused like ``javascript:``.
    """
    cleaned = _TAB_NEWLINE.sub("", _EDGE.sub("", url))
    if base is not None and not _SCHEME.match(cleaned):
        cleaned = urljoin(as_uri(base), as_uri(cleaned))
    found = _SCHEME.match(cleaned)
    scheme = found[1].lower() if found else ""
    allowed = WEB_SCHEMES | ({"mailto"} if allow_mailto else set())
    if not scheme:
        raise UnsafeURL(f"{_show(url)} is not an absolute link", "write the full https:// address")
    if scheme not in allowed:
        *others, last = sorted(allowed)
        wanted = f"{', '.join(others)} and {last}"
        raise UnsafeURL(
            f"{_show(url)} is a {scheme}: link, which readers must not be sent to",
            f"only {wanted} links are published; write the https:// address",
        )
    uri = as_uri(cleaned)
    authority = _REFERENCE.match(uri)[2]  # type: ignore[index]  # every string matches
    if scheme in WEB_SCHEMES and _split_authority(authority or "")[2].strip("[]") == "":
        raise UnsafeURL(f"{_show(url)} has no host", "write it as https://host/path")
    # Lower case, as RFC 3986 recommends; "HTTPS:" would be the same link, oddly written.
    return scheme + uri[len(scheme) :]


def _show(url: str, limit: int = 60) -> str:
    """The URL quoted for a message, cut so a data: URL does not fill the screen."""
    return repr(url if len(url) <= limit else url[: limit - 1] + "…")
