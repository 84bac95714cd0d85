"""The one command path: every change of state passes through here, in order.

    handlers, sweep, sender  ->  Commands  ->  Machine.apply  ->  engine (pure)
                                 seq, time       typed events
                                    |
                                    +-> journal (durable before any answer)
                                    +-> sinks, in order: logs, metrics, feed

`Machine.apply` is the deterministic step: a command and the time it carries
in, the state changed and the events it caused out, or an engine error and
nothing changed. Live commands and journal replay both go through it, so a
replay of the journal rebuilds the identical state. It calls no sink: replay
must not log or publish again.

`Commands` is the live path. Per command, in one synchronous step (so no
other request interleaves and no lock is needed): refuse if the journal has
failed, stamp the next sequence number and the clock's time, apply, append
the record to the journal's open batch, hand the events to the sinks. Then the
commands a client waits for (create, place, cancel) await the record's
durability before returning, so no answer leaves before its record is on
disk. Delivery outcomes and expiries are not awaited: a lost one only means a
pair is sent again (with the same key) or an order is expired again.

A sink is a callable taking `Applied`. A failing sink is logged and skipped:
a side channel never changes a command's outcome.
"""

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain

import structlog

from ome.engine import (
    Book,
    Fill,
    MarketLimitReached,
    Order,
    OrderLimitReached,
    Side,
    Status,
)
from ome.journal import Journal, JournalUnavailable
from ome.records import (
    Cancel,
    Command,
    CreateMarket,
    DeliveryOutcome,
    Expire,
    Place,
    encode,
    fields,
    place_order,
)
from ome.state import State, TradeRecord, trade_history

log = structlog.get_logger("ome.commands")


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class MarketCreated:
    market: str


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """An order entered matching; `order` as it stands after the command."""

    order: Order
    status: Status


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill: the maker (resting) and taker as they stood right after it."""

    maker: Order
    taker: Order
    price: int
    amount: int
    maker_left: int
    taker_left: int
    key: str

    @property
    def market(self) -> str:
        return self.taker.target_tracer

    @property
    def taker_side(self) -> Side:
        return self.taker.side


@dataclass(frozen=True, slots=True)
class OrderRested:
    """What was left of an accepted order went into the book."""

    order: Order
    amount: int


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    order: Order
    # Who signed the cancel; None for an unsigned one.
    owner: str | None


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """A resting order removed because its expiration passed (by a sweep or in matching)."""

    order: Order


@dataclass(frozen=True, slots=True)
class PairSettled:
    key: str
    delivered: bool


Event = (
    MarketCreated
    | OrderAccepted
    | Trade
    | OrderRested
    | OrderCancelled
    | OrderExpired
    | PairSettled
)


@dataclass(slots=True)
class Applied:
    """What one command did; `fills` are those of a placed order."""

    seq: int
    time: int
    command: Command
    events: list[Event]
    fills: list[Fill] = field(default_factory=list)


@dataclass(slots=True)
class Placed(Applied):
    """What placing an order did: also its status."""

    status: Status = Status.ADD

    @property
    def markets(self) -> set[str]:
        """The markets whose books this command changed."""
        return {market for event in self.events if (market := _market_of(event)) is not None}


def _market_of(event: Event) -> str | None:
    if isinstance(event, MarketCreated):
        return event.market
    if isinstance(event, Trade):
        return event.market
    if isinstance(event, PairSettled):
        return None
    return event.order.target_tracer


Sink = Callable[[Applied], None]


# ---------------------------------------------------------------- the step


class Machine:
    """Applies commands to a `State`; the only code that changes it.

    `apply` (the live path) and `replay` (recovery) make the same state change
    through the same helpers; `replay` only skips building the events, which
    recovery never reads and which cost as much as the change itself.
    """

    __slots__ = ("state",)

    def __init__(self, state: State) -> None:
        self.state = state

    def apply(self, seq: int, time: int, command: Command) -> Applied:
        """Apply `command` as number `seq` at `time`; raise an engine error and change nothing."""
        applied: Applied
        if isinstance(command, Place):
            order = command.order
            status, fills, expired, keys = self._place(seq, time, order)
            events: list[Event] = [OrderAccepted(order, status)]
            events.extend(OrderExpired(maker) for maker in expired)
            events.extend(
                Trade(maker, taker, price, amount, maker_left, taker_left, key)
                for (maker, taker, price, amount, maker_left, taker_left), key in zip(
                    fills, keys, strict=True
                )
            )
            if order.amount_left:
                events.append(OrderRested(order, order.amount_left))
            applied = Placed(seq, time, command, events, fills, status)
        elif isinstance(command, Cancel):
            order = self._cancel(command.market, command.order_id, command.owner)
            applied = Applied(seq, time, command, [OrderCancelled(order, command.owner)])
        elif isinstance(command, Expire):
            swept = self._expire(time)
            applied = Applied(
                seq, time, command, [OrderExpired(order) for order in chain(*swept.values())]
            )
        elif isinstance(command, DeliveryOutcome):
            self.state.outbox.remove(command.key)
            applied = Applied(seq, time, command, [PairSettled(command.key, command.delivered)])
        else:
            self.state.exchange.create(command.market)
            applied = Applied(seq, time, command, [MarketCreated(command.market)])
        self.state.seq = seq
        return applied

    def replay(self, seq: int, payload: bytes) -> None:
        """Apply the journal record `payload` as number `seq`: `apply`'s state change.

        Reads the record's fields in place (ome.records.fields) and builds no
        events. Raises what `apply` raises, RecordError for a malformed
        record, or IndexError for one too short; nothing is changed then.
        """
        record = fields(payload)
        kind, time = record[0], record[1]
        if kind == "p":
            self._place(seq, time, place_order(record))
        elif kind == "c":
            self._cancel(record[2], record[3], record[4])
        elif kind == "d" or kind == "r":
            self.state.outbox.remove(record[2])
        elif kind == "e":
            self._expire(time)
        else:
            self.state.exchange.create(record[2])
        self.state.seq = seq

    def _place(
        self, seq: int, time: int, order: Order
    ) -> tuple[Status, list[Fill], list[Order], list[str]]:
        """Submit `order`; its status, fills, the makers that expired and each fill's pair key."""
        book = self.state.exchange.get(order.target_tracer)
        status: Status
        fills: list[Fill]
        expired: list[Order]
        status, fills, expired = book.submit(order, time)
        book.seq += 1
        if not fills:
            return status, fills, expired, _NO_KEYS
        outbox = self.state.outbox
        history = self.state.trades.get(book.market)
        if history is None:
            history = self.state.trades[book.market] = trade_history()
        market_seq = book.seq
        keys = []
        for index, fill in enumerate(fills):
            keys.append(outbox.add_fill(fill, seq, index))
            maker, taker, price, amount, _, _ = fill
            history.append(
                TradeRecord(market_seq, time, price, amount, maker.id, taker.id, taker.side)
            )
        return status, fills, expired, keys

    def _cancel(self, market: str, order_id: str, owner: str | None) -> Order:
        book = self.state.exchange.get(market)
        order = book.cancel(order_id, owner=owner)
        book.seq += 1
        return order

    def _expire(self, time: int) -> dict[str, list[Order]]:
        exchange = self.state.exchange
        swept = exchange.sweep_expired(time)
        for market in swept:
            exchange.get(market).seq += 1
        return swept


