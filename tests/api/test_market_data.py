"""Depth and trades routes, the streamed full-book reads and their gzip, trades across restarts."""

import gzip
from collections import defaultdict
from typing import Any

import orjson
import pytest
from pytest_aiohttp import AiohttpClient

from ome import fullbook
from ome.api import streaming
from ome.api.app import create_app
from ome.api.keys import COMMANDS, EXIT
from ome.config import Settings
from ome.wire import book_json, orders_json
from tests.api.conftest import (
    EXECUTIONER_TIMEOUT,
    Client,
    get_json,
    random_flow,
    refused,
    submit,
)
from tests.builders import (
    MARKET,
    NOW,
    Clock,
    order_body,
)


def levels_of(orders: list[dict[str, Any]], side: str) -> list[list[Any]]:
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for order in orders:
        if order["side"] == side:
            totals[int(order["price"])][0] += int(order["amount_left"])
            totals[int(order["price"])][1] += 1
    prices = sorted(totals, reverse=side == "Bid")
    return [[str(p), str(totals[p][0]), totals[p][1]] for p in prices]


async def test_depth_and_trades_match_the_orders_and_fills(client: Client, market: str) -> None:
    fills = await random_flow(client, seed=11, steps=150)
    orders = await get_json(client, f"/book/{market}/order")
    depth = await get_json(client, f"/book/{market}/depth?levels=1000")
    book = await get_json(client, f"/book/{market}")
    assert depth["market"] == market
    assert depth["bids"] == levels_of(orders, "Bid")
    assert depth["asks"] == levels_of(orders, "Ask")
    assert (depth["ltp"], depth["spread"], depth["crossed"]) == (
        book["ltp"],
        book["spread"],
        book["crossed"],
    )
    top = await get_json(client, f"/book/{market}/depth?levels=2")
    assert top["bids"] == depth["bids"][:2] and top["asks"] == depth["asks"][:2]
    default = await get_json(client, f"/book/{market}/depth")
    assert default["bids"] == depth["bids"][:50]

    trades = await get_json(client, f"/book/{market}/trades?limit=1000")
    assert fills, "the flow traded"
    assert [(t["maker"], t["taker"], t["price"], t["amount"]) for t in trades] == [
        (f["maker"], f["taker"], f["price"], f["amount"]) for f in reversed(fills)
    ]
    assert all(t["time"] == str(NOW) and t["taker_side"] in ("Bid", "Ask") for t in trades)
    seqs = [t["seq"] for t in trades]
    assert seqs == sorted(seqs, reverse=True) and seqs[0] <= depth["seq"]
    assert await get_json(client, f"/book/{market}/trades?limit=3") == trades[:3]
    assert await get_json(client, f"/book/{market}/trades") == trades[:100]


async def test_each_command_that_changes_the_book_moves_its_seq_by_one(
    client: Client, market: str
) -> None:
    async def seq() -> int:
        return int((await get_json(client, f"/book/{market}/depth"))["seq"])

    assert await seq() == 0
    await submit(client, order_body(who=1, side="Ask", price=100, amount=5))
    assert await seq() == 1
    answer = await submit(client, order_body(who=2, side="Bid", price=100, amount=2))
    assert answer["fills"]
    assert await seq() == 2
    await refused(client, "POST", f"/book/{market}/order", 400, json={"side": "Bid"})
    assert await seq() == 2
    trades = await get_json(client, f"/book/{market}/trades")
    assert [t["seq"] for t in trades] == [2]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("depth", "levels=0"),
        ("depth", "levels=1001"),
        ("depth", "levels=abc"),
        ("depth", "levels=-1"),
        ("depth", "levels=1.5"),
        ("depth", "levels="),
        ("trades", "limit=0"),
        ("trades", "limit=1001"),
        ("trades", "limit=ten"),
    ],
)
async def test_bad_counts_are_400(client: Client, market: str, path: str, value: str) -> None:
    text = await refused(client, "GET", f"/book/{market}/{path}?{value}", 400)
    assert value.split("=")[0] in text


