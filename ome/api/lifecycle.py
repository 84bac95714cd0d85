"""What lives as long as the app: the state and its journal, the sender, the sweep, snapshots.

`CONTEXTS` are aiohttp cleanup contexts, appended by `create_app` after the
executioner client's. aiohttp enters them in order at startup and leaves them
in reverse at shutdown, after the server stopped accepting and the handlers
in flight finished (they wait for the journal, which is still writing then).

- `state`: recover (snapshot + journal replay), open the journal for
  appending, build the command path. On the way out: close the journal
  (everything appended is written), then, if the state is ahead of the
  dumpfile, write the final snapshot and delete the segments it covers.
  After a journal failure, or a start that failed, no snapshot is written:
  the durable prefix is what recovers.
- `journal_writer`: the group-commit task.
- `delivery`: the sender (a pair whose POST it interrupts stays pending).
- `expiry_sweep`: expires orders even when nothing trades.
- `periodic_snapshots`: a snapshot every `snapshot_interval` seconds.
- `full_books`: the cache of every book's encoded orders that the full-book
  reads join (`ome.fullbook`), built from the restored state in a worker
  thread, kept in step by a sink of the command path, and its orders encoded
  in the background in rounds of bounded work, so that the first read need not.
- `feed`: the WebSocket feed, a sink of the command path. Its sockets are
  closed by `close_feed`, an `on_shutdown` hook, before aiohttp waits for
  the handlers in flight (a feed connection is one), so open sockets do not
  hold up the dump.
"""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from ome.api.feed import Feed
from ome.api.keys import (
    CLOCK,
    COMMANDS,
    EXECUTIONER,
    EXIT,
    FEED,
    FEED_LIMITS,
    FULL_BOOKS,
    ON_FATAL,
    SENDER,
    SETTINGS,
)
from ome.commands import Commands, Limits
from ome.delivery import Sender
from ome.eventlog import log_events
from ome.fullbook import FullBooks
from ome.journal import Journal, JournalError, JournalUnavailable, SegmentFile, check_folder
from ome.persistence import check_writable, digest, write_dump
from ome.recovery import recover
from ome.snapshots import Snapshotter, delete_covered_segments
from ome.state import State

# Expiry is in whole seconds; sweeping twice a second removes an expired order
# within half a second of the second it expires in.
SWEEP_INTERVAL = 0.5

log = structlog.get_logger()
SNAPSHOTTER = web.AppKey("snapshotter", Snapshotter)


async def state(app: web.Application) -> AsyncIterator[None]:
    """Recover the state and open the journal; close it and snapshot on the way out."""
    settings = app[SETTINGS]
    dumpfile, journal_dir = settings.dumpfile, settings.journal_dir
    check_writable(dumpfile)
    # In a worker thread, so that the port answers probes while a large state loads.
    recovered = await asyncio.to_thread(recover, dumpfile, journal_dir, repair=True)
    check_folder(journal_dir)
    current = recovered.state
    if recovered.torn is not None:
        log.warning(
            "journal_torn_tail_cut",
            file=str(recovered.torn.path),
            offset=recovered.torn.offset,
            bytes_cut=recovered.torn.size - recovered.torn.offset,
        )
    file = SegmentFile(journal_dir, sync=settings.fsync == "always")
    if recovered.replayed:
        file.open(0, existing=recovered.last_segment)
    else:
        # Everything on disk is in the snapshot: start the journal afresh after it.
        delete_covered_segments(journal_dir, current.seq)
        file.open(current.seq + 1)
    if settings.fsync == "off":
        log.warning("fsync_off", consequence="acknowledged commands can be lost in a crash")
    journal = Journal(file, durable_seq=current.seq, on_failure=_on_journal_failure(app))
    limits = Limits(
        max_markets=settings.max_markets, max_orders_per_user=settings.max_orders_per_user
    )
    commands = Commands(current, journal, app[CLOCK], sinks=[log_events], limits=limits)
    app[COMMANDS] = commands
    # Hashing the whole state costs as much as loading it: only when asked for.
    digested = {"digest": digest(current)} if settings.start_digest else {}
    log.info(
        "state_recovered" if recovered.snapshot_found or recovered.replayed else "state_fresh",
        **_summary(current),
        snapshot_seq=recovered.snapshot_seq,
        replayed=recovered.replayed,
        **digested,
        dumpfile=str(dumpfile),
        journal_dir=str(journal_dir),
    )
    # Orders that expired while the service was down leave before anyone reads them.
    commands.expire()
    # Everything so far, a restored book above all, lives as long as the
    # process: keep the collector from walking it on every full collection
    # (0.4 s per pass with a million resting orders). The engine makes no
    # reference cycles, so nothing frozen is left for the collector to free.
    gc.freeze()
    try:
        yield
    finally:
        await _close(journal)
    if (
        journal.failure is None
        and app[EXIT].write_snapshot
        and current.seq > recovered.snapshot_seq
    ):
        write_dump(dumpfile, current)
        delete_covered_segments(journal_dir, current.seq)
        log.info("state_dumped", dumpfile=str(dumpfile), **_summary(current))


