"""WebSocket feed benchmark: fan-out latency to 1,000 subscribers, and what subscribers cost.

    .venv/bin/python bench/feed.py            # ~2 minutes
    .venv/bin/python bench/feed.py --quick    # a smoke run, ~20 s

Processes, all on 127.0.0.1 (each its own interpreter): the development
executioner, the OME (as `bench/http.py` starts it), a subscriber process
holding the WebSocket connections, and the order senders.

1. Fan-out: S subscribers (default 1,000) on one market's depth channel; one
   sender submits orders one at a time at a steady rate. Only it changes that
   market, so its k-th order is the market's update with seq k. All S read
   every message; `--sample` of them (default 50) parse and time them. Per
   update and timed subscriber: arrival time minus the time the sender received the order's
   answer (CLOCK_MONOTONIC, shared by the processes), p50 and p99. Negative
   means the update arrived before the answer: the feed publishes when the
   command is applied, the answer waits for the journal to be durable.
2. Cost: submission throughput of `bench/http.py`'s submit-only load with 100
   depth+trades subscribers on the market under load, against the same load
   with none, interleaved runs, each on a fresh market; the ratio of the
   medians (goal >= 0.8). The subscribers' own process shares the 2 CPUs, so
   the ratio is a lower bound for the server's share.
"""

import sys
from pathlib import Path

# As in bench/http.py: this folder must not come first on sys.path, where
# http.py would shadow the standard library's `http` package.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import orjson  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_http", BENCH / "http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)


