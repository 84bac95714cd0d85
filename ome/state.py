"""Everything the OME must not lose, in one object: what snapshots hold and replay rebuilds.

`seq` is the sequence number of the last command applied to it: a snapshot of
the state covers exactly the journal records up to `seq`.
"""

from dataclasses import dataclass, field

from ome.engine import Exchange
from ome.outbox import PendingPairs


@dataclass(slots=True)
class State:
    exchange: Exchange = field(default_factory=Exchange)
    outbox: PendingPairs = field(default_factory=PendingPairs)
    seq: int = 0
