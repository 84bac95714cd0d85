"""The limit order book of one market, matched by price-time priority.

Layout: per side, a dict from a signed price key to its `PriceLevel` and a
binary heap of those keys. A bid rests under the key `-price` and an ask under
`price`, so on both sides the smallest key is the best price and one matching
loop serves both. Each level keeps its orders in a deque in time priority. A
book-wide dict indexes every resting order by id.

An order leaves its level lazily: a filled, cancelled or expired order gets
`amount_left = 0` ("dead") and is popped when it reaches the front of its
queue; a level packs its deque once dead entries outnumber live ones. So the
front of every queue is live, a queue never holds more dead entries than
live ones, and cancel is O(1) amortised. (A dict per level would allow
deletion by id, but keeps deleted slots that every later match would walk.)
An `Order` object therefore enters a book once: resubmit a new object.

The id index keeps a filled order (dead) until it is rebuilt: deleting the
makers' ids from a large dict while matching costs a few cache misses each,
which was a third of the time of an aggressive order. Two secondary indexes,
by user and by expiration, are append-only lists: an order that leaves the
book stays listed ("stale") until its list is next read or rebuilt.
Appending is several times cheaper than keeping a dict per list up to date
on every fill and cancel. An order leaves the book only by dying, so an
entry is live exactly when its order has amount left. `_compact` rebuilds
the three indexes when stale entries outnumber live orders; it is checked
once per `len(book)` rests, so the check is O(1) amortised and memory stays
O(live).

Price-heap entries are removed lazily too: a key whose level is gone stays in
the heap until it reaches the top, where it is popped. Invariant: the top of
each heap is a live level, so the best prices are read in O(1).

Rules (docs/API.md "Matching"): trades happen at the resting order's price;
a resting order of the taker's own user is skipped, so the book may end up
crossed; an order whose expiration is at or before `now` never trades and is
removed when the matching loop meets it or `sweep_expired` runs.

Results are plain tuples, not named tuples: building a named tuple costs as
much as resting an order in a whole index, and the hot path builds one per
submit and one per fill.
"""

from collections import deque
from collections.abc import Iterator
from enum import StrEnum
from heapq import heapify, heappop, heappush
from typing import TypeVar

from ome.engine.errors import (
    DuplicateOrder,
    MarketMismatch,
    NotOwner,
    OrderExpired,
    OrderNotFound,
)
from ome.engine.orders import Order, Side

# Stale entries may outnumber live ones by this factor (plus a constant)
# before an index is rebuilt.
_COMPACT_FACTOR = 2
_COMPACT_SLACK = 1024


class Status(StrEnum):
    ADD = "Add"
    PARTIAL_MATCH = "PartialMatch"
    FULL_MATCH = "FullMatch"


Fill = tuple[Order, Order, int, int, int, int]
"""One trade: (maker, taker, price, amount, maker_amount_left, taker_amount_left).

The amounts left are the maker's and the taker's right after this trade.
"""

SubmitResult = tuple[Status, list[Fill], list[Order]]
"""What `Book.submit` did: its status and the fills in the order they happened."""

_Key = TypeVar("_Key")
_ADD, _PARTIAL_MATCH, _FULL_MATCH = Status.ADD, Status.PARTIAL_MATCH, Status.FULL_MATCH
_BID = Side.Bid


class PriceLevel:
    """The orders at one price in time priority, with their total amount left.

    `queue` also holds `dead` entries (amount_left 0) until they reach its
    front or the level is packed; its first entry is always live.
    """

    __slots__ = ("dead", "price", "queue", "volume")

    def __init__(self, price: int) -> None:
        self.price = price
        self.queue: deque[Order] = deque()
        self.volume = 0
        self.dead = 0

    def orders(self) -> list[Order]:
        """The live orders, in time priority."""
        return [order for order in self.queue if order.amount_left]

    def __len__(self) -> int:
        return len(self.queue) - self.dead

    def bury(self, count: int) -> None:
        """Account for `count` more dead entries: pop the dead front, pack when they dominate."""
        queue = self.queue
        dead = self.dead + count
        # Dead entries are in the queue, so it is not empty while `dead` is not 0.
        while dead and not queue[0].amount_left:
            queue.popleft()
            dead -= 1
        if 2 * dead > len(queue):
            self.queue = deque(self.orders())
            dead = 0
        self.dead = dead


