"""The systemd unit in deploy/ is one systemd accepts without a single complaint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "pipeline.service"
INSTALLED_AT = "/opt/pipeline/venv/bin/pipeline"


def verify(unit_text: str, folder: Path) -> str:
    """What ``systemd-analyze verify`` prints about a unit (empty when it has no complaint).

    It exits 0 even for a setting it ignores, so the output is what counts."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("PIPELINE_REQUIRE_SYSTEMD"):
            pytest.fail("systemd-analyze is not installed; CI must verify the unit")
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this interpreter's `pipeline`.
    here = str(Path(sys.executable).with_name("pipeline"))
    unit = folder / "pipeline.service"
    unit.write_text(unit_text.replace(INSTALLED_AT, here))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    return (result.stdout + result.stderr).strip() + ("" if result.returncode == 0 else " (failed)")


def test_the_unit_verifies_cleanly(tmp_path):
    text = UNIT.read_text()
    assert INSTALLED_AT in text
    assert verify(text, tmp_path) == ""


def test_a_mistake_in_the_unit_would_be_noticed(tmp_path):
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt")
    assert "protect system value" in verify(broken, tmp_path).lower()


def test_the_unit_runs_serve_hardened_and_stops_with_sigterm():
    settings = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["ExecStart"].split()[1] == "serve"
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["Restart"] == "on-failure"
    assert settings["ProtectSystem"] == "strict"
    assert settings["StateDirectory"] == "pipeline"
    assert settings["User"] == "pipeline" and settings["NoNewPrivileges"] == "true"
