"""Finding 3: uncertain deliveries are findable (by address or URL, with what to check)
and settleable; `history` shows every kind together, newest first, under a header, with
a working --limit (more of `history` in test_history.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from email.utils import parseaddr
from pathlib import Path

from pipeline.digest.sending import Digests
from pipeline.errors import TemporaryFailure
from pipeline.ledger import PENDING, SENT, UNCERTAIN, Ledger
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscribers import SubscriberStore
from tests.conftest import invoke


class Unsure:
    """A transport that loses the line during DATA for some addresses (the message may
    have arrived: uncertain) and takes the rest."""

    def __init__(self, unsure: set[str]):
        self.unsure, self.sent = unsure, []

    def send(self, message) -> None:
        address = parseaddr(str(message["To"]))[1]
        if address in self.unsure:
            raise TemporaryFailure("connection lost during DATA", unknown_outcome=True)
        self.sent.append(address)

    def close(self) -> None:
        pass


def ticking():
    """A ledger clock a second further on at every reading: a deterministic order."""
    moments = itertools.count()
    start = dt.datetime(2026, 11, 23, 3, 0)
    return lambda: start + dt.timedelta(seconds=next(moments))


def send_with(root: Path, unsure: set[str]):
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    transport = Unsure(unsure)
    ledger = Ledger(store.engine, clock=ticking())
    digests = Digests(settings, store, transport=lambda: transport, sleep=lambda s: None)
    digests.ledger = ledger  # (not the constructor: the same helper ran on the old code)
    report = digests.send("weekly-en")
    store.close()
    return report


def add_people(root: Path, count: int) -> list[str]:
    emails = [f"reader{n:03}@example.org" for n in range(count)]
    rows = "".join(f"{e},Reader {n},en,\n" for n, e in enumerate(emails))
    (root / "more.csv").write_text("email,name,language,topics\n" + rows, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "more.csv")).exit_code == 0
    return emails


def leave_post_uncertain(root: Path, article_id: str) -> None:
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    ledger = Ledger(store.engine, owner="crashed-host:1")
    assert ledger.claim("post:archive", article_id, "k-archive")
    ledger.settle("post:archive", article_id, UNCERTAIN, detail="the run stopped while sending")
    store.close()


def refs(output: str) -> dict[str, str]:
    """What each listed delivery is about → its reference."""
    return {m[2]: m[1] for m in re.finditer(r"^([0-9a-f]{8})  (.+?)  \(since", output, re.M)}


def test_every_uncertain_delivery_is_listed_with_what_to_check(mail_project, inbox):
    _, port = inbox
    people = add_people(mail_project, 60)
    report = send_with(mail_project, set(people[:55]))
    assert len(report.uncertain) == 55
    leave_post_uncertain(mail_project, "news/2024-06-05-world-environment-day-2024")
    listed = invoke(mail_project, "deliveries", "uncertain")
    assert listed.exit_code == 0, listed.output + listed.stderr
    assert "56 uncertain deliveries" in listed.stderr
    found = refs(listed.output)
    assert len(found) == 56 and len(set(found.values())) == 56
    edition = report.edition.id
    for address in people[:55]:  # every one, by address, not by subscriber id
        assert f"{edition} to {address}" in found
    text = listed.output
    assert re.search(
        r"check: ask reader000@example.org, or look in the SMTP server's log "
        rf"\(127\.0\.0\.1:{port}\) for Message-ID <[0-9a-f]{{32}}@news\.example\.org>",
        text,
    )
    url = "https://news.example.org/news/world-environment-day-2024/"
    assert f"post to archive: {url} (news/2024-06-05-world-environment-day-2024)" in found
    assert f"check: look in {mail_project / 'var' / 'posts.jsonl'} for a line with {url}" in text
    assert "why: connection lost during DATA" in text
    assert "why: the run stopped while sending" in text
    only_mail = refs(
        invoke(mail_project, "deliveries", "uncertain", "--digest", "weekly-en").output
    )
    assert len(only_mail) == 55
    by_edition = invoke(mail_project, "deliveries", "uncertain", "--digest", edition).output
    assert len(refs(by_edition)) == 55
    only_posts = refs(
        invoke(mail_project, "deliveries", "uncertain", "--channel", "archive").output
    )
    assert list(only_posts) == [
        f"post to archive: {url} (news/2024-06-05-world-environment-day-2024)"
    ]
    assert (
        refs(invoke(mail_project, "deliveries", "uncertain", "--digest", "monthly-zh").output) == {}
    )


def test_history_shows_every_kind_together_newest_first(mail_project):
    people = add_people(mail_project, 96)
    # Uncertain first, then many sent: the old history showed the newest 50 mail rows
    # and hid every problem among older ones.
    send_with(mail_project, set(people[:25]))
    assert invoke(mail_project, "post", "archive").exit_code == 0
    default = invoke(mail_project, "history")
    assert default.exit_code == 0
    for address in people[:25]:
        assert f"    {address} uncertain — connection lost during DATA" in default.output
    header, *top = [line for line in default.stdout.splitlines() if not line.startswith(" ")]
    assert header.split() == ["WHEN", "(UTC)", "KIND", "NAME", "STATE", "DETAIL"]
    assert len(top) == 14  # 13 posts and the edition, interleaved by time
    assert sum(line.split()[2:4] == ["post", "archive"] for line in top) == 13
    times = [line[:17] for line in top]
    assert times == sorted(times, reverse=True)
    everything = invoke(mail_project, "history", "--limit", "0").output
    assert everything == default.output  # 0: no limit (it used to show nothing)
    one = invoke(mail_project, "history", "--limit", "1").stdout
    assert len([line for line in one.splitlines() if not line.startswith(" ")]) == 2
    assert invoke(mail_project, "history", "--limit", "-1").exit_code == 2


def test_uncertain_deliveries_are_settled_as_sent_or_not_sent(mail_project, inbox):
    handler, _ = inbox
    report = send_with(mail_project, {"pema@example.org", "sonam@example.org"})
    edition = report.edition.id
    leave_post_uncertain(mail_project, "news/2024-06-05-world-environment-day-2024")
    found = refs(invoke(mail_project, "deliveries", "uncertain").output)
    pema = found[f"{edition} to pema@example.org"]
    settled = invoke(
        mail_project, "deliveries", "settle", pema[:5], "--as", "sent", "--note", "Pema has it"
    )
    assert settled.exit_code == 0, settled.output + settled.stderr
    assert f"{pema}  {edition} to pema@example.org: sent" in settled.output
    redo = invoke(
        mail_project, "deliveries", "settle", "--all", "--digest", "weekly-en", "--as", "not-sent"
    )
    assert redo.exit_code == 0 and "1 settled" in redo.stderr
    assert "sonam@example.org: not sent, will be resent" in redo.output
    settings = load_settings(mail_project / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    people = SubscriberStore(store.engine)
    rows = Ledger(store.engine).entries(f"mail:{edition}")
    assert rows[str(people.get("pema@example.org").id)].state == SENT
    assert (
        "settled by hand as sent (Pema has it)"
        in rows[str(people.get("pema@example.org").id)].detail
    )
    sonam = rows[str(people.get("sonam@example.org").id)]
    assert sonam.state == PENDING and sonam.next_attempt_at is None
    store.close()
    # The next send of the digest (nothing new to carry) sends Sonam the same edition.
    again = invoke(mail_project, "digest", "send", "weekly-en")
    assert again.exit_code == 0, again.output + again.stderr
    assert f"finished or retried earlier editions {edition}" in again.output
    assert [str(m["To"]) for m in handler.messages] == ["Sonam <sonam@example.org>"]
    history = invoke(mail_project, "history")
    assert re.search(rf"edition +{re.escape(edition)} +sent +3 sent", history.output)
    # The post, settled as not sent, goes out on the next `post`.
    post_ref = refs(invoke(mail_project, "deliveries", "uncertain").output)
    assert len(post_ref) == 1
    assert (
        invoke(
            mail_project, "deliveries", "settle", *post_ref.values(), "--as", "not-sent"
        ).exit_code
        == 0
    )
    posted = invoke(mail_project, "post", "archive")
    lines = (mail_project / "var" / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    assert "archive: 13 posted" in posted.output and len(lines) == 13
    assert sum("news/2024-06-05-world-environment-day-2024" in line for line in lines) == 1
    assert "0 uncertain deliveries" in invoke(mail_project, "deliveries", "uncertain").stderr


def test_settle_refuses_what_it_cannot_identify(mail_project):
    send_with(mail_project, {"pema@example.org", "anna@example.org"})
    assert invoke(mail_project, "deliveries", "settle", "--as", "sent").exit_code == 2
    found = refs(invoke(mail_project, "deliveries", "uncertain").output)
    some = next(iter(found.values()))
    both = invoke(mail_project, "deliveries", "settle", some, "--all", "--as", "sent")
    assert both.exit_code == 2
    filtered = invoke(mail_project, "deliveries", "settle", some, "--digest", "x", "--as", "sent")
    assert filtered.exit_code == 2
    unknown = invoke(mail_project, "deliveries", "settle", "0000000", "--as", "sent")
    assert unknown.exit_code == 1 and "0000000: is not uncertain" in unknown.stderr
    short = invoke(mail_project, "deliveries", "settle", some[:3], "--as", "sent")
    assert short.exit_code == 1 and "is not uncertain" in short.stderr
    twice = invoke(mail_project, "deliveries", "settle", some, some[:6], "--as", "sent")
    assert twice.exit_code == 0 and "1 settled" in twice.stderr
    again = invoke(mail_project, "deliveries", "settle", some, "--as", "sent")
    assert again.exit_code == 1  # no longer uncertain
    assert len(refs(invoke(mail_project, "deliveries", "uncertain").output)) == 1
