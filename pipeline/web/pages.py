"""The pages people see: one autoescaped template (templates/web/page.html.j2), in the
reader's language, with headers that keep tokens and pages where they belong."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from pipeline import i18n
from pipeline.settings import Settings
from pipeline.templating import TEMPLATES, load_template

# No scripts at all; styles inline; forms post only here; never framed elsewhere; and
# no Referer, so a token in the address never leaks to another site.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Pages:
    def __init__(self, settings: Settings):
        self.settings = settings
        # The project's templates/web/page.html.j2 if it has one, else the packaged page.
        page = settings.root / TEMPLATES / "web" / "page.html.j2"
        self.template = load_template(page, autoescape=True)

    def offered_languages(self) -> dict[str, str]:
        """Languages a subscriber can choose: the site's and each digest's, by own name."""
        codes = [self.settings.site.language, *(d.language for d in self.settings.digests.values())]
        unique = dict.fromkeys(codes)
        return {code: i18n.language_name(code, code) for code in unique}

    def choose_language(self, wanted: str | None, accept_language: str) -> str:
        """``wanted`` if offered, else the best of the browser's Accept-Language."""
        offered = self.offered_languages()
        if wanted in offered:
            return wanted
        by_key = {i18n.catalog_key(code): code for code in reversed(list(offered))}
        for tag in _preferences(accept_language):
            for code in offered:
                if code.lower() == tag:
                    return code
            key = i18n.catalog_key(tag)
            if key in by_key and tag.split("-")[0] == key:
                return by_key[key]
        return self.settings.site.language

    def render(
        self,
        page: str,
        language: str,
        *,
        title: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        template: jinja2.Template | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """``template``: one extending page.html.j2 (default: that page itself)."""
        html = (template or self.template).render(
            page=page,
            language=language,
            site=self.settings.site,
            title=title,
            t=i18n.words(language, site=self.settings.site.name),
            **values,
        )
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _preferences(header: str) -> list[str]:
    """Accept-Language tags, most wanted first (q=0 dropped)."""
    ranked = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag.lower()))
    return [tag for _, _, tag in sorted(ranked)]
