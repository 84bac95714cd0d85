"""What every request leaves behind besides its answer: request metrics and the access log line.

`observing` builds the innermost middleware, so that it sees the handler's
exception as well as its response: the status it records for an exception is
the one `error_middleware` will answer with (the same table), and a refused
order submission is counted by the error's class. The route label is the
route's template (`/book/{market}`), never the raw path; requests that match
no route count as `unmatched`. Requests refused by aiohttp's protocol layer
before routing (malformed HTTP) never reach a middleware and are not counted.

Recording happens after the handler returned, and any failure in it is
swallowed: a metric or a log line never changes an answer.
"""

import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from structlog.contextvars import get_contextvars

from ome.api.errors import status_of
from ome.api.middlewares import SUBMIT_ROUTE
from ome.metrics import Metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"

access_log = structlog.get_logger("ome.access")


def observing(metrics: Metrics | None, *, log_requests: bool) -> Middleware | None:
    """The middleware recording into `metrics` and/or logging each request; None for neither."""
    if metrics is None and not log_requests:
        return None

    def record(request: web.Request, status: int, started: float, exc: Exception | None) -> None:
        seconds = time.perf_counter() - started
        route = request.match_info.route
        template = route.resource.canonical if route.resource is not None else UNMATCHED
        if metrics is not None:
            metrics.observe_request(template, request.method, status, seconds)
            if exc is not None and route.name == SUBMIT_ROUTE:
                metrics.observe_refusal(exc)
        if log_requests:
            access_log.info(
                "http_request",
                method=request.method,
                route=template,
                status=status,
                latency_ms=round(seconds * 1000, 3),
                request_id=get_contextvars().get("request_id"),
            )

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception as exc:
            with contextlib.suppress(Exception):
                record(request, status_of(exc), started, exc)
            raise
        with contextlib.suppress(Exception):
            record(request, response.status, started, None)
        return response

    return observe
