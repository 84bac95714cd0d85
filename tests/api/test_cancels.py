"""Signed cancels: PATCH (the frontend's body) and DELETE, the owner only; the legacy flag."""

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from ome.journal import Scan, read_segments
from ome.records import Cancel, decode
from ome.signing import cancel_digest, sign_digest
from tests.api.conftest import Client, refused, submit
from tests.builders import NOW, Clock, order_body
from tests.signers import THROWAWAY_KEY, address, sign_cancel, sign_order

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "signatures.json").read_text()
)
VECTOR = VECTORS["order"]
VECTOR_MARKET = VECTOR["target_tracer"].lower()
VECTOR_ID = VECTOR["id"]
VECTOR_CANCEL = VECTORS["cancel"]["signature"]
ORDER_PATH = f"/book/{VECTOR_MARKET}/order/{VECTOR_ID}"


def spellings(value: str) -> list[str]:
    """The spellings of an address or id the API accepts."""
    return [value, value[2:], "0x" + value[2:].upper(), value[2:].upper()]


@pytest.fixture
def strict(settings: Settings) -> Settings:
    """The service's defaults: unsigned cancels refused, orders verified (--dev)."""
    return settings.model_copy(update={"allow_unsigned_cancel": False, "dev": True})


@pytest.fixture
async def signed_client(aiohttp_client: AiohttpClient, strict: Settings, clock: Clock) -> Client:
    """A client with the vector's market open and its order resting."""
    client = await aiohttp_client(create_app(strict, clock=clock))
    assert (await client.post("/book", json={"market": VECTOR_MARKET})).status == 201
    body = {k: v for k, v in VECTOR.items() if k != "id"}
    assert (await submit(client, body, VECTOR_MARKET))["id"] == VECTOR_ID
    return client


async def resting(client: Client) -> bool:
    return (await client.get(ORDER_PATH)).status == 200


async def test_owner_cancels_with_the_frontends_patch(signed_client: Client) -> None:
    body = {"marketId": VECTOR_MARKET, "orderId": VECTOR_ID, "signature": VECTOR_CANCEL}
    response = await signed_client.patch(ORDER_PATH, json=body)
    assert (response.status, await response.json()) == (
        200,
        {"status": 200, "message": "Order cancelled"},
    )
    assert not await resting(signed_client)


async def test_owner_cancels_with_delete_and_a_bare_signature(signed_client: Client) -> None:
    response = await signed_client.delete(ORDER_PATH, json={"signature": VECTOR_CANCEL})
    assert response.status == 200
    assert not await resting(signed_client)


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_ids_in_the_body_may_use_any_accepted_spelling(
    signed_client: Client, method: str
) -> None:
    market, order_id = spellings(VECTOR_MARKET)[2], spellings(VECTOR_ID)[3]
    path = f"/book/{spellings(VECTOR_MARKET)[1]}/order/{spellings(VECTOR_ID)[2]}"
    body = {"marketId": market, "orderId": order_id, "signature": VECTOR_CANCEL.upper()[2:]}
    body["signature"] = "0x" + body["signature"]
    response = await signed_client.request(method, path, json=body)
    assert response.status == 200, await response.text()


async def test_another_signer_is_refused_and_nothing_changes(signed_client: Client) -> None:
    body = {"marketId": VECTOR_MARKET, "orderId": VECTOR_ID, "signature": sign_cancel(VECTOR_ID, 7)}
    text = await refused(signed_client, "PATCH", ORDER_PATH, 403, json=body)
    assert text == "Not the order's owner"
    assert await resting(signed_client)


async def test_a_signature_for_another_order_is_another_signer(signed_client: Client) -> None:
    other = "0x" + "ab" * 32
    signature = sign_digest(THROWAWAY_KEY, cancel_digest(other))
    await refused(signed_client, "PATCH", ORDER_PATH, 403, json={"signature": signature})
    assert await resting(signed_client)


@pytest.mark.parametrize(
    "body",
    [None, b"", b"{}", {"marketId": VECTOR_MARKET, "orderId": VECTOR_ID}, {"signature": None}],
    ids=["no body", "empty", "empty object", "frontend body without signature", "null"],
)
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_without_a_signature_401(signed_client: Client, method: str, body: Any) -> None:
    kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
    text = await refused(signed_client, method, ORDER_PATH, 401, **kwargs)
    assert text == "Signature required"
    assert await resting(signed_client)


@pytest.mark.parametrize("order_id", spellings(VECTOR_ID))
async def test_the_401_challenge_names_the_text_to_sign(
    signed_client: Client, order_id: str
) -> None:
    path = f"/book/{VECTOR_MARKET}/order/{order_id}"
    response = await signed_client.patch(path, json={"orderId": order_id})
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == f'EIP-191 realm="ome", message="cancel:{VECTOR_ID}"'
    # personal_sign of that text is the vector's cancel signature.
    text = challenge.partition('message="')[2].removesuffix('"')
    signed = Account.sign_message(encode_defunct(text=text), THROWAWAY_KEY)
    assert "0x" + signed.signature.hex().removeprefix("0x") == VECTOR_CANCEL


