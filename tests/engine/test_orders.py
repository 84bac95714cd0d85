"""Order ids: the known answers in tests/vectors, and eth-abi as the oracle of the encoding."""

import json
from pathlib import Path

from eth_abi import encode
from eth_hash.auto import keccak
from hypothesis import given
from hypothesis import strategies as st

from ome.engine import MAX_UINT128, Order, Side, order_id

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _canonical(address: str) -> str:
    return "0x" + address.removeprefix("0x").lower()


def _vector_orders() -> list[dict[str, object]]:
    orders: list[dict[str, object]] = json.loads((VECTORS / "order_ids.json").read_text())
    orders.append(json.loads((VECTORS / "signatures.json").read_text())["order"])
    return orders


def test_every_vector_id_reproduces() -> None:
    vectors = _vector_orders()
    assert len(vectors) >= 4
    for vector in vectors:
        order = Order.create(
            user=_canonical(str(vector["user"])),
            target_tracer=_canonical(str(vector["target_tracer"])),
            side=Side[str(vector["side"])],
            price=int(str(vector["price"])),
            amount=int(str(vector["amount"])),
            expiration=int(str(vector["expiration"])),
            created=int(str(vector["created"])),
        )
        assert order.id == vector["id"]


def test_signed_order_vector_keeps_its_signature() -> None:
    vector = json.loads((VECTORS / "signatures.json").read_text())["order"]
    order = Order.create(
        user=_canonical(vector["user"]),
        target_tracer=_canonical(vector["target_tracer"]),
        side=Side[vector["side"]],
        price=int(vector["price"]),
        amount=int(vector["amount"]),
        expiration=vector["expiration"],
        created=vector["created"],
        signed_data=vector["signed_data"].lower(),
    )
    emitted = order.to_dict()
    assert emitted["id"] == vector["id"]
    assert emitted["signed_data"] == vector["signed_data"].lower()
    assert emitted["amount_left"] == emitted["amount"] == vector["amount"]


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint128 = st.integers(min_value=0, max_value=MAX_UINT128)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)


@given(addresses, addresses, uint128, uint128, st.sampled_from(Side), uint256, uint256)
def test_id_is_keccak_of_the_abi_encoding(
    user: str,
    market: str,
    price: int,
    amount: int,
    side: Side,
    expiration: int,
    created: int,
) -> None:
    encoded = encode(
        ["address", "address", "uint256", "uint256", "uint256", "uint256", "uint256"],
        [user, market, price, amount, int(side), expiration, created],
    )
    expected = "0x" + keccak(encoded).hex()
    assert order_id(user, market, price, amount, side, expiration, created) == expected


def test_to_dict_is_the_wire_order_object() -> None:
    order = Order.create(
        user="0x" + "ab" * 20,
        target_tracer="0x" + "cd" * 20,
        side=Side.Ask,
        price=MAX_UINT128,
        amount=MAX_UINT128,
        expiration=1624322757,
        created=1623977157,
        signed_data="0x" + "ee" * 65,
    )
    assert order.to_dict(amount_left=7) == {
        "id": order.id,
        "user": "0x" + "ab" * 20,
        "target_tracer": "0x" + "cd" * 20,
        "side": "Ask",
        "price": str(MAX_UINT128),
        "amount": str(MAX_UINT128),
        "amount_left": "7",
        "expiration": "1624322757",
        "created": "1623977157",
        "signed_data": "0x" + "ee" * 65,
    }
    assert order.to_dict()["amount_left"] == str(MAX_UINT128)
