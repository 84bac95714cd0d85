"""Orders: the signed limit order, its side, and its id.

An `Order` holds every field of the wire order object as exact Python ints and
canonical strings (`0x` + lowercase hex), so that nothing is converted while
matching. `amount` is what was signed and never changes; `amount_left` only
goes down.
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

# eth-hash's pysha3 backend (safe-pysha3, in C) rather than `eth_hash.auto`:
# the automatic one picks pycryptodome, whose hash objects cost about 5 µs a
# call against 1.3 µs; a signature verification hashes twice, an order id once.
from eth_hash.backends.pysha3 import keccak256 as keccak
from mypy_extensions import mypyc_attr

MAX_UINT128 = 2**128 - 1
_WORD = 32
_ADDRESS_PAD = bytes(12)


class Side(IntEnum):
    """Values are those of the order id's ABI encoding; names are the wire labels."""

    Bid = 0
    Ask = 1


def order_id(
    user: str,
    target_tracer: str,
    price: int,
    amount: int,
    side: Side,
    expiration: int,
    created: int,
) -> str:
    """keccak256 of abi.encode(address, address, uint256 x 5), as `0x` + 64 hex.

    Every field is a static type, so the ABI encoding is one left-padded 32-byte
    word each; building the words directly is several times faster than eth-abi,
    which the tests use as the oracle for this function.
    """
    encoded = b"".join(
        (
            _ADDRESS_PAD,
            bytes.fromhex(user[2:]),
            _ADDRESS_PAD,
            bytes.fromhex(target_tracer[2:]),
            price.to_bytes(_WORD, "big"),
            amount.to_bytes(_WORD, "big"),
            int(side).to_bytes(_WORD, "big"),
            expiration.to_bytes(_WORD, "big"),
            created.to_bytes(_WORD, "big"),
        )
    )
    return "0x" + keccak(encoded).hex()


# acyclic: in the compiled build an order is not tracked by the cyclic garbage
# collector. It holds only strings and ints, so it can never be part of a
# cycle, and the collector's passes over every new order (each one survives
# into the book) were a quarter of a submit's time.
@mypyc_attr(acyclic=True)
@dataclass(slots=True, eq=False, init=False)
class Order:
    """A limit order. Addresses, id and signature are canonical `0x` lowercase strings.

    `__init__` is written out rather than generated: the generated one is a
    Python function even in the compiled build, and building an order with it
    cost as much as matching it. It takes the fields in order, as the
    generated one would (`dataclasses.replace` relies on the names).
    """

    id: str
    user: str
    target_tracer: str
    side: Side
    price: int
    amount: int
    amount_left: int
    expiration: int
    created: int
    signed_data: str

    def __init__(
        self,
        id: str,
        user: str,
        target_tracer: str,
        side: Side,
        price: int,
        amount: int,
        amount_left: int,
        expiration: int,
        created: int,
        signed_data: str,
    ) -> None:
        self.id = id
        self.user = user
        self.target_tracer = target_tracer
        self.side = side
        self.price = price
        self.amount = amount
        self.amount_left = amount_left
        self.expiration = expiration
        self.created = created
        self.signed_data = signed_data

    @classmethod
    def create(
        cls,
        *,
        user: str,
        target_tracer: str,
        side: Side,
        price: int,
        amount: int,
        expiration: int,
        created: int,
        signed_data: str = "0x",
    ) -> "Order":
        """A new, unfilled order with its id computed from its signed fields."""
        oid = order_id(user, target_tracer, price, amount, side, expiration, created)
        return make_order(
            oid, user, target_tracer, side, price, amount, amount, expiration, created, signed_data
        )

    def to_dict(self, amount_left: int | None = None) -> dict[str, Any]:
        """The wire order object; `amount_left` overrides the current one (for fills)."""
        return {
            "id": self.id,
            "user": self.user,
            "target_tracer": self.target_tracer,
            "side": self.side.name,
            "price": str(self.price),
            "amount": str(self.amount),
            "amount_left": str(self.amount_left if amount_left is None else amount_left),
            "expiration": str(self.expiration),
            "created": str(self.created),
            "signed_data": self.signed_data,
        }


def make_order(
    id: str,
    user: str,
    target_tracer: str,
    side: Side,
    price: int,
    amount: int,
    amount_left: int,
    expiration: int,
    created: int,
    signed_data: str,
) -> Order:
    """`Order(...)`, the way to build one from interpreted code.

    In the compiled build, calling the class goes through CPython's generic
    type call, which packs the arguments into a tuple and parses them again;
    a compiled function receives them by vectorcall and builds the order
    natively, in about 60% of the time. Every decoder of orders (wire,
    journal, snapshot) builds them here.
    """
    return Order(
        id, user, target_tracer, side, price, amount, amount_left, expiration, created, signed_data
    )
