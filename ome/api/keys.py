"""Typed keys of everything the app shares between startup, handlers and shutdown."""

from collections.abc import Callable

from aiohttp import web

from ome.api.health import Readiness
from ome.config import Settings
from ome.delivery import Outbox
from ome.engine import Exchange
from ome.executioner import ExecutionerClient
from ome.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
EXCHANGE = web.AppKey("exchange", Exchange)
EXECUTIONER = web.AppKey("executioner", ExecutionerClient)
OUTBOX = web.AppKey("outbox", Outbox)
# Unix seconds; a key of its own so that tests can move time.
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")
READINESS = web.AppKey("readiness", Readiness)
# None when metrics are turned off.
METRICS: web.AppKey[Metrics | None] = web.AppKey("metrics")
