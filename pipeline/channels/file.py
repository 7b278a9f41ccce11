"""The file channel: each post appended as one JSON line (a correction too, with its
``event``: ``article.updated`` or ``article.deleted``). The example site uses it so
the demo posts somewhere real without a network; it is also a handy audit trail."""

from __future__ import annotations

import json
import os

from pipeline.channels import Post, Receipt
from pipeline.channels.base import ChannelBase
from pipeline.channels.compose import graphemes
from pipeline.model import Article
from pipeline.settings.channels import FileOptions


class FileChannel(ChannelBase[FileOptions]):
    options_model = FileOptions
    corrections = frozenset({"edit", "delete"})  # appended as events
    repeatable_corrections = False  # a repeat would be a second line
    # The file has always held one line per post (the demo, an audit trail): correction
    # events are appended only when on_update: edit / on_delete: delete ask for them.
    default_on_update = "ignore"
    default_on_delete = "ignore"

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
        self._append({**post.body, "key": key, "posted_at": self.context.clock().isoformat()})
        return Receipt(remote_id=key, remote_url=self.options.path.as_uri())

    def update(self, post: Post, posted: Receipt, key: str, mode: str) -> Receipt:
        moment = self.context.clock().isoformat()
        self._append({"event": "article.updated", **post.body, "key": key, "posted_at": moment})
        return posted

    def delete(self, article_id: str, posted: Receipt, key: str) -> Receipt:
        moment = self.context.clock().isoformat()
        event = {"event": "article.deleted", "id": article_id, "key": key, "posted_at": moment}
        self._append(event)
        return posted

    def _append(self, line: dict) -> None:
        path = self.options.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of one line in append mode: concurrent writers do not interleave.
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