class Book:
    """One market's order book. Every mutating method is a deterministic step."""

    __slots__ = (
        "_by_user",
        "_compact_countdown",
        "_depth",
        "_expiring",
        "_expiry_heap",
        "_heaps",
        "_levels",
        "_orders",
        "ltp",
        "market",
        "seq",
    )

    def __init__(self, market: str) -> None:
        self.market = market
        self.ltp = 0
        # Commands applied to this book; kept by the command path, not the engine.
        self.seq = 0
        # Indexed by Side: [bids, asks].
        self._levels: tuple[dict[int, PriceLevel], dict[int, PriceLevel]] = ({}, {})
        self._heaps: tuple[list[int], list[int]] = ([], [])
        self._depth = [0, 0]
        self._orders: dict[str, Order] = {}
        # Append-only, with stale entries (see the module docstring).
        self._by_user: dict[str, list[Order]] = {}
        self._expiring: dict[int, list[Order]] = {}
        # Each key of _expiring exactly once.
        self._expiry_heap: list[int] = []
        self._compact_countdown = _COMPACT_SLACK

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._depth[0] + self._depth[1]

    def __contains__(self, order_id: object) -> bool:
        order = self._orders.get(order_id) if isinstance(order_id, str) else None
        return order is not None and order.amount_left > 0

    @property
    def best_bid(self) -> int | None:
        heap = self._heaps[0]
        return -heap[0] if heap else None

    @property
    def best_ask(self) -> int | None:
        heap = self._heaps[1]
        return heap[0] if heap else None

    @property
    def depth(self) -> tuple[int, int]:
        """Number of resting orders: (bids, asks)."""
        return self._depth[0], self._depth[1]

    @property
    def spread(self) -> int:
        """Best ask minus best bid; negative when crossed, 0 when a side is empty."""
        bids, asks = self._heaps
        if not bids or not asks:
            return 0
        return asks[0] + bids[0]

    @property
    def crossed(self) -> bool:
        bids, asks = self._heaps
        return bool(bids and asks) and -bids[0] >= asks[0]

    def get(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None or not order.amount_left:
            raise OrderNotFound(order_id)
        return order

    def orders_of(self, user: str) -> list[Order]:
        """The user's resting orders in the order they were accepted.

        Drops the user's stale entries on the way, so reading costs O(live)
        amortised: each stale entry is skipped at most once.
        """
        listed = self._by_user.get(user)
        if listed is None:
            return []
        live = self._live(listed)
        if live:
            self._by_user[user] = live
        else:
            del self._by_user[user]
        return list(live)

    def levels(self, side: Side) -> list[PriceLevel]:
        """The levels of one side, best first."""
        levels = self._levels[side]
        return [levels[key] for key in sorted(levels)]

    def in_arrival_order(self) -> Iterator[Order]:
        """Every resting order in the order the book accepted it.

        Resting again in this order rebuilds every level's queue and every index
        exactly, which is what snapshots rely on.
        """
        return (order for order in self._orders.values() if order.amount_left)

    def orders(self) -> Iterator[Order]:
        """Every resting order: bids best-first, then asks best-first, each level in queue order."""
        for side in Side:
            for level in self.levels(side):
                yield from level.orders()

    # ---------------------------------------------------------------- changes

    def check_entry(self, order: Order, now: int) -> None:
        """Raise what `submit` would refuse the order for, without touching the book."""
        if order.target_tracer != self.market:
            raise MarketMismatch(order.target_tracer, self.market)
        if order.expiration <= now:
            raise OrderExpired(order.expiration, now)
        if order.id in self:
            raise DuplicateOrder(order.id)

    def submit(self, order: Order, now: int) -> SubmitResult:
        """Match `order` against the other side, then rest whatever is left of it.

        `order.amount_left` is updated in place.
        """
        if order.target_tracer != self.market:
            raise MarketMismatch(order.target_tracer, self.market)
        if order.expiration <= now:
            raise OrderExpired(order.expiration, now)
        orders = self._orders
        existing = orders.get(order.id)
        if existing is not None:
            if existing.amount_left:
                raise DuplicateOrder(order.id)
            # A dead entry of the same id: drop it, or the dict would keep its
            # place and the new order would not be last in arrival order.
            del orders[order.id]
        if order.side is _BID:
            opposite = 1
            limit = order.price
        else:
            opposite = 0
            limit = -order.price
        heap = self._heaps[opposite]
        if heap and heap[0] <= limit:
            fills = self._take(order, opposite, limit, now)
            if not order.amount_left:
                return _FULL_MATCH, fills, []
            self._rest(order)
            return (_PARTIAL_MATCH if fills else _ADD), fills, []
        self._rest(order)
        return _ADD, [], []

    def restore(self, order: Order) -> None:
        """Rest an order as it stood in a snapshot, without matching or checks."""
        self._rest(order)

    def cancel(self, order_id: str, *, owner: str | None = None) -> Order:
        """Remove a resting order and return it (dead: its amount_left is now 0)."""
        order = self._orders.get(order_id)
        if order is None or not order.amount_left:
            raise OrderNotFound(order_id)
        if owner is not None and owner != order.user:
            raise NotOwner(order_id)
        del self._orders[order_id]
        side = order.side
        key = -order.price if side is _BID else order.price
        levels = self._levels[side]
        level = levels[key]
        level.volume -= order.amount_left
        order.amount_left = 0
        queue = level.queue
        # Comparing identities first spares reading the front order's memory
        # when the cancelled order is elsewhere in the queue, as it usually is.
        if queue[0] is order or 2 * (level.dead + 1) > len(queue):
            level.bury(1)
        else:
            level.dead += 1
        if not level.queue:
            del levels[key]
            heap = self._heaps[side]
            while heap and heap[0] not in levels:
                heappop(heap)
        self._depth[side] -= 1
        return order

    def expiry_due(self, now: int) -> bool:
        heap = self._expiry_heap
        return bool(heap) and heap[0] <= now

    def sweep_expired(self, now: int) -> list[Order]:
        """Remove every resting order with expiration <= now; O(1) when there is none."""
        heap = self._expiry_heap
        removed: list[Order] = []
        while heap and heap[0] <= now:
            for order in self._live(self._expiring.pop(heappop(heap))):
                removed.append(self.cancel(order.id))
        return removed

    # -------------------------------------------------------------- internals

    def _take(self, taker: Order, opposite: int, limit: int, now: int) -> list[Fill]:
        """Trade `taker` against the `opposite` side's levels with keys up to `limit`."""
        heap = self._heaps[opposite]
        levels = self._levels[opposite]
        remaining = taker.amount_left
        user = taker.user
        fills: list[Fill] = []
        passed_over: list[int] | None = None
        while heap:
            key = heap[0]
            if key > limit:
                break
            level = levels.get(key)
            if level is None:
                heappop(heap)
                continue
            price = level.price
            traded = 0
            died = 0
            for maker in level.queue:
                left = maker.amount_left
                if not left:
                    continue
                if maker.expiration <= now:
                    maker.amount_left = 0
                    level.volume -= left
                    died += 1
                    continue
                if maker.user == user:
                    continue
                if left <= remaining:
                    remaining -= left
                    traded += left
                    maker.amount_left = 0
                    died += 1
                    fills.append((maker, taker, price, left, 0, remaining))
                    if not remaining:
                        break
                else:
                    maker.amount_left = left - remaining
                    traded += remaining
                    fills.append((maker, taker, price, remaining, left - remaining, 0))
                    remaining = 0
                    break
            if traded:
                self.ltp = price
                level.volume -= traded
            if died:
                self._depth[opposite] -= died
                # bury(), inlined for the common case: the dead are the front.
                queue = level.queue
                dead = level.dead + died
                while dead and not queue[0].amount_left:
                    queue.popleft()
                    dead -= 1
                if not queue:
                    del levels[key]
                    heappop(heap)
                    if not remaining:
                        break
                    continue
                level.dead = dead
                if 2 * dead > len(queue):
                    level.bury(0)
            if not remaining:
                break
            # Only the taker's own orders are left at this level: look past it.
            if passed_over is None:
                passed_over = []
            passed_over.append(heappop(heap))
        if passed_over:
            for key in passed_over:
                heappush(heap, key)
        while heap and heap[0] not in levels:
            heappop(heap)
        taker.amount_left = remaining
        return fills

    def _rest(self, order: Order) -> None:
        oid = order.id
        price = order.price
        if order.side is _BID:
            side = 0
            key = -price
        else:
            side = 1
            key = price
        levels = self._levels[side]
        level = levels.get(key)
        if level is None:
            level = levels[key] = PriceLevel(price)
            heap = self._heaps[side]
            heappush(heap, key)
            if len(heap) > _COMPACT_FACTOR * len(levels) + _COMPACT_SLACK:
                heap[:] = levels
                heapify(heap)
        level.queue.append(order)
        level.volume += order.amount_left
        self._orders[oid] = order
        self._depth[side] += 1
        listed = self._by_user.get(order.user)
        if listed is None:
            self._by_user[order.user] = [order]
        else:
            listed.append(order)
        expiration = order.expiration
        listed = self._expiring.get(expiration)
        if listed is None:
            self._expiring[expiration] = [order]
            heappush(self._expiry_heap, expiration)
        else:
            listed.append(order)
        self._compact_countdown -= 1
        if not self._compact_countdown:
            self._compact()

    @staticmethod
    def _live(listed: list[Order]) -> list[Order]:
        """The entries of an append-only index that still rest, in the order they rested.

        An order leaves the book only by dying (amount_left 0), so that is the test.
        """
        return [order for order in listed if order.amount_left]

    def _compact(self) -> None:
        """Rebuild the lazily pruned indexes if stale entries outnumber live orders."""
        live = len(self)
        limit = _COMPACT_FACTOR * live + _COMPACT_SLACK
        if len(self._orders) > limit or sum(map(len, self._expiring.values())) > limit:
            self._orders = {oid: order for oid, order in self._orders.items() if order.amount_left}
            self._by_user = self._pruned(self._by_user)
            self._expiring = self._pruned(self._expiring)
            self._expiry_heap = list(self._expiring)
            heapify(self._expiry_heap)
        self._compact_countdown = live + _COMPACT_SLACK

    @classmethod
    def _pruned(cls, index: dict[_Key, list[Order]]) -> dict[_Key, list[Order]]:
        pruned = {}
        for key, listed in index.items():
            live = cls._live(listed)
            if live:
                pruned[key] = live
        return pruned

    # ------------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        """Raise AssertionError when any derived structure disagrees with the levels."""
        seen: dict[str, Order] = {}
        for side in Side:
            levels = self._levels[side]
            heap = self._heaps[side]
            count = 0
            for key, level in levels.items():
                assert level.queue and level.queue[0].amount_left, f"level {level.price} front"
                assert key == (-level.price if side is _BID else level.price)
                assert key in heap, f"level {level.price} missing from the heap"
                dead = [o for o in level.queue if not o.amount_left]
                assert len(dead) == level.dead, f"level {level.price} dead count"
                assert level.dead <= len(level), f"level {level.price} should have been packed"
                total = 0
                for order in level.orders():
                    assert order.side == side and order.price == level.price
                    assert order.target_tracer == self.market
                    assert 0 < order.amount_left <= order.amount
                    assert order.id not in seen, f"order {order.id} rests twice"
                    seen[order.id] = order
                    total += order.amount_left
                    count += 1
                assert total == level.volume, (
                    f"level {level.price} volume {level.volume} != {total}"
                )
            assert count == self._depth[side], f"depth {self._depth[side]} != {count}"
            if levels:
                assert heap[0] == min(levels), "heap top is not the best live level"
            else:
                assert not heap, "heap keeps keys of a side with no levels"
        live = {oid: o for oid, o in self._orders.items() if o.amount_left}
        assert live.keys() == seen.keys(), "id index disagrees with the levels"
        assert all(live[i] is o for i, o in seen.items())
        assert all(o.id == oid for oid, o in self._orders.items())
        assert self._compact_countdown > 0
        assert sorted(self._expiry_heap) == sorted(self._expiring), "expiry heap != buckets"
        for index, field in ((self._by_user, "user"), (self._expiring, "expiration")):
            for value, listed in index.items():
                assert all(getattr(o, field) == value for o in listed), f"{field} index"
            listed_ids = {o.id for listed in index.values() for o in self._live(listed)}
            assert listed_ids == seen.keys(), f"{field} index misses a resting order"
