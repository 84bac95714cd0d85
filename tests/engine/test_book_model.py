"""The book against a deliberately naive reference model, driven by hypothesis.

The reference keeps one list of resting orders in acceptance order and finds
everything by full scans and sorting, so it is slow and obviously right. Few
traders and few price levels make crossing, self-trade skips and expiry common.
"""

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

import ome.engine.book
from ome.engine import (
    DuplicateOrder,
    EngineError,
    Exchange,
    Order,
    OrderExpired,
    OrderNotFound,
    Side,
    Status,
    snapshot,
)
from tests.engine.helpers import MARKET, NOW, user

FillView = tuple[str, str, int, int, int, int]


@pytest.fixture(autouse=True)
def compact_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuild the book's lazy indexes every few rests, so the rebuilds are exercised too."""
    monkeypatch.setattr(ome.engine.book, "_COMPACT_SLACK", 3)


@dataclass
class RefOrder:
    id: str
    user: str
    side: Side
    price: int
    amount_left: int
    expiration: int
    seq: int


@dataclass
class ReferenceBook:
    resting: list[RefOrder] = field(default_factory=list)
    ltp: int = 0
    seq: int = 0

    def submit(self, order: Order, now: int) -> tuple[Status, list[FillView]]:
        if order.expiration <= now:
            raise OrderExpired(order.expiration, now)
        if any(r.id == order.id for r in self.resting):
            raise DuplicateOrder(order.id)
        remaining = order.amount_left
        fills: list[FillView] = []
        if order.side is Side.Bid:
            crossing = [r for r in self.resting if r.side is Side.Ask and r.price <= order.price]
            crossing.sort(key=lambda r: (r.price, r.seq))
        else:
            crossing = [r for r in self.resting if r.side is Side.Bid and r.price >= order.price]
            crossing.sort(key=lambda r: (-r.price, r.seq))
        for maker in crossing:
            if not remaining:
                break
            if maker.expiration <= now:
                self.resting.remove(maker)
                continue
            if maker.user == order.user:
                continue
            traded = min(maker.amount_left, remaining)
            maker.amount_left -= traded
            remaining -= traded
            self.ltp = maker.price
            fills.append((maker.id, order.id, maker.price, traded, maker.amount_left, remaining))
            if not maker.amount_left:
                self.resting.remove(maker)
        if remaining:
            self.seq += 1
            self.resting.append(
                RefOrder(
                    order.id,
                    order.user,
                    order.side,
                    order.price,
                    remaining,
                    order.expiration,
                    self.seq,
                )
            )
        if not remaining:
            return Status.FULL_MATCH, fills
        return (Status.PARTIAL_MATCH if fills else Status.ADD), fills

    def cancel(self, order_id: str) -> None:
        for r in self.resting:
            if r.id == order_id:
                self.resting.remove(r)
                return
        raise OrderNotFound(order_id)

    def sweep(self, now: int) -> set[str]:
        gone = {r.id for r in self.resting if r.expiration <= now}
        self.resting = [r for r in self.resting if r.id not in gone]
        return gone

    def side(self, side: Side) -> list[tuple[str, int]]:
        orders = [r for r in self.resting if r.side is side]
        sign = -1 if side is Side.Bid else 1
        orders.sort(key=lambda r: (sign * r.price, r.seq))
        return [(r.id, r.amount_left) for r in orders]

    def best(self, side: Side) -> int | None:
        prices = [r.price for r in self.resting if r.side is side]
        if not prices:
            return None
        return max(prices) if side is Side.Bid else min(prices)


TRADERS = [user(n) for n in (1, 2, 3)]


class BookMatchesReference(RuleBasedStateMachine):
    placed = Bundle("placed")

    def __init__(self) -> None:
        super().__init__()
        self.exchange = Exchange()
        self.exchange.create(MARKET)
        self.reference = ReferenceBook()
        self.now = NOW
        self.created = 0

    @property
    def book(self):  # type: ignore[no-untyped-def]
        return self.exchange.get(MARKET)

    def _new_order(self, trader: int, side: Side, price: int, amount: int, ttl: int) -> Order:
        self.created += 1
        return Order.create(
            user=TRADERS[trader],
            target_tracer=MARKET,
            side=side,
            price=price,
            amount=amount,
            expiration=self.now + ttl,
            created=self.created,
        )

    def _submit_both(self, order: Order) -> None:
        twin = replace(order)
        try:
            expected = self.reference.submit(twin, self.now)
        except EngineError as exc:
            expected_error: type[EngineError] | None = type(exc)
        else:
            expected_error = None
        try:
            status, fills, _ = self.book.submit(order, self.now)
        except EngineError as exc:
            assert type(exc) is expected_error
            return
        assert expected_error is None, f"expected {expected_error}"
        seen = [(maker.id, taker.id, *trade) for maker, taker, *trade in fills]
        assert (status, seen) == expected

    @rule(
        target=placed,
        trader=st.integers(0, 2),
        side=st.sampled_from(Side),
        price=st.integers(95, 101),
        amount=st.integers(1, 20),
        ttl=st.integers(-2, 40),
    )
    def submit(self, trader: int, side: Side, price: int, amount: int, ttl: int) -> Order:
        order = self._new_order(trader, side, price, amount, ttl)
        self._submit_both(order)
        return order

    @rule(order=placed)
    def resubmit_same_id(self, order: Order) -> None:
        fresh = replace(order)
        fresh.amount_left = fresh.amount
        self._submit_both(fresh)

    @rule(order=consumes(placed))
    def cancel(self, order: Order) -> None:
        try:
            self.reference.cancel(order.id)
        except OrderNotFound:
            expected_missing = True
        else:
            expected_missing = False
        try:
            cancelled = self.book.cancel(order.id)
        except OrderNotFound:
            assert expected_missing
        else:
            assert not expected_missing
            assert cancelled.id == order.id

    @rule(seconds=st.integers(1, 15))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds

    @rule()
    def sweep_expired(self) -> None:
        removed = self.book.sweep_expired(self.now)
        assert {o.id for o in removed} == self.reference.sweep(self.now)
        assert len(removed) == len({o.id for o in removed})

    @precondition(lambda self: len(self.book) > 0)
    @rule()
    def snapshot_and_restore(self) -> None:
        data = snapshot.to_dict(self.exchange)
        self.exchange = snapshot.from_dict(data)
        assert snapshot.to_dict(self.exchange) == data

    @invariant()
    def same_book(self) -> None:
        book = self.book
        book.check_invariants()
        ref = self.reference
        for side in Side:
            actual = [(o.id, o.amount_left) for lvl in book.levels(side) for o in lvl.orders()]
            assert actual == ref.side(side)
        assert book.best_bid == ref.best(Side.Bid)
        assert book.best_ask == ref.best(Side.Ask)
        assert book.depth == (len(ref.side(Side.Bid)), len(ref.side(Side.Ask)))
        assert book.ltp == ref.ltp
        bid, ask = ref.best(Side.Bid), ref.best(Side.Ask)
        both = bid is not None and ask is not None
        assert book.spread == (ask - bid if bid is not None and ask is not None else 0)
        assert book.crossed == (both and bid >= ask)  # type: ignore[operator]
        for trader in TRADERS:
            expected = [r.id for r in ref.resting if r.user == trader]
            assert [o.id for o in book.orders_of(trader)] == expected


BookMatchesReference.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_book_matches_reference = BookMatchesReference.TestCase
