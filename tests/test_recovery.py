"""Recovery: snapshot + journal replay rebuilds exactly the state the live path built."""

import asyncio
import contextlib
import random
from pathlib import Path

import pytest

from ome.commands import Commands, Machine
from ome.engine import Order, OrderNotFound, Side
from ome.journal import Journal, Scan, SegmentFile, frame, read_segments, segment_name, segments
from ome.persistence import digest, write_dump
from ome.records import Cancel, CreateMarket, DeliveryOutcome, Expire, Place, decode, encode
from ome.recovery import RecoveryError, recover
from ome.snapshots import Snapshotter
from ome.state import State
from tests.builders import NOW, SIG, Clock

MARKETS = ["0x" + "ab" * 20, "0x" + "cd" * 20]


def order(rng: random.Random, market: str, created: int) -> Order:
    return Order.create(
        user="0x" + f"{rng.randint(1, 4):040x}",
        target_tracer=market,
        side=rng.choice([Side.Bid, Side.Ask]),
        price=rng.randint(95, 105),
        amount=rng.randint(1, 9),
        expiration=NOW + rng.randint(1, 30),
        created=created,
        signed_data=SIG,
    )


def live(folder: Path, state: State | None = None) -> tuple[Commands, asyncio.Task[None]]:
    state = state or State()
    file = SegmentFile(folder, sync=False)
    file.open(state.seq + 1)
    commands = Commands(state, Journal(file, durable_seq=state.seq), Clock())
    return commands, asyncio.create_task(commands.journal.run())


async def random_session(commands: Commands, rng: random.Random, steps: int) -> None:
    """Orders, crossings, cancels, expiries and delivery outcomes, as a busy service sees them."""
    clock = commands._clock
    assert isinstance(clock, Clock)
    for market in MARKETS:
        if market not in commands.markets():
            await commands.create_market(market)
    placed: list[Order] = []
    for step in range(steps):
        roll = rng.random()
        if roll < 0.7:
            new = order(rng, rng.choice(MARKETS), step)
            try:
                await commands.place(new)
            except Exception:
                continue
            placed.append(new)
        elif roll < 0.8 and placed:
            victim = rng.choice(placed)
            with contextlib.suppress(Exception):
                await commands.cancel(victim.target_tracer, victim.id, owner=victim.user)
        elif roll < 0.9:
            clock.now += rng.randint(0, 3)
            commands.expire()
        else:
            first = commands.state.outbox.first()
            if first is not None:
                commands.settle(first.key, delivered=rng.random() < 0.8)
    await commands.journal.wait(commands.state.seq)


async def stop(commands: Commands, task: asyncio.Task[None]) -> None:
    await commands.journal.close()
    await task


def test_every_record_kind_round_trips() -> None:
    placed = Order.create(
        user="0x" + "01" * 20,
        target_tracer=MARKETS[0],
        side=Side.Ask,
        price=2**128 - 1,
        amount=2**100,
        expiration=NOW + 5,
        created=NOW,
        signed_data=SIG,
    )
    for command in (
        CreateMarket(MARKETS[0]),
        Cancel(MARKETS[0], placed.id, None),
        Cancel(MARKETS[0], placed.id, "0x" + "01" * 20),
        Expire(),
        DeliveryOutcome("k" * 32, True),
        DeliveryOutcome("k" * 32, False),
    ):
        assert decode(encode(command, NOW)) == (command, NOW)
    decoded, time = decode(encode(Place(placed), NOW))
    assert time == NOW and isinstance(decoded, Place)
    assert decoded.order.to_dict() == placed.to_dict()


