"""The outbox delivers pairs to a real (fake) executioner in order, retrying what failed."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog.testing

from ome.delivery import Outbox, make_pair
from ome.engine import Book, Fill, Order, Side
from ome.executioner import ExecutionerClient
from tests.fakes import FakeExecutioner

MARKET = "0x" + "ab" * 20
MAKER_USER = "0x" + "11" * 20
TAKER_USER = "0x" + "22" * 20
SIGNATURE = "0x" + "cd" * 65
NOW = 1_700_000_000
LATER = NOW + 3600


def order(user: str, side: Side, price: int, amount: int, created: int = NOW) -> Order:
    return Order.create(
        user=user,
        target_tracer=MARKET,
        side=side,
        price=price,
        amount=amount,
        expiration=LATER,
        created=created,
        signed_data=SIGNATURE,
    )


def trade(*makers: tuple[int, int], taker_amount: int) -> tuple[list[Order], Order, list[Fill]]:
    """Rest asks (price, amount), then send a bid sweeping them; the fills of that bid."""
    book = Book(MARKET)
    asks = [order(MAKER_USER, Side.Ask, p, a, created=NOW + i) for i, (p, a) in enumerate(makers)]
    for ask in asks:
        book.submit(ask, NOW)
    bid = order(TAKER_USER, Side.Bid, max(p for p, _ in makers), taker_amount)
    return asks, bid, book.submit(bid, NOW)[1]


@pytest.fixture
async def client(fake_executioner: FakeExecutioner) -> AsyncIterator[ExecutionerClient]:
    client = ExecutionerClient(fake_executioner.url, timeout=0.5)
    yield client
    await client.aclose()


@pytest.fixture
async def sending(client: ExecutionerClient) -> AsyncIterator[Outbox]:
    """An outbox with short backoff whose sender is running."""
    outbox = Outbox(base_delay=0.05, max_delay=0.2)
    task = asyncio.create_task(outbox.run(client))
    yield outbox
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pairs_arrive_in_fill_order_with_maker_as_resting_order(
    fake_executioner: FakeExecutioner, sending: Outbox
) -> None:
    asks, bid, fills = trade((100, 3), (101, 5), taker_amount=6)
    sending.add(fills)
    delivered = await fake_executioner.wait_delivered(2)

    assert [(p["maker"]["id"], p["taker"]["id"]) for p in delivered] == [
        (asks[0].id, bid.id),
        (asks[1].id, bid.id),
    ]
    # Each order as it stood right after its fill.
    assert delivered[0]["maker"] == asks[0].to_dict(amount_left=0)
    assert delivered[0]["taker"] == bid.to_dict(amount_left=3)
    assert delivered[1]["maker"] == asks[1].to_dict(amount_left=2)
    assert delivered[1]["taker"] == bid.to_dict(amount_left=0)
    assert set(delivered[0]) == {"maker", "taker"}
    keys = [r.headers["Idempotency-Key"] for r in fake_executioner.submits]
    assert len(set(keys)) == 2
    assert sending.delivered == 2 and sending.pending() == []


async def test_later_pairs_wait_behind_earlier_ones(
    fake_executioner: FakeExecutioner, sending: Outbox
) -> None:
    _, _, first = trade((100, 1), taker_amount=1)
    _, _, second = trade((90, 2), taker_amount=2)
    sending.add(first)
    sending.add(second)
    delivered = await fake_executioner.wait_delivered(2)
    assert delivered[0]["maker"]["price"] == "100"
    assert delivered[1]["maker"]["price"] == "90"


async def test_503_is_retried_with_the_same_key(
    fake_executioner: FakeExecutioner, sending: Outbox
) -> None:
    fake_executioner.fail(3)
    _, _, fills = trade((100, 1), (100, 1), taker_amount=2)
    sending.add(fills)
    await fake_executioner.wait_delivered(2)

    attempts = fake_executioner.submits
    assert [r.status for r in attempts] == [503, 503, 503, 200, 200]
    keys = [r.headers["Idempotency-Key"] for r in attempts]
    assert len(set(keys[:4])) == 1
    assert keys[4] != keys[0]
    assert sending.delivered == 2 and sending.rejected == 0


async def test_first_retry_within_a_second_by_default(
    fake_executioner: FakeExecutioner, client: ExecutionerClient
) -> None:
    outbox = Outbox()
    task = asyncio.create_task(outbox.run(client))
    try:
        fake_executioner.fail(1)
        outbox.add(trade((100, 1), taker_amount=1)[2])
        await fake_executioner.wait_delivered(1, timeout=1.5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_4xx_is_final_and_the_next_pair_goes_on(
    fake_executioner: FakeExecutioner, sending: Outbox
) -> None:
    fake_executioner.reject("invalid pair", status=422, path="submit")
    _, _, rejected = trade((100, 1), (100, 1), taker_amount=2)
    sending.add(rejected)
    await fake_executioner.wait_for("submit", 2, status=422)
    fake_executioner.reset()
    _, _, accepted = trade((100, 1), taker_amount=1)
    sending.add(accepted)
    await fake_executioner.wait_delivered(1)

    assert [r.status for r in fake_executioner.submits] == [422, 422, 200]
    assert sending.rejected == 2
    assert sending.delivered == 1
    assert sending.pending() == []


async def test_hanging_executioner_times_out_and_is_retried(
    fake_executioner: FakeExecutioner, sending: Outbox
) -> None:
    fake_executioner.hang(path="submit")
    sending.add(trade((100, 1), taker_amount=1)[2])
    await fake_executioner.wait_for("submit", 2, timeout=5)
    assert len(sending.pending()) == 1
    fake_executioner.release()
    for _ in range(100):
        if sending.delivered:
            break
        await asyncio.sleep(0.05)

    assert sending.delivered == 1
    assert sending.pending() == []
    assert len({r.headers["Idempotency-Key"] for r in fake_executioner.submits}) == 1


async def test_cancelled_in_flight_pair_stays_pending(
    fake_executioner: FakeExecutioner, client: ExecutionerClient
) -> None:
    fake_executioner.hang(path="submit")
    outbox = Outbox()
    fills = trade((100, 1), taker_amount=1)[2]
    outbox.add(fills)
    task = asyncio.create_task(outbox.run(client))
    await fake_executioner.wait_for("submit", 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outbox.pending() == [make_pair(fills[0])]
    assert outbox.delivered == 0


async def test_restored_pairs_keep_their_key_and_go_first(
    fake_executioner: FakeExecutioner, client: ExecutionerClient
) -> None:
    restored = {**make_pair(trade((100, 1), taker_amount=1)[2][0]), "key": "restored-key"}
    outbox = Outbox([restored])
    outbox.add(trade((50, 1), taker_amount=1)[2])
    task = asyncio.create_task(outbox.run(client))
    try:
        delivered = await fake_executioner.wait_delivered(2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert delivered[0]["maker"]["price"] == "100"
    assert fake_executioner.submits[0].headers["Idempotency-Key"] == "restored-key"


def test_keys_are_stable_and_distinct() -> None:
    _, _, fills = trade((100, 1), (100, 1), (100, 1), taker_amount=3)
    keys = [make_pair(fill)["key"] for fill in fills]
    assert len(set(keys)) == 3
    assert keys == [make_pair(fill)["key"] for fill in fills]


def test_add_never_waits_and_pending_is_in_order() -> None:
    outbox = Outbox()
    _, _, fills = trade((100, 1), (101, 1), taker_amount=2)
    outbox.add(fills)
    outbox.add([])
    assert [p["maker"]["price"] for p in outbox.pending()] == ["100", "101"]


@pytest.mark.parametrize(
    "bad",
    [None, {"maker": {}, "taker": {}}, {"key": "k", "maker": {"id": "x"}, "taker": None}],
)
def test_malformed_restored_pairs_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        Outbox([bad])  # type: ignore[list-item]


async def test_each_delivery_outcome_is_logged_with_market_and_orders(
    fake_executioner: FakeExecutioner, sending: Outbox
) -> None:
    asks, bid, fills = trade((100, 1), (100, 1), taker_amount=2)
    with structlog.testing.capture_logs() as events:
        fake_executioner.fail(1)
        sending.add(fills[:1])
        await fake_executioner.wait_delivered(1)
        fake_executioner.reject("no", status=409, path="submit")
        sending.add(fills[1:])
        for _ in range(200):
            if sending.rejected:
                break
            await asyncio.sleep(0.01)
    outcomes = [
        (e["event"], e["market"], e["maker"], e["taker"], e["maker_user"], e["taker_user"])
        for e in events
    ]
    assert outcomes == [
        ("delivery_retry", MARKET, asks[0].id, bid.id, MAKER_USER, TAKER_USER),
        ("pair_delivered", MARKET, asks[0].id, bid.id, MAKER_USER, TAKER_USER),
        ("delivery_rejected", MARKET, asks[1].id, bid.id, MAKER_USER, TAKER_USER),
    ]
    assert events[2]["status"] == 409 and events[2]["reason"] == "no"
