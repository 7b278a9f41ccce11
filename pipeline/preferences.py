"""The preference page's logic: what a subscriber receives, and their changes to it.

Every digest's footer links to ``/preferences?token=…``, a token signed for the
subscriber and their address with its own purpose (``preferences``), so it opens no
other page and no other person's. The page (pipeline/web/preferences.py) shows, and
only a POST changes:

- the digests that reach them by language and topics, ticked for each they receive:
  unticking one leaves it exactly as its one-click unsubscribe link does, ticking one
  they left rejoins it;
- their language (the site's and digests' languages) and topics (``offered_topics``);
  topics no digest offers any more are kept, since the form never showed them;
- a pause of every digest for 1, 2, 4 or 8 weeks from the injected clock
  (``paused_until``; ``SubscriberStore.audience`` leaves them out until then);
- unsubscribing from everything (status ``unsubscribed``);
- for someone unsubscribed, bounced, pending or who left every digest: coming back,
  which sends a fresh confirmation email exactly as the sign-up form does; only the
  confirmation makes them active and rejoins what they left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from pipeline.clock import Clock, aware_utc, naive_utc, system_clock
from pipeline.settings import Settings
from pipeline.signup import SignUp, chosen_topics, offered_topics
from pipeline.subscribers import (
    ACTIVE,
    UNSUBSCRIBED,
    Subscriber,
    SubscriberStore,
    is_paused,
    reached_by,
)
from pipeline.tokens import PREFERENCES_TOKEN, InvalidToken, sign, verify

PAUSE_WEEKS = (1, 2, 4, 8)
KEEP, NO_PAUSE = "keep", "0"  # the pause menu's other values: as it is, not paused


def preferences_url(origin: str, secret: str, subscriber: Subscriber) -> str:
    """The subscriber's own preference page. No expiry, like the unsubscribe link beside
    it: the footer of a digest kept for a year must still work."""
    token = sign(secret, PREFERENCES_TOKEN, subscriber.id, "", email=subscriber.email)
    return f"{origin}/preferences?{urlencode({'token': token})}"


@dataclass(frozen=True)
class DigestChoice:
    name: str
    title: str
    receives: bool  # not left (by one-click or on this page)


@dataclass(frozen=True)
class View:
    """What the page shows; changes nothing to make."""

    subscriber: Subscriber
    digests: list[DigestChoice]
    languages: dict[str, str]  # code → name, the subscriber's own first if not offered
    topics: tuple[str, ...]  # offered
    paused_until: dt.datetime | None  # aware UTC, only while the pause lasts

    @property
    def active(self) -> bool:
        return self.subscriber.status == ACTIVE

    @property
    def receives_any(self) -> bool:
        return self.active and any(d.receives for d in self.digests)


@dataclass(frozen=True)
class Choices:
    lists: frozenset[str]  # the digests ticked
    language: str
    topics: tuple[str, ...]  # the offered topics ticked, spelt as configured
    pause: str = KEEP  # KEEP, NO_PAUSE or a number of weeks from PAUSE_WEEKS


@dataclass
class Rejected(Exception):
    """Posted values the form never offered: the ``i18n`` keys of what to say."""

    problems: list[str] = field(default_factory=list)


class Preferences:
    def __init__(
        self,
        settings: Settings,
        signup: SignUp,
        *,
        secret: str,
        languages: Mapping[str, str],
        clock: Clock = system_clock,
    ):
        self.settings = settings
        self.signup = signup
        self.subscribers: SubscriberStore = signup.subscribers
        self.secret = secret
        self.languages = dict(languages)
        self.topics = offered_topics(settings)
        self.clock = clock

    def check(self, token: str) -> Subscriber:
        """The subscriber a genuine preference link is for; InvalidToken if not."""
        claims = verify(self.secret, token, PREFERENCES_TOKEN, now=self.clock().timestamp())
        found = self.subscribers.get_by_id(claims.subscriber_id)
        if found is None or not claims.is_for(found.email):
            raise InvalidToken("the link is for an address we no longer know")
        return found

    def view(self, subscriber: Subscriber) -> View:
        left = self.subscribers.left(subscriber.id)
        digests = [
            DigestChoice(name, self.settings.digests[name].title, name not in left)
            for name in reached_by(subscriber, self.settings.digests)
        ]
        languages = dict(self.languages)
        if subscriber.language not in languages:  # e.g. imported as `zh`: kept unless changed
            languages = {subscriber.language: subscriber.language, **languages}
        paused = is_paused(subscriber, naive_utc(self.clock()))
        until = aware_utc(subscriber.paused_until) if paused and subscriber.paused_until else None
        return View(subscriber, digests, languages, self.topics, until)

    def parse(
        self,
        subscriber: Subscriber,
        *,
        lists: list[str],
        language: str,
        topics: list[str],
        pause: str,
    ) -> Choices:
        """The posted form as choices; Rejected naming each value the page never offered."""
        problems = []
        if any(name not in self.settings.digests for name in lists):
            problems.append("error_digests")
        if language not in self.languages and language != subscriber.language:
            problems.append("error_language")
        ticked = chosen_topics(self.topics, topics)
        if ticked is None:
            problems.append("error_topics")
        if pause not in (KEEP, NO_PAUSE, *map(str, PAUSE_WEEKS)):
            problems.append("error_pause")
        if problems:
            raise Rejected(problems)
        return Choices(frozenset(lists), language, tuple(ticked or ()), pause)

    def save(self, subscriber: Subscriber, choices: Choices) -> Subscriber:
        """Apply the choices; the subscriber as they are now."""
        for shown in self.view(subscriber).digests:  # the boxes the page showed
            if shown.name in choices.lists:
                self.subscribers.rejoin(subscriber.id, shown.name)
            else:
                self.subscribers.leave(subscriber.id, shown.name)
        offered = {t.lower() for t in self.topics}
        kept = [t for t in subscriber.topics if t.lower() not in offered]  # never shown
        until = subscriber.paused_until
        if choices.pause == NO_PAUSE:
            until = None
        elif choices.pause != KEEP:
            weeks = dt.timedelta(weeks=int(choices.pause))
            until = naive_utc(self.clock()) + weeks
        self.subscribers.set_preferences(
            subscriber.id,
            language=choices.language,
            topics=[*kept, *choices.topics],
            paused_until=until,
        )
        found = self.subscribers.get_by_id(subscriber.id)
        assert found is not None
        return found

    def leave_all(self, subscriber: Subscriber) -> None:
        when = self.clock().astimezone(dt.UTC).isoformat(timespec="seconds")
        detail = f"unsubscribed from everything on the preference page {when}"
        self.subscribers.set_status(subscriber.id, UNSUBSCRIBED, detail)

    def come_back(self, subscriber: Subscriber) -> bool:
        """Send a fresh confirmation email, as a sign-up does (its daily limit, and no
        mail to an address that complained); nothing else changes until it is followed."""
        return self.signup.request(
            subscriber.email,
            name=subscriber.name,
            language=subscriber.language,
            topics=subscriber.topics,
        )
