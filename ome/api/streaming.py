"""The full-book answers (`GET /book/{market}`, `GET /book/{market}/order`), streamed.

Each answer is a view of one moment: the handler captures, synchronously and
before its first await, every level's orders and each order's `amount_left`
(the engine changes an order's amount in place, so the amounts are copied,
not read later). The capture is a copy of each level's queue and a `map` over
it, C loops that take milliseconds even at hundreds of thousands of orders.
Only then is the JSON encoded, a bounded batch of orders at a time. An
answer that fits in one chunk is sent whole; a bigger one is written out
chunk by chunk (chunked transfer) with a turn of the event loop between, so other
requests (orders above all) are served while a big answer is on its way and
none waits for a whole book to be encoded. The bytes are exactly those of
`ome.wire.book_json` / `orders_json` at the moment of the capture.

Answers are gzip-compressed when the request's `Accept-Encoding` allows gzip;
aiohttp compresses chunks of more than a few KB in a worker thread, so that
too stays off the event loop.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from operator import attrgetter
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.payload import AsyncIterablePayload
from aiohttp.web import ContentCoding

from ome.engine import Book, Order, Side

# Orders encoded per batch, and bytes written per chunk: each a millisecond or so of work.
BATCH = 150
CHUNK = 64 * 1024

Captured = list[tuple[int, list[Order], list[int]]]
"""One side's levels as they stood: (price, the queue's orders, their amount_left)."""

_amount_left = attrgetter("amount_left")


def capture(book: Book, side: Side) -> Captured:
    """One side of the book at this moment, best first (dead entries included, amount 0)."""
    captured = []
    for level in book.levels(side):
        orders = list(level.queue)
        captured.append((level.price, orders, list(map(_amount_left, orders))))
    return captured


def _orders(orders: list[Order], amounts: list[int]) -> Iterator[bytes]:
    """The live orders as comma-separated JSON objects, a batch per piece."""
    first = True
    for start in range(0, len(orders), BATCH):
        end = start + BATCH
        batch = [
            order.to_dict(left)
            for order, left in zip(orders[start:end], amounts[start:end], strict=True)
            if left
        ]
        if batch:
            data = orjson.dumps(batch)[1:-1]
            yield data if first else b"," + data
            first = False


def _levels(captured: Captured) -> Iterator[bytes]:
    """`{"price": [order, …], …}` best first."""
    yield b"{"
    for index, (price, orders, amounts) in enumerate(captured):
        yield b'%s"%d":[' % (b"," if index else b"", price)
        yield from _orders(orders, amounts)
        yield b"]"
    yield b"}"


def book_pieces(book: Book) -> Iterator[bytes]:
    """The book object of `ome.wire.book_json`, captured now and encoded as it is iterated."""
    bids, asks = capture(book, Side.Bid), capture(book, Side.Ask)
    tail: dict[str, Any] = {
        "ltp": str(book.ltp),
        "depth": list(book.depth),
        "crossed": book.crossed,
        "spread": str(book.spread),
    }
    market = orjson.dumps(book.market)

    def pieces() -> Iterator[bytes]:
        yield b'{"market":' + market + b',"bids":'
        yield from _levels(bids)
        yield b',"asks":'
        yield from _levels(asks)
        yield b"," + orjson.dumps(tail)[1:]

    return pieces()


def orders_pieces(book: Book) -> Iterator[bytes]:
    """Every resting order (bids best first, then asks), captured now, encoded as iterated."""
    captured = capture(book, Side.Bid) + capture(book, Side.Ask)

    def pieces() -> Iterator[bytes]:
        yield b"["
        separator = b""
        for _, orders, amounts in captured:
            for index, piece in enumerate(_orders(orders, amounts)):
                # _orders separates its own pieces; only a level's first needs one.
                yield separator + piece if index == 0 else piece
                separator = b","
        yield b"]"

    return pieces()


def _first_chunk(pieces: Iterator[bytes]) -> tuple[bytes, bool]:
    """Up to a chunk of the answer, and whether that was all of it."""
    buffer: list[bytes] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK:
            return b"".join(buffer), False
    return b"".join(buffer), True


async def _chunks(first: bytes, pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    while True:
        # Let every other request have its turn before the next chunk is encoded.
        await asyncio.sleep(0)
        chunk, last = _first_chunk(pieces)
        if chunk:
            yield chunk
        if last:
            return


def accepts_gzip(request: web.Request) -> bool:
    """Whether `Accept-Encoding` allows gzip (not listed with q=0)."""
    for entry in request.headers.get(hdrs.ACCEPT_ENCODING, "").split(","):
        coding, _, params = entry.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip().lower()
            return not (quality.startswith("q=") and _zero(quality[2:]))
    return False


def _zero(quality: str) -> bool:
    try:
        return float(quality) == 0
    except ValueError:
        return False


def streamed_json(request: web.Request, pieces: Iterator[bytes]) -> web.Response:
    """A JSON answer from `pieces`: whole when it fits in a chunk, else written chunk by chunk.

    gzip-compressed when the client accepts it.
    """
    first, last = _first_chunk(pieces)
    if last:
        response = web.Response(body=first, content_type="application/json")
    else:
        response = web.Response(
            body=AsyncIterablePayload(_chunks(first, pieces), content_type="application/json")
        )
    response.headers[hdrs.VARY] = hdrs.ACCEPT_ENCODING
    if accepts_gzip(request):
        response.enable_compression(ContentCoding.gzip)
    return response
