"""Small builders shared by the engine tests."""

from ome.engine import Order, Side

MARKET = "0x" + "22" * 20
FAR_FUTURE = 4_102_444_800
NOW = 1_700_000_000

_created = iter(range(1_600_000_000, 2**62))


def user(n: int) -> str:
    return "0x" + f"{n:040x}"


def make_order(
    side: Side,
    price: int,
    amount: int,
    *,
    trader: int = 1,
    expiration: int = FAR_FUTURE,
    market: str = MARKET,
) -> Order:
    """A fresh order; `created` differs every call so ids never collide by accident."""
    return Order.create(
        user=user(trader),
        target_tracer=market,
        side=side,
        price=price,
        amount=amount,
        expiration=expiration,
        created=next(_created),
        signed_data="0x" + "ab" * 65,
    )


def bid(
    price: int, amount: int, *, trader: int = 1, expiration: int = FAR_FUTURE, market: str = MARKET
) -> Order:
    return make_order(Side.Bid, price, amount, trader=trader, expiration=expiration, market=market)


def ask(
    price: int, amount: int, *, trader: int = 1, expiration: int = FAR_FUTURE, market: str = MARKET
) -> Order:
    return make_order(Side.Ask, price, amount, trader=trader, expiration=expiration, market=market)
