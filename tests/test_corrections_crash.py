"""A real `pipeline run`, killed with SIGKILL at each point of a correction, then run
again: the corrected title reaches every editable network exactly once, no post is
made twice, and an unpublished article's posts are deleted. Runs on SQLite and
PostgreSQL.

The points, for the first edit (and then the first delete) the fake networks see:
``arrived`` — the request reached the network, which has not acted on it yet (the row
is claimed, nothing changed); ``applied`` — the network made the change but has not
answered; ``answered`` — the network answered, and the state store is locked so the
process cannot record it (the answer was read, the settlement never written)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from werkzeug import Request, Response

from tests.test_channel_mastodon import instance_json

MASTODON_TOKEN = "masto-crash-token"
TELEGRAM_TOKEN = "4242:crash-bot"
HOOK = "/api/webhooks/77/crash-hook"
ARTICLE = "examples/site/news/2024-05-29-icimod-craes-clean-air-agreement.md"
OLD_TITLE = "ICIMOD and CRAES sign agreement to tackle air pollution across the region"
NEW_TITLE = "ICIMOD and CRAES sign a five-year agreement on air pollution"


class Networks:
    """Mastodon, Telegram and a Discord webhook in one fake, each keeping its messages
    and every text each message has shown. The first edit and the first delete are
    held at ``point`` until the test has killed the process."""

    def __init__(self, point: str, lock_store):
        self.point = point
        self.lock_store = lock_store  # holds the state store's write lock; returns an unlock
        self.messages: dict[tuple[str, str], list[str]] = {}  # (network, id) -> texts shown
        self.deleted: set[tuple[str, str]] = set()
        self.creates: dict[str, int] = defaultdict(int)
        self.held: set[str] = set()
        self.reached = threading.Event()
        self.release = threading.Event()
        self.unlock = None
        self.lock = threading.Lock()

    # -- what each network does ------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/api/v2/instance":
            return _json(instance_json())
        assert request.headers.get("Authorization", "") in ("", f"Bearer {MASTODON_TOKEN}")
        if path == "/api/v1/statuses" and method == "POST":
            return self._create("mastodon", request.get_json()["status"], "id")
        if path.startswith("/api/v1/statuses/"):
            key = ("mastodon", path.rsplit("/", 1)[-1])
            if method == "GET":
                return _json({"id": key[1], "media_attachments": []})
            if method == "PUT":
                return self._change("edit", key, request.get_json()["status"], {"id": key[1]})
            return self._change("delete", key, None, {"id": key[1]})
        bot = f"/bot{TELEGRAM_TOKEN}/"
        if path.startswith(bot):
            body = request.get_json()
            call = path.removeprefix(bot)
            if call == "sendMessage":
                return self._create("telegram", body["text"], "message_id")
            key = ("telegram", str(body["message_id"]))
            if call == "editMessageText":
                if self.messages[key][-1] == body["text"]:
                    refusal = {"ok": False, "description": "Bad Request: message is not modified"}
                    return self._change("edit", key, body["text"], refusal, status=400)
                return self._change("edit", key, body["text"], {"ok": True, "result": {}})
            return self._change("delete", key, None, {"ok": True, "result": True})
        if path == HOOK and method == "POST":
            return self._create("discord", request.get_json()["embeds"][0]["title"], "id")
        if path.startswith(f"{HOOK}/messages/"):
            key = ("discord", path.rsplit("/", 1)[-1])
            if method == "PATCH":
                title = request.get_json()["embeds"][0]["title"]
                return self._change("edit", key, title, {"id": key[1]})
            return self._change("delete", key, None, {})
        return _json({"error": f"no such endpoint {method} {path}"}, 404)

    def _create(self, network: str, shown: str, id_name: str) -> Response:
        with self.lock:
            self.creates[network] += 1
            message_id = str(1000 + len(self.messages))
            self.messages[(network, message_id)] = [shown]
        if network == "telegram":
            return _json({"ok": True, "result": {"message_id": int(message_id), "chat": {}}})
        answer = {id_name: message_id, "url": f"https://{network}.example/{message_id}"}
        return _json({**answer, "channel_id": "5", "guild_id": "6"})

    def _change(self, kind: str, key, shown: str | None, answer: dict, status: int = 200):
        """Make an edit (``shown``) or a delete, held at the test's point the first time."""
        if kind not in self.held:
            self.held.add(kind)
            if self.point == "arrived":
                return self._hold(Response("", 503))  # never acted on
            self._apply(key, shown)
            if self.point == "applied":
                return self._hold(_json(answer, status))
            self.unlock = self.lock_store()
            return _answered(answer, status, self.reached.set)
        self._apply(key, shown)
        return _json(answer, status)

    def _apply(self, key, shown: str | None) -> None:
        if shown is None:
            self.deleted.add(key)
        elif self.messages[key][-1] != shown:  # the same text again changes nothing
            self.messages[key].append(shown)

    def _hold(self, response: Response) -> Response:
        self.reached.set()
        self.release.wait(30)
        return response

    # -- for the test --------------------------------------------------------------------

    def shown(self, network: str, *words: str) -> list[list[str]]:
        """The histories of the messages on ``network`` whose first text has ``words``."""
        return [
            history
            for (where, _), history in self.messages.items()
            if where == network and all(w in history[0] for w in words)
        ]

    def key_of(self, network: str, words: str) -> tuple[str, str]:
        return next(k for k, h in self.messages.items() if k[0] == network and words in h[0])


