"""Nothing acknowledged is lost: the OME under load, killed with SIGKILL again and again.

Each round starts `python -m ome` on the same journal and dumpfile, lets a few
traders post crossing orders and cancel their own for a random moment, and
kills it mid-flight. Before every restart the files are recovered here, read
only, and the digest the restarted OME reports must be the same. At the end
the OME runs until the executioner has every pair, stops gracefully, and:

- every order that got a 200 rests with exactly the amount its durable fills
  leave (never more than its acknowledged fills leave), or is gone because it
  was matched away or cancelled — never for another reason;
- every acknowledged cancel holds;
- every acknowledged fill reached the executioner, every repeat of a pair with
  the key of its first delivery, and no pair reached it that the journal does
  not contain.

Periodic snapshots are off here so that the journal holds the whole history
to compare against; tests/test_recovery.py covers snapshots.
"""

import asyncio
import random
import signal
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ome.commands import Machine, Trade
from ome.journal import Scan, read_segments
from ome.persistence import digest
from ome.records import Cancel, Place, decode
from ome.recovery import recover
from ome.state import State
from tests.builders import MARKET, SIG
from tests.fakes import FakeExecutioner
from tests.processes import Ome

KILLS = 20
TRADERS = 4
EXPIRATION = 4_102_444_800


@dataclass
class Acknowledged:
    """What the clients were told, over every round."""

    orders: dict[str, int] = field(default_factory=dict)  # id -> amount
    fills: list[tuple[str, str, int]] = field(default_factory=list)  # maker, taker, amount
    cancels: set[str] = field(default_factory=set)


async def trader(url: str, user: int, seed: int, acked: Acknowledged) -> None:
    """Posts orders, and cancels its own resting ones, until the server goes away."""
    rng = random.Random(seed)
    mine: list[str] = []
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                if mine and rng.random() < 0.15:
                    victim = mine.pop(rng.randrange(len(mine)))
                    path = f"{url}/book/{MARKET}/order/{victim}"
                    async with session.delete(path) as response:
                        if response.status == 200:
                            acked.cancels.add(victim)
                    continue
                side = rng.choice(["Bid", "Ask"])
                body = {
                    "user": f"0x{user:040x}",
                    "target_tracer": MARKET,
                    "side": side,
                    "price": str(rng.randint(98, 102)),
                    "amount": str(rng.randint(1, 6)),
                    "expiration": str(EXPIRATION),
                    "created": str(rng.getrandbits(40)),
                    "signed_data": SIG,
                }
                async with session.post(f"{url}/book/{MARKET}/order", json=body) as response:
                    data = await response.json()
                    if response.status != 200:
                        continue
                acked.orders[data["id"]] = int(body["amount"])
                acked.fills.extend(
                    (f["maker"], f["taker"], int(f["amount"])) for f in data["fills"]
                )
                if data["message"] != "FullMatch":
                    mine.append(data["id"])
            except (TimeoutError, aiohttp.ClientError, OSError):
                return


@dataclass
class History:
    """What the durable journal says happened, replayed from its first record."""

    fills: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    placed: set[str] = field(default_factory=set)


def durable_history(journal_dir: Path) -> History:
    history = History()
    machine = Machine(State())
    for seq, payload in read_segments(journal_dir, 0, Scan(0)):
        command, time = decode(payload)
        applied = machine.apply(seq, time, command)
        if isinstance(command, Place):
            history.placed.add(command.order.id)
        elif isinstance(command, Cancel):
            history.cancelled.add(command.order_id)
        for event in applied.events:
            if isinstance(event, Trade):
                history.fills[(event.maker.id, event.taker.id)] = (event.amount, event.key)
    return history


