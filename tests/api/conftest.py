"""The OME app under test: `create_app` with a movable clock, on the fake executioner."""

import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from tests.fakes import FakeExecutioner

NOW = 1_700_000_000
MARKET = "0x61f5a3d36c10d7ea1d797e70f7486eb7ad177481"
OTHER_MARKET = "0x" + "ab" * 20
SIG = "0x" + "5e" * 65
# Requests to the executioner give up this fast in tests.
EXECUTIONER_TIMEOUT = 0.3

Client = TestClient[Any, Any]


def user(n: int) -> str:
    return "0x" + f"{n:040x}"


def order_body(
    who: int = 1,
    side: str = "Bid",
    price: int | str = 100,
    amount: int | str = 10,
    **overrides: Any,
) -> dict[str, Any]:
    """An order body as a client sends it; `...` as a value drops that field."""
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


class Clock:
    """Unix seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path: Path, fake_executioner: FakeExecutioner) -> Settings:
    # Tests of other features cancel orders of made-up users, who have no keys to sign with.
    return Settings(
        port=0,
        executioner_address=fake_executioner.url,
        dumpfile=tmp_path / "dump.json",
        journal_dir=tmp_path / "journal",
        allow_unsigned_cancel=True,
    )


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings, clock: Clock) -> Client:
    return await aiohttp_client(
        create_app(settings, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT)
    )


@pytest.fixture
async def market(client: Client) -> str:
    """MARKET, created."""
    response = await client.post("/book", json={"market": MARKET})
    assert response.status == 201
    return MARKET


async def submit(client: Client, body: dict[str, Any], market: str = MARKET) -> Any:
    """POST an order that must be accepted; its response body."""
    response = await client.post(f"/book/{market}/order", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def refused(client: Client, method: str, path: str, status: int, **kwargs: Any) -> str:
    """Send a request that must fail with `status`; the message of its JSON error object."""
    response = await client.request(method, path, **kwargs)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    data = await response.json()
    assert data["status"] == status
    assert isinstance(data["message"], str) and data["message"]
    return str(data["message"])


async def random_flow(client: Client, seed: int, steps: int) -> list[dict[str, Any]]:
    """Random orders and cancels over HTTP; the fills the answers reported, oldest first."""
    rng = random.Random(seed)
    resting: list[str] = []
    fills: list[dict[str, Any]] = []
    for step in range(steps):
        if resting and rng.random() < 0.2:
            order_id = resting.pop(rng.randrange(len(resting)))
            await client.delete(f"/book/{MARKET}/order/{order_id}")
            continue
        answer = await submit(
            client,
            order_body(
                who=rng.randint(1, 4),
                side=rng.choice(["Bid", "Ask"]),
                price=rng.randint(95, 105),
                amount=rng.randint(1, 30),
                created=str(NOW + step),
            ),
        )
        fills.extend(answer["fills"])
        if answer["message"] != "FullMatch":
            resting.append(answer["id"])
    return fills


async def get_json(client: Client, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()
