"""Typed keys of everything the app shares between startup, handlers and shutdown."""

import asyncio
from collections.abc import Callable

from aiohttp import web

from ome.config import Settings
from ome.delivery import Outbox
from ome.engine import Exchange
from ome.executioner import ExecutionerClient

SETTINGS = web.AppKey("settings", Settings)
EXCHANGE = web.AppKey("exchange", Exchange)
EXECUTIONER = web.AppKey("executioner", ExecutionerClient)
OUTBOX = web.AppKey("outbox", Outbox)
# Unix seconds; a key of its own so that tests can move time.
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")
# Set by `__main__` when the port cannot be bound: the state served nobody, so
# the dumpfile it came from is left exactly as it was.
START_FAILED = web.AppKey("start_failed", asyncio.Event)
