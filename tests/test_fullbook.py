"""The full-book cache against `ome.wire`, after random order flow.

Commands go through `Machine.apply` and the cache follows their events, as
it follows the live path. With blocks of 3 orders and rounds of 5, so that
levels span several blocks and reads catch up in several rounds, the test
checks at random points that a capture's answers are byte for byte
`book_json` / `orders_json` of that moment, and, after the flow went on,
that every capture made earlier still yields the bytes of its own moment.
"""

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome import fullbook
from ome.api.streaming import book_pieces, orders_pieces
from ome.commands import Machine
from ome.engine import EngineError, Order, Side
from ome.fullbook import FullBooks
from ome.records import CreateMarket
from ome.state import State
from ome.wire import book_json, orders_json
from tests.builders import MARKET, NOW, captured_logs
from tests.flows import CANCEL, MARKETS, TICK, command_of, places

steps = st.lists(
    st.one_of(
        places(97, 103),
        CANCEL,
        TICK,
        st.tuples(st.just("round"), st.sampled_from(MARKETS)),
        st.tuples(st.just("read"), st.sampled_from(MARKETS)),
        st.tuples(st.just("restart")),
    ),
    max_size=150,
)


class Flow:
    """A state, its command path's step and the cache following it."""

    def __init__(self) -> None:
        self.machine = Machine(State())
        self.books = FullBooks(self.machine.state.exchange)
        self.books.build()
        self.now = NOW
        self.seq = 0
        self.placed: list[Order] = []
        for market in MARKETS:
            self.apply(CreateMarket(market))

    def apply(self, command: Any) -> None:
        try:
            applied = self.machine.apply(self.seq + 1, self.now, command)
        except EngineError:
            return
        self.seq += 1
        self.books.follow(applied)

    def step(self, step: tuple[Any, ...]) -> None:
        if step[0] in ("place", "cancel", "tick"):
            if step[0] == "tick":
                self.now += step[1]
            command = command_of(step, self.now, self.placed)
            if command is not None:
                self.apply(command)
        elif step[0] == "round":
            self.books.cache(self.machine.state.exchange.get(step[1])).flush_round()
        elif step[0] == "restart":
            # As a start does: the cache built from the state as it stands.
            self.books = FullBooks(self.machine.state.exchange)
            self.books.build()


def flow_after_places(count: int) -> Flow:
    """A flow that placed `count` small orders on MARKET, over a few traders and crossing prices."""
    flow = Flow()
    for i in range(count):
        flow.step(("place", MARKET, 1 + i % 4, Side(i % 2), 97 + i % 7, 5, 20))
    return flow


def expected(flow: Flow, market: str) -> tuple[bytes, bytes]:
    book = flow.machine.state.exchange.get(market)
    return orjson.dumps(book_json(book)), orjson.dumps(orders_json(book.orders()))


def read(flow: Flow, market: str) -> tuple[Iterator[bytes], Iterator[bytes]]:
    book = flow.machine.state.exchange.get(market)
    captured = flow.books.capture_now(book)
    return book_pieces(book, captured), orders_pieces(captured)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fullbook, "BLOCK", 3)
    monkeypatch.setattr(fullbook, "ROUND", 5)


@settings(max_examples=200, deadline=None)
@given(flow_steps=steps)
def test_every_capture_is_the_book_of_its_moment_byte_for_byte(
    flow_steps: list[tuple[Any, ...]],
) -> None:
    flow = Flow()
    reads = []
    for step in flow_steps:
        flow.step(step)
        if step[0] == "read":
            # Joined later, after the flow went on.
            reads.append((expected(flow, step[1]), read(flow, step[1])))
    for (book_bytes, orders_bytes), (book_read, orders_read) in reads:
        assert b"".join(book_read) == book_bytes
        assert b"".join(orders_read) == orders_bytes
    for market in MARKETS:
        book_read, orders_read = read(flow, market)
        assert (b"".join(book_read), b"".join(orders_read)) == expected(flow, market)


def test_a_read_catches_up_in_rounds_and_captures_the_orders_that_came_meanwhile() -> None:
    flow = flow_after_places(60)
    book = flow.machine.state.exchange.get(MARKET)
    cache = flow.books.cache(book)
    assert cache.behind()
    capture = flow.books.capture(book)
    # One round, then the read gives the others their turn: a command comes in meanwhile.
    capture.send(None)
    flow.step(("place", MARKET, 2, Side.Ask, 99, 7, 20))
    book_bytes, _ = expected(flow, MARKET)
    with pytest.raises(StopIteration) as finished:
        while True:
            capture.send(None)
    assert b"".join(book_pieces(book, finished.value.value)) == book_bytes


def test_a_failing_sink_costs_a_rebuild_not_a_wrong_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = flow_after_places(20)

    def fail(self: fullbook.BookCache, order: Order) -> None:
        raise RuntimeError("cache bug")

    with monkeypatch.context() as patched:
        patched.setattr(fullbook.BookCache, "rested", fail)
        with pytest.raises(RuntimeError):
            flow.step(("place", MARKET, 3, Side.Bid, 90, 5, 20))
    flow.step(("place", MARKET, 4, Side.Bid, 91, 5, 20))
    with captured_logs() as events:
        book_read, orders_read = read(flow, MARKET)
    assert (b"".join(book_read), b"".join(orders_read)) == expected(flow, MARKET)
    assert [event["event"] for event in events] == ["book_cache_rebuilt"]


def test_a_cache_that_disagrees_with_the_book_is_rebuilt_before_it_answers() -> None:
    flow = flow_after_places(20)
    book = flow.machine.state.exchange.get(MARKET)
    # As if an event had been made up: the cache drops an order the book holds.
    cache = flow.books.cache(book)
    cache.flush()
    cache.left(next(book.orders()))
    with captured_logs() as events:
        book_read, orders_read = read(flow, MARKET)
    assert (b"".join(book_read), b"".join(orders_read)) == expected(flow, MARKET)
    assert [event["event"] for event in events] == ["book_cache_inconsistent"]
