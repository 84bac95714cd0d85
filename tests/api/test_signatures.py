"""Order signatures verified locally, before the executioner's check; the admin token;
the per-user cap on orders waiting for the check."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings, load_settings
from tests.api.conftest import Client, refused, submit
from tests.builders import MARKET, NOW, Clock, order_body
from tests.fakes import FakeExecutioner
from tests.signers import DEV_DOMAIN, address, sign_order, typed_order_data

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "signatures.json").read_text()
)
VECTOR = VECTORS["order"]
VECTOR_MARKET = VECTOR["target_tracer"].lower()
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def vector_body(**changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in VECTOR.items() if k != "id"}
    body.update(changes)
    return body


def with_signature(r: int, s: int, v: int) -> str:
    return "0x" + r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex() + f"{v:02x}"


def parts(signature: str) -> tuple[int, int, int]:
    raw = bytes.fromhex(signature[2:])
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]


async def verifying_client(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    chain_id: int = 1337,
    contract: str = "0x" + "33" * 20,
    **more: Any,
) -> Client:
    configured = settings.model_copy(
        update={"chain_id": chain_id, "trader_contract": contract, **more}
    )
    return await aiohttp_client(create_app(configured, clock=clock, executioner_timeout=10.0))


async def open_market(client: Client, market: str, **kwargs: Any) -> None:
    response = await client.post("/book", json={"market": market}, **kwargs)
    assert response.status == 201, await response.text()


# ---------------------------------------------------------------- order signatures


async def test_vector_order_is_accepted_on_its_domain(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    client = await verifying_client(aiohttp_client, settings, clock)
    await open_market(client, VECTOR_MARKET)
    answer = await submit(client, vector_body(), VECTOR_MARKET)
    assert (answer["message"], answer["id"]) == ("Add", VECTOR["id"])
    (check,) = fake_executioner.bodies("check")
    assert check["order"]["signed_data"] == VECTOR["signed_data"]


def _flip(signature: str, part: str) -> str:
    r, s, v = parts(signature)
    return with_signature(r ^ 1, s, v) if part == "r" else with_signature(r, s ^ 1, v)


def _high_s(signature: str) -> str:
    r, s, v = parts(signature)
    return with_signature(r, N - s, 55 - v)


@pytest.mark.parametrize(
    ("domain", "change"),
    [
        ({"chain_id": 1}, {}),
        ({"contract": "0x" + "34" * 20}, {}),
        ({}, {"price": str(int(VECTOR["price"]) + 1)}),
        ({}, {"amount": "1"}),
        ({}, {"side": "Ask"}),
        ({}, {"expiration": VECTOR["expiration"] - 1}),
        ({}, {"created": VECTOR["created"] + 1}),
        ({}, {"user": "0x" + "17" * 20}),
        ({}, {"signed_data": _flip(VECTOR["signed_data"], "r")}),
        ({}, {"signed_data": _flip(VECTOR["signed_data"], "s")}),
        ({}, {"signed_data": _high_s(VECTOR["signed_data"])}),
        ({}, {"signed_data": with_signature(*parts(VECTOR["signed_data"])[:2], 29)}),
        ({}, {"signed_data": "0x" + "00" * 65}),
    ],
    ids=[
        "other chain",
        "other contract",
        "price",
        "amount",
        "side",
        "expiration",
        "created",
        "user",
        "bit of r",
        "bit of s",
        "high s",
        "v 29",
        "zeros",
    ],
)
async def test_vector_refused_with_invalid_signature(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
    domain: dict[str, Any],
    change: dict[str, Any],
) -> None:
    client = await verifying_client(aiohttp_client, settings, clock, **domain)
    await open_market(client, VECTOR_MARKET)
    path = f"/book/{VECTOR_MARKET}/order"
    text = await refused(client, "POST", path, 400, json=vector_body(**change))
    assert text == "invalid_signature"
    assert fake_executioner.checks == []
    book = await (await client.get(f"/book/{VECTOR_MARKET}")).json()
    assert book["depth"] == [0, 0]


async def test_signatures_of_other_keys_verify_and_match(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    client = await verifying_client(aiohttp_client, settings, clock)
    await open_market(client, MARKET)
    await submit(client, sign_order(order_body(side="Ask", price=100, amount=3), 1))
    answer = await submit(client, sign_order(order_body(side="Bid", price=100, amount=3), 2))
    assert answer["message"] == "FullMatch"
    resting = await (await client.get(f"/book/{MARKET}/{address(1)}")).json()
    assert resting == []


async def test_without_a_domain_signatures_are_left_to_the_executioner(
    client: Client, fake_executioner: FakeExecutioner
) -> None:
    await open_market(client, VECTOR_MARKET)
    await submit(client, vector_body(price="1"), VECTOR_MARKET)
    assert len(fake_executioner.checks) == 1


async def test_dev_verifies_on_the_readme_domain_unless_told_otherwise(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    dev = await aiohttp_client(create_app(settings.model_copy(update={"dev": True}), clock=clock))
    await open_market(dev, VECTOR_MARKET)
    await submit(dev, vector_body(), VECTOR_MARKET)
    text = await refused(
        dev, "POST", f"/book/{VECTOR_MARKET}/order", 400, json=vector_body(created=NOW + 5)
    )
    assert text == "invalid_signature"

    elsewhere = await aiohttp_client(
        create_app(
            settings.model_copy(
                update={
                    "dev": True,
                    "chain_id": 5,
                    "trader_contract": MARKET,
                    "journal_dir": tmp_path / "other-journal",
                    "dumpfile": tmp_path / "other-dump.json",
                }
            ),
            clock=clock,
        )
    )
    await open_market(elsewhere, VECTOR_MARKET)
    text = await refused(elsewhere, "POST", f"/book/{VECTOR_MARKET}/order", 400, json=vector_body())
    assert text == "invalid_signature"
    body = sign_order(vector_body(), 3, type(DEV_DOMAIN).of(5, MARKET))
    await submit(elsewhere, body, VECTOR_MARKET)


# A Hardhat-style deployment on Kovan's chain id: another chain and another trader contract
# than signatures.json's, with the contract written as a block explorer shows it.
OTHER_CHAIN_ID = 42
OTHER_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
# eth-account's signature of OTHER_ORDER on that domain, frozen: a known answer.
OTHER_SIGNATURE = (
    "0x65f4c51e659e20773c791708bdcb6cbccaf4e5ae673a54afe27310eb7434c928"
    "6d47d88990651920264ac4df678e854c7eb16856b6b02c7de07a1a44abb0145e1c"
)


def typed_order(body: dict[str, Any], chain_id: int, contract: str) -> dict[str, Any]:
    """tracer-utils' typed data of an order body, addresses checksummed as wallets write them."""
    return typed_order_data(
        chain_id,
        contract,
        {
            "maker": to_checksum_address(body["user"]),
            "market": to_checksum_address(body["target_tracer"]),
            "price": int(body["price"]),
            "amount": int(body["amount"]),
            "side": {"Bid": 0, "Ask": 1}[body["side"]],
            "expires": int(body["expiration"]),
            "created": int(body["created"]),
        },
    )


