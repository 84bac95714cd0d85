"""A stand-in executioner for development: checks orders, validates and logs matched pairs.

It speaks the executioner's side of docs/API.md "Executioner":

- `POST /check` `{"order": order}`: 200 when the order is well formed (canonical
  addresses, an id that matches its fields, amounts within 1..2^128-1, a
  signature-shaped `signed_data`) and not expired; 400 with the reason otherwise.
- `POST /submit` `{"maker": order, "taker": order}`: 200 when both orders are
  well formed, of the same market, on opposite sides, and their prices cross
  (bid price >= ask price); 400 with the reason otherwise. A pair whose
  `Idempotency-Key` was already settled is acknowledged again, not settled twice.

It verifies no signatures and settles nothing on chain: it only logs
`pair_settled`. `python -m ome --dev` runs it inside the OME's process;
`python -m ome.devexecutioner --port 3000` runs it alone on 127.0.0.1.
"""

import argparse
import asyncio
import re
import signal
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

try:
    import uvloop
except ImportError:  # uvloop does not build on Windows
    uvloop = None  # type: ignore[assignment]

from ome.engine import MAX_UINT128, Side, order_id
from ome.logs import configure_logging

_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_ID = re.compile(r"0x[0-9a-f]{64}")
_SIGNATURE = re.compile(r"0x(?:[0-9a-fA-F]{2})+")
_DECIMAL = re.compile(r"[0-9]{1,78}")
# Remembered idempotency keys; older ones are forgotten first.
_KEYS_REMEMBERED = 100_000

log = structlog.get_logger()


class InvalidRequest(Exception):
    """The request is not something the executioner would accept; the message says why."""


def _uint(order: dict[str, Any], name: str, low: int, high: int) -> int:
    value = order.get(name)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise InvalidRequest(f"{name} must be a decimal string")
    number = int(value)
    if not low <= number <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}")
    return number


def validate_order(order: Any, *, filled: bool = False) -> dict[str, Any]:
    """Check one wire order object; `filled` allows `amount_left` 0 (a pair's orders)."""
    if not isinstance(order, dict):
        raise InvalidRequest("order must be an object")
    for name, pattern in (("id", _ID), ("user", _ADDRESS), ("target_tracer", _ADDRESS)):
        value = order.get(name)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidRequest(f"{name} must be 0x followed by lowercase hex")
    signature = order.get("signed_data")
    if not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
        raise InvalidRequest("signed_data must be 0x followed by hex")
    side = order.get("side")
    if side not in ("Bid", "Ask"):
        raise InvalidRequest("side must be Bid or Ask")
    price = _uint(order, "price", 1, MAX_UINT128)
    amount = _uint(order, "amount", 1, MAX_UINT128)
    _uint(order, "amount_left", 0 if filled else 1, amount)
    expiration = _uint(order, "expiration", 0, 2**256 - 1)
    created = _uint(order, "created", 0, 2**256 - 1)
    expected = order_id(
        order["user"], order["target_tracer"], price, amount, Side[side], expiration, created
    )
    if order["id"] != expected:
        raise InvalidRequest(f"id does not match the order's fields (expected {expected})")
    return order


def validate_pair(pair: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(pair, dict):
        raise InvalidRequest("body must be an object with maker and taker")
    maker = validate_order(pair.get("maker"), filled=True)
    taker = validate_order(pair.get("taker"), filled=True)
    if maker["target_tracer"] != taker["target_tracer"]:
        raise InvalidRequest("maker and taker are in different markets")
    if maker["side"] == taker["side"]:
        raise InvalidRequest("maker and taker are on the same side")
    bid, ask = (maker, taker) if maker["side"] == "Bid" else (taker, maker)
    if int(bid["price"]) < int(ask["price"]):
        raise InvalidRequest("prices do not cross: the bid is below the ask")
    if maker["user"] == taker["user"]:
        raise InvalidRequest("maker and taker are the same user")
    return maker, taker


def _answer(status: int, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps({"status": status, "message": message}),
        status=status,
        content_type="application/json",
    )


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise InvalidRequest("body is not JSON") from None


def create_dev_executioner(*, clock: Callable[[], float] = time.time) -> web.Application:
    """The app; `clock` gives unix seconds for the expiry test."""
    settled: OrderedDict[str, None] = OrderedDict()

    async def check(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            order = validate_order(body.get("order") if isinstance(body, dict) else None)
            if int(order["expiration"]) <= clock():
                raise InvalidRequest("order has expired")
        except InvalidRequest as exc:
            log.info("check_refused", reason=str(exc))
            return _answer(400, str(exc))
        log.debug("check_accepted", market=order["target_tracer"], order=order["id"])
        return _answer(200, "ok")

    async def submit(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        try:
            maker, taker = validate_pair(await _body(request))
        except InvalidRequest as exc:
            log.warning("pair_refused", key=key, reason=str(exc))
            return _answer(400, str(exc))
        fields = {"market": maker["target_tracer"], "maker": maker["id"], "taker": taker["id"]}
        if key and key in settled:
            log.info("pair_duplicate", key=key, **fields)
            return _answer(200, "already settled")
        if key:
            settled[key] = None
            if len(settled) > _KEYS_REMEMBERED:
                settled.popitem(last=False)
        log.info(
            "pair_settled",
            key=key,
            price=maker["price"],
            maker_amount_left=maker["amount_left"],
            taker_amount_left=taker["amount_left"],
            **fields,
        )
        return _answer(200, "ok")

    app = web.Application()
    app.router.add_post("/check", check)
    app.router.add_post("/submit", submit)
    return app


async def start_dev_executioner(host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Serve the app on `host:port` (0: a free port); read the URL with `address_of`."""
    runner = web.AppRunner(create_dev_executioner(), access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("dev_executioner_started", url=address_of(runner))
    return runner


def address_of(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


async def _serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = await start_dev_executioner(host, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ome.devexecutioner", description="Development executioner for the OME."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=3000, help="port to listen on (3000)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    run = asyncio.run if uvloop is None else uvloop.run
    run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
