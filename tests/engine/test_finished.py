"""Finished-order memory, the expired makers of a submit, owner checks, limits' reads,
and indexes that follow the live book."""

import heapq
import subprocess
import sys
from dataclasses import replace

import pytest

from ome.engine import (
    Book,
    BookIntegrityError,
    DuplicateOrder,
    Exchange,
    MarketExists,
    MarketLimitReached,
    NotOwner,
    OrderExpired,
    OrderFinished,
    OrderNotFound,
    Side,
    Status,
)
from tests.engine.helpers import MARKET, NOW, ask, bid, user

EXPIRES = NOW + 100


def test_filled_maker_and_taker_are_refused_until_their_expiration() -> None:
    book = Book(MARKET)
    maker = ask(100, 5, trader=1, expiration=EXPIRES)
    book.submit(maker, NOW)
    taker = bid(100, 5, trader=2, expiration=EXPIRES + 1)
    assert book.submit(taker, NOW)[0] is Status.FULL_MATCH
    for finished in (maker, taker):
        again = replace(finished, amount_left=finished.amount)
        with pytest.raises(OrderFinished) as refused:
            book.check_entry(again, NOW + 1)
        assert str(refused.value) == "Order was already filled or cancelled"
        assert isinstance(refused.value, DuplicateOrder)
        with pytest.raises(OrderFinished):
            book.submit(again, NOW + 1)
    assert len(book) == 0
    assert book.finished() == sorted([(maker.id, EXPIRES), (taker.id, EXPIRES + 1)])
    book.validate()


def test_cancelled_id_is_remembered_until_a_sweep_at_its_expiration() -> None:
    book = Book(MARKET)
    order = bid(100, 5, expiration=EXPIRES)
    book.submit(order, NOW)
    book.cancel(order.id)
    resubmitted = bid(100, 5, expiration=EXPIRES)
    resubmitted.id = order.id
    with pytest.raises(OrderFinished):
        book.submit(resubmitted, EXPIRES - 1)
    assert book.sweep_expired(EXPIRES - 1) == []
    assert book.finished() == [(order.id, EXPIRES)]
    assert book.sweep_expired(EXPIRES) == []
    assert book.finished() == []
    with pytest.raises(OrderExpired):
        book.submit(resubmitted, EXPIRES)
    book.validate()


def test_makers_expired_while_matching_are_reported_dead() -> None:
    book = Book(MARKET)
    stale = ask(100, 10, trader=1, expiration=NOW + 10)
    fresh = ask(101, 10, trader=2)
    book.submit(stale, NOW)
    book.submit(fresh, NOW)
    status, fills, expired = book.submit(bid(101, 4, trader=3), NOW + 10)
    assert status is Status.FULL_MATCH
    assert [maker.id for maker, *_ in fills] == [fresh.id]
    assert expired == [stale] and stale.amount_left == 0
    status, fills, expired = book.submit(bid(90, 1, trader=3), NOW + 10)
    assert (status, fills, expired) == (Status.ADD, [], [])
    book.validate()


def test_cancel_by_another_owner_changes_nothing() -> None:
    book = Book(MARKET)
    order = bid(100, 5, trader=1)
    book.submit(order, NOW)
    with pytest.raises(NotOwner) as refused:
        book.cancel(order.id, owner=user(2))
    assert str(refused.value) == "Not the order's owner"
    assert book.get(order.id).amount_left == 5
    with pytest.raises(OrderNotFound):
        book.cancel("0x" + "00" * 32, owner=user(2))
    assert book.cancel(order.id, owner=user(1)) is order
    with pytest.raises(OrderNotFound):
        book.cancel(order.id, owner=user(1))
    book.validate()


