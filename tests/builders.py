"""What tests build: orders and their bodies, clocks, markets, log capture, raw HTTP exchanges.

One place for them, so that every test speaks of the same market, the same
signature and the same time, and a change of the wire format is one edit.
"""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import web
from structlog.testing import LogCapture

from ome.engine import Exchange, Order, Side

# Unix seconds at which the tests' clocks start.
NOW = 1_700_000_000
# An expiration no test reaches, by its own clock or the real one.
FAR_FUTURE = 4_102_444_800
MARKET = "0x61f5a3d36c10d7ea1d797e70f7486eb7ad177481"
OTHER_MARKET = "0x" + "ab" * 20
SIG = "0x" + "5e" * 65

# `created` of orders built without one: distinct, so ids never collide by accident.
_created = itertools.count(NOW - 10**8)


def exchange_version_2(exchange: Exchange) -> dict[str, Any]:
    """The engine's snapshot of `exchange` as version 2 wrote it: an object per order."""
    return {
        "version": 2,
        "markets": [
            {
                "market": book.market,
                "ltp": str(book.ltp),
                "seq": book.seq,
                "orders": [order.to_dict() for order in book.in_arrival_order()],
                "finished": [[oid, str(expiration)] for oid, expiration in book.finished()],
            }
            for book in exchange.books.values()
        ],
    }


def user(n: int) -> str:
    """The address of trader number `n`."""
    return "0x" + f"{n:040x}"


def make_order(
    side: Side = Side.Bid,
    price: int = 100,
    amount: int = 10,
    *,
    trader: int | str = 1,
    market: str = MARKET,
    expiration: int = FAR_FUTURE,
    created: int | None = None,
    signed_data: str = SIG,
) -> Order:
    """An order as the engine holds it; `trader` is a number (see `user`) or an address."""
    return Order.create(
        user=user(trader) if isinstance(trader, int) else trader,
        target_tracer=market,
        side=side,
        price=price,
        amount=amount,
        expiration=expiration,
        created=next(_created) if created is None else created,
        signed_data=signed_data,
    )


def bid(price: int, amount: int, **fields: Any) -> Order:
    return make_order(Side.Bid, price, amount, **fields)


def ask(price: int, amount: int, **fields: Any) -> Order:
    return make_order(Side.Ask, price, amount, **fields)


def order_body(
    who: int = 1,
    side: str = "Bid",
    price: int | str = 100,
    amount: int | str = 10,
    **overrides: Any,
) -> dict[str, Any]:
    """An order as a client sends it (decimal strings); `...` as a value drops that field."""
    data: dict[str, Any] = {
        "user": user(who),
        "target_tracer": MARKET,
        "side": side,
        "price": str(price),
        "amount": str(amount),
        "expiration": str(NOW + 3600),
        "created": str(NOW),
        "signed_data": SIG,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


def live_body(
    who: int, side: str, price: int, amount: int, created: int, **overrides: Any
) -> dict[str, Any]:
    """An order body for a service on the real clock (a subprocess): it expires in an hour."""
    return order_body(
        who,
        side,
        price,
        amount,
        created=str(created),
        expiration=str(int(time.time()) + 3600),
        **overrides,
    )


class Clock:
    """Unix seconds that only move when the test moves them."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Events as the service logs them, context variables (the request id) merged in."""
    capture = LogCapture()
    saved = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


# ---------------------------------------------------------------- raw HTTP


@asynccontextmanager
async def serving(app: web.Application, **server: Any) -> AsyncIterator[tuple[str, int]]:
    """`app` on 127.0.0.1 as `__main__` serves it (handlers not cancelled on disconnect).

    `server` takes aiohttp's server parameters and ours (`header_timeout`,
    `body_timeout`); yields the host and port.
    """
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **server)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield "127.0.0.1", runner.addresses[0][1]
    finally:
        await runner.cleanup()


@dataclass
class Answer:
    """A response as it came off the socket."""

    status: int
    headers: dict[str, str]  # names lowercased
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def request_bytes(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | list[tuple[bytes, bytes]] | None = None,
    *,
    close: bool = True,
) -> bytes:
    """An HTTP/1.1 request; header names and values may be bytes, to send what aiohttp won't."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in items]
    if body is not None and not any(_bytes(n).lower() == b"content-length" for n, _ in items):
        lines.append(b"Content-Length: %d" % len(body))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One response; its body by Content-Length, or up to the end of the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return Answer(int(status_line.split(" ", 2)[1]), headers, body)


async def exchange(host: str, port: int, data: bytes, *, timeout: float = 30.0) -> Answer:
    """Send `data` on a fresh connection and read the one answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await read_answer(reader)
    finally:
        writer.close()
