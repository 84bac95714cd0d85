"""Order submission: encodings, refusals in the order of docs/API.md, the executioner's check,
delivery."""

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from ome.engine import MAX_UINT128, Side, order_id
from tests.api.conftest import EXECUTIONER_TIMEOUT, Client, refused, submit
from tests.builders import MARKET, NOW, OTHER_MARKET, SIG, Clock, captured_logs, order_body, user
from tests.fakes import FakeExecutioner

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "order_ids.json"
ORDER_PATH = f"/book/{MARKET}/order"
# A bound on waits that a loaded machine cannot miss, and a hang would.
HANG_BOUND = 10.0


async def depth(client: Client, market: str = MARKET) -> list[int]:
    data = await (await client.get(f"/book/{market}")).json()
    return list(data["depth"])


# ------------------------------------------------------------------ encodings


@pytest.mark.parametrize(
    "overrides",
    [
        {"price": 100, "amount": 10, "expiration": NOW + 3600, "created": NOW},
        {"user": user(1)[2:].upper(), "target_tracer": MARKET.upper().replace("0X", "0x")},
        {"side": "bid"},
        {"side": "BID"},
        {"signed_data": ..., "signedData": SIG.upper().replace("0X", "0x")},
        {"id": "0x" + "ff" * 32, "amount_left": "3"},
    ],
)
async def test_encoding_variants_are_the_same_order(
    client: Client, market: str, overrides: dict[str, Any]
) -> None:
    # Computed, not submitted first: a cancelled id is refused until it expires.
    expected = order_id(user(1), MARKET, 100, 10, Side.Bid, NOW + 3600, NOW)
    answer = await submit(client, order_body(**overrides))
    assert answer["id"] == expected
    stored = await (await client.get(f"{ORDER_PATH}/{expected}")).json()
    assert stored == {**stored, "user": user(1), "side": "Bid", "signed_data": SIG}
    assert stored["amount_left"] == "10"


@pytest.mark.parametrize("field", ["price", "amount"])
@pytest.mark.parametrize("as_string", [True, False])
async def test_largest_uint128_accepted_and_one_more_refused(
    client: Client, market: str, field: str, as_string: bool
) -> None:
    def value(n: int) -> int | str:
        return str(n) if as_string else n

    answer = await submit(client, order_body(**{field: value(MAX_UINT128)}))
    stored = await (await client.get(f"{ORDER_PATH}/{answer['id']}")).json()
    assert stored[field] == str(MAX_UINT128)
    text = await refused(
        client, "POST", ORDER_PATH, 400, json=order_body(2, **{field: value(MAX_UINT128 + 1)})
    )
    assert text == "Integer out of bounds"
    assert await depth(client) == [1, 0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": "abc"}, "price"),
        ({"amount": 0}, "amount"),
        ({"price": 1.5}, "price"),
        ({"amount": True}, "amount"),
        ({"side": "Buy"}, "side"),
        ({"user": "0x123"}, "user"),
        ({"target_tracer": 7}, "target_tracer"),
        ({"signed_data": "0xdead"}, "signed_data"),
        ({"signed_data": ...}, "signed_data"),
        ({"expiration": "soon"}, "expiration"),
        ({"created": ...}, "created"),
    ],
)
async def test_invalid_order_names_the_field(
    client: Client, market: str, overrides: dict[str, Any], field: str
) -> None:
    text = await refused(client, "POST", ORDER_PATH, 400, json=order_body(**overrides))
    assert field in text
    assert await depth(client) == [0, 0]


async def test_known_order_ids(client: Client, clock: Clock) -> None:
    vectors = json.loads(VECTORS.read_text())
    clock.now = min(v["created"] for v in vectors)
    for v in vectors:
        market = v["target_tracer"]
        await client.post("/book", json={"market": market})
        body = {k: v[k] for k in ("user", "target_tracer", "side", "price", "amount")}
        body |= {"expiration": v["expiration"], "created": v["created"], "signed_data": SIG}
        assert (await submit(client, body, market=market))["id"] == v["id"]
        stored = await (await client.get(f"/book/{market}/order/{v['id']}")).json()
        assert stored["id"] == v["id"]


# ------------------------------------------------------- refusals, in order


