"""The sender delivers the outbox's pairs to a real (fake) executioner in order, retrying.

Pairs are made the way the service makes them: orders placed through the
command path (with a real journal in a temporary folder), whose fills the
sender then delivers; its outcomes go back through the command path.
"""

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog.testing

from ome.commands import Commands
from ome.delivery import Sender
from ome.engine import Book, Fill, Order, Side
from ome.executioner import ExecutionerClient
from ome.journal import Journal, SegmentFile
from ome.outbox import Pair, make_pair
from ome.state import State
from tests.builders import MARKET, NOW, make_order
from tests.fakes import FakeExecutioner

MAKER_USER = "0x" + "11" * 20
TAKER_USER = "0x" + "22" * 20


class Desk:
    """A command path over a fresh state and journal, with a sender that can be started."""

    def __init__(self, folder: Path, client: ExecutionerClient, **backoff: float) -> None:
        file = SegmentFile(folder, sync=False)
        file.open(1)
        self.commands = Commands(State(), Journal(file, durable_seq=0), lambda: NOW)
        self.sender = Sender(self.commands, client, **backoff)
        self.commands.sinks.append(self.sender.notice)
        self._tasks: list[asyncio.Task[None]] = []
        self._created = 0

    async def __aenter__(self) -> "Desk":
        self._tasks.append(asyncio.create_task(self.commands.journal.run()))
        await self.commands.create_market(MARKET)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_sending()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def start_sending(self) -> None:
        self._sending = asyncio.create_task(self.sender.run())

    async def stop_sending(self) -> None:
        task = getattr(self, "_sending", None)
        if task is not None:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            self._sending = None

    async def trade(
        self, *makers: tuple[int, int], taker_amount: int
    ) -> tuple[list[Order], Order, list[Fill]]:
        """Rest asks (price, amount), then send a bid sweeping them; the fills of that bid."""
        asks = []
        for price, amount in makers:
            self._created += 1
            created = NOW + self._created
            ask = make_order(Side.Ask, price, amount, trader=MAKER_USER, created=created)
            await self.commands.place(ask)
            asks.append(ask)
        self._created += 1
        price = max(p for p, _ in makers)
        bid = make_order(
            Side.Bid, price, taker_amount, trader=TAKER_USER, created=NOW + self._created
        )
        _, fills = await self.commands.place(bid)
        return asks, bid, fills

    def pending(self) -> list[Pair]:
        return self.commands.state.outbox.pairs()


@pytest.fixture
async def client(fake_executioner: FakeExecutioner) -> AsyncIterator[ExecutionerClient]:
    client = ExecutionerClient(fake_executioner.url, timeout=0.5)
    yield client
    await client.aclose()


@pytest.fixture
async def desk(tmp_path: Path, client: ExecutionerClient) -> AsyncIterator[Desk]:
    async with Desk(tmp_path, client, base_delay=0.05, max_delay=0.2) as desk:
        yield desk


@pytest.fixture
async def sending(desk: Desk) -> Desk:
    """A desk with short backoff whose sender is running."""
    desk.start_sending()
    return desk


async def test_pairs_arrive_in_fill_order_with_maker_as_resting_order(
    fake_executioner: FakeExecutioner, sending: Desk
) -> None:
    asks, bid, _ = await sending.trade((100, 3), (101, 5), taker_amount=6)
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
    await _until(lambda: not sending.pending())
    assert sending.sender.delivered == 2


async def test_later_pairs_wait_behind_earlier_ones(
    fake_executioner: FakeExecutioner, sending: Desk
) -> None:
    await sending.trade((100, 1), taker_amount=1)
    await sending.trade((90, 2), taker_amount=2)
    delivered = await fake_executioner.wait_delivered(2)
    assert delivered[0]["maker"]["price"] == "100"
    assert delivered[1]["maker"]["price"] == "90"


async def test_503_is_retried_with_the_same_key(
    fake_executioner: FakeExecutioner, sending: Desk
) -> None:
    fake_executioner.fail(3)
    await sending.trade((100, 1), (100, 1), taker_amount=2)
    await fake_executioner.wait_delivered(2)

    attempts = fake_executioner.submits
    assert [r.status for r in attempts] == [503, 503, 503, 200, 200]
    keys = [r.headers["Idempotency-Key"] for r in attempts]
    assert len(set(keys[:4])) == 1
    assert keys[4] != keys[0]
    await _until(lambda: sending.sender.delivered == 2)
    assert sending.sender.rejected == 0


async def test_4xx_is_final_and_the_next_pair_goes_on(
    fake_executioner: FakeExecutioner, sending: Desk
) -> None:
    fake_executioner.reject("invalid pair", status=422, path="submit")
    await sending.trade((100, 1), (100, 1), taker_amount=2)
    await fake_executioner.wait_for("submit", 2, status=422)
    fake_executioner.reset()
    await sending.trade((100, 1), taker_amount=1)
    await fake_executioner.wait_delivered(1)

    assert [r.status for r in fake_executioner.submits] == [422, 422, 200]
    await _until(lambda: sending.sender.delivered == 1)
    assert sending.sender.rejected == 2
    assert sending.pending() == []


