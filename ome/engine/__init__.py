"""The matching core: pure, synchronous, deterministic.

Nothing here performs I/O, reads the clock, logs or awaits; the time is always an
argument. Every state change is one method call whose result depends only on the
book and its arguments, so a journal of those calls replays to the same state.
"""

from ome.engine.book import Book, Fill, Status, SubmitResult
from ome.engine.errors import (
    DuplicateOrder,
    EngineError,
    MarketExists,
    MarketMismatch,
    NotOwner,
    OrderExpired,
    OrderNotFound,
    OrderRejected,
    SnapshotError,
    UnknownMarket,
)
from ome.engine.exchange import Exchange
from ome.engine.orders import MAX_UINT128, Order, Side, order_id

__all__ = [
    "MAX_UINT128",
    "Book",
    "DuplicateOrder",
    "EngineError",
    "Exchange",
    "Fill",
    "MarketExists",
    "MarketMismatch",
    "NotOwner",
    "Order",
    "OrderExpired",
    "OrderNotFound",
    "OrderRejected",
    "Side",
    "SnapshotError",
    "Status",
    "SubmitResult",
    "UnknownMarket",
    "order_id",
]
