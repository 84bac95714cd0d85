"""The HTTP connection below the routes: JSON for what aiohttp refuses itself, and deadlines.

aiohttp answers some requests before any middleware runs: a malformed
request line, header or body framing (400), a `Content-Encoding` it has no
decoder for, an `Expect` other than `100-continue` (417). It answers them
in text/plain, without the CORS headers, and logs each at error level with
a traceback, so any client could flood the error log. `JsonRequestHandler`
answers them with the JSON error object and the CORS headers instead, and
logs each once, at info, without a traceback; a traceback at error level is
left for our own bugs (a 500).

Deadlines (docs/API.md "Connections"). aiohttp's `keepalive_timeout` closes
a connection that sends no request, and in the versions this project requires
(3.14 on; this module leans on their connection handler's internals) it runs
from the moment a connection opens: `__main__` sets it to `IDLE_TIMEOUT`.
aiohttp has no deadline for a request that starts and never finishes, so this
module adds one: the headers of a request must be complete within
`header_timeout` seconds of its first byte, or the client gets 408 and the
connection is closed (not on a connection upgraded to a WebSocket, whose
bytes are frames). The body's deadline (`body_timeout`, counted once the
headers are in) is kept by `ome.api.middlewares`, which reads the body before
the handler. Both are server parameters, like aiohttp's own:
`web.AppRunner(app, header_timeout=…, body_timeout=…)`, so tests can use
small values.

`install()`, run when this module is imported (as `create_app`'s module
does), makes aiohttp's server build this handler for every connection and
its routes use this module's `Expect` handler, so the service and the test
servers behave alike.
"""

import asyncio
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from aiohttp import hdrs, web, web_server, web_urldispatcher
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ome.api.errors import INTERNAL_ERROR
from ome.api.middlewares import (
    ACCEPTED_ENCODINGS,
    BODY_TIMEOUT,
    CORS_HEADERS,
    UNSUPPORTED_ENCODING,
    json_response,
)
from ome.wire import message

IDLE_TIMEOUT = 75.0
HEADER_TIMEOUT = 30.0

log = structlog.get_logger("ome.api")


def _answer(status: int, text: str) -> web.Response:
    response = json_response(message(status, text), status)
    response.headers.update(CORS_HEADERS)
    response.force_close()
    return response


def _raw_answer(status: int, text: str) -> bytes:
    """A whole response as bytes, for when there is no request object to answer through."""
    body = orjson.dumps(message(status, text))
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Date: {formatdate(usegmt=True)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in CORS_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


class JsonRequestHandler(RequestHandler):
    """aiohttp's connection handler: JSON refusals, quiet client errors, a header deadline."""

    def __init__(
        self,
        manager: web_server.Server,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        # aiohttp drains a body the handler left unread ("lingering"), and logs
        # a body that fails to decode on the way as an unhandled error. The
        # middleware reads every body or refuses it and closes, so there is
        # nothing worth draining.
        kwargs.setdefault("lingering_time", 0)
        super().__init__(manager, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        # The body of the last request whose headers were parsed: bytes that
        # arrive while it is unfinished belong to it, not to a new request.
        self._body: Any = None

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        in_body = self._body is not None and not self._body.is_eof()
        super().data_received(data)
        if self._request_count > parsed and self._messages:
            self._body = self._messages[-1][1]
            self._cancel_header_deadline()
        elif (
            data
            and not in_body
            and self._header_deadline is None
            and self.transport
            # Past a WebSocket upgrade the bytes are frames, never a request's headers.
            and self._payload_parser is None
            and not self._upgraded
        ):
            # A request has begun: the idle deadline gives way to the header deadline
            # (aiohttp arms the idle one again once this request is answered).
            if self._keepalive_handle is not None:
                self._keepalive_handle.cancel()
                self._keepalive_handle = None
            self._header_deadline = self._loop.call_later(
                self.header_timeout, self._headers_too_slow, self._request_count
            )

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self, parsed: int) -> None:
        self._header_deadline = None
        if self._request_count > parsed or self.transport is None:
            return
        log.info("request_timed_out", part="headers", timeout=self.header_timeout)
        self.transport.write(_raw_answer(408, HTTPStatus.REQUEST_TIMEOUT.phrase))
        # Closing flushes what was written first.
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ContentEncodingError):
            # Raised while reading the headers only for an encoding aiohttp has no decoder for.
            status, text = 415, UNSUPPORTED_ENCODING
        elif status >= 500:
            text = INTERNAL_ERROR
        else:
            text = HTTPStatus(status).phrase
        if status >= 500:
            log.error("request_failed", status=status, exc_info=exc)
        else:
            # The client's mistake, logged once: the connection closes with this answer.
            log.info(
                "http_refused",
                status=status,
                reason=message or (str(exc) if exc else text),
                remote=request.remote,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; the connection is broken")
        response = _answer(status, text)
        if status == 415:
            response.headers[hdrs.ACCEPT_ENCODING] = ACCEPTED_ENCODINGS
        return response


ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_aiohttp_expect_handler: ExpectHandler = web_urldispatcher._default_expect_handler


async def _expect_handler(request: web.Request) -> web.StreamResponse | None:
    """`100-continue` as aiohttp does it; any other expectation refused as JSON."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11 or expect.lower() == "100-continue":
        return await _aiohttp_expect_handler(request)
    log.info("http_refused", status=417, reason="unknown expectation", remote=request.remote)
    return _answer(417, "Only Expect: 100-continue is supported")


def install() -> None:
    """Have aiohttp's server and routes use the handlers of this module (idempotent)."""
    web_server.RequestHandler = JsonRequestHandler  # type: ignore[attr-defined]
    # Looked up when a route is made, so this covers every route added afterwards.
    web_urldispatcher._default_expect_handler = _expect_handler  # type: ignore[assignment]


install()
