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


# A pair made by a fill and not yet read: the fill, its command's seq and its index there.
_Unread = tuple[Fill, int, int]


class PendingPairs:
    """Undelivered pairs by key, in the order they were made (dicts keep insertion order).

    A pair made by a fill keeps the fill until somebody reads the pair: replay
    makes one per fill, and most are settled by a later record before they
    are read, so building their two order objects then would be wasted. The
    pair read later is the one `make_pair` made at the fill: an order changes
    nothing but its amount left, and the fill holds the amounts left it had.
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[Pair] | None = None) -> None:
        self._pairs: dict[str, Pair | _Unread] = {pair.key: pair for pair in pairs or ()}

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, key: object) -> bool:
        return key in self._pairs

    def add_fill(self, fill: Fill, seq: int, index: int) -> str:
        """Add the pair of fill number `index` of command `seq`; its key."""
        key = pair_key(fill[1].target_tracer, seq, index)
        self._pairs[key] = (fill, seq, index)
        return key

    def remove(self, key: str) -> None:
        """Remove the pair `key`; KeyError when it is not pending."""
        del self._pairs[key]

    def first(self) -> Pair | None:
        for key, entry in self._pairs.items():
            pair = _read(entry)
            # The sender reads the oldest pair on every attempt: build it once.
            self._pairs[key] = pair
            return pair
        return None

    def pairs(self) -> list[Pair]:
        """Every pending pair, oldest first."""
        return [_read(entry) for entry in self._pairs.values()]


def _read(entry: Pair | _Unread) -> Pair:
    if isinstance(entry, Pair):
        return entry
    return make_pair(*entry)


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
