"""JSON answers for requests that aiohttp refuses before any handler runs.

A malformed request line, header or body framing is answered by aiohttp's
protocol layer itself, in text/plain, without reaching a middleware. API.md
promises the JSON error object whatever a client sends, so that layer's
error hook is wrapped once, at import: aiohttp still logs the error and
closes the connection; only the body it answers with changes.
"""

from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ome.api.errors import INTERNAL_ERROR
from ome.api.middlewares import CORS_HEADERS
from ome.wire import message

_plain_handle_error = RequestHandler.handle_error


def _handle_error_as_json(
    self: RequestHandler,
    request: BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message_text: str | None = None,
) -> web.StreamResponse:
    _plain_handle_error(self, request, status, exc, message_text)
    text = INTERNAL_ERROR if status >= 500 else HTTPStatus(status).phrase
    response = web.Response(
        body=orjson.dumps(message(status, text)),
        status=status,
        content_type="application/json",
        headers=CORS_HEADERS,
    )
    response.force_close()
    return response


RequestHandler.handle_error = _handle_error_as_json  # type: ignore[method-assign,assignment]
