"""The OpenAPI 3.1 document of the REST API, served at `GET /openapi.json`.

`OPERATIONS` is the one table of what the document says about each route,
keyed by method and path template exactly as `ome.api.routes.add_routes`
registers them: a route added there needs its row here, and a test compares
this table with the routes the app really serves, so that neither can drift
from the other. Two methods are not rows: `OPTIONS` (the CORS preflight that
`add_routes` puts on every resource) is documented on every path by
`document()`, and `HEAD`, which aiohttp answers beside every `GET`, is left
implicit as OpenAPI tools expect.

Request bodies and path parameters take their schemas from `ome.wire` (the
pydantic models and the schemas stated beside their validators), so the
document describes what the parser accepts. Response shapes are stated here,
as `ome.wire` and `Order.to_dict` emit them; the schemathesis test holds the
live answers to them. Every error answer is the JSON error object with its
`status` equal to the HTTP status.
"""

import functools
import json
import re
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel

from ome.wire import ADDRESS_SCHEMA, ORDER_ID_SCHEMA, CancelRequest, MarketRequest, OrderRequest

JSON = dict[str, Any]
_REF = "#/components/schemas/{model}"
_MATCH_RESULTS = ["Add", "PartialMatch", "FullMatch"]
_BODY_TOO_LARGE = "The body is over 1 MiB"
# Before the state is restored, only these answer as they do later (ome.api.health).
_SERVED_WHILE_STARTING = frozenset({"health", "ready"})
_STARTING = "Starting: the state is being restored (the port is bound before the restore)"
_JOURNAL = "Journal unavailable: the change could not be made durable, and was not acknowledged"


def _ref(name: str) -> JSON:
    return {"$ref": _REF.format(model=name)}


def status_object(status: int, message: str | None = None) -> JSON:
    """The `{"status", "message"}` object with its status fixed (and its message, if given)."""
    properties: JSON = {"status": {"const": status}}
    if message is not None:
        properties["message"] = {"const": message}
    return {"allOf": [_ref("Status"), {"properties": properties}]}


@dataclass(frozen=True, slots=True)
class Operation:
    """One route: its success answer, the errors it can give and, for a POST, its body."""

    operation_id: str
    summary: str
    ok_status: int
    ok_description: str
    ok_schema: JSON
    errors: dict[int, str] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    body_example: JSON | None = None
    # False: the body may be left out (a cancel without a signature).
    body_required: bool = True
    description: str = ""
    ok_media: str = "application/json"
    # OpenAPI links from the success answer to later operations (stateful testing follows them).
    links: dict[str, JSON] = field(default_factory=dict)
    headers: tuple[JSON, ...] = ()
    # The WWW-Authenticate header of its 401, described.
    challenge: str = ""


# The README's example market and orders, so that a reader (and schemathesis' examples
# phase) can follow one order from the market's creation to its cancel.
_MARKET = "0x61f5a3d36c10d7ea1d797e70f7486eb7ad177481"
_ORDER = {
    "user": "0x17c5185167401ed00cf5f5b2fc97d9bbfdb7d025",
    "target_tracer": _MARKET,
    "side": "Ask",
    "price": "105",
    "amount": "10",
    "expiration": "4102444800",
    "created": "1700000000",
    # Made with the README's throwaway key 0x42…42 on --dev's domain.
    "signed_data": "0x097a44f9c4fa1de06421b3c77e7599c4663f11647e940f3fbefd83833a2592ef"
    "564f55d24c31fece230d731576ae6fb0ee5a4026c4bc928d9c118ca8b54cabff1c",
}
_ORDER_ID = "0x1f76d728249be583df3cdb29bc9aa2fb731c12566829f95c3a7b2977bd3e946c"
_CANCEL = {
    "marketId": _MARKET,
    "orderId": _ORDER_ID,
    "signature": "0x51e3a8559c9df9df2d0a7e5e70c31ed0057fa41396e3cfed9ee382409d68e3f4"
    "2c54d9697daf7c53f464ec4b5df00e38a4354a3454537b4fb8ec7b196c154f111c",
}
_CANCEL_DESCRIPTION = (
    "The body's `signature` is the owner's EIP-191 personal_sign of the text `cancel:` followed "
    "by the order id as 0x and 64 lowercase hex; `marketId` and `orderId`, when present, must "
    "name the path's market and order. Checked in this order: path and body (400), market and "
    "order (404, whatever the signature), signature present (401), well-formed (400), the "
    "owner's (403)."
)
_CANCEL_ERRORS = {
    400: "The market or order id in the path is malformed; the body is not a JSON object, or its "
    "marketId/orderId name another market or order; the signature is malformed "
    "(`invalid_signature`)",
    401: "Signature required",
    403: "Not the order's owner: the signature is another key's",
    404: "Market does not exist; Order does not exist in this market",
    503: _JOURNAL,
}

