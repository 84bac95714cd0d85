"""The outbox: matched pairs waiting for the executioner, and the task that sends them.

Handlers call `Outbox.add(fills)` right after matching; it only queues (no
await), so the client's answer never waits for the executioner. `Outbox.run`
is the one background sender: it posts the pairs strictly in fill order, one
at a time, and a pair leaves the queue only when the executioner answered for
it. Hence a pair whose POST was in flight when the task was cancelled is still
pending and goes into the dump, to be sent again after a restart.

A pair is `{"key": idempotency key, "maker": order, "taker": order}` with each
order as it stood right after the fill. The key is derived from both ids and
both amounts left, so it is the same on every retry, survives a restart (it is
stored with the pair), and differs between any two fills of one process.

Failures: `ExecutionerUnavailable` (and any unexpected error) is retried
forever with capped exponential backoff and full jitter; `ExecutionerRejected`
is final, logged and counted, and the sender goes on with the next pair.
"""

import asyncio
import hashlib
import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from ome.engine import Fill
from ome.executioner import ExecutionerClient, ExecutionerRejected, ExecutionerUnavailable

Pair = dict[str, Any]

log = structlog.get_logger()


def idempotency_key(maker: dict[str, Any], taker: dict[str, Any]) -> str:
    """Stable name of one fill: the two orders and what was left of each after it."""
    material = "|".join(
        (maker["id"], taker["id"], maker["amount_left"], taker["amount_left"])
    ).encode()
    return hashlib.sha256(material).hexdigest()[:32]


def make_pair(fill: Fill) -> Pair:
    maker_order, taker_order, _price, _amount, maker_left, taker_left = fill
    maker = maker_order.to_dict(maker_left)
    taker = taker_order.to_dict(taker_left)
    return {"key": idempotency_key(maker, taker), "maker": maker, "taker": taker}


class Outbox:
    """Ordered queue of undelivered pairs and its sender.

    `base_delay` is the cap of the first retry's wait, doubled per attempt up to
    `max_delay`; each wait is drawn uniformly below its cap (full jitter).
    """

    def __init__(
        self,
        pending: Iterable[Pair] = (),
        *,
        base_delay: float = 1.0,
        max_delay: float = 10.0,
    ) -> None:
        self._queue: deque[Pair] = deque(parse_pair(pair) for pair in pending)
        self._wakeup = asyncio.Event()
        self._base_delay = base_delay
        self._max_delay = max_delay
        self.delivered = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, fills: Sequence[Fill]) -> None:
        """Queue one pair per fill, in fill order."""
        if not fills:
            return
        self._queue.extend(make_pair(fill) for fill in fills)
        self._wakeup.set()

    def pending(self) -> list[Pair]:
        """Undelivered pairs in sending order, the one in flight first."""
        return list(self._queue)

    async def run(self, client: ExecutionerClient) -> None:
        """Send pairs until cancelled."""
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            pair = self._queue[0]
            await self._deliver(client, pair)
            # No await since the answer: a cancellation cannot land between it and this.
            self._queue.popleft()

    async def _deliver(self, client: ExecutionerClient, pair: Pair) -> None:
        maker, taker = pair["maker"], pair["taker"]
        body = {"maker": maker, "taker": taker}
        about = {
            "market": maker["target_tracer"],
            "maker": maker["id"],
            "taker": taker["id"],
            "maker_user": maker["user"],
            "taker_user": taker["user"],
            "key": pair["key"],
        }
        attempt = 0
        while True:
            try:
                await client.submit(body, pair["key"])
            except ExecutionerRejected as exc:
                self.rejected += 1
                log.error("delivery_rejected", status=exc.status, reason=exc.message, **about)
                return
            except Exception as exc:
                delay = random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt))
                attempt += 1
                retry = {"attempt": attempt, "retry_in": round(delay, 3), **about}
                if isinstance(exc, ExecutionerUnavailable):
                    log.warning("delivery_retry", reason=str(exc), **retry)
                else:
                    log.exception("delivery_retry", **retry)
                await asyncio.sleep(delay)
            else:
                self.delivered += 1
                log.info("pair_delivered", attempts=attempt + 1, **about)
                return


def parse_pair(pair: Any) -> Pair:
    """A pair read back from a dump; raise ValueError when it is not one."""
    if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
        raise ValueError(f"not an outbox pair: {pair!r:.80}")
    for role in ("maker", "taker"):
        order = pair.get(role)
        if not isinstance(order, dict) or not all(
            isinstance(order.get(field), str)
            for field in ("id", "user", "target_tracer", "amount_left")
        ):
            raise ValueError(f"outbox pair without a valid {role}: {pair!r:.80}")
    return {"key": pair["key"], "maker": pair["maker"], "taker": pair["taker"]}
