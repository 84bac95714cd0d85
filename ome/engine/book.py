"""The limit order book of one market, matched by price-time priority.

Layout: per side, a dict from a signed price key to its `PriceLevel` (O(1)
`level_at`) and a sortedcontainers `SortedList` of the same keys, so that the
levels are walked best-first in O(N) for the first N (`levels`,
`depth_levels`, `fillable`, and matching past a level it has to leave
standing). A bid rests under the key `-price` and an ask under `price`, so on
both sides the smallest key is the best price and one matching loop serves
both. The best key of each side is cached (`_best_bid`, `_best_ask`,
`_NO_LEVEL` when the side is empty): a submit that does not cross reads one int.

Matching takes the next best level from a binary heap of the keys (heapq, in
C), not from the sorted list: `SortedList` is pure Python, and adding or
popping a key costs about half a microsecond, which a fifth of all submits
paid when levels appear and empty at the touch. So the sorted list learns of
level changes late: they are noted in two sets (keys added, keys removed;
a level that appears and empties again before anyone reads cancels out) and
applied when something walks the sorted list, or when the notes outnumber
the levels. The heap holds every level's key, and the keys of levels that
emptied away from its top until they reach it (so its top is always the
best key), and is rebuilt when those outnumber the levels.
Each level keeps its orders in a list in time priority. A book-wide dict
indexes every resting order by id.

An order leaves its level lazily: a filled, cancelled or expired order gets
`amount_left = 0` ("dead") and is popped when it reaches the front of its
queue; a level packs its deque once dead entries outnumber live ones. So the
front of every queue is live, a queue never holds more dead entries than
live ones, and cancel is O(1) amortised. (A dict per level would allow
deletion by id, but keeps deleted slots that every later match would walk.)
An `Order` object therefore enters a book once: resubmit a new object.

Finished-order memory: the id of an order that was fully filled (maker or
taker), cancelled or expired is remembered with its expiration, and refused
(`OrderFinished`) while `now < expiration`, so a signed order cannot trade
twice. An entry is forgotten by the first `sweep_expired(now)` with
`now >= expiration`; until then it is part of the state (snapshots keep it).
Its memory is the id string (115 bytes), one dict entry and one bucket slot:
about 170 bytes an id when many ids share an expiration, 400 when each has
its own bucket (compiled build, tracemalloc, 1M ids; bench/engine.py prints it).

One dict, `_ids`, knows every id the book has seen and not forgotten: it
maps a resting order's id to the order, and a finished id to the bucket of
ids that share its expiration (`Remembered`; the compact memory, which the
sweep walks by expiration). So a submit
pays one lookup for the duplicate check, the finished check and the index
insert together (`setdefault`), and an order that finishes has its entry
replaced in place rather than deleted from one dict and added to another:
each of those operations on a dict of a million ids is a cache miss or two,
and they were most of the cost of a submit. `_ids` also holds one entry
that is not an id, under the key None (`_LAYOUT_KEY`): a dict whose keys
are all str is kept by CPython in a compact layout that stores no hashes, so
every key it probes is read for its hash, one more cache miss per probe; a
key of another type keeps the dict in its general layout, which stores them
(a submit costs about a seventh less).

What the matching loop may not pay for is deferred, with bounds. A maker
filled or expired while matching stays in `_ids` dead (amount_left 0) and
is listed in `_deaths`; `_settle` replaces them by their expirations on
every sweep, when the book empties, and when they outnumber the resting
orders (plus a constant). (A taker filled in full is remembered at once:
its entry is still in the cache.) Until then the dead order
itself is the memory of its id.

Two secondary indexes, by user and by expiration, are append-only lists: an
order that leaves the book stays listed ("stale") for a while. A user's
entry keeps the count of its resting orders (so `resting_count` is O(1)), is
dropped when that count reaches 0 and repacked when it holds more than four
entries per live order (plus a constant). The expiry buckets are repacked on
the same bound and cleared when the book empties. A repack reads every
listed order, a cache miss each: with four, rather than two, entries per
live order it reads 1.33 orders per order that died rather than 2 (B in
bench/engine.py 2% faster), for at most 24 more bytes per resting order. So
every index is O(live) at all times, and an empty book holds nothing but
its finished memory. An order leaves the book only by dying, so a listed
entry is live exactly when its order has amount left.

Rules (docs/API.md "Matching"): trades happen at the resting order's price;
a resting order of the taker's own user is skipped, so the book may end up
crossed; an order whose expiration is at or before `now` never trades and is
removed when the matching loop meets it (and reported in `submit`'s result)
or when `sweep_expired` runs.

Results are plain tuples, not named tuples: building a named tuple costs as
much as resting an order in a whole index, and the hot path builds one per
submit and one per fill. When nothing traded or expired they share one empty
list each, and a submit that only rests returns one shared result: callers
must never mutate a result.
"""

from collections.abc import Iterator
from enum import StrEnum
from heapq import heapify, heappop, heappush
from itertools import islice
from typing import Any, Final, NoReturn, Protocol

from mypy_extensions import mypyc_attr