def test_resting_count_and_fillable_follow_matching() -> None:
    book = Book(MARKET)
    book.submit(ask(100, 5, trader=1), NOW)
    book.submit(ask(101, 7, trader=2), NOW)
    book.submit(ask(102, 9, trader=2, expiration=NOW + 1), NOW)
    book.submit(ask(103, 11, trader=2), NOW)
    assert (book.resting_count(user(1)), book.resting_count(user(2))) == (1, 3)
    assert book.resting_count(user(9)) == 0
    # Trader 1's own ask is passed over, the expired one too, and the limit stops at 103.
    assert book.fillable(bid(102, 100, trader=1), NOW + 1) == 7
    assert book.fillable(bid(103, 100, trader=1), NOW + 1) == 18
    assert book.fillable(bid(103, 10, trader=3), NOW + 1) == 10
    assert book.fillable(bid(99, 10, trader=3), NOW) == 0
    assert book.depth == (0, 4)
    book.validate()


def test_exchange_refuses_markets_beyond_its_limit() -> None:
    exchange = Exchange()
    exchange.create("0x" + "01" * 20, limit=2)
    exchange.create("0x" + "02" * 20, limit=2)
    with pytest.raises(MarketExists):
        exchange.create("0x" + "02" * 20, limit=2)
    with pytest.raises(MarketLimitReached) as refused:
        exchange.create("0x" + "03" * 20, limit=2)
    assert str(refused.value) == "Market limit reached: 2 markets"
    assert exchange.markets() == ["0x" + "01" * 20, "0x" + "02" * 20]
    exchange.create("0x" + "03" * 20)


def _many(count: int) -> tuple[Book, list[str]]:
    book = Book(MARKET)
    ids = []
    for i in range(count):
        order = ask(1000 + i % 500, 5, trader=i % 7, expiration=EXPIRES + i % 300)
        book.submit(order, NOW)
        ids.append(order.id)
    return book, ids


def _sizes_without_memory(book: Book) -> dict[str, int]:
    return {k: v for k, v in book.index_sizes().items() if not k.startswith("finished")}


def test_cancelling_every_order_empties_every_index() -> None:
    book, ids = _many(100_000)
    for oid in ids:
        book.cancel(oid)
    assert set(_sizes_without_memory(book).values()) == {0}
    assert book.index_sizes()["finished"] == 100_000
    book.validate()
    book.sweep_expired(EXPIRES + 300)
    assert set(book.index_sizes().values()) == {0}


def test_filling_every_order_empties_every_index() -> None:
    book, _ = _many(20_000)
    book.submit(bid(10_000, 5 * 20_000, trader=99), NOW)
    assert set(_sizes_without_memory(book).values()) == {0}
    assert book.index_sizes()["finished"] == 20_001
    book.validate()


def test_indexes_stay_proportional_to_the_live_book() -> None:
    book, ids = _many(30_000)
    for oid in ids[:-1000]:
        book.cancel(oid)
    sizes = book.index_sizes()
    for name in ("ids", "user_entries", "expiry_entries"):
        assert sizes[name] <= 3 * 1000 + 1024, (name, sizes)
    book.validate()


def test_validate_raises_a_typed_error_even_under_python_O() -> None:
    script = (
        "from ome.engine import Book, BookIntegrityError, Order, Side\n"
        "book = Book('0x' + '22' * 20)\n"
        "book.submit(Order.create(user='0x' + '11' * 20, target_tracer='0x' + '22' * 20,"
        " side=Side.Bid, price=5, amount=3, expiration=2**40, created=1), 1)\n"
        "book.levels(Side.Bid)[0].volume += 1\n"
        "try:\n    book.validate()\nexcept BookIntegrityError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, check=True
    )
    assert "volume 4 != 3" in out.stdout


def test_validate_finds_a_lost_price_key() -> None:
    book = Book(MARKET)
    for price in range(100, 110):
        book.submit(ask(price, 1), NOW)
    book.validate()
    book.levels(Side.Ask)  # a read in order: the sorted keys now list every level
    book._keys[Side.Ask].remove(105)  # type: ignore[attr-defined]
    with pytest.raises(BookIntegrityError):
        book.validate()


def test_validate_finds_a_level_missing_from_the_heap() -> None:
    book = Book(MARKET)
    for price in range(100, 110):
        book.submit(ask(price, 1), NOW)
    heap = book._heaps[Side.Ask]  # type: ignore[attr-defined]
    heap.remove(105)
    heapq.heapify(heap)
    with pytest.raises(BookIntegrityError):
        book.validate()