async def _close(journal: Journal) -> None:
    if journal.failure is not None:
        journal.abandon()
        return
    with contextlib.suppress(Exception):
        await journal.close()


def _on_journal_failure(app: web.Application) -> Callable[[BaseException], None]:
    def failed(exc: BaseException) -> None:
        log.critical("journal_failed", reason=str(exc), consequence="exiting; restart recovers")
        app[ON_FATAL](exc)

    return failed


def _summary(current: State) -> dict[str, Any]:
    books = current.exchange.books
    return {
        "seq": current.seq,
        "markets": len(books),
        "orders": sum(len(book) for book in books.values()),
        "pending_pairs": len(current.outbox),
    }


async def journal_writer(app: web.Application) -> AsyncIterator[None]:
    async with _background(app[COMMANDS].journal.run(), "journal"):
        yield


async def delivery(app: web.Application) -> AsyncIterator[None]:
    """Run the sender for as long as the app runs."""
    commands = app[COMMANDS]
    sender = Sender(commands, app[EXECUTIONER])
    app[SENDER] = sender
    commands.sinks.append(sender.notice)
    async with _background(sender.run(), "delivery"):
        yield
    log.info("delivery_stopped", delivered=sender.delivered, rejected=sender.rejected)


async def expiry_sweep(app: web.Application) -> AsyncIterator[None]:
    """Remove expired orders even when nothing trades."""
    async with _background(_sweep_forever(app[COMMANDS]), "expiry_sweep"):
        yield


async def periodic_snapshots(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    commands = app[COMMANDS]
    snapshotter = Snapshotter(commands.journal, settings.dumpfile, settings.journal_dir)
    app[SNAPSHOTTER] = snapshotter
    task = _snapshot_forever(snapshotter, commands, settings.snapshot_interval)
    async with _background(task, "snapshots"):
        yield


async def full_books(app: web.Application) -> AsyncIterator[None]:
    commands = app[COMMANDS]
    books = FullBooks(commands.state.exchange)
    # Nothing changes the state until the app serves; in a worker thread, as the restore,
    # so that the port answers probes meanwhile (a million orders take a second).
    await asyncio.to_thread(books.build)
    # What the build made lives long: out of the collector's way, as the state is.
    gc.freeze()
    app[FULL_BOOKS] = books
    commands.sinks.append(books.follow)
    async with _background(books.warm(), "full_books_warm"):
        yield
    commands.sinks.remove(books.follow)


async def feed(app: web.Application) -> AsyncIterator[None]:
    commands = app[COMMANDS]
    market_feed = Feed(commands, app[FEED_LIMITS])
    app[FEED] = market_feed
    commands.sinks.append(market_feed.publish)
    yield
    commands.sinks.remove(market_feed.publish)


async def close_feed(app: web.Application) -> None:
    """Close every feed socket at once; an `on_shutdown` hook."""
    market_feed = app.get(FEED)
    if market_feed is not None:
        await market_feed.close_all()


CONTEXTS: list[Callable[[web.Application], AsyncIterator[None]]] = [
    state,
    journal_writer,
    full_books,
    feed,
    delivery,
    expiry_sweep,
    periodic_snapshots,
]


async def _sweep_forever(commands: Commands) -> None:
    while True:
        try:
            commands.expire()
        except Exception:
            log.exception("expiry_sweep_failed")
        await asyncio.sleep(SWEEP_INTERVAL)


async def _snapshot_forever(snapshotter: Snapshotter, commands: Commands, interval: float) -> None:
    last = commands.state.seq
    while True:
        await asyncio.sleep(interval)
        if commands.state.seq == last:
            continue
        try:
            last = await snapshotter.take()
        except (OSError, JournalError, JournalUnavailable) as exc:
            log.error("snapshot_failed", reason=str(exc))
        else:
            log.info("snapshot_written", seq=last)


@contextlib.asynccontextmanager
async def _background(coroutine: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
