"""The REST routes, one thin handler each: parse, call the command path, emit.

Handlers raise and never catch; `middlewares.error_middleware` answers every
failure. Every change goes through `ome.commands.Commands`, whose commands
return once their journal record is durable. An order submission runs the
checks in this order: path and body (400), market (404), `check_entry`
(target_tracer 400, expired 400, resting or finished id 409, the user's
order limit 429), the signature when a domain is configured (400
`invalid_signature`), the user's in-flight cap (429), the executioner's
`/check` (400 / 503), then `place`, which repeats the entry checks and the
order limit atomically because other requests ran during the await. The
matched pairs are in the outbox, whose sender delivers them after this answer.

A cancel (PATCH or DELETE) checks path and body (400), market and order
(404, whatever the signature), then the signature (401 missing, 400
malformed); the engine's cancel refuses another signer (403).

The full-book reads are joins of cached bytes (`ome.fullbook`), streamed
(`ome.api.streaming`); `/ws` is the feed
(`ome.api.feed`).
"""

from aiohttp import web

from ome.access import authorize_admin, cancel_owner
from ome.api import openapi
from ome.api.keys import (
    COMMANDS,
    EXECUTIONER,
    FEED,
    FULL_BOOKS,
    IN_FLIGHT,
    METRICS,
    ORDER_DOMAIN,
    READINESS,
    SETTINGS,
)
from ome.api.middlewares import MARKET, ORDER, SUBMIT_ROUTE, json_response
from ome.api.streaming import book_pieces, orders_pieces, streamed_json
from ome.engine import Book
from ome.marketdata import (
    DEFAULT_LEVELS,
    DEFAULT_TRADES,
    MAX_LEVELS,
    MAX_TRADES,
    depth_json,
    recent_trades,
)
from ome.metrics import CONTENT_TYPE
from ome.signing import verify_order
from ome.wire import (
    markets_json,
    message,
    orders_json,
    parse_address,
    parse_body,
    parse_cancel,
    parse_count,
    parse_market_body,
    parse_order,
    parse_order_id,
    submit_json,
)


def _book(request: web.Request) -> Book:
    """The path's book; handlers parse their other segments first, so any malformed one is 400."""
    market = parse_address(request.match_info["market"], "market")
    return request.app[COMMANDS].book(market)


async def health(request: web.Request) -> web.Response:
    return json_response(message(200, "Healthy"))


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=openapi.document_bytes(), content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    status, body = request.app[READINESS].report()
    return json_response(body, status)


async def metrics(request: web.Request) -> web.Response:
    figures = request.app[METRICS]
    if figures is None:
        raise web.HTTPNotFound(reason="Metrics are turned off")
    return web.Response(body=figures.render(), headers={"Content-Type": CONTENT_TYPE})


async def list_markets(request: web.Request) -> web.Response:
    return json_response(markets_json(request.app[COMMANDS].markets()))


async def create_market(request: web.Request) -> web.Response:
    authorize_admin(request.headers.get("Authorization"), request.app[SETTINGS].admin_token)
    market = parse_market_body(parse_body(await request.read()))
    await request.app[COMMANDS].create_market(market)
    return json_response(message(201, "Market created"), 201)


async def get_book(request: web.Request) -> web.Response:
    book = _book(request)
    captured = await request.app[FULL_BOOKS].capture(book)
    # No await since the capture: the book's other fields are read at the same moment.
    return streamed_json(request, book_pieces(book, captured))


async def get_depth(request: web.Request) -> web.Response:
    levels = parse_count(request.query, "levels", DEFAULT_LEVELS, MAX_LEVELS)
    return json_response(depth_json(_book(request), levels))


async def get_trades(request: web.Request) -> web.Response:
    limit = parse_count(request.query, "limit", DEFAULT_TRADES, MAX_TRADES)
    book = _book(request)
    history = request.app[COMMANDS].state.trades.get(book.market)
    return json_response(recent_trades(history, limit))


async def feed(request: web.Request) -> web.StreamResponse:
    return await request.app[FEED].serve(request)


async def submit_order(request: web.Request) -> web.Response:
    request[MARKET] = market = parse_address(request.match_info["market"], "market")
    request[ORDER] = order = parse_order(parse_body(await request.read()))
    app = request.app
    commands = app[COMMANDS]
    commands.check_entry(market, order)
    domain = app[ORDER_DOMAIN]
    if domain is not None:
        verify_order(domain, order)
    with app[IN_FLIGHT].hold(order.user):
        await app[EXECUTIONER].check(order.to_dict())
    status, fills = await commands.place(order)
    return json_response(submit_json(order, status, fills))


async def list_orders(request: web.Request) -> web.Response:
    captured = await request.app[FULL_BOOKS].capture(_book(request))
    return streamed_json(request, orders_pieces(captured))


async def get_order(request: web.Request) -> web.Response:
    order_id = parse_order_id(request.match_info["order_id"])
    return json_response(_book(request).get(order_id).to_dict())


async def cancel_order(request: web.Request) -> web.Response:
    """PATCH (the frontend's) or DELETE; the signer must be the order's user."""
    order_id = parse_order_id(request.match_info["order_id"])
    market = parse_address(request.match_info["market"], "market")
    body = await request.read()
    signature = parse_cancel(body, market, order_id)
    commands = request.app[COMMANDS]
    # Unknown market or order: 404 whatever the signature.
    commands.book(market).get(order_id)
    unsigned_allowed = request.app[SETTINGS].allow_unsigned_cancel and (
        request.method == "DELETE" and not body.strip()
    )
    owner = cancel_owner(signature, order_id, unsigned_allowed=unsigned_allowed)
    await commands.cancel(market, order_id, owner=owner)
    return json_response(message(200, "Order cancelled"))


async def user_orders(request: web.Request) -> web.Response:
    user = parse_address(request.match_info["user"], "user")
    return json_response(orders_json(_book(request).orders_of(user)))


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight; the headers themselves are added to every response by a middleware."""
    return json_response(message(200, "OK"))


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", health)
    router.add_get("/ready", ready)
    router.add_get("/metrics", metrics)
    router.add_get("/openapi.json", openapi_document)
    router.add_get("/book", list_markets)
    router.add_post("/book", create_market)
    router.add_get("/book/{market}", get_book)
    # Before `/book/{market}/{user}`: a user is 40 hex digits, never these words.
    router.add_get("/book/{market}/depth", get_depth)
    router.add_get("/book/{market}/trades", get_trades)
    router.add_post("/book/{market}/order", submit_order, name=SUBMIT_ROUTE)
    router.add_get("/book/{market}/order", list_orders)
    router.add_get("/book/{market}/order/{order_id}", get_order)
    router.add_delete("/book/{market}/order/{order_id}", cancel_order)
    router.add_patch("/book/{market}/order/{order_id}", cancel_order)
    router.add_get("/book/{market}/{user}", user_orders)
    router.add_get("/ws", feed)
    for resource in list(router.resources()):
        assert isinstance(resource, web.Resource)
        resource.add_route("OPTIONS", preflight)
