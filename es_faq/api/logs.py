"""Structured logs: one JSON object per line on stderr, for the app and for gunicorn alike."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, pid, the record's `extra` fields, and exc_info as text."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage(),
               "pid": record.process}
        out.update((k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        # ASCII only: a line stays valid JSON and writable whatever bytes a client put in a path.
        return json.dumps(out, ensure_ascii=True, default=str)


def logging_config(level: str = "INFO") -> dict:
    """A dictConfig for gunicorn's `logconfig_dict`: everything to stderr as JSON lines.

    The app writes one line per request (with its request id), so gunicorn's access log is off."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            # One warning per failed connection attempt would bury the request lines during an
            # outage; each failed request is logged once, with its error code, by the app.
            "elastic_transport": {"level": "ERROR"},
        },
    }
