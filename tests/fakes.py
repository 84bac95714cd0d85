"""A fake executioner: a real aiohttp server on 127.0.0.1 that records and misbehaves on demand.

It answers `POST /check` and `POST /submit` like the real executioner (200
`{"status": 200, "message": "ok"}`), records every request it receives in
arrival order (path, JSON body, headers, the status it answered), and can be
told, per path, to reject with a 4xx and a message, to fail with 503 for the
next N requests or for a while, to answer slowly, or to hang until released.
Tests talk to it over real sockets so that the client's timeouts, connection
handling and error mapping are exercised for real.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

PATHS = ("check", "submit")


@dataclass(slots=True)
class Received:
    """One request as the fake executioner saw it (recorded on arrival) and its answer.

    `status` is decided on arrival; `answered` turns true once the response is
    sent, so a request still hanging is visible but not counted as delivered.
    """

    path: str
    body: Any
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    status: int
    answered: bool = False


@dataclass(slots=True)
class _Behaviour:
    reject_status: int | None = None
    reject_message: str | None = None
    fail_times: int = 0
    fail_until: float = 0.0
    fail_status: int = 503
    delay: float = 0.0
    hang: bool = False


class FakeExecutioner:
    """Start with `await start()`, stop with `await close()`; `url` is its base URL."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.url = ""
        self._behaviour = {p: _Behaviour() for p in PATHS}
        self._released = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> "FakeExecutioner":
        app = web.Application()
        app.router.add_post("/check", self._handle)
        app.router.add_post("/submit", self._handle)
        # A short shutdown timeout: hanging handlers are released on close anyway.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ behaviour

    def reject(
        self, message: str | None = "rejected", *, status: int = 400, path: str = "check"
    ) -> None:
        """Answer every later request on `path` with `status`; no JSON body when message is None."""
        b = self._behaviour[path]
        b.reject_status, b.reject_message = status, message

    def fail(
        self, times: int = 0, *, seconds: float = 0.0, status: int = 503, path: str = "submit"
    ) -> None:
        """Answer `status` to the next `times` requests on `path`, and to all for `seconds`."""
        b = self._behaviour[path]
        b.fail_times = times
        b.fail_until = time.monotonic() + seconds if seconds else 0.0
        b.fail_status = status

    def delay(self, seconds: float, *, path: str = "check") -> None:
        """Answer requests on `path` only after `seconds` (recorded on arrival)."""
        self._behaviour[path].delay = seconds

    def hang(self, *, path: str = "check") -> None:
        """Never answer requests on `path` until `release()` or `close()`."""
        self._released.clear()
        self._behaviour[path].hang = True

    def release(self) -> None:
        """Let hanging requests go on (they are then answered normally) and stop hanging."""
        for b in self._behaviour.values():
            b.hang = False
        self._released.set()

    def reset(self) -> None:
        """Back to answering 200 at once on every path."""
        self.release()
        self._behaviour = {p: _Behaviour() for p in PATHS}

    # ------------------------------------------------------------ inspection

    def bodies(self, path: str, *, status: int | None = None) -> list[Any]:
        """JSON bodies received on `path`, in order; only those answered `status` if given."""
        return [
            r.body
            for r in self.received
            if r.path == path and (status is None or (r.answered and r.status == status))
        ]

    @property
    def checks(self) -> list[Received]:
        return [r for r in self.received if r.path == "check"]

    @property
    def submits(self) -> list[Received]:
        """Every /submit attempt, retries and failures included."""
        return [r for r in self.received if r.path == "submit"]

    @property
    def delivered(self) -> list[Any]:
        """Bodies of the /submit requests answered 2xx, in order."""
        return [r.body for r in self.submits if r.answered and 200 <= r.status < 300]

    async def wait_for(
        self, path: str, count: int, *, status: int | None = None, timeout: float = 5.0
    ) -> list[Any]:
        """Wait until `count` requests on `path` (answered `status`, if given) were recorded."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.bodies(path, status=status)) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.bodies(path, status=status)

    async def wait_delivered(self, count: int, *, timeout: float = 5.0) -> list[Any]:
        return await self.wait_for("submit", count, status=200, timeout=timeout)

    # ------------------------------------------------------------ the server

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.strip("/")
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        b = self._behaviour[path]
        received = Received(path, body, CIMultiDict(request.headers), self._status_for(b))
        await self._record(received)
        if b.hang:
            await self._released.wait()
        elif b.delay:
            await asyncio.sleep(b.delay)
        received.answered = True
        await self._record(None)
        status = received.status
        if status == 200:
            return web.json_response({"status": 200, "message": "ok"})
        if status == b.reject_status and b.reject_message is None:
            return web.Response(status=status)
        message = b.reject_message if status == b.reject_status else "Service Unavailable"
        return web.json_response({"status": status, "message": message}, status=status)

    async def _record(self, received: Received | None) -> None:
        async with self._changed:
            if received is not None:
                self.received.append(received)
            self._changed.notify_all()

    @staticmethod
    def _status_for(b: _Behaviour) -> int:
        if b.fail_times > 0:
            b.fail_times -= 1
            return b.fail_status
        if b.fail_until and time.monotonic() < b.fail_until:
            return b.fail_status
        if b.reject_status is not None:
            return b.reject_status
        return 200
