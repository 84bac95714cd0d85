"""Readiness of the real process: 503 while it restores, 200 serving, 503 while it drains.

`python -m ome` runs as a subprocess (tests/processes.py). A
slow restore is made by a dumpfile that is a named pipe: the restore reads
it until the test writes the dump into it, so the test decides how long the
restore lasts rather than guessing at a size.
"""

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from ome.engine import Order, Side
from ome.persistence import dump_bytes
from ome.state import State
from tests.builders import MARKET
from tests.builders import SIG as SIGNATURE
from tests.fakes import FakeExecutioner
from tests.processes import START_TIMEOUT, Ome


async def listening(ome: Ome) -> str:
    """The URL once the port is bound (before the restore ends)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = ome.events("ome_listening")
        if found:
            return f"http://127.0.0.1:{found[0]['port']}"
        assert ome.process.poll() is None, ome.stderr
        await asyncio.sleep(0.05)
    pytest.fail("ome did not bind its port in time")


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.get(url) as response:
        return response.status, await response.json()


def a_state_with_one_order() -> State:
    state = State()
    book = state.exchange.create(MARKET)
    order = Order.create(
        user="0x" + "11" * 20,
        target_tracer=MARKET,
        side=Side.Ask,
        price=105,
        amount=10,
        expiration=int(time.time()) + 3600,
        created=1,
        signed_data=SIGNATURE,
    )
    book.submit(order, int(time.time()))
    return state


async def test_ready_is_503_during_a_slow_restore_and_200_after_it(
    tmp_path: Path, fake_executioner: FakeExecutioner, processes: list[Ome]
) -> None:
    dumpfile = tmp_path / "dump.json"
    os.mkfifo(dumpfile)
    ome = Ome(tmp_path, "--executioner_address", fake_executioner.url, "--dumpfile", "dump.json")
    processes.append(ome)
    url = await listening(ome)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            status, body = await get(session, f"{url}/ready")
            assert (status, body["message"], body["phase"]) == (503, "Starting", "starting")
            # Liveness holds: a probe must not kill a process that is restoring.
            assert await get(session, f"{url}/") == (200, {"status": 200, "message": "Healthy"})
            status, body = await get(session, f"{url}/book")
            assert status == 503 and body["status"] == 503
            await asyncio.sleep(0.2)
        assert not ome.events("ome_started")

        await asyncio.to_thread(dumpfile.write_bytes, dump_bytes(a_state_with_one_order()))
        deadline = time.monotonic() + START_TIMEOUT
        while (await get(session, f"{url}/ready"))[0] != 200:
            assert time.monotonic() < deadline, "not ready after the restore"
            await asyncio.sleep(0.05)
        status, body = await get(session, f"{url}/ready")
        assert body == {
            "status": 200,
            "message": "Ready",
            "phase": "ready",
            "journal": "ok",
            "executioner": "unknown",
        }
        status, book = await get(session, f"{url}/book/{MARKET}")
        assert status == 200 and book["depth"] == [0, 1]
    assert await ome.stop() == 0


async def test_ready_is_503_while_draining_and_the_requests_go_on(
    tmp_path: Path, fake_executioner: FakeExecutioner, processes: list[Ome]
) -> None:
    ome = Ome(
        tmp_path,
        "--executioner_address", fake_executioner.url, "--dumpfile", "dump.json",
        "--drain_delay", "3",
    )  # fmt: skip
    processes.append(ome)
    await ome.started()
    async with aiohttp.ClientSession() as session:
        assert (await get(session, f"{ome.url}/ready"))[0] == 200
        ome.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT
        while (await get(session, f"{ome.url}/ready"))[0] != 503:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        status, body = await get(session, f"{ome.url}/ready")
        assert (status, body["message"], body["phase"]) == (503, "Draining", "draining")
        # Still serving while load balancers take the pod out.
        async with session.post(f"{ome.url}/book", json={"market": MARKET}) as response:
            assert response.status == 201
        assert await get(session, f"{ome.url}/") == (200, {"status": 200, "message": "Healthy"})
    assert await ome.exited() == 0
    assert ome.events("drain_started")[0]["seconds"] == 3