# sortedcontainers ships no type hints; SortedKeys below declares what the book uses.
from sortedcontainers import SortedList  # type: ignore[import-untyped, unused-ignore]

from ome.engine.errors import (
    BookIntegrityError,
    DuplicateOrder,
    MarketMismatch,
    NotOwner,
    OrderExpired,
    OrderFinished,
    OrderNotFound,
)
from ome.engine.orders import Order, Side

# Deferred entries may outnumber live orders by this much (and the expiry
# index may hold four times the live orders plus this) before they are tidied away.
# Read once per book (tests lower them): compiled code reads a module global
# through a dict lookup, an instance attribute directly.
_SLACK = 1024
# A user's list is repacked when it holds more than four times its live orders plus this.
_USER_SLACK = 8


class Status(StrEnum):
    ADD = "Add"
    PARTIAL_MATCH = "PartialMatch"
    FULL_MATCH = "FullMatch"


Fill = tuple[Order, Order, int, int, int, int]
"""One trade: (maker, taker, price, amount, maker_amount_left, taker_amount_left).

The amounts left are the maker's and the taker's right after this trade.
"""

SubmitResult = tuple[Any, ...]
"""What `Book.submit` did: (status, fills, expired), a `Status`, the `Fill`s in the
order they happened, and the resting makers it removed because they had expired
(amount_left now 0), a `list[Order]`.

Typed as a tuple of any length rather than `tuple[Status, list[Fill],
list[Order]]`: the compiled build keeps a tuple of fixed length as a C struct
and builds a new tuple object at every return to interpreted code, where this
one stays an object, so a submit that only rests returns one shared constant
(`_ADDED`; workload B of bench/engine.py 3% faster). Callers annotate what they
unpack."""

# Final: the compiled build keeps these in C statics instead of the module's dict.
_ADD: Final = Status.ADD
_PARTIAL_MATCH: Final = Status.PARTIAL_MATCH
_FULL_MATCH: Final = Status.FULL_MATCH
_BID: Final = Side.Bid
# The cached best key of an empty side: above every key, so nothing crosses it.
_NO_LEVEL: Final = 1 << 256
# The one key of `_ids` that is not an id (see the module docstring).
_LAYOUT_KEY: Final = None
# Shared by every result without fills or expired makers: callers never mutate results.
_NO_FILLS: Final[list[Fill]] = []
_NO_ORDERS: Final[list[Order]] = []
# The result of every submit that only rests.
_ADDED: Final[SubmitResult] = (_ADD, _NO_FILLS, _NO_ORDERS)
# A level drops the popped entries before its head once there are more than this
# and they are half its list.
_TRIM: Final = 32


class SortedKeys(Protocol):
    """The part of sortedcontainers' `SortedList` of ints that the book uses."""

    def update(self, values: set[int]) -> None: ...
    def remove(self, value: int) -> None: ...
    def irange(
        self, minimum: int, maximum: None, inclusive: tuple[bool, bool]
    ) -> Iterator[int]: ...
    def __iter__(self) -> Iterator[int]: ...
    def __len__(self) -> int: ...


def _sorted_keys() -> SortedKeys:
    keys: SortedKeys = SortedList()
    return keys


# acyclic: see Order; a level holds only its orders and ints.
@mypyc_attr(acyclic=True)
class PriceLevel:
    """The orders at one price in time priority, with their total amount left.

    The queue is `queue[head:]`: popping its front moves `head` (entries before
    it are dead and are dropped once they are half the list). The queue also
    holds `dead` entries (amount_left 0) until they reach its front or the
    level is packed; its first entry is always live, and the level is empty
    when `head == len(queue)`. A list, not a deque: the compiled build indexes
    and appends to a list natively, where a deque costs a method call each.
    """

    __slots__ = ("dead", "head", "price", "queue", "volume")

    def __init__(self, price: int) -> None:
        self.price = price
        self.queue: list[Order] = []
        self.head = 0
        self.volume = 0
        self.dead = 0

    def orders(self) -> list[Order]:
        """The live orders, in time priority."""
        return [order for order in self.queue[self.head :] if order.amount_left]

    def __len__(self) -> int:
        return len(self.queue) - self.head - self.dead

    def bury(self, count: int) -> None:
        """Account for `count` more dead entries: pop the dead front, pack when they dominate."""
        queue = self.queue
        head = self.head
        dead = self.dead + count
        # Dead entries are in the queue, so it is not empty while `dead` is not 0.
        while dead and not queue[head].amount_left:
            head += 1
            dead -= 1
        if 2 * dead > len(queue) - head:
            self.queue = [order for order in queue[head:] if order.amount_left]
            head = dead = 0
        elif head > _TRIM and 2 * head > len(queue):
            del queue[:head]
            head = 0
        self.head = head
        self.dead = dead


# acyclic: see Order.
@mypyc_attr(acyclic=True)
class UserOrders:
    """One user's resting orders in acceptance order (with stale entries), and how many rest."""

    __slots__ = ("live", "orders")

    def __init__(self, order: Order) -> None:
        self.orders = [order]
        self.live = 1


