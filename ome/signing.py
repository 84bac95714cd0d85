"""Who signed what: EIP-712 order signatures and EIP-191 cancel signatures.

Pure: no I/O, no clock, no state beyond constants and a `Domain` built once at
start. An order's digest is tracer-utils' typed data, hashed directly:

    domain  EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
            name "Tracer Protocol", version "1.0", the trader contract as verifyingContract
    struct  Order(address maker,address market,uint256 price,uint256 amount,
                  uint256 side,uint256 expires,uint256 created)
            maker = user, market = target_tracer, side Bid 0 / Ask 1, expires = expiration
    digest  keccak256(0x19 0x01 ‖ domainSeparator ‖ keccak256(typeHash ‖ seven words))

Every field is a static type, so the struct encoding is one 32-byte word each
and the type hash and domain separator are computed once; a generic typed-data
encoder (eth-account's `encode_typed_data`, the tests' oracle) would redo all
of that per order. A cancel is `personal_sign` of the text `cancel:` + the
order id as `0x` + 64 lowercase hex.

Signatures are 65 bytes r ‖ s ‖ v with v 27/28 (or 0/1). Only canonical ones
are accepted: 0 < r < n and 0 < s <= n/2 (EIP-2), so that a signature cannot
be turned into a second valid one by negating s. Anything else raises
`InvalidSignature`, whose message is the executioner's code, `invalid_signature`.
"""

from dataclasses import dataclass
from functools import lru_cache

from coincurve import PrivateKey, PublicKey

# eth-hash's pysha3 backend (safe-pysha3, in C) rather than `eth_hash.auto`:
# the automatic one picks pycryptodome, whose hash objects cost about 5 µs a
# call against 1.3 µs; a signature verification hashes twice, an order id once.
from eth_hash.backends.pysha3 import keccak256 as keccak

from ome.engine import Order, Side

INVALID_SIGNATURE = "invalid_signature"
DOMAIN_NAME = "Tracer Protocol"
DOMAIN_VERSION = "1.0"
# The curve order of secp256k1.
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _N // 2
_WORD = 32
_ADDRESS_PAD = bytes(12)
_SIGNATURE_BYTES = 65
# Recovered keys whose address is remembered: a few hundred bytes each, and far
# more than the traders active at once, who sign order after order with one key.
_ADDRESSES_REMEMBERED = 4096

DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ORDER_TYPE = (
    b"Order(address maker,address market,uint256 price,uint256 amount,"
    b"uint256 side,uint256 expires,uint256 created)"
)
_DOMAIN_TYPE_HASH = keccak(DOMAIN_TYPE)
_ORDER_TYPE_HASH = keccak(ORDER_TYPE)
_NAME_HASH = keccak(DOMAIN_NAME.encode())
_VERSION_HASH = keccak(DOMAIN_VERSION.encode())
_SIDE_WORDS = {side: int(side).to_bytes(_WORD, "big") for side in Side}

CANCEL_PREFIX = "cancel:"
# EIP-191 version 0x45: the length is of the message in bytes, and a cancel's is fixed.
_CANCEL_HEADER = f"\x19Ethereum Signed Message:\n{len(CANCEL_PREFIX) + 66}{CANCEL_PREFIX}".encode()


class InvalidSignature(ValueError):
    """A signature that is malformed, not canonical, or not by the expected signer (400)."""

    def __init__(self) -> None:
        super().__init__(INVALID_SIGNATURE)


@dataclass(frozen=True, slots=True)
class Domain:
    """An EIP-712 domain of tracer-utils' orders: one chain, one trader contract."""

    chain_id: int
    verifying_contract: str
    separator: bytes

    @classmethod
    def of(cls, chain_id: int, verifying_contract: str) -> "Domain":
        """`verifying_contract` is `0x` + 40 hex digits in any case."""
        contract = verifying_contract.lower()
        separator = keccak(
            b"".join(
                (
                    _DOMAIN_TYPE_HASH,
                    _NAME_HASH,
                    _VERSION_HASH,
                    chain_id.to_bytes(_WORD, "big"),
                    _ADDRESS_PAD,
                    bytes.fromhex(contract[2:]),
                )
            )
        )
        return cls(chain_id, contract, separator)