async def test_hanging_executioner_times_out_and_is_retried(
    fake_executioner: FakeExecutioner, sending: Desk
) -> None:
    fake_executioner.hang(path="submit")
    await sending.trade((100, 1), taker_amount=1)
    await fake_executioner.wait_for("submit", 2, timeout=5)
    assert len(sending.pending()) == 1
    fake_executioner.release()
    await _until(lambda: sending.sender.delivered == 1)
    assert sending.pending() == []
    assert len({r.headers["Idempotency-Key"] for r in fake_executioner.submits}) == 1


async def test_cancelled_in_flight_pair_stays_pending(
    fake_executioner: FakeExecutioner, desk: Desk
) -> None:
    fake_executioner.hang(path="submit")
    _, _, fills = await desk.trade((100, 1), taker_amount=1)
    desk.start_sending()
    await fake_executioner.wait_for("submit", 1)
    await desk.stop_sending()
    assert desk.pending() == [make_pair(fills[0], desk.commands.state.seq, 0)]
    assert desk.sender.delivered == 0


async def test_pairs_made_before_the_sender_started_go_first(
    fake_executioner: FakeExecutioner, desk: Desk
) -> None:
    await desk.trade((100, 1), taker_amount=1)
    desk.start_sending()
    await desk.trade((50, 1), taker_amount=1)
    delivered = await fake_executioner.wait_delivered(2)
    assert [p["maker"]["price"] for p in delivered] == ["100", "50"]


async def test_a_pending_pair_keeps_the_amounts_of_its_fill(desk: Desk) -> None:
    """Its maker traded again before the pair was read: the pair still shows the first fill."""
    ask = make_order(Side.Ask, 100, 5, trader=MAKER_USER)
    await desk.commands.place(ask)
    first = make_order(Side.Bid, 100, 2, trader=TAKER_USER, created=NOW + 1)
    second = make_order(Side.Bid, 100, 3, trader=TAKER_USER, created=NOW + 2)
    await desk.commands.place(first)
    await desk.commands.place(second)

    assert [(p.maker, p.taker) for p in desk.pending()] == [
        (ask.to_dict(amount_left=3), first.to_dict(amount_left=0)),
        (ask.to_dict(amount_left=0), second.to_dict(amount_left=0)),
    ]


class HeldDisk(SegmentFile):
    """A disk whose writes wait while `held` is clear."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, sync=False)
        self.held = threading.Event()
        self.held.set()

    def write(self, data: bytes) -> None:
        self.held.wait()
        super().write(data)


async def test_a_pair_waits_for_its_journal_record(
    fake_executioner: FakeExecutioner, tmp_path: Path, client: ExecutionerClient
) -> None:
    """Nothing reaches the executioner before the fill it reports is durable."""
    desk = Desk(tmp_path, client)
    disk = HeldDisk(tmp_path)
    disk.open(1)
    desk.commands.journal = Journal(disk, durable_seq=0)
    async with desk:
        ask = make_order(Side.Ask, 100, 1, trader=MAKER_USER)
        await desk.commands.place(ask)
        desk.start_sending()
        disk.held.clear()
        bid = make_order(Side.Bid, 100, 1, trader=TAKER_USER)
        placing = asyncio.create_task(desk.commands.place(bid))
        await _until(lambda: len(desk.pending()) == 1)
        await asyncio.sleep(0.3)
        assert fake_executioner.submits == []
        assert not placing.done()
        disk.held.set()
        await placing
        delivered = await fake_executioner.wait_delivered(1)
        assert delivered[0]["maker"]["id"] == ask.id


def test_keys_name_market_command_and_fill_index() -> None:
    fills = _fills()
    keys = [make_pair(fill, 7, index).key for index, fill in enumerate(fills)]
    assert len(set(keys)) == 3
    assert keys == [make_pair(fill, 7, index).key for index, fill in enumerate(fills)]
    assert make_pair(fills[0], 8, 0).key not in keys


def _fills() -> list[Fill]:
    book = Book(MARKET)
    for i in range(3):
        book.submit(make_order(Side.Ask, 100, 1, trader=MAKER_USER, created=NOW + i), NOW)
    return book.submit(make_order(Side.Bid, 100, 3, trader=TAKER_USER), NOW)[1]


async def test_each_delivery_outcome_is_logged_with_market_and_orders(
    fake_executioner: FakeExecutioner, sending: Desk
) -> None:
    with structlog.testing.capture_logs() as events:
        fake_executioner.fail(1)
        asks, bid, _ = await sending.trade((100, 1), taker_amount=1)
        await fake_executioner.wait_delivered(1)
        fake_executioner.reject("no", status=409, path="submit")
        asks2, bid2, _ = await sending.trade((100, 1), taker_amount=1)
        await _until(lambda: sending.sender.rejected == 1)
    outcomes = [
        (e["event"], e["market"], e["maker"], e["taker"], e["maker_user"], e["taker_user"])
        for e in events
        if e["event"].startswith(("delivery_", "pair_"))
    ]
    assert outcomes == [
        ("delivery_retry", MARKET, asks[0].id, bid.id, MAKER_USER, TAKER_USER),
        ("pair_delivered", MARKET, asks[0].id, bid.id, MAKER_USER, TAKER_USER),
        ("delivery_rejected", MARKET, asks2[0].id, bid2.id, MAKER_USER, TAKER_USER),
    ]
    rejected = next(e for e in events if e["event"] == "delivery_rejected")
    assert rejected["status"] == 409 and rejected["reason"] == "no"


async def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
