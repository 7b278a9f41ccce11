"""Ingest of a Markdown archive, cold and warm, against bare baselines in the same run.

    python bench/ingest_bench.py [--files 10000] [--postgres URL]

Cold: an empty store ingests N files (read, parse, sanitise, store). Baseline: a bare
loop that reads each file and parses its front matter and Markdown with the same
libraries, storing nothing. Warm: the same files again, unchanged — the point of the
fingerprint skip. Baseline: a bare ``os.walk`` + ``stat`` of every file, the least any
change detection must do. Each is also run at N/10 to show how it scales.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from markdown_it import MarkdownIt
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.ingest import ingest
from pipeline.settings import SiteSettings
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.store import Store

WORDS = ("mountain", "glacier", "river", "snow", "community", "research", "policy")
HANZI = "山地生物多样性保护冰川气候变化合作研究社区"


def make_archive(folder: Path, count: int, seed: int = 7) -> None:
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


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bare_parse(folder: Path) -> None:
    yaml, md = YAML(typ="safe"), MarkdownIt("commonmark")
    for root, _dirs, names in os.walk(folder):
        for name in names:
            _, head, body = Path(root, name).read_text(encoding="utf-8").split("---\n", 2)
            yaml.load(head)
            md.render(body)


def bare_stat(folder: Path) -> None:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            os.stat(os.path.join(root, name))


def measure(count: int, state_url: str | None) -> dict[str, float]:
    site = SiteSettings(name="Bench", url="https://bench.example.org", timezone="Asia/Kathmandu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "news"
        make_archive(folder, count)
        url = state_url or f"sqlite:///{tmp}/state.db"
        store = Store(url, site.url)
        source = MarkdownSource(
            MarkdownSourceSettings(type="markdown", name="news", path=folder), site
        )
        figures = {
            "cold": timed(lambda: ingest([source], store)),
            "bare_parse": timed(lambda: bare_parse(folder)),
            "warm": timed(lambda: ingest([source], store)),
            "bare_stat": timed(lambda: bare_stat(folder)),
        }
        assert store.count() == count, "every article must be stored"
        if state_url:
            from pipeline.store import metadata

            metadata.drop_all(store.engine)
        store.close()
        return figures


COLUMNS = (
    ("files", 7),
    ("cold s", 8),
    ("bare parse s", 13),
    ("ratio", 6),
    ("warm s", 8),
    ("bare stat s", 12),
    ("ratio", 6),
    ("warm/cold", 10),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--postgres", help="run against this PostgreSQL URL instead of SQLite")
    args = parser.parse_args()
    print(" ".join(f"{name:>{width}}" for name, width in COLUMNS))
    for count in (args.files // 10, args.files):
        f = measure(count, args.postgres)
        row = (
            count,
            f"{f['cold']:.2f}",
            f"{f['bare_parse']:.2f}",
            f"{f['cold'] / f['bare_parse']:.2f}",
            f"{f['warm']:.3f}",
            f"{f['bare_stat']:.3f}",
            f"{f['warm'] / f['bare_stat']:.1f}",
            f"{f['warm'] / f['cold']:.3f}",
        )
        print(" ".join(f"{value:>{width}}" for value, (_, width) in zip(row, COLUMNS, strict=True)))


if __name__ == "__main__":
    main()
