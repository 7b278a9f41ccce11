"""Log lines for ``pipeline serve``: one line per event, readable by a person, or JSON
(``--log-format json``) for log shippers.

Code logs an event name and its fields: ``log.info("run finished", extra=event(
"run.finished", schedule="check-news", outcome="ok"))``. Text shows
``2026-11-23 09:00:02+0545 INFO run finished schedule=check-news outcome=ok``; JSON
shows ``{"time": …, "level": "info", "event": "run.finished", "message": …, …}``.

Every line passes through ``pipeline.redact.RedactingFilter`` first: secrets of the loaded settings
(``pipeline.redact.install``), URL credentials and bearer tokens are masked in the
message, its fields and any traceback, whatever logger the record came from.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, TextIO

from pipeline.redact import RedactingFilter, guard, guard_handlers

__all__ = ["RedactingFilter", "configure", "event", "guard", "guard_handlers"]

LOGGER = "pipeline"


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
