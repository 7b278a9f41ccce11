"""Cold ingest of a Markdown archive against a bare parse, paired in the same run.

    python bench/ingest_bench.py [--files 10000 50000] [--repeats 3] [--code PATH]

Cold: an empty SQLite store ingests N files (read, parse, sanitise, plain text, excerpt,
read-time, store), as ``pipeline ingest`` does. Baseline **bare parse**: a loop that reads
each file and parses its front matter and Markdown with the same libraries (ruamel's C
loader, markdown-it), storing nothing. Warm: the cold run's files ingested again,
unchanged (the fingerprint skip), in the same process.

Each measurement is a child process of its own, so its peak memory (``ru_maxrss``) is
its own; wall and CPU seconds (user + system) are measured inside it, around the work
alone (start-up and imports excluded). Cold and bare alternate, ``--repeats`` times
each; the table shows medians and, after ±, half the spread (max − min). The machine is
shared: CPU seconds are the steadier figure.

``--code PATH`` runs the project side from another checkout (e.g. ``git worktree add
/tmp/before main``), for a before/after on the same archive.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
WORDS = ("mountain", "glacier", "river", "snow", "community", "research", "policy")
HANZI = "山地生物多样性保护冰川气候变化合作研究社区"


def make_archive(folder: Path, count: int, seed: int = 7) -> None:
    """``count`` articles, a quarter of them Chinese, in ten year folders."""
    rng = random.Random(seed)
    for n in range(count):
        chinese = n % 4 == 0
        body = (
            "".join(rng.choice(HANZI) for _ in range(900))
            if chinese
            else "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(90)) for _ in range(5))
        )
        sub = folder / f"{2015 + n % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"article-{n:06d}.md").write_text(
            f"---\ntitle: Article {n}\ndate: 2024-01-{1 + n % 28:02d}T09:00:00+05:45\n"
            f"author: Staff Writer\ntags: [Nepal, t{n % 50}]\n"
            + ("language: zh-CN\n" if chinese else "")
            + f"---\n## Heading\n\n{body}\n",
            encoding="utf-8",
        )


# -- the children --------------------------------------------------------------------------


def bare_parse(folder: Path) -> dict:
    from _ruamel_yaml import CParser  # noqa: F401  (the C loader must be there, as for ours)
    from markdown_it import MarkdownIt
    from ruamel.yaml import YAML

    yaml, md = YAML(typ="safe"), MarkdownIt("commonmark")
    count = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            _, head, body = Path(root, name).read_text(encoding="utf-8").split("---\n", 2)
            yaml.load(head)
            md.render(body)
            count += 1
    return {"files": count}


def ingest_into(folder: Path, state: Path, expect_added: bool) -> dict:
    from pipeline.ingest import ingest
    from pipeline.settings import SiteSettings
    from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
    from pipeline.store import Store

    site = SiteSettings(name="Bench", url="https://bench.example.org", timezone="Asia/Kathmandu")
    store = Store(f"sqlite:///{state}", site.url)
    source = MarkdownSource(MarkdownSourceSettings(type="markdown", name="news", path=folder), site)
    report = ingest([source], store)
    stored = store.count()
    store.close()
    added = len(report.stored["news"].added)
    assert report.ok and added == (stored if expect_added else 0), "all must be stored"
    return {"files": stored}


def child(mode: str, folder: Path, state: Path) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    result = bare_parse(folder) if mode == "bare" else ingest_into(folder, state, True)
    wall = time.perf_counter() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime - cpu0,
        peak_mib=usage.ru_maxrss / 1024,  # KiB on Linux
    )
    if mode == "cold":  # the same files again, unchanged, in the same process
        wall0 = time.perf_counter()
        ingest_into(folder, state, False)
        result["warm"] = time.perf_counter() - wall0
    print(json.dumps(result))


def run_child(mode: str, folder: Path, state: Path, code: Path) -> dict:
    state.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", mode, str(folder), str(state)],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the table ------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 2) -> str:
    half = (max(values) - min(values)) / 2
    return f"{statistics.median(values):.{digits}f} ±{half:.{digits}f}"


def measure(count: int, repeats: int, code: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        folder, state = Path(tmp) / "news", Path(tmp) / "state.db"
        make_archive(folder, count)
        cold: list[dict] = []
        bare: list[dict] = []
        for n in range(repeats):  # alternating, so drift on a shared machine hits both
            order = ("bare", "cold") if n % 2 == 0 else ("cold", "bare")
            for mode in order:
                (bare if mode == "bare" else cold).append(run_child(mode, folder, state, code))
    wall = [c["wall"] / b["wall"] for c, b in zip(cold, bare, strict=True)]
    cpu = [c["cpu"] / b["cpu"] for c, b in zip(cold, bare, strict=True)]
    return [
        f"{count:,}",
        spread([c["wall"] for c in cold]),
        spread([b["wall"] for b in bare]),
        spread(wall),
        spread([c["cpu"] for c in cold]),
        spread([b["cpu"] for b in bare]),
        spread(cpu),
        f"{statistics.median(c['peak_mib'] for c in cold):.0f}",
        f"{statistics.median(b['peak_mib'] for b in bare):.0f}",
        spread([c["warm"] for c in cold], 3),
    ]


HEADER = (
    "files",
    "cold s",
    "bare parse s",
    "ratio (wall)",
    "cold CPU s",
    "bare CPU s",
    "ratio (CPU)",
    "cold peak MiB",
    "bare peak MiB",
    "warm s",
)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, os.environ.get("PYTHONPATH", "."))
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--code", type=Path, default=HERE.parent.parent, help="checkout whose pipeline to run"
    )
    args = parser.parse_args()
    code = args.code.resolve()
    print(f"project code: {code}; {os.cpu_count()} cores; medians ± half the spread")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---:|" * len(HEADER))
    for count in args.files:
        print("| " + " | ".join(measure(count, args.repeats, code)) + " |", flush=True)


if __name__ == "__main__":
    main()
