"""The WebSocket feed, with real aiohttp WebSocket clients against the app's test server."""

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from pytest_aiohttp import AiohttpClient

from ome.api import feed
from ome.api.app import create_app
from ome.api.feed import FeedLimits
from ome.api.keys import FEED
from ome.config import Settings
from tests.api.conftest import (
    EXECUTIONER_TIMEOUT,
    Client,
    get_json,
    random_flow,
    submit,
)
from tests.builders import (
    MARKET,
    Clock,
    order_body,
    serving,
)

# Generous: these bound a hang, not a speed.
WAIT = 10.0


async def feed_client(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock, limits: FeedLimits
) -> Client:
    app = create_app(
        settings, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT, feed_limits=limits
    )
    client = await aiohttp_client(app)
    response = await client.post("/book", json={"market": MARKET})
    assert response.status == 201
    return client


@pytest.fixture
async def fed(aiohttp_client: AiohttpClient, settings: Settings, clock: Clock) -> Client:
    return await feed_client(aiohttp_client, settings, clock, FeedLimits())


async def receive(ws: ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=WAIT)
    assert message.type is WSMsgType.TEXT, message
    data: dict[str, Any] = message.json()
    return data


async def subscribe(
    ws: ClientWebSocketResponse, channels: list[str], market: str = MARKET
) -> dict[str, Any] | None:
    """Subscribe; the depth snapshot when `depth` is among the channels."""
    await ws.send_json({"op": "subscribe", "market": market, "channels": channels})
    assert await receive(ws) == {"type": "subscribed", "market": market, "channels": channels}
    if "depth" not in channels:
        return None
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot" and snapshot["channel"] == "depth"
    return snapshot


def picture(levels: list[list[Any]]) -> dict[str, list[Any]]:
    return {price: [price, amount, count] for price, amount, count in levels}


def best_first(levels: dict[str, list[Any]], bids: bool) -> list[list[Any]]:
    return sorted(levels.values(), key=lambda level: int(level[0]), reverse=bids)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_subscriber_that_applies_the_updates_ends_with_the_depth_endpoint(
    fed: Client, seed: int
) -> None:
    await random_flow(fed, seed=seed + 100, steps=30)
    async with fed.ws_connect("/ws") as ws:
        snapshot = await subscribe(ws, ["depth", "trades"])
        assert snapshot is not None
        assert snapshot == {"type": "snapshot", "channel": "depth"} | await get_json(
            fed, f"/book/{MARKET}/depth?levels=1000"
        )
        bids, asks = picture(snapshot["bids"]), picture(snapshot["asks"])
        seq = snapshot["seq"]
        trades: list[dict[str, Any]] = []
        fills = await random_flow(fed, seed=seed, steps=120)
        final = await get_json(fed, f"/book/{MARKET}/depth?levels=1000")
        while seq < final["seq"] or len(trades) < len(fills):
            message = await receive(ws)
            if message["type"] == "trade":
                assert message["channel"] == "trades" and message["market"] == MARKET
                assert message["seq"] == seq, "a trade comes after its command's depth update"
                trades.append(message)
                continue
            assert message["type"] == "update" and message["channel"] == "depth"
            assert message["market"] == MARKET
            assert message["seq"] == seq + 1, "contiguous seq"
            seq = message["seq"]
            for levels, changes in ((bids, message["bids"]), (asks, message["asks"])):
                for price, amount, count in changes:
                    if amount == "0":
                        assert count == 0
                        del levels[price]
                    else:
                        levels[price] = [price, amount, count]
        assert seq == final["seq"]
        assert best_first(bids, True) == final["bids"]
        assert best_first(asks, False) == final["asks"]
        assert [(t["maker"], t["taker"], t["price"], t["amount"]) for t in trades] == [
            (f["maker"], f["taker"], f["price"], f["amount"]) for f in fills
        ]
        history = await get_json(fed, f"/book/{MARKET}/trades?limit=1000")
        assert [{k: t[k] for k in history[0]} for t in reversed(trades)] == history[: len(trades)]


