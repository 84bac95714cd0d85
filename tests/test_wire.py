"""Parsing every encoding variant of docs/API.md, refusing the rest, and the emitted shapes."""

import json
from typing import Any

import pytest

from ome.engine import MAX_UINT128, Book, Side
from ome.wire import (
    OUT_OF_BOUNDS,
    InvalidRequest,
    book_json,
    parse_address,
    parse_body,
    parse_market_body,
    parse_order,
    parse_order_id,
)
from tests.builders import MARKET, make_order

USER = "0xD62bf94a99c87dc7B3924A880020B6B316F536E6"
SIG = "0x" + "Ab" * 65
ID = "0x3afe089d80dd695924bd3b16aba6cbecbaffaec94b9249c293de3577179e4c8d"


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user": USER,
        "target_tracer": MARKET,
        "side": "Ask",
        "price": "4380090000",
        "amount": "4000000000",
        "expiration": 1895997399,
        "created": 1495987399,
        "signed_data": SIG,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequest) as info:
        parse_order(data)
    return info.value.message


def test_a_valid_order_is_canonical_and_has_its_id() -> None:
    order = parse_order(body())
    assert order.to_dict() == {
        "id": ID,
        "user": USER.lower(),
        "target_tracer": MARKET,
        "side": "Ask",
        "price": "4380090000",
        "amount": "4000000000",
        "amount_left": "4000000000",
        "expiration": "1895997399",
        "created": "1495987399",
        "signed_data": SIG.lower(),
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"user": USER[2:]},
        {"user": USER.upper().replace("0X", "0x")},
        {"user": USER[2:].lower(), "target_tracer": MARKET[2:].upper()},
        {"target_tracer": "0X" + MARKET[2:]},
        {"price": 4380090000, "amount": 4000000000},
        {"expiration": "1895997399", "created": "1495987399"},
        {"price": "0004380090000"},
        {"signed_data": ..., "signedData": SIG},
        {"signed_data": SIG.upper().replace("0X", "0x")},
        {"id": "0x" + "00" * 32, "amount_left": "1"},
        {"id": "garbage", "amount_left": -5, "unknown": [1, 2]},
    ],
)
def test_every_encoding_variant_gives_the_same_order(overrides: dict[str, Any]) -> None:
    assert parse_order(body(**overrides)).to_dict() == parse_order(body()).to_dict()


@pytest.mark.parametrize(
    ("spelling", "side"),
    [(s, Side.Bid) for s in ("Bid", "bid", "BID")] + [(s, Side.Ask) for s in ("Ask", "ask", "ASK")],
)
def test_side_spellings(spelling: str, side: Side) -> None:
    assert parse_order(body(side=spelling)).side is side


@pytest.mark.parametrize("field", ["price", "amount"])
@pytest.mark.parametrize("value", [MAX_UINT128, str(MAX_UINT128)])
def test_the_largest_uint128_is_accepted(field: str, value: object) -> None:
    assert getattr(parse_order(body(**{field: value})), field) == MAX_UINT128


@pytest.mark.parametrize("field", ["price", "amount"])
@pytest.mark.parametrize(
    "value", [MAX_UINT128 + 1, str(MAX_UINT128 + 1), 2**256, "9" * 5000, "0" * 100 + "9" * 40]
)
def test_above_uint128_is_out_of_bounds(field: str, value: object) -> None:
    assert refusal(body(**{field: value})) == OUT_OF_BOUNDS


def test_big_json_integers_survive_parsing_exactly() -> None:
    raw = json.dumps(body(price=MAX_UINT128, amount=MAX_UINT128 + 1)).encode()
    data = parse_body(raw)
    assert data["price"] == MAX_UINT128
    assert refusal(data) == OUT_OF_BOUNDS
    assert parse_order(parse_body(json.dumps(body(price=MAX_UINT128)).encode())).price == (
        MAX_UINT128
    )


