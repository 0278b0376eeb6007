"""JSON log lines (python-json-logger) with secrets removed before anything is written.

Every handler gets :class:`RedactingFilter`, which replaces the database
password and other configured secrets wherever they appear in a message, its
arguments or its extra fields, and :class:`RequestIdFilter`, which stamps any
line written while serving a request with that request's id (a slow-query
line, a retry, a traceback), so one grep finds everything about one call. One
access line per request is written by the web layer on the ``pgmcp.access``
logger.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from pythonjsonlogger.orjson import OrjsonFormatter

__all__ = ["ACCESS_LOGGER", "REDACTED", "JsonFormatter", "RedactingFilter", "RequestIdFilter", "configure_logging",
           "redact", "redactable"]

ACCESS_LOGGER = "pgmcp.access"
REDACTED = "[REDACTED]"

_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)))


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "asctime": "time"})
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def redactable(secrets: Iterable[str]) -> tuple[str, ...]:
    """The secrets worth looking for, longest first (so that one inside another goes with it); shorter
    than 4 characters would redact ordinary words."""
    return tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Removes known secrets from a record's message, arguments, extra fields and traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = redactable(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def _no_request() -> str | None:
    return None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to lines written while a request is being served (when not already set);
    ``lookup`` says which request the current thread serves (the web layer's, given at start-up)."""

    def __init__(self, lookup: Callable[[], str | None] = _no_request) -> None:
        super().__init__()
        self.lookup = lookup

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = self.lookup()
            if request_id is not None:
                record.request_id = request_id
        return True


def configure_logging(level: str, secrets: Iterable[str] = (),
                      request_id: Callable[[], str | None] = _no_request) -> None:
    """JSON lines on stderr at ``level`` for the root logger (and gunicorn's), secrets redacted;
    ``request_id`` names the request being served on the calling thread, if any."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter(request_id))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
