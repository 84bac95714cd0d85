"""Test traders with keys: bodies signed the way a client signs them.

Key number n is the 32-byte big-endian integer n + 0x4200 (any n >= 0);
`THROWAWAY_KEY` is the one of tests/vectors/signatures.json and the README.
"""

from typing import Any

from ome.engine import Order, Side
from ome.signing import Domain, address_of, cancel_digest, order_digest, sign_digest

THROWAWAY_KEY = bytes([0x42]) * 32
DEV_DOMAIN = Domain.of(1337, "0x" + "33" * 20)


def key(n: int) -> bytes:
    return (0x4200 + n).to_bytes(32, "big")


def address(n: int) -> str:
    return address_of(key(n))


def order_of(body: dict[str, Any]) -> Order:
    """The order a body describes, as the OME parses it (canonical fields)."""
    return Order.create(
        user=body["user"].lower(),
        target_tracer=body["target_tracer"].lower(),
        side=Side[body["side"].capitalize()],
        price=int(body["price"]),
        amount=int(body["amount"]),
        expiration=int(body["expiration"]),
        created=int(body["created"]),
    )


def sign_order(body: dict[str, Any], signer: int, domain: Domain = DEV_DOMAIN) -> dict[str, Any]:
    """`body` with `user` = the signer's address and its EIP-712 signature on `domain`."""
    body = {**body, "user": address(signer)}
    body["signed_data"] = sign_digest(key(signer), order_digest(domain, order_of(body)))
    return body


def sign_cancel(order_id: str, signer: int) -> str:
    return sign_digest(key(signer), cancel_digest(order_id))


def typed_order_data(chain_id: int, contract: str, message: dict[str, Any]) -> dict[str, Any]:
    """tracer-utils' EIP-712 typed data of an order, as eth-account's encoder takes it;
    `message` holds the order's fields by their typed-data names (maker, market, …)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": [
                {"name": "maker", "type": "address"},
                {"name": "market", "type": "address"},
                {"name": "price", "type": "uint256"},
                {"name": "amount", "type": "uint256"},
                {"name": "side", "type": "uint256"},
                {"name": "expires", "type": "uint256"},
                {"name": "created", "type": "uint256"},
            ],
        },
        "primaryType": "Order",
        "domain": {
            "name": "Tracer Protocol",
            "version": "1.0",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": message,
    }
