"""Opening a new state store: several processes at once, and the claim that PostgreSQL
broke (its driver reports rowcount -1 for INSERT … ON CONFLICT)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import inspect

from pipeline.ledger import Ledger
from pipeline.schema import metadata
from pipeline.store import Store

OPEN_AND_CLAIM = textwrap.dedent(
    """
    import sys
    from pipeline.ledger import Ledger
    from pipeline.store import Store
    store = Store(sys.argv[1], "https://news.example.org")
    won = Ledger(store.engine).claim("post:test", "article", "key")
    print("won" if won else "lost")
    """
)


def test_processes_opening_a_new_store_at_once_all_succeed_and_one_claims(state_url):
    """Five processes create the tables of an empty store together: none fails, every
    table is complete, and exactly one of them wins the same delivery claim."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_CLAIM, state_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 5, [err for _, err in outcomes]
    assert sorted(out.strip() for out, _ in outcomes) == ["lost"] * 4 + ["won"]
    store = Store(state_url, "https://news.example.org")
    try:
        assert set(metadata.tables) <= set(inspect(store.engine).get_table_names())
    finally:
        store.close()


def test_a_claim_is_won_once_and_a_settled_row_is_not_claimed_again(state_url):
    store = Store(state_url, "https://news.example.org")
    try:
        first, second = Ledger(store.engine, owner="a:1"), Ledger(store.engine, owner="b:2")
        assert first.claim("post:mastodon", "news/one", "k1") is True
        assert second.claim("post:mastodon", "news/one", "k1") is False
        first.settle("post:mastodon", "news/one", "sent")
        assert second.claim("post:mastodon", "news/one", "k1") is False
        assert first.entries("post:mastodon")["news/one"].state == "sent"
    finally:
        store.close()
