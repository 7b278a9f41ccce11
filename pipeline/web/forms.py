"""Reading posted forms safely, for every page that takes one (sign-up, confirm,
unsubscribe, preferences): the body as a form or a clear 4xx, the link's token, and
the check that a browser posted it from one of our own pages."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response


def same_site(origins: Collection[str], request: Request) -> bool:
    """Browsers name the page a form was posted from (``Origin``, sent with every
    POST): ours (one of ``origins``, lower-cased, or the host this request was sent to)
    or an allowed site. A missing or ``null`` origin (a sandboxed frame, a script
    elsewhere) is not trusted: the forms are for browsers."""
    origin = request.headers.get("origin", "").lower()
    if origin in origins:
        return True
    host = request.headers.get("host", "").lower()
    try:
        return bool(host) and urlsplit(origin).netloc == host
    except ValueError:  # e.g. "http://[::1": not a URL, so not ours
        return False


async def read_form(request: Request, max_fields: int = 20) -> FormData | Response:
    """The posted form, or a 400/415 response for a body that is not one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return PlainTextResponse("Send the form as application/x-www-form-urlencoded.", 415)
    try:
        return await request.form(max_files=0, max_fields=max_fields)
    except Exception:  # python-multipart's errors have no common base worth naming
        return PlainTextResponse("The form body could not be read.", 400)


async def token_and_form(
    request: Request, max_fields: int = 20
) -> tuple[str, FormData | None] | Response:
    """The link's token (from the address, or the page's form) and, for a POST, the form."""
    token = request.query_params.get("token", "")
    if request.method != "POST":
        return token, None
    form = await read_form(request, max_fields)
    if isinstance(form, Response):
        return form
    return token or str(form.get("token", "")), form
