"""What the journal means for clients and operators: durable answers, fail-stop, bad files.

In process (aiohttp test client): a failing journal answers 503 and stops the
service; a finished order cannot be replayed. As subprocesses: an unusable
journal folder, a corrupt or gapped journal, and a torn tail at start.
"""

import errno
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from ome.journal import SegmentFile, frame, segment_name, segments
from ome.persistence import read_dump
from ome.records import CreateMarket, encode
from ome.recovery import recover
from tests.builders import MARKET, NOW, SIG, Clock, user
from tests.fakes import FakeExecutioner
from tests.processes import Ome


def body(who: int, side: str, price: int, amount: int, created: int = NOW) -> dict[str, str]:
    return {
        "user": user(who),
        "target_tracer": MARKET,
        "side": side,
        "price": str(price),
        "amount": str(amount),
        "expiration": str(NOW + 3600),
        "created": str(created),
        "signed_data": SIG,
    }


@pytest.fixture
async def service(
    aiohttp_client: AiohttpClient, tmp_path: Path, fake_executioner: FakeExecutioner
) -> tuple[TestClient, list[BaseException]]:  # type: ignore[type-arg]
    fatal: list[BaseException] = []
    settings = Settings(
        executioner_address=fake_executioner.url,
        dumpfile=tmp_path / "dump.json",
        journal_dir=tmp_path / "journal",
        allow_unsigned_cancel=True,
    )
    client = await aiohttp_client(create_app(settings, clock=Clock(), on_fatal=fatal.append))
    assert (await client.post("/book", json={"market": MARKET})).status == 201
    return client, fatal


async def test_a_failing_disk_answers_503_and_stops_the_service(
    service: tuple[TestClient, list[BaseException]],  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    client, fatal = service

    def full_disk(self: SegmentFile, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SegmentFile, "write", full_disk)
    response = await client.post(f"/book/{MARKET}/order", json=body(1, "Bid", 100, 5))
    assert response.status == 503
    assert (await response.json()) == {"status": 503, "message": "Journal unavailable"}
    assert len(fatal) == 1 and isinstance(fatal[0], OSError)
    # Nothing more is taken, and nothing is acknowledged.
    again = await client.post(f"/book/{MARKET}/order", json=body(2, "Ask", 100, 5))
    assert again.status == 503
    refused = await client.post("/book", json={"market": "0x" + "77" * 20})
    assert refused.status == 503
    await client.close()
    # No snapshot of the unacknowledged state is written on the way out.
    assert read_dump(tmp_path / "dump.json") is None


async def test_a_filled_order_cannot_be_submitted_again(
    service: tuple[TestClient, list[BaseException]],  # type: ignore[type-arg]
    fake_executioner: FakeExecutioner,
) -> None:
    client, _ = service
    ask, bid = body(1, "Ask", 100, 5), body(2, "Bid", 100, 5)
    path = f"/book/{MARKET}/order"
    assert (await (await client.post(path, json=ask)).json())["message"] == "Add"
    assert (await (await client.post(path, json=bid)).json())["message"] == "FullMatch"
    for replayed in (ask, bid):
        response = await client.post(path, json=replayed)
        assert response.status == 409
        assert (await response.json())["message"] == "Order was already filled or cancelled"
    delivered = await fake_executioner.wait_delivered(1)
    assert len(delivered) == 1
    assert len(fake_executioner.submits) == 1


async def test_a_cancelled_order_cannot_be_submitted_again(
    service: tuple[TestClient, list[BaseException]],  # type: ignore[type-arg]
) -> None:
    client, _ = service
    path = f"/book/{MARKET}/order"
    placed = await (await client.post(path, json=body(1, "Ask", 100, 5))).json()
    assert (await client.delete(f"{path}/{placed['id']}")).status == 200
    response = await client.post(path, json=body(1, "Ask", 100, 5))
    assert response.status == 409


async def test_every_fill_has_its_own_key(
    service: tuple[TestClient, list[BaseException]],  # type: ignore[type-arg]
    fake_executioner: FakeExecutioner,
) -> None:
    """The same orders matched again (new ids, same amounts) must not look like a repeat."""
    client, _ = service
    path = f"/book/{MARKET}/order"
    for created in (NOW, NOW + 1, NOW + 2):
        await client.post(path, json=body(1, "Ask", 100, 5, created))
        await client.post(path, json=body(2, "Bid", 100, 5, created))
    await fake_executioner.wait_delivered(3)
    keys = [r.headers["Idempotency-Key"] for r in fake_executioner.submits]
    assert len(keys) == len(set(keys)) == 3


async def test_an_unwritable_journal_folder_stops_the_start(
    tmp_path: Path, processes: list[Ome]
) -> None:
    (tmp_path / "journal").write_text("a file where the folder should be")
    ome = Ome(tmp_path, "--journal_dir", "journal/sub")
    processes.append(ome)
    assert await ome.exited() == 1
    assert "journal" in ome.stderr and "Traceback" not in ome.stderr


async def test_corruption_in_the_middle_stops_the_start_and_changes_nothing(
    tmp_path: Path, processes: list[Ome]
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    records = b"".join(
        frame(seq, encode(CreateMarket("0x" + f"{seq:040x}"), NOW)) for seq in (1, 2, 3)
    )
    damaged = bytearray(records)
    second = len(frame(1, encode(CreateMarket("0x" + f"{1:040x}"), NOW)))
    damaged[second + 20] ^= 0x01
    path = journal / segment_name(1)
    path.write_bytes(bytes(damaged))
    ome = Ome(tmp_path, "--journal_dir", "journal")
    processes.append(ome)
    assert await ome.exited() == 1
    assert f"{path.name} at offset {second}" in ome.stderr
    assert path.read_bytes() == bytes(damaged)
    assert [p for _, p in segments(journal)] == [path]
    assert not (tmp_path / ".omedump.json").exists()


async def test_a_gap_before_the_journal_stops_the_start(
    tmp_path: Path, processes: list[Ome]
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / segment_name(5)).write_bytes(frame(5, encode(CreateMarket(MARKET), NOW)))
    ome = Ome(tmp_path, "--journal_dir", "journal")
    processes.append(ome)
    assert await ome.exited() == 1
    assert "missing" in ome.stderr


async def test_a_torn_tail_is_cut_with_a_warning_and_the_rest_recovers(
    tmp_path: Path, processes: list[Ome]
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    good = frame(1, encode(CreateMarket(MARKET), NOW))
    torn = frame(2, encode(CreateMarket("0x" + "77" * 20), NOW))[:-3]
    path = journal / segment_name(1)
    path.write_bytes(good + torn)
    ome = Ome(tmp_path, "--journal_dir", "journal")
    processes.append(ome)
    await ome.started()
    (warning,) = ome.events("journal_torn_tail_cut")
    assert warning["level"] == "warning" and warning["offset"] == len(good)
    assert ome.events("state_recovered")[0]["markets"] == 1
    assert await ome.stop() == 0
    state = recover(tmp_path / ".omedump.json", journal, repair=False).state
    assert state.exchange.markets() == [MARKET]
