"""Schema migrations: a state store written by commit 37796e2 (before migrations existed)
is upgraded with every row intact and nothing posted or sent twice, on SQLite and
PostgreSQL; the revisions build exactly the schema of pipeline/schema.py.

The old store is tests/fixtures/store_37796e2 (written by that commit's own code, see its
generate.py): 13 articles posted to a file channel, a webhook channel with rows in every
ledger state, subscribers in every status with per-digest unsubscribes, sent, skipped
and interrupted digest editions, runs and a lock.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from pipeline import migrations
from pipeline.schema import metadata
from pipeline.store import Store, open_engine
from tests.conftest import POSTGRES_URL, invoke

FIXTURE = Path(__file__).parent / "fixtures" / "store_37796e2"
SITE = "https://news.example.org"
HEAD = migrations.head()
SQLITE_ONLY = pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize(
    "state_url",
    [
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="PIPELINE_TEST_POSTGRES not set"),
            ],
        )
    ],
    indirect=True,
)
INTERRUPTED = "mail:weekly-en@2026-11-30T09:00+05:45"  # the edition the fixture left open


def load_fixture(url: str) -> None:
    """Write the 37796e2 store into the empty database at ``url``, as that commit made it."""
    engine = create_engine(url)
    script = (FIXTURE / f"{engine.dialect.name}.sql").read_text(encoding="utf-8")
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if engine.dialect.name == "sqlite":
            driver.executescript(script)
        else:
            driver.autocommit = True
            driver.execute(script)  # no parameters: psycopg runs the statements in turn
    finally:
        raw.close()
        engine.dispose()


@cache
def old_tables() -> dict[str, tuple[list[str], list[str]]]:
    """Each table of the fixture: (its columns, its primary key), as 37796e2 made them.
    Later revisions may add columns; rows are compared on these."""
    conn = sqlite3.connect(":memory:")
    conn.executescript((FIXTURE / "sqlite.sql").read_text(encoding="utf-8"))
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    found = {}
    for (name,) in names.fetchall():
        # (cid, name, type, notnull, default, position in the primary key or 0)
        info = conn.execute(f"PRAGMA table_info({name})").fetchall()
        key = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
        found[name] = ([row[1] for row in info], key)
    conn.close()
    return found


def _select(name: str) -> str:
    columns, key = old_tables()[name]
    return f"SELECT {', '.join(columns)} FROM {name} ORDER BY {', '.join(key)}"


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of the old tables, old columns only, in one form for both databases."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {
            name: [tuple(_plain(v) for v in row) for row in conn.execute(text(_select(name)))]
            for name in old_tables()
        }
    engine.dispose()
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # SQLite hands back the stored text
        return value.isoformat(sep=" ", timespec="microseconds")
    return int(value) if isinstance(value, bool) else value


@pytest.fixture(scope="module")
def fixture_rows() -> dict[str, list[tuple]]:
    """The fixture's rows as SQLite holds them: what both databases must hold after."""
    conn = sqlite3.connect(":memory:")
    conn.executescript((FIXTURE / "sqlite.sql").read_text(encoding="utf-8"))
    found = {name: conn.execute(_select(name)).fetchall() for name in old_tables()}
    conn.close()
    assert len(found) == 10 and all(found.values())  # every table holds something
    return found


def schema(engine: Engine) -> dict[str, Any]:
    """What a person could tell apart in two databases' tables (alembic_version aside)."""
    found: dict[str, Any] = {}
    inspector = inspect(engine)
    for name in sorted(set(inspector.get_table_names()) - {migrations.VERSION_TABLE}):
        found[name] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], str(c["default"]))
                for c in inspector.get_columns(name)
            ),
            "pk": inspector.get_pk_constraint(name)["constrained_columns"],
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], str(f["options"]))
                for f in inspector.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
            ),
        }
    if engine.dialect.name == "sqlite":  # ids never reused: AUTOINCREMENT is in the DDL only
        with engine.connect() as conn:
            ddl = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'subscribers'"))
        found["subscribers"]["autoincrement"] = "AUTOINCREMENT" in ddl
    return found


@pytest.fixture
def old_project(project, state_url, httpserver) -> Path:
    """The example project with the fixture's config, its webhook channel pointing at a
    local receiver, and the 37796e2 state store."""
    root = project()
    config = (FIXTURE / "pipeline.yaml").read_text(encoding="utf-8")
    config = config.replace("http://127.0.0.1:9/hook", httpserver.url_for("/hook"))
    if not state_url.startswith("sqlite"):
        config = config.replace("# state: sqlite:///var/state.db", f"state: {state_url}  #")
    (root / "config" / "pipeline.yaml").write_text(config, encoding="utf-8")
    httpserver.expect_request("/hook", method="POST").respond_with_json(
        {"id": "new", "url": "https://hooks.example.org/p/new"}
    )
    (root / "var").mkdir(exist_ok=True)
    load_fixture(url_of(root, state_url))
    return root