async def test_target_tracer_must_be_the_paths_market(client: Client, market: str) -> None:
    await client.post("/book", json={"market": OTHER_MARKET})
    body = order_body(target_tracer=OTHER_MARKET)
    text = await refused(client, "POST", ORDER_PATH, 400, json=body)
    assert "target_tracer" in text
    assert await depth(client) == [0, 0]
    assert await depth(client, OTHER_MARKET) == [0, 0]


@pytest.mark.parametrize("expiration", [NOW, NOW - 1, 0])
async def test_expired_order(client: Client, market: str, expiration: int) -> None:
    text = await refused(client, "POST", ORDER_PATH, 400, json=order_body(expiration=expiration))
    assert "expired" in text.lower()
    await submit(client, order_body(expiration=NOW + 1))


async def test_duplicate_order(client: Client, market: str) -> None:
    await submit(client, order_body())
    text = await refused(client, "POST", ORDER_PATH, 409, json=order_body())
    assert "same id" in text
    assert await depth(client) == [1, 0]


async def test_checks_come_in_the_documented_order(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.reject("no")
    expired_elsewhere = order_body(target_tracer=OTHER_MARKET, expiration=NOW)
    # Body before market, market before target_tracer, target_tracer before expiry ...
    await refused(client, "POST", f"/book/{OTHER_MARKET}/order", 400, json={"price": 1})
    await refused(client, "POST", f"/book/{OTHER_MARKET}/order", 404, json=expired_elsewhere)
    assert "target_tracer" in await refused(client, "POST", ORDER_PATH, 400, json=expired_elsewhere)
    # ... expiry before duplicate, duplicate before the executioner.
    fake_executioner.reset()
    await submit(client, order_body())
    fake_executioner.reject("no")
    assert "expired" in (await refused(
        client, "POST", ORDER_PATH, 400, json=order_body(expiration=NOW)
    )).lower()  # fmt: skip
    await refused(client, "POST", ORDER_PATH, 409, json=order_body())
    assert len(fake_executioner.checks) == 1


# ------------------------------------------------------------- the executioner


async def test_check_receives_the_order_object(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    answer = await submit(client, order_body(3, "Ask", 250, 7))
    [check] = fake_executioner.checks
    assert check.body == {
        "order": {
            "id": answer["id"],
            "user": user(3),
            "target_tracer": MARKET,
            "side": "Ask",
            "price": "250",
            "amount": "7",
            "amount_left": "7",
            "expiration": str(NOW + 3600),
            "created": str(NOW),
            "signed_data": SIG,
        }
    }


@pytest.mark.parametrize(("status", "message"), [(400, "bad signature"), (403, "banned")])
async def test_executioner_rejection_is_a_400_with_its_message(
    client: Client, market: str, fake_executioner: FakeExecutioner, status: int, message: str
) -> None:
    await submit(client, order_body(1, "Ask", 100, 5))
    fake_executioner.reject(message, status=status)
    assert await refused(client, "POST", ORDER_PATH, 400, json=order_body(2)) == message
    assert await depth(client) == [0, 1]
    assert fake_executioner.submits == []


async def test_executioner_rejection_without_a_message(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.reject(None, status=422)
    assert await refused(client, "POST", ORDER_PATH, 400, json=order_body()) == (
        "Rejected by the executioner"
    )


@pytest.mark.parametrize("failure", ["503", "500", "hang"])
async def test_executioner_trouble_is_a_503_and_nothing_is_placed(
    client: Client, market: str, fake_executioner: FakeExecutioner, failure: str
) -> None:
    await submit(client, order_body(1, "Ask", 100, 5))
    if failure == "hang":
        fake_executioner.hang(path="check")
    else:
        fake_executioner.fail(1, status=int(failure), path="check")
    started = time.monotonic()
    text = await refused(client, "POST", ORDER_PATH, 503, json=order_body(2, "Bid", 100, 5))
    # Without the client's timeout the hang would last until the release below.
    assert time.monotonic() - started < EXECUTIONER_TIMEOUT + HANG_BOUND
    assert text == "Executioner unavailable"
    assert await depth(client) == [0, 1]
    fake_executioner.release()
    await asyncio.sleep(0.05)
    assert fake_executioner.submits == []
    # Once it is back, the same order goes through.
    assert (await submit(client, order_body(2, "Bid", 100, 5)))["message"] == "FullMatch"


async def test_executioner_down_is_a_503(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: Clock
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        executioner_address=f"http://127.0.0.1:{port}",
        dumpfile=tmp_path / "d",
        journal_dir=tmp_path / "j",
    )
    client = await aiohttp_client(create_app(settings, clock=clock, executioner_timeout=0.3))
    assert (await client.post("/book", json={"market": MARKET})).status == 201
    assert await refused(client, "POST", ORDER_PATH, 503, json=order_body()) == (
        "Executioner unavailable"
    )
    assert await depth(client) == [0, 0]


async def test_pairs_reach_the_executioner_in_fill_order(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    makers = [
        (await submit(client, order_body(1, "Ask", 100, 5)))["id"],
        (await submit(client, order_body(2, "Ask", 100, 5)))["id"],
        (await submit(client, order_body(3, "Ask", 101, 10)))["id"],
    ]
    # Skipped: the taker's own order.
    await submit(client, order_body(4, "Ask", 100, 3))
    taker = await submit(client, order_body(4, "Bid", 101, 12))
    assert taker["message"] == "FullMatch"
    assert [(f["maker"], f["price"], f["amount"]) for f in taker["fills"]] == [
        (makers[0], "100", "5"),
        (makers[1], "100", "5"),
        (makers[2], "101", "2"),
    ]
    pairs = await fake_executioner.wait_delivered(3)
    assert [(p["maker"]["id"], p["taker"]["id"]) for p in pairs] == [
        (m, taker["id"]) for m in makers
    ]
    assert [(p["maker"]["amount_left"], p["taker"]["amount_left"]) for p in pairs] == [
        ("0", "7"),
        ("0", "2"),
        ("8", "0"),
    ]
    assert [p["maker"]["side"] for p in pairs] == ["Ask"] * 3
    assert all(list(p) == ["maker", "taker"] for p in pairs)
    assert all(p["taker"]["amount"] == "12" for p in pairs)
    keys = [r.headers["Idempotency-Key"] for r in fake_executioner.submits]
    assert len(set(keys)) == 3


async def test_the_answer_does_not_wait_for_delivery(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: Clock,
    fake_executioner: FakeExecutioner,
) -> None:
    # The executioner timeout outlasts the test: an answer that waited for the
    # hanging /submit would never come.
    app = create_app(settings, clock=clock, executioner_timeout=3600)
    client = await aiohttp_client(app)
    assert (await client.post("/book", json={"market": MARKET})).status == 201
    await submit(client, order_body(1, "Ask", 100, 5))
    fake_executioner.hang(path="submit")
    async with asyncio.timeout(HANG_BOUND):
        answer = await submit(client, order_body(2, "Bid", 100, 5))
    assert answer["message"] == "FullMatch"
    await fake_executioner.wait_for("submit", 1)
    assert [r.answered for r in fake_executioner.submits] == [False]
    # Delivered once the executioner answers.
    fake_executioner.release()
    [pair] = await fake_executioner.wait_delivered(1, timeout=HANG_BOUND)
    assert pair["taker"]["id"] == answer["id"]


async def test_identical_submissions_racing_place_one_order(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.delay(0.1, path="check")
    responses = await asyncio.gather(
        client.post(ORDER_PATH, json=order_body()),
        client.post(ORDER_PATH, json=order_body(side="bid", price=100)),
    )
    assert sorted(r.status for r in responses) == [200, 409]
    assert len(fake_executioner.checks) == 2
    assert await depth(client) == [1, 0]


async def test_one_log_event_per_order_outcome(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    with captured_logs() as events:
        maker = (await submit(client, order_body(1, "Ask", 100, 5)))["id"]
        taker = (await submit(client, order_body(2, "Bid", 100, 2)))["id"]
        await client.post(ORDER_PATH, json=order_body(1, "Ask", 100, 5))
        await client.delete(f"{ORDER_PATH}/{maker}")
    outcomes = [
        (e["event"], e.get("order_id"), e.get("user"), e.get("market"))
        for e in events
        if e["event"].startswith("order_")
    ]
    assert outcomes == [
        ("order_accepted", maker, user(1), MARKET),
        ("order_accepted", taker, user(2), MARKET),
        ("order_matched", None, None, MARKET),
        ("order_refused", maker, user(1), MARKET),
        ("order_cancelled", maker, user(1), MARKET),
    ]
    matched = next(e for e in events if e["event"] == "order_matched")
    assert (matched["maker"], matched["taker"], matched["amount"]) == (maker, taker, "2")
    assert all(e.get("request_id") for e in events if e["event"].startswith("order_"))
