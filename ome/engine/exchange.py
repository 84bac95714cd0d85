"""All open markets: market address -> its `Book`."""

from ome.engine.book import Book
from ome.engine.errors import MarketExists, MarketLimitReached, UnknownMarket
from ome.engine.orders import Order


class Exchange:
    """The books of every market, keyed by canonical address (`0x` + 40 lowercase hex)."""

    __slots__ = ("books",)

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}

    def create(self, market: str, *, limit: int | None = None) -> Book:
        """Open a book; with `limit`, refuse when that many books are open already."""
        if market in self.books:
            raise MarketExists(market)
        if limit is not None and len(self.books) >= limit:
            raise MarketLimitReached(limit)
        book = self.books[market] = Book(market)
        return book

    def get(self, market: str) -> Book:
        try:
            return self.books[market]
        except KeyError:
            raise UnknownMarket(market) from None

    def markets(self) -> list[str]:
        """Every market, in the order they were created."""
        return list(self.books)

    def expiry_due(self, now: int) -> bool:
        return any(book.expiry_due(now) for book in self.books.values())

    def sweep_expired(self, now: int) -> dict[str, list[Order]]:
        """Expire resting orders in every book and forget expired finished ids.

        Only the books that lost resting orders appear.
        """
        swept: dict[str, list[Order]] = {}
        for market, book in self.books.items():
            removed = book.sweep_expired(now)
            if removed:
                swept[market] = removed
        return swept