def _json(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


def _answered(body: dict, status: int, then) -> Response:
    """An answer with a length, so the client has all of it once the body is written;
    ``then`` is called after that."""
    data = json.dumps(body).encode()

    def chunks():
        yield data
        then()

    headers = {"Content-Length": str(len(data))}
    return Response(chunks(), status, content_type="application/json", headers=headers)


def store_locker(state_url: str, root: Path):
    """A function that takes the state store's write lock from outside the process and
    returns how to let it go: the process then cannot record anything."""

    def lock():
        if state_url.startswith("sqlite"):
            import sqlite3

            db = root / "var" / "state.db"
            conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN IMMEDIATE")
        else:
            engine = create_engine(state_url)
            conn = engine.connect()
            conn.execute(text("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE"))

        def unlock():
            conn.rollback()
            conn.close()

        return unlock

    return lock


def configure(root: Path, base: str) -> dict[str, str]:
    config = root / "config" / "pipeline.yaml"
    head = config.read_text(encoding="utf-8").split("\nchannels:\n")[0]
    common = "    max_age_hours: 100000\n    per_run: 50\n    max_attempts: 2\n"
    channels = (
        "\nchannels:\n"
        f"  masto:\n    type: mastodon\n    instance: {base}\n"
        "    access_token: ${MASTO_TOKEN}\n    images: false\n" + common + "  tg:\n"
        "    type: telegram\n    bot_token: ${TG_TOKEN}\n    chat_id: '@news'\n"
        f"    api_url: {base}\n" + common + "  disco:\n    type: discord\n"
        "    webhook_url: ${DISCORD_HOOK}\n" + common
    )
    config.write_text(head + channels, encoding="utf-8")
    return {
        "MASTO_TOKEN": MASTODON_TOKEN,
        "TG_TOKEN": TELEGRAM_TOKEN,
        "DISCORD_HOOK": base + HOOK,
    }


def pipeline_run(root: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run"],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_end(root: Path, env: dict[str, str]) -> str:
    process = pipeline_run(root, env)
    out, err = process.communicate(timeout=120)
    assert process.returncode in (0, 1), out + err
    return out + err


def killed_at_the_point(root: Path, env: dict[str, str], networks: Networks) -> None:
    networks.reached.clear()
    process = pipeline_run(root, env)
    try:
        assert networks.reached.wait(60), "the correction never reached the network"
    finally:
        process.kill()  # SIGKILL: nothing flushed, nothing settled
        process.communicate(timeout=30)
        if networks.unlock is not None:
            networks.unlock()
            networks.unlock = None
        networks.release.set()
    networks.release.clear()


@pytest.mark.parametrize("point", ["arrived", "applied", "answered"])
def test_a_correction_killed_at_any_point_arrives_once(project, state_url, httpserver, point):
    root = project()
    networks = Networks(point, store_locker(state_url, root))
    httpserver.expect_request(re.compile(".*")).respond_with_handler(networks.handle)
    env = configure(root, httpserver.url_for("").rstrip("/"))
    run_to_end(root, env)
    made = dict(networks.creates)
    assert made["mastodon"] == made["telegram"] == made["discord"] > 1

    article = root / ARTICLE
    article.write_text(article.read_text().replace(OLD_TITLE, NEW_TITLE, 1), encoding="utf-8")
    killed_at_the_point(root, env, networks)
    run_to_end(root, env)
    run_to_end(root, env)

    assert dict(networks.creates) == made  # never a new post
    for network in ("mastodon", "telegram", "discord"):
        (history,) = networks.shown(network, "ICIMOD and CRAES")
        assert len(history) == 2 and NEW_TITLE in history[1] and OLD_TITLE in history[0]

    url = state_url if not state_url.startswith("sqlite") else f"sqlite:///{root}/var/state.db"
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT state, version FROM deliveries WHERE item LIKE '%#update%'")
        ).all()
    engine.dispose()
    assert len(rows) == 3 and all(state == "sent" and version for state, version in rows)

    keys = [networks.key_of(n, "ICIMOD and CRAES") for n in ("mastodon", "telegram", "discord")]
    article.unlink()  # unpublished
    killed_at_the_point(root, env, networks)
    run_to_end(root, env)
    run_to_end(root, env)

    assert dict(networks.creates) == made
    assert networks.deleted == set(keys)
    uncertain = run_cli(root, env, "deliveries", "uncertain")
    assert "ICIMOD" not in uncertain and "news/2024-05-29" not in uncertain


def run_cli(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr
