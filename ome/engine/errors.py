"""The one tree of errors the engine raises.

    EngineError
    ├── UnknownMarket        no book for that market
    ├── MarketExists         a book for that market is already open
    ├── MarketLimitReached   as many books open as the limit allows
    ├── OrderNotFound        no resting order with that id in this book
    ├── NotOwner             a cancel on behalf of someone else than the order's user
    ├── OrderRejected        an order that may not enter the book
    │   ├── MarketMismatch   its target_tracer is another market
    │   ├── OrderExpired     expiration <= now
    │   ├── OrderLimitReached  its user already rests as many orders as allowed
    │   └── DuplicateOrder   an order with the same id is resting
    │       └── OrderFinished  ... or was filled, cancelled or expired, and is remembered
    ├── BookIntegrityError   a book's structures disagree (a bug; found by `validate`)
    └── SnapshotError        a snapshot that cannot be restored

Each carries a message fit to show a client; the service maps the classes to
HTTP status codes in one table.
"""


class EngineError(Exception):
    """Base of every error the matching core raises."""


class UnknownMarket(EngineError):
    def __init__(self, market: str) -> None:
        super().__init__("Market does not exist")
        self.market = market


class MarketExists(EngineError):
    def __init__(self, market: str) -> None:
        super().__init__("Market already exists")
        self.market = market


class MarketLimitReached(EngineError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Market limit reached: {limit} markets")
        self.limit = limit


class OrderNotFound(EngineError):
    def __init__(self, order_id: str) -> None:
        super().__init__("Order does not exist in this market")
        self.order_id = order_id


class NotOwner(EngineError):
    def __init__(self, order_id: str) -> None:
        super().__init__("Not the order's owner")
        self.order_id = order_id


class OrderRejected(EngineError):
    """An order refused before it touched the book."""


class MarketMismatch(OrderRejected):
    def __init__(self, target_tracer: str, market: str) -> None:
        super().__init__(f"target_tracer {target_tracer} is not this book's market {market}")
        self.target_tracer = target_tracer
        self.market = market


class OrderExpired(OrderRejected):
    def __init__(self, expiration: int, now: int) -> None:
        super().__init__(f"Order expired: expiration {expiration} is not after now {now}")
        self.expiration = expiration
        self.now = now


class DuplicateOrder(OrderRejected):
    def __init__(
        self, order_id: str, message: str = "An order with the same id is already in the book"
    ) -> None:
        super().__init__(message)
        self.order_id = order_id


class OrderLimitReached(OrderRejected):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Order limit reached: {limit} resting orders per user in this market")
        self.limit = limit


class OrderFinished(DuplicateOrder):
    """The id of an order that was fully filled, cancelled or expired, until its expiration."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id, "Order was already filled or cancelled")


class BookIntegrityError(EngineError):
    """A book's derived structures disagree with its levels: a bug, never a client's fault."""


class SnapshotError(EngineError):
    """A snapshot whose data is malformed or inconsistent."""
