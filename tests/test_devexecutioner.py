"""The development executioner accepts what the real one would and refuses the rest."""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from ome.devexecutioner import create_dev_executioner
from ome.engine import Order
from tests.builders import NOW, OTHER_MARKET, ask, bid

Client = TestClient[Any, Any]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_dev_executioner(clock=lambda: NOW))


async def test_check_accepts_a_well_formed_unexpired_order(client: Client) -> None:
    response = await client.post("/check", json={"order": ask(100, 10).to_dict()})
    assert response.status == 200
    assert await response.json() == {"status": 200, "message": "ok"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": "0"}, "price"),
        ({"amount": str(2**128)}, "amount"),
        ({"side": "Buy"}, "side"),
        ({"user": "0x1234"}, "user"),
        ({"signed_data": "signature"}, "signed_data"),
        ({"id": "0x" + "00" * 32}, "id"),
        ({"expiration": str(NOW)}, "expired"),
    ],
)
async def test_check_refuses_malformed_or_expired_orders(
    client: Client, change: dict[str, str], reason: str
) -> None:
    wire = ask(100, 10).to_dict() | change
    if "expiration" in change:
        wire = ask(100, 10, expiration=NOW).to_dict()
    response = await client.post("/check", json={"order": wire})
    assert response.status == 400
    body = await response.json()
    assert body["status"] == 400 and reason in body["message"]


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"order": 5}'])
async def test_check_refuses_bad_bodies(client: Client, raw: bytes) -> None:
    response = await client.post("/check", data=raw)
    assert response.status == 400


async def test_submit_accepts_a_crossing_pair(client: Client) -> None:
    maker = ask(100, 10, trader=1)
    taker = bid(101, 10, trader=2)
    pair = {"maker": maker.to_dict(amount_left=0), "taker": taker.to_dict(amount_left=0)}
    response = await client.post("/submit", json=pair, headers={"Idempotency-Key": "k"})
    assert response.status == 200
    again = await client.post("/submit", json=pair, headers={"Idempotency-Key": "k"})
    assert again.status == 200
    assert (await again.json())["message"] == "already settled"


@pytest.mark.parametrize(
    ("maker", "taker", "reason"),
    [
        (ask(100, 10, trader=1), ask(100, 10, trader=2), "same side"),
        (ask(100, 10, trader=1), bid(100, 10, trader=2, market=OTHER_MARKET), "different markets"),
        (ask(102, 10, trader=1), bid(101, 10, trader=2), "do not cross"),
        (bid(99, 10, trader=1), ask(100, 10, trader=2), "do not cross"),
    ],
)
async def test_submit_refuses_pairs_that_cannot_settle(
    client: Client, maker: Order, taker: Order, reason: str
) -> None:
    response = await client.post(
        "/submit", json={"maker": maker.to_dict(), "taker": taker.to_dict()}
    )
    assert response.status == 400
    assert reason in (await response.json())["message"]


async def test_submit_refuses_a_malformed_order(client: Client) -> None:
    maker = ask(100, 10).to_dict() | {"price": "x"}
    pair = {"maker": maker, "taker": bid(100, 10, trader=2).to_dict()}
    response = await client.post("/submit", json=pair)
    assert response.status == 400
