"""The book against a deliberately naive reference model, driven by hypothesis.

The reference keeps one list of resting orders in acceptance order and finds
everything by full scans and sorting, so it is slow and obviously right. It
also keeps the finished-order memory as a plain dict (id -> expiration): an
order enters it when it is filled in full, cancelled or expired while
matching, and leaves it at the first sweep at or after its expiration. Few
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
    NotOwner,
    Order,
    OrderExpired,
    OrderFinished,
    OrderNotFound,
    Side,
    Status,
    snapshot,
)
from tests.engine.helpers import MARKET, NOW, user

FillView = tuple[str, str, int, int, int, int]
RefResult = tuple[Status, list[FillView], list[str]]


@pytest.fixture(autouse=True)
def compact_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tidy the book's deferred entries every few changes, so the tidying is exercised too."""
    monkeypatch.setattr(ome.engine.book, "_SLACK", 3)
    monkeypatch.setattr(ome.engine.book, "_USER_SLACK", 1)


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
    finished: dict[str, int] = field(default_factory=dict)
    ltp: int = 0
    seq: int = 0

    def _crossing(self, order: Order) -> list[RefOrder]:
        if order.side is Side.Bid:
            crossing = [r for r in self.resting if r.side is Side.Ask and r.price <= order.price]
            crossing.sort(key=lambda r: (r.price, r.seq))
        else:
            crossing = [r for r in self.resting if r.side is Side.Bid and r.price >= order.price]
            crossing.sort(key=lambda r: (-r.price, r.seq))
        return crossing

    def check(self, order: Order, now: int) -> None:
        if order.expiration <= now:
            raise OrderExpired(order.expiration, now)
        if any(r.id == order.id for r in self.resting):
            raise DuplicateOrder(order.id)
        if now < self.finished.get(order.id, now):
            raise OrderFinished(order.id)

    def fillable(self, order: Order, now: int) -> int:
        eligible = sum(
            r.amount_left
            for r in self._crossing(order)
            if r.expiration > now and r.user != order.user
        )
        return min(eligible, order.amount_left)

    def submit(self, order: Order, now: int) -> RefResult:
        self.check(order, now)
        remaining = order.amount_left
        fills: list[FillView] = []
        expired: list[str] = []
        for maker in self._crossing(order):
            if not remaining:
                break
            if maker.expiration <= now:
                self.resting.remove(maker)
                self.finished[maker.id] = maker.expiration
                expired.append(maker.id)
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
                self.finished[maker.id] = maker.expiration
        if not remaining:
            self.finished[order.id] = order.expiration
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
            return Status.FULL_MATCH, fills, expired
        return (Status.PARTIAL_MATCH if fills else Status.ADD), fills, expired

    def cancel(self, order_id: str, owner: str | None) -> None:
        for r in self.resting:
            if r.id == order_id:
                if owner is not None and owner != r.user:
                    raise NotOwner(order_id)
                self.resting.remove(r)
                self.finished[r.id] = r.expiration
                return
        raise OrderNotFound(order_id)

    def sweep(self, now: int) -> set[str]:
        gone = {r.id for r in self.resting if r.expiration <= now}
        self.resting = [r for r in self.resting if r.id not in gone]
        self.finished = {i: e for i, e in self.finished.items() if e > now}
        return gone

    def side(self, side: Side) -> list[tuple[str, int]]:
        orders = [r for r in self.resting if r.side is side]
        sign = -1 if side is Side.Bid else 1
        orders.sort(key=lambda r: (sign * r.price, r.seq))
        return [(r.id, r.amount_left) for r in orders]

    def depth(self, side: Side) -> list[tuple[int, int, int]]:
        """(price, amount left, orders) per price, best first."""
        levels: dict[int, list[int]] = {}
        for r in self.resting:
            if r.side is side:
                level = levels.setdefault(r.price, [0, 0])
                level[0] += r.amount_left
                level[1] += 1
        best_first = sorted(levels, reverse=side is Side.Bid)
        return [(price, levels[price][0], levels[price][1]) for price in best_first]

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
        book, now = self.book, self.now
        fillable = book.fillable(order, now)
        assert fillable == self.reference.fillable(twin, now)
        try:
            book.check_entry(order, now)
        except EngineError as exc:
            entry_error: type[EngineError] | None = type(exc)
        else:
            entry_error = None
        try:
            expected = self.reference.submit(twin, now)
        except EngineError as exc:
            expected_error: type[EngineError] | None = type(exc)
        else:
            expected_error = None
        assert entry_error is expected_error
        before = snapshot.to_dict(self.exchange) if expected_error else None
        try:
            status, fills, expired = book.submit(order, now)
        except EngineError as exc:
            assert type(exc) is expected_error
            assert snapshot.to_dict(self.exchange) == before, "a refused order changed the book"
            return
        assert expected_error is None, f"expected {expected_error}"
        seen = [(maker.id, taker.id, *trade) for maker, taker, *trade in fills]
        assert (status, seen, [o.id for o in expired]) == expected
        assert all(o.amount_left == 0 for o in expired)
        assert sum(amount for _, _, _, amount, _, _ in fills) == fillable

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

    @rule(order=consumes(placed), owner=st.sampled_from([None, *TRADERS]))
    def cancel(self, order: Order, owner: str | None) -> None:
        try:
            self.reference.cancel(order.id, owner)
        except (OrderNotFound, NotOwner) as exc:
            expected_error: type[EngineError] | None = type(exc)
        else:
            expected_error = None
        before = snapshot.to_dict(self.exchange) if expected_error else None
        try:
            cancelled = self.book.cancel(order.id, owner=owner)
        except (OrderNotFound, NotOwner) as exc:
            assert type(exc) is expected_error
            assert snapshot.to_dict(self.exchange) == before, "a refused cancel changed the book"
        else:
            assert expected_error is None
            assert cancelled.id == order.id
            assert cancelled.amount_left == 0

    @rule(seconds=st.integers(1, 15))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds

    @precondition(lambda self: self.reference.finished or self.reference.resting)
    @rule(data=st.data())
    def advance_to_an_expiration(self, data: st.DataObject) -> None:
        """Expirations exactly at `now` are where off-by-one mistakes live."""
        ref = self.reference
        expirations = sorted({*ref.finished.values(), *(r.expiration for r in ref.resting)})
        self.now = max(self.now, data.draw(st.sampled_from(expirations)))

    @rule()
    def sweep_expired(self) -> None:
        removed = self.book.sweep_expired(self.now)
        assert {o.id for o in removed} == self.reference.sweep(self.now)
        assert len(removed) == len({o.id for o in removed})

    @rule()
    def snapshot_and_restore(self) -> None:
        data = snapshot.to_dict(self.exchange)
        self.book.seq += 1
        data["markets"][0]["seq"] = self.book.seq
        self.exchange = snapshot.from_dict(data)
        assert snapshot.to_dict(self.exchange) == data

    @invariant()
    def same_book(self) -> None:
        book = self.book
        book.validate()
        ref = self.reference
        assert book.finished() == sorted(ref.finished.items())
        due = any(e <= self.now for e in ref.finished.values()) or any(
            r.expiration <= self.now for r in ref.resting
        )
        assert book.expiry_due(self.now) == due
        for oid, expiration in ref.finished.items():
            assert book.is_finished(oid, self.now) == (self.now < expiration)
        for side in Side:
            actual = [(o.id, o.amount_left) for lvl in book.levels(side) for o in lvl.orders()]
            assert actual == ref.side(side)
            depth = ref.depth(side)
            for n in (0, 1, 2, 7, 100):
                assert book.depth_levels(side, n) == depth[:n]
            at = {price: (amount, count) for price, amount, count in depth}
            for price in range(94, 103):
                assert book.level_at(side, price) == at.get(price)
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
            assert book.resting_count(trader) == len(expected)


BookMatchesReference.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_book_matches_reference = BookMatchesReference.TestCase
