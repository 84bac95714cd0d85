"""The matching core: pure, synchronous, deterministic.

Nothing here performs I/O, reads the clock, logs or awaits; the time is always an
argument. Every state change is one method call whose result depends only on the
book and its arguments, so a journal of those calls replays to the same state.
"""

from ome.engine.book import Book, Fill, Status, SubmitResult
from ome.engine.errors import (
    BookIntegrityError,
    DuplicateOrder,
    EngineError,
    MarketExists,
    MarketLimitReached,
    MarketMismatch,
    NotOwner,
    OrderExpired,
    OrderFinished,
    OrderLimitReached,
    OrderNotFound,
    OrderRejected,
    SnapshotError,
    UnknownMarket,
)
from ome.engine.exchange import Exchange
from ome.engine.orders import MAX_UINT128, Order, Side, make_order, order_id

__all__ = [
    "MAX_UINT128",
    "Book",
    "BookIntegrityError",
    "DuplicateOrder",
    "EngineError",
    "Exchange",
    "Fill",
    "MarketExists",
    "MarketLimitReached",
    "MarketMismatch",
    "NotOwner",
    "Order",
    "OrderExpired",
    "OrderFinished",
    "OrderLimitReached",
    "OrderNotFound",
    "OrderRejected",
    "Side",
    "SnapshotError",
    "Status",
    "SubmitResult",
    "UnknownMarket",
    "make_order",
    "order_id",
]
