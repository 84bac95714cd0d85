"""The full-book answers (`GET /book/{market}`, `GET /book/{market}/order`), streamed.

Each answer is a view of one moment, captured by `ome.fullbook.FullBooks`
as the cached bytes of every level's blocks (see there): nothing is encoded
here, the pieces are joined into chunks as they are written. An answer that
fits in one chunk is sent whole; a bigger one is written out chunk by chunk
(chunked transfer) with a turn of the event loop between, so other requests
(orders above all) are served while a big answer is on its way.

Answers are gzip-compressed when the request's `Accept-Encoding` allows gzip;
aiohttp compresses chunks of more than a few KB in a worker thread, so that
too stays off the event loop.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.payload import AsyncIterablePayload
from aiohttp.web import ContentCoding

from ome.engine import Book
from ome.fullbook import Captured

# Bytes written per chunk.
CHUNK = 64 * 1024


def _levels(captured: Captured) -> Iterator[bytes]:
    """`{"price": [order, …], …}` best first."""
    yield b"{"
    for index, (price, blocks) in enumerate(captured):
        yield b'%s"%d":[' % (b"," if index else b"", price)
        for at, block in enumerate(blocks):
            yield b"," + block if at else block
        yield b"]"
    yield b"}"


def book_pieces(book: Book, captured: tuple[Captured, Captured]) -> Iterator[bytes]:
    """The book object of `ome.wire.book_json` from a capture of `book` made just now.

    The rest of the book is read here, so the caller must not await between the two.
    """
    bids, asks = captured
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


def orders_pieces(captured: tuple[Captured, Captured]) -> Iterator[bytes]:
    """Every resting order of a capture (bids best first, then asks)."""
    bids, asks = captured
    yield b"["
    first = True
    for _, blocks in bids + asks:
        for block in blocks:
            yield block if first else b"," + block
            first = False
    yield b"]"


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
