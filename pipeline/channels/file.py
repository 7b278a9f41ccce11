"""The file channel: each post appended as one JSON line. The example site uses it so
the demo posts somewhere real without a network; it is also a handy audit trail."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline.channels import Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import graphemes
from pipeline.model import Article
from pipeline.settings.channels import ChannelOptions


class FileOptions(ChannelOptions):
    type: Literal["file"] = Field(description="Appends each post as a JSON line to a file.")
    path: Path = Field(description="The file (relative to the project folder).")


class FileChannel(ChannelBase[FileOptions]):
    options_model = FileOptions

    def prepare(self, article: Article) -> Post:
        text = self.text(article, limit=None, measure=graphemes)
        body = {
            "id": article.id,
            "url": article.url,
            "title": article.title,
            "language": article.language,
            "text": text,
        }
        return Post(article, text, graphemes(text), None, body)

    def send(self, post: Post, key: str) -> Receipt:
        line = {**post.body, "key": key, "posted_at": self.context.clock().isoformat()}
        path = self.options.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of one line in append mode: concurrent writers do not interleave.
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return Receipt(remote_id=key, remote_url=path.as_uri())
