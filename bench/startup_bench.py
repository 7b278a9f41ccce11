"""Start-up: how long `pipeline --help` and `pipeline check` take in a fresh process,
against a bare interpreter (`python -c pass`) and one that imports only click, measured
in the same run, alternating, each repeated; and `check` before any work: the same
imports and the settings loaded (plug-ins found, config/pipeline.yaml validated), then
exit. Run from the repository root (`check` reads config/pipeline.yaml of the bundled
example). The children may write .pyc files even where PYTHONDONTWRITEBYTECODE is set:
an installed pipeline has them, and compiling its modules anew costs ~0.07 s a run.

    .venv/bin/python bench/startup_bench.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PIPELINE = [sys.executable, "-m", "pipeline"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import click'": [sys.executable, "-c", "import click"],
    "pipeline --help": [*PIPELINE, "--help"],
    "pipeline check": [*PIPELINE, "check"],
    "check, settings loaded": [
        sys.executable,
        "-c",
        "from pathlib import Path; from pipeline.cli import main; "
        "from pipeline.cli.app import Project; Project(Path('config/pipeline.yaml')).settings",
    ],
}
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def one_run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=CHILD_ENV
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parent.parent)
    for argv in COMMANDS.values():  # warm the page cache and the .pyc files
        one_run(argv)
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):  # alternating, so a busy moment hits every command alike
        for name, argv in COMMANDS.items():
            wall, cpu = one_run(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
    bare = statistics.median(cpus["python -c pass"])
    print(f"{'command':<28} {'wall s':>7} {'spread':>13} {'CPU s':>7} {'CPU - bare':>10}")
    for name in COMMANDS:
        w, c = walls[name], cpus[name]
        print(
            f"{name:<28} {statistics.median(w):7.3f} {min(w):6.3f}–{max(w):6.3f}"
            f" {statistics.median(c):7.3f} {statistics.median(c) - bare:10.3f}"
        )


if __name__ == "__main__":
    main()
