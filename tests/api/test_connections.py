"""Hostile and slow clients: idle and half-sent requests get closed, refusals are JSON and quiet.

The server runs as `__main__` runs it (`tests.builders.serving`), with its
deadlines shortened to one second so the tests are quick; the bounds the
tests wait for are twenty times that, which a loaded machine cannot miss.
"""

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import orjson
import pytest

from ome.api.app import create_app
from ome.api.middlewares import CORS_HEADERS
from ome.config import Settings
from tests.builders import (
    MARKET,
    Clock,
    captured_logs,
    exchange,
    read_answer,
    request_bytes,
    serving,
)

DEADLINE = 1.0
PATIENCE = 20.0
CREATE = orjson.dumps({"market": MARKET})
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[str, int]]:
    app = create_app(settings, clock=Clock())
    async with serving(
        app, keepalive_timeout=DEADLINE, header_timeout=DEADLINE, body_timeout=DEADLINE
    ) as address:
        yield address


@pytest.fixture
def logs() -> Any:
    with captured_logs() as entries:
        yield entries


async def markets(server: tuple[str, int]) -> Any:
    return (await exchange(*server, request_bytes("GET", "/book"))).json()["markets"]


def assert_json_refusal(answer: Any, status: int) -> None:
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["status"] == status
    for name, value in CORS_HEADERS.items():
        assert answer.headers[name.lower()] == value


def no_tracebacks(logs: list[MutableMapping[str, Any]]) -> None:
    assert [e for e in logs if e.get("exc_info") or e["log_level"] == "error"] == []


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(PATIENCE):
        return await reader.read()


# ---------------------------------------------------------------- deadlines


async def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        assert await closed(reader) == b""
    finally:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_its_answer(
    server: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(request_bytes("GET", "/", close=False))
        assert (await read_answer(reader)).status == 200
        assert await closed(reader) == b""
    finally:
        writer.close()


async def test_headers_that_never_finish_get_408_and_the_connection_closed(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]]
) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(b"POST /book HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        async with asyncio.timeout(PATIENCE):
            answer = await read_answer(reader)
        assert_json_refusal(answer, 408)
        assert await closed(reader) == b""
    finally:
        writer.close()
    assert [e["event"] for e in logs] == ["request_timed_out"]
    assert await markets(server) == []


async def test_a_body_that_never_finishes_gets_408_and_changes_nothing(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]]
) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        head = request_bytes("POST", "/book", headers={**JSON, "Content-Length": "100000000"})
        writer.write(head + CREATE[:5])
        async with asyncio.timeout(PATIENCE):
            answer = await read_answer(reader)
        assert_json_refusal(answer, 408)
        assert await closed(reader) == b""
    finally:
        writer.close()
    assert await markets(server) == []
    no_tracebacks(logs)


async def test_normal_clients_are_served_beside_slow_ones(server: tuple[str, int]) -> None:
    slow = [await asyncio.open_connection(*server) for _ in range(20)]
    try:
        for _, writer in slow:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        created = await exchange(*server, request_bytes("POST", "/book", CREATE, JSON))
        assert created.status == 201
        assert await markets(server) == [MARKET]
    finally:
        for _, writer in slow:
            writer.close()


async def test_a_client_that_leaves_mid_body_is_logged_at_info(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]]
) -> None:
    _, writer = await asyncio.open_connection(*server)
    writer.write(request_bytes("POST", "/book", headers={**JSON, "Content-Length": "500"}))
    writer.write(CREATE[:5])
    await writer.drain()
    # The server must have started on the body before the client leaves.
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    async with asyncio.timeout(PATIENCE):
        while not [e for e in logs if e["event"] == "client_disconnected"]:
            await asyncio.sleep(0.05)
    (event,) = [e for e in logs if e["event"] == "client_disconnected"]
    assert event["log_level"] == "info" and event["path"] == "/book"
    no_tracebacks(logs)
    assert await markets(server) == []


# ---------------------------------------------------------------- what aiohttp refuses itself


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /book HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    ],
    ids=["request-line", "long-header", "long-line", "bad-header", "two-framings"],
)
async def test_malformed_http_is_json_and_logged_once_at_info(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]], raw: bytes
) -> None:
    assert_json_refusal(await exchange(*server, raw), 400)
    assert [(e["event"], e["log_level"]) for e in logs] == [("http_refused", "info")]
    no_tracebacks(logs)


@pytest.mark.parametrize("expect", [b"200-ok", b"\xf5", b"100-continue, x"])
async def test_an_unknown_expectation_is_417_json_and_changes_nothing(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]], expect: bytes
) -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Expect", expect)]
    answer = await exchange(*server, request_bytes("POST", "/book", CREATE, headers))
    assert_json_refusal(answer, 417)
    assert await markets(server) == []
    no_tracebacks(logs)


async def test_expect_100_continue_is_honoured(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        expecting = {**JSON, "Expect": "100-continue", "Content-Length": str(len(CREATE))}
        head = request_bytes("POST", "/book", headers=expecting)
        writer.write(head)
        async with asyncio.timeout(PATIENCE):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(CREATE)
            assert (await read_answer(reader)).status == 201
    finally:
        writer.close()


# ---------------------------------------------------------------- Content-Encoding


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZIP", gzip.compress)],
)
async def test_gzip_and_deflate_bodies_are_decoded(
    server: tuple[str, int], encoding: str, encode: Any
) -> None:
    headers = {**JSON, "Content-Encoding": encoding}
    answer = await exchange(*server, request_bytes("POST", "/book", encode(CREATE), headers))
    assert answer.status == 201
    assert await markets(server) == [MARKET]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_400_and_changes_nothing(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]], encoding: str
) -> None:
    headers = {**JSON, "Content-Encoding": encoding}
    answer = await exchange(*server, request_bytes("POST", "/book", CREATE, headers))
    assert_json_refusal(answer, 400)
    assert "Content-Encoding" in answer.json()["message"]
    assert await markets(server) == []
    no_tracebacks(logs)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "x-custom", "gzip, gzip", "\xf5"])
async def test_other_encodings_are_415_with_the_accepted_ones_and_change_nothing(
    server: tuple[str, int], logs: list[MutableMapping[str, Any]], encoding: str
) -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Content-Encoding", encoding.encode())]
    answer = await exchange(*server, request_bytes("POST", "/book", CREATE, headers))
    assert_json_refusal(answer, 415)
    assert answer.headers["accept-encoding"] == "gzip, deflate, identity"
    assert await markets(server) == []
    no_tracebacks(logs)
