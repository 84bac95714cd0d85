"""Structured logging: one event per line, decided once at startup.

Events are fixed snake_case names with key/value fields. When stdout is not a
terminal each event is one JSON object (encoded by orjson, written as bytes);
on a terminal it is structlog's console rendering. Calls below the configured
level cost one method lookup: `make_filtering_bound_logger` binds them to a
no-op, and loggers are cached after first use. Context variables (the request
id bound by the API middleware) are merged into every event. Records of the
standard `logging` module (aiohttp, asyncio) are forwarded into the same stream.

Logging never changes an outcome: a line that cannot be rendered or written
(a broken pipe, a closed stdout, a full disk, a value orjson cannot encode
such as a lone surrogate from a client's header) is dropped inside the
logger, so no log call can raise into the code that made it. A value orjson
refuses (an integer beyond 64 bits, a surrogate) is first retried with the
standard library's encoder, which escapes it, so the line is kept when it can be.
"""

import json as stdlib_json
import logging
import os
import sys
from typing import Any

import orjson
import structlog

from ome.config import LOG_LEVELS, parse_log_level

_NUMERIC = {name: getattr(logging, name.upper()) for name in LOG_LEVELS}


def _dumps(event: Any, **options: Any) -> bytes:
    try:
        return orjson.dumps(event, **options)
    except TypeError:  # orjson.JSONEncodeError included
        return stdlib_json.dumps(event, default=repr, ensure_ascii=True).encode("ascii")


def _never_raising(wrapper: type[Any]) -> type[Any]:
    """`wrapper` with its one path to the output guarded: rendering and writing."""
    proxy = wrapper._proxy_to_logger

    def _proxy_to_logger(self: Any, method_name: str, event: Any = None, **event_kw: Any) -> Any:
        try:
            return proxy(self, method_name, event, **event_kw)
        except Exception:
            # Nowhere left to report it: stdout is the log, and stderr is
            # most likely as broken.
            return None

    name = f"NeverRaising{wrapper.__name__}"
    return type(name, (wrapper,), {"_proxy_to_logger": _proxy_to_logger})


def silence_broken_stdout() -> None:
    """Point stdout at /dev/null if it can no longer be flushed.

    The interpreter flushes stdout on exit and turns a failure into exit
    status 120; a reader that went away must not change the exit status.
    """
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            return


class _ForwardHandler(logging.Handler):
    """Sends standard-library log records through structlog, so there is one format."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
            if record.exc_info:
                event["exc_info"] = record.exc_info
            structlog.get_logger().log(record.levelno, "library_log", **event)
        except Exception:
            self.handleError(record)


def configure_logging(level: str, *, json: bool | None = None) -> None:
    """Set up structlog for the whole process; `json=None` picks by whether stdout is a TTY."""
    numeric = _NUMERIC[parse_log_level(level)]
    if json is None:
        json = not sys.stdout.isatty()

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    logger_factory: Any
    processors: list[structlog.typing.Processor]
    if json:
        processors = [
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
        logger_factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer()]
        logger_factory = structlog.PrintLoggerFactory(sys.stdout)

    structlog.configure(
        processors=processors,
        wrapper_class=_never_raising(structlog.make_filtering_bound_logger(numeric)),
        logger_factory=logger_factory,
        context_class=dict,
        cache_logger_on_first_use=True,
    )

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ForwardHandler)]:
        root.removeHandler(handler)
    root.addHandler(_ForwardHandler())
    # The library loggers stay one notch quieter than ours: aiohttp's info-level
    # chatter is not part of the service's story.
    root.setLevel(max(numeric, logging.WARNING))
