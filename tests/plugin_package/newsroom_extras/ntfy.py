"""ntfy: each article published to a topic of an ntfy server, as JSON (ntfy's
"publish as JSON": a POST to the server's root URL)."""

from __future__ import annotations

from typing import Literal

import requests
from pydantic import Field, field_validator

from pipeline.channels import Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import graphemes
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.model import Article
from pipeline.settings.base import OptionalSecret, http_url
from pipeline.settings.channels import ChannelOptions


class NtfyOptions(ChannelOptions):
    type: Literal["ntfy"] = Field(description="A topic on an ntfy server.")
    server: str = Field("https://ntfy.sh", description="Base URL of the ntfy server.")
    topic: str = Field(description="The topic to publish to.")
    token: OptionalSecret = Field(None, description="An access token, if the topic needs one.")

    _url = field_validator("server")(lambda v: http_url(v))


class NtfyChannel(ChannelBase[NtfyOptions]):
    options_model = NtfyOptions

    def prepare(self, article: Article) -> Post:
        text = self.text(article, limit=4096, measure=graphemes)
        body = {
            "topic": self.options.topic,
            "title": article.title,
            "message": text,
            "click": article.url,
        }
        return Post(article, text, graphemes(text), 4096, body)

    def send(self, post: Post, key: str) -> Receipt:
        headers = {"Authorization": f"Bearer {self.options.token}"} if self.options.token else {}
        try:
            response = self.context.http.post(
                self.options.server.rstrip("/") + "/",
                json=dict(post.body),
                headers=headers,
                timeout=self.options.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise TemporaryFailure("ntfy did not answer", unknown_outcome=True) from None
        except requests.RequestException as exc:
            raise TemporaryFailure(f"cannot reach ntfy: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TemporaryFailure(f"ntfy answered {response.status_code}")
        if not response.ok:
            raise PermanentFailure(f"ntfy refused: {response.status_code} {response.text[:200]}")
        return Receipt(remote_id=str(response.json().get("id") or "") or None)
