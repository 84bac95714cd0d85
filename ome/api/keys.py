"""Typed keys of everything the app shares between startup, handlers and shutdown."""

from collections.abc import Callable

from aiohttp import web

from ome.access import InFlight
from ome.config import Settings
from ome.delivery import Outbox
from ome.engine import Exchange
from ome.executioner import ExecutionerClient
from ome.signing import Domain

SETTINGS = web.AppKey("settings", Settings)
EXCHANGE = web.AppKey("exchange", Exchange)
EXECUTIONER = web.AppKey("executioner", ExecutionerClient)
OUTBOX = web.AppKey("outbox", Outbox)
# Unix seconds; a key of its own so that tests can move time.
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")
# The domain order signatures are verified on; None when they are left to the executioner.
ORDER_DOMAIN: web.AppKey[Domain | None] = web.AppKey("order_domain")
IN_FLIGHT = web.AppKey("in_flight", InFlight)
