"""Random order flow for the hypothesis tests of what follows the command path.

A step is a tuple: ("place", market, trader, side, price, amount, lifetime),
("cancel", n) for the n-th order placed so far (modulo), or ("tick", seconds).
`command_of` turns a step into the command the live path would apply.
"""

from typing import Any

from hypothesis import strategies as st

from ome.engine import Order, Side
from ome.records import Cancel, Command, Expire, Place
from tests.builders import MARKET, OTHER_MARKET, SIG, user

MARKETS = (MARKET, OTHER_MARKET)

CANCEL = st.tuples(st.just("cancel"), st.integers(0, 200))
TICK = st.tuples(st.just("tick"), st.integers(1, 5))


def places(low: int, high: int) -> st.SearchStrategy[tuple[Any, ...]]:
    """Orders of four traders on both markets at prices from `low` to `high`."""
    return st.tuples(
        st.just("place"),
        st.sampled_from(MARKETS),
        st.integers(1, 4),
        st.sampled_from(Side),
        st.integers(low, high),
        st.integers(1, 30),
        st.integers(1, 20),
    )


def command_of(step: tuple[Any, ...], now: int, placed: list[Order]) -> Command | None:
    """The command of a place, cancel or tick step at `now`; None for a cancel with
    nothing placed yet. A placed order is appended to `placed`."""
    if step[0] == "place":
        _, market, who, side, price, amount, lifetime = step
        order = Order.create(
            user=user(who),
            target_tracer=market,
            side=side,
            price=price,
            amount=amount,
            expiration=now + lifetime,
            created=now + len(placed),
            signed_data=SIG,
        )
        placed.append(order)
        return Place(order)
    if step[0] == "cancel":
        if not placed:
            return None
        target = placed[step[1] % len(placed)]
        return Cancel(target.target_tracer, target.id, None)
    return Expire()
