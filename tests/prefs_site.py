"""The example project's web endpoints in-process (tests/test_web_limits.py's ``Web``)
with helpers for the preference page and the welcome email: its link for a subscriber,
the page, a posted form as a browser on our page sends it, and digest sends on the
test's clock. Shared by the preference, welcome, fuzz and browser tests."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from pipeline.digest.sending import Digests
from pipeline.mailer import open_transport
from pipeline.preferences import preferences_url
from tests.test_web_limits import Answer, Web, call, load

ORIGIN = "http://testserver"
TOPIC_DIGEST = (
    "  nepal-en:\n    title: Nepal this week\n    language: en\n    max_age_days: 3650\n"
    "    audience:\n      languages: [en]\n      topics: [Nepal, Climate]\n\nchannels:"
)


def configure(root: Path, *, topics: bool = False, welcome: bool = False) -> None:
    """One more digest, for English readers of Nepal or Climate; the welcome email on."""
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    if topics:
        text = text.replace("\nchannels:", "\n" + TOPIC_DIGEST, 1)
    if welcome:
        text = text.replace("\ndigests:", "  welcome:\n    enabled: true\n\ndigests:", 1)
    config.write_text(text, encoding="utf-8")


def prefs_web(root: Path, *, smtp: bool = True) -> Prefs:
    """The project's endpoints in-process, mailing through its configured transport (the
    test SMTP server of ``mail_project``) unless ``smtp`` is False."""
    settings = load(root)
    if smtp:
        return Prefs(settings, settings.state, outbox=lambda: open_transport(settings.email))
    return Prefs(settings, settings.state)


class Prefs(Web):
    def token(self, email: str) -> str:
        person = self.people.get(email)
        assert person is not None, email
        url = preferences_url("https://news.example.org", self.secret, person)
        return urlsplit(url).query.removeprefix("token=")

    def page(self, email: str, **kw) -> Answer:
        return self.get("/preferences", f"token={self.token(email)}", **kw)

    def post_pairs(
        self, path: str, pairs: list[tuple[str, str]], query: str = "", origin: str | None = ORIGIN
    ) -> Answer:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = origin
        body = urlencode(pairs).encode()
        return call(self.app, "POST", path, query=query.encode(), body=body, headers=headers)

    def submit(self, email: str, pairs: list[tuple[str, str]], action: str = "save") -> Answer:
        """Post the page's form as a browser showing it would (our Origin, its tokens)."""
        page = self.page(email).text
        form_token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert form_token is not None, page[-2000:]
        token = self.token(email)
        fields = [("token", token), ("form_token", form_token.group(1)), ("action", action)]
        return self.post_pairs("/preferences", [*fields, *pairs], f"token={token}")

    def clock(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now[0], dt.UTC)

    def digests(self) -> Digests:
        """Digest sends on the test's clock, through the test SMTP server."""
        settings = self.settings
        return Digests(
            settings,
            self.store,
            transport=lambda: open_transport(settings.email),
            clock=self.clock,
            sleep=lambda seconds: None,
        )


def serve(config: str, port: int) -> None:
    """Serve a project's endpoints with uvicorn on 127.0.0.1:``port``: another process
    for the tests that need two (``python -c "from tests.prefs_site import serve; …"``)."""
    import uvicorn

    from pipeline.settings import load_settings
    from pipeline.store import Store
    from pipeline.web.app import create_app

    settings = load_settings(Path(config))
    store = Store(settings.state, settings.site.url)
    uvicorn.run(create_app(settings, store), host="127.0.0.1", port=port, log_level="warning")
