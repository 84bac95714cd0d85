"""One test per matching rule of docs/API.md, on a Book driven directly."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome.engine import (
    MAX_UINT128,
    Book,
    DuplicateOrder,
    MarketMismatch,
    Order,
    OrderExpired,
    OrderNotFound,
    Side,
    Status,
)
from tests.engine.helpers import MARKET, NOW, ask, bid, user


def ladder() -> Book:
    """Bids 95..91 and asks 96..100, 10 each, from traders 1 (bids) and 2 (asks)."""
    book = Book(MARKET)
    for step in range(5):
        assert book.submit(bid(95 - step, 10, trader=1), NOW)[0] is Status.ADD
        assert book.submit(ask(96 + step, 10, trader=2), NOW)[0] is Status.ADD
    book.validate()
    return book


def test_ladder_rests_best_first_with_depth_and_spread() -> None:
    book = ladder()
    assert [lvl.price for lvl in book.levels(Side.Bid)] == [95, 94, 93, 92, 91]
    assert [lvl.price for lvl in book.levels(Side.Ask)] == [96, 97, 98, 99, 100]
    assert (book.best_bid, book.best_ask) == (95, 96)
    assert book.depth == (5, 5)
    assert book.spread == 1
    assert not book.crossed
    assert book.ltp == 0
    assert [o.price for o in book.orders()] == [95, 94, 93, 92, 91, 96, 97, 98, 99, 100]


def test_fill_at_one_level_trades_at_the_resting_price() -> None:
    book = ladder()
    taker = bid(99, 4, trader=3)
    status, fills, _ = book.submit(taker, NOW)
    assert status is Status.FULL_MATCH
    [(maker, filled_taker, price, amount, maker_left, taker_left)] = fills
    assert (price, amount, maker_left, taker_left) == (96, 4, 6, 0)
    assert filled_taker is taker and maker.price == 96
    assert book.ltp == 96
    assert taker.id not in book
    assert book.levels(Side.Ask)[0].volume == 6
    book.validate()


def test_sweep_across_two_levels_leaves_last_maker_partly_filled() -> None:
    book = ladder()
    first_96 = book.levels(Side.Ask)[0]
    maker_96 = next(iter(first_96.orders()))
    status, fills, _ = book.submit(bid(97, 15, trader=3), NOW)
    assert status is Status.FULL_MATCH
    trades = [
        (maker.price, amount, maker_left, taker_left)
        for maker, _, _, amount, maker_left, taker_left in fills
    ]
    assert trades == [(96, 10, 0, 5), (97, 5, 5, 0)]
    assert fills[0][0] is maker_96
    assert maker_96.id not in book
    assert book.best_ask == 97
    assert book.get(fills[1][0].id).amount_left == 5
    assert book.depth == (5, 4)
    assert book.ltp == 97
    book.validate()


def test_incoming_remainder_rests_as_partial_match() -> None:
    book = ladder()
    taker = ask(95, 25, trader=3)
    status, fills, _ = book.submit(taker, NOW)
    assert status is Status.PARTIAL_MATCH
    assert [amount for _, _, _, amount, _, _ in fills] == [10]
    assert book.get(taker.id).amount_left == 15
    assert taker.amount == 25
    assert book.best_ask == 95 and book.best_bid == 94
    book.validate()


def test_time_priority_within_a_level_and_partial_fill_keeps_place() -> None:
    book = Book(MARKET)
    first, second = ask(100, 10, trader=1), ask(100, 10, trader=2)
    book.submit(first, NOW)
    book.submit(second, NOW)
    book.submit(bid(100, 4, trader=3), NOW)
    assert [o.id for o in book.levels(Side.Ask)[0].orders()] == [first.id, second.id]
    _, fills, _ = book.submit(bid(100, 8, trader=3), NOW)
    trades = [(maker.id, amount) for maker, _, _, amount, _, _ in fills]
    assert trades == [(first.id, 6), (second.id, 2)]
    book.validate()


def test_self_trade_is_skipped_and_book_ends_crossed_with_negative_spread() -> None:
    book = Book(MARKET)
    own_ask = ask(100, 10, trader=1)
    other_ask = ask(101, 10, trader=2)
    book.submit(own_ask, NOW)
    book.submit(other_ask, NOW)
    status, fills, _ = book.submit(bid(102, 15, trader=1), NOW)
    assert status is Status.PARTIAL_MATCH
    assert [(maker.id, amount) for maker, _, _, amount, _, _ in fills] == [(other_ask.id, 10)]
    assert book.get(own_ask.id).amount_left == 10
    assert (book.best_bid, book.best_ask) == (102, 100)
    assert book.crossed
    assert book.spread == -2
    book.validate()
    # Another trader's bid still reaches the skipped ask.
    status, fills, _ = book.submit(bid(100, 10, trader=3), NOW)
    assert [(maker.id, amount) for maker, _, _, amount, _, _ in fills] == [(own_ask.id, 10)]
    book.validate()


def test_self_trade_skip_within_a_level_matches_the_next_order() -> None:
    book = Book(MARKET)
    own = ask(100, 5, trader=1)
    other = ask(100, 5, trader=2)
    book.submit(own, NOW)
    book.submit(other, NOW)
    status, fills, _ = book.submit(bid(100, 5, trader=1), NOW)
    assert status is Status.FULL_MATCH
    assert [maker.id for maker, *_ in fills] == [other.id]
    assert [o.id for o in book.orders()] == [own.id]
    book.validate()


def test_cancel_partly_filled_order() -> None:
    book = ladder()
    book.submit(bid(96, 3, trader=3), NOW)
    maker = next(iter(book.levels(Side.Ask)[0].orders()))
    assert maker.amount_left == 7
    cancelled = book.cancel(maker.id)
    assert cancelled is maker
    assert book.best_ask == 97
    assert book.depth == (5, 4)
    with pytest.raises(OrderNotFound):
        book.get(maker.id)
    with pytest.raises(OrderNotFound):
        book.cancel(maker.id)
    book.validate()


def test_expired_resting_order_is_passed_over_and_removed() -> None:
    book = Book(MARKET)
    short = ask(100, 10, trader=1, expiration=NOW + 10)
    long = ask(101, 10, trader=2)
    book.submit(short, NOW)
    book.submit(long, NOW)
    _, fills, _ = book.submit(bid(101, 10, trader=3), NOW + 10)
    assert [(maker.id, price) for maker, _, price, *_ in fills] == [(long.id, 101)]
    assert short.id not in book
    assert len(book) == 0
    book.validate()


def test_expired_order_is_refused_on_entry() -> None:
    book = Book(MARKET)
    with pytest.raises(OrderExpired):
        book.submit(bid(100, 1, expiration=NOW), NOW)
    with pytest.raises(OrderExpired):
        book.check_entry(bid(100, 1, expiration=NOW - 1), NOW)
    assert len(book) == 0


def test_sweep_expired_removes_only_what_expired() -> None:
    book = Book(MARKET)
    soon = bid(90, 1, expiration=NOW + 5)
    later = bid(91, 1, expiration=NOW + 50)
    book.submit(soon, NOW)
    book.submit(later, NOW)
    assert book.sweep_expired(NOW + 4) == []
    assert book.sweep_expired(NOW + 5) == [soon]
    assert [o.id for o in book.orders()] == [later.id]
    book.cancel(later.id)
    assert book.sweep_expired(NOW + 100) == []
    book.validate()


def test_duplicate_id_is_refused_while_resting() -> None:
    book = Book(MARKET)
    order = bid(100, 5)
    book.submit(order, NOW)
    with pytest.raises(DuplicateOrder):
        book.check_entry(order, NOW)
    with pytest.raises(DuplicateOrder):
        book.submit(order, NOW)
    assert book.depth == (1, 0)
    book.validate()


def test_order_for_another_market_is_refused() -> None:
    book = Book(MARKET)
    with pytest.raises(MarketMismatch):
        book.submit(bid(100, 5, market="0x" + "33" * 20), NOW)
    assert len(book) == 0


def test_largest_amounts_and_prices_are_exact() -> None:
    book = Book(MARKET)
    maker = ask(MAX_UINT128, MAX_UINT128, trader=1)
    book.submit(maker, NOW)
    status, fills, _ = book.submit(bid(MAX_UINT128, MAX_UINT128 - 1, trader=2), NOW)
    assert status is Status.FULL_MATCH
    [(_, _, price, amount, _, _)] = fills
    assert amount == MAX_UINT128 - 1
    assert price == MAX_UINT128
    assert book.get(maker.id).amount_left == 1
    assert book.ltp == MAX_UINT128
    book.validate()


def test_orders_of_a_user_in_acceptance_order() -> None:
    book = ladder()
    mine = [o.id for o in book.orders_of(user(2))]
    assert len(mine) == 5
    assert [book.get(i).price for i in mine] == [96, 97, 98, 99, 100]
    assert book.orders_of(user(42)) == []


def test_depth_levels_are_best_first_with_totals_and_counts() -> None:
    book = ladder()
    book.submit(bid(95, 4, trader=3), NOW)
    book.submit(ask(96, 1, trader=3), NOW)
    assert book.depth_levels(Side.Bid, 2) == [(95, 14, 2), (94, 10, 1)]
    assert book.depth_levels(Side.Ask, 1) == [(96, 11, 2)]
    assert len(book.depth_levels(Side.Ask, 1000)) == 5
    assert book.level_at(Side.Bid, 95) == (14, 2)
    assert book.level_at(Side.Bid, 96) is None
    assert book.level_at(Side.Ask, 100) == (10, 1)
    book.validate()


def test_a_deep_level_eaten_from_the_front_keeps_its_queue() -> None:
    book = Book(MARKET)
    makers = [ask(100, 1, trader=1) for _ in range(300)]
    for maker in makers:
        book.submit(maker, NOW)
    for step in range(0, 290, 7):
        book.cancel(makers[step + 3].id)
        _, fills, _ = book.submit(bid(100, 5, trader=2), NOW)
        assert len(fills) == 5
        book.validate()
    [level] = book.levels(Side.Ask)
    assert [o.id for o in level.orders()] == [o.id for o in makers if o.amount_left]
    assert book.level_at(Side.Ask, 100) == (len(level.orders()), len(level.orders()))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["bid", "ask", "cancel"]), st.integers(90, 110), st.integers(0, 3)
        ),
        max_size=120,
    ),
    st.integers(1, 40),
)
def test_levels_read_after_many_unread_changes_are_the_resting_prices(
    steps: list[tuple[str, int, int]], read_every: int
) -> None:
    """Level changes reach the sorted keys only when something reads them in order:
    however many pile up unread, a read lists exactly the prices where orders rest."""
    book = Book(MARKET)
    placed: list[Order] = []
    for n, (kind, price, trader) in enumerate(steps):
        if kind == "cancel":
            resting = [order for order in placed if order.id in book]
            if resting:
                book.cancel(resting[price % len(resting)].id)
        else:
            order = (bid if kind == "bid" else ask)(price, 1 + trader, trader=trader)
            book.submit(order, NOW)
            placed.append(order)
        if n % read_every == 0:
            book.validate()
            for side in Side:
                prices = {o.price for o in book.in_arrival_order() if o.side is side}
                best_first = sorted(prices, reverse=side is Side.Bid)
                assert [level.price for level in book.levels(side)] == best_first
    book.validate()