async def test_kill_9_under_load_loses_nothing_acknowledged(
    tmp_path: Path, fake_executioner: FakeExecutioner
) -> None:
    rng = random.Random(2026)
    args = (
        "--executioner_address",
        fake_executioner.url,
        "--dumpfile",
        "dump.json",
        "--journal_dir",
        "journal",
        "--snapshot_interval",
        "86400",
        # The traders are made-up users without keys; they cancel with a body-less DELETE.
        "--allow_unsigned_cancel",
        "--start_digest",
    )
    acked = Acknowledged()
    # The executioner is down now and then, so that pairs are pending at a kill.
    for round_number in range(KILLS + 1):
        expected = digest(recover(tmp_path / "dump.json", tmp_path / "journal", repair=False).state)
        ome = Ome(tmp_path, *args, name=f"ome{round_number}")
        try:
            await ome.started()
            recovered = ome.events("state_recovered") or ome.events("state_fresh")
            assert recovered[0]["digest"] == expected, f"round {round_number}"
            if round_number == 0:
                async with aiohttp.ClientSession() as session:
                    await session.post(f"{ome.url}/book", json={"market": MARKET})
            if round_number == KILLS:
                break
            if rng.random() < 0.3:
                fake_executioner.fail(seconds=rng.uniform(0.2, 1.0))
            traders = [
                asyncio.create_task(trader(ome.url, user, rng.getrandbits(32), acked))
                for user in range(1, TRADERS + 1)
            ]
            await asyncio.sleep(rng.uniform(0.2, 0.7))
            ome.process.send_signal(signal.SIGKILL)
            assert await ome.exited() == -signal.SIGKILL
            await asyncio.gather(*traders)
        except BaseException:
            ome.kill()
            raise

    # The last start: everything pending reaches the executioner, then a graceful stop.
    history = durable_history(tmp_path / "journal")
    assert len(acked.fills) > 50 and len(acked.cancels) > 5, "the load should trade and cancel"
    received_keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        for request in fake_executioner.submits:
            if request.status == 200:
                pair = (request.body["maker"]["id"], request.body["taker"]["id"])
                received_keys[pair].add(request.headers["Idempotency-Key"])
        if set(history.fills) <= set(received_keys):
            break
        assert asyncio.get_running_loop().time() < deadline, "pairs were not delivered"
        await asyncio.sleep(0.1)
    assert await ome.stop(signal.SIGTERM) == 0
    final = recover(tmp_path / "dump.json", tmp_path / "journal", repair=False).state
    resting = {order.id: order.amount_left for order in final.exchange.get(MARKET).orders()}

    durable_filled: dict[str, int] = defaultdict(int)
    for (maker, taker), (amount, _) in history.fills.items():
        durable_filled[maker] += amount
        durable_filled[taker] += amount
    acked_filled: dict[str, int] = defaultdict(int)
    for maker, taker, amount in acked.fills:
        acked_filled[maker] += amount
        acked_filled[taker] += amount
        assert history.fills[(maker, taker)][0] == amount, "an acknowledged fill was lost"

    for order_id, amount in acked.orders.items():
        assert order_id in history.placed, "an acknowledged order was lost"
        if order_id in resting:
            assert order_id not in acked.cancels, "an acknowledged cancel was undone"
            assert resting[order_id] == amount - durable_filled[order_id]
            assert resting[order_id] <= amount - acked_filled[order_id]
        else:
            assert durable_filled[order_id] == amount or order_id in history.cancelled

    # Each fill ever made was delivered, repeats with the same key, and nothing else was.
    assert set(received_keys) == set(history.fills)
    for pair, keys in received_keys.items():
        assert keys == {history.fills[pair][1]}
    for request in fake_executioner.submits:
        pair = (request.body["maker"]["id"], request.body["taker"]["id"])
        assert request.headers["Idempotency-Key"] == history.fills[pair][1]
    # A pair may still be pending when its answer and SIGTERM crossed: it is one already
    # delivered, to be sent again with the same key (at-least-once).
    delivered_keys = {key for keys in received_keys.values() for key in keys}
    assert {pair.key for pair in final.outbox.pairs()} <= delivered_keys
