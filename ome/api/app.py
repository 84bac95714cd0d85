"""The application factory: wires settings, middlewares, routes and resources, nothing more.

Resources live in `cleanup_ctx`, entered in this order and exited in reverse:
the executioner client, then `ome.api.lifecycle.CONTEXTS` (engine state with
its dump, the feed, the delivery task, the expiry sweep). The feed's sockets
are closed in `on_shutdown`, before aiohttp waits for the handlers in flight.
aiohttp exits the contexts after the requests in flight have finished, which
is when the dump must be written.
"""

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ome.access import InFlight
from ome.api import protocol  # noqa: F401  (makes protocol-level errors JSON)
from ome.api.feed import FeedLimits
from ome.api.health import Phase, Readiness
from ome.api.keys import (
    CLOCK,
    COMMANDS,
    EXECUTIONER,
    EXIT,
    FEED_LIMITS,
    IN_FLIGHT,
    METRICS,
    ON_FATAL,
    ORDER_DOMAIN,
    READINESS,
    SENDER,
    SETTINGS,
    Exit,
)
from ome.api.lifecycle import CONTEXTS, close_feed
from ome.api.middlewares import error_middleware, request_context
from ome.api.observe import observing
from ome.api.routes import add_routes
from ome.config import Settings
from ome.executioner import ExecutionerClient
from ome.metrics import Metrics
from ome.signing import Domain

MAX_BODY = 1024**2


def _now() -> int:
    return int(time.time())


def _ignore(exc: BaseException) -> None:
    pass


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], int] | None = None,
    executioner_timeout: float = 5.0,
    on_fatal: Callable[[BaseException], None] | None = None,
    feed_limits: FeedLimits | None = None,
) -> web.Application:
    """The OME as an aiohttp application; `clock` (unix seconds) lets tests move time.

    `on_fatal` is called when the service must stop (the journal failed); the
    entry point makes the process exit 1. `feed_limits` bounds the WebSocket
    feed (queue length, ping interval, pong timeout).
    """
    metrics = Metrics() if settings.metrics else None
    readiness = Readiness()
    middlewares: list[Middleware] = [request_context, error_middleware]
    observe = observing(metrics, log_requests=settings.access_log)
    if observe is not None:
        middlewares.append(observe)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = clock or _now
    app[ON_FATAL] = on_fatal or _ignore
    app[EXIT] = Exit()
    app[FEED_LIMITS] = feed_limits or FeedLimits()
    domain = settings.signature_domain
    app[ORDER_DOMAIN] = None if domain is None else Domain.of(*domain)
    app[IN_FLIGHT] = InFlight(settings.max_inflight_per_user)
    app[METRICS] = metrics
    app[READINESS] = readiness
    app.on_shutdown.append(close_feed)
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
    journal = app[COMMANDS].journal
    readiness.journal_ok = lambda: journal.failure is None
    metrics = app[METRICS]
    if metrics is not None:
        _watch(metrics, app, readiness)
    readiness.phase = Phase.ready
    yield
    readiness.phase = Phase.draining


def _watch(metrics: Metrics, app: web.Application, readiness: Readiness) -> None:
    """Attach the metrics where events happen and tell the scrape where levels are."""
    commands, sender = app[COMMANDS], app[SENDER]
    commands.sinks.append(metrics.sink)
    commands.journal.observer = metrics.observe_flush
    state, journal = commands.state, commands.journal
    sources = metrics.sources
    sources.books = lambda: state.exchange.books.values()

    def outbox() -> tuple[int, float | None]:
        first = state.outbox.first()
        return len(state.outbox), metrics.pending_since(first.key if first else None)

    sources.outbox = outbox
    sources.deliveries = lambda: {
        "delivered": sender.delivered,
        "rejected": sender.rejected,
        "retried": sender.retries,
    }
    sources.journal = lambda: (journal.records_written, journal.flushes)
    sources.ready = lambda: readiness.ready
    sources.executioner_up = lambda: readiness.executioner_up
