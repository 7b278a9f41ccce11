"""Start-up: `pipeline --help` and the help of every command load only click and the
pipeline's own light modules. The heavy libraries (SQLAlchemy, pydantic, requests,
Jinja2, the Markdown and feed libraries) are imported by the commands that use them, so
a typo'd command or a `--help` answers at once. Asserted by the modules a fresh process
loaded, not by a timer: the timing is bench/README.md's ("Start-up")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_check_of_a_site_without_dkim_loads_no_signing_library(tmp_path):
    """dkimpy (with dnspython) and cryptography cost ~0.1 s to import; a site that signs
    nothing does not pay it, not even in `check`, which describes DKIM."""
    site = tmp_path / "site"
    made = subprocess.run(
        [sys.executable, "-m", "pipeline", "init", str(site), "--url", "https://n.example.org"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    code, modules = loaded_by("--config", str(site / "config" / "pipeline.yaml"), "check")
    assert code == 0
    assert "pipeline.settings" in modules  # it did check the configuration
    assert not {"dkim", "dns", "cryptography"} & {m.split(".")[0] for m in modules}
