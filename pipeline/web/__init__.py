"""The web endpoints of `pipeline serve`: one-click unsubscribe, double opt-in sign-up,
the digest archive and the feed files (see ``app``)."""