@pytest.mark.parametrize(
    ("overrides", "field", "why"),
    [
        ({"price": 0}, "price", "at least 1"),
        ({"amount": "0"}, "amount", "at least 1"),
        ({"price": -1}, "price", "at least 1"),
        ({"price": "-1"}, "price", "integer"),
        ({"price": True}, "price", "integer"),
        ({"amount": 1.0}, "amount", "integer"),
        ({"price": "1.5"}, "price", "integer"),
        ({"price": "1e3"}, "price", "integer"),
        ({"price": ""}, "price", "integer"),
        ({"price": "٣"}, "price", "integer"),
        ({"price": None}, "price", "integer"),
        ({"expiration": False}, "expiration", "integer"),
        ({"created": "yesterday"}, "created", "integer"),
        ({"expiration": -1}, "expiration", "at least 0"),
        ({"side": "Buy"}, "side", "Bid or Ask"),
        ({"side": 0}, "side", "Bid or Ask"),
        ({"user": "0x1234"}, "user", "40 hex digits"),
        ({"user": "0x" + "g" * 40}, "user", "40 hex digits"),
        ({"user": 12}, "user", "string"),
        ({"target_tracer": MARKET + "00"}, "target_tracer", "40 hex digits"),
        ({"signed_data": "0x1234"}, "signed_data", "130 hex digits"),
        ({"signed_data": ...}, "signed_data", "missing"),
        ({"user": ...}, "user", "missing"),
        ({"price": ...}, "price", "missing"),
        ({"side": ...}, "side", "missing"),
        ({"expiration": ...}, "expiration", "missing"),
    ],
)
def test_a_bad_field_is_named_with_the_reason(
    overrides: dict[str, Any], field: str, why: str
) -> None:
    text = refusal(body(**overrides))
    assert field in text
    assert why in text


def test_every_bad_field_is_named() -> None:
    text = refusal(body(price="x", side="Up"))
    assert "price" in text and "side" in text


@pytest.mark.parametrize("raw", [b"", b"{", b"nonsense", b"{'a': 1}", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_body(raw)


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"1", b"null", b"true", b"[{}]"])
def test_a_body_that_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_body(raw)


def test_market_body() -> None:
    assert parse_market_body({"market": MARKET[2:].upper()}) == MARKET
    for bad in ({}, {"market": "0x12"}, {"market": None}):
        with pytest.raises(InvalidRequest, match="market"):
            parse_market_body(bad)


@pytest.mark.parametrize("segment", [MARKET, MARKET[2:], MARKET.upper(), "0x" + MARKET[2:].upper()])
def test_address_segments(segment: str) -> None:
    assert parse_address(segment, "market") == MARKET


@pytest.mark.parametrize("segment", ["", "0x", "order", MARKET + "0", MARKET[:-1], "x" * 40])
def test_malformed_address_segments(segment: str) -> None:
    with pytest.raises(InvalidRequest, match="market"):
        parse_address(segment, "market")


@pytest.mark.parametrize("segment", [ID, ID[2:], ID.upper(), ID[2:].upper()])
def test_order_id_segments(segment: str) -> None:
    assert parse_order_id(segment) == ID


@pytest.mark.parametrize("segment", ["", ID + "0", ID[:-1], MARKET, "0x" + "z" * 64])
def test_malformed_order_id_segments(segment: str) -> None:
    with pytest.raises(InvalidRequest, match="order_id"):
        parse_order_id(segment)


def test_book_object_levels_best_first_and_signed_spread() -> None:
    book = Book(MARKET)
    for i, (user, side, price) in enumerate(
        [
            ("1", Side.Bid, 94),
            ("1", Side.Bid, 95),
            ("2", Side.Bid, 95),
            ("3", Side.Ask, 97),
            ("3", Side.Ask, 96),
        ]
    ):
        book.submit(make_order(side, price, 5, trader=int(user), created=i), 1)
    data = book_json(book)
    assert list(data) == ["market", "bids", "asks", "ltp", "depth", "crossed", "spread"]
    assert list(data["bids"]) == ["95", "94"]
    assert list(data["asks"]) == ["96", "97"]
    assert [o["user"][-1] for o in data["bids"]["95"]] == ["1", "2"]
    assert (data["ltp"], data["depth"], data["crossed"], data["spread"]) == (
        "0",
        [3, 2],
        False,
        "1",
    )
    # A user's own orders are skipped, not matched: the book crosses.
    book.submit(make_order(Side.Bid, 98, 5, trader=3, created=9), 1)
    data = book_json(book)
    assert (data["crossed"], data["spread"], list(data["bids"])) == (True, "-2", ["98", "95", "94"])