# Shared by every place without fills: nobody mutates it.
_NO_KEYS: list[str] = []


# ---------------------------------------------------------------- the live path


@dataclass(frozen=True, slots=True)
class Limits:
    """What one caller may add; None is no limit.

    Checked on the live path only, before the command is applied, never by
    `Machine.apply`: a replay must rebuild whatever was accepted, and state
    restored above a limit that was lowered since is kept (only new entries
    are refused).
    """

    max_markets: int | None = None
    # Resting orders per user per market.
    max_orders_per_user: int | None = None


NO_LIMITS = Limits()


class Commands:
    """The live command path over one `State`, its journal and its sinks."""

    def __init__(
        self,
        state: State,
        journal: Journal,
        clock: Callable[[], int],
        *,
        sinks: Sequence[Sink] = (),
        limits: Limits = NO_LIMITS,
    ) -> None:
        self.state = state
        self.journal = journal
        self._clock = clock
        self._machine = Machine(state)
        self.sinks: list[Sink] = list(sinks)
        self.limits = limits

    # ------------------------------------------------------------ reads

    def book(self, market: str) -> Book:
        return self.state.exchange.get(market)

    def markets(self) -> list[str]:
        return self.state.exchange.markets()

    def check_entry(self, market: str, order: Order) -> Book:
        """Raise what placing `order` in `market` would be refused for, now; change nothing."""
        book = self.state.exchange.get(market)
        now = self._clock()
        book.check_entry(order, now)
        self._within_order_limit(book, order, now)
        return book

    # ------------------------------------------------------------ commands

    async def create_market(self, market: str) -> Applied:
        """Open a book; MarketExists before MarketLimitReached, as the engine orders them."""
        limit = self.limits.max_markets
        books = self.state.exchange.books
        if limit is not None and market not in books and len(books) >= limit:
            raise MarketLimitReached(limit)
        return await self._durable(self._execute(CreateMarket(market)))

    async def place(self, order: Order) -> tuple[Status, list[Fill]]:
        """Match `order`, rest what is left; its status and fills once durable.

        OrderLimitReached when its user already rests the limit in this market
        and the order would not match in full; decided before anything trades.
        """
        now = self._clock()
        book = self.state.exchange.get(order.target_tracer)
        self._within_order_limit(book, order, now)
        placed = await self._durable(self._execute(Place(order), now))
        if not isinstance(placed, Placed):
            raise TypeError("Machine.apply of a Place yields Placed")
        return placed.status, placed.fills

    async def cancel(self, market: str, order_id: str, *, owner: str | None = None) -> Applied:
        return await self._durable(self._execute(Cancel(market, order_id, owner)))

    def expire(self) -> Applied | None:
        """Remove every order due; None (and no record) when there was none."""
        if not self.state.exchange.expiry_due(self._clock()):
            return None
        return self._execute(Expire())

    def settle(self, key: str, *, delivered: bool) -> Applied:
        """Record the executioner's final answer for a pair, removing it from the outbox."""
        return self._execute(DeliveryOutcome(key, delivered))

    # ------------------------------------------------------------ internals

    def _within_order_limit(self, book: Book, order: Order, now: int) -> None:
        limit = self.limits.max_orders_per_user
        if (
            limit is not None
            and book.resting_count(order.user) >= limit
            and book.fillable(order, now) < order.amount_left
        ):
            raise OrderLimitReached(limit)

    def _execute(self, command: Command, time: int | None = None) -> Applied:
        """Apply, journal and publish `command` at `time` (default: now)."""
        if self.journal.failure is not None:
            raise JournalUnavailable()
        if time is None:
            time = self._clock()
        applied = self._machine.apply(self.state.seq + 1, time, command)
        self.journal.append(applied.seq, encode(command, time))
        for sink in self.sinks:
            try:
                sink(applied)
            except Exception:
                # A side channel: its failure must not change the outcome.
                with contextlib.suppress(Exception):
                    log.exception("sink_failed", sink=getattr(sink, "__name__", repr(sink)))
        return applied

    async def _durable(self, applied: Applied) -> Applied:
        await self.journal.wait(applied.seq)
        return applied
