"""``POST /hooks/ses`` and ``POST /hooks/mailgun``: the providers' bounce and complaint
notifications, checked, turned into ``Feedback`` and given to the ``FeedbackRecorder``.

- ``/hooks/ses`` takes Amazon SNS messages (``pipeline.sns``): a forged or unsigned one,
  or one from a topic not in ``email.ses.notification_topics``, is 403; a subscription
  confirmation is confirmed by a GET of its SubscribeURL; a notification's bounces and
  complaints (``pipeline.ses_notifications``) are recorded.
- ``/hooks/mailgun`` takes Mailgun webhook events (``pipeline.mailgun_webhooks``): a bad,
  stale or replayed signature is 403.

A body that is not what the provider sends is 400, never 500. No recorder (the
endpoints are not wired), 503: the provider keeps the notification and tries again.
Either endpoint answers 404 when its provider has no section under ``email:``.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from pipeline import mailgun_webhooks, sns
from pipeline.clock import Clock
from pipeline.feedback import Feedback, FeedbackRecorder
from pipeline.ses_notifications import ses_feedback
from pipeline.settings.email import EmailSettings

log = logging.getLogger(__name__)


class ProviderHooks:
    """The two endpoints; ``fetch`` GETs SNS addresses (certificates, SubscribeURL)."""

    def __init__(
        self,
        email: EmailSettings | None,
        recorder: FeedbackRecorder | None,
        *,
        clock: Clock,
        fetch: sns.Fetch = sns.fetch_https,
    ):
        self.ses = email.ses if email else None
        self.mailgun = email.mailgun if email else None
        self.recorder = recorder
        self.clock = clock
        self.fetch = fetch
        self.verifier = sns.Verifier(fetch)
        key = self.mailgun.webhook_signing_key if self.mailgun else None
        self.signatures = mailgun_webhooks.Signatures(key, clock) if key else None

    async def ses_hook(self, request: Request) -> Response:
        if self.ses is None:
            return PlainTextResponse("No email.ses section: SES notifications are not taken.", 404)
        try:
            message = sns.parse(await request.body())
        except ValueError as exc:  # JSON, UTF-8 or shape
            return PlainTextResponse(f"Not an SNS message: {exc}", 400)
        try:
            await run_in_threadpool(self.verifier.verify, message, self.clock())
        except sns.Forged as exc:
            log.warning("refused an SNS message: %s", exc)
            return PlainTextResponse(f"Refused: {exc}.", 403)
        except sns.Unavailable as exc:
            return _Later(str(exc)).response()
        if message["TopicArn"] not in self.ses.notification_topics:
            log.warning("refused an SNS message of topic %s", message["TopicArn"][:200])
            return PlainTextResponse(
                "Refused: this topic is not in email.ses.notification_topics.", 403
            )
        if message["Type"] == sns.CONFIRMATION:
            return await self._confirm(message)
        if message["Type"] == sns.UNSUBSCRIBED:
            log.warning("SNS unsubscribed this endpoint from %s", message["TopicArn"])
            return PlainTextResponse("Noted.")
        try:
            reports = ses_feedback(message["Message"])
        except ValueError as exc:
            return PlainTextResponse(f"Not an SES notification: {exc}", 400)
        try:
            return await self._record(reports)
        except _Later as later:
            return later.response()

    async def _confirm(self, message: dict[str, str]) -> Response:
        try:
            await run_in_threadpool(sns.confirm, message, self.fetch)
        except sns.Forged as exc:
            return PlainTextResponse(f"Refused: {exc}.", 403)
        except Exception as exc:  # the confirmation GET failed: SNS sends it again
            return PlainTextResponse(f"Could not confirm: {type(exc).__name__}.", 503)
        log.info("confirmed the SNS subscription to %s", message["TopicArn"])
        return PlainTextResponse("Subscription confirmed.")

    async def mailgun_hook(self, request: Request) -> Response:
        if self.mailgun is None:
            return PlainTextResponse("No email.mailgun section: events are not taken.", 404)
        if self.signatures is None:
            return PlainTextResponse("Refused: email.mailgun.webhook_signing_key is not set.", 403)
        try:
            signature, event = mailgun_webhooks.parse(await request.body())
            with self.signatures.checked(signature):  # spent only if recorded
                reports = mailgun_webhooks.mailgun_feedback(event)
                return await self._record(reports)
        except ValueError as exc:
            return PlainTextResponse(f"Not a Mailgun event: {exc}", 400)
        except mailgun_webhooks.Refused as exc:
            log.warning("refused a Mailgun event: %s", exc)
            return PlainTextResponse(f"Refused: {exc}.", 403)
        except _Later as later:
            return later.response()

    async def _record(self, reports: list[Feedback]) -> Response:
        """Each report to the recorder; ``_Later`` when that cannot be done now."""
        if self.recorder is None:
            raise _Later("notifications are not recorded here yet")
        done: list[str] = []
        for report in reports:
            try:
                done.append(await run_in_threadpool(self.recorder.record, report))
            except Exception as exc:  # the store is down, say: the provider sends it again
                log.exception("could not record %s feedback for %s", report.source, report.address)
                raise _Later(f"could not record it ({type(exc).__name__})") from None
        return PlainTextResponse("\n".join(done) or "Nothing to record.")


class _Later(Exception):
    """Answer 503: the provider keeps the notification and delivers it again."""

    def response(self) -> Response:
        return PlainTextResponse(f"Try again later: {self}.", 503)
