"""structlog set-up: one JSON object per line, with bound context, and secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("secret", "token", "password", "signature", "authorization")


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # A last line of defence: a secret bound by mistake never reaches the log sink.
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def setup_logging(level: str = "info", json: bool = True) -> None:
    """Configure structlog (and stdlib logging of libraries) for the whole process."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=max(lvl, logging.WARNING), format="%(name)s %(message)s")
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(**context: Any) -> Any:
    """A logger with `context` bound (host_key, job_id, offset, ...).

    Lazy: a module-level logger picks up the configuration `setup_logging` makes later.
    """
    return structlog.get_logger(**context)
