"""The request pipeline around every handler: request id, CORS headers, body, error mapping.

`error_middleware` is the one place where exceptions become responses: handlers
raise and never catch. Every answer, error or not, carries the CORS headers of
docs/API.md and the request's id. Per request the work is a counter increment,
one context variable, a dict update of headers and, on failure, a table lookup.

Before the handler runs, `error_middleware` reads the body, so that what can
go wrong with it is decided in one place, before anything changes: a
`Content-Encoding` other than gzip, deflate or identity is 415; a body that
does not decode is 400; a body over the size limit is 413; a body that does
not arrive within the connection's `body_timeout` is 408. Each of those closes
the connection, since the rest of the body is not going to be read. A client
that goes away mid-request is logged at info: there is nobody left to answer.
aiohttp keeps the body it read, so the handler's own `read()` costs nothing.
"""

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

import orjson
import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from structlog.contextvars import bind_contextvars

from ome.api.errors import headers_of, message_of, status_of
from ome.engine import Order
from ome.executioner import ExecutionerUnavailable
from ome.wire import InvalidRequest, message

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    # Authorization: a browser sends the admin token only if the preflight allows it.
    "Access-Control-Allow-Headers": (
        "Origin, Content-Type, Authorization, Access-Control-Request-Headers, "
        "Access-Control-Allow-Origin"
    ),
}
REQUEST_ID_HEADER = "X-Request-Id"
# Ids unique across restarts and processes without a random draw per request.
_ID_PREFIX = os.urandom(4).hex()
_ids = itertools.count(1)
# An incoming id longer than this is not echoed: it would only bloat every log line.
_MAX_CLIENT_ID = 128

BODY_TIMEOUT = 30.0
# aiohttp decodes these itself; brotli and zstd only when optional libraries are
# installed, so they are refused whether or not they happen to be.
_DECODED = frozenset({"identity", "gzip", "deflate"})
ACCEPTED_ENCODINGS = "gzip, deflate, identity"
UNSUPPORTED_ENCODING = "Unsupported Content-Encoding: send gzip, deflate or identity"

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
    given = request.headers.get(REQUEST_ID_HEADER)
    request_id = given if _usable_id(given) else f"{_ID_PREFIX}-{next(_ids)}"
    # Overwritten by the next request handled in the same task (keep-alive).
    bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers.update(CORS_HEADERS)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _usable_id(value: str | None) -> TypeGuard[str]:
    """Whether a client's id can be echoed in a header and logged as it is.

    aiohttp decodes a non-UTF-8 byte into a lone surrogate, which cannot be
    written back into a response header; such an id is replaced, not echoed.
    """
    return (
        value is not None
        and 0 < len(value) <= _MAX_CLIENT_ID
        and value.isascii()
        and value.isprintable()
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn any exception into the JSON error object of docs/API.md."""
    body_read = False
    try:
        await _read_body(request)
        body_read = True
        return await handler(request)
    except ConnectionResetError:
        # Raised by reading from a connection the client closed: no one to answer.
        log.info("client_disconnected", method=request.method, path=request.path)
        response = json_response(message(400, "Connection lost"), 400)
        response.force_close()
        return response
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
        response.headers.update(headers_of(exc))
        if not body_read:
            # What is left of the body is not worth reading: close instead.
            response.force_close()
        return response


async def _read_body(request: web.Request) -> None:
    """Read the whole body within the deadline, decoded; raise what a bad one deserves."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding not in _DECODED:
        raise web.HTTPUnsupportedMediaType(
            reason=UNSUPPORTED_ENCODING, headers={hdrs.ACCEPT_ENCODING: ACCEPTED_ENCODINGS}
        )
    if not request.can_read_body:
        return
    timeout = getattr(request.protocol, "body_timeout", BODY_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    except (web.RequestPayloadError, HttpProcessingError):
        raise InvalidRequest(f"Body does not decode as Content-Encoding {encoding}") from None


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
