"""The engines bench/engine.py replays a stream into: ours and the PyPI ones.

Two protocols. `prepare` (prebuilt): the engine's order objects are built
untimed, and the timed replay only submits them. `prepare_independent` (the
way an independent benchmark drives every engine): the untimed part only
turns the stream into each engine's primitive fields (id, user, side, price,
amount, in the engine's own spelling of side), and the timed replay builds
every order object from them, submits it and reads the result's fills (for
the engines that return any). Both replay the untimed setup phase first.
`resting` reports afterwards what rests. `audit` replays the stream once
more with instrumentation, for the matched quantity, which the timed replays
do not collect.

The PyPI engines take integer ids and amounts: row `i` becomes id `i + 1`.
They have no self-trade skip and no expiry, which the streams never need.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _streams import CREATED, EXPIRATION, NOW, Stream

from ome.engine import Book, Side, make_order

# What the independent protocol gives every order of ours besides its
# primitive fields: one market per stream, and these.
SIGNATURE = "0x" + "ab" * 65


@dataclass(frozen=True, slots=True)
class Totals:
    """What an engine did with a stream, in quantities every engine can report."""

    matched: int
    resting_orders: int
    resting_bid: int
    resting_ask: int
    crossing: int
    missed_cancels: int


class Engine(ABC):
    name = ""

    @abstractmethod
    def prepare(self, stream: Stream) -> Callable[[], None]:
        """Build everything the timed replay needs; return the replay."""

    @abstractmethod
    def prepare_independent(self, stream: Stream) -> Callable[[], None]:
        """The timed replay of the independent protocol (see the module docstring)."""

    @abstractmethod
    def resting(self) -> tuple[int, int, int]:
        """(orders, bid quantity, ask quantity) resting after the last replay or audit."""

    @abstractmethod
    def audit(self, stream: Stream) -> Totals:
        """Replay the whole stream, counting what the timed replay does not."""


class Ours(Engine):
    name = "ome"

    def __init__(self) -> None:
        self.book = Book("")

    def _book(self, stream: Stream) -> tuple[Book, list[Any]]:
        book = Book(stream.market)
        orders = stream.orders()
        for i in stream.setup:
            book.submit(orders[i], NOW)
        return book, orders

    def prepare(self, stream: Stream) -> Callable[[], None]:
        self.book, orders = self._book(stream)
        submit = self.book.submit
        cancel = self.book.cancel
        now = NOW
        if not stream.cancels:
            submits = [orders[i] for i in stream.events]

            def replay() -> None:
                for order in submits:
                    submit(order, now)

            return replay
        ops = [(orders[e], "") if e >= 0 else (None, orders[~e].id) for e in stream.events]

        def replay_with_cancels() -> None:
            for order, oid in ops:
                if order is None:
                    cancel(oid)
                else:
                    submit(order, now)

        return replay_with_cancels

    def prepare_independent(self, stream: Stream) -> Callable[[], None]:
        self.book, _ = self._book(stream)
        book = self.book
        market = stream.market
        now = NOW
        ops = [
            (rows[0], rows[1], rows[3], rows[4], rows[5]) if e >= 0 else (rows[0], "", _BID, 0, 0)
            for e, rows in ((e, stream.rows[e if e >= 0 else ~e]) for e in stream.events)
        ]

        def replay() -> None:
            submit = book.submit
            cancel = book.cancel
            matched = 0
            for oid, user, side, price, amount in ops:
                if not amount:
                    cancel(oid)
                    continue
                order = make_order(
                    oid, user, market, side, price, amount, amount, EXPIRATION, CREATED, SIGNATURE
                )
                for fill in submit(order, now)[1]:
                    matched += fill[3]

        return replay

    def resting(self) -> tuple[int, int, int]:
        bid, ask = (sum(level.volume for level in self.book.levels(side)) for side in Side)
        return len(self.book), bid, ask

    def audit(self, stream: Stream) -> Totals:
        book, orders = self._book(stream)
        matched = crossing = missed = 0
        for e in stream.events:
            if e < 0:
                if orders[~e].id in book:
                    book.cancel(orders[~e].id)
                else:
                    missed += 1
                continue
            fills = book.submit(orders[e], NOW)[1]
            crossing += bool(fills)
            matched += sum(amount for _, _, _, amount, _, _ in fills)
        self.book = book
        return Totals(matched, *self.resting(), crossing, missed)


_BID = Side.Bid


class LimitOrderBook(Engine):
    """`limit-order-book` (C++ behind ctypes), through its public `LimitOrderBook` methods."""

    name = "limit-order-book"

    def __init__(self) -> None:
        from limit_order_book import LimitOrderBook as Lob

        self._cls = Lob
        self.book = Lob()

    def _book(self, stream: Stream) -> tuple[Any, list[tuple[bool, int, int, int]]]:
        rows = [(row[3] == Side.Bid, i + 1, row[5], row[4]) for i, row in enumerate(stream.rows)]
        book = self._cls()
        for i in stream.setup:
            book.limit(*rows[i])
        return book, rows

    def prepare(self, stream: Stream) -> Callable[[], None]:
        # Free the previous book first: its C++ destructor must not land in a timed region.
        self.book = None
        self.book, rows = self._book(stream)
        limit = self.book.limit
        cancel = self.book.cancel
        if not stream.cancels:
            submits = [rows[i] for i in stream.events]

            def replay() -> None:
                for is_buy, oid, amount, price in submits:
                    limit(is_buy, oid, amount, price)

            return replay
        ops = [rows[e] if e >= 0 else (None, ~e + 1, 0, 0) for e in stream.events]

        def replay_with_cancels() -> None:
            for is_buy, oid, amount, price in ops:
                if is_buy is None:
                    cancel(oid)
                else:
                    limit(is_buy, oid, amount, price)

        return replay_with_cancels

    def prepare_independent(self, stream: Stream) -> Callable[[], None]:
        # Its `limit` takes the primitive fields and builds its order itself
        # (and returns nothing to read): the same calls as prebuilt.
        return self.prepare(stream)

    def resting(self) -> tuple[int, int, int]:
        return self.book.count(), self.book.volume_buy(), self.book.volume_sell()

    def audit(self, stream: Stream) -> Totals:
        self.book = None
        book, rows = self._book(stream)
        volume = book.volume
        matched2 = crossing = missed = 0
        for e in stream.events:
            before = volume()
            if e < 0:
                # Cancelling an unknown id aborts the process inside the C++ library.
                if book.has(~e + 1):
                    book.cancel(~e + 1)
                else:
                    missed += 1
                continue
            book.limit(*rows[e])
            # A match of m takes m from the book and m from the incoming order.
            taken = before + rows[e][2] - volume()
            crossing += bool(taken)
            matched2 += taken
        self.book = book
        return Totals(matched2 // 2, *self.resting(), crossing, missed)


class Liquibook(Engine):
    """`liquibook` (C++ behind SWIG): the plain OrderBook, no listener at all."""

    name = "liquibook"

    def __init__(self) -> None:
        import liquibook

        self._lb = liquibook
        self.book = self._new()

    def _new(self) -> Any:
        return self._lb.liquibook_book_OrderBook()

    def _book(self, stream: Stream, listener: Any = None) -> tuple[Any, list[Any]]:
        new_order = self._lb.SimpleOrder
        orders = [new_order(row[3] == Side.Bid, row[4], row[5]) for row in stream.rows]
        book = self._new()
        if listener is not None:
            book.set_order_listener(listener)
        for i in stream.setup:
            book.add(orders[i])
        return book, orders

    def prepare(self, stream: Stream) -> Callable[[], None]:
        self.book = None
        self.book, orders = self._book(stream)
        add = self.book.add
        cancel = self.book.cancel
        if not stream.cancels:
            submits = [orders[i] for i in stream.events]

            def replay() -> None:
                for order in submits:
                    add(order)

            return replay
        ops = [(True, orders[e]) if e >= 0 else (False, orders[~e]) for e in stream.events]

        def replay_with_cancels() -> None:
            for is_add, order in ops:
                if is_add:
                    add(order)
                else:
                    cancel(order)

        return replay_with_cancels

    def prepare_independent(self, stream: Stream) -> Callable[[], None]:
        self.book = None
        self.book, _ = self._book(stream)
        add = self.book.add
        cancel = self.book.cancel
        new_order = self._lb.SimpleOrder
        built: list[Any] = [None] * len(stream.rows)
        # Row index, is_buy, price, amount; a cancel names the row whose order it cancels.
        ops = [
            (e, stream.rows[e][3] == Side.Bid, stream.rows[e][4], stream.rows[e][5])
            if e >= 0
            else (~e, None, 0, 0)
            for e in stream.events
        ]

        def replay() -> None:
            for row, is_buy, price, amount in ops:
                if is_buy is None:
                    cancel(built[row])
                else:
                    order = built[row] = new_order(is_buy, price, amount)
                    add(order)

        return replay

    def resting(self) -> tuple[int, int, int]:
        bids = [tracker.open_qty() for tracker in self.book.bids().values()]
        asks = [tracker.open_qty() for tracker in self.book.asks().values()]
        return len(bids) + len(asks), sum(bids), sum(asks)

    def audit(self, stream: Stream) -> Totals:
        lb = self._lb

        class Counter(lb.OrderListener):  # type: ignore[misc]
            def __init__(self) -> None:
                lb.OrderListener.__init__(self)
                self.matched = 0
                self.missed = 0

            def on_accept(self, order: Any) -> None:
                pass

            def on_cancel(self, order: Any) -> None:
                pass

            def on_cancel_reject(self, order: Any, reason: str) -> None:
                self.missed += 1

            def on_fill(self, maker: Any, taker: Any, amount: int, cost: int) -> None:
                self.matched += amount

        counter = Counter()
        self.book = None
        book, orders = self._book(stream, counter)
        crossing = 0
        for e in stream.events:
            if e < 0:
                book.cancel(orders[~e])
            else:
                crossing += bool(book.add(orders[e]))
        self.book = book
        return Totals(counter.matched, *self.resting(), crossing, counter.missed)


class LiquibookDepth(Liquibook):
    """`liquibook`'s DepthOrderBook, which also keeps aggregated depth; no listener."""

    name = "liquibook-depth"

    def _new(self) -> Any:
        return self._lb.DepthOrderBook()


def available() -> tuple[list[Engine], list[str]]:
    """Our engine and every PyPI engine that imports, plus a note for each that does not."""
    engines: list[Engine] = [Ours()]
    missing = []
    for cls, package in (
        (LimitOrderBook, "limit-order-book"),
        (Liquibook, "liquibook"),
        (LiquibookDepth, "liquibook"),
    ):
        try:
            engines.append(cls())
        except ImportError:
            missing.append(f"{cls.name}: not installed (pip install '.[bench]' adds {package})")
    return engines, missing