def other_order() -> dict[str, Any]:
    body = order_body(
        side="Ask", price=1500 * 10**18, amount=2 * 10**18, created=NOW, target_tracer=MARKET
    )
    body["user"] = Account.from_key(OTHER_KEY).address
    typed = encode_typed_data(full_message=typed_order(body, OTHER_CHAIN_ID, OTHER_CONTRACT))
    signature = Account.sign_message(typed, OTHER_KEY).signature.hex()
    body["signed_data"] = "0x" + signature.removeprefix("0x")
    return body


async def test_an_eth_account_signature_on_another_chain_and_contract_is_accepted(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    body = other_order()
    assert body["signed_data"] == OTHER_SIGNATURE
    # As an operator sets them: the contract's checksummed spelling, through the parser.
    domain = load_settings(
        ["--chain_id", str(OTHER_CHAIN_ID), "--trader_contract", OTHER_CONTRACT], {}
    )
    client = await verifying_client(
        aiohttp_client, settings, clock, domain.chain_id, domain.trader_contract
    )
    await open_market(client, MARKET)
    answer = await submit(client, body)
    assert answer["message"] == "Add"
    (check,) = fake_executioner.bodies("check")
    assert check["order"]["signed_data"] == OTHER_SIGNATURE
    # The same signature on another chain, or for another contract, is nobody's.
    for chain_id, contract in ((1337, OTHER_CONTRACT), (OTHER_CHAIN_ID, "0x" + "33" * 20)):
        elsewhere = await verifying_client(
            aiohttp_client,
            settings.model_copy(
                update={
                    "journal_dir": settings.journal_dir.with_name(f"journal-{chain_id}"),
                    "dumpfile": settings.dumpfile.with_name(f"dump-{chain_id}.json"),
                }
            ),
            clock,
            chain_id,
            contract.lower(),
        )
        await open_market(elsewhere, MARKET)
        text = await refused(elsewhere, "POST", f"/book/{MARKET}/order", 400, json=body)
        assert text == "invalid_signature"


# ---------------------------------------------------------------- the admin token


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Basic c2VjcmV0"}, 401),
        ({"Authorization": "Bearer not-the-token"}, 403),
        ({"Authorization": "Bearer s3cret-tok"}, 403),
        ({"Authorization": "Bearer s3cret-token"}, 201),
        ({"Authorization": "bearer s3cret-token"}, 201),
    ],
    ids=["none", "empty", "basic", "wrong", "prefix", "right", "lower-case scheme"],
)
async def test_admin_token_guards_market_creation(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    headers: dict[str, str],
    status: int,
) -> None:
    configured = settings.model_copy(update={"admin_token": "s3cret-token"})
    client = await aiohttp_client(create_app(configured, clock=clock))
    response = await client.post("/book", json={"market": MARKET}, headers=headers)
    assert response.status == status
    markets = (await (await client.get("/book")).json())["markets"]
    assert markets == ([MARKET] if status == 201 else [])


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic c2VjcmV0"}]
)
async def test_admin_token_401_carries_a_bearer_challenge(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock, headers: dict[str, str]
) -> None:
    configured = settings.model_copy(update={"admin_token": "s3cret-token"})
    client = await aiohttp_client(create_app(configured, clock=clock))
    response = await client.post("/book", json={"market": MARKET}, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ome"'
    wrong = {"Authorization": "Bearer x"}
    assert (await client.post("/book", json={"market": MARKET}, headers=wrong)).status == 403


async def test_a_browser_may_send_the_admin_token(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    """The preflight allows Authorization (no wildcard covers it), without a token itself."""
    configured = settings.model_copy(update={"admin_token": "s3cret-token"})
    client = await aiohttp_client(create_app(configured, clock=clock))
    origin = {"Origin": "https://app.tracer.finance"}
    preflight = await client.options(
        "/book",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status == 200
    allowed = {
        name.strip().lower()
        for name in preflight.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    response = await client.post(
        "/book",
        json={"market": MARKET},
        headers={**origin, "Authorization": "Bearer s3cret-token"},
    )
    assert response.status == 201
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_without_admin_token_anyone_creates_markets(client: Client) -> None:
    response = await client.post("/book", json={"market": MARKET})
    assert response.status == 201


async def test_admin_token_is_checked_before_the_body(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    configured = settings.model_copy(update={"admin_token": "t"})
    client = await aiohttp_client(create_app(configured, clock=clock))
    text = await refused(client, "POST", "/book", 401, data=b"not json")
    assert "Authorization: Bearer" in text


# ---------------------------------------------------------------- orders in flight per user


async def test_orders_waiting_for_the_check_are_capped_per_user(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    configured = settings.model_copy(update={"max_inflight_per_user": 3})
    client = await aiohttp_client(create_app(configured, clock=clock, executioner_timeout=10.0))
    await open_market(client, MARKET)
    fake_executioner.hang(path="check")
    path = f"/book/{MARKET}/order"
    waiting = [
        asyncio.create_task(client.post(path, json=order_body(1, created=NOW + i)))
        for i in range(3)
    ]
    await fake_executioner.wait_for("check", 3)
    text = await refused(client, "POST", path, 429, json=order_body(1, created=NOW + 9))
    assert "In-flight limit reached: 3" in text
    # Another user is not held up by the first one's flood.
    other = asyncio.create_task(client.post(path, json=order_body(2)))
    await fake_executioner.wait_for("check", 4)
    fake_executioner.release()
    assert [(await task).status for task in (*waiting, other)] == [200] * 4
    # Slots are given back once the checks end.
    await submit(client, order_body(1, created=NOW + 10))


async def test_a_failed_check_gives_its_slot_back(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    configured = settings.model_copy(update={"max_inflight_per_user": 1})
    client = await aiohttp_client(create_app(configured, clock=clock))
    await open_market(client, MARKET)
    fake_executioner.reject("invalid_signature")
    path = f"/book/{MARKET}/order"
    for created in (NOW, NOW + 1):
        await refused(client, "POST", path, 400, json=order_body(1, created=created))
    fake_executioner.reset()
    await submit(client, order_body(1, created=NOW + 2))