async def wait_serving(base: str, timeout: float) -> None:
    """Until `GET /ready` answers 200: the state restored, the book open for orders."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(base + "/ready") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{base} did not become ready")


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# ---------------------------------------------------------------- subscriber process


async def connect(base: str, request: dict[str, Any]) -> tuple[Any, Any]:
    """A raw WebSocket connection to `/ws` that has sent `request`: (reader, writer).

    Raw sockets rather than aiohttp's client: a thousand clients in one
    Python process must cost as little as possible, or they, not the server,
    would be what is measured.
    """
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"no upgrade: {head[:80]!r}")
    payload = orjson.dumps(request)
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    assert len(payload) < 126
    writer.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)
    return reader, writer


def frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """The complete (opcode, payload) frames at the front of `buffer`, removed from it."""
    found = []
    view = memoryview(buffer)
    offset = 0
    end = len(buffer)
    while end - offset >= 2:
        size, start = view[offset + 1] & 0x7F, offset + 2
        if size == 126:
            if end - offset < 4:
                break
            size, start = struct.unpack_from("!H", view, offset + 2)[0], offset + 4
        elif size == 127:
            if end - offset < 10:
                break
            size, start = struct.unpack_from("!Q", view, offset + 2)[0], offset + 10
        if start + size > end:
            break
        found.append((view[offset] & 0x0F, bytes(view[start : start + size])))
        offset = start + size
    view.release()
    # One move of what is left, not one per frame.
    del buffer[:offset]
    return found


async def subscribe_all(
    base: str, market: str, count: int, channels: list[str], seconds: float, parsed: int
) -> dict[str, Any]:
    """Hold `count` subscriptions for `seconds`; per seq the arrival times at the first `parsed`.

    The others read and drop what they get: parsing every message of a
    thousand sockets in one Python process would make this process, not the
    server, the bottleneck on two cores.
    """
    arrivals: dict[int, list[float]] = {}
    gaps = 0
    closed = 0
    close_codes: dict[str, int] = {}
    request = {"op": "subscribe", "market": market, "channels": channels}
    connections = [await connect(base, request) for _ in range(count)]
    print("ready", flush=True)
    clock = time.monotonic

    async def follow(reader: Any, parse: bool) -> None:
        nonlocal gaps, closed
        buffer = bytearray()
        last = None
        while data := await reader.read(1 << 20):
            if not parse:
                continue
            arrived = clock()
            buffer += data
            for opcode, payload in frames(buffer):
                if opcode == 0x8:
                    code = str(struct.unpack("!H", payload[:2])[0]) if payload else "none"
                    close_codes[code] = close_codes.get(code, 0) + 1
                    closed += 1
                    return
                if opcode != 0x1:
                    continue
                message = orjson.loads(payload)
                if message["type"] == "snapshot":
                    last = message["seq"]
                elif message["type"] == "update":
                    seq = message["seq"]
                    arrivals.setdefault(seq, []).append(arrived)
                    if last is not None and seq != last + 1:
                        gaps += 1
                    last = seq
        closed += 1

    tasks = [
        asyncio.create_task(follow(reader, index < parsed))
        for index, (reader, _) in enumerate(connections)
    ]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, writer in connections:
        writer.close()
    return {
        "arrivals": {str(k): v for k, v in arrivals.items()},
        "gaps": gaps,
        "closed": closed,
        "close_codes": close_codes,
    }


def run_subscribers(
    base: str, market: str, count: int, channels: list[str], seconds: float, parsed: int
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            *(sys.executable, __file__, "subscribe", base, market, str(count)),
            *(",".join(channels), str(seconds), str(parsed)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"subscribers did not start: {line!r}")
    return process


# ---------------------------------------------------------------- fan-out


async def steady_orders(base: str, market: str, rate: float, count: int) -> list[float]:
    """Submit `count` resting orders, one at a time, `rate` per second; answer times."""
    trader = bench_http.Trader(market, 0, random.Random(1))
    answers = []
    async with aiohttp.ClientSession() as session:
        url = f"{base}/book/{market}/order"
        start = time.monotonic()
        for k in range(count):
            await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
            body = trader.order()
            # Never crossing: one order, one update, nothing else changes the market.
            body["price"] = str(900 + k % 50) if body["side"] == "Bid" else str(1100 + k % 50)
            async with session.post(url, json=body) as response:
                await response.read()
                assert response.status == 200
            answers.append(time.monotonic())
    return answers


async def fan_out(base: str, subscribers: int, rate: float, count: int, sample: int) -> None:
    market = bench_http.market_address(9000)
    await bench_http.create_market(base, market)
    # Room for a sender that falls behind its rate on a loaded machine.
    seconds = 3 * count / rate + 15
    process = run_subscribers(base, market, subscribers, ["depth"], seconds, parsed=sample)
    # Let every subscription's snapshot land first.
    await asyncio.sleep(2)
    answers = await steady_orders(base, market, rate, count)
    output, _ = process.communicate(timeout=seconds + 60)
    result = json.loads(output)
    latencies = []
    missing = 0
    for k, answered in enumerate(answers, start=1):
        arrived = result["arrivals"].get(str(k), [])
        missing += sample - len(arrived)
        latencies.extend(1000 * (t - answered) for t in arrived)
    print(
        f"\nfan-out: {subscribers} subscribers, {count} updates at {rate:g}/s, timed at "
        f"{sample} of them: latency from answer to arrival p50 {quantile(latencies, 0.5):.2f} ms, "
        f"p99 {quantile(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms; "
        f"missing {missing}, gaps {result['gaps']}, closed early {result['closed']} "
        f"(close codes {result['close_codes']})"
    )


# ---------------------------------------------------------------- cost


async def cost(base: str, runs: int, seconds: float, connections: int) -> None:
    rates: dict[int, list[float]] = {0: [], 100: []}
    for run in range(runs):
        for subscribers in (0, 100):
            market = bench_http.market_address(9100 + 2 * run + (subscribers > 0))
            await bench_http.create_market(base, market)
            process = None
            if subscribers:
                process = run_subscribers(
                    base, market, subscribers, ["depth", "trades"], seconds + 5, parsed=0
                )
                await asyncio.sleep(1)
            result = await asyncio.to_thread(
                bench_http.run_load, base, market, "submit", seconds, connections, run
            )
            if process is not None:
                output, _ = process.communicate(timeout=seconds + 60)
                closed = json.loads(output)["closed"]
                if closed:
                    print(f"  warning: {closed} subscribers were closed early (slow consumers)")
            rates[subscribers].append(result["kinds"]["submit"]["rps"])
        print(f"  run {run + 1}/{runs}: none {rates[0][-1]:.0f}/s, 100 {rates[100][-1]:.0f}/s")
    none, hundred = statistics.median(rates[0]), statistics.median(rates[100])
    print(
        f"\nsubmissions/s, median of {runs}: no subscribers {none:.0f}, 100 subscribers "
        f"{hundred:.0f}; ratio {hundred / none:.2f} (goal >= 0.80)"
    )


async def orchestrate(args: argparse.Namespace) -> None:
    exec_port, ome_port = bench_http.free_port(), bench_http.free_port()
    executioner = f"http://127.0.0.1:{exec_port}"
    base = f"http://127.0.0.1:{ome_port}"
    with tempfile.TemporaryDirectory() as folder, bench_http.started(
        ["-m", "ome.devexecutioner", "--port", str(exec_port), "--log-level", "warning"]
    ) as exec_process, bench_http.started(
        [
            str(BENCH / "http.py"), "ome", "httpx", "-l", "127.0.0.1", "-p", str(ome_port),
            "--force-no-tls", "--executioner_address", executioner,
            "--dumpfile", f"{folder}/dump.json",
        ]
    ) as ome_process:  # fmt: skip
        await bench_http.wait_ready(f"{executioner}/check", exec_process, method="POST")
        await bench_http.wait_ready(base, ome_process)
        await wait_serving(base, 60)
        print(
            f"=== feed benchmark: {args.subscribers} subscribers fan-out, "
            f"Python {sys.version.split()[0]}"
        )
        await fan_out(base, args.subscribers, args.rate, args.updates, args.sample)
        await cost(base, args.runs, args.seconds, args.connections)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "subscribe":
        base, market, count, channels, seconds, parsed = sys.argv[2:8]
        result = asyncio.run(
            subscribe_all(
                base, market, int(count), channels.split(","), float(seconds), int(parsed)
            )
        )
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="updates per second")
    parser.add_argument("--sample", type=int, default=50, help="subscribers timed")
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.updates, args.runs, args.seconds, args.sample = 50, 40, 1, 2.0, 10
    asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
