"""``GET/POST /preferences?token=…``: the page every digest's footer links to (see
pipeline.preferences for what it offers).

A GET only shows the page: mail scanners and prefetchers follow links, and the link is
in every digest. A POST changes things, protected as the sign-up form is: posted from
one of our own pages (``same_site``), with a signed form token of a few hours, inside
the body limit every POST has, with a bounded number of fields; a value the page never
offered is refused (400, the page again with what to fix) and changes nothing. The
pages are in the subscriber's language (after a change, the new one).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from pipeline import i18n
from pipeline.clock import Clock
from pipeline.errors import DeliveryFailed
from pipeline.mailer import MailerBroken
from pipeline.preferences import KEEP, NO_PAUSE, PAUSE_WEEKS, Preferences, Rejected, View
from pipeline.subscribers import Subscriber
from pipeline.templating import TEMPLATES, load_template
from pipeline.tokens import InvalidToken, verify
from pipeline.web.forms import same_site, token_and_form
from pipeline.web.pages import Pages

ACTIONS = ("save", "leave_all", "come_back")


class PreferencePage:
    def __init__(
        self,
        preferences: Preferences,
        pages: Pages,
        *,
        origins: Collection[str],
        form_token: Callable[[], str],
        form_purpose: str,
        bad_link: Callable[[str], Response],
        clock: Clock,
    ):
        self.preferences = preferences
        self.pages = pages
        self.origins = origins
        self.form_token = form_token  # a fresh anti-forgery token, as the sign-up form's
        self.form_purpose = form_purpose
        self.bad_link = bad_link
        self.clock = clock
        self.site = preferences.settings.site
        # The project's templates/web/preferences.html.j2 if it has one, else ours; it
        # extends page.html.j2, the project's own if it has one.
        path = preferences.settings.root / TEMPLATES / "web" / "preferences.html.j2"
        self.template = load_template(path, autoescape=True)

    async def page(self, request: Request) -> Response:
        language = self.pages.choose_language(None, request.headers.get("accept-language", ""))
        if request.method == "POST" and not same_site(self.origins, request):
            return self._say(language, "preferences_title", "form_expired", 403)
        # One field per digest and per topic, besides a few others.
        fields = 20 + len(self.preferences.settings.digests) + len(self.preferences.topics)
        posted = await token_and_form(request, max_fields=fields)
        if isinstance(posted, Response):
            return posted
        token, form = posted
        try:
            subscriber = await run_in_threadpool(self.preferences.check, token)
        except InvalidToken:
            return self.bad_link(language)
        if form is None:
            view = await run_in_threadpool(self.preferences.view, subscriber)
            return self._page(view, token, [])
        try:
            verify(self.secret, str(form.get("form_token", "")), self.form_purpose, self._now())
        except InvalidToken:
            return self._say(subscriber.language, "preferences_title", "form_expired", 403)
        action = str(form.get("action", "save"))
        if action not in ACTIONS:
            return PlainTextResponse(f"The action is one of {', '.join(ACTIONS)}.", 400)
        if action == "leave_all":
            await run_in_threadpool(self.preferences.leave_all, subscriber)
            return self._done(subscriber, "left_all_title", "left_all_text")
        if action == "come_back":
            try:
                await run_in_threadpool(self.preferences.come_back, subscriber)
            except (DeliveryFailed, MailerBroken):
                return self._say(subscriber.language, "preferences_title", "mail_down", 503)
            return self._done(subscriber, "check_title", "check_text")
        return await self._save(subscriber, token, form)

    @property
    def secret(self) -> str:
        return self.preferences.secret

    def _now(self) -> float:
        return self.clock().timestamp()

    async def _save(self, subscriber: Subscriber, token: str, form: FormData) -> Response:
        try:
            choices = self.preferences.parse(
                subscriber,
                lists=[str(v) for v in form.getlist("lists")],
                language=str(form.get("language", subscriber.language)),
                topics=[str(v) for v in form.getlist("topics")],
                pause=str(form.get("pause", KEEP)),
            )
        except Rejected as rejected:
            words = i18n.words(subscriber.language)
            view = await run_in_threadpool(self.preferences.view, subscriber)
            return self._page(view, token, [words[k] for k in rejected.problems], status=400)
        saved = await run_in_threadpool(self.preferences.save, subscriber, choices)
        back = f"/preferences?{urlencode({'token': token})}"
        return self._done(saved, "saved_title", "saved_text", back=back)

    def _page(self, view: View, token: str, errors: list[str], status: int = 200) -> Response:
        language = view.subscriber.language
        words = i18n.words(language, site=self.site.name, email=view.subscriber.email)
        pauses = [(NO_PAUSE, words["pause_none"])]
        if view.paused_until is not None:
            date = i18n.format_date(view.paused_until, language, self.site.timezone)
            keep = i18n.words(language, date=date)["pause_keep"]
            pauses = [(KEEP, keep), (NO_PAUSE, words["pause_resume"])]
        for weeks in PAUSE_WEEKS:
            label = words["pause_one"] if weeks == 1 else words["pause_weeks"]
            pauses.append((str(weeks), label.format(weeks=weeks)))
        paused_date = ""
        if view.paused_until is not None:
            paused_date = i18n.format_date(view.paused_until, language, self.site.timezone)
        return self.pages.render(
            "preferences",
            language,
            template=self.template,
            title=words["preferences_title"],
            intro=words["preferences_intro"],
            come_back_text=words["come_back_text"],
            paused_date=paused_date,
            view=view,
            token=token,
            form_token=self.form_token(),
            pauses=pauses,
            errors=errors,
            status=status,
            # The page's address carries the token: sent on to no other site, but to
            # this one, so a browser's POST names our origin instead of null.
            headers={"Referrer-Policy": "same-origin"},
        )

    def _done(self, subscriber: Subscriber, title: str, text: str, back: str = "") -> Response:
        """A page saying what was done; ``back``: a link to the preference page again."""
        words = i18n.words(subscriber.language, site=self.site.name, email=subscriber.email)
        more: dict[str, Any] = {"back": back} if back else {}
        return self.pages.render(
            "done", subscriber.language, title=words[title], text=words[text], **more
        )

    def _say(self, language: str, title: str, text: str, status: int) -> Response:
        words = i18n.words(language, site=self.site.name)
        return self.pages.render(
            "error", language, title=words[title], text=words[text], status=status
        )
