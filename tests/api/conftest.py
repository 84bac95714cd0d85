"""The OME app under test: `create_app` with a movable clock, on the fake executioner."""

import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from tests.builders import MARKET, NOW, Clock, order_body
from tests.fakes import FakeExecutioner

# Requests to the executioner give up this fast in tests.
EXECUTIONER_TIMEOUT = 0.3

Client = TestClient[Any, Any]


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