def order_digest(domain: Domain, order: Order) -> bytes:
    """The 32 bytes the order's maker signs."""
    struct_hash = keccak(
        b"".join(
            (
                _ORDER_TYPE_HASH,
                _ADDRESS_PAD,
                bytes.fromhex(order.user[2:]),
                _ADDRESS_PAD,
                bytes.fromhex(order.target_tracer[2:]),
                order.price.to_bytes(_WORD, "big"),
                order.amount.to_bytes(_WORD, "big"),
                _SIDE_WORDS[order.side],
                order.expiration.to_bytes(_WORD, "big"),
                order.created.to_bytes(_WORD, "big"),
            )
        )
    )
    return keccak(b"\x19\x01" + domain.separator + struct_hash)


def cancel_message(order_id: str) -> str:
    """The text an order's owner signs to cancel it; `order_id` is canonical."""
    return CANCEL_PREFIX + order_id


def cancel_digest(order_id: str) -> bytes:
    """The EIP-191 `personal_sign` digest of `cancel_message(order_id)`."""
    return keccak(_CANCEL_HEADER + order_id.encode())


def _signature_bytes(signature: str) -> bytes:
    """`0x` + 130 hex digits as the 65 bytes r ‖ s ‖ recovery id (0 or 1), canonical only."""
    if not signature.startswith(("0x", "0X")) or len(signature) != 2 + 2 * _SIGNATURE_BYTES:
        raise InvalidSignature()
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError:
        raise InvalidSignature() from None
    # bytes.fromhex skips whitespace, so the length is checked again on the bytes.
    if len(raw) != _SIGNATURE_BYTES:
        raise InvalidSignature()
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    v = raw[64]
    if v >= 27:
        v -= 27
    if not (0 < r < _N and 0 < s <= _HALF_N and v in (0, 1)):
        raise InvalidSignature()
    return raw[:64] + bytes((v,))


def recover(digest: bytes, signature: str) -> str:
    """The address (`0x` + 40 lowercase hex) whose key made `signature` over `digest`."""
    compact = _signature_bytes(signature)
    try:
        key = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except ValueError:
        # No point on the curve has this r: the signature was made by no key.
        raise InvalidSignature() from None
    return _address(key.format(compressed=False))


@lru_cache(maxsize=_ADDRESSES_REMEMBERED)
def _address(public_key: bytes) -> str:
    """The address of a 65-byte uncompressed public key.

    Remembered because the keccak and the hex cost about a tenth of a
    verification (bench/signing.py verify), and a trader's next order is
    recovered to the same key.
    """
    return "0x" + keccak(public_key[1:])[12:].hex()


def order_signer(domain: Domain, order: Order) -> str:
    """The address that signed `order.signed_data` on `domain`."""
    return recover(order_digest(domain, order), order.signed_data)


def verify_order(domain: Domain, order: Order) -> None:
    """Raise InvalidSignature unless the order's `user` signed it on `domain`."""
    if order_signer(domain, order) != order.user:
        raise InvalidSignature()


def cancel_signer(order_id: str, signature: str) -> str:
    """The address that signed the cancel of `order_id` (canonical)."""
    return recover(cancel_digest(order_id), signature)


# ---------------------------------------------------------------- signing (tools and tests)


def address_of(private_key: bytes) -> str:
    """The address of a 32-byte secp256k1 private key."""
    return _address(PrivateKey(private_key).public_key.format(compressed=False))


def sign_digest(private_key: bytes, digest: bytes) -> str:
    """r ‖ s ‖ v with v 27/28, as `0x` + 130 hex; libsecp256k1 always makes s low."""
    compact = PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return "0x" + compact[:64].hex() + f"{compact[64] + 27:02x}"
