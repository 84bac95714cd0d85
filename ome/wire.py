"""The JSON shapes of API.md: parsing what clients send, emitting what they receive.

Parsing accepts every encoding variant of API.md "Encodings" and turns it into
the engine's canonical values (addresses and ids `0x` + lowercase hex, exact
ints, `Side`); whatever cannot be accepted raises `InvalidRequest` with a
message that names the field and says why. Emitting builds plain dicts and
lists that orjson serialises as they are: key order is part of the contract
(book levels best first).

This runs for every order, so the validators are plain functions on the raw
JSON values, one call per field, with no regular expressions and no
intermediate copies.
"""

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.functional_validators import PlainValidator
from pydantic_core import PydanticCustomError, from_json

from ome.engine import MAX_UINT128, Book, Fill, Order, Side, Status
from ome.state import TradeRecord

OUT_OF_BOUNDS = "Integer out of bounds"
_MAX_TIME = 2**64 - 1
_HEX = frozenset("0123456789abcdef")
_SIDES = {"bid": Side.Bid, "ask": Side.Ask}


class InvalidRequest(ValueError):
    """A request that cannot be understood; its message is meant for the client (400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- field validators


def _hex(value: object, digits: int, what: str) -> str:
    """`0x` + lowercase hex of exactly `digits` digits, from a string with or without `0x`."""
    if not isinstance(value, str):
        raise PydanticCustomError("hex", f"must be a string of {what}")
    text = value.lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) != digits or not _HEX.issuperset(text):
        raise PydanticCustomError("hex", f"must be {what}")
    return "0x" + text


def _address(value: object) -> str:
    return _hex(value, 40, "an address: 40 hex digits, with or without 0x")


def _signature(value: object) -> str:
    return _hex(value, 130, "a signature: 0x and 130 hex digits")


def _integer(value: object, maximum: int, minimum: int) -> int:
    # bool is an int subclass; JSON true is not a number.
    if type(value) is int:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        digits = value.lstrip("0")
        # Checked before int() so that a huge digit string costs nothing.
        if len(digits) > len(str(maximum)):
            raise PydanticCustomError("out_of_bounds", OUT_OF_BOUNDS)
        number = int(digits or "0")
    else:
        raise PydanticCustomError("integer", "must be a JSON integer or a string of decimal digits")
    if number > maximum:
        raise PydanticCustomError("out_of_bounds", OUT_OF_BOUNDS)
    if number < minimum:
        raise PydanticCustomError("too_small", f"must be at least {minimum}")
    return number


def _quantity(value: object) -> int:
    return _integer(value, MAX_UINT128, 1)


def _timestamp(value: object) -> int:
    return _integer(value, _MAX_TIME, 0)


def _side(value: object) -> Side:
    side = _SIDES.get(value.lower()) if isinstance(value, str) else None
    if side is None:
        raise PydanticCustomError("side", "must be Bid or Ask")
    return side


Address = Annotated[str, PlainValidator(_address)]
Quantity = Annotated[int, PlainValidator(_quantity)]
Timestamp = Annotated[int, PlainValidator(_timestamp)]
SideField = Annotated[Side, PlainValidator(_side)]
Signature = Annotated[str, PlainValidator(_signature)]


class OrderRequest(BaseModel):
    """The body of `POST /book/{market}/order`. `id` and `amount_left` are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user: Address
    target_tracer: Address
    side: SideField
    price: Quantity
    amount: Quantity
    expiration: Timestamp
    created: Timestamp
    signed_data: Signature = Field(validation_alias=AliasChoices("signed_data", "signedData"))


class MarketRequest(BaseModel):
    """The body of `POST /book`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    market: Address


# ---------------------------------------------------------------- parsers


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object."""
    # Not orjson: it turns integers beyond 64 bits into floats, and prices go to 2^128-1.
    try:
        data = from_json(body)
    except ValueError:
        raise InvalidRequest("Body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Body must be a JSON object")
    return data


def parse_order(data: dict[str, Any]) -> Order:
    """The order a client submitted, with its id computed."""
    try:
        req = OrderRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc, "Invalid order")) from None
    return Order.create(
        user=req.user,
        target_tracer=req.target_tracer,
        side=req.side,
        price=req.price,
        amount=req.amount,
        expiration=req.expiration,
        created=req.created,
        signed_data=req.signed_data,
    )


