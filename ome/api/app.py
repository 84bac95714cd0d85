"""The application factory: wires settings, middlewares, routes and resources, nothing more.

Resources live in `cleanup_ctx`, entered in this order and exited in reverse:
the executioner client, then `ome.api.lifecycle.CONTEXTS` (engine state with
its dump, the delivery task, the expiry sweep). aiohttp exits them after the
requests in flight have finished, which is when the dump must be written.
"""

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ome.api import protocol  # noqa: F401  (makes protocol-level errors JSON)
from ome.api.health import Phase, Readiness
from ome.api.keys import CLOCK, EXCHANGE, EXECUTIONER, METRICS, OUTBOX, READINESS, SETTINGS
from ome.api.lifecycle import CONTEXTS
from ome.api.middlewares import error_middleware, request_context
from ome.api.observe import observing
from ome.api.routes import add_routes
from ome.config import Settings
from ome.executioner import ExecutionerClient
from ome.metrics import Metrics, Sources

MAX_BODY = 1024**2


def _now() -> int:
    return int(time.time())


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], int] | None = None,
    executioner_timeout: float = 5.0,
) -> web.Application:
    """The OME as an aiohttp application; `clock` (unix seconds) lets tests move time."""
    metrics = Metrics() if settings.metrics else None
    readiness = Readiness()
    middlewares: list[Middleware] = [request_context, error_middleware]
    observe = observing(metrics, log_requests=settings.access_log)
    if observe is not None:
        middlewares.append(observe)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = clock or _now
    app[METRICS] = metrics
    app[READINESS] = readiness
    add_routes(app)

    def observe_executioner(call: str, seconds: float, failure: str | None) -> None:
        readiness.observe_executioner(failure)
        if metrics is not None:
            metrics.observe_executioner(call, seconds, failure)

    async def executioner(app: web.Application) -> AsyncIterator[None]:
        client = ExecutionerClient(
            settings.executioner_address, timeout=executioner_timeout, observer=observe_executioner
        )
        app[EXECUTIONER] = client
        yield
        await client.aclose()

    app.cleanup_ctx.append(executioner)
    app.cleanup_ctx.extend(CONTEXTS)
    app.cleanup_ctx.append(_serving)
    return app


async def _serving(app: web.Application) -> AsyncIterator[None]:
    """Entered last, once the state is restored: ready; left first, at shutdown: draining."""
    readiness = app[READINESS]
    metrics = app[METRICS]
    if metrics is not None:
        _watch(metrics.sources, app, readiness)
    readiness.phase = Phase.ready
    yield
    readiness.phase = Phase.draining


def _watch(sources: Sources, app: web.Application, readiness: Readiness) -> None:
    exchange, outbox = app[EXCHANGE], app[OUTBOX]
    sources.books = lambda: exchange.books.values()
    sources.outbox = lambda: (len(outbox), None)
    sources.deliveries = lambda: {"delivered": outbox.delivered, "rejected": outbox.rejected}
    sources.ready = lambda: readiness.ready
    sources.executioner_up = lambda: readiness.executioner_up
