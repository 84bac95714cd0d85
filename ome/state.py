"""Everything the OME must not lose, in one object: what snapshots hold and replay rebuilds.

`seq` is the sequence number of the last command applied to it: a snapshot of
the state covers exactly the journal records up to `seq`.

`trades` is each market's recent trade history, oldest first, at most
`TRADE_HISTORY` per market (older ones fall off). Only `Machine.apply`
appends to it, from the fills of a place, so replaying the journal after a
snapshot rebuilds it exactly. A trade's `seq` is its market's `Book.seq`
after the command that made it (all fills of one command share it), the
same number the feed's depth updates and trade messages carry.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from ome.engine import Exchange, Side
from ome.outbox import PendingPairs

TRADE_HISTORY = 1000


class TradeRecord(NamedTuple):
    seq: int
    time: int
    price: int
    amount: int
    maker: str
    taker: str
    taker_side: Side


def trade_history() -> deque[TradeRecord]:
    return deque(maxlen=TRADE_HISTORY)


@dataclass(slots=True)
class State:
    exchange: Exchange = field(default_factory=Exchange)
    outbox: PendingPairs = field(default_factory=PendingPairs)
    seq: int = 0
    trades: dict[str, deque[TradeRecord]] = field(default_factory=dict)
