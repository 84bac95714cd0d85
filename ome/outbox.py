"""The outbox: matched pairs the executioner has not yet acknowledged, in fill order.

This is state, changed only by the command path: a place command adds one
pair per fill, a delivery outcome removes one. A pair holds both orders as
they stood right after its fill, the sequence number of the command that
made it (it may be sent once that record is durable) and its idempotency
key, derived from the market, that sequence number and the fill's index in
the command. So the key names one fill forever: the same on every retry,
after any restart and any replay, and different for any two fills ever made
(sequence numbers are never reused).
"""

import hashlib
from typing import Any, NamedTuple

from ome.engine import Fill


# A named tuple rather than a frozen dataclass: replay makes one per fill, and
# a frozen dataclass sets each field through object.__setattr__ (3x the time).
class Pair(NamedTuple):
    key: str
    seq: int
    maker: dict[str, Any]
    taker: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "seq": self.seq, "maker": self.maker, "taker": self.taker}


def pair_key(market: str, seq: int, index: int) -> str:
    return hashlib.sha256(f"{market}:{seq}:{index}".encode()).hexdigest()[:32]


def make_pair(fill: Fill, seq: int, index: int) -> Pair:
    maker_order, taker_order, _price, _amount, maker_left, taker_left = fill
    return Pair(
        pair_key(taker_order.target_tracer, seq, index),
        seq,
        maker_order.to_dict(maker_left),
        taker_order.to_dict(taker_left),
    )


class PendingPairs:
    """Undelivered pairs by key, in the order they were made (dicts keep insertion order)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[Pair] | None = None) -> None:
        self._pairs: dict[str, Pair] = {pair.key: pair for pair in pairs or ()}

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, key: object) -> bool:
        return key in self._pairs

    def add(self, pair: Pair) -> None:
        self._pairs[pair.key] = pair

    def remove(self, key: str) -> Pair:
        return self._pairs.pop(key)

    def first(self) -> Pair | None:
        return next(iter(self._pairs.values()), None)

    def pairs(self) -> list[Pair]:
        """Every pending pair, oldest first."""
        return list(self._pairs.values())


def parse_pair(raw: Any, *, default_seq: int = 0) -> Pair:
    """A pair read back from a dumpfile; raise ValueError when it is not one.

    Version-1 dumps stored no sequence number: their pairs were durable already.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        raise ValueError(f"not an outbox pair: {raw!r:.80}")
    for role in ("maker", "taker"):
        order = raw.get(role)
        if not isinstance(order, dict) or not all(
            isinstance(order.get(field), str)
            for field in ("id", "user", "target_tracer", "amount_left")
        ):
            raise ValueError(f"outbox pair without a valid {role}: {raw!r:.80}")
    seq = raw.get("seq", default_seq)
    if type(seq) is not int or seq < 0:
        raise ValueError(f"outbox pair with a bad seq: {raw!r:.80}")
    return Pair(raw["key"], seq, raw["maker"], raw["taker"])
