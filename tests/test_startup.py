"""Start-up: `pipeline --help` and the help of every command load only click and the
pipeline's own light modules. The heavy libraries (SQLAlchemy, pydantic, requests,
Jinja2, the Markdown and feed libraries) are imported by the commands that use them, so
a typo'd command or a `--help` answers at once. Asserted by the modules a fresh process
loaded, not by a timer: the timing is bench/README.md's ("Start-up")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

HEAVY = (
    "sqlalchemy",
    "pydantic",
    "requests",
    "jinja2",
    "markdown_it",
    "feedgen",
    "mjml",
    "lxml",
    "starlette",
    "uvicorn",
    "boto3",
    "email_validator",
    "pipeline.settings",
    "pipeline.store",
    "pipeline.assembly",
)

PROBE = """
import json, sys
from pipeline.cli import main
try:
    main(sys.argv[1:], prog_name="pipeline")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*args: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("check", "--help"),
        ("digest", "send", "--help"),
        ("subscribers", "--help"),
        ("deliveries", "--help"),
        ("db", "--help"),
        ("templates", "--help"),
        ("no-such-command",),
    ],
)
def test_help_and_usage_errors_load_no_heavy_library(args):
    code, modules = loaded_by(*args)
    assert code in (0, 2)
    assert heavy_in(modules) == []


def test_the_probe_sees_a_heavy_import():
    """The probe itself can fail: a command that does its work loads the libraries."""
    code, modules = loaded_by("--config", "/nonexistent/pipeline.yaml", "check")
    assert code == 2
    assert "pipeline.settings" in modules


@pytest.fixture
def new_site(tmp_path: Path) -> Path:
    """What `pipeline init` makes: Markdown articles, a file channel, a digest, no DKIM,
    and no state store yet. Its config file."""
    site = tmp_path / "site"
    made = subprocess.run(
        [sys.executable, "-m", "pipeline", "init", str(site), "--url", "https://n.example.org"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return site / "config" / "pipeline.yaml"


def test_check_of_a_site_without_dkim_loads_no_signing_library(new_site):
    """dkimpy (with dnspython) and cryptography cost ~0.1 s to import; a site that signs
    nothing does not pay it, not even in `check`, which describes DKIM."""
    code, modules = loaded_by("--config", str(new_site), "check")
    assert code == 0
    assert "pipeline.settings" in modules  # it did check the configuration
    assert not {"dkim", "dns", "cryptography"} & {m.split(".")[0] for m in modules}


def adapter_modules() -> dict[str, str]:
    """Module → the built-in source, channel or transport entry point it holds."""
    from pipeline.plugins import CHANNELS, SOURCES, TRANSPORTS, Plugins

    plugins = Plugins()
    return {
        entry.value.split(":")[0]: f"{group}:{name}"
        for group in (SOURCES, CHANNELS, TRANSPORTS)
        for name, entry in plugins.entries(group).items()
        if entry.built_in
    }


def test_check_without_a_state_store_imports_no_database_library_nor_unused_adapter(new_site):
    """`check` validates every source and channel from the options models the plug-ins
    declare (pipeline/settings), imports only the adapters the project configures (the
    file channel, for its template's escaping and what it can correct), and with no
    state store yet has no subscribers to count: SQLAlchemy (~0.25 s), requests and the
    unused adapters' libraries stay unloaded."""
    code, modules = loaded_by("--config", str(new_site), "check")
    assert code == 0
    assert "pipeline.settings" in modules and "jinja2" in modules  # it did check templates
    assert not {"sqlalchemy", "requests", "feedparser", "markdown_it", "boto3"} & {
        m.split(".")[0] for m in modules
    }
    loaded = {module for module in adapter_modules() if module in modules}
    assert loaded == {"pipeline.channels.file"}
    assert "pipeline.store" not in modules and "pipeline.welcome" not in modules


def test_check_with_a_state_store_counts_subscribers_through_sqlalchemy(new_site):
    """The other side: once the store exists, `check` opens it to find active subscribers
    no digest reaches, so the probe does see SQLAlchemy when it is loaded."""
    ingested = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(new_site), "ingest"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ingested.returncode == 0, ingested.stderr
    code, modules = loaded_by("--config", str(new_site), "check")
    assert code == 0
    assert {"sqlalchemy", "pipeline.store"} <= modules


def test_loading_the_settings_imports_no_adapter():
    """The example's settings (two Markdown sources, a file channel, the outbox) are
    validated without importing a source, channel or transport module."""
    probe = (
        "import json, sys; from pathlib import Path; "
        "from pipeline.settings import load_settings; "
        "load_settings(Path('config/pipeline.yaml')); print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    assert "pipeline.settings.sources" in modules
    assert {module for module in adapter_modules() if module in modules} == set()
    # pydantic for the models, email-validator for `email.from`; no Jinja, no database
    assert {m.split(".")[0] for m in heavy_in(modules)} == {
        "pipeline",
        "pydantic",
        "email_validator",
    }


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/state.db",
        "sqlite:////srv/news/state.db",
        "sqlite+pysqlite:///a%20b.db?mode=ro&uri=true",
        "sqlite:///file:/srv/news/state.db?uri=true",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite://host/db",
        "postgresql+psycopg://user@db.example.org/news",
    ],
)
def test_the_light_reading_of_a_store_url_agrees_with_sqlalchemy(url):
    """`check` asks whether the SQLite file exists without importing SQLAlchemy: the
    answer is the one SQLAlchemy's own parse of the URL gives."""
    from sqlalchemy.engine import make_url

    from pipeline.store_url import sqlite_file_missing

    parsed = make_url(url)
    database = (parsed.database or "").removeprefix("file:")
    expected = (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    )
    assert sqlite_file_missing(url) == expected
