"""The full-book answers (`GET /book/{market}`, `.../order`) as joins of cached bytes.

Why a cache: encoding 200,000 orders takes a second, and even copying every
order's `amount_left` at the start of a read (to hold one moment while it is
encoded) touches every order: tens of milliseconds at 200,000 orders,
hundreds at 1,000,000, mostly cache misses, during which nothing else runs.

So each resting order's JSON (exactly `orjson.dumps(order.to_dict())`) is
kept, per price level in blocks of up to `BLOCK` orders in time priority,
joined by commas into one immutable bytes object per block. A sink of the
command path (`FullBooks.follow`) keeps the blocks in step with the books
from each command's events alone: an order that rested is appended to its
level's last block, a maker that traded part of its amount is marked for
encoding again, one that was filled, cancelled or expired is marked gone.
The sink only marks (O(1) per event, no encoding on the command path); a
block with marks is "dirty" until it is flushed: its new orders encoded,
its gone ones dropped, its bytes joined again.

A read (`FullBooks.capture`) flushes the dirty blocks in rounds of bounded
work with a turn of the event loop between, then, in one synchronous step,
flushes the few blocks dirtied since and captures: per level, the list of
its blocks' bytes objects, O(blocks) rather than O(orders). The orders of a
restored book are encoded the same way by a background task right after
startup (`warm`), so that the first read does not have to. Nothing captured changes
afterwards, so the answer is byte for byte `ome.wire.book_json` /
`orders_json` at the moment of the capture, whatever the book does while it
is written out. The capture also checks each level's order count against
the book; a cache that disagrees (or whose sink failed) is rebuilt from the
book, so a fault here costs time, never a wrong answer.

Memory, per resting order: its JSON (about 440 bytes for an order with a
65-byte signature), its share of the block's id tuple and size array (12
bytes) and one entry in the id index: about 500 bytes in all, which
bench/bigread.py measures. Block ids are tuples of strings, which the
garbage collector stops tracking, so a full collection does not walk them.
"""

import asyncio
from array import array
from itertools import repeat
from operator import attrgetter

import orjson
import structlog

from ome.commands import Applied, MarketCreated, OrderCancelled, OrderExpired, OrderRested, Trade
from ome.engine import Book, Exchange, Order, Side

# Orders per block: a capture touches one object per block, a flush re-joins one block.
BLOCK = 64
# Work per round of catching up (an order encoded or a block joined counts one): about a
# millisecond. A read captures once no more than this is left.
ROUND = 400

Captured = list[tuple[int, list[bytes]]]
"""One side's levels as they stood, best first: (price, its blocks' bytes in time priority)."""

log = structlog.get_logger("ome.fullbook")


class Inconsistent(Exception):
    """The cache does not hold what the book holds."""


class Block:
    """Up to `BLOCK` consecutive orders of one level: their JSON joined, and what changed since."""

    __slots__ = ("added", "changed", "ids", "joined", "price", "removed", "side", "sizes")

    def __init__(self, side: Side, price: int) -> None:
        self.side = side
        self.price = price
        # The orders in `joined`, in order, and the length of each one's JSON.
        self.ids: tuple[str, ...] = ()
        self.sizes = array("I")
        self.joined = b""
        # Since the last flush: orders that rested here, makers that traded part of their
        # amount (by id), and ids of orders that left the book.
        self.added: list[Order] = []
        self.changed: dict[str, Order] = {}
        self.removed: set[str] = set()

    def __len__(self) -> int:
        return len(self.ids)


_id = attrgetter("id")


def _encode(order: Order) -> bytes:
    return orjson.dumps(order.to_dict())


