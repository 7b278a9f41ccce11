"""The web endpoints of ``pipeline serve`` (Starlette, served by uvicorn).

- ``POST /unsubscribe?token=…`` with ``List-Unsubscribe=One-Click`` (RFC 8058): leaves
  that digest at once; no cookies, no redirect, idempotent. ``GET`` on the same address
  only shows a page with a button, because mail scanners follow links.
- ``GET/POST /subscribe``: the sign-up form (double opt-in, see ``pipeline.signup``),
  with a signed form token and an Origin check against cross-site posting, and a limit
  per client address shared by every web process on the state store
  (``SharedRateLimit``). Topics are checkboxes of the ones the digests name
  (``offered_topics``); a posted topic not among them is refused (400, the form again).
- ``GET/POST /confirm?token=…``: the page the confirmation email links to; the button
  confirms (again, a GET alone changes nothing), then sends the welcome email once
  (``email.welcome``, pipeline.welcome).
- ``GET/POST /preferences?token=…``: the preference page every digest links to
  (pipeline.web.preferences).
- ``/``, ``/feeds/``, ``/digests/``, ``/digests/NAME/`` (and its ``feed.atom``) and
  ``/digests/NAME/EDITION``: the public pages and the web version of editions
  (``PublicSite``, pipeline.web.site).
- ``/feeds/…``: the feed files, with conditional GET and gzip (``FeedFiles``).

Every refusal has a clear status (400 bad, forged, empty or malformed link, 403 forged
form, 405, 413 too large, 429 too many) and changes nothing. Every response, 404s and
feed files included, carries ``X-Content-Type-Options: nosniff`` (``NoSniff``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import i18n
from pipeline.assembly import Assembly
from pipeline.clock import Clock, system_clock
from pipeline.errors import ConfigError, DeliveryFailed
from pipeline.feedback import FeedbackRecorder
from pipeline.mailer import MailerBroken, Transport
from pipeline.plugins import Plugins
from pipeline.preferences import Preferences
from pipeline.settings import Settings
from pipeline.signup import SignUp, chosen_topics, offered_topics
from pipeline.sns import Fetch, fetch_https
from pipeline.store import Store
from pipeline.subscribers import Subscriber, SubscriberStore
from pipeline.suppression import Suppressions
from pipeline.tokens import UNSUBSCRIBE_TOKEN, InvalidToken, link_secret, sign, verify
from pipeline.web.feedfiles import FeedFiles
from pipeline.web.forms import read_form, same_site, token_and_form
from pipeline.web.limits import SharedRateLimit
from pipeline.web.pages import Pages
from pipeline.web.preferences import PreferencePage
from pipeline.web.provider_hooks import ProviderHooks
from pipeline.web.site import PublicSite
from pipeline.welcome import Welcome

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024  # a sign-up form is a few hundred bytes
# An SNS message is up to 256 KB, its JSON-escaped Message inside a JSON body: an SES
# notification listing many recipients (or carrying the headers) is far over MAX_BODY,
# and one refused until SNS gives up is a bounce lost.
MAX_NOTIFICATION = 640 * 1024
LARGER_BODIES = {"/hooks/": MAX_NOTIFICATION}
FORM = "form"
FORM_FOR = dt.timedelta(hours=2)
ONE_CLICK = ("List-Unsubscribe", "One-Click")


def create_app(
    settings: Settings,
    store: Store,
    *,
    transport: Callable[[], Transport] | None = None,
    clock: Clock = system_clock,
    plugins: Plugins | None = None,
    feedback: FeedbackRecorder | None = None,
    sns_fetch: Fetch = fetch_https,
) -> ASGIApp:
    """The ASGI app; everything it uses is passed in (``transport`` defaults to the
    configured mail server; ``feedback`` records the providers' bounce and complaint
    notifications, by default into the store's suppressions, as returned mail is;
    ``sns_fetch`` GETs SNS certificates and confirmation links)."""
    parts = Assembly(settings, store, clock=clock, plugins=plugins)
    endpoints = _Endpoints(parts, transport)
    if feedback is None and settings.email is not None:
        feedback = Suppressions.configured(store.engine, settings.email.bounces, clock)
    hooks = ProviderHooks(settings.email, feedback, clock=clock, fetch=sns_fetch)
    site = PublicSite(parts, endpoints.pages)
    routes = [
        Route("/unsubscribe", endpoints.unsubscribe, methods=["GET", "POST"]),
        Route("/subscribe", endpoints.subscribe, methods=["GET", "POST"]),
        Route("/confirm", endpoints.confirm, methods=["GET", "POST"]),
        Route("/preferences", endpoints.preferences.page, methods=["GET", "POST"]),
        Route("/", site.home, methods=["GET"]),
        Route("/feeds/", site.feed_list, methods=["GET"]),
        Route("/digests/", site.all_editions, methods=["GET"]),
        Route("/digests/{digest}/", site.digest_editions, methods=["GET"]),
        Route("/digests/{digest}/feed.atom", site.digest_feed, methods=["GET"]),
        Route("/digests/{digest}/{edition}", site.edition, methods=["GET"]),
        Route("/hooks/ses", hooks.ses_hook, methods=["POST"]),
        Route("/hooks/mailgun", hooks.mailgun_hook, methods=["POST"]),
        Route("/healthz", lambda request: PlainTextResponse("ok"), methods=["GET"]),
        Mount("/feeds", app=FeedFiles(settings.feeds.output, parts.feed_content_types())),
    ]
    app = Starlette(routes=routes, exception_handlers={404: site.not_found})
    return NoSniff(LimitBody(app, MAX_BODY, larger=LARGER_BODIES))


class _Endpoints:
    def __init__(self, parts: Assembly, transport: Callable[[], Transport] | None):
        settings, store, clock = parts.settings, parts.store, parts.clock
        assert settings.email is not None, "the web endpoints need an `email:` section"
        transport = transport or parts.transport()
        self.settings = settings
        self.store = store
        self.clock = clock
        self.pages = Pages(settings)
        self.subscribers = SubscriberStore(store.engine, clock)
        self.signup = SignUp(settings, store, transport=transport, clock=clock)
        self.topics = offered_topics(settings)
        self.secret = link_secret(settings.email.unsubscribe.secret, store)
        self.origins = {settings.email.unsubscribe.origin.lower(), *settings.web.allowed_origins}
        # Counted in the state store, not in memory: every web process on this store
        # (several `serve --web-only` behind a balancer) shares one count per client.
        self.limit = SharedRateLimit(
            store.engine, settings.web.subscribe_per_hour, secret=self.secret, clock=clock
        )
        self.welcome = Welcome(
            settings, store, transport=transport, secret=self.secret, clock=clock
        )
        preferences = Preferences(
            settings,
            self.signup,
            secret=self.secret,
            languages=self.pages.offered_languages(),
            clock=clock,
        )
        self.preferences = PreferencePage(
            preferences,
            self.pages,
            origins=self.origins,
            form_token=self.new_form_token,
            form_purpose=FORM,
            bad_link=self._bad_link,
            clock=clock,
        )

    # -- unsubscribe ------------------------------------------------------------------------

    async def unsubscribe(self, request: Request) -> Response:
        posted = await token_and_form(request)
        if isinstance(posted, Response):
            return posted
        token, form = posted
        language = self.pages.choose_language(None, request.headers.get("accept-language", ""))
        if not token:  # an address typed by hand, or a link cut short by a mail client
            return self._bad_link(language, "no_token_text")
        if form is not None and form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
            return PlainTextResponse(
                "A one-click unsubscribe POST carries List-Unsubscribe=One-Click.", 400
            )
        try:
            claims = verify(self.secret, token, UNSUBSCRIBE_TOKEN)
            subscriber = await run_in_threadpool(self.subscribers.get_by_id, claims.subscriber_id)
            if subscriber is None or not claims.is_for(subscriber.email):
                raise InvalidToken("the link is for an address we no longer know")
        except InvalidToken:
            return self._bad_link(language)
        digest = self.settings.digests.get(claims.list_name)
        title = digest.title if digest else claims.list_name
        return await self._ask_then_act(
            form is not None,
            "unsubscribe",
            subscriber,
            token,
            lambda: self.subscribers.leave(subscriber.id, claims.list_name),
            digest=title,
        )

    # -- subscribe and confirm --------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        accept = request.headers.get("accept-language", "")
        if request.method == "GET":
            language = self.pages.choose_language(request.query_params.get("lang"), accept)
            return self._form_page(language, {"language": language}, [])
        language = self.pages.choose_language(None, accept)
        if not same_site(self.origins, request):
            return self._message(language, "subscribe_title", "form_expired", status=403)
        # A field per checked topic besides the four others and the token.
        form = await read_form(request, max_fields=20 + len(self.topics))
        if isinstance(form, Response):
            return form
        values: dict[str, Any] = {
            key: str(form.get(key, "")) for key in ("email", "name", "language")
        }
        values["topics"] = [str(t) for t in form.getlist("topics")]
        language = self.pages.choose_language(values["language"], accept)
        try:
            form_token = str(form.get("form_token", ""))
            verify(self.secret, form_token, FORM, now=self.clock().timestamp())
        except InvalidToken:
            return self._message(language, "subscribe_title", "form_expired", status=403)
        client = request.client.host if request.client else "unknown"
        if not await run_in_threadpool(self.limit.allow, client):
            words = i18n.words(language, site=self.settings.site.name)
            return self.pages.render(
                "error",
                language,
                title=words["subscribe_title"],
                text=words["too_many"],
                status=429,
                headers={"Retry-After": "3600"},
            )
        errors = self._problems(values, language)
        if errors:
            return self._form_page(language, values, errors, status=400)
        topics = chosen_topics(self.topics, values["topics"])
        assert topics is not None  # _problems refused unknown ones
        try:
            await run_in_threadpool(
                self.signup.request,
                values["email"],
                name=values["name"].strip(),
                language=values["language"],
                topics=topics,
            )
        except ValueError as exc:  # the address, as email-validator explains it
            words = i18n.words(language, reason=str(exc))
            return self._form_page(language, values, [words["error_email"]], status=400)
        except (DeliveryFailed, MailerBroken):
            return self._message(language, "subscribe_title", "mail_down", status=503)
        words = i18n.words(language, email=values["email"].strip())
        return self.pages.render(
            "done", language, title=words["check_title"], text=words["check_text"]
        )

    def _problems(self, values: dict[str, Any], language: str) -> list[str]:
        words = i18n.words(language)
        errors = []  # the address is checked by email-validator in SignUp.request
        name = values["name"]
        # A name goes into the To: header; a line break there would add headers.
        if len(name) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            errors.append(words["error_name"])
        if values["language"] not in self.pages.offered_languages():
            errors.append(words["error_language"])
        if chosen_topics(self.topics, values["topics"]) is None:
            errors.append(words["error_topics"])
        return errors

    def new_form_token(self) -> str:
        """The anti-forgery token of a form page (sign-up, preferences), for ``FORM_FOR``."""
        return sign(self.secret, FORM, 0, "", expires=int((self.clock() + FORM_FOR).timestamp()))

    def _form_page(
        self, language: str, values: dict[str, Any], errors: list[str], status: int = 200
    ) -> Response:
        token = self.new_form_token()
        words = i18n.words(language, site=self.settings.site.name)
        shown = {"email": "", "name": "", "language": language, **values}
        posted = {str(t).strip().lower() for t in values.get("topics", [])}
        shown["topics"] = [t for t in self.topics if t.lower() in posted]  # ticked again
        return self.pages.render(
            "subscribe",
            language,
            title=words["subscribe_title"],
            form_token=token,
            values=shown,
            errors=errors,
            languages=self.pages.offered_languages(),
            topics=self.topics,
            status=status,
            # The form's own address carries no token, and without a referrer policy that
            # lets the origin through, browsers would post it as Origin: null.
            headers={"Referrer-Policy": "same-origin"},
        )

    async def confirm(self, request: Request) -> Response:
        posted = await token_and_form(request)
        if isinstance(posted, Response):
            return posted
        token, form = posted
        language = self.pages.choose_language(None, request.headers.get("accept-language", ""))
        try:
            subscriber = await run_in_threadpool(self.signup.check, token)
        except InvalidToken:
            return self._bad_link(language)
        return await self._ask_then_act(
            form is not None, "confirm", subscriber, token, lambda: self._confirm(token)
        )

    def _confirm(self, token: str) -> None:
        """Confirm, then welcome (once ever, whoever else presses the button). A mistake
        in the project's welcome template is logged with its file and line: the
        subscriber is confirmed all the same, and nothing is claimed, so the welcome
        goes at their next press once the template is mended."""
        subscriber = self.signup.confirm(token)
        try:
            self.welcome.send(subscriber)
        except ConfigError as exc:
            log.error("the welcome email was not sent: %s", exc)

    async def _ask_then_act(
        self,
        posted: bool,
        page: str,
        subscriber: Subscriber,
        token: str,
        act: Callable[[], object],
        **fill: str,
    ) -> Response:
        """A link from an email: its GET shows a page with a button (scanners follow
        links, people press buttons); the button's POST acts, then says it is done."""
        words = i18n.words(
            subscriber.language, site=self.settings.site.name, email=subscriber.email, **fill
        )
        done = {"unsubscribe": "unsubscribed", "confirm": "confirmed"}[page]
        if not posted:
            return self.pages.render(
                page,
                subscriber.language,
                title=words[f"{page}_title"],
                text=words[f"{page}_text"],
                button=words[f"{page}_button"],
                token=token,
            )
        await run_in_threadpool(act)
        return self.pages.render(
            "done", subscriber.language, title=words[f"{done}_title"], text=words[f"{done}_text"]
        )

    # -- shared -----------------------------------------------------------------------------

    def _message(self, language: str, title: str, text: str, status: int = 200) -> Response:
        words = i18n.words(language, site=self.settings.site.name)
        page = "error" if status >= 400 else "done"
        return self.pages.render(
            page, language, title=words[title], text=words[text], status=status
        )

    def _bad_link(self, language: str, text: str = "bad_link_text") -> Response:
        """Every token-taking page's answer to an empty, malformed, forged or stale token."""
        return self._message(language, "bad_link_title", text, status=400)


NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    """``X-Content-Type-Options: nosniff`` on every response, whoever made it (pages,
    feed files, 404s, 405s, 413s): browsers then never run a feed or a plain-text answer
    as a script or page of another type."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != NOSNIFF[0]]
                message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        await self.app(scope, receive, send_with_header)


class LimitBody:
    """Refuse request bodies over ``limit`` bytes with 413 before the app sees them,
    whether or not Content-Length was sent (chunked bodies are counted as they come)."""

    def __init__(self, app: ASGIApp, limit: int, *, larger: Mapping[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})  # path prefix: its own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next((n for at, n in self.larger.items() if path.startswith(at)), self.limit)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit():
            await PlainTextResponse("Bad Content-Length.", 400)(scope, receive, send)
            return
        if int(declared) > limit:
            await _too_large(limit, scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(limit, scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body: list[Any] = [b"".join(chunks)]

        async def replay() -> Message:
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"The body is over {limit} bytes.", 413)(scope, receive, send)
