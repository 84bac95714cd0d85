"""The executioner client against a real (fake) executioner server on 127.0.0.1."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from ome.executioner import ExecutionerClient, ExecutionerRejected, ExecutionerUnavailable
from tests.fakes import FakeExecutioner

ORDER = {"id": "0x" + "ab" * 32, "price": "5"}
PAIR = {"maker": {"id": "0x01"}, "taker": {"id": "0x02"}}
# Generous beside the 0.3 s timeout: a loaded machine cannot miss it, a hang would.
HANG_BOUND = 10.0


@pytest.fixture
async def client(fake_executioner: FakeExecutioner) -> AsyncIterator[ExecutionerClient]:
    c = ExecutionerClient(fake_executioner.url, timeout=0.3)
    yield c
    await c.aclose()


async def test_check_posts_the_order_wrapped(
    client: ExecutionerClient, fake_executioner: FakeExecutioner
) -> None:
    await client.check(ORDER)
    [received] = fake_executioner.checks
    assert received.body == {"order": ORDER}
    assert received.headers["Content-Type"] == "application/json"


async def test_submit_posts_the_pair_with_its_idempotency_key(
    client: ExecutionerClient, fake_executioner: FakeExecutioner
) -> None:
    await client.submit(PAIR, "key-1")
    await client.submit(PAIR, "key-2")
    assert [r.body for r in fake_executioner.submits] == [PAIR, PAIR]
    assert [r.headers["Idempotency-Key"] for r in fake_executioner.submits] == ["key-1", "key-2"]


async def test_a_trailing_slash_in_the_base_url_is_harmless(
    fake_executioner: FakeExecutioner,
) -> None:
    c = ExecutionerClient(fake_executioner.url + "/", timeout=0.3)
    try:
        await c.check(ORDER)
    finally:
        await c.aclose()
    assert len(fake_executioner.checks) == 1


@pytest.mark.parametrize("status", [400, 403, 409, 422])
async def test_4xx_is_a_rejection_carrying_the_executioners_message(
    client: ExecutionerClient, fake_executioner: FakeExecutioner, status: int
) -> None:
    fake_executioner.reject("signature does not match", status=status)
    with pytest.raises(ExecutionerRejected) as info:
        await client.check(ORDER)
    assert info.value.status == status
    assert info.value.message == "signature does not match"
    assert str(info.value) == "signature does not match"


async def test_4xx_without_a_message_is_still_a_rejection(
    client: ExecutionerClient, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.reject(None, path="submit")
    with pytest.raises(ExecutionerRejected) as info:
        await client.submit(PAIR, "k")
    assert info.value.status == 400
    assert info.value.message == "Rejected by the executioner"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_unavailable(
    client: ExecutionerClient, fake_executioner: FakeExecutioner, status: int
) -> None:
    fake_executioner.fail(1, status=status, path="check")
    with pytest.raises(ExecutionerUnavailable):
        await client.check(ORDER)
    await client.check(ORDER)


async def test_a_hanging_executioner_is_unavailable_after_the_timeout(
    client: ExecutionerClient, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.hang(path="submit")
    started = time.monotonic()
    with pytest.raises(ExecutionerUnavailable) as info:
        await client.submit(PAIR, "k")
    # The timeout is 0.3 s; the bound only proves the client did not wait for the release.
    assert time.monotonic() - started < HANG_BOUND
    assert str(info.value) == f"{fake_executioner.url}/submit: no answer within 0.3 s"
    fake_executioner.release()


async def test_nobody_listening_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = ExecutionerClient(f"http://127.0.0.1:{port}", timeout=0.3)
    try:
        with pytest.raises(ExecutionerUnavailable) as check:
            await c.check(ORDER)
        with pytest.raises(ExecutionerUnavailable) as submit:
            await c.submit(PAIR, "k")
    finally:
        await c.aclose()
    # The real cause and the address tried, not the transport's "ConnectTimeout".
    assert str(check.value) == f"http://127.0.0.1:{port}/check: connection refused"
    assert str(submit.value) == f"http://127.0.0.1:{port}/submit: connection refused"


async def test_the_client_recovers_when_the_executioner_comes_back(
    client: ExecutionerClient, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.fail(2, path="submit")
    for _ in range(2):
        with pytest.raises(ExecutionerUnavailable):
            await client.submit(PAIR, "k")
    await client.submit(PAIR, "k")
    assert [r.status for r in fake_executioner.submits] == [503, 503, 200]
    assert fake_executioner.delivered == [PAIR]


@pytest.mark.parametrize("status", [500, 503])
async def test_a_5xx_names_the_status_and_the_address(
    client: ExecutionerClient, fake_executioner: FakeExecutioner, status: int
) -> None:
    fake_executioner.fail(1, status=status, path="check")
    with pytest.raises(ExecutionerUnavailable) as info:
        await client.check(ORDER)
    assert (info.value.url, info.value.cause) == (
        f"{fake_executioner.url}/check",
        f"answered {status}",
    )


async def test_a_connection_closed_without_an_answer_is_named(
    unused_tcp_port: int,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", unused_tcp_port)
    c = ExecutionerClient(f"http://127.0.0.1:{unused_tcp_port}", timeout=5.0)
    try:
        with pytest.raises(ExecutionerUnavailable) as info:
            await c.check(ORDER)
    finally:
        await c.aclose()
        server.close()
        await server.wait_closed()
    assert info.value.url == f"http://127.0.0.1:{unused_tcp_port}/check"
    assert info.value.cause == "the executioner closed the connection without an answer"


async def test_closing_an_unused_client_is_fine() -> None:
    await ExecutionerClient("http://127.0.0.1:9").aclose()