@pytest.mark.parametrize(
    "body",
    [
        {"signature": VECTOR_CANCEL, "orderId": "0x" + "ab" * 32},
        {"signature": VECTOR_CANCEL, "marketId": "0x" + "cd" * 20},
        {"signature": VECTOR_CANCEL, "orderId": "0x1234"},
        {"signature": VECTOR_CANCEL, "marketId": 5},
        {"signature": 5},
        "not an object",
        b"{not json",
    ],
    ids=[
        "other orderId",
        "other marketId",
        "short orderId",
        "numeric marketId",
        "numeric signature",
        "not an object",
        "not json",
    ],
)
async def test_mismatched_or_malformed_body_400(signed_client: Client, body: Any) -> None:
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    await refused(signed_client, "PATCH", ORDER_PATH, 400, **kwargs)
    assert await resting(signed_client)


@pytest.mark.parametrize(
    "signature",
    [
        "0x" + "00" * 65,
        "0xdead",
        VECTOR_CANCEL[:-2] + "1d",
        "zz" * 65,
        "",
    ],
    ids=["zeros", "short", "v 29", "not hex", "empty"],
)
async def test_malformed_signature_400(signed_client: Client, signature: str) -> None:
    text = await refused(signed_client, "PATCH", ORDER_PATH, 400, json={"signature": signature})
    assert text == "invalid_signature"
    assert await resting(signed_client)


def _high_s(signature: str) -> str:
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    raw = bytes.fromhex(signature[2:])
    s = n - int.from_bytes(raw[32:64], "big")
    return "0x" + raw[:32].hex() + s.to_bytes(32, "big").hex() + f"{55 - raw[64]:02x}"


async def test_high_s_twin_of_the_owners_cancel_is_refused(signed_client: Client) -> None:
    body = {"signature": _high_s(VECTOR_CANCEL)}
    assert await refused(signed_client, "PATCH", ORDER_PATH, 400, json=body) == "invalid_signature"
    assert await resting(signed_client)


@pytest.mark.parametrize(
    "path",
    [
        f"/book/{'0x' + 'cd' * 20}/order/{VECTOR_ID}",
        f"/book/{VECTOR_MARKET}/order/{'0x' + 'ab' * 32}",
    ],
    ids=["unknown market", "unknown order"],
)
@pytest.mark.parametrize(
    "body",
    [{"signature": VECTOR_CANCEL}, {"signature": "0xdead"}, {}, None],
    ids=["owner's", "malformed", "none", "no body"],
)
async def test_unknown_market_or_order_404_whatever_the_signature(
    signed_client: Client, path: str, body: Any
) -> None:
    for method in ("PATCH", "DELETE"):
        await refused(signed_client, method, path, 404, json=body)


async def test_a_cancelled_order_is_404_the_second_time(signed_client: Client) -> None:
    assert (await signed_client.patch(ORDER_PATH, json={"signature": VECTOR_CANCEL})).status == 200
    await refused(signed_client, "PATCH", ORDER_PATH, 404, json={"signature": VECTOR_CANCEL})


async def test_the_journal_records_who_cancelled(signed_client: Client, strict: Settings) -> None:
    assert (await signed_client.patch(ORDER_PATH, json={"signature": VECTOR_CANCEL})).status == 200
    payloads = read_segments(strict.journal_dir, 0, Scan(0))
    cancels = [c for c, _ in map(decode, (p for _, p in payloads)) if isinstance(c, Cancel)]
    assert [(c.market, c.order_id, c.owner) for c in cancels] == [
        (VECTOR_MARKET, VECTOR_ID, VECTOR["user"].lower())
    ]


# ---------------------------------------------------------------- the legacy flag


async def legacy_client(
    aiohttp_client: AiohttpClient, strict: Settings, clock: Clock, allow: bool
) -> Client:
    settings = strict.model_copy(update={"allow_unsigned_cancel": allow})
    client = await aiohttp_client(create_app(settings, clock=clock))
    assert (await client.post("/book", json={"market": VECTOR_MARKET})).status == 201
    return client


async def test_legacy_flag_lets_a_bodyless_delete_through(
    aiohttp_client: AiohttpClient, strict: Settings, clock: Clock
) -> None:
    client = await legacy_client(aiohttp_client, strict, clock, allow=True)
    body = sign_order(order_body(created=NOW, target_tracer=VECTOR_MARKET), 1)
    order_id = (await submit(client, body, VECTOR_MARKET))["id"]
    path = f"/book/{VECTOR_MARKET}/order/{order_id}"
    # Not a PATCH, and not a request that carries a body: those are still verified.
    await refused(client, "PATCH", path, 401)
    await refused(client, "DELETE", path, 401, json={})
    await refused(client, "DELETE", path, 403, json={"signature": sign_cancel(order_id, 2)})
    assert (await client.delete(path)).status == 200
    assert (await client.get(path)).status == 404


async def test_without_the_legacy_flag_a_bodyless_delete_is_401(
    aiohttp_client: AiohttpClient, strict: Settings, clock: Clock
) -> None:
    client = await legacy_client(aiohttp_client, strict, clock, allow=False)
    body = sign_order(order_body(created=NOW, target_tracer=VECTOR_MARKET), 1)
    order_id = (await submit(client, body, VECTOR_MARKET))["id"]
    path = f"/book/{VECTOR_MARKET}/order/{order_id}"
    assert await refused(client, "DELETE", path, 401) == "Signature required"
    assert (await client.delete(path, json={"signature": sign_cancel(order_id, 1)})).status == 200
    assert address(1) != VECTOR["user"].lower()