# Path parameters by name: their schemas are what `ome.wire` parses, and an example.
PATH_PARAMETERS: dict[str, tuple[JSON, str, str]] = {
    "market": (ADDRESS_SCHEMA, "The market: the address of its Tracer contract", _MARKET),
    "user": (ADDRESS_SCHEMA, "The trader's address", _ORDER["user"]),
    "order_id": (ORDER_ID_SCHEMA, "The order's id", _ORDER_ID),
}

_MARKET_LINK = {"market": "$request.path.market"}


def _cancel(operation_id: str, method: str) -> Operation:
    unsigned = (
        " A DELETE without a body is accepted only when the OME runs with --allow_unsigned_cancel."
        if method == "DELETE"
        else ""
    )
    return Operation(
        operation_id,
        "Cancel a resting order (signed by its owner)",
        200,
        "What was left of the order has left the book",
        status_object(200, "Order cancelled"),
        _CANCEL_ERRORS,
        body=CancelRequest,
        body_example=_CANCEL,
        body_required=False,
        description=_CANCEL_DESCRIPTION + unsigned,
        challenge='`EIP-191 realm="ome", message="cancel:<order id>"`: the text to personal_sign',
    )


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/"): Operation(
        "health",
        "Liveness",
        200,
        "The process is serving",
        status_object(200, "Healthy"),
    ),
    ("GET", "/ready"): Operation(
        "ready",
        "Readiness",
        200,
        "The state is restored and the journal writable: send traffic. The executioner's "
        "reachability is reported, but does not make the process unready",
        _ref("Readiness"),
        {
            503: "Starting (restore or journal replay running), draining for shutdown, or the "
            "journal cannot be written; the body is the same object as for 200",
        },
    ),
    ("GET", "/metrics"): Operation(
        "metrics",
        "Prometheus metrics",
        200,
        "The Prometheus text exposition format",
        {"type": "string"},
        {404: "Metrics are turned off (--metrics false)"},
        ok_media="text/plain",
    ),
    ("GET", "/openapi.json"): Operation(
        "openapi",
        "This document",
        200,
        "The OpenAPI 3.1 document of this API",
        {"type": "object", "required": ["openapi", "info", "paths"]},
    ),
    ("GET", "/book"): Operation(
        "list_markets",
        "List the markets",
        200,
        "Every market, in creation order",
        _ref("Markets"),
    ),
    ("POST", "/book"): Operation(
        "create_market",
        "Create a market",
        201,
        "The market was created with an empty book",
        status_object(201, "Market created"),
        {
            400: "The body is not a JSON object with a market address",
            401: "The OME requires an admin token (--admin_token) and the Authorization "
            "header has none",
            403: "The Authorization header's token is not the admin token",
            409: "Market already exists",
            429: "Market limit reached: the OME holds as many markets as it allows",
            503: _JOURNAL,
        },
        body=MarketRequest,
        body_example={"market": _MARKET},
        headers=(
            {
                "name": "Authorization",
                "in": "header",
                "required": False,
                "description": "`Bearer <token>`, needed only when the OME was started with "
                "--admin_token",
                "schema": {"type": "string"},
            },
        ),
        challenge='`Bearer realm="ome"`',
        links={
            "GetBook": {
                "operationId": "get_book",
                "parameters": {"market": "$request.body#/market"},
            },
            "ListOrders": {
                "operationId": "list_orders",
                "parameters": {"market": "$request.body#/market"},
            },
            "SubmitOrder": {
                "operationId": "submit_order",
                "parameters": {"market": "$request.body#/market"},
                "requestBody": {"target_tracer": "$request.body#/market"},
            },
        },
    ),
    ("GET", "/book/{market}"): Operation(
        "get_book",
        "Read a market's book",
        200,
        "The book: both sides best first, orders in time priority within a level",
        _ref("Book"),
        {400: "The market in the path is not an address", 404: "Market does not exist"},
    ),
    ("POST", "/book/{market}/order"): Operation(
        "submit_order",
        "Submit a signed order",
        200,
        "The order was accepted: it rests whole (Add), in part (PartialMatch) or not at all "
        "(FullMatch); `fills` in matching order",
        _ref("SubmitResult"),
        {
            400: "A field is missing or malformed (the message names it); `Integer out of bounds`;"
            " `target_tracer` is not the path's market; the order has expired; its signature"
            " is not the user's (when the OME verifies signatures); the executioner's check"
            " refused it",
            404: "Market does not exist",
            409: "An order with the same id is already resting, or was already filled or cancelled",
            429: "Order limit reached: the trader holds as many resting orders in this market as "
            "allowed, or has as many orders waiting on the executioner's check",
            503: "The executioner could not be reached for the check, or "
            + _JOURNAL.lower()
            + "; nothing was placed",
        },
        body=OrderRequest,
        body_example=_ORDER,
        description="Checked in this order, the first failure answering: body and fields, "
        "market, target_tracer, expiry, duplicate id, the executioner's check; then matched "
        "by price-time priority, a trader's own resting orders skipped.",
        links={
            "GetOrder": {
                "operationId": "get_order",
                "parameters": {**_MARKET_LINK, "order_id": "$response.body#/id"},
            },
            "CancelOrder": {
                "operationId": "cancel_order",
                "parameters": {**_MARKET_LINK, "order_id": "$response.body#/id"},
            },
        },
    ),
    ("GET", "/book/{market}/order"): Operation(
        "list_orders",
        "List a market's resting orders",
        200,
        "Every resting order: bids best first, then asks best first",
        {"type": "array", "items": _ref("Order")},
        {400: "The market in the path is not an address", 404: "Market does not exist"},
    ),
    ("GET", "/book/{market}/order/{order_id}"): Operation(
        "get_order",
        "Read a resting order",
        200,
        "The order as it rests now",
        _ref("Order"),
        {
            400: "The market or order id in the path is malformed",
            404: "Market does not exist; Order does not exist in this market",
        },
    ),
    ("PATCH", "/book/{market}/order/{order_id}"): _cancel("cancel_order_patch", "PATCH"),
    ("DELETE", "/book/{market}/order/{order_id}"): _cancel("cancel_order", "DELETE"),
    ("GET", "/book/{market}/depth"): Operation(
        "get_depth",
        "Read a market's aggregated depth",
        200,
        "The best `levels` price levels of each side, best first, with the market's `seq`",
        _ref("Depth"),
        {
            400: "The market in the path is not an address; levels is not a whole number "
            "from 1 to 1000",
            404: "Market does not exist",
        },
        headers=(
            {
                "name": "levels",
                "in": "query",
                "required": False,
                "description": "Levels per side, 1 to 1000 (default 50)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
            },
        ),
    ),
    ("GET", "/book/{market}/trades"): Operation(
        "get_trades",
        "Read a market's recent trades",
        200,
        "The most recent trades, newest first (the OME keeps the last 1,000 per market, "
        "across restarts)",
        {"type": "array", "items": _ref("Trade"), "maxItems": 1000},
        {
            400: "The market in the path is not an address; limit is not a whole number "
            "from 1 to 1000",
            404: "Market does not exist",
        },
        headers=(
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "How many trades, 1 to 1000 (default 100)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
        ),
    ),
    ("GET", "/ws"): Operation(
        "feed",
        "The WebSocket feed of depth updates and trades",
        101,
        "Switched to the WebSocket protocol; the messages are described in docs/API.md "
        "(OpenAPI has no words for them)",
        {},
        {400: "Not a WebSocket upgrade request"},
        description="Subscribe with `{\"op\": \"subscribe\", \"market\": …, \"channels\": "
        "[\"depth\", \"trades\"]}`: a depth snapshot, then one update per change with `seq` "
        "increasing by one, and each trade as it happens.",
    ),
    ("GET", "/book/{market}/{user}"): Operation(
        "user_orders",
        "List one trader's resting orders in a market",
        200,
        "The trader's resting orders",
        {"type": "array", "items": _ref("Order")},
        {400: "The market or user in the path is not an address", 404: "Market does not exist"},
    ),
}

