"""The engine's part of the dumpfile: every book as JSON-able data, and back.

Format (version 1):

    {"version": 1,
     "markets": [{"market": "0x…", "ltp": "96", "orders": [order, …]}, …]}

Orders are the wire order objects, in the order the book accepted them. Within
a price level that is its queue order, so resting them again in that order
rebuilds every level, the id and user indexes, depth and volumes exactly. On
load every id is recomputed from the signed fields and `check_invariants`
must pass.
"""

from typing import Any

from ome.engine.book import Book
from ome.engine.errors import SnapshotError
from ome.engine.exchange import Exchange
from ome.engine.orders import Order, Side, order_id

VERSION = 1


def to_dict(exchange: Exchange) -> dict[str, Any]:
    return {
        "version": VERSION,
        "markets": [_book_to_dict(book) for book in exchange.books.values()],
    }


def from_dict(data: Any) -> Exchange:
    """Rebuild an exchange; raise SnapshotError on anything malformed or inconsistent."""
    version = data.get("version") if isinstance(data, dict) else None
    if version != VERSION:
        raise SnapshotError(f"unsupported snapshot version {version!r}, expected {VERSION}")
    exchange = Exchange()
    try:
        for entry in data["markets"]:
            book = exchange.create(entry["market"])
            book.ltp = _uint(entry["ltp"])
            for raw in entry["orders"]:
                order = _order_from_dict(raw)
                if order.target_tracer != book.market:
                    raise SnapshotError(f"order {order.id} is filed under market {book.market}")
                if order.id in book:
                    raise SnapshotError(f"order {order.id} appears twice")
                book.restore(order)
            book.check_invariants()
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as exc:
        raise SnapshotError(f"malformed snapshot: {type(exc).__name__}: {exc}") from exc
    return exchange


def _book_to_dict(book: Book) -> dict[str, Any]:
    return {
        "market": book.market,
        "ltp": str(book.ltp),
        "orders": [order.to_dict() for order in book.in_arrival_order()],
    }


def _uint(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"negative number {value!r}")
    return number


def _order_from_dict(raw: dict[str, Any]) -> Order:
    order = Order(
        id=raw["id"],
        user=raw["user"],
        target_tracer=raw["target_tracer"],
        side=Side[raw["side"]],
        price=_uint(raw["price"]),
        amount=_uint(raw["amount"]),
        amount_left=_uint(raw["amount_left"]),
        expiration=_uint(raw["expiration"]),
        created=_uint(raw["created"]),
        signed_data=raw["signed_data"],
    )
    expected = order_id(
        order.user,
        order.target_tracer,
        order.price,
        order.amount,
        order.side,
        order.expiration,
        order.created,
    )
    if order.id != expected:
        raise SnapshotError(f"order {order.id} does not match its fields (id {expected})")
    if not 0 < order.amount_left <= order.amount:
        raise SnapshotError(f"order {order.id} has amount_left outside 1..amount")
    return order
