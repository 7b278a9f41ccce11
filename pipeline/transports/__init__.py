"""The built-in mail transports beside the outbox (``pipeline.mailer``): SMTP (``smtp``)
and the providers' HTTP APIs (Amazon SES, Mailgun).

Each registers as a ``pipeline.transports`` entry point and sends exactly the bytes of
``pipeline.mailer.wire_bytes`` (signed by ``sign`` when given), so List-Unsubscribe and a
DKIM signature reach the recipient as written. Outcomes map onto the same errors as
SMTP's (see ``pipeline.transports.smtp``), so the ledger's guarantees hold per message: a
request that may have arrived is never sent again.
"""