async def test_bad_messages_get_an_error_and_the_connection_stays(fed: Client) -> None:
    async with fed.ws_connect("/ws") as ws:
        market = f'"market": "{MARKET}"'
        for bad in (
            "not json",
            "[1]",
            '{"op": "dance", ' + market + "}",
            '{"op": "subscribe"}',
            '{"op": "subscribe", "market": "0x12"}',
            '{"op": "subscribe", "channels": ["candles"], ' + market + "}",
            '{"op": "subscribe", "channels": [], ' + market + "}",
            '{"op": "subscribe", "market": "0x' + "cd" * 20 + '"}',
        ):
            await ws.send_str(bad)
            error = await receive(ws)
            assert error["type"] == "error" and error["message"], bad
        await ws.send_bytes(b"{}")
        assert (await receive(ws))["type"] == "error"
        assert await subscribe(ws, ["depth"]) is not None


async def test_unsubscribed_channels_get_nothing_more(fed: Client) -> None:
    async with fed.ws_connect("/ws") as ws:
        await subscribe(ws, ["trades"])
        await submit(fed, order_body(who=1, side="Ask", price=100, amount=5))
        await submit(fed, order_body(who=2, side="Bid", price=100, amount=2))
        trade = await receive(ws)
        assert trade["type"] == "trade" and trade["amount"] == "2"
        await ws.send_json({"op": "unsubscribe", "market": MARKET, "channels": ["trades"]})
        assert (await receive(ws))["type"] == "unsubscribed"
        await submit(fed, order_body(who=2, side="Bid", price=100, amount=1, created="1"))
        # The next message is the answer to this, not a trade.
        await subscribe(ws, ["depth"])


