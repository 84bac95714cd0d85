"""Deterministic order streams for bench/engine.py.

A stream is the argument tuples of `Order(...)` (ids already computed, since
hashing is not what is measured) plus a list of events: `i >= 0` submits row
`i`, `~i` cancels the order of row `i`. `setup` events are replayed untimed
before the timed `events`. Every engine is fed the same rows and events.

Bids are placed by one set of traders and asks by another, so no order can
meet its own trader's: the engines from PyPI have no self-trade skip, and
their totals must agree with ours.
"""

import random
from dataclasses import dataclass

from ome.engine import Book, Order, Side, order_id

NOW = 1_800_000_000
EXPIRATION = 1_900_000_000
CREATED = 1_700_000_000
MID = 10_000
HALF_RANGE = 50
# Bids are drawn from [MID-50, MID+50-OVERLAP_CUT] and asks from
# [MID-50+OVERLAP_CUT, MID+50]: measured to make about 30% of A's orders trade
# on arrival (0 gives 43%, 24 gives 29.8%).
OVERLAP_CUT = 24
CANCEL_PROBABILITY = 0.3
TRADERS_PER_SIDE = 50

Row = tuple[str, str, str, Side, int, int, int, int, int, str]


@dataclass(frozen=True, slots=True)
class Stream:
    name: str
    market: str
    rows: list[Row]
    setup: list[int]
    events: list[int]

    @property
    def cancels(self) -> int:
        return sum(1 for e in self.events if e < 0)

    def orders(self) -> list[Order]:
        """Fresh orders: submit mutates `amount_left`, so every run builds its own."""
        return [Order(*row) for row in self.rows]


class Traders:
    """Addresses, signatures and ids drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.market = self.address()
        self.bidders = [self.address() for _ in range(TRADERS_PER_SIDE)]
        self.askers = [self.address() for _ in range(TRADERS_PER_SIDE)]

    def address(self) -> str:
        return "0x" + self.rng.randbytes(20).hex()

    def row(self, side: Side, price: int, amount: int, created: int) -> Row:
        user = self.rng.choice(self.bidders if side == Side.Bid else self.askers)
        oid = order_id(user, self.market, price, amount, side, EXPIRATION, created)
        signature = "0x" + self.rng.randbytes(65).hex()
        return (oid, user, self.market, side, price, amount, amount, EXPIRATION, created, signature)


def _random_rows(traders: Traders, count: int, first_created: int) -> list[Row]:
    rng = traders.rng
    rows = []
    for i in range(count):
        if rng.random() < 0.5:
            side = Side.Bid
            price = rng.randint(MID - HALF_RANGE, MID + HALF_RANGE - OVERLAP_CUT)
        else:
            side = Side.Ask
            price = rng.randint(MID - HALF_RANGE + OVERLAP_CUT, MID + HALF_RANGE)
        rows.append(traders.row(side, price, rng.randint(1, 100), first_created + i))
    return rows


def resting_row(traders: Traders, created: int, scale: int = 1) -> Row:
    """A bid below MID or an ask above it, alternately by `created`, so none crosses."""
    rng = traders.rng
    if created % 2 == 0:
        side, price = Side.Bid, rng.randint(MID - HALF_RANGE, MID - 1)
    else:
        side, price = Side.Ask, rng.randint(MID + 1, MID + HALF_RANGE)
    return traders.row(side, price * scale, rng.randint(1, 100) * scale, created)


def stream_a(count: int, seed: int = 1) -> Stream:
    """Limit orders, sides 50/50, prices uniform around MID, amounts 1..100."""
    traders = Traders(seed)
    rows = _random_rows(traders, count, CREATED)
    return Stream("A", traders.market, rows, [], list(range(count)))


def stream_b(a: Stream, seed: int = 2) -> Stream:
    """A's orders, each followed with probability 0.3 by a cancel of a random resting order.

    The targets are picked among the orders resting at that moment, found by
    replaying the stream once in our book: every engine that agrees with ours
    on A (checked) has those orders resting too.
    """
    rng = random.Random(seed)
    book = Book(a.market)
    live: list[int] = []
    slot: dict[str, int] = {}
    index = {row[0]: i for i, row in enumerate(a.rows)}

    def forget(oid: str) -> None:
        at = slot.pop(oid)
        last = live.pop()
        if at < len(live):
            live[at] = last
            slot[a.rows[last][0]] = at

    events: list[int] = []
    for i, order in enumerate(a.orders()):
        fills = book.submit(order, NOW)[1]
        # Fills unpack positionally: (maker, taker, price, amount, maker left, taker left).
        for maker, _, _, _, maker_left, _ in fills:
            if maker_left == 0:
                forget(maker.id)
        if order.amount_left:
            slot[order.id] = len(live)
            live.append(index[order.id])
        events.append(i)
        if live and rng.random() < CANCEL_PROBABILITY:
            target = live[rng.randrange(len(live))]
            book.cancel(a.rows[target][0])
            forget(a.rows[target][0])
            events.append(~target)
    return Stream("B", a.market, a.rows, [], events)


def stream_c(resting: int, aggressive: int, seed: int = 3) -> Stream:
    """A non-crossing book of `resting` orders, then marketable orders priced through it.

    The aggressive orders, half of each side, carry the far end of the price
    range as their limit, so each trades on arrival and none rests: together
    they take about half of each side's resting quantity.
    """
    traders = Traders(seed)
    rng = traders.rng
    rows = [resting_row(traders, CREATED + i) for i in range(resting)]
    for i in range(aggressive):
        if rng.random() < 0.5:
            side, price = Side.Bid, MID + HALF_RANGE
        else:
            side, price = Side.Ask, MID - HALF_RANGE
        rows.append(traders.row(side, price, rng.randint(1, 100), CREATED + resting + i))
    return Stream(
        "C", traders.market, rows, list(range(resting)), list(range(resting, resting + aggressive))
    )
