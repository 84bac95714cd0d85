"""The sender: hands each pending pair of the outbox to the executioner, in order.

The outbox itself is state (`ome.outbox`), changed only through the command
path; this task only reads its oldest pair, waits until the journal record
that made the pair is durable (no pair leaves before the fill it reports is
safe), posts it, and records the executioner's final answer as a command. A
pair whose POST was in flight when the task was cancelled is still pending,
so it goes into the snapshot and is sent again, with the same key, after a
restart.

Failures: `ExecutionerUnavailable` (and any unexpected error) is retried
forever with capped exponential backoff and full jitter; `ExecutionerRejected`
is final, recorded as a rejection, logged and counted.
"""

import asyncio
import random
from typing import Any

import structlog

from ome.commands import Applied, Commands
from ome.executioner import ExecutionerClient, ExecutionerRejected, ExecutionerUnavailable
from ome.outbox import Pair

log = structlog.get_logger()


class Sender:
    """`base_delay` caps the first retry's wait, doubled per attempt up to `max_delay`;
    each wait is drawn uniformly below its cap (full jitter)."""

    def __init__(
        self,
        commands: Commands,
        client: ExecutionerClient,
        *,
        base_delay: float = 1.0,
        max_delay: float = 10.0,
    ) -> None:
        self._commands = commands
        self._client = client
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._wakeup = asyncio.Event()
        self.delivered = 0
        self.rejected = 0
        self.retries = 0

    def notice(self, applied: Applied) -> None:
        """Command-path sink: wake up when a command made pairs."""
        if applied.fills:
            self._wakeup.set()

    async def run(self) -> None:
        """Send pairs until cancelled."""
        outbox = self._commands.state.outbox
        journal = self._commands.journal
        while True:
            pair = outbox.first()
            if pair is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await journal.wait(pair.seq)
            delivered = await self._deliver(pair)
            # No await since the answer: a cancellation cannot land between it and this.
            self._commands.settle(pair.key, delivered=delivered)

    async def _deliver(self, pair: Pair) -> bool:
        """Post until the executioner gives a final answer: True accepted, False rejected."""
        maker, taker = pair.maker, pair.taker
        body = {"maker": maker, "taker": taker}
        about: dict[str, Any] = {
            "market": maker["target_tracer"],
            "maker": maker["id"],
            "taker": taker["id"],
            "maker_user": maker["user"],
            "taker_user": taker["user"],
            "key": pair.key,
        }
        attempt = 0
        while True:
            try:
                await self._client.submit(body, pair.key)
            except ExecutionerRejected as exc:
                self.rejected += 1
                log.error("delivery_rejected", status=exc.status, reason=exc.message, **about)
                return False
            except Exception as exc:
                delay = random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt))
                attempt += 1
                self.retries += 1
                retry = {"attempt": attempt, "retry_in": round(delay, 3), **about}
                if isinstance(exc, ExecutionerUnavailable):
                    log.warning("delivery_retry", reason=str(exc), **retry)
                else:
                    log.exception("delivery_retry", **retry)
                await asyncio.sleep(delay)
            else:
                self.delivered += 1
                log.info("pair_delivered", attempts=attempt + 1, **about)
                return True