async def raw_websocket(
    host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client with a tiny receive buffer: slow as soon as it stops reading.

    aiohttp's client cannot shrink its socket's buffer, and Linux grows it to
    megabytes; a client that reads nothing would take that long to fall behind.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


def client_text_frame(payload: bytes) -> bytes:
    """A masked text frame, as a client must send it (a zero mask leaves the payload as it is)."""
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + bytes(4) + payload


def last_frame(data: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of the last complete server frame in `data`."""
    found = (0, b"")
    offset = 0
    while offset + 2 <= len(data):
        size, start = data[offset + 1] & 0x7F, offset + 2
        if size == 126:
            size, start = struct.unpack_from("!H", data, offset + 2)[0], offset + 4
        elif size == 127:
            size, start = struct.unpack_from("!Q", data, offset + 2)[0], offset + 10
        if start + size > len(data):
            break
        found = (data[offset] & 0x0F, data[start : start + size])
        offset = start + size
    return found


async def test_a_slow_subscriber_is_closed_with_1013_and_the_others_keep_up(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "WRITE_BUFFER", 4096)
    fed = await feed_client(aiohttp_client, settings, clock, FeedLimits(max_queue=20))
    # Many levels, so that every snapshot is a few KB.
    for price in range(1, 100):
        await submit(fed, order_body(who=1, side="Bid", price=price, amount=1))
    async with fed.ws_connect("/ws") as fast:
        snapshot = await subscribe(fast, ["depth"])
        assert snapshot is not None
        assert fed.server.host is not None and fed.server.port is not None
        reader, writer = await raw_websocket(fed.server.host, fed.server.port)
        # The server's side of the sockets small too, for the same reason.
        async with asyncio.timeout(WAIT):
            while len(fed.app[FEED].subscribers) < 2:
                await asyncio.sleep(0.01)
        for subscriber in fed.app[FEED].subscribers:
            assert subscriber.transport is not None
            server_socket = subscriber.transport.get_extra_info("socket")
            server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # The slow one asks for snapshot after snapshot and reads none of them.
        request = client_text_frame(
            orjson.dumps({"op": "subscribe", "market": MARKET, "channels": ["depth"]})
        )
        for sent in range(1000):
            writer.write(request)
            if sent % 50 == 49:
                await writer.drain()
                await asyncio.sleep(0.01)
        await submit(fed, order_body(who=7, side="Bid", price=1, amount=1, created="1"))
        update = await receive(fast)
        assert update["type"] == "update" and update["seq"] == snapshot["seq"] + 1
        # Now it reads: what was sent before the close, then the close frame.
        async with asyncio.timeout(WAIT):
            data = await reader.read()
        opcode, payload = last_frame(data)
        assert opcode == 0x8
        assert struct.unpack("!H", payload[:2])[0] == 1013
        assert b"slow consumer" in payload[2:]
        writer.close()


async def test_a_client_that_answers_no_ping_is_closed_and_one_that_answers_stays(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    limits = FeedLimits(ping_interval=0.05, pong_timeout=0.3)
    fed = await feed_client(aiohttp_client, settings, clock, limits)
    async with (
        fed.ws_connect("/ws", autoping=False) as deaf,
        fed.ws_connect("/ws") as alive,
    ):
        # A client answers pings while it reads.
        heard: list[dict[str, Any]] = []
        reader = asyncio.create_task(read_into(alive, heard))
        pings = 0
        while True:
            message = await deaf.receive(timeout=WAIT)
            if message.type is WSMsgType.PING:
                pings += 1
                continue
            break
        assert pings >= 2
        assert message.type is WSMsgType.CLOSE
        assert deaf.close_code == 1001
        # Several pong timeouts later the other one is still served.
        await asyncio.sleep(limits.pong_timeout * 2)
        await alive.send_json({"op": "subscribe", "market": MARKET, "channels": ["trades"]})
        async with asyncio.timeout(WAIT):
            while not heard:
                await asyncio.sleep(0.01)
        assert heard[0]["type"] == "subscribed"
        assert not alive.closed
        reader.cancel()


async def read_into(ws: ClientWebSocketResponse, heard: list[dict[str, Any]]) -> None:
    async for message in ws:
        heard.append(message.json())


async def test_shutdown_closes_every_socket_at_once_and_still_dumps(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    fed = await feed_client(aiohttp_client, settings, clock, FeedLimits(close_timeout=0.5))
    await submit(fed, order_body())
    sockets = [await fed.ws_connect("/ws") for _ in range(20)]
    for ws in sockets[:10]:
        await subscribe(ws, ["depth", "trades"])
    # One that never reads again, so never answers the close.
    deaf = await fed.ws_connect("/ws", autoclose=False, autoping=False)

    async def drain(ws: ClientWebSocketResponse) -> AsyncIterator[int]:
        while (message := await ws.receive(timeout=WAIT)).type is WSMsgType.TEXT:
            pass
        yield message.type

    started = time.monotonic()
    await fed.close()
    took = time.monotonic() - started
    # aiohttp would otherwise wait for the handlers of open sockets (its shutdown timeout).
    assert took < 5, took
    for ws in sockets:
        kinds = [kind async for kind in drain(ws)]
        assert kinds[0] in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert settings.dumpfile.exists()
    await deaf.close()


async def test_a_websocket_outlives_the_http_deadlines(settings: Settings, clock: Clock) -> None:
    """Frames after the upgrade are not a request whose headers are late (408) or idle."""
    app = create_app(settings, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT)
    deadline = 0.2
    async with (
        serving(
            app, keepalive_timeout=deadline, header_timeout=deadline, body_timeout=deadline
        ) as (host, port),
        aiohttp.ClientSession() as session,
    ):
        base = f"http://{host}:{port}"
        async with session.post(f"{base}/book", json={"market": MARKET}) as response:
            assert response.status == 201
        async with session.ws_connect(f"{base}/ws") as ws:
            for _ in range(8):
                await subscribe(ws, ["trades"])
                await asyncio.sleep(deadline)
            assert not ws.closed