class BookCache:
    """The blocks of one market's book."""

    def __init__(self) -> None:
        # Per side: price -> the level's blocks in time priority.
        self.levels: tuple[dict[int, list[Block]], dict[int, list[Block]]] = ({}, {})
        # Every resting order's block, by id.
        self.blocks_of: dict[str, Block] = {}
        self.dirty: set[Block] = set()
        # Orders waiting in dirty blocks to be encoded.
        self.pending = 0
        # Set when the sink failed on this market: the next read rebuilds the cache.
        self.broken = False

    @classmethod
    def of(cls, book: Book) -> "BookCache":
        """The cache of `book` as it stands, every order still to be encoded; O(orders)."""
        cache = cls()
        blocks_of = cache.blocks_of
        # What `rested` would do order by order, a block at a time: the start builds
        # this for every restored order before the service is ready.
        for side in Side:
            levels = cache.levels[side]
            for level in book.levels(side):
                orders = level.orders()
                blocks = levels[level.price] = []
                for start in range(0, len(orders), BLOCK):
                    block = Block(side, level.price)
                    block.added = orders[start : start + BLOCK]
                    blocks.append(block)
                    blocks_of.update(zip(map(_id, block.added), repeat(block)))
                cache.dirty.update(blocks)
                cache.pending += len(orders)
        return cache

    # ------------------------------------------------------------ marks, from events

    def rested(self, order: Order) -> None:
        levels = self.levels[order.side]
        blocks = levels.get(order.price)
        if blocks is None:
            blocks = levels[order.price] = []
        block = blocks[-1] if blocks else None
        if block is None or len(block.ids) + len(block.added) >= BLOCK:
            block = Block(order.side, order.price)
            blocks.append(block)
        block.added.append(order)
        self.blocks_of[order.id] = block
        self.pending += 1
        self.dirty.add(block)

    def traded(self, order: Order) -> None:
        """`order` rests on with a smaller amount left."""
        block = self.blocks_of[order.id]
        block.changed[order.id] = order
        self.pending += 1
        self.dirty.add(block)

    def left(self, order: Order) -> None:
        """`order` left the book (filled, cancelled or expired)."""
        block = self.blocks_of.pop(order.id)
        block.removed.add(order.id)
        self.dirty.add(block)

    # ------------------------------------------------------------ flushing

    def _flush(self, block: Block) -> int:
        """Bring `block` up to date; the number of orders encoded."""
        removed, changed = block.removed, block.changed
        ids: list[str] = []
        sizes = array("I")
        parts: list[bytes] = []
        joined = block.joined
        encoded = 0
        start = 0
        for oid, size in zip(block.ids, block.sizes, strict=True):
            end = start + size
            if oid not in removed:
                order = changed.get(oid)
                if order is None:
                    data = joined[start:end]
                else:
                    data = _encode(order)
                    encoded += 1
                ids.append(oid)
                sizes.append(len(data))
                parts.append(data)
            # The comma after it.
            start = end + 1
        for order in block.added:
            # An order that left again before this flush is dead for good (amount 0).
            if order.amount_left:
                data = _encode(order)
                encoded += 1
                ids.append(order.id)
                sizes.append(len(data))
                parts.append(data)
        block.added = []
        changed.clear()
        removed.clear()
        block.ids = tuple(ids)
        block.sizes = sizes
        block.joined = b",".join(parts)
        if not ids:
            levels = self.levels[block.side]
            blocks = levels[block.price]
            blocks.remove(block)
            if not blocks:
                del levels[block.price]
        return encoded

    def behind(self) -> bool:
        """Whether more than a round of work waits."""
        return self.pending + len(self.dirty) > ROUND

    def flush_round(self) -> None:
        """Flush dirty blocks until about a round of work is done."""
        dirty = self.dirty
        work = 0
        while dirty and work < ROUND:
            encoded = self._flush(dirty.pop())
            self.pending -= encoded
            work += 1 + encoded
        if not dirty:
            # A maker that traded before its first flush was counted twice.
            self.pending = 0

    def flush(self) -> None:
        dirty = self.dirty
        while dirty:
            self._flush(dirty.pop())
        self.pending = 0

    # ------------------------------------------------------------ capture

    def capture(self, book: Book) -> tuple[Captured, Captured]:
        """Both sides as they stand now, best first; Inconsistent if they disagree with `book`."""
        self.flush()
        return self._side(book, Side.Bid), self._side(book, Side.Ask)

    def _side(self, book: Book, side: Side) -> Captured:
        ours = self.levels[side]
        captured = []
        for level in book.levels(side):
            blocks = ours.get(level.price)
            if blocks is None or sum(map(len, blocks)) != len(level):
                raise Inconsistent(f"{side.name} level {level.price}")
            captured.append((level.price, [block.joined for block in blocks]))
        if len(captured) != len(ours):
            raise Inconsistent(f"{side.name}: {len(ours)} levels cached, {len(captured)} in book")
        return captured


class FullBooks:
    """The caches of every book; `follow` is the command path's sink."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._caches: dict[str, BookCache] = {}

    def build(self) -> None:
        """A cache of every book as it stands; O(orders), run before any command is."""
        for market, book in self._exchange.books.items():
            self._caches[market] = BookCache.of(book)

    def follow(self, applied: Applied) -> None:
        caches = self._caches
        for event in applied.events:
            if isinstance(event, Trade):
                market = event.market
            elif isinstance(event, OrderRested | OrderCancelled | OrderExpired):
                market = event.order.target_tracer
            elif isinstance(event, MarketCreated):
                caches[event.market] = BookCache()
                continue
            else:
                continue
            cache = caches.get(market)
            if cache is None or cache.broken:
                continue
            try:
                if isinstance(event, Trade):
                    if event.maker_left:
                        cache.traded(event.maker)
                    else:
                        cache.left(event.maker)
                elif isinstance(event, OrderRested):
                    cache.rested(event.order)
                else:
                    cache.left(event.order)
            except Exception:
                # The next read rebuilds it from the book; the command path logs the failure.
                cache.broken = True
                raise

    async def warm(self) -> None:
        """Encode every order the build left to encode, in rounds, so that no read has to."""
        for market in list(self._caches):
            cache = self._caches[market]
            # Until caught up with the build; later changes wait for a read.
            while cache.behind():
                cache.flush_round()
                await asyncio.sleep(0)
                # A read may have rebuilt it meanwhile.
                cache = self._caches[market]

    def cache(self, book: Book) -> BookCache:
        """The cache of `book`, built from it if there is none or its sink failed."""
        cache = self._caches.get(book.market)
        if cache is None or cache.broken:
            log.warning("book_cache_rebuilt", market=book.market, orders=len(book))
            cache = self._caches[book.market] = BookCache.of(book)
        return cache

    async def capture(self, book: Book) -> tuple[Captured, Captured]:
        """Both sides of `book` at one moment (best first), once the cache has caught up."""
        cache = self.cache(book)
        while cache.behind():
            cache.flush_round()
            # Let every other request have its turn between rounds.
            await asyncio.sleep(0)
            cache = self.cache(book)
        return self.capture_now(book)

    def capture_now(self, book: Book) -> tuple[Captured, Captured]:
        """Both sides of `book` as they stand, whatever is left to flush flushed now."""
        cache = self.cache(book)
        try:
            return cache.capture(book)
        except Inconsistent as exc:
            log.error("book_cache_inconsistent", market=book.market, where=str(exc))
            # Rebuilt and captured in this one synchronous step: right by construction.
            self._caches[book.market] = cache = BookCache.of(book)
            return cache.capture(book)