async def test_depth_and_trades_of_an_unknown_market_are_404(client: Client) -> None:
    for path in ("depth", "trades"):
        await refused(client, "GET", f"/book/{MARKET}/{path}", 404)


async def test_trades_of_a_market_without_any_are_an_empty_list(
    client: Client, market: str
) -> None:
    assert await get_json(client, f"/book/{market}/trades") == []


async def test_full_book_reads_are_gzipped_when_accepted_and_equal_otherwise(
    client: Client, market: str
) -> None:
    await random_flow(client, seed=3, steps=60)
    for path in (f"/book/{market}", f"/book/{market}/order"):
        plain = await client.get(path, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        body = await plain.read()
        raw = await client.get(path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert raw.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await raw.read()) == body
        refused_gzip = await client.get(path, headers={"Accept-Encoding": "gzip;q=0"})
        assert "Content-Encoding" not in refused_gzip.headers


async def test_a_streamed_answer_is_the_same_json_in_chunks(
    client: Client, market: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Levels of several blocks, read in several rounds.
    monkeypatch.setattr(fullbook, "BLOCK", 3)
    monkeypatch.setattr(fullbook, "ROUND", 5)
    await random_flow(client, seed=5, steps=80)
    book = client.app[COMMANDS].book(market)
    expected_book = orjson.dumps(book_json(book))
    expected_orders = orjson.dumps(orders_json(book.orders()))
    monkeypatch.setattr(streaming, "CHUNK", 512)
    expected = {f"/book/{market}": expected_book, f"/book/{market}/order": expected_orders}
    for path, body in expected.items():
        response = await client.get(path, headers={"Accept-Encoding": "identity"})
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert await response.read() == body
        zipped = await client.get(path, headers={"Accept-Encoding": "gzip, deflate"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert await zipped.read() == body


async def test_a_full_book_read_shows_the_moment_it_was_captured(
    client: Client, market: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(40):
        ask = order_body(who=1 + i % 3, side="Ask", price=100 + i % 4, amount=10, created=str(i))
        await submit(client, ask)
        await submit(client, order_body(who=4, side="Bid", price=90 + i % 4, created=str(i)))
    book = client.app[COMMANDS].book(market)
    before_book = orjson.dumps(book_json(book))
    before_orders = orjson.dumps(orders_json(book.orders()))
    # Written out in many small chunks, each after a turn of the event loop.
    monkeypatch.setattr(streaming, "CHUNK", 256)
    # Their headers are in: both captured, their bodies still on the way.
    book_response, orders_response = [
        await client.get(path, headers={"Accept-Encoding": "identity"})
        for path in (f"/book/{market}", f"/book/{market}/order")
    ]
    # Meanwhile: matching fills makers in place, a cancel, a new level.
    await submit(client, order_body(who=5, side="Bid", price=102, amount=155))
    await client.delete(f"/book/{market}/order/{next(iter(book.orders())).id}")
    await submit(client, order_body(who=6, side="Ask", price=120, amount=7))
    assert orjson.dumps(book_json(book)) != before_book
    assert await book_response.read() == before_book
    assert await orders_response.read() == before_orders


@pytest.mark.parametrize("dump", [True, False], ids=["snapshot", "journal replay"])
async def test_trades_survive_a_restart(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock, dump: bool
) -> None:
    first = await aiohttp_client(
        create_app(settings, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT)
    )
    await first.post("/book", json={"market": MARKET})
    await random_flow(first, seed=7, steps=60)
    trades = await get_json(first, f"/book/{MARKET}/trades?limit=1000")
    depth = await get_json(first, f"/book/{MARKET}/depth?levels=1000")
    assert trades
    # Without the final snapshot the restart has only the journal, as after a crash.
    first.app[EXIT].write_snapshot = dump
    await first.close()
    assert settings.dumpfile.exists() is dump

    second = await aiohttp_client(
        create_app(settings, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT)
    )
    assert await get_json(second, f"/book/{MARKET}/trades?limit=1000") == trades
    assert await get_json(second, f"/book/{MARKET}/depth?levels=1000") == depth
