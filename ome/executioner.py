"""The client of the executioner: `/check` before an order enters a book, `/submit` per fill.

One `httpx.AsyncClient` per process, on the aiohttp transport of httpx-aiohttp
(httpx's own transport is several times slower under concurrency, see
encode/httpx#3215), with explicit timeouts and keep-alive. Every httpx error
is translated here: callers only ever see `ExecutionerRejected` (the
executioner answered 4xx: final) or `ExecutionerUnavailable` (no answer in
time, or 5xx: worth retrying). An `ExecutionerUnavailable` says which URL was
tried and what really happened (connection refused, host not found, no
connection within the connect timeout, no answer within the timeout, the
connection reset, a 5xx): httpx-aiohttp reports a refused connection as a
`ConnectTimeout`, so the cause is read from the underlying OS error instead.
"""

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

_JSON_HEADERS = {"Content-Type": "application/json"}
_DEFAULT_REJECTION = "Rejected by the executioner"
_MAX_CONNECTIONS = 256
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL})
# The transport's own errors, which httpx-aiohttp maps coarsely (most of them to
# ConnectTimeout). Known by name: only the api package may import aiohttp.
_TRANSPORT_CAUSES = {
    "ServerDisconnectedError": "the executioner closed the connection without an answer",
    "ConnectionTimeoutError": "no connection within {connect:g} s",
    "SocketTimeoutError": "no answer within {timeout:g} s",
    "ClientPayloadError": "the answer was cut short",
}


class ExecutionerError(Exception):
    """Base of the errors of talking to the executioner."""


class ExecutionerRejected(ExecutionerError):
    """The executioner answered 4xx: it will not take this order or pair, retrying is futile."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ExecutionerUnavailable(ExecutionerError):
    """No usable answer: connection refused or lost, timeout, or a 5xx.

    The message is `<url>: <cause>`, for the operator's log, never for clients.
    """

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause


# Told of every call: which (check, submit), its seconds, and None or the kind of failure
# (rejected, timeout, unreachable, server_error).
Observer = Callable[[str, float, str | None], None]


class ExecutionerClient:
    """Talks to the executioner at `base_url`; `timeout` bounds each request as a whole."""

    def __init__(
        self, base_url: str, *, timeout: float = 5.0, observer: Observer | None = None
    ) -> None:
        base = base_url.rstrip("/")
        self._observer = observer
        # Parsed once: httpx would parse and merge a string URL on every request.
        self._check_url = httpx.URL(f"{base}/check")
        self._submit_url = httpx.URL(f"{base}/submit")
        self._timeout = timeout
        connect = min(timeout, 2.0)
        self._extensions = {
            "timeout": {"connect": connect, "read": timeout, "write": timeout, "pool": timeout}
        }
        limits = httpx.Limits(
            max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS
        )
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits, trust_env=False),
            timeout=httpx.Timeout(timeout, connect=connect),
            trust_env=False,
        )

    async def check(self, order: dict[str, Any]) -> None:
        """Ask whether `order` (a wire order object) may enter the book."""
        await self._post("check", self._check_url, orjson.dumps({"order": order}), _JSON_HEADERS)

    async def submit(self, pair: dict[str, Any], idempotency_key: str) -> None:
        """Hand over one matched pair `{"maker": order, "taker": order}`."""
        headers = {**_JSON_HEADERS, "Idempotency-Key": idempotency_key}
        await self._post("submit", self._submit_url, orjson.dumps(pair), headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, call: str, url: httpx.URL, body: bytes, headers: dict[str, str]) -> None:
        if self._observer is None:
            await self._send(url, body, headers)
            return
        started = time.perf_counter()
        failure = None
        try:
            await self._send(url, body, headers)
        except ExecutionerError as exc:
            failure = _kind_of(exc)
            raise
        finally:
            # The observer only counts; nothing it does may change the call's outcome.
            with contextlib.suppress(Exception):
                self._observer(call, time.perf_counter() - started, failure)

    async def _send(self, url: httpx.URL, body: bytes, headers: dict[str, str]) -> None:
        # A ready Request skips the client's per-call URL merging and option handling,
        # a third of its cost on this path.
        request = httpx.Request(
            "POST", url, content=body, headers=headers, extensions=self._extensions
        )
        try:
            # httpx's timeouts bound each read; this bounds a trickling answer too.
            async with asyncio.timeout(self._timeout):
                response = await self._client.send(request)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise ExecutionerUnavailable(str(url), self._cause_of(exc)) from exc
        status = response.status_code
        if status < 300:
            return
        if 400 <= status < 500:
            raise ExecutionerRejected(status, _message_of(response.content))
        raise ExecutionerUnavailable(str(url), f"answered {status}")

    def _cause_of(self, exc: BaseException) -> str:
        """What went wrong, in the words an operator searches for."""
        chain: list[BaseException] = []
        link: BaseException | None = exc
        while link is not None and len(chain) < 10:
            chain.append(link)
            link = link.__cause__ or link.__context__
        for link in chain:
            if isinstance(link, ConnectionRefusedError):
                return "connection refused"
            if isinstance(link, socket.gaierror):
                return f"host name not found ({link.strerror})"
            if isinstance(link, ConnectionResetError):
                return "connection reset by the executioner"
            if isinstance(link, OSError) and link.errno in _UNREACHABLE:
                return link.strerror or errno.errorcode[link.errno]
            if type(link).__name__ in _TRANSPORT_CAUSES:
                return _TRANSPORT_CAUSES[type(link).__name__].format(
                    connect=self._extensions["timeout"]["connect"], timeout=self._timeout
                )
        connect = self._extensions["timeout"]["connect"]
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {connect:g} s"
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return f"no answer within {self._timeout:g} s"
        if isinstance(exc, httpx.RemoteProtocolError):
            return f"malformed answer ({exc})"
        return f"{type(exc).__name__}: {exc}"


def _kind_of(exc: ExecutionerError) -> str:
    """A bounded label for a failed call: rejected, server_error, timeout or unreachable."""
    if isinstance(exc, ExecutionerRejected):
        return "rejected"
    cause = exc.cause if isinstance(exc, ExecutionerUnavailable) else ""
    if cause.startswith("answered "):
        return "server_error"
    if cause.startswith("no answer within"):
        return "timeout"
    # Refused, reset, no such host, no connection in time: nobody answered.
    return "unreachable"


def _message_of(body: bytes) -> str:
    """The `message` of a JSON error body, or a generic text when there is none."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _DEFAULT_REJECTION
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, str) and message:
            return message
    return _DEFAULT_REJECTION
