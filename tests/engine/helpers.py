"""The engine tests' names for the shared builders of tests/builders.py."""

from tests.builders import FAR_FUTURE, MARKET, NOW, ask, bid, make_order, user

__all__ = ["FAR_FUTURE", "MARKET", "NOW", "ask", "bid", "make_order", "user"]
