"""Structured logging: JSON lines for journald, readable lines on a terminal,
stdlib loggers (paho, pymodbus, asyncio) routed through the same pipeline,
and no secret in any line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Field names whose values are never printed, whatever they hold.
_SECRET_NAME = re.compile(
    r"(^|_)(key|aes_key|password|passwd|secret|token|signing_key)s?$"
)
REDACTED = "<redacted>"


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Blank out any field named like a secret, and pydantic secret values."""
    for name, value in list(event.items()):
        if _SECRET_NAME.search(name) or type(value).__name__ in (
            "SecretStr",
            "SecretBytes",
        ):
            event[name] = REDACTED
    return event


def configure(
    *, json: bool | None = None, level: str = "INFO", cache: bool = True
) -> None:
    """Set up structlog and the stdlib root logger once, at program start."""
    if json is None:
        json = not sys.stderr.isatty()

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any
    if json:
        # Plain tracebacks only: rich ones print local variables, and those
        # can hold AES keys.
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.plain_traceback,
        )

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that chatter at INFO about every frame.
    for noisy in ("pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
