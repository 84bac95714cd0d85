"""Signatures: the known answers in tests/vectors, and eth-account as the oracle.

eth-account's generic encoders (`encode_typed_data`, `encode_defunct`) and its
signer make the signatures; `ome.signing` hashes the fixed typed data by hand
and must agree with them on every order and key, and refuse every signature
that is not the maker's on this exact domain and these exact fields.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from ome.engine import MAX_UINT128, Order, Side
from ome.signing import (
    INVALID_SIGNATURE,
    Domain,
    InvalidSignature,
    address_of,
    cancel_digest,
    cancel_message,
    cancel_signer,
    order_digest,
    order_signer,
    recover,
    sign_digest,
    verify_order,
)
from tests.signers import typed_order_data

VECTORS = json.loads((Path(__file__).resolve().parent / "vectors" / "signatures.json").read_text())
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DOMAIN = Domain.of(VECTORS["domain"]["chainId"], VECTORS["domain"]["verifyingContract"])
THROWAWAY_KEY = bytes([0x42]) * 32


def vector_order(**changes: Any) -> Order:
    v = VECTORS["order"]
    fields: dict[str, Any] = {
        "user": v["user"].lower(),
        "target_tracer": v["target_tracer"].lower(),
        "side": Side[v["side"]],
        "price": int(v["price"]),
        "amount": int(v["amount"]),
        "expiration": v["expiration"],
        "created": v["created"],
        "signed_data": v["signed_data"],
    }
    fields.update(changes)
    return Order.create(**fields)


def split(signature: str) -> tuple[int, int, int]:
    raw = bytes.fromhex(signature[2:])
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]


def join(r: int, s: int, v: int) -> str:
    return "0x" + r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex() + f"{v:02x}"


# ---------------------------------------------------------------- the vectors


def test_vector_order_is_signed_by_its_user_on_its_domain() -> None:
    order = vector_order()
    assert order.id == VECTORS["order"]["id"]
    assert order_signer(DOMAIN, order) == VECTORS["order"]["user"].lower()
    verify_order(DOMAIN, order)


def test_vector_key_is_the_documented_throwaway_key() -> None:
    assert address_of(THROWAWAY_KEY) == VECTORS["order"]["user"].lower()
    assert (
        sign_digest(THROWAWAY_KEY, order_digest(DOMAIN, vector_order()))
        == (VECTORS["order"]["signed_data"])
    )


def test_vector_cancel_is_signed_by_the_orders_user() -> None:
    order_id = VECTORS["order"]["id"]
    assert cancel_message(order_id) == VECTORS["cancel"]["message"]
    assert cancel_signer(order_id, VECTORS["cancel"]["signature"]) == (
        VECTORS["order"]["user"].lower()
    )
    assert sign_digest(THROWAWAY_KEY, cancel_digest(order_id)) == VECTORS["cancel"]["signature"]


@pytest.mark.parametrize(
    "domain",
    [
        Domain.of(1, DOMAIN.verifying_contract),
        Domain.of(1338, DOMAIN.verifying_contract),
        Domain.of(DOMAIN.chain_id, "0x" + "34" * 20),
        Domain.of(DOMAIN.chain_id, VECTORS["order"]["target_tracer"]),
    ],
    ids=["chain 1", "chain 1338", "another contract", "the market as contract"],
)
def test_vector_refused_on_another_domain(domain: Domain) -> None:
    with pytest.raises(InvalidSignature, match=INVALID_SIGNATURE):
        verify_order(domain, vector_order())


@pytest.mark.parametrize(
    "change",
    [
        {"user": "0x" + "17" * 20},
        {"target_tracer": "0x" + "23" * 20},
        {"side": Side.Ask},
        {"price": int(VECTORS["order"]["price"]) + 1},
        {"amount": int(VECTORS["order"]["amount"]) - 1},
        {"expiration": VECTORS["order"]["expiration"] + 1},
        {"created": VECTORS["order"]["created"] - 1},
    ],
    ids=lambda change: next(iter(change)),
)
def test_vector_refused_with_one_field_changed(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidSignature):
        verify_order(DOMAIN, vector_order(**change))


@pytest.mark.parametrize("part", ["r", "s"])
@pytest.mark.parametrize("bit", [0, 1, 77, 200, 254])
def test_vector_refused_with_a_flipped_bit(part: str, bit: int) -> None:
    r, s, v = split(VECTORS["order"]["signed_data"])
    if part == "r":
        r ^= 1 << bit
    else:
        s ^= 1 << bit
    with pytest.raises(InvalidSignature):
        verify_order(DOMAIN, vector_order(signed_data=join(r, s, v)))


def test_high_s_twin_is_refused_though_it_recovers_the_same_key() -> None:
    r, s, v = split(VECTORS["order"]["signed_data"])
    twin = join(r, N - s, 55 - v)  # 27 <-> 28
    # What a verifier without the low-s rule would accept: the same signer.
    signed = encode_typed_data(full_message=typed_data(DOMAIN, vector_order()))
    assert Account.recover_message(signed, signature=twin) == VECTORS["order"]["user"]
    with pytest.raises(InvalidSignature):
        verify_order(DOMAIN, vector_order(signed_data=twin))


def test_recovery_id_zero_or_one_is_accepted_like_27_or_28() -> None:
    r, s, v = split(VECTORS["order"]["signed_data"])
    verify_order(DOMAIN, vector_order(signed_data=join(r, s, v - 27)))


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "0x",
        VECTORS["order"]["signed_data"][:-2],
        VECTORS["order"]["signed_data"] + "00",
        VECTORS["order"]["signed_data"][2:],
        "0x" + "zz" * 65,
        "0x" + " 1" * 65,
        join(0, 1, 27),
        join(1, 0, 27),
        join(N, 1, 27),
        join(N + 1, 1, 27),
        *(join(*split(VECTORS["order"]["signed_data"])[:2], v) for v in (2, 3, 26, 29, 255)),
    ],
)
def test_malformed_signatures_are_refused(signature: str) -> None:
    with pytest.raises(InvalidSignature):
        recover(order_digest(DOMAIN, vector_order()), signature)


def test_r_that_is_no_point_on_the_curve_is_refused() -> None:
    # x = 5 has no y on secp256k1 (5^3 + 7 = 132 is not a square mod p).
    with pytest.raises(InvalidSignature):
        recover(order_digest(DOMAIN, vector_order()), join(5, 1, 27))


# ---------------------------------------------------------------- eth-account as the oracle


def typed_data(domain: Domain, order: Order) -> dict[str, Any]:
    """tracer-utils' typed data of an order, spelled the way eth-account takes it."""
    return typed_order_data(
        domain.chain_id,
        domain.verifying_contract,
        {
            "maker": order.user,
            "market": order.target_tracer,
            "price": order.price,
            "amount": order.amount,
            "side": int(order.side),
            "expires": order.expiration,
            "created": order.created,
        },
    )