def url_of(root: Path, state_url: str) -> str:
    return f"sqlite:///{root / 'var' / 'state.db'}" if state_url.startswith("sqlite") else state_url


def revision_of(url: str) -> migrations.Status:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.status(conn)
    finally:
        engine.dispose()


# -- the upgrade ---------------------------------------------------------------------------


def test_a_37796e2_store_upgrades_with_every_row_intact(old_project, state_url, fixture_rows):
    url = url_of(old_project, state_url)
    assert rows(url) == fixture_rows  # loaded as 37796e2 left it, on either database
    before = revision_of(url)
    assert (before.revision, before.recorded) == ("0001", False)

    result = invoke(old_project, "db", "upgrade")

    assert result.exit_code == 0, result.output
    assert f"from revision 0001 to {HEAD}" in result.stdout
    assert rows(url) == fixture_rows
    after = revision_of(url)
    assert (after.revision, after.recorded, after.missing) == (HEAD, True, frozenset())
    engine = create_engine(url)
    with engine.connect() as conn:
        retry = conn.execute(text("SELECT next_attempt_at, failing_since FROM deliveries"))
        assert set(retry) == {(None, None)}  # old rows read as "due now, no failures yet"
    upgraded = schema(engine)
    drop_everything(engine)
    engine.dispose()
    fresh = Store(url, SITE)  # a new store in the same place
    try:
        assert schema(fresh.engine) == upgraded
    finally:
        fresh.close()


def drop_everything(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))