_CANONICAL_ADDRESS = {"type": "string", "pattern": "^0x[0-9a-f]{40}$"}
_CANONICAL_ID = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
_DECIMAL = {"type": "string", "pattern": "^(?:0|[1-9][0-9]*)$"}

# The shapes the API emits; objects other than Status carry exactly these fields.
RESPONSE_SCHEMAS: dict[str, JSON] = {
    "Status": {
        "type": "object",
        "description": "Every error, and every answer that is not a resource; more fields may "
        "be added",
        "required": ["status", "message"],
        "properties": {
            "status": {"type": "integer", "description": "The HTTP status"},
            "message": {"type": "string", "minLength": 1},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "message", "phase", "journal", "executioner"],
        "properties": {
            "status": {"enum": [200, 503]},
            "message": {"enum": ["Ready", "Starting", "Draining", "Journal unavailable"]},
            "phase": {"enum": ["starting", "ready", "draining"]},
            "journal": {"enum": ["ok", "unavailable"]},
            "executioner": {
                "enum": ["up", "down", "unknown"],
                "description": "How the last call to the executioner went: answered (up), not "
                "answered (down), none made yet (unknown)",
            },
        },
    },
    "Address": {**_CANONICAL_ADDRESS, "description": "0x and 40 lowercase hex digits"},
    "OrderId": {**_CANONICAL_ID, "description": "0x and 64 lowercase hex digits"},
    "Decimal": {**_DECIMAL, "description": "An unsigned integer as a decimal string"},
    "Order": {
        "type": "object",
        "description": "A signed limit order; `amount` is what was signed, `amount_left` what "
        "is still unfilled",
        "additionalProperties": False,
        "required": [
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
        ],
        "properties": {
            "id": _ref("OrderId"),
            "user": _ref("Address"),
            "target_tracer": _ref("Address"),
            "side": {"enum": ["Bid", "Ask"]},
            "price": _ref("Decimal"),
            "amount": _ref("Decimal"),
            "amount_left": _ref("Decimal"),
            "expiration": _ref("Decimal"),
            "created": _ref("Decimal"),
            "signed_data": {"type": "string", "pattern": "^0x[0-9a-f]{130}$"},
        },
    },
    "Fill": {
        "type": "object",
        "description": "One trade: the resting maker, the incoming taker, at the maker's price",
        "additionalProperties": False,
        "required": ["maker", "taker", "price", "amount"],
        "properties": {
            "maker": _ref("OrderId"),
            "taker": _ref("OrderId"),
            "price": _ref("Decimal"),
            "amount": _ref("Decimal"),
        },
    },
    "SubmitResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "message", "id", "fills"],
        "properties": {
            "status": {"const": 200},
            "message": {"enum": _MATCH_RESULTS},
            "id": _ref("OrderId"),
            "fills": {"type": "array", "items": _ref("Fill")},
        },
    },
    "Level": {"type": "array", "items": _ref("Order"), "minItems": 1},
    "Book": {
        "type": "object",
        "description": "Levels keyed by price, best first (bids descending, asks ascending); "
        "JavaScript's JSON.parse reorders such keys ascending, so clients must sort",
        "additionalProperties": False,
        "required": ["market", "bids", "asks", "ltp", "depth", "crossed", "spread"],
        "properties": {
            "market": _ref("Address"),
            "bids": {
                "type": "object",
                "propertyNames": _DECIMAL,
                "additionalProperties": _ref("Level"),
            },
            "asks": {
                "type": "object",
                "propertyNames": _DECIMAL,
                "additionalProperties": _ref("Level"),
            },
            "ltp": {**_DECIMAL, "description": "The last trade's price, 0 before any"},
            "depth": {
                "type": "array",
                "description": "Resting orders on each side: bids, asks",
                "prefixItems": [
                    {"type": "integer", "minimum": 0},
                    {"type": "integer", "minimum": 0},
                ],
                "items": False,
                "minItems": 2,
            },
            "crossed": {"type": "boolean", "description": "Best bid >= best ask"},
            "spread": {
                "type": "string",
                "pattern": "^(?:0|-?[1-9][0-9]*)$",
                "description": "Best ask - best bid, 0 when a side is empty",
            },
        },
    },
    "DepthLevel": {
        "type": "array",
        "description": "[price, total amount left, number of orders]",
        "prefixItems": [_ref("Decimal"), _ref("Decimal"), {"type": "integer", "minimum": 1}],
        "items": False,
        "minItems": 3,
    },
    "Depth": {
        "type": "object",
        "description": "Aggregated levels, each side an array best first",
        "additionalProperties": False,
        "required": ["market", "seq", "bids", "asks", "ltp", "spread", "crossed"],
        "properties": {
            "market": _ref("Address"),
            "seq": {
                "type": "integer",
                "minimum": 0,
                "description": "The market's sequence number: commands that changed its book",
            },
            "bids": {"type": "array", "items": _ref("DepthLevel")},
            "asks": {"type": "array", "items": _ref("DepthLevel")},
            "ltp": {**_DECIMAL, "description": "The last trade's price, 0 before any"},
            "spread": {
                "type": "string",
                "pattern": "^(?:0|-?[1-9][0-9]*)$",
                "description": "Best ask - best bid, 0 when a side is empty",
            },
            "crossed": {"type": "boolean", "description": "Best bid >= best ask"},
        },
    },
    "Trade": {
        "type": "object",
        "description": "One trade, at the maker's price; `seq` is the market's sequence "
        "number of the command that made it (trades of one order share it)",
        "additionalProperties": False,
        "required": ["seq", "time", "price", "amount", "maker", "taker", "taker_side"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "time": {**_DECIMAL, "description": "Unix seconds"},
            "price": _ref("Decimal"),
            "amount": _ref("Decimal"),
            "maker": _ref("OrderId"),
            "taker": _ref("OrderId"),
            "taker_side": {"enum": ["Bid", "Ask"]},
        },
    },
    "Markets": {
        "type": "object",
        "additionalProperties": False,
        "required": ["markets"],
        "properties": {"markets": {"type": "array", "items": _ref("Address")}},
    },
}

