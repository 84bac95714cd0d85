"""What lives as long as the app: the engine state, the delivery task, the expiry sweep.

`CONTEXTS` are aiohttp cleanup contexts, appended by `create_app` after the
executioner client's. aiohttp enters them in order at startup and leaves them
in reverse at shutdown, after the server stopped accepting and the handlers
in flight finished. So on shutdown: the sweep stops, then the delivery task
is cancelled (a pair whose POST it interrupts stays pending), then the state
is dumped with exactly the pairs not yet delivered, then the client closes.
"""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from ome.api.keys import CLOCK, EXCHANGE, EXECUTIONER, OUTBOX, SETTINGS, START_FAILED
from ome.delivery import Outbox
from ome.engine import Exchange, Order
from ome.persistence import check_writable, read_dump, write_dump

# Expiry is in whole seconds; sweeping twice a second removes an expired order
# within half a second of the second it expires in.
SWEEP_INTERVAL = 0.5

log = structlog.get_logger()


async def state(app: web.Application) -> AsyncIterator[None]:
    """Restore the exchange and outbox from the dumpfile; dump them on the way out."""
    dumpfile = app[SETTINGS].dumpfile
    restored = read_dump(dumpfile)
    check_writable(dumpfile)
    if restored is None:
        exchange, pending = Exchange(), []
        log.info("state_fresh", dumpfile=str(dumpfile))
    else:
        exchange, pending = restored.exchange, restored.outbox
        expired = _log_expired(exchange.sweep_expired(app[CLOCK]()))
        log.info("state_restored", **_summary(dumpfile, exchange, len(pending)), expired=expired)
    outbox = Outbox(pending)
    app[EXCHANGE] = exchange
    app[OUTBOX] = outbox
    start_failed = app[START_FAILED] = asyncio.Event()
    # Everything so far, a restored book above all, lives as long as the
    # process: keep the collector from walking it on every full collection
    # (0.4 s per pass with a million resting orders). The engine makes no
    # reference cycles, so nothing frozen is left for the collector to free.
    gc.freeze()
    yield
    if start_failed.is_set():
        log.info("state_not_dumped", dumpfile=str(dumpfile), reason="the service never served")
        return
    write_dump(dumpfile, exchange, outbox.pending())
    log.info("state_dumped", **_summary(dumpfile, exchange, len(outbox)))


def _summary(dumpfile: Path, exchange: Exchange, pending_pairs: int) -> dict[str, Any]:
    """What a dumpfile holds, as log fields."""
    return {
        "dumpfile": str(dumpfile),
        "markets": len(exchange.books),
        "orders": sum(len(book) for book in exchange.books.values()),
        "pending_pairs": pending_pairs,
    }


async def delivery(app: web.Application) -> AsyncIterator[None]:
    """Run the outbox's sender for as long as the app runs."""
    outbox = app[OUTBOX]
    async with _background(outbox.run(app[EXECUTIONER]), "delivery"):
        yield
    log.info("delivery_stopped", delivered=outbox.delivered, rejected=outbox.rejected)


async def expiry_sweep(app: web.Application) -> AsyncIterator[None]:
    """Remove expired orders even when nothing trades."""
    async with _background(_sweep_forever(app[EXCHANGE], app[CLOCK]), "expiry_sweep"):
        yield


CONTEXTS: list[Callable[[web.Application], AsyncIterator[None]]] = [
    state,
    delivery,
    expiry_sweep,
]


async def _sweep_forever(exchange: Exchange, clock: Callable[[], int]) -> None:
    while True:
        try:
            _log_expired(exchange.sweep_expired(clock()))
        except Exception:
            log.exception("expiry_sweep_failed")
        await asyncio.sleep(SWEEP_INTERVAL)


def _log_expired(swept: dict[str, list[Order]]) -> int:
    count = 0
    for market, orders in swept.items():
        for order in orders:
            log.info("order_expired", market=market, order=order.id, user=order.user)
        count += len(orders)
    return count


@contextlib.asynccontextmanager
async def _background(coroutine: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