def test_after_the_upgrade_nothing_is_posted_or_sent_twice(old_project, state_url, httpserver):
    """The fixture's ledger carries over: `run` posts to the file channel nothing (all 13
    were posted), to the webhook only the article left pending; `digest send` finishes the
    interrupted edition for the one subscriber it had not begun, and marks the one whose
    send was cut off uncertain instead of mailing them again."""
    if not state_url.startswith("sqlite"):  # PostgreSQL waits for the operator
        assert invoke(old_project, "db", "upgrade").exit_code == 0
    url = url_of(old_project, state_url)
    engine = create_engine(url)
    with engine.connect() as conn:
        pending = (
            conn.execute(
                text("SELECT item FROM deliveries WHERE stream = 'post:hook' AND state = 'pending'")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(pending) == 1

    result = invoke(old_project, "run")

    assert result.exit_code == 0, result.output
    posts = old_project / "var" / "posts.jsonl"
    assert not posts.exists() or posts.read_bytes() == b""
    posted = [json.loads(request.get_data())["article"]["id"] for request, _ in httpserver.log]
    assert posted == pending

    result = invoke(old_project, "digest", "send", "weekly-en")

    assert result.exit_code == 1, result.output  # one delivery is uncertain: said, not resent
    assert "weekly-en@2026-11-30T09:00+05:45" in result.stdout
    sent = sorted((old_project / "var" / "outbox").glob("*.eml"))
    assert len(sent) == 1
    to = [line for line in sent[0].read_bytes().splitlines() if line.startswith(b"To:")]
    assert to == [b"To: Nima Sherpa <nima@example.org>"]
    engine = create_engine(url)
    with engine.connect() as conn:
        states = dict(
            conn.execute(
                text(
                    "SELECT s.email, d.state FROM deliveries d JOIN subscribers s "
                    "ON d.item = CAST(s.id AS VARCHAR(20)) WHERE d.stream = :stream"
                ),
                {"stream": INTERRUPTED},
            ).all()
        )
        status = conn.scalar(text(f"SELECT status FROM editions WHERE id = '{INTERRUPTED[5:]}'"))
    engine.dispose()
    assert states == {
        "anna@example.org": "sent",
        "dawa@example.org": "uncertain",
        "nima@example.org": "sent",
    }
    assert status == "sent"


@SQLITE_ONLY
def test_an_old_sqlite_store_is_upgraded_by_any_command_after_a_backup(
    old_project, state_url, fixture_rows
):
    result = invoke(old_project, "subscribers", "list")

    assert result.exit_code == 0, result.output
    backups = list((old_project / "var").glob("state.db.bak-*"))
    assert [
        re.fullmatch(r"state\.db\.bak-0001-\d{8}T\d{6}Z", b.name) is not None for b in backups
    ] == [True]
    assert (
        f"upgraded the state store {old_project / 'var' / 'state.db'} from revision 0001 to "
        f"{HEAD}; a copy from before is {backups[0]}\n"
    ) in result.stderr
    assert "nima@example.org" in result.stdout
    backup = f"sqlite:///{backups[0]}"
    assert rows(f"sqlite:///{old_project / 'var' / 'state.db'}") == fixture_rows
    assert revision_of(backup).recorded is False  # the backup is the store as it was
    engine = create_engine(backup)
    columns = {c["name"] for c in inspect(engine).get_columns("deliveries")}
    engine.dispose()
    assert "next_attempt_at" not in columns

    again = invoke(old_project, "subscribers", "list")

    assert again.exit_code == 0 and "upgraded" not in again.stderr
    assert len(list((old_project / "var").glob("state.db.bak-*"))) == 1


@POSTGRES_ONLY
def test_an_old_postgresql_store_stops_every_command_until_db_upgrade(old_project, state_url):
    url = url_of(old_project, state_url)
    for args in (("run",), ("subscribers", "list"), ("digest", "send", "weekly-en"), ("history",)):
        result = invoke(old_project, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "run `pipeline db upgrade`" in result.stderr
        assert "revision 0001" in result.stderr and f"needs {HEAD}" in result.stderr
    assert revision_of(url).recorded is False  # nothing was changed
    assert not (old_project / "var" / "posts.jsonl").exists()

    current = invoke(old_project, "db", "current")

    assert current.exit_code == 0
    assert "revision 0001, not recorded" in current.stdout and "0002  Deliveries" in current.stdout
    assert invoke(old_project, "db", "upgrade").exit_code == 0
    assert invoke(old_project, "subscribers", "list").exit_code == 0
    assert f"revision {HEAD} (the newest)" in invoke(old_project, "db", "current").stdout


# -- models and migrations agree ------------------------------------------------------------


def test_the_revisions_build_exactly_the_schema_a_new_store_gets(state_url):
    """Run every revision from nothing: alembic's autogenerate comparison finds no
    difference from pipeline/schema.py, and a new store (create_all, then recorded as
    head) has the same tables, columns, keys and indexes. A column added to schema.py
    without a revision fails here."""
    engine = open_engine(state_url)
    try:
        with engine.begin() as conn:
            migrations.run(conn, command.upgrade, "head")
        with engine.connect() as conn:
            assert migrations.differences(conn) == []
            assert migrations.status(conn).current
        migrated = schema(engine)
        drop_everything(engine)  # empty again, for a new store in the same place
    finally:
        engine.dispose()
    store = Store(state_url, SITE)
    try:
        assert schema(store.engine) == migrated
        with store.engine.connect() as conn:
            assert migrations.differences(conn) == []
            found = migrations.status(conn)
        assert found.current and found.recorded
    finally:
        store.close()


def test_0007_adds_only_indexes_and_its_downgrade_drops_them(state_url):
    """The query indexes (issue 16) come and go with 0007; nothing else changes."""
    added = {
        "articles": {"ix_articles_live_language", "ix_articles_live_section"},
        "deliveries": {"ix_deliveries_stream_state", "ix_deliveries_stream_updated"},
        "runs": {"ix_runs_scheduled"},
    }

    def indexes(engine: Engine) -> dict[str, set[str]]:
        found = inspect(engine)
        return {t: {i["name"] for i in found.get_indexes(t)} & names for t, names in added.items()}

    engine = open_engine(state_url)
    try:
        with engine.begin() as conn:
            migrations.run(conn, command.upgrade, "0007")
        assert indexes(engine) == added
        with_them = schema(engine)
        with engine.begin() as conn:
            migrations.run(conn, command.downgrade, "0006")
        assert indexes(engine) == {t: set() for t in added}
        with engine.begin() as conn:
            migrations.run(conn, command.upgrade, "0007")
        assert schema(engine) == with_them
    finally:
        engine.dispose()


def test_the_revisions_are_numbered_in_one_line():
    """0001, 0002, … each revising the one before, as Alembic reads them: the pipeline
    tells the newest from the file names alone (without importing Alembic), and two
    revisions written at once on different branches must be renumbered into a line."""
    script = migrations.scripts()
    chain = list(reversed(list(script.walk_revisions())))
    assert [s.revision for s in chain] == list(migrations.revisions())
    assert list(migrations.revisions()) == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert [s.down_revision for s in chain] == [None, *migrations.revisions()[:-1]]
    assert script.get_heads() == [migrations.head()]
    assert migrations.pending(None) == list(migrations.revisions())


# -- refusing what cannot be done -----------------------------------------------------------


def test_a_store_a_newer_version_upgraded_is_refused(project, state_url):
    root = project()
    Store(url_of(root, state_url), SITE).close()
    engine = create_engine(url_of(root, state_url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()

    result = invoke(root, "run")

    assert result.exit_code == 2
    assert "at revision 9999, which this version of the pipeline does not know" in result.stderr
    assert f"newest is {HEAD}" in result.stderr
    assert "unknown to this version" in invoke(root, "db", "current").stdout
    assert invoke(root, "db", "upgrade").exit_code == 2


def test_a_store_made_by_9731dde_is_told_by_its_columns(tmp_path, state_url):
    """Stores made after 37796e2 and before migrations already have the retry columns:
    they are taken as 0002, so opening them records that instead of adding the columns
    again (which would fail), with no copy needed."""
    url = state_url if not state_url.startswith("sqlite") else f"sqlite:///{tmp_path / 's.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # 9731dde's tables, without the record of them
        migrations.run(conn, command.upgrade, "0002")
        conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))
    engine.dispose()
    assert (revision_of(url).revision, revision_of(url).recorded) == ("0002", False)

    engine = open_engine(url)
    try:
        done = migrations.upgrade(engine, "the store")
    finally:
        engine.dispose()

    assert (done.before, done.after) == ("0002", HEAD)
    assert (revision_of(url).revision, revision_of(url).recorded) == (HEAD, True)
    if HEAD == "0002":  # only recorded: nothing to copy
        assert done.backup is None and list(tmp_path.glob("*.bak-*")) == []


UPGRADE = textwrap.dedent(
    """
    import sys
    from pipeline import migrations
    from pipeline.store import open_engine
    engine = open_engine(sys.argv[1])
    engine.connect().close()  # connected and imported: ready
    print("ready", flush=True)
    sys.stdin.readline()  # all start together
    done = migrations.upgrade(engine, "the store")
    print("upgraded" if done.changed else "current")
    """
)


def test_processes_upgrading_an_old_store_at_once_upgrade_it_once(old_project, state_url):
    """Four processes start on an old store together (services restarting after a
    package upgrade): the first upgrades it, the others wait and find it current."""
    url = url_of(old_project, state_url)
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for run in runs:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
    for run in runs:
        assert run.stdin is not None
        run.stdin.write("go\n")
        run.stdin.flush()
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, [err for _, err in outcomes]
    assert sorted(out.strip() for out, _ in outcomes) == ["current"] * 3 + ["upgraded"]
    backups = list((old_project / "var").glob("state.db.bak-*"))
    assert len(backups) == (1 if state_url.startswith("sqlite") else 0)


@SQLITE_ONLY
def test_a_second_backup_in_the_same_second_gets_a_name_of_its_own(old_project, state_url):
    var = old_project / "var"
    taken = var / "state.db.bak-0001-20261204T120000Z"
    taken.write_bytes(b"an earlier copy")
    engine = open_engine(url_of(old_project, state_url))
    try:
        done = migrations.upgrade(
            engine, "var/state.db", lambda: dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
        )
    finally:
        engine.dispose()
    assert done.backup == var / "state.db.bak-0001-20261204T120000Z-1"
    assert taken.read_bytes() == b"an earlier copy"


@pytest.mark.parametrize("recorded", [False, True], ids=["unversioned", "recorded"])
def test_an_upgrade_that_fails_part_way_leaves_the_store_as_it_was(
    old_project, state_url, fixture_rows, monkeypatch, recorded
):
    """Every revision, and the record of it, is one transaction: a failure after the
    columns were added (here: right after the last revision ran) rolls all of it back,
    whether the store had its revision recorded (the ALTER comes first) or not."""
    url = url_of(old_project, state_url)
    if recorded:
        engine = create_engine(url)
        with engine.begin() as conn:
            migrations.run(conn, command.stamp, "0001")
        engine.dispose()

    real = command.upgrade

    def upgrade_then_fail(cfg: Any, revision: str) -> None:
        real(cfg, revision)
        raise RuntimeError("the power went out")

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    engine = open_engine(url)
    try:
        with pytest.raises(RuntimeError):
            migrations.upgrade(engine, "the store")
        columns = {c["name"] for c in inspect(engine).get_columns("deliveries")}
    finally:
        engine.dispose()
    assert "next_attempt_at" not in columns
    assert (revision_of(url).revision, revision_of(url).recorded) == ("0001", recorded)
    assert rows(url) == fixture_rows


def test_db_current_and_upgrade_on_a_new_project(project, state_url):
    """`db current` looks without making anything; `db upgrade` makes a new store at head."""
    root = project()

    before = invoke(root, "db", "current")

    assert before.exit_code == 0
    if state_url.startswith("sqlite"):
        assert f"no state store yet; it is made at revision {HEAD}" in before.stdout
        assert not (root / "var" / "state.db").exists()
    else:
        assert f"empty; its tables are made at revision {HEAD}" in before.stdout
    made = invoke(root, "db", "upgrade")
    assert made.exit_code == 0 and f"at revision {HEAD}" in made.stdout
    assert f"revision {HEAD} (the newest)" in invoke(root, "db", "current").stdout
    again = invoke(root, "db", "upgrade")
    assert f"is at revision {HEAD}, the newest already" in again.stdout
    assert list((root / "var").glob("*.bak-*")) == []
