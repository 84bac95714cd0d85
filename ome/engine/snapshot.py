"""The engine's part of the dumpfile: every book as JSON-able data, and back.

Format (version 2):

    {"version": 2,
     "markets": [{"market": "0x…", "ltp": "96", "seq": 17, "orders": [order, …],
                  "finished": [["0x<id>", "<expiration>"], …]}, …]}

Orders are the wire order objects, in the order the book accepted them. Within
a price level that is its queue order, so resting them again in that order
rebuilds every level, the id and user indexes, depth and volumes exactly.
`seq` is the book's command sequence number; `finished` its finished-order
memory, sorted by id, so that equal books give equal snapshots. On load
every id is recomputed from the signed fields and `Book.validate` must pass;
the whole load is linear in the snapshot's size. Version 1 (no `seq`, no
`finished`) still loads, as seq 0 with nothing remembered.
"""

from typing import Any

from ome.engine.book import Book
from ome.engine.errors import BookIntegrityError, SnapshotError
from ome.engine.exchange import Exchange
from ome.engine.orders import Order, Side, order_id

VERSION = 2
_READABLE = (1, 2)


def to_dict(exchange: Exchange) -> dict[str, Any]:
    return {
        "version": VERSION,
        "markets": [_book_to_dict(book) for book in exchange.books.values()],
    }


def from_dict(data: Any) -> Exchange:
    """Rebuild an exchange; raise SnapshotError on anything malformed or inconsistent."""
    version = data.get("version") if isinstance(data, dict) else None
    if version not in _READABLE:
        raise SnapshotError(f"unsupported snapshot version {version!r}, expected {VERSION}")
    exchange = Exchange()
    try:
        for entry in data["markets"]:
            book = exchange.create(entry["market"])
            book.ltp = _uint(entry["ltp"])
            if version >= 2:
                book.seq = _uint(entry["seq"])
            for raw in entry["orders"]:
                order = _order_from_dict(raw)
                if order.target_tracer != book.market:
                    raise SnapshotError(f"order {order.id} is filed under market {book.market}")
                if order.id in book:
                    raise SnapshotError(f"order {order.id} appears twice")
                book.restore(order)
            if version >= 2:
                _restore_finished(book, entry["finished"])
            book.validate()
    except SnapshotError:
        raise
    except BookIntegrityError as exc:
        raise SnapshotError(f"inconsistent snapshot: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"malformed snapshot: {type(exc).__name__}: {exc}") from exc
    return exchange


def _book_to_dict(book: Book) -> dict[str, Any]:
    return {
        "market": book.market,
        "ltp": str(book.ltp),
        "seq": book.seq,
        "orders": [order.to_dict() for order in book.in_arrival_order()],
        "finished": [[oid, str(expiration)] for oid, expiration in book.finished()],
    }


def _restore_finished(book: Book, finished: Any) -> None:
    seen: set[str] = set()
    for oid, expiration in finished:
        if not isinstance(oid, str) or oid in seen:
            raise SnapshotError(f"finished id {oid!r} is malformed or appears twice")
        if oid in book:
            raise SnapshotError(f"order {oid} is both resting and finished")
        seen.add(oid)
        book.remember(oid, _uint(expiration))


def _uint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not a number {value!r}")
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
