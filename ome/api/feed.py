"""The WebSocket feed at `GET /ws`: depth updates and trades, pushed as they happen.

`Feed.publish` is a sink of the command path: it runs right after each live
command (never during replay), derives the command's depth changes and trades
from its events (`ome.marketdata`) and hands them to every subscriber of that
market and channel. It never awaits, so matching never waits for a subscriber.

Fan-out is the hot path: each message is encoded once and framed once (a
server's WebSocket frame is unmasked and, with compression off, the same
bytes for every receiver). A subscriber's messages are collected and
written into its transport at once, by one `_flush` at the next turn of the
event loop or, when the last flush was less than `FLUSH_INTERVAL` ago, that
long after it: a write is a system call (and a wakeup of the client), which
per message and subscriber cost more than the matching itself. So a quiet
market's update goes out at once, and a busy one's subscribers get one
write per interval however many commands it held. Only for a subscriber
that is behind (its transport's buffer above `WRITE_BUFFER`) do messages
wait, in its own bounded queue, drained by its own writer task, which waits
for the socket to drain; while anything waits, new messages queue behind
it, so order holds. A subscriber that lets more than `FeedLimits.max_queue`
messages wait (collected or queued) is closed with 1013 and a reason, and
drops out of every subscription at once: it cannot slow matching or the
others, and it cannot grow the memory without bound. Because a
subscription's snapshot is sent in the same synchronous step that registers
it, and updates in command order, a subscriber sees the snapshot at `seq` S
and then every update from S + 1 on, with no gap.

Liveness: a ping every `ping_interval` seconds; a connection from which
nothing (a pong or any other frame) arrived for `pong_timeout` seconds is
closed. aiohttp's own `heartbeat=` allows only half an interval for the pong,
which would drop clients behind slow links long before 90 s, so the pings
are sent here with `autoping` off. At shutdown `close_all` closes every
socket at once, each bounded by `close_timeout`, so the dump is not delayed
by a client that does not answer its close.
"""

import asyncio
import contextlib
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from ome.commands import Applied, Commands
from ome.engine import EngineError
from ome.marketdata import depth_update, full_depth_json, touched_levels, trade_messages
from ome.wire import InvalidRequest, parse_address

CHANNELS = ("depth", "trades")
MAX_CLIENT_MESSAGE = 64 * 1024
# Bytes a subscriber's transport may hold before its messages start waiting in its queue.
WRITE_BUFFER = 256 * 1024
# Seconds from one flush to the next at least: a busy market's updates wait at most this.
FLUSH_INTERVAL = 0.005
_TEXT_FIN = 0x81

log = structlog.get_logger("ome.feed")


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """The feed's bounds; tests shrink them."""

    max_queue: int = 1000
    ping_interval: float = 30.0
    pong_timeout: float = 90.0
    close_timeout: float = 1.0


Message = tuple[bytes, bytes]
"""A message's payload and its frame, shared by every subscriber it goes to."""


class Subscriber:
    """One WebSocket connection: its subscriptions and the messages waiting for it."""

    __slots__ = (
        "closer",
        "closing",
        "last_heard",
        "outgoing",
        "queue",
        "ready",
        "subscriptions",
        "transport",
        "writer",
        "ws",
    )

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, now: float
    ) -> None:
        self.ws = ws
        self.transport = transport
        # Messages for the next `Feed._flush` to write; never while any wait in `queue`.
        self.outgoing: list[Message] = []
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.subscriptions: set[tuple[str, str]] = set()
        self.closing = False
        self.last_heard = now
        self.writer: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None

    async def write(self) -> None:
        """Send what is queued, in order, for as long as the connection lasts."""
        queue, ready, ws = self.queue, self.ready, self.ws
        while True:
            while not queue:
                ready.clear()
                await ready.wait()
            await ws.send_frame(queue.popleft(), WSMsgType.TEXT)