keys = st.binary(min_size=32, max_size=32).filter(lambda k: 0 < int.from_bytes(k, "big") < N)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
quantities = st.integers(1, MAX_UINT128)
times = st.integers(0, 2**64 - 1)
domains = st.builds(Domain.of, st.integers(0, 2**256 - 1), addresses)


@st.composite
def signed_orders(draw: st.DrawFn) -> tuple[Domain, Order]:
    """A random order on a random domain, signed by a random key through eth-account."""
    key, domain = draw(keys), draw(domains)
    order = Order.create(
        user=Account.from_key(key).address.lower(),
        target_tracer=draw(addresses),
        side=draw(st.sampled_from(Side)),
        price=draw(quantities),
        amount=draw(quantities),
        expiration=draw(times),
        created=draw(times),
    )
    signed = Account.sign_message(encode_typed_data(full_message=typed_data(domain, order)), key)
    assert signed.message_hash == order_digest(domain, order)
    order.signed_data = "0x" + bytes(signed.signature).hex()
    return domain, order


@settings(max_examples=60, deadline=None)
@given(signed_orders())
def test_eth_account_signatures_verify(case: tuple[Domain, Order]) -> None:
    domain, order = case
    verify_order(domain, order)


SIGNED_FIELDS = ("user", "target_tracer", "side", "price", "amount", "expiration", "created")


@settings(max_examples=60, deadline=None)
@given(signed_orders(), st.sampled_from(SIGNED_FIELDS), st.data())
def test_any_change_to_a_signed_field_fails(
    case: tuple[Domain, Order], field: str, data: st.DataObject
) -> None:
    domain, order = case
    strategy = {
        "user": addresses,
        "target_tracer": addresses,
        "side": st.sampled_from(Side),
        "price": quantities,
        "amount": quantities,
        "expiration": times,
        "created": times,
    }[field]
    old = getattr(order, field)
    new = data.draw(strategy.filter(lambda value: value != old))
    fields = {f: getattr(order, f) for f in (*SIGNED_FIELDS, "signed_data")}
    with pytest.raises(InvalidSignature):
        verify_order(domain, Order.create(**{**fields, field: new}))


@settings(max_examples=30, deadline=None)
@given(signed_orders(), domains)
def test_signature_fails_on_any_other_domain(case: tuple[Domain, Order], other: Domain) -> None:
    domain, order = case
    if (other.chain_id, other.verifying_contract) != (domain.chain_id, domain.verifying_contract):
        with pytest.raises(InvalidSignature):
            verify_order(other, order)


@settings(max_examples=40, deadline=None)
@given(keys, st.binary(min_size=32, max_size=32), keys)
def test_eth_account_cancels_recover_their_signer(key: bytes, raw_id: bytes, other: bytes) -> None:
    order_id = "0x" + raw_id.hex()
    signed = Account.sign_message(encode_defunct(text=f"cancel:{order_id}"), key)
    assert signed.message_hash == cancel_digest(order_id)
    signature = "0x" + bytes(signed.signature).hex()
    assert cancel_signer(order_id, signature) == Account.from_key(key).address.lower()
    # Signed for another id, it names someone else.
    assert cancel_signer("0x" + bytes(b ^ 1 for b in raw_id).hex(), signature) != (
        Account.from_key(key).address.lower()
    )
    # Our signer is what the tools and the README use: eth-account agrees with it.
    ours = sign_digest(other, cancel_digest(order_id))
    assert Account.recover_message(encode_defunct(text=f"cancel:{order_id}"), signature=ours) == (
        Account.from_key(other).address
    )