def parse_market_body(data: dict[str, Any]) -> str:
    """The canonical market address of a `POST /book` body."""
    try:
        return MarketRequest.model_validate(data).market
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc, "Invalid market")) from None


def parse_address(segment: str, name: str) -> str:
    """A path segment holding an address (`{market}`, `{user}`)."""
    try:
        return _address(segment)
    except PydanticCustomError:
        raise InvalidRequest(
            f"Invalid {name} in path: 40 hex digits expected, with or without 0x"
        ) from None


def parse_order_id(segment: str) -> str:
    """The `{order_id}` path segment."""
    try:
        return _hex(segment, 64, "")
    except PydanticCustomError:
        raise InvalidRequest(
            "Invalid order_id in path: 64 hex digits expected, with or without 0x"
        ) from None


def parse_count(query: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """A query parameter counting things, 1 to `maximum`; `default` when it is absent."""
    value = query.get(name)
    if value is None:
        return default
    digits = value.strip()
    number = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 7 else 0
    if not 1 <= number <= maximum:
        raise InvalidRequest(f"{name} must be a whole number from 1 to {maximum}")
    return number


def _describe(exc: ValidationError, what: str) -> str:
    """One line naming each bad field and why; exactly OUT_OF_BOUNDS when that is the problem."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "out_of_bounds" for e in errors):
        return OUT_OF_BOUNDS
    parts = []
    for e in errors:
        field = ".".join(str(part) for part in e["loc"]) or "body"
        if e["type"] == "missing":
            parts.append(f"{field} is missing")
        else:
            parts.append(f"{field} {e['msg']}")
    return f"{what}: " + "; ".join(parts)


# ---------------------------------------------------------------- emitters


def message(status: int, text: str) -> dict[str, Any]:
    """The status object of every error and of every answer that is not a resource."""
    return {"status": status, "message": text}


def fill_json(fill: Fill) -> dict[str, str]:
    maker, taker, price, amount, _, _ = fill
    return {"maker": maker.id, "taker": taker.id, "price": str(price), "amount": str(amount)}


def submit_json(order: Order, status: Status, fills: list[Fill]) -> dict[str, Any]:
    return {
        "status": 200,
        "message": status.value,
        "id": order.id,
        "fills": [fill_json(fill) for fill in fills],
    }


def orders_json(orders: Iterable[Order]) -> list[dict[str, Any]]:
    return [order.to_dict() for order in orders]


def book_json(book: Book) -> dict[str, Any]:
    """The book object; both sides best first, orders in time priority within a level."""
    bids, asks = book.depth
    return {
        "market": book.market,
        "bids": {str(lv.price): orders_json(lv.orders()) for lv in book.levels(Side.Bid)},
        "asks": {str(lv.price): orders_json(lv.orders()) for lv in book.levels(Side.Ask)},
        "ltp": str(book.ltp),
        "depth": [bids, asks],
        "crossed": book.crossed,
        "spread": str(book.spread),
    }


def markets_json(markets: Iterable[str]) -> dict[str, Any]:
    return {"markets": list(markets)}


def trade_json(trade: TradeRecord) -> dict[str, Any]:
    """The trade object: `seq` is the market's sequence number of the command that made it."""
    seq, time, price, amount, maker, taker, taker_side = trade
    return {
        "seq": seq,
        "time": str(time),
        "price": str(price),
        "amount": str(amount),
        "maker": maker,
        "taker": taker,
        "taker_side": taker_side.name,
    }


def parse_trade(raw: Any) -> TradeRecord:
    """A trade object of `trade_json` read back (from a dumpfile); ValueError if it is not one."""
    try:
        side = _SIDES[raw["taker_side"].lower()]
        seq = raw["seq"]
        if type(seq) is not int or seq < 0:
            raise ValueError
        return TradeRecord(
            seq,
            _timestamp(raw["time"]),
            _quantity(raw["price"]),
            _quantity(raw["amount"]),
            _hex(raw["maker"], 64, "an order id"),
            _hex(raw["taker"], 64, "an order id"),
            side,
        )
    except (KeyError, TypeError, AttributeError, ValueError, PydanticCustomError):
        raise ValueError(f"not a trade: {raw!r:.80}") from None