_PARAMETER = re.compile(r"\{(\w+)\}")


def _json_content(schema: JSON) -> JSON:
    return {"application/json": {"schema": schema}}


def _operation(op: Operation) -> JSON:
    errors = dict(op.errors)
    if op.body is not None:
        errors[413] = _BODY_TOO_LARGE
    if op.operation_id not in _SERVED_WHILE_STARTING:
        errors[503] = f"{errors[503]}; or {_STARTING.lower()}" if 503 in errors else _STARTING
    ok: JSON = {
        "description": op.ok_description,
        "content": {op.ok_media: {"schema": op.ok_schema}},
    }
    if op.links:
        ok["links"] = op.links
    responses: JSON = {str(op.ok_status): ok}
    for status, when in sorted(errors.items()):
        responses[str(status)] = {
            "description": when,
            "content": _json_content(status_object(status)),
        }
    if 401 in errors:
        responses["401"]["headers"] = {
            "WWW-Authenticate": {
                "description": op.challenge,
                "required": True,
                "schema": {"type": "string"},
            }
        }
    spec: JSON = {"operationId": op.operation_id, "summary": op.summary, "responses": responses}
    if op.description:
        spec["description"] = op.description
    if op.headers:
        spec["parameters"] = list(op.headers)
    if op.body is not None:
        content = _json_content(_ref(op.body.__name__))
        if op.body_example is not None:
            content["application/json"]["example"] = op.body_example
        spec["requestBody"] = {"required": op.body_required, "content": content}
    return spec


