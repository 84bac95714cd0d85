"""Every row of docs/API.md's route table: success bodies, exact object fields, path encodings."""

from collections.abc import Callable

import pytest

from tests.api.conftest import Client, refused, submit
from tests.builders import MARKET, NOW, OTHER_MARKET, SIG, order_body, user

ORDER_FIELDS = [
    "id",
    "user",
    "target_tracer",
    "side",
    "price",
    "amount",
    "amount_left",
    "expiration",
    "created",
    "signed_data",
]
Spell = Callable[[str], str]
# The spellings a market or user takes in a path: with and without 0x, any case.
SPELLINGS: list[Spell] = [
    lambda a: a,
    lambda a: a[2:],
    lambda a: a[2:].upper(),
    lambda a: "0x" + a[2:].upper(),
    lambda a: "0X" + a[2:],
]


async def test_health(client: Client) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert await response.json() == {"status": 200, "message": "Healthy"}


async def test_markets_are_listed_canonical_in_creation_order(client: Client) -> None:
    assert await (await client.get("/book")).json() == {"markets": []}
    for market in (MARKET[2:].upper(), OTHER_MARKET):
        response = await client.post("/book", json={"market": market})
        assert response.status == 201
        assert await response.json() == {"status": 201, "message": "Market created"}
    assert await (await client.get("/book")).json() == {"markets": [MARKET, OTHER_MARKET]}


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_creating_a_market_twice_is_a_conflict(
    client: Client, market: str, spell: Spell
) -> None:
    text = await refused(client, "POST", "/book", 409, json={"market": spell(market)})
    assert text == "Market already exists"


@pytest.mark.parametrize(
    "body", [{}, {"market": "0x12"}, {"market": 5}, {"markets": MARKET}, {"market": None}]
)
async def test_creating_a_market_with_a_bad_body(client: Client, body: object) -> None:
    text = await refused(client, "POST", "/book", 400, json=body)
    assert "market" in text
    assert await (await client.get("/book")).json() == {"markets": []}


async def test_empty_book(client: Client, market: str) -> None:
    response = await client.get(f"/book/{market}")
    assert response.status == 200
    assert await response.json() == {
        "market": MARKET,
        "bids": {},
        "asks": {},
        "ltp": "0",
        "depth": [0, 0],
        "crossed": False,
        "spread": "0",
    }


async def test_book_object(client: Client, market: str) -> None:
    for who, side, price in [(1, "Bid", 94), (2, "Bid", 95), (1, "Bid", 95), (3, "Ask", 97)]:
        await submit(client, order_body(who, side, price, 5))
    await submit(client, order_body(4, "Ask", 96, 10))
    # Trades 5 at 96 with the resting ask: ltp 96, the ask keeps 5.
    await submit(client, order_body(5, "Bid", 96, 5))
    response = await client.get(f"/book/{market}")
    data = await response.json()
    assert list(data) == ["market", "bids", "asks", "ltp", "depth", "crossed", "spread"]
    assert data["market"] == MARKET
    assert list(data["bids"]) == ["95", "94"]
    assert list(data["asks"]) == ["96", "97"]
    assert [o["user"] for o in data["bids"]["95"]] == [user(2), user(1)]
    assert [o["amount_left"] for o in data["asks"]["96"]] == ["5"]
    assert all(list(o) == ORDER_FIELDS for lv in data["bids"].values() for o in lv)
    assert (data["ltp"], data["depth"], data["crossed"], data["spread"]) == (
        "96",
        [3, 2],
        False,
        "1",
    )


async def test_a_crossed_book_has_a_negative_spread(client: Client, market: str) -> None:
    await submit(client, order_body(1, "Ask", 100, 5))
    await submit(client, order_body(1, "Bid", 103, 5))
    data = await (await client.get(f"/book/{market}")).json()
    assert (data["crossed"], data["spread"], data["depth"]) == (True, "-3", [1, 1])


async def test_submitted_order_answer_and_order_object(client: Client, market: str) -> None:
    body = order_body(7, "Ask", 300, 120)
    answer = await submit(client, body)
    assert list(answer) == ["status", "message", "id", "fills"]
    assert answer["status"] == 200 and answer["message"] == "Add" and answer["fills"] == []
    response = await client.get(f"/book/{market}/order/{answer['id']}")
    assert response.status == 200
    assert await response.json() == {
        "id": answer["id"],
        "user": user(7),
        "target_tracer": MARKET,
        "side": "Ask",
        "price": "300",
        "amount": "120",
        "amount_left": "120",
        "expiration": str(NOW + 3600),
        "created": str(NOW),
        "signed_data": SIG,
    }


