"""Typed keys of everything the app shares between startup, handlers and shutdown."""

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ome.access import InFlight
from ome.api.feed import Feed, FeedLimits
from ome.api.health import Readiness
from ome.commands import Commands
from ome.config import Settings
from ome.delivery import Sender
from ome.executioner import ExecutionerClient
from ome.fullbook import FullBooks
from ome.metrics import Metrics
from ome.signing import Domain

SETTINGS = web.AppKey("settings", Settings)
COMMANDS = web.AppKey("commands", Commands)
EXECUTIONER = web.AppKey("executioner", ExecutionerClient)
SENDER = web.AppKey("sender", Sender)
FEED = web.AppKey("feed", Feed)
FEED_LIMITS = web.AppKey("feed_limits", FeedLimits)
FULL_BOOKS = web.AppKey("full_books", FullBooks)
# Unix seconds; a key of its own so that tests can move time.
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")
# Called when the service can no longer go on (the journal failed): the
# process must stop without writing a snapshot and exit 1.
ON_FATAL: web.AppKey[Callable[[BaseException], None]] = web.AppKey("on_fatal")


@dataclass(slots=True)
class Exit:
    """How the app leaves. A start that failed after the state was restored writes no
    snapshot: the dumpfile stays byte for byte as it was (the journal has everything)."""

    write_snapshot: bool = True


EXIT = web.AppKey("exit", Exit)
# The domain order signatures are verified on; None when they are left to the executioner.
ORDER_DOMAIN: web.AppKey[Domain | None] = web.AppKey("order_domain")
IN_FLIGHT = web.AppKey("in_flight", InFlight)
READINESS = web.AppKey("readiness", Readiness)
# None when metrics are turned off.
METRICS: web.AppKey[Metrics | None] = web.AppKey("metrics")
