"""Readiness, apart from liveness: may this process be sent traffic now?

`GET /` is liveness: it answers 200 whenever the process serves at all,
restoring included. `GET /ready` answers 200 only in the `ready` phase, and
503 while `starting` (the restore and the journal replay are running), while
`draining` (SIGTERM came; the port is about to close), and while the journal
cannot make records durable. The executioner's reachability is reported in
the body (and as a metric) but never makes the process unready: restarting
the OME would not bring the executioner back, and orders are refused with
503 meanwhile anyway.

Before the app exists, `starting_handler` answers on the port (the entry
point binds it before the restore, so that probes get answers rather than
refused connections): `/` 200, `/ready` 503 `Starting`, a CORS preflight 200,
anything else 503.

The executioner's state is passive: the outcome of the last call the OME
made to it (a 4xx answer counts as reachable), never a probe of its own.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from aiohttp import web

from ome.api.middlewares import CORS_HEADERS
from ome.wire import message


class Phase(StrEnum):
    starting = "starting"
    ready = "ready"
    draining = "draining"


_UNREADY = {Phase.starting: "Starting", Phase.draining: "Draining"}


@dataclass(slots=True)
class Readiness:
    phase: Phase = Phase.starting
    # Whether the journal can still make records durable; set once it exists.
    journal_ok: Callable[[], bool] = field(default=lambda: True)
    executioner_up: bool | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.ready and self.journal_ok()

    def observe_executioner(self, failure: str | None) -> None:
        self.executioner_up = failure is None or failure == "rejected"

    def report(self) -> tuple[int, dict[str, Any]]:
        """The status and body of `GET /ready`."""
        journal = "ok" if self.journal_ok() else "unavailable"
        if self.phase is not Phase.ready:
            status, text = 503, _UNREADY[self.phase]
        elif journal != "ok":
            status, text = 503, "Journal unavailable"
        else:
            status, text = 200, "Ready"
        executioner = {None: "unknown", True: "up", False: "down"}[self.executioner_up]
        return status, {
            **message(status, text),
            "phase": self.phase.value,
            "journal": journal,
            "executioner": executioner,
        }


async def starting_handler(request: web.BaseRequest) -> web.Response:
    """Every request while the state is being restored, before the app serves."""
    if request.method == "OPTIONS":
        status, body = 200, message(200, "OK")
    elif request.path == "/":
        status, body = 200, message(200, "Healthy")
    elif request.path == "/ready":
        status, body = Readiness().report()
    else:
        status, body = 503, message(503, "Starting: the state is being restored")
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=CORS_HEADERS,
    )
