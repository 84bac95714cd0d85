"""Market data derived from the state and the command path's events: depth and trades.

Nothing here changes the state. Depth is read from the book's levels best
first, O(levels asked for). A command's depth changes are derived from its
events alone (the makers it traded with, the order it rested, the orders
cancelled or expired), never by comparing books: for each (side, price) the
command touched, the level as it stands right after the command, amount 0
when nothing rests there any more. The sink that calls `depth_changes` runs
right after `Machine.apply`, before any other request, so "after the
command" is exactly the state it reads.

Every message carries the market's `seq` (`Book.seq`), which the command
path increments once per command that changed that book: a subscriber sees
consecutive numbers, and a gap means it missed an update.
"""

from collections import deque
from collections.abc import Iterable
from itertools import islice
from typing import Any

from ome.commands import Applied, OrderCancelled, OrderExpired, OrderRested, Trade
from ome.engine import Book, Side
from ome.state import TradeRecord
from ome.wire import trade_json

DEFAULT_LEVELS = 50
MAX_LEVELS = 1000
DEFAULT_TRADES = 100
MAX_TRADES = 1000

Level = list[Any]
"""[price, amount, orders] as sent: price and amount decimal strings, orders an int."""


def _levels(book: Book, side: Side, n: int) -> list[Level]:
    return [[str(price), str(amount), count] for price, amount, count in book.depth_levels(side, n)]


def depth_json(book: Book, levels: int) -> dict[str, Any]:
    """The depth object: the best `levels` of each side, best first."""
    return {
        "market": book.market,
        "seq": book.seq,
        "bids": _levels(book, Side.Bid, levels),
        "asks": _levels(book, Side.Ask, levels),
        "ltp": str(book.ltp),
        "spread": str(book.spread),
        "crossed": book.crossed,
    }


def full_depth_json(book: Book) -> dict[str, Any]:
    """Every level of both sides: what a feed subscriber starts from."""
    return depth_json(book, len(book))


def recent_trades(history: deque[TradeRecord] | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` trades, newest first."""
    if not history:
        return []
    return [trade_json(trade) for trade in islice(reversed(history), limit)]


def touched_levels(applied: Applied) -> dict[str, set[tuple[Side, int]]]:
    """Per market, the (side, price) levels the command's events changed."""
    touched: dict[str, set[tuple[Side, int]]] = {}
    for event in applied.events:
        if isinstance(event, Trade):
            order = event.maker
        elif isinstance(event, OrderRested | OrderCancelled | OrderExpired):
            order = event.order
        else:
            continue
        market = order.target_tracer
        levels = touched.get(market)
        if levels is None:
            levels = touched[market] = set()
        levels.add((order.side, order.price))
    return touched


def depth_update(book: Book, levels: Iterable[tuple[Side, int]]) -> dict[str, Any]:
    """The depth update message for the given levels as they stand now, best first per side."""
    bids: list[Level] = []
    asks: list[Level] = []
    for side, price in sorted(levels, key=lambda level: (level[0], level[1])):
        now = book.level_at(side, price)
        amount, count = (0, 0) if now is None else now
        (bids if side is Side.Bid else asks).append([str(price), str(amount), count])
    bids.reverse()
    return {
        "type": "update",
        "channel": "depth",
        "market": book.market,
        "seq": book.seq,
        "bids": bids,
        "asks": asks,
    }


def trade_messages(applied: Applied, book: Book) -> list[dict[str, Any]]:
    """One trade message per fill of the command in `book`'s market, in the order they happened."""
    messages = []
    for event in applied.events:
        if isinstance(event, Trade) and event.market == book.market:
            message = {"type": "trade", "channel": "trades", "market": book.market}
            message.update(
                trade_json(
                    TradeRecord(
                        book.seq,
                        applied.time,
                        event.price,
                        event.amount,
                        event.maker.id,
                        event.taker.id,
                        event.taker_side,
                    )
                )
            )
            messages.append(message)
    return messages
