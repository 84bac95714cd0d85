"""A log that cannot be written changes nothing: answers, signals, the dump, the exit status.

The service runs as a subprocess whose stdout is a pipe; once it has started
the test closes the reading end, as `ome | head -4` does when head exits, so
every later log line meets a broken pipe. Each request must still get the
answer its effect deserves, and SIGTERM must still dump and exit 0.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ome.persistence import read_dump
from tests.builders import MARKET, live_body
from tests.fakes import FakeExecutioner
from tests.processes import REPO, START_TIMEOUT, Ome
from tests.test_lifecycle import get_book

# A byte that is not UTF-8; aiohttp turns it into a lone surrogate, which no
# JSON encoder of UTF-8 accepts and no response header can carry.
NOT_UTF8 = b"\xf5"


def start_with_piped_stdout(folder: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """The service with stdout a pipe, the URL it serves, and the pipe's reader gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OME_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen(
        [sys.executable, "-m", "ome", "-l", "127.0.0.1", "-p", "0", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"ome exited with {process.wait()} before it started")
        event = json.loads(line)
        if event["event"] == "ome_started":
            process.stdout.close()
            return process, f"http://127.0.0.1:{event['port']}"
    process.kill()
    pytest.fail("ome did not start in time")


async def raw_request(url: str, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes aiohttp's client would refuse to send (a non-UTF-8 header) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), json.loads(body)


def post(path: str, body: Any, *headers: bytes) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        f"Content-Length: {len(payload)}".encode(),
        b"Connection: close",
        *headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


async def exited(process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> int:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("ome did not exit in time")
        await asyncio.sleep(0.05)
    return process.returncode


async def test_requests_signals_and_dump_survive_a_broken_stdout(
    tmp_path: Path, fake_executioner: FakeExecutioner
) -> None:
    args = (
        *("--executioner_address", fake_executioner.url, "--dumpfile", "dump.json"),
        "--allow_unsigned_cancel",
    )
    process, url = start_with_piped_stdout(tmp_path, *args)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/book", json={"market": MARKET}) as response:
                assert response.status == 201
            order_url = f"{url}/book/{MARKET}/order"
            async with session.post(order_url, json=live_body(1, "Ask", 100, 5, 1)) as response:
                assert response.status == 200
                ask = await response.json()
            async with session.post(order_url, json=live_body(2, "Bid", 100, 2, 1)) as response:
                assert response.status == 200
                bid = await response.json()
            assert bid["message"] == "FullMatch"
            async with session.post(order_url, json=live_body(3, "Bid", 90, 1, 1)) as response:
                assert response.status == 200
                resting = await response.json()
            cancel = f"{url}/book/{MARKET}/order/{resting['id']}"
            async with session.delete(cancel) as response:
                assert response.status == 200
            before = await get_book(session, url)
        await fake_executioner.wait_delivered(1)
        process.send_signal(signal.SIGTERM)
        assert await exited(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    state = read_dump(tmp_path / "dump.json")
    assert state is not None
    assert [(o.id, o.amount_left) for o in state.exchange.get(MARKET).orders()] == [(ask["id"], 3)]
    restored = Ome(tmp_path, *args, name="restored")
    try:
        await restored.started()
        async with aiohttp.ClientSession() as session:
            assert await get_book(session, restored.url) == before
        assert await restored.stop() == 0
    finally:
        restored.kill()


async def test_sigint_with_a_broken_stdout_exits_0_with_the_dump(
    tmp_path: Path, fake_executioner: FakeExecutioner
) -> None:
    process, url = start_with_piped_stdout(
        tmp_path, "--executioner_address", fake_executioner.url, "--dumpfile", "d.json"
    )
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/book", json={"market": MARKET}) as response,
        ):
            assert response.status == 201
        process.send_signal(signal.SIGINT)
        assert await exited(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    state = read_dump(tmp_path / "d.json")
    assert state is not None and list(state.exchange.books) == [MARKET]


async def test_a_non_utf8_request_id_is_replaced_and_the_request_answered(
    tmp_path: Path, fake_executioner: FakeExecutioner
) -> None:
    ome = Ome(tmp_path, "--executioner_address", fake_executioner.url, "--dumpfile", "d.json")
    try:
        await ome.started()
        request_id = b"X-Request-Id: " + NOT_UTF8
        status, answer = await raw_request(ome.url, post("/book", {"market": MARKET}, request_id))
        assert (status, answer["status"]) == (201, 201)
        order = live_body(1, "Ask", 100, 5, 1)
        status, ask = await raw_request(ome.url, post(f"/book/{MARKET}/order", order, request_id))
        assert (status, ask["message"]) == (200, "Add")
        order = live_body(2, "Bid", 100, 5, 1)
        status, bid = await raw_request(ome.url, post(f"/book/{MARKET}/order", order, request_id))
        assert (status, bid["message"]) == (200, "FullMatch")
        await fake_executioner.wait_delivered(1)
        assert await ome.stop() == 0
    finally:
        ome.kill()
    assert ome.events("request_failed") == []
    matched = [e for e in ome.events() if e.get("order_id") == bid["id"] or e.get("taker")]
    assert matched, "the match was not logged"
    assert all(e["request_id"].isascii() for e in ome.events() if "request_id" in e)
    assert "Traceback" not in ome.stderr