def _parameters(path: str) -> list[JSON]:
    parameters = []
    for name in _PARAMETER.findall(path):
        schema, description, example = PATH_PARAMETERS[name]
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": schema,
                "example": example,
            }
        )
    return parameters


def _preflight(path: str) -> JSON:
    # The preflight answers before any segment is parsed: any value goes.
    anything = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAMETER.findall(path)
    ]
    return {
        "summary": "CORS preflight",
        "description": "Answered on every path, whatever its segments; the CORS headers are on "
        "every answer",
        **({"parameters": anything} if anything else {}),
        "responses": {
            "200": {
                "description": "Preflight answered",
                "content": _json_content(status_object(200, "OK")),
            }
        },
    }


@functools.cache
def document() -> JSON:
    """The whole document; built once, it depends on nothing that changes at run time."""
    paths: dict[str, JSON] = {}
    for (method, path), op in OPERATIONS.items():
        item = paths.setdefault(path, {})
        parameters = _parameters(path)
        if parameters:
            item["parameters"] = parameters
        item[method.lower()] = _operation(op)
    for path, item in paths.items():
        item["options"] = _preflight(path)
    schemas = dict(RESPONSE_SCHEMAS)
    for model in (MarketRequest, OrderRequest, CancelRequest):
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tracer OME",
            "version": version("tracer-ome"),
            "description": "The order matching engine of Tracer Perpetual Swaps: limit order "
            "books per market, matched by price-time priority. See docs/API.md.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


@functools.cache
def document_bytes() -> bytes:
    """The document as served; the standard json module, since orjson stops at 64-bit ints."""
    return json.dumps(document(), separators=(",", ":")).encode()
