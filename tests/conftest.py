"""Shared fixtures: a site, state stores on SQLite and (when configured) PostgreSQL, and a
throw-away project folder shaped like the real one."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import shutil
import socket
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine

from pipeline.cli import main
from pipeline.mailer import open_transport
from pipeline.settings import SiteSettings, load_settings
from pipeline.store import Store
from pipeline.subscribers import SubscriberStore
from pipeline.tokens import link_secret, sign
from pipeline.web.app import create_app

REPO = Path(__file__).resolve().parent.parent

# No per-example wall-clock deadline: on a loaded machine (CI's two cores, PostgreSQL
# beside) a store round trip outlasts hypothesis's 200 ms and fails a correct test. A
# test whose speed is the point sets its own bound (test_fuzz_yaml, test_fuzz_sources).
hypothesis_settings.register_profile("pipeline", deadline=None)
hypothesis_settings.load_profile("pipeline")
POSTGRES_URL = os.environ.get("PIPELINE_TEST_POSTGRES")


@pytest.fixture
def site() -> SiteSettings:
    return SiteSettings(
        name="Mountain News",
        url="https://news.example.org",
        language="en",
        timezone="Asia/Kathmandu",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the PostgreSQL half of the suite must run, never skip: fail at once when the
    server is missing instead of reporting a green run that tested only SQLite."""
    if os.environ.get("PIPELINE_REQUIRE_POSTGRES") and not POSTGRES_URL:
        pytest.exit("PIPELINE_REQUIRE_POSTGRES is set but PIPELINE_TEST_POSTGRES is not", 3)
    if POSTGRES_URL:
        try:
            engine = create_engine(POSTGRES_URL)
            with engine.connect() as conn:
                _drop_orphan_schemas(conn)
            engine.dispose()
        except Exception as exc:  # the server must answer before any test relies on it
            pytest.exit(f"PostgreSQL at PIPELINE_TEST_POSTGRES cannot be used: {exc}", 3)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say how many state-store tests ran on each database, so a run that quietly
    covered only SQLite shows it."""
    counts = {"sqlite": 0, "postgres": 0}
    for report in terminalreporter.stats.get("passed", []):
        for name in counts:
            if re.search(rf"[\[-]{name}[\]-]", report.nodeid):
                counts[name] += 1
    terminalreporter.write_line(
        f"state-store tests passed: {counts['sqlite']} on SQLite, "
        f"{counts['postgres']} on PostgreSQL"
    )


SCHEMA_PREFIX = "pipeline_test_"


def _drop_orphan_schemas(conn) -> None:
    """Schemas left by test processes that were killed (their pid is gone)."""
    from sqlalchemy import text

    names = conn.execute(
        text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
        {"p": SCHEMA_PREFIX + "%"},
    ).scalars()
    for name in list(names):
        pid = name.removeprefix(SCHEMA_PREFIX).split("_")[0]
        if pid.isdigit() and not _alive(int(pid)):
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.commit()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _database_params() -> list:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgres",
            id="postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="PIPELINE_TEST_POSTGRES not set"),
            ],
        ),
    ]


def _with_search_path(url: str, schema: str) -> str:
    """The server URL with every connection's search_path set to ``schema``: each test
    gets an empty database of its own without creating databases."""
    options = quote(f"-csearch_path={schema}")
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={options}&application_name={schema}"


@pytest.fixture(params=_database_params())
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty state store: a SQLite file, or (when PIPELINE_TEST_POSTGRES is
    set) a PostgreSQL schema of this test's own, dropped afterwards. Every test that
    touches the state store takes this fixture, so it runs on both databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    from sqlalchemy import text

    schema = f"{SCHEMA_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.connect() as conn:
            # A connection a test left open (a pool, a killed subprocess) must not hang
            # the run: end those of this schema before dropping what they hold.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": schema},
            )
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store_url(state_url: str) -> str:
    """The older name of ``state_url``, kept for the store's own tests."""
    return state_url


@pytest.fixture
def store(state_url: str, site: SiteSettings) -> Iterator[Store]:
    """An open state store on ``state_url`` (both databases), closed afterwards."""
    opened = Store(state_url, site.url)
    yield opened
    opened.close()


def write_article(folder: Path, name: str, front: str, body: str = "Body text.\n") -> Path:
    """Write an article file: ``front`` is the YAML between the --- lines."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{textwrap.dedent(front).strip()}\n---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, state_url: str) -> Callable[..., Path]:
    """Copy the repository's config and example site into a fresh folder (the templates
    come from the package, as in an installed project).

    On SQLite the project keeps its default store (``var/state.db`` in the folder); on
    PostgreSQL its config names this test's own schema."""

    def make(with_examples: bool = True) -> Path:
        root = tmp_path / "project"
        (root / "config").mkdir(parents=True)
        config = (REPO / "config" / "pipeline.yaml").read_text(encoding="utf-8")
        if not state_url.startswith("sqlite"):
            config = config.replace("# state: sqlite:///var/state.db", f"state: {state_url}  #")
        (root / "config" / "pipeline.yaml").write_text(config, encoding="utf-8")
        shutil.copy(REPO / "schedules.yaml", root / "schedules.yaml")
        if with_examples:
            shutil.copytree(REPO / "examples", root / "examples")
        else:
            (root / "examples" / "site" / "news").mkdir(parents=True)
            (root / "examples" / "site" / "blog").mkdir(parents=True)
        return root

    return make


