"""The real entry point as operators run it: start, serve, stop on a signal, dump, restore.

Each test starts `python -m ome` as a subprocess on 127.0.0.1 with port 0
(the bound port is read from the `ome_started` log event), talks to it over
HTTP, and sends it real signals. The executioner is the fake one from
tests/fakes.py, running in the test's own event loop. The last tests run the
app in process, with a clock they move, for what needs time to pass.
"""

import asyncio
import json
import random
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from ome.engine import Exchange, Side
from ome.persistence import read_dump, write_dump
from ome.state import State
from tests.builders import MARKET, Clock, live_body, make_order, order_body
from tests.fakes import FakeExecutioner
from tests.processes import REPO, Ome
from tests.signers import sign_order


async def create_market(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(f"{url}/book", json={"market": MARKET}) as response:
        assert response.status == 201


async def get_book(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(f"{url}/book/{MARKET}") as response:
        assert response.status == 200
        return await response.json()


async def trader(url: str, user: int, acked: list[tuple[Any, Any]], failures: list[int]) -> None:
    """Posts orders over one keep-alive connection until the server goes away."""
    rng = random.Random(user)
    created = 0
    async with aiohttp.ClientSession() as session:
        while True:
            created += 1
            if rng.random() < 0.5:
                body = live_body(user, "Bid", rng.randint(97, 101), rng.randint(1, 5), created)
            else:
                body = live_body(user, "Ask", rng.randint(100, 104), rng.randint(1, 5), created)
            try:
                async with session.post(f"{url}/book/{MARKET}/order", json=body) as response:
                    data = await response.json()
            except (aiohttp.ClientError, OSError):
                return
            if response.status == 200:
                acked.append((body, data))
            else:
                failures.append(response.status)


async def test_sigterm_under_load_keeps_every_acknowledged_order_and_pair(
    tmp_path: Path, fake_executioner: FakeExecutioner, processes: list[Ome]
) -> None:
    dumpfile = tmp_path / "state.json"
    fake_executioner.fail(seconds=120)
    first = Ome(tmp_path, "--executioner_address", fake_executioner.url, "--dumpfile", "state.json")
    processes.append(first)
    await first.started()
    async with aiohttp.ClientSession() as session:
        await create_market(session, first.url)

    acked: list[tuple[Any, Any]] = []
    failures: list[int] = []
    traders = [asyncio.create_task(trader(first.url, user, acked, failures)) for user in (1, 2, 3)]
    while len(acked) < 150 or not fake_executioner.submits:
        assert not any(t.done() for t in traders), failures
        await asyncio.sleep(0.01)
    assert await first.stop(signal.SIGTERM) == 0
    await asyncio.gather(*traders)
    assert failures == []

    # What the clients were told is exactly what was dumped.
    left: dict[str, int] = {}
    fills: list[tuple[str, str]] = []
    for body, data in acked:
        left[data["id"]] = int(body["amount"])
    for _, data in acked:
        for fill in data["fills"]:
            left[fill["maker"]] -= int(fill["amount"])
            left[fill["taker"]] -= int(fill["amount"])
            fills.append((fill["maker"], fill["taker"]))
    state = read_dump(dumpfile)
    assert state is not None
    resting = {o.id: o.amount_left for o in state.exchange.get(MARKET).orders()}
    assert resting == {order: amount for order, amount in left.items() if amount > 0}
    assert fills, "the load should cross some orders"
    pending = [(p.maker["id"], p.taker["id"]) for p in state.outbox.pairs()]
    assert Counter(pending) == Counter(fills)
    tried_keys = {r.headers["Idempotency-Key"] for r in fake_executioner.submits}
    assert tried_keys == {state.outbox.pairs()[0].key}

    # After a restart the same book is served and the pairs are delivered, in order.
    fake_executioner.reset()
    second = Ome(
        tmp_path,
        "--executioner_address", fake_executioner.url, "--dumpfile", "state.json",
        name="ome2",
    )  # fmt: skip
    processes.append(second)
    await second.started()
    async with aiohttp.ClientSession() as session:
        book = await get_book(session, second.url)
    served = {o["id"]: int(o["amount_left"]) for lvl in book["bids"].values() for o in lvl}
    served |= {o["id"]: int(o["amount_left"]) for lvl in book["asks"].values() for o in lvl}
    assert served == resting
    delivered = await fake_executioner.wait_delivered(len(state.outbox), timeout=20)
    assert delivered == [{"maker": p.maker, "taker": p.taker} for p in state.outbox.pairs()]
    keys = [r.headers["Idempotency-Key"] for r in fake_executioner.submits if r.status == 200]
    assert keys == [p.key for p in state.outbox.pairs()]

    assert await second.stop(signal.SIGTERM) == 0
    final = read_dump(dumpfile)
    assert final is not None and len(final.outbox) == 0


async def test_sigint_dumps_and_restart_serves_the_identical_book(
    tmp_path: Path, fake_executioner: FakeExecutioner, processes: list[Ome]
) -> None:
    fake_executioner.fail(seconds=120)
    args = ("--executioner_address", fake_executioner.url, "--dumpfile", "dump.json")
    first = Ome(tmp_path, *args)
    processes.append(first)
    await first.started()
    async with aiohttp.ClientSession() as session:
        await create_market(session, first.url)
        for user, side, price, amount in [
            (1, "Ask", 105, 3), (1, "Ask", 103, 2), (2, "Ask", 103, 4),
            (3, "Bid", 99, 5), (4, "Bid", 100, 1), (5, "Bid", 104, 4),
        ]:  # fmt: skip
            body = live_body(user, side, price, amount, 1)
            async with session.post(f"{first.url}/book/{MARKET}/order", json=body) as response:
                assert response.status == 200
        before = await get_book(session, first.url)
        async with session.get(f"{first.url}/book") as response:
            markets = await response.json()
    await fake_executioner.wait_for("submit", 1)
    assert before["ltp"] == "103"
    assert await first.stop(signal.SIGINT) == 0

    fake_executioner.reset()
    second = Ome(tmp_path, *args, name="ome2")
    processes.append(second)
    await second.started()
    async with aiohttp.ClientSession() as session:
        assert await get_book(session, second.url) == before
        async with session.get(f"{second.url}/book") as response:
            assert await response.json() == markets
    delivered = await fake_executioner.wait_delivered(2)
    assert [(p["maker"]["price"], p["taker"]["amount_left"]) for p in delivered] == [
        ("103", "2"),
        ("103", "0"),
    ]
    assert await second.stop(signal.SIGINT) == 0


async def test_request_in_flight_at_sigterm_is_answered_and_dumped(
    tmp_path: Path, fake_executioner: FakeExecutioner, processes: list[Ome]
) -> None:
    ome = Ome(tmp_path, "--executioner_address", fake_executioner.url, "--dumpfile", "d.json")
    processes.append(ome)
    await ome.started()
    async with aiohttp.ClientSession() as session:
        await create_market(session, ome.url)
        fake_executioner.delay(1.0, path="check")
        url = f"{ome.url}/book/{MARKET}/order"
        posting = asyncio.create_task(session.post(url, json=live_body(1, "Bid", 99, 3, 1)))
        await fake_executioner.wait_for("check", 1)
        ome.process.send_signal(signal.SIGTERM)
        response = await posting
        answer = await response.json()
    assert response.status == 200 and answer["message"] == "Add"
    assert await ome.exited() == 0
    state = read_dump(tmp_path / "d.json")
    assert state is not None
    assert [o.id for o in state.exchange.get(MARKET).orders()] == [answer["id"]]


async def test_corrupt_dumpfile_exits_1_and_is_left_untouched(
    tmp_path: Path, processes: list[Ome]
) -> None:
    dumpfile = tmp_path / "broken-dump.json"
    content = b'{"version": 1, "exchange": {"markets": ['
    dumpfile.write_bytes(content)
    ome = Ome(tmp_path, "--dumpfile", str(dumpfile), "--executioner_address", "http://127.0.0.1:9")
    processes.append(ome)
    assert await ome.exited() == 1
    assert "broken-dump.json" in ome.stderr
    assert len(ome.stderr.strip().splitlines()) == 1
    assert "Traceback" not in ome.stderr + ome.stdout_path.read_text()
    assert dumpfile.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-dump.json", "ome.err", "ome.out"]


async def test_dumpfile_in_a_missing_folder_exits_1(tmp_path: Path, processes: list[Ome]) -> None:
    ome = Ome(tmp_path, "--dumpfile", "no-such-folder/dump.json")
    processes.append(ome)
    assert await ome.exited() == 1
    assert "no-such-folder" in ome.stderr
    assert "Traceback" not in ome.stderr


async def test_port_in_use_exits_1(tmp_path: Path, processes: list[Ome]) -> None:
    first = Ome(tmp_path, "--dumpfile", "a.json", name="first")
    processes.append(first)
    await first.started()
    port = first.url.rsplit(":", 1)[1]
    second = Ome(tmp_path, "--dumpfile", "b.json", "-p", port, name="second")
    processes.append(second)
    assert await second.exited() == 1
    assert f"127.0.0.1:{port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert await first.stop() == 0


async def test_missing_certificate_serves_plain_http_and_says_why_once(
    tmp_path: Path, processes: list[Ome]
) -> None:
    ome = Ome(tmp_path, "--certificate_path", "nope.pem", "--private_key_path", "nope.key")
    processes.append(ome)
    await ome.started()
    async with aiohttp.ClientSession() as session, session.get(ome.url) as response:
        assert await response.json() == {"status": 200, "message": "Healthy"}
    (warning,) = ome.events("tls_disabled")
    assert "nope.pem" in warning["reason"] and "nope.key" in warning["reason"]
    assert ome.events("ome_started")[0]["tls"] is False
    assert await ome.stop() == 0


def write_certificate(folder: Path) -> ssl.SSLContext:
    """A certificate for 127.0.0.1 in cert.pem / pkey.secret; the client context trusting it."""
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    issued.private_key_pem.write_to_path(str(folder / "pkey.secret"))
    client = ssl.create_default_context()
    authority.configure_trust(client)
    return client


async def test_certificate_and_key_present_serve_tls(tmp_path: Path, processes: list[Ome]) -> None:
    client_context = write_certificate(tmp_path)
    ome = Ome(tmp_path)
    processes.append(ome)
    await ome.started(scheme="https")
    async with (
        aiohttp.ClientSession() as session,
        session.get(ome.url, ssl=client_context) as response,
    ):
        assert await response.json() == {"status": 200, "message": "Healthy"}
    assert ome.events("tls_disabled") == []
    assert ome.events("ome_started")[0]["tls"] is True
    assert await ome.stop() == 0


@pytest.mark.parametrize(
    ("args", "warnings"),
    [
        ((), {"signatures_not_verified"}),
        (("--allow_unsigned_cancel",), {"signatures_not_verified", "unsigned_cancels_allowed"}),
        (("--chain_id", "5", "--trader_contract", "0x" + "ab" * 20), set()),
        (("--dev",), set()),
    ],
    ids=["plain", "unsigned cancels", "domain", "dev"],
)
async def test_start_warns_about_what_is_not_verified(
    tmp_path: Path, processes: list[Ome], args: tuple[str, ...], warnings: set[str]
) -> None:
    ome = Ome(tmp_path, "--force-no-tls", *args)
    processes.append(ome)
    await ome.started()
    access = {"signatures_not_verified", "unsigned_cancels_allowed"}
    assert {e["event"] for e in ome.events() if e["level"] == "warning"} & access == warnings
    (started,) = ome.events("ome_started")
    if "--dev" in args:
        assert (started["chain_id"], started["trader_contract"]) == (1337, "0x" + "33" * 20)
    elif "--chain_id" in args:
        assert (started["chain_id"], started["trader_contract"]) == (5, "0x" + "ab" * 20)
    else:
        assert started["chain_id"] is None
    assert await ome.stop() == 0


async def test_force_no_tls_wins_over_present_certificate(
    tmp_path: Path, processes: list[Ome]
) -> None:
    write_certificate(tmp_path)
    ome = Ome(tmp_path, "--force-no-tls")
    processes.append(ome)
    await ome.started()
    async with aiohttp.ClientSession() as session, session.get(ome.url) as response:
        assert response.status == 200
    (warning,) = ome.events("tls_disabled")
    assert "forced" in warning["reason"]
    assert await ome.stop() == 0


async def test_dev_mode_matches_and_settles_with_the_embedded_executioner(
    tmp_path: Path, processes: list[Ome]
) -> None:
    ome = Ome(tmp_path, "--dev")
    processes.append(ome)
    await ome.started()
    async with aiohttp.ClientSession() as session:
        await create_market(session, ome.url)
        url = f"{ome.url}/book/{MARKET}/order"
        # --dev verifies signatures on the README's domain: a forged order is refused.
        forged = {**sign_order(live_body(1, "Ask", 100, 5, 1), 1), "price": "99"}
        async with session.post(url, json=forged) as response:
            assert (response.status, await response.json()) == (
                400,
                {"status": 400, "message": "invalid_signature"},
            )
        ask_body = sign_order(live_body(1, "Ask", 100, 5, 1), 1)
        async with session.post(url, json=ask_body) as response:
            ask = await response.json()
        async with session.post(
            url, json=sign_order(live_body(2, "Bid", 101, 2, 1), 2)
        ) as response:
            bid = await response.json()
    assert bid["message"] == "FullMatch"
    deadline = time.monotonic() + 5
    while not ome.events("pair_settled") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (settled,) = ome.events("pair_settled")
    assert (settled["maker"], settled["taker"]) == (ask["id"], bid["id"])
    assert settled["market"] == MARKET
    assert ome.events("ome_started")[0]["executioner"].startswith("http://127.0.0.1:")
    assert await ome.stop() == 0


def test_devexecutioner_runs_alone() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ome.devexecutioner", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["event"] == "dev_executioner_started"
        assert started["url"].startswith("http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


# ---------------------------------------------------------------- in process


async def test_expiry_sweep_removes_orders_when_nothing_trades(
    tmp_path: Path, fake_executioner: FakeExecutioner, aiohttp_client: AiohttpClient
) -> None:
    clock = Clock(1_700_000_000)
    settings = Settings(
        port=0,
        executioner_address=fake_executioner.url,
        dumpfile=tmp_path / "d",
        journal_dir=tmp_path / "j",
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    assert (await client.post("/book", json={"market": MARKET})).status == 201
    body = order_body(1, "Bid", 100, 5, created="1", expiration=str(clock.now + 10))
    response = await client.post(f"/book/{MARKET}/order", json=body)
    order = (await response.json())["id"]
    assert (await client.get(f"/book/{MARKET}/order/{order}")).status == 200

    clock.now += 10
    deadline = time.monotonic() + 2
    while (await client.get(f"/book/{MARKET}/order/{order}")).status == 200:
        assert time.monotonic() < deadline, "the sweep did not remove the expired order"
        await asyncio.sleep(0.05)
    book = await (await client.get(f"/book/{MARKET}")).json()
    assert book["bids"] == {} and book["depth"] == [0, 0]


async def test_restore_drops_expired_orders_and_shutdown_dumps(
    tmp_path: Path, fake_executioner: FakeExecutioner, aiohttp_client: AiohttpClient
) -> None:
    now = 1_700_000_000
    exchange = Exchange()
    book = exchange.create(MARKET)
    kept = make_order(Side.Bid, 90, 5, trader=1, expiration=now + 100, created=1)
    gone = make_order(Side.Ask, 110, 5, trader=2, expiration=now + 5, created=1)
    for order in (kept, gone):
        book.submit(order, now)
    dumpfile = tmp_path / "dump.json"
    write_dump(dumpfile, State(exchange))

    settings = Settings(
        port=0,
        executioner_address=fake_executioner.url,
        dumpfile=dumpfile,
        journal_dir=tmp_path / "j",
    )
    client = await aiohttp_client(create_app(settings, clock=Clock(now + 5)))
    served = await (await client.get(f"/book/{MARKET}")).json()
    assert [o["id"] for level in served["bids"].values() for o in level] == [kept.id]
    assert served["asks"] == {}

    await client.close()
    state = read_dump(dumpfile)
    assert state is not None
    assert [o.id for o in state.exchange.get(MARKET).orders()] == [kept.id]


# ---------------------------------------------------------------- operator hygiene


def existing_dump(path: Path) -> bytes:
    """A dumpfile as another version might have written it: what a rewrite would change."""
    exchange = Exchange()
    exchange.create(MARKET)
    write_dump(path, State(exchange))
    content = path.read_bytes() + b"\n\n"
    path.write_bytes(content)
    return content


async def test_a_start_on_a_busy_port_leaves_the_dumpfile_untouched(
    tmp_path: Path, processes: list[Ome]
) -> None:
    first = Ome(tmp_path, "--dumpfile", "a.json", name="first")
    processes.append(first)
    await first.started()
    port = first.url.rsplit(":", 1)[1]
    dumpfile = tmp_path / "b.json"
    content = existing_dump(dumpfile)
    inode = dumpfile.stat().st_ino
    second = Ome(tmp_path, "--dumpfile", "b.json", "-p", port, name="second")
    processes.append(second)
    assert await second.exited() == 1
    assert dumpfile.read_bytes() == content
    assert dumpfile.stat().st_ino == inode
    assert second.events("state_dumped") == []
    assert await first.stop() == 0


async def test_a_start_with_bad_tls_files_leaves_the_dumpfile_untouched(
    tmp_path: Path, processes: list[Ome]
) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "pkey.secret").write_text("not a key")
    dumpfile = tmp_path / "dump.json"
    content = existing_dump(dumpfile)
    ome = Ome(tmp_path, "--dumpfile", "dump.json")
    processes.append(ome)
    assert await ome.exited() == 1
    assert "cert.pem" in ome.stderr
    assert "Traceback" not in ome.stderr
    assert dumpfile.read_bytes() == content


@pytest.mark.parametrize(
    ("args", "environ", "level", "address"),
    [
        ((), {}, "warning", "http://localhost:3000"),
        ((), {"executioner_ip": "127.0.0.1"}, "info", "http://127.0.0.1:3000"),
        (("--executioner_address", "http://127.0.0.1:9"), {}, "info", "http://127.0.0.1:9"),
    ],
)
async def test_the_start_logs_the_executioner_address_and_warns_on_the_default(
    tmp_path: Path,
    processes: list[Ome],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    environ: dict[str, str],
    level: str,
    address: str,
) -> None:
    for name in ("executioner_ip", "executioner_address"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    ome = Ome(tmp_path, *args)
    processes.append(ome)
    await ome.started()
    (event,) = ome.events("executioner_address")
    assert (event["level"], event["executioner"]) == (level, address)
    assert ome.events("ome_started")[0]["executioner"] == address
    assert await ome.stop() == 0