# acyclic: see Order; a bucket holds only its list of id strings.
@mypyc_attr(acyclic=True)
class Remembered:
    """The finished ids that share one expiration: the entry in `_ids` of each of them.

    An id's entry is its bucket, not the expiration as an int: the compiled
    build would box a new int for every id it remembers (32 bytes and an
    allocation each), where this is one shared object.
    """

    __slots__ = ("expiration", "ids")

    def __init__(self, expiration: int) -> None:
        self.expiration = expiration
        self.ids: list[str] = []


class Book:
    """One market's order book. Every mutating method is a deterministic step.

    `seq` belongs to the command path (its count of commands that changed this
    book); the book only stores it, and snapshots keep it.
    """

    __slots__ = (
        "_asks",
        "_best_ask",
        "_best_bid",
        "_bids",
        "_by_user",
        "_deaths",
        "_deaths_due",
        "_expiring",
        "_expiry_entries",
        "_expiry_heap",
        "_finished_at",
        "_finished_count",
        "_finished_heap",
        "_heaps",
        "_ids",
        "_keys",
        "_keys_added",
        "_keys_removed",
        "_last_bucket",
        "_last_expiration",
        "_last_remembered",
        "_levels",
        "_slack",
        "_user_slack",
        "ltp",
        "market",
        "seq",
    )

    def __init__(self, market: str) -> None:
        self.market = market
        self.ltp = 0
        self.seq = 0
        self._slack = _SLACK
        self._user_slack = _USER_SLACK
        # Indexed by Side: [bids, asks].
        # Lists, not tuples: the compiled build boxes a tuple at every indexing.
        self._levels: list[dict[int, PriceLevel]] = [{}, {}]
        self._keys = [_sorted_keys(), _sorted_keys()]
        # Level changes the sorted keys have not been told of yet (see the module docstring).
        self._keys_added: list[set[int]] = [set(), set()]
        self._keys_removed: list[set[int]] = [set(), set()]
        self._heaps: list[list[int]] = [[], []]
        # Plain attributes, not a list: compiled, a list boxes every int stored in it.
        self._best_bid = _NO_LEVEL
        self._best_ask = _NO_LEVEL
        # Resting orders per side (plain attributes: compiled, a list would box them).
        self._bids = 0
        self._asks = 0
        # Every known id (see the module docstring): a resting order, a dead one
        # listed in _deaths, or the expiration of a finished id.
        self._ids: dict[str | None, Order | Remembered | None] = {_LAYOUT_KEY: None}
        self._deaths: list[Order] = []
        # The earliest expiration among _deaths (_NO_LEVEL when none), for expiry_due.
        self._deaths_due = _NO_LEVEL
        self._by_user: dict[str, UserOrders] = {}
        # Append-only buckets with stale entries; each key is in the heap exactly once.
        self._expiring: dict[int, list[Order]] = {}
        self._expiry_heap: list[int] = []
        self._expiry_entries = 0
        # The bucket of the last rested order's expiration (-1: none), which the
        # next order usually shares; forgotten whenever buckets are popped or rebuilt.
        self._last_expiration = -1
        self._last_bucket: list[Order] = []
        # Finished-order memory: how many ids _ids remembers, and their buckets by expiration.
        self._finished_count = 0
        self._finished_at: dict[int, Remembered] = {}
        # The bucket _remember used last, None once the sweep may have popped it.
        self._last_remembered: Remembered | None = None
        self._finished_heap: list[int] = []

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._bids + self._asks

    def __contains__(self, order_id: object) -> bool:
        entry = self._ids.get(order_id) if isinstance(order_id, str) else None
        return isinstance(entry, Order) and entry.amount_left > 0

    @property
    def best_bid(self) -> int | None:
        key = self._best_bid
        return None if key == _NO_LEVEL else -key

    @property
    def best_ask(self) -> int | None:
        key = self._best_ask
        return None if key == _NO_LEVEL else key

    @property
    def depth(self) -> tuple[int, int]:
        """Number of resting orders: (bids, asks)."""
        return self._bids, self._asks

    @property
    def spread(self) -> int:
        """Best ask minus best bid; negative when crossed, 0 when a side is empty."""
        bid, ask = self._best_bid, self._best_ask
        if bid == _NO_LEVEL or ask == _NO_LEVEL:
            return 0
        return ask + bid

    @property
    def crossed(self) -> bool:
        bid, ask = self._best_bid, self._best_ask
        return bid != _NO_LEVEL and ask != _NO_LEVEL and -bid >= ask

    def get(self, order_id: str) -> Order:
        entry = self._ids.get(order_id)
        if not isinstance(entry, Order) or not entry.amount_left:
            raise OrderNotFound(order_id)
        return entry

    def orders_of(self, user: str) -> list[Order]:
        """The user's resting orders in the order they were accepted."""
        listed = self._by_user.get(user)
        if listed is None:
            return []
        live = [order for order in listed.orders if order.amount_left]
        listed.orders = live
        return list(live)

    def resting_count(self, user: str) -> int:
        """How many orders `user` has resting in this book; O(1)."""
        listed = self._by_user.get(user)
        return 0 if listed is None else listed.live

    def levels(self, side: Side) -> list[PriceLevel]:
        """The levels of one side, best first; O(levels)."""
        levels = self._levels[side]
        return [levels[key] for key in self._sorted(side)]

    def depth_levels(self, side: Side, n: int) -> list[tuple[int, int, int]]:
        """The best `n` levels of one side: (price, total amount left, orders), best first; O(n)."""
        levels = self._levels[side]
        return [
            (level.price, level.volume, len(level))
            for level in (levels[key] for key in islice(self._sorted(side), max(n, 0)))
        ]

    def level_at(self, side: Side, price: int) -> tuple[int, int] | None:
        """(total amount left, orders) at one price of one side, None when nothing rests there."""
        level = self._levels[side].get(-price if side is _BID else price)
        return None if level is None else (level.volume, len(level))

    def in_arrival_order(self) -> Iterator[Order]:
        """Every resting order in the order the book accepted it.

        Resting again in this order rebuilds every level's queue and every index
        exactly, which is what snapshots rely on.
        """
        return (
            entry for entry in self._ids.values() if isinstance(entry, Order) and entry.amount_left
        )

    def orders(self) -> Iterator[Order]:
        """Every resting order: bids best-first, then asks best-first, each level in queue order."""
        for side in Side:
            for level in self.levels(side):
                yield from level.orders()

    def finished(self) -> list[tuple[str, int]]:
        """The finished-order memory: (id, expiration) of every remembered id, sorted by id."""
        remembered = [
            (oid, entry.expiration)
            for oid, entry in self._known()
            if isinstance(entry, Remembered) or not entry.amount_left
        ]
        return sorted(remembered)

    def _known(self) -> Iterator[tuple[str, Order | Remembered]]:
        """The entries of `_ids` that are ids, in the order they were added."""
        for oid, entry in self._ids.items():
            if oid is not None and entry is not None:
                yield oid, entry

    def is_finished(self, order_id: str, now: int) -> bool:
        """Whether `order_id` is remembered as finished and refused at `now`."""
        entry = self._ids.get(order_id)
        if isinstance(entry, Order):
            return not entry.amount_left and now < entry.expiration
        return isinstance(entry, Remembered) and now < entry.expiration

    def fillable(self, order: Order, now: int) -> int:
        """The amount `submit(order, now)` would trade right now, without changing anything.

        Walks the crossing levels best-first, passing over the user's own and
        expired orders as matching does; costs O(levels and orders walked).
        """
        if order.side is _BID:
            opposite = 1
            limit = order.price
        else:
            opposite = 0
            limit = -order.price
        levels = self._levels[opposite]
        wanted = order.amount_left
        user = order.user
        total = 0
        for key in self._sorted(opposite):
            if key > limit:
                break
            level = levels[key]
            queue = level.queue
            for at in range(level.head, len(queue)):
                maker = queue[at]
                left = maker.amount_left
                if left and maker.expiration > now and maker.user != user:
                    total += left
                    if total >= wanted:
                        return wanted
        return total

    # ---------------------------------------------------------------- changes

    def check_entry(self, order: Order, now: int) -> None:
        """Raise what `submit` would refuse the order for, without touching the book."""
        if order.target_tracer != self.market:
            raise MarketMismatch(order.target_tracer, self.market)
        if order.expiration <= now:
            raise OrderExpired(order.expiration, now)
        if order.id in self:
            raise DuplicateOrder(order.id)
        if self.is_finished(order.id, now):
            raise OrderFinished(order.id)

    def submit(self, order: Order, now: int) -> SubmitResult:
        """Match `order` against the other side, then rest whatever is left of it.

        `order.amount_left` is updated in place.
        """
        if order.target_tracer != self.market:
            raise MarketMismatch(order.target_tracer, self.market)
        if order.expiration <= now:
            raise OrderExpired(order.expiration, now)
        # Indexes the order unless its id is known: one lookup for both.
        ids = self._ids
        size = len(ids)
        known = ids.setdefault(order.id, order)
        if len(ids) == size:
            self._replace_known(order, known, now)
        if order.side is _BID:
            opposite = 1
            limit = order.price
        else:
            opposite = 0
            limit = -order.price
        if (self._best_ask if opposite else self._best_bid) <= limit:
            fills, expired = self._take(order, opposite, limit, now)
            if not order.amount_left:
                # Its entry in _ids was made by this submit and is still in the
                # cache: replaced now it costs little, settled later a cache miss.
                self._remember(order.id, order.expiration)
                self._tidy()
                return _FULL_MATCH, fills, expired
            self._rest(order)
            self._tidy()
            return (_PARTIAL_MATCH if fills else _ADD), fills, expired
        self._rest(order)
        return _ADDED

    def restore(self, order: Order) -> None:
        """Rest an order as it stood in a snapshot, without matching or checks."""
        self._ids[order.id] = order
        self._rest(order)

    def remember(self, order_id: str, expiration: int) -> None:
        """Add an id to the finished-order memory, as a snapshot recorded it."""
        self._remember(order_id, expiration)

    def cancel(self, order_id: str, *, owner: str | None = None) -> Order:
        """Remove a resting order and return it (dead: its amount_left is now 0).

        With `owner`, refuse (`NotOwner`, nothing changed) unless it is the order's user.
        """
        order = self._ids.get(order_id)
        if not isinstance(order, Order) or not order.amount_left:
            raise OrderNotFound(order_id)
        if owner is not None and owner != order.user:
            raise NotOwner(order_id)
        self._remove(order)
        self._remember(order_id, order.expiration)
        self._tidy()
        return order

    def expiry_due(self, now: int) -> bool:
        """Whether `sweep_expired(now)` would remove an order or forget a finished id."""
        orders, finished = self._expiry_heap, self._finished_heap
        return (
            bool((orders and orders[0] <= now) or (finished and finished[0] <= now))
            or self._deaths_due <= now
        )

    def sweep_expired(self, now: int) -> list[Order]:
        """Remove every resting order with expiration <= now, and forget finished ids
        that expired; O(1) when there is nothing to do."""
        if self._deaths:
            self._settle()
        heap = self._expiry_heap
        removed: list[Order] = []
        if heap and heap[0] <= now:
            self._last_expiration = -1
        while heap and heap[0] <= now:
            bucket = self._expiring.pop(heappop(heap))
            self._expiry_entries -= len(bucket)
            for order in bucket:
                if order.amount_left:
                    self._remove(order)
                    del self._ids[order.id]
                    removed.append(order)
        heap = self._finished_heap
        ids = self._ids
        while heap and heap[0] <= now:
            remembered = self._finished_at.pop(heappop(heap))
            self._last_remembered = None
            for oid in remembered.ids:
                # Not when the id was taken again since: its entry is an order or another bucket.
                if ids.get(oid) is remembered:
                    del ids[oid]
                    self._finished_count -= 1
        if removed:
            self._tidy()
        return removed

    # -------------------------------------------------------------- internals

    def _take(
        self, taker: Order, opposite: int, limit: int, now: int
    ) -> tuple[list[Fill], list[Order]]:
        """Trade `taker` against the `opposite` side's levels with keys up to `limit`."""
        levels = self._levels[opposite]
        deaths = self._deaths
        due = self._deaths_due
        remaining = taker.amount_left
        user = taker.user
        fills: list[Fill] = _NO_FILLS
        expired: list[Order] = _NO_ORDERS
        # Until a level is left standing (only the taker's own orders are left
        # there), each emptied level was the best and the heap's top is the
        # next; after one, the levels behind it are walked in the sorted list.
        walk: Iterator[int] | None = None
        key = self._best_of(opposite)
        while key <= limit:
            # Boxed once for the dict and the notes (see _rest).
            boxed: Any = key
            level = levels[boxed]
            price = level.price
            traded = 0
            died = 0
            queue = level.queue
            for at in range(level.head, len(queue)):
                maker = queue[at]
                left = maker.amount_left
                if not left:
                    continue
                if maker.expiration <= now:
                    maker.amount_left = 0
                    level.volume -= left
                    died += 1
                    if expired is _NO_ORDERS:
                        expired = []
                    expired.append(maker)
                    deaths.append(maker)
                    if maker.expiration < due:
                        due = maker.expiration
                    self._leaves(maker.user)
                    continue
                if maker.user == user:
                    continue
                if fills is _NO_FILLS:
                    fills = []
                if left <= remaining:
                    remaining -= left
                    traded += left
                    maker.amount_left = 0
                    died += 1
                    fills.append((maker, taker, price, left, 0, remaining))
                    deaths.append(maker)
                    if maker.expiration < due:
                        due = maker.expiration
                    self._leaves(maker.user)
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
            gone = False
            if died:
                if opposite:
                    self._asks -= died
                else:
                    self._bids -= died
                # bury(), inlined for the common case: the dead are the front.
                head = level.head
                dead = level.dead + died
                while dead and not queue[head].amount_left:
                    head += 1
                    dead -= 1
                if head < len(queue):
                    level.head = head
                    level.dead = dead
                    if 2 * dead > len(queue) - head or (head > _TRIM and 2 * head > len(queue)):
                        level.bury(0)
                else:
                    del levels[boxed]
                    self._level_gone(opposite, boxed)
                    gone = True
                    if walk is None:
                        self._next_best(opposite)
            if not remaining:
                break
            if walk is None:
                if gone:
                    key = self._best_of(opposite)
                    continue
                walk = self._sorted(opposite).irange(key, None, (False, False))
            key = next(walk, _NO_LEVEL)
        if walk is not None:
            # Notes were not applied during the walk; the sorted list may change now.
            self._bound_notes(opposite)
        self._deaths_due = due
        taker.amount_left = remaining
        return fills, expired

    def _rest(self, order: Order) -> None:
        price = order.price
        # Any, not int: the key is boxed here once. As an int, the compiled build
        # would allocate a new int object for each dict, set and heap it meets.
        key: Any
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
            self._level_added(side, key)
        level.queue.append(order)
        level.volume += order.amount_left
        if side:
            self._asks += 1
        else:
            self._bids += 1
        listed = self._by_user.get(order.user)
        if listed is None:
            self._by_user[order.user] = UserOrders(order)
        else:
            listed.orders.append(order)
            listed.live += 1
        expiration = order.expiration
        if expiration == self._last_expiration:
            self._last_bucket.append(order)
        else:
            bucket = self._expiring.get(expiration)
            if bucket is None:
                bucket = self._expiring[expiration] = [order]
                heappush(self._expiry_heap, expiration)
            else:
                bucket.append(order)
            self._last_expiration = expiration
            self._last_bucket = bucket
        self._expiry_entries += 1

    def _remove(self, order: Order) -> None:
        """Take a resting order out of its level and the user index; it is dead after.

        Its entry in `_ids` is the caller's to replace or delete.
        """
        side = order.side
        native_key = -order.price if side is _BID else order.price
        # Boxed once for the dict and the notes (see _rest).
        key: Any = native_key
        levels = self._levels[side]
        level = levels[key]
        level.volume -= order.amount_left
        order.amount_left = 0
        queue = level.queue
        # Comparing identities first spares reading the front order's memory
        # when the removed order is elsewhere in the queue, as it usually is.
        if queue[level.head] is order or 2 * (level.dead + 1) > len(queue) - level.head:
            level.bury(1)
        else:
            level.dead += 1
        if level.head == len(level.queue):
            del levels[key]
            self._level_gone(side, key)
            if native_key == self._best_of(side):
                self._next_best(side)
            self._bound_notes(side)
        if side:
            self._asks -= 1
        else:
            self._bids -= 1
        self._leaves(order.user)

    def _sorted(self, side: int) -> SortedKeys:
        """The side's sorted keys, told of every level change first."""
        keys = self._keys[side]
        removed = self._keys_removed[side]
        if removed:
            for key in removed:
                keys.remove(key)
            removed.clear()
        added = self._keys_added[side]
        if added:
            keys.update(added)
            added.clear()
        return keys

    def _level_added(self, side: int, key: Any) -> None:
        """Note a new level; `key` is the boxed int its caller made (see _rest)."""
        heappush(self._heaps[side], key)
        native_key: int = key
        if side:
            if native_key < self._best_ask:
                self._best_ask = native_key
        elif native_key < self._best_bid:
            self._best_bid = native_key
        removed = self._keys_removed[side]
        if key in removed:
            removed.remove(key)
        else:
            self._keys_added[side].add(key)
        self._bound_notes(side)

    def _level_gone(self, side: int, key: Any) -> None:
        """Note that a level emptied; its key stays in the heap until it reaches the top.

        `key` is the boxed int its caller made (see _rest).
        """
        added = self._keys_added[side]
        if key in added:
            added.remove(key)
        else:
            self._keys_removed[side].add(key)
        heap = self._heaps[side]
        levels = self._levels[side]
        if len(heap) > 2 * len(levels) + _TRIM:
            heap[:] = levels
            heapify(heap)

    def _best_of(self, side: int) -> int:
        return self._best_ask if side else self._best_bid

    def _next_best(self, side: int) -> None:
        """The best level is gone: drop the stale keys at the heap's top, cache the new best."""
        # Any, not int: the compiled build would unbox each key read and box it
        # again for the dict lookup, allocating an int every time.
        heap: list[Any] = self._heaps[side]
        levels = self._levels[side]
        while heap and heap[0] not in levels:
            heappop(heap)
        best = heap[0] if heap else _NO_LEVEL
        if side:
            self._best_ask = best
        else:
            self._best_bid = best

    def _bound_notes(self, side: int) -> None:
        """Keep the notes for the sorted keys O(levels); never while the sorted list is walked."""
        if len(self._keys_added[side]) + len(self._keys_removed[side]) > 2 * len(
            self._levels[side]
        ) + _TRIM:
            self._sorted(side)

    def _leaves(self, user: str) -> None:
        """One of `user`'s resting orders died: count it, and drop or repack the user's list."""
        listed = self._by_user[user]
        live = listed.live - 1
        if not live:
            del self._by_user[user]
            return
        listed.live = live
        if len(listed.orders) > 4 * live + self._user_slack:
            listed.orders = [order for order in listed.orders if order.amount_left]

    def _replace_known(self, order: Order, known: Order | Remembered | None, now: int) -> None:
        """Give `order` the entry of its id, which is known already, or raise what refuses it.

        Only an id whose memory has run out can be taken again. (With real
        ids, never: an id hashes the order's expiration, so such an order has
        expired too and was refused before.)
        """
        oid = order.id
        if isinstance(known, Order):
            if known.amount_left:
                raise DuplicateOrder(oid)
            if now < known.expiration:
                raise OrderFinished(oid)
            self._deaths.remove(known)
            self._deaths_due = min((dead.expiration for dead in self._deaths), default=_NO_LEVEL)
        elif isinstance(known, Remembered):
            if now < known.expiration:
                raise OrderFinished(oid)
            self._finished_count -= 1
        # Deleted first, so that the new order comes last in arrival order.
        del self._ids[oid]
        self._ids[oid] = order

    def _remember(self, order_id: str, expiration: int) -> None:
        """Make `order_id`'s entry its expiration's bucket (replaced in place when it is an order).

        Never called for an id already remembered, so the entry is new to the count.
        """
        self._finished_count += 1
        # Ids finished one after another mostly share an expiration: the last
        # bucket spares a lookup, and boxing the expiration for it.
        bucket = self._last_remembered
        if bucket is None or bucket.expiration != expiration:
            bucket = self._finished_at.get(expiration)
            if bucket is None:
                bucket = self._finished_at[expiration] = Remembered(expiration)
                heappush(self._finished_heap, expiration)
            self._last_remembered = bucket
        bucket.ids.append(order_id)
        self._ids[order_id] = bucket

    def _settle(self) -> None:
        """Replace the orders that died while matching by their expirations in `_ids`.

        Every order listed in `_deaths` is its id's entry (`_replace_known`
        unlists one before its id is taken by another order).
        """
        ids = self._ids
        finished_at = self._finished_at
        # Orders that die together mostly share an expiration: look its bucket up once.
        last = -1
        bucket: Remembered | None = None
        for order in self._deaths:
            oid = order.id
            # _remember(), inlined: this runs once for every order that ever fills.
            expiration = order.expiration
            if bucket is None or expiration != last:
                bucket = finished_at.get(expiration)
                if bucket is None:
                    bucket = finished_at[expiration] = Remembered(expiration)
                    heappush(self._finished_heap, expiration)
                last = expiration
            bucket.ids.append(oid)
            ids[oid] = bucket
        self._finished_count += len(self._deaths)
        self._deaths = []
        self._deaths_due = _NO_LEVEL

    def _tidy(self) -> None:
        """Bound the deferred work by the live book (see the module docstring); O(1) amortised."""
        live = self._bids + self._asks
        slack = self._slack
        if self._deaths and (not live or len(self._deaths) > live + slack):
            self._settle()
        entries = self._expiry_entries
        if entries and (not live or entries > 4 * live + slack):
            buckets: dict[int, list[Order]] = {}
            entries = 0
            for expiration, bucket in self._expiring.items():
                resting = [order for order in bucket if order.amount_left]
                if resting:
                    buckets[expiration] = resting
                    entries += len(resting)
            self._expiring = buckets
            self._last_expiration = -1
            self._expiry_heap = list(buckets)
            heapify(self._expiry_heap)
            self._expiry_entries = entries

    # ------------------------------------------------------------- validation

    def index_sizes(self) -> dict[str, int]:
        """Entries held by each index, stale ones included (for tests and diagnostics)."""
        return {
            "levels": len(self._levels[0]) + len(self._levels[1]),
            "level_keys": len(self._sorted(0)) + len(self._sorted(1)),
            "level_heap": len(self._heaps[0]) + len(self._heaps[1]),
            "ids": len(self._ids) - 1 - self._finished_count,
            "deaths": len(self._deaths),
            "users": len(self._by_user),
            "user_entries": sum(len(listed.orders) for listed in self._by_user.values()),
            "expiry_buckets": len(self._expiring),
            "expiry_entries": self._expiry_entries,
            "expiry_heap": len(self._expiry_heap),
            "finished": self._finished_count,
            "finished_buckets": len(self._finished_at),
        }

    def validate(self) -> None:
        """Raise BookIntegrityError when any derived structure disagrees with the levels.

        Linear in the size of the book and its indexes.
        """
        seen: dict[str, Order] = {}
        market = self.market
        for side in Side:
            levels = self._levels[side]
            keys = self._keys[side]
            previous = None
            for key in keys:
                if previous is not None and key <= previous:
                    _fail(f"{side.name} level keys out of order at {key}")
                previous = key
            count = 0
            for key, level in levels.items():
                price = level.price
                queue = level.queue
                head = level.head
                # Plain ifs, not _require: building a message per order would dominate.
                if not 0 <= head < len(queue) or not queue[head].amount_left:
                    _fail(f"{side.name} level {price}: dead or missing front")
                if any(order.amount_left for order in queue[:head]):
                    _fail(f"{side.name} level {price}: a live order before the head")
                if head > _TRIM and 2 * head > len(queue):
                    _fail(f"{side.name} level {price}: should have been trimmed")
                if key != (-price if side is _BID else price):
                    _fail(f"{side.name} level {price}: filed under key {key}")
                dead = 0
                total = 0
                for at in range(head, len(queue)):
                    order = queue[at]
                    left = order.amount_left
                    if not left:
                        dead += 1
                        continue
                    if order.side != side or order.price != price or order.target_tracer != market:
                        _fail(f"{side.name} level {price}: order {order.id} misfiled")
                    if not 0 < left <= order.amount:
                        _fail(f"order {order.id}: amount_left {left} outside 1..amount")
                    if order.id in seen:
                        _fail(f"order {order.id} rests twice")
                    seen[order.id] = order
                    total += left
                    count += 1
                if dead != level.dead or 2 * dead > len(queue) - head:
                    _fail(f"{side.name} level {price}: dead count {level.dead}, found {dead}")
                if total != level.volume:
                    _fail(f"{side.name} level {price}: volume {level.volume} != {total}")
            depth = self._asks if side else self._bids
            if count != depth:
                _fail(f"{side.name} depth {depth} != {count}")
            added = self._keys_added[side]
            removed = self._keys_removed[side]
            in_list = set(keys)
            _require(added.isdisjoint(in_list), f"{side.name} key noted as added is listed")
            _require(removed <= in_list, f"{side.name} key noted as removed is not listed")
            _require((in_list - removed) | added == levels.keys(), f"{side.name} keys != levels")
            heap = self._heaps[side]
            _check_heap(heap, f"{side.name} level heap")
            _require(levels.keys() <= set(heap), f"{side.name} level heap misses a level")
            _require(len(heap) <= 2 * len(levels) + _TRIM, f"{side.name} level heap too stale")
            best = min(levels, default=_NO_LEVEL)
            _require(self._best_of(side) == best, f"{side.name} best key is not the first level")
            _require(not heap or heap[0] == best, f"{side.name} level heap's top is stale")
        dying = {id(order) for order in self._deaths}
        _require(len(dying) == len(self._deaths), "an order is listed to settle twice")
        due = min((order.expiration for order in self._deaths), default=_NO_LEVEL)
        _require(due == self._deaths_due, f"deaths due {self._deaths_due} != {due}")
        live = 0
        finished: list[tuple[str, int]] = []
        for oid, entry in self._known():
            if isinstance(entry, Remembered):
                if self._finished_at.get(entry.expiration) is not entry:
                    _fail(f"finished {oid}: its bucket is not filed under its expiration")
                finished.append((oid, entry.expiration))
                continue
            if entry.id != oid:
                _fail(f"id index: {oid} holds order {entry.id}")
            if entry.amount_left:
                live += 1
                if seen.get(oid) is not entry:
                    _fail(f"id index: {oid} is not resting")
            elif id(entry) in dying:
                dying.remove(id(entry))
            else:
                _fail(f"id index: dead {oid} is not listed to settle")
        _require(not dying, "an order listed to settle is not its id's entry")
        _require(live == len(seen), "id index misses a resting order")
        _require(len(finished) == self._finished_count, "finished count")
        listed_ids: set[str] = set()
        for user, listed in self._by_user.items():
            resting = 0
            for order in listed.orders:
                if order.user != user:
                    _fail(f"user index {user} lists order {order.id} of {order.user}")
                if order.amount_left:
                    resting += 1
                    listed_ids.add(order.id)
            if listed.live != resting or not resting:
                _fail(f"user {user}: count {listed.live}, resting {resting}")
            if len(listed.orders) > 4 * resting + self._user_slack:
                _fail(f"user {user}: {len(listed.orders)} entries for {resting} orders")
        _require(len(listed_ids) == len(seen), "user index disagrees with the levels")
        _require(listed_ids == seen.keys(), "user index disagrees with the levels")
        heap = self._expiry_heap
        _check_heap(heap, "expiry heap")
        _require(len(heap) == len(self._expiring) == len(set(heap)), "expiry heap != buckets")
        _require(set(heap) == self._expiring.keys(), "expiry heap != buckets")
        entries = 0
        listed_ids = set()
        for expiration, bucket in self._expiring.items():
            entries += len(bucket)
            for order in bucket:
                if order.expiration != expiration:
                    _fail(f"expiry bucket {expiration} holds order {order.id}")
                if order.amount_left:
                    listed_ids.add(order.id)
        _require(entries == self._expiry_entries, "expiry entry count")
        _require(listed_ids == seen.keys(), "expiry index disagrees with the levels")
        heap = self._finished_heap
        _check_heap(heap, "finished heap")
        _require(len(heap) == len(self._finished_at), "finished heap != buckets")
        last = self._last_remembered
        _require(
            last is None or self._finished_at.get(last.expiration) is last,
            "the last finished bucket is not filed",
        )
        _require(set(heap) == self._finished_at.keys(), "finished heap != buckets")
        bucketed = {
            (oid, expiration)
            for expiration, bucket in self._finished_at.items()
            for oid in bucket.ids
            if bucket.expiration == expiration
        }
        for oid, expiration in finished:
            if (oid, expiration) not in bucketed:
                _fail(f"finished {oid} has no bucket")
        _require(self.ltp >= 0 and self.seq >= 0, "ltp or seq negative")


def _require(condition: bool, what: str) -> None:
    if not condition:
        _fail(what)


def _fail(what: str) -> NoReturn:
    raise BookIntegrityError(f"book integrity: {what}")


def _check_heap(heap: list[int], what: str) -> None:
    for i in range(1, len(heap)):
        if heap[(i - 1) // 2] > heap[i]:
            raise BookIntegrityError(f"book integrity: {what} is not a heap at {i}")