class Feed:
    """Every connection and subscription; `publish` is the command path's sink."""

    def __init__(self, commands: Commands, limits: FeedLimits) -> None:
        self._commands = commands
        self.limits = limits
        self.subscribers: set[Subscriber] = set()
        # (market, channel) -> subscribers, insertion-ordered.
        self._subscribed: dict[tuple[str, str], dict[Subscriber, None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # The subscribers with outgoing messages, in the order they got their first.
        self._due: list[Subscriber] = []
        self._last_flush = 0.0

    # ------------------------------------------------------------ the sink

    def publish(self, applied: Applied) -> None:
        subscribed = self._subscribed
        books = self._commands.state.exchange.books
        for market, levels in touched_levels(applied).items():
            depth = subscribed.get((market, "depth"))
            trades = subscribed.get((market, "trades"))
            if not depth and not trades:
                continue
            book = books[market]
            if depth:
                self._fan_out(depth, orjson.dumps(depth_update(book, levels)))
            if trades:
                for message in trade_messages(applied, book):
                    self._fan_out(trades, orjson.dumps(message))

    def _fan_out(self, subscribers: dict[Subscriber, None], data: bytes) -> None:
        message = (data, text_frame(data))
        due = self._due
        # A copy: an overflowing subscriber leaves the dict while it is walked.
        for subscriber in list(subscribers):
            if subscriber.closing:
                continue
            if subscriber.queue:
                self._enqueue(subscriber, data)
                continue
            outgoing = subscriber.outgoing
            if not outgoing:
                if not due:
                    loop = asyncio.get_running_loop()
                    loop.call_at(self._last_flush + FLUSH_INTERVAL, self._flush)
                due.append(subscriber)
            elif len(outgoing) >= self.limits.max_queue:
                # A client can ask for many snapshots within one turn.
                self._overflow(subscriber)
                continue
            outgoing.append(message)

    def _send(self, subscriber: Subscriber, data: bytes) -> None:
        self._fan_out({subscriber: None}, data)

    def _flush(self) -> None:
        """Write each due subscriber's messages in one go, or queue them if it is behind."""
        due, self._due = self._due, []
        self._last_flush = asyncio.get_running_loop().time()
        for subscriber in due:
            outgoing = subscriber.outgoing
            subscriber.outgoing = []
            if subscriber.closing:
                continue
            transport = subscriber.transport
            if (
                not subscriber.queue
                and transport is not None
                and not subscriber.ws.closed
                and not transport.is_closing()
                and transport.get_write_buffer_size() <= WRITE_BUFFER
            ):
                transport.write(b"".join([frame for _, frame in outgoing]))
            else:
                for data, _ in outgoing:
                    self._enqueue(subscriber, data)

    def _enqueue(self, subscriber: Subscriber, data: bytes) -> None:
        if subscriber.closing:
            return
        queue = subscriber.queue
        if len(queue) >= self.limits.max_queue:
            self._overflow(subscriber)
            return
        queue.append(data)
        subscriber.ready.set()

    def _overflow(self, subscriber: Subscriber) -> None:
        reason = f"slow consumer: more than {self.limits.max_queue} messages waiting"
        log.info("feed_subscriber_dropped", reason=reason)
        self._close(subscriber, WSCloseCode.TRY_AGAIN_LATER, reason)

    def _reply(self, subscriber: Subscriber, message: dict[str, Any]) -> None:
        self._send(subscriber, orjson.dumps(message))

    # ------------------------------------------------------------ connections

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """The `GET /ws` handler: one connection, from upgrade to close."""
        limits = self.limits
        ws = web.WebSocketResponse(
            autoping=False,
            compress=False,
            max_msg_size=MAX_CLIENT_MESSAGE,
            timeout=limits.close_timeout,
        )
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        # Not checked with isinstance: uvloop's transports do not derive from asyncio's,
        # and a subscriber without one would have every message take the slow queue.
        subscriber = Subscriber(ws, request.transport, loop.time())
        self.subscribers.add(subscriber)
        subscriber.writer = asyncio.create_task(self._write(subscriber))
        pinger = asyncio.create_task(self._ping(subscriber))
        try:
            while not subscriber.closing:
                received = await ws.receive()
                subscriber.last_heard = loop.time()
                kind = received.type
                if kind is WSMsgType.TEXT:
                    self.handle(subscriber, received.data)
                elif kind is WSMsgType.PING:
                    await ws.pong(received.data)
                elif kind is WSMsgType.BINARY:
                    self._error(subscriber, "Messages must be JSON text")
                elif kind is not WSMsgType.PONG:
                    break
        except (ConnectionError, RuntimeError):
            # The connection went away under a receive or a pong: nothing to answer.
            pass
        finally:
            pinger.cancel()
            self._forget(subscriber)
            if subscriber.closer is not None:
                # Returning first would let aiohttp close with 1000 instead of our code.
                await asyncio.wait({subscriber.closer})
            else:
                subscriber.closing = True
                subscriber.writer.cancel()
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    async def _write(self, subscriber: Subscriber) -> None:
        try:
            await subscriber.write()
        except (ConnectionError, RuntimeError):
            self._close(subscriber, WSCloseCode.ABNORMAL_CLOSURE, "")

    async def _ping(self, subscriber: Subscriber) -> None:
        limits = self.limits
        loop = asyncio.get_running_loop()
        while not subscriber.closing:
            await asyncio.sleep(limits.ping_interval)
            silent = loop.time() - subscriber.last_heard
            if silent >= limits.pong_timeout:
                log.info("feed_subscriber_silent", seconds=round(silent, 1))
                self._close(subscriber, WSCloseCode.GOING_AWAY, "no pong")
                return
            # Bounded: a client that reads nothing must not stall this check.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(limits.ping_interval):
                    await subscriber.ws.ping()

    def _forget(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        for key in subscriber.subscriptions:
            listed = self._subscribed.get(key)
            if listed is not None:
                listed.pop(subscriber, None)
                if not listed:
                    del self._subscribed[key]
        subscriber.subscriptions.clear()

    def _close(self, subscriber: Subscriber, code: int, reason: str) -> None:
        """Stop sending to `subscriber` now and close its socket in the background."""
        if subscriber.closing:
            return
        subscriber.closing = True
        subscriber.outgoing = []
        subscriber.queue.clear()
        self._forget(subscriber)
        task = asyncio.get_running_loop().create_task(self._closed(subscriber, code, reason))
        subscriber.closer = task
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _closed(self, subscriber: Subscriber, code: int, reason: str) -> None:
        if subscriber.writer is not None:
            # It may be stuck waiting for a client that does not read.
            subscriber.writer.cancel()
        ws = subscriber.ws
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.limits.close_timeout):
                await ws.close(code=code, message=reason.encode())
        if not ws.closed or ws.close_code is None:
            # The close did not go through in time: drop the connection.
            transport = ws.get_extra_info("transport")
            if transport is not None:
                transport.abort()

    async def close_all(self) -> None:
        """Close every connection at once (shutdown); returns within about `close_timeout`."""
        for subscriber in list(self.subscribers):
            self._close(subscriber, WSCloseCode.GOING_AWAY, "server shutting down")
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self.limits.close_timeout * 2)

    # ------------------------------------------------------------ client messages

    def handle(self, subscriber: Subscriber, text: str) -> None:
        """Act on one client message; a bad one gets an error message, the connection stays."""
        try:
            op, market, channels = _parse(text)
        except InvalidRequest as exc:
            self._error(subscriber, exc.message)
            return
        if op == "unsubscribe":
            for channel in channels:
                self._unsubscribe(subscriber, market, channel)
            reply = {"type": "unsubscribed", "market": market, "channels": channels}
            self._reply(subscriber, reply)
            return
        try:
            book = self._commands.book(market)
        except EngineError:
            self._error(subscriber, f"Unknown market {market}")
            return
        for channel in channels:
            key = (market, channel)
            self._subscribed.setdefault(key, {})[subscriber] = None
            subscriber.subscriptions.add(key)
        self._reply(subscriber, {"type": "subscribed", "market": market, "channels": channels})
        if "depth" in channels:
            snapshot = {"type": "snapshot", "channel": "depth"}
            snapshot.update(full_depth_json(book))
            self._reply(subscriber, snapshot)

    def _unsubscribe(self, subscriber: Subscriber, market: str, channel: str) -> None:
        key = (market, channel)
        subscriber.subscriptions.discard(key)
        listed = self._subscribed.get(key)
        if listed is not None:
            listed.pop(subscriber, None)
            if not listed:
                del self._subscribed[key]

    def _error(self, subscriber: Subscriber, text: str) -> None:
        self._reply(subscriber, {"type": "error", "message": text})


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (RFC 6455 5.2) as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((_TEXT_FIN, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + payload


def _parse(text: str) -> tuple[str, str, list[str]]:
    """(op, market, channels) of a client message; raise InvalidRequest naming what is wrong."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Message is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Message must be a JSON object")
    op = data.get("op")
    if op not in ("subscribe", "unsubscribe"):
        raise InvalidRequest('op must be "subscribe" or "unsubscribe"')
    market = data.get("market")
    if not isinstance(market, str):
        raise InvalidRequest("market must be an address: 40 hex digits, with or without 0x")
    try:
        market = parse_address(market, "market")
    except InvalidRequest:
        raise InvalidRequest(
            "market must be an address: 40 hex digits, with or without 0x"
        ) from None
    channels = data.get("channels", list(CHANNELS))
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(channel, str) and channel in CHANNELS for channel in channels)
    ):
        raise InvalidRequest('channels must be a non-empty list of "depth" and "trades"')
    return op, market, list(dict.fromkeys(channels))
