"""For developers changing pipeline/schema.py:

    python -m pipeline.migrations revision "subscribers: confirmation count"
        writes versions/NNNN_subscribers_confirmation_count.py: the next number, with
        the operations that turn the schema the revisions build into schema.py's
    python -m pipeline.migrations check
        exit 1, listing the differences, when schema.py and the revisions disagree

Both work on a scratch SQLite database built by running every revision; the tests
compare on PostgreSQL too (tests/test_migrations.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, create_engine

from pipeline import migrations


@contextmanager
def _migrated() -> Iterator[Connection]:
    """A scratch database at head, built by the revisions (not by create_all)."""
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        try:
            with engine.begin() as conn:
                migrations.run(conn, command.upgrade, "head")
            with engine.begin() as conn:
                yield conn
        finally:
            engine.dispose()


def check() -> int:
    with _migrated() as conn:
        found = migrations.differences(conn)
    for difference in found:
        print(difference)
    if found:
        print(
            "pipeline/schema.py and the revisions disagree: add a revision with "
            '`python -m pipeline.migrations revision "what changed"`',
            file=sys.stderr,
        )
    return 1 if found else 0


def revision(message: str) -> int:
    number = max(int(s.revision) for s in migrations.scripts().walk_revisions()) + 1
    with _migrated() as conn:
        if not migrations.differences(conn):
            print(
                "pipeline/schema.py has no change the revisions lack; nothing written",
                file=sys.stderr,
            )
            return 1
        script = migrations.run(
            conn, command.revision, message, autogenerate=True, rev_id=f"{number:04d}"
        )
    path = Path(script.path)
    # the project's style (ruff is a test dependency); unformatted is still correct
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(path)], check=False)
    print(f"wrote {path}: read it through (renames, NOT NULL columns), then run the tests")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"] and len(argv) == 1:
        return check()
    if argv[:1] == ["revision"] and len(argv) == 2 and argv[1].strip():
        return revision(argv[1].strip())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
