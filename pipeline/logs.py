"""Log lines for ``pipeline serve``: one line per event, readable by a person, or JSON
(``--log-format json``) for log shippers.

Code logs an event name and its fields: ``log.info("run finished", extra=event(
"run.finished", schedule="check-news", outcome="ok"))``. Text shows
``2026-11-23 09:00:02+0545 INFO run finished schedule=check-news outcome=ok``; JSON
shows ``{"time": …, "level": "info", "event": "run.finished", "message": …, …}``.

Every line passes through ``RedactingFilter`` first: secrets of the loaded settings
(``pipeline.redact.install``), URL credentials and bearer tokens are masked in the
message, its fields and any traceback, whatever logger the record came from.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, TextIO

from pipeline import redact

LOGGER = "pipeline"


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler writes it. It rewrites the record in
    place (message formatted, arguments dropped, traceback rendered to text), so every
    handler after it sees the clean version. Attached to handlers, not loggers: a
    logger's filters do not apply to records its children propagate to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        clean = redact.current()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it; keep the raw text
            message = str(record.msg)
        record.msg, record.args = clean(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: clean(v) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = clean(_FORMATTER.formatException(record.exc_info))
            record.exc_info = None  # only the cleaned text may be shown now
        elif record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = clean(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
_FILTER = RedactingFilter()


def guard(handler: logging.Handler) -> logging.Handler:
    """``handler`` with the redacting filter (once)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(_FILTER)
    return handler


def guard_handlers() -> None:
    """Put the redacting filter on every handler that exists: the pipeline's, the root
    logger's, and Python's last-resort handler (which prints warnings to stderr when
    logging was never configured, as in ``pipeline post``)."""
    for name in (LOGGER, None):
        for handler in logging.getLogger(name).handlers:
            guard(handler)
    if logging.lastResort is not None:
        guard(logging.lastResort)


def event(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, "fields": fields}


def _when(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        parts = [_when(record), record.levelname, record.getMessage()]
        parts += [f"{k}={_quoted(v)}" for k, v in fields.items() if v is not None]
        line = " ".join(parts)
        trace = _trace(self, record)
        return f"{line}\n{trace}" if trace else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": _when(record),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", record.name),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        trace = _trace(self, record)
        if trace:
            document["error"] = trace
        return json.dumps(document, ensure_ascii=False, default=str)


def _trace(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The traceback: as the redacting filter left it, else formatted here."""
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else ""


def _quoted(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


def configure(log_format: str, stream: TextIO, level: int = logging.INFO) -> logging.Logger:
    """Send the pipeline's log to ``stream`` in ``log_format`` (text or json)."""
    handler = guard(logging.StreamHandler(stream))
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # APScheduler's own chatter ("Added job…") would break the one-line-per-event log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return logger