@pytest.fixture
def make_article(site):
    """Build an Article directly; keyword arguments override the English defaults."""
    import datetime as dt

    from pipeline.model import Article

    def make(**overrides) -> Article:
        fields = {
            "id": "news/glacier-report",
            "source": "news",
            "origin": "examples/site/news/glacier-report.md",
            "url": "https://news.example.org/news/glacier-report/",
            "title": "Glaciers lose mass for a fifth year",
            "authors": ("Pema Gyamtsho",),
            "published": dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC),
            "language": "en",
            "section": "news",
            "tags": ("Nepal", "climate change"),
            "summary": "New data from monitored glaciers show another year of heavy losses.",
            "body_html": "<p>New data from monitored glaciers show heavy losses.</p>",
            "read_minutes": 2,
            "guid": "tag:news.example.org,2026-11-03:news/glacier-report",
        }
        fields.update(overrides)
        return Article(**fields)

    return make


@pytest.fixture
def channel_context(state_url, site):
    """What a channel gets in production: a real requests session, the site, and a real
    state store (SQLite) as its memory between runs."""
    import requests

    from pipeline.channels import ChannelContext
    from pipeline.store import Store

    store = Store(state_url, site.url)
    with requests.Session() as http:
        yield ChannelContext(http=http, site=site, memory=store)
    store.close()


# -- a real SMTP server on 127.0.0.1 and a project that mails through it ---------------

PEOPLE = (
    "email,name,language,topics\n"
    "pema@example.org,Pema Gyamtsho,en,Nepal\n"
    "anna@example.org,Anna Berg,en,\n"
    "sonam@example.org,Sonam,en,Bhutan\n"
    "li.wen@example.org,李文,zh-CN,China\n"
)


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and refuses what it is told to."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.refuse: dict[str, str] = {}  # address -> SMTP reply for RCPT
        self.hold_at: int | None = None  # block the Nth DATA until `release` is set
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.SMTP)
        self.messages.append(message)
        if self.hold_at == len(self.messages):
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return "250 Message accepted"

    def to(self) -> list[str]:
        return [str(m["To"]) for m in self.messages]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inbox():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    handler.release.set()
    controller.stop()


@pytest.fixture
def mail_project(project, inbox):
    """The example project sending through the test SMTP server, with four subscribers."""
    _, port = inbox
    root = project()
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n"
    smtp += "    security: none\n  # "
    text = config.read_text(encoding="utf-8").replace("  delivery: outbox ", smtp)
    config.write_text(text, encoding="utf-8")
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    return root


def invoke(root: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(root / "config" / "pipeline.yaml"), *args])


# -- a real HTTP server on 127.0.0.1 for the web endpoints ---------------------------------


@pytest.fixture
def live_app():
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; yields a function that
    starts one and returns its base URL. Every server is stopped after the test."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


# -- the web endpoints of the example project, live, mailing through the test server ----


@pytest.fixture
def live_site(mail_project, inbox, live_app):
    """The example project mailing through the test SMTP server, its web endpoints live."""
    settings = load_settings(mail_project / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    app = create_app(settings, store, transport=lambda: open_transport(settings.email))
    base = live_app(app)
    yield Site(base, settings, store, inbox[0])
    store.close()


class Site:
    def __init__(self, base, settings, store, handler):
        self.base, self.settings, self.store, self.handler = base, settings, store, handler
        self.people = SubscriberStore(store.engine)
        self.secret = link_secret(settings.email.unsubscribe.secret, store)

    def unsubscribe_link(self, email: str, digest: str = "weekly-en", secret: str | None = None):
        person = self.people.get(email)
        token = sign(secret or self.secret, "unsubscribe", person.id, digest, email=person.email)
        return f"{self.base}/unsubscribe?token={token}"

    def post_form(self, data: dict, session: requests.Session | None = None, **kw):
        """POST /subscribe as the browser showing our form would (with our Origin)."""
        headers = {"Origin": self.base, **kw.pop("headers", {})}
        return (session or requests).post(f"{self.base}/subscribe", data=data, headers=headers)

    def form_token(self, session: requests.Session | None = None) -> str:
        page = (session or requests).get(f"{self.base}/subscribe").text
        return re.search(r'name="form_token" value="([^"]+)"', page).group(1)

    def audience(self, digest: str) -> list[str]:
        return [s.email for s in self.people.audience(("en", "zh-CN"), (), digest)]
