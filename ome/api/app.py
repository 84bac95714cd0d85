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

from ome.api import protocol  # noqa: F401  (makes protocol-level errors JSON)
from ome.api.feed import FeedLimits
from ome.api.keys import CLOCK, EXECUTIONER, EXIT, FEED_LIMITS, ON_FATAL, SETTINGS, Exit
from ome.api.lifecycle import CONTEXTS, close_feed
from ome.api.middlewares import error_middleware, request_context
from ome.api.routes import add_routes
from ome.config import Settings
from ome.executioner import ExecutionerClient

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
    app = web.Application(middlewares=[request_context, error_middleware], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = clock or _now
    app[ON_FATAL] = on_fatal or _ignore
    app[EXIT] = Exit()
    app[FEED_LIMITS] = feed_limits or FeedLimits()
    app.on_shutdown.append(close_feed)
    add_routes(app)

    async def executioner(app: web.Application) -> AsyncIterator[None]:
        client = ExecutionerClient(settings.executioner_address, timeout=executioner_timeout)
        app[EXECUTIONER] = client
        yield
        await client.aclose()

    app.cleanup_ctx.append(executioner)
    app.cleanup_ctx.extend(CONTEXTS)
    return app
