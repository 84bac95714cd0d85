"""Limits on what one caller can create: markets, and resting orders per user per market."""

import asyncio
from typing import Any

from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from tests.api.conftest import Client, refused, submit
from tests.builders import MARKET, NOW, OTHER_MARKET, Clock, order_body
from tests.fakes import FakeExecutioner

ORDERS = f"/book/{MARKET}/order"


async def limited(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock, **limits: Any
) -> Client:
    app = create_app(settings.model_copy(update=limits), clock=clock, executioner_timeout=10.0)
    return await aiohttp_client(app)


async def book(client: Client, market: str = MARKET) -> Any:
    return await (await client.get(f"/book/{market}")).json()


async def test_market_limit(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    client = await limited(aiohttp_client, settings, clock, max_markets=2)
    for market in (MARKET, OTHER_MARKET):
        assert (await client.post("/book", json={"market": market})).status == 201
    text = await refused(client, "POST", "/book", 429, json={"market": "0x" + "77" * 20})
    assert text == "Market limit reached: 2 markets"
    # An open market is still "already exists", not the limit.
    await refused(client, "POST", "/book", 409, json={"market": MARKET})
    assert (await (await client.get("/book")).json())["markets"] == [MARKET, OTHER_MARKET]


async def test_order_limit_refuses_what_would_rest_and_changes_nothing(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    client = await limited(aiohttp_client, settings, clock, max_orders_per_user=2)
    for market in (MARKET, OTHER_MARKET):
        assert (await client.post("/book", json={"market": market})).status == 201
    for created in (NOW, NOW + 1):
        await submit(client, order_body(1, price=90, created=created))
    checks = len(fake_executioner.checks)
    text = await refused(client, "POST", ORDERS, 429, json=order_body(1, price=91, created=NOW + 2))
    assert text == "Order limit reached: 2 resting orders per user in this market"
    # Refused before the executioner was asked.
    assert len(fake_executioner.checks) == checks
    # Another user, and the same user in another market, are not affected.
    await submit(client, order_body(2, price=91))
    await submit(client, order_body(1, target_tracer=OTHER_MARKET), OTHER_MARKET)
    assert (await book(client))["depth"] == [3, 0]


async def test_at_the_limit_an_order_that_matches_in_full_is_accepted(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    client = await limited(aiohttp_client, settings, clock, max_orders_per_user=1)
    await client.post("/book", json={"market": MARKET})
    await submit(client, order_body(1, "Bid", price=90))
    await submit(client, order_body(2, "Ask", price=100, amount=5))
    # Takes 3 of 5: nothing of it rests.
    answer = await submit(client, order_body(1, "Bid", price=100, amount=3, created=NOW + 1))
    assert answer["message"] == "FullMatch"
    # Would take all 2 left and rest 1: refused, and the ask is untouched.
    big = order_body(1, "Bid", price=100, amount=3, created=NOW + 2)
    await refused(client, "POST", ORDERS, 429, json=big)
    state = await book(client)
    assert state["asks"]["100"][0]["amount_left"] == "2"
    assert state["depth"] == [1, 1]


async def test_at_the_limit_own_and_expired_orders_do_not_count_as_fillable(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    client = await limited(aiohttp_client, settings, clock, max_orders_per_user=1)
    await client.post("/book", json={"market": MARKET})
    # User 1 rests an ask; their own bid would not trade with it (self-trade is skipped).
    await submit(client, order_body(1, "Ask", price=100))
    await refused(
        client, "POST", ORDERS, 429, json=order_body(1, "Bid", price=100, created=NOW + 1)
    )
    await submit(client, order_body(2, "Ask", price=100, amount=4, expiration=str(NOW + 5)))
    clock.now = NOW + 10
    # User 2's ask has expired: it fills nothing.
    await refused(
        client, "POST", ORDERS, 429, json=order_body(1, "Bid", price=100, amount=1, created=NOW + 2)
    )


async def test_the_limit_is_decided_again_when_the_check_ends(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    client = await limited(aiohttp_client, settings, clock, max_orders_per_user=1)
    await client.post("/book", json={"market": MARKET})
    fake_executioner.hang(path="check")
    # Both pass the first look (nothing rests yet) and wait for the executioner together.
    tasks = [
        asyncio.create_task(client.post(ORDERS, json=order_body(1, price=90 + i, created=NOW + i)))
        for i in range(2)
    ]
    await fake_executioner.wait_for("check", 2)
    fake_executioner.release()
    statuses = sorted([(await task).status for task in tasks])
    assert statuses == [200, 429]
    assert (await book(client))["depth"] == [1, 0]


async def test_restored_state_above_a_lowered_limit_is_kept(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    first = await limited(aiohttp_client, settings, clock, max_orders_per_user=3, max_markets=2)
    for market in (MARKET, OTHER_MARKET):
        await first.post("/book", json={"market": market})
    for created in (NOW, NOW + 1, NOW + 2):
        await submit(first, order_body(1, price=90, created=created))
    await first.close()

    again = await limited(aiohttp_client, settings, clock, max_orders_per_user=1, max_markets=1)
    assert (await (await again.get("/book")).json())["markets"] == [MARKET, OTHER_MARKET]
    assert (await book(again))["depth"] == [3, 0]
    await refused(again, "POST", "/book", 429, json={"market": "0x" + "77" * 20})
    await refused(again, "POST", ORDERS, 429, json=order_body(1, price=91, created=NOW + 3))
    await submit(again, order_body(2, "Ask", price=100))
    # A full match is still accepted.
    answer = await submit(again, order_body(1, "Bid", price=100, created=NOW + 4))
    assert answer["message"] == "FullMatch"
    assert (await book(again))["depth"] == [3, 0]
