"""The JSON shapes of docs/API.md: parsing what clients send, emitting what they receive.

Parsing accepts every encoding variant of docs/API.md "Field encodings" and turns it into
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

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
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


def _order_id(value: object) -> str:
    return _hex(value, 64, "an order id: 64 hex digits, with or without 0x")


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
    # ASCII only: str.lower() maps the Kelvin sign to "k", and "asK" is not a side.
    side = _SIDES.get(value.lower()) if isinstance(value, str) and value.isascii() else None
    if side is None:
        raise PydanticCustomError("side", "must be Bid or Ask")
    return side


# ---------------------------------------------------------------- what they accept, as JSON Schema
# Each schema states exactly what its validator above accepts (a test holds them to it), so
# that the OpenAPI document describes the parser rather than an ideal of it.


def decimal_pattern(maximum: int, *, minimum: int) -> str:
    """A regular expression matching the decimal strings of minimum..maximum (minimum 0 or 1).

    Leading zeros are accepted, as the parser strips them. The bound is spelled out digit by
    digit (below the maximum's first digit, or equal to it and below its second, ...).
    """
    digits = str(maximum)
    alternatives = []
    if len(digits) > 1:
        alternatives.append(f"[1-9][0-9]{{0,{len(digits) - 2}}}")
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            rest = len(digits) - i - 1
            high = int(digit) - 1
            below = str(low) if low == high else f"[{low}-{high}]"
            alternatives.append(digits[:i] + below + (f"[0-9]{{{rest}}}" if rest else ""))
    alternatives.append(digits)
    positive = "0*(?:" + "|".join(alternatives) + ")"
    return f"^{positive}$" if minimum else f"^(?:0+|{positive})$"


def _hex_schema(digits: int, what: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": f"^(?:0[xX])?[0-9a-fA-F]{{{digits}}}$",
        "description": f"{what}: {digits} hex digits, with or without 0x, any case",
    }


def _integer_schema(maximum: int, minimum: int, what: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": maximum},
            {"type": "string", "pattern": decimal_pattern(maximum, minimum=minimum)},
        ],
        "description": f"{what}: a JSON integer (written without a fraction or exponent) or "
        f"a string of decimal digits, {minimum} to {maximum}",
    }


ADDRESS_SCHEMA = _hex_schema(40, "An Ethereum address")
ORDER_ID_SCHEMA = _hex_schema(64, "An order id")
SIGNATURE_SCHEMA = _hex_schema(130, "A 65-byte signature")
QUANTITY_SCHEMA = _integer_schema(MAX_UINT128, 1, "A price or amount")
TIMESTAMP_SCHEMA = _integer_schema(_MAX_TIME, 0, "Unix seconds")
SIDE_SCHEMA = {
    "type": "string",
    "pattern": "^(?:[bB][iI][dD]|[aA][sS][kK])$",
    "description": "Bid or Ask, in any case",
}

Address = Annotated[str, PlainValidator(_address), WithJsonSchema(ADDRESS_SCHEMA)]
Quantity = Annotated[int, PlainValidator(_quantity), WithJsonSchema(QUANTITY_SCHEMA)]
Timestamp = Annotated[int, PlainValidator(_timestamp), WithJsonSchema(TIMESTAMP_SCHEMA)]
SideField = Annotated[Side, PlainValidator(_side), WithJsonSchema(SIDE_SCHEMA)]
Signature = Annotated[str, PlainValidator(_signature), WithJsonSchema(SIGNATURE_SCHEMA)]
OrderId = Annotated[str, PlainValidator(_order_id), WithJsonSchema(ORDER_ID_SCHEMA)]


def _either_spelling(schema: dict[str, Any]) -> None:
    """`signed_data` may come as `signedData`, which is read only when `signed_data` is absent."""
    signature = schema["properties"]["signed_data"]
    schema["required"].remove("signed_data")
    schema["anyOf"] = [
        {"required": ["signed_data"]},
        {"required": ["signedData"], "properties": {"signedData": signature}},
    ]


class OrderRequest(BaseModel):
    """The body of `POST /book/{market}/order`. `id` and `amount_left` are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_either_spelling)

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


def _camel_or_snake(schema: dict[str, Any]) -> None:
    """`marketId` / `orderId` may come as `market_id` / `order_id`, read only without the first."""
    properties = schema["properties"]
    for camel, snake in (("marketId", "market_id"), ("orderId", "order_id")):
        either = properties.pop(camel)
        schema.setdefault("allOf", []).append(
            {
                "anyOf": [
                    {"required": [camel], "properties": {camel: either}},
                    {"not": {"required": [camel]}, "properties": {snake: either}},
                ]
            }
        )


class CancelRequest(BaseModel):
    """The body of `PATCH` / `DELETE /book/{market}/order/{order_id}`, the frontend's shape.

    The signature is taken as the client wrote it: it is checked only once the
    order is found, so that an unknown order is 404 whatever the signature.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_camel_or_snake)

    signature: str | None = None
    market_id: Address | None = Field(None, validation_alias=AliasChoices("marketId", "market_id"))
    order_id: OrderId | None = Field(None, validation_alias=AliasChoices("orderId", "order_id"))


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


def parse_cancel(body: bytes, market: str, order_id: str) -> str | None:
    """The signature of a cancel of `order_id` in `market` (both canonical); None without one.

    An empty body is a cancel without a signature. `marketId` and `orderId`,
    when given, must name the path's market and order.
    """
    if not body.strip():
        return None
    try:
        req = CancelRequest.model_validate(parse_body(body))
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc, "Invalid cancel")) from None
    if req.market_id is not None and req.market_id != market:
        raise InvalidRequest(f"marketId {req.market_id} is not the market in the path {market}")
    if req.order_id is not None and req.order_id != order_id:
        raise InvalidRequest(f"orderId {req.order_id} is not the order in the path {order_id}")
    return req.signature


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
