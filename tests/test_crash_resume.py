"""A real `pipeline digest send` to ~300 recipients through a local SMTP server, killed
with SIGKILL at random moments several times, then resumed to completion: nobody gets
the edition twice, and everybody either got it or is listed by
`pipeline deliveries uncertain` for a person to check. Runs on SQLite and PostgreSQL.

The moments are random but reproducible: the seed is printed (run with ``-s``) and can
be set with ``CRASH_SEED``."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from email.utils import parseaddr

from tests.conftest import invoke

KILLS = 6
RECIPIENTS = 300  # with the three English readers mail_project already has


def start_send(root):
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "digest", "send", "weekly-en"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_sends_resume_without_duplicates_or_silent_losses(mail_project, inbox, state_url):
    handler, _ = inbox
    readers = [f"reader{n:03}@example.org" for n in range(RECIPIENTS - 3)]
    rows = "".join(f"{address},Reader {n},en,\n" for n, address in enumerate(readers))
    (mail_project / "readers.csv").write_text("email,name,language,topics\n" + rows)
    assert invoke(mail_project, "subscribers", "import", str(mail_project / "readers.csv"))
    audience = {"anna@example.org", "pema@example.org", "sonam@example.org", *readers}
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    started = time.monotonic()
    kills = 0
    for _ in range(KILLS):
        before = len(handler.messages)
        remaining = RECIPIENTS - before
        target = before + rng.randint(1, max(1, remaining // 4))
        process = start_send(mail_project)
        deadline = time.monotonic() + 30
        while len(handler.messages) < target and process.poll() is None:
            assert time.monotonic() < deadline, "the send made no progress"
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))  # not always just after a message: anywhere
        if process.poll() is None:
            process.kill()  # SIGKILL: no cleanup, no finally, nothing flushed
            kills += 1
        process.communicate(timeout=30)
    for _ in range(5):  # resume until the edition is finished and the next is skipped
        process = start_send(mail_project)
        out, err = process.communicate(timeout=60)
        assert process.returncode in (0, 1), out + err
        if "edition skipped — 0 new articles" in out:
            break
    else:
        raise AssertionError(f"the edition never finished:\n{out}{err}")
    received = Counter(parseaddr(str(m["To"]))[1] for m in handler.messages)
    listed = invoke(mail_project, "deliveries", "uncertain", "--digest", "weekly-en")
    uncertain = {
        word
        for line in listed.output.splitlines()
        if not line.startswith(" ")
        for word in line.split()
        if "@example.org" in word
    }
    duplicates = sorted(a for a, n in received.items() if n > 1)
    losses = sorted(audience - set(received) - uncertain)
    database = "sqlite" if state_url.startswith("sqlite") else "postgres"
    print(
        f"\n{database}: seed {seed}, {kills} kills, {len(received)} received, "
        f"{len(uncertain)} uncertain ({len(uncertain - set(received))} of them not received), "
        f"{len(duplicates)} duplicates, {len(losses)} losses, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert kills >= KILLS - 1, "the sends finished before they could be killed"
    assert duplicates == []
    assert losses == []
    assert set(received) <= audience and uncertain <= audience
    history = invoke(mail_project, "history", "--limit", "0").output
    assert "pending" not in history and "sending " not in history  # nothing left open
