"""The request pipeline around every handler: request id, CORS headers, error mapping.

`error_middleware` is the one place where exceptions become responses: handlers
raise and never catch. Every answer, error or not, carries the CORS headers of
API.md and the request's id. Per request the work is a counter increment, one
context variable, a dict update of headers and, on failure, a table lookup.
"""

import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from structlog.contextvars import bind_contextvars

from ome.api.errors import message_of, status_of
from ome.engine import Order
from ome.executioner import ExecutionerUnavailable
from ome.wire import message

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Origin, Content-Type, Access-Control-Request-Headers, Access-Control-Allow-Origin"
    ),
}
REQUEST_ID_HEADER = "X-Request-Id"
# Ids unique across restarts and processes without a random draw per request.
_ID_PREFIX = os.urandom(4).hex()
_ids = itertools.count(1)
# An incoming id longer than this is not echoed: it would only bloat every log line.
_MAX_CLIENT_ID = 128

# The market and order of a submission being handled, so that a refusal is logged with them.
MARKET = web.RequestKey("market", str)
ORDER = web.RequestKey("order", Order)
SUBMIT_ROUTE = "submit_order"

log = structlog.get_logger("ome.api")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id for every log line of this request; add the CORS headers."""
    request_id = request.headers.get(REQUEST_ID_HEADER)
    if not request_id or len(request_id) > _MAX_CLIENT_ID:
        request_id = f"{_ID_PREFIX}-{next(_ids)}"
    # Overwritten by the next request handled in the same task (keep-alive).
    bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers.update(CORS_HEADERS)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn any exception into the JSON error object of API.md."""
    try:
        return await handler(request)
    except Exception as exc:
        status = status_of(exc)
        text = message_of(exc, status)
        if status >= 500 and status != 503:
            log.error(
                "request_failed",
                method=request.method,
                path=request.path,
                status=status,
                exc_info=exc,
            )
        else:
            _log_refusal(request, status, text, exc)
        response = json_response(message(status, text), status)
        if isinstance(exc, web.HTTPException) and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _log_refusal(request: web.Request, status: int, reason: str, exc: Exception) -> None:
    if request.match_info.route.name == SUBMIT_ROUTE:
        order = request.get(ORDER)
        log.info(
            "order_refused",
            market=request.get(MARKET, request.match_info.get("market")),
            order_id=order.id if order else None,
            user=order.user if order else None,
            status=status,
            reason=reason,
            # What the client is not told: why the executioner was unavailable.
            cause=str(exc) if isinstance(exc, ExecutionerUnavailable) else None,
        )
    else:
        log.debug(
            "request_refused",
            method=request.method,
            path=request.path,
            status=status,
            reason=reason,
        )