async def test_partial_and_full_matches_and_fill_objects(client: Client, market: str) -> None:
    maker = await submit(client, order_body(1, "Ask", 100, 10))
    taker = await submit(client, order_body(2, "Bid", 101, 4))
    assert taker["message"] == "FullMatch"
    assert taker["fills"] == [
        {"maker": maker["id"], "taker": taker["id"], "price": "100", "amount": "4"}
    ]
    taker = await submit(client, order_body(3, "Bid", 100, 8))
    assert taker["message"] == "PartialMatch"
    assert taker["fills"] == [
        {"maker": maker["id"], "taker": taker["id"], "price": "100", "amount": "6"}
    ]
    rest = await (await client.get(f"/book/{market}/order/{taker['id']}")).json()
    assert (rest["amount"], rest["amount_left"]) == ("8", "2")
    await refused(client, "GET", f"/book/{market}/order/{maker['id']}", 404)


async def test_all_resting_orders_bids_best_first_then_asks(client: Client, market: str) -> None:
    ids = {}
    for who, side, price in [(1, "Ask", 110), (2, "Bid", 90), (3, "Ask", 105), (4, "Bid", 95),
                             (5, "Bid", 95)]:  # fmt: skip
        ids[who] = (await submit(client, order_body(who, side, price, 1)))["id"]
    response = await client.get(f"/book/{market}/order")
    assert response.status == 200
    orders = await response.json()
    assert [o["id"] for o in orders] == [ids[4], ids[5], ids[2], ids[3], ids[1]]
    assert all(list(o) == ORDER_FIELDS for o in orders)


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_order_by_id_any_spelling(client: Client, market: str, spell: Spell) -> None:
    oid = (await submit(client, order_body()))["id"]
    response = await client.get(f"/book/{spell(market)}/order/{spell(oid)}")
    assert response.status == 200
    assert (await response.json())["id"] == oid


async def test_missing_order(client: Client, market: str) -> None:
    text = await refused(client, "GET", f"/book/{market}/order/{'0x' + '12' * 32}", 404)
    assert text == "Order does not exist in this market"


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_cancel(client: Client, market: str, spell: Spell) -> None:
    oid = (await submit(client, order_body()))["id"]
    other = (await submit(client, order_body(2)))["id"]
    response = await client.delete(f"/book/{spell(market)}/order/{spell(oid)}")
    assert response.status == 200
    assert await response.json() == {"status": 200, "message": "Order cancelled"}
    orders = await (await client.get(f"/book/{market}/order")).json()
    assert [o["id"] for o in orders] == [other]
    text = await refused(client, "DELETE", f"/book/{market}/order/{oid}", 404)
    assert text == "Order does not exist in this market"


@pytest.mark.parametrize("spell", SPELLINGS)
async def test_orders_of_a_user(client: Client, market: str, spell: Spell) -> None:
    mine = [
        (await submit(client, order_body(1, "Bid", 90, 1)))["id"],
        (await submit(client, order_body(1, "Ask", 120, 1)))["id"],
    ]
    await submit(client, order_body(2, "Bid", 91, 1))
    response = await client.get(f"/book/{spell(market)}/{spell(user(1))}")
    assert response.status == 200
    orders = await response.json()
    assert [o["id"] for o in orders] == mine
    assert all(list(o) == ORDER_FIELDS and o["user"] == user(1) for o in orders)
    assert await (await client.get(f"/book/{market}/{user(9)}")).json() == []


async def test_the_original_frontends_spelling_end_to_end(client: Client) -> None:
    """The frontend strips 0x and lowercases; market makers keep 0x and mixed case."""
    bare = MARKET[2:]
    assert (await client.post("/book", json={"market": bare})).status == 201
    body = order_body(user=user(1)[2:], target_tracer=bare, signedData=SIG, signed_data=...)
    oid = (await submit(client, body, market=bare))["id"]
    orders = await (await client.get(f"/book/{bare}/{user(1)[2:]}")).json()
    assert [o["id"] for o in orders] == [oid]
    assert (await client.delete(f"/book/{bare}/order/{oid[2:]}")).status == 200
