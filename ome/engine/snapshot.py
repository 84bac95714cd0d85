"""The engine's part of the dumpfile: every book as JSON-able data, and back.

Format (version 3):

    {"version": 3,
     "markets": [{"market": "0x…", "ltp": "96", "seq": 17,
                  "orders": {"id": ["0x…", …], "user": […], "side": [0, 1, …],
                             "price": [96, …], "amount": […], "amount_left": […],
                             "expiration": […], "created": […], "signed_data": […]},
                  "finished": [["0x<id>", "<expiration>"], …]}, …]}

`orders` holds one column per field of the wire order object (the market is
the book's; `side` is 0 for Bid, 1 for Ask; numbers are JSON integers, but
decimal strings from 2^63 on), row i of every column being the i-th order
the book accepted. Within a price level that is its queue order, so resting them
again in that order rebuilds every level, the id and user indexes, depth
and volumes exactly. Columns rather than an object per order: the file is
half the size, and parsing, converting and checking a column are loops in C.
`seq` is the book's command sequence number; `finished` its finished-order
memory, sorted by id, so that equal books give equal snapshots.

Version 2 is the same with `orders` as a list of wire order objects; version
1 also lacks `seq` and `finished` (it loads as seq 0 with nothing
remembered). Both still load.

`from_dict` checks every field it reads and raises SnapshotError, in time
linear in the snapshot's size. An order's id is the hash of its signed
fields; recomputing it costs more than the rest of the load, so it is
skipped when the caller vouches for the ids (`ids_checked`: the dumpfile's
checksum matched what this service wrote). The indexes `Book.restore`
builds from the checked orders are consistent by construction, and the
number of distinct ids and of resting orders must agree.
"""

from collections import deque
from itertools import chain, repeat
from operator import le
from typing import Any

from ome.engine.book import Book
from ome.engine.errors import SnapshotError
from ome.engine.exchange import Exchange
from ome.engine.orders import Order, Side, make_order, order_id

VERSION = 3
_READABLE = (1, 2, 3)
# Column names in the order of `Order`'s fields after `target_tracer`.
_COLUMNS = (
    "id",
    "user",
    "side",
    "price",
    "amount",
    "amount_left",
    "expiration",
    "created",
    "signed_data",
)
_SIDES = {int(side): side for side in Side}
_LARGE = 1 << 63


def to_dict(exchange: Exchange) -> dict[str, Any]:
    return {
        "version": VERSION,
        "markets": [_book_to_dict(book) for book in exchange.books.values()],
    }


def from_dict(data: Any, *, ids_checked: bool = False) -> Exchange:
    """Rebuild an exchange; raise SnapshotError on anything malformed or inconsistent.

    `ids_checked`: the caller knows each order id matches its fields.
    """
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
            if version >= 3:
                orders = _orders_from_columns(book.market, entry["orders"])
            else:
                orders = [_order_from_dict(book.market, raw) for raw in entry["orders"]]
            if not ids_checked:
                for order in orders:
                    _check_id(order)
            # Consumes the map in C: one restore per order is the whole loop.
            deque(map(book.restore, orders), maxlen=0)
            if book.index_sizes()["ids"] != len(orders):
                raise SnapshotError(f"market {book.market}: an order id appears twice")
            if version >= 2:
                _restore_finished(book, entry["finished"])
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"malformed snapshot: {type(exc).__name__}: {exc}") from exc
    return exchange


def _book_to_dict(book: Book) -> dict[str, Any]:
    orders = list(book.in_arrival_order())
    return {
        "market": book.market,
        "ltp": str(book.ltp),
        "seq": book.seq,
        "orders": {
            "id": [order.id for order in orders],
            "user": [order.user for order in orders],
            "side": [int(order.side) for order in orders],
            "price": _numbers([order.price for order in orders]),
            "amount": _numbers([order.amount for order in orders]),
            "amount_left": _numbers([order.amount_left for order in orders]),
            "expiration": _numbers([order.expiration for order in orders]),
            "created": _numbers([order.created for order in orders]),
            "signed_data": [order.signed_data for order in orders],
        },
        "finished": [[oid, str(expiration)] for oid, expiration in book.finished()],
    }


def _orders_from_columns(market: str, columns: dict[str, Any]) -> list[Order]:
    """The orders of a version-3 book, every field checked."""
    if set(columns) != set(_COLUMNS) or len({len(columns[name]) for name in _COLUMNS}) != 1:
        raise SnapshotError(f"market {market}: order columns {sorted(columns)} do not match")
    ids, users, sides, prices, amounts, lefts, expirations, created, signed = (
        columns[name] for name in _COLUMNS
    )
    if not all(map(isinstance, chain(ids, users, signed), repeat(str))):
        raise SnapshotError(f"market {market}: an order's id, user or signature is not a string")
    numbers = [_uints(prices), _uints(amounts), _uints(lefts), _uints(expirations), _uints(created)]
    prices, amounts, lefts, expirations, created = numbers
    if lefts and (min(lefts) == 0 or not all(map(le, lefts, amounts))):
        raise SnapshotError(f"market {market}: an order has amount_left outside 1..amount")
    return list(
        map(
            make_order,
            ids,
            users,
            repeat(market),
            map(_SIDES.__getitem__, sides),
            prices,
            amounts,
            lefts,
            expirations,
            created,
            signed,
        )
    )


def _numbers(values: list[int]) -> list[int | str]:
    """JSON integers, but decimal strings from 2^63 on (beyond what JSON readers keep exact)."""
    if not values or max(values) < _LARGE:
        return list(values)
    return [value if value < _LARGE else str(value) for value in values]


def _uints(column: list[Any]) -> list[int]:
    """A column of `_numbers` as ints; ValueError on anything else or a negative one."""
    if all(map(isinstance, column, repeat(int))):
        numbers = column
    else:
        numbers = [value if type(value) is int else _large(value) for value in column]
    if numbers and min(numbers) < 0:
        raise ValueError("a number is negative")
    return numbers


def _large(value: Any) -> int:
    if type(value) is not str or int(value) < _LARGE:
        raise ValueError(f"not a number of a snapshot's order: {value!r}")
    return int(value)


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


def _order_from_dict(market: str, raw: dict[str, Any]) -> Order:
    """An order of a version-1 or -2 book, every field checked but its id."""
    order = make_order(
        raw["id"],
        raw["user"],
        raw["target_tracer"],
        Side[raw["side"]],
        _uint(raw["price"]),
        _uint(raw["amount"]),
        _uint(raw["amount_left"]),
        _uint(raw["expiration"]),
        _uint(raw["created"]),
        raw["signed_data"],
    )
    if order.target_tracer != market:
        raise SnapshotError(f"order {order.id} is filed under market {market}")
    if not 0 < order.amount_left <= order.amount:
        raise SnapshotError(f"order {order.id} has amount_left outside 1..amount")
    return order


def _check_id(order: Order) -> None:
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