@pytest.mark.parametrize("seed", range(4))
async def test_replay_of_the_journal_rebuilds_the_live_state(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    commands, task = live(tmp_path)
    await random_session(commands, rng, 300)
    expected = digest(commands.state)
    await stop(commands, task)

    recovered = recover(tmp_path / "no-dump.json", tmp_path, repair=False)
    assert recovered.replayed == commands.state.seq
    assert digest(recovered.state) == expected


@pytest.mark.parametrize("seed", range(3))
async def test_replay_changes_the_state_exactly_as_apply_does(tmp_path: Path, seed: int) -> None:
    commands, task = live(tmp_path)
    await random_session(commands, random.Random(seed), 300)
    await stop(commands, task)
    applying, replaying = Machine(State()), Machine(State())
    unknown = Cancel(MARKETS[0], "0x" + "00" * 32, None)
    for seq, payload in read_segments(tmp_path, 0, Scan(0)):
        command, time = decode(payload)
        applying.apply(seq, time, command)
        replaying.replay(seq, payload)
        assert digest(replaying.state) == digest(applying.state), f"record {seq}"
        # A command that does not apply raises the same error and changes nothing.
        with pytest.raises(OrderNotFound):
            applying.apply(seq + 1, time, unknown)
        with pytest.raises(OrderNotFound):
            replaying.replay(seq + 1, encode(unknown, time))
        assert digest(replaying.state) == digest(applying.state), f"record {seq}"
    assert replaying.state.seq == commands.state.seq


async def test_snapshot_plus_later_records_rebuild_the_state(tmp_path: Path) -> None:
    rng = random.Random(7)
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    dumpfile = tmp_path / "dump.json"
    commands, task = live(journal_dir)
    snapshotter = Snapshotter(commands.journal, dumpfile, journal_dir)
    for _ in range(2):
        await random_session(commands, rng, 200)
        boundary = commands.state.seq
        expected_at_boundary = digest(commands.state)
        taking = asyncio.create_task(snapshotter.take())
        # Commands go on while the snapshot is made; it holds none of them.
        await random_session(commands, rng, 100)
        covered = await taking
        assert covered == boundary
        assert digest(recover(dumpfile, journal_dir / "none", repair=False).state) == (
            expected_at_boundary
        )
        # The segments the snapshot covers are gone: the journal stays bounded.
        assert all(first > covered for first, _ in segments(journal_dir))
    await random_session(commands, rng, 200)
    expected = digest(commands.state)
    await stop(commands, task)

    recovered = recover(dumpfile, journal_dir, repair=False)
    assert recovered.snapshot_seq == covered
    assert recovered.replayed == commands.state.seq - covered
    assert digest(recovered.state) == expected


async def test_a_failed_snapshot_keeps_the_old_one_and_says_why(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    dumpfile = tmp_path / "dump.json"
    dumpfile.write_bytes(b"not a snapshot")
    commands, task = live(journal_dir)
    await random_session(commands, random.Random(5), 50)
    with pytest.raises(OSError, match=r"dump\.json is not valid JSON"):
        await Snapshotter(commands.journal, dumpfile, journal_dir).take()
    assert dumpfile.read_bytes() == b"not a snapshot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.json", "journal"]
    await stop(commands, task)


async def test_a_graceful_dump_equals_the_replay_of_the_journal(tmp_path: Path) -> None:
    rng = random.Random(3)
    commands, task = live(tmp_path)
    await random_session(commands, rng, 300)
    await stop(commands, task)
    write_dump(tmp_path / "dump.json", commands.state)

    from_journal = recover(tmp_path / "absent.json", tmp_path, repair=False)
    from_dump = recover(tmp_path / "dump.json", tmp_path / "nothing", repair=False)
    assert digest(from_journal.state) == digest(from_dump.state) == digest(commands.state)


@pytest.mark.parametrize(
    "payload",
    [
        b'["c", 5]',
        b'["d", 5]',
        b'["p", 5, "0x01"]',
        b'["p", 5, "0x01", "0x02", "0x03", 7, "1", "1", 9, 9, "0x"]',
        b'["x", 5]',
        b'[["c"], 5]',
        b'["e", "5"]',
        b'{"kind": "e"}',
        b"not json",
    ],
)
def test_a_malformed_record_stops_recovery_naming_it(tmp_path: Path, payload: bytes) -> None:
    good = encode(CreateMarket(MARKETS[0]), NOW)
    path = tmp_path / segment_name(1)
    path.write_bytes(frame(1, good) + frame(2, payload))
    with pytest.raises(RecoveryError, match="record 2 cannot be replayed"):
        recover(tmp_path / "absent.json", tmp_path, repair=True)
    assert path.read_bytes() == frame(1, good) + frame(2, payload)


def test_a_record_that_does_not_apply_stops_recovery(tmp_path: Path) -> None:
    bad = encode(Cancel(MARKETS[0], "0x" + "00" * 32, None), NOW)
    (tmp_path / segment_name(1)).write_bytes(frame(1, bad))
    with pytest.raises(RecoveryError, match="record 1 cannot be replayed"):
        recover(tmp_path / "absent.json", tmp_path, repair=False)


@pytest.mark.parametrize("after", [0, 1, 2])
async def test_a_cancelled_snapshot_leaves_the_old_one_and_no_temporary_file(
    tmp_path: Path, after: int
) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    dumpfile = tmp_path / "dump.json"
    dumpfile.write_bytes(b"the old snapshot")
    commands, task = live(journal_dir)
    await random_session(commands, random.Random(after), 100)
    taking = asyncio.create_task(Snapshotter(commands.journal, dumpfile, journal_dir).take())
    for _ in range(after):
        await asyncio.sleep(0)
    taking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await taking
    if not taking.cancelled():
        assert digest(recover(dumpfile, journal_dir, repair=False).state) == digest(commands.state)
    else:
        assert dumpfile.read_bytes() == b"the old snapshot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.json", "journal"]
    await stop(commands, task)
