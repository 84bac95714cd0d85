"""Big reads beside small requests: how long `GET /` waits while whole books are read.

    .venv/bin/python bench/bigread.py                    # 200,000 and 1,000,000 resting orders
    .venv/bin/python bench/bigread.py --orders 200000    # one size
    .venv/bin/python bench/bigread.py --quick            # 20,000: a smoke run

Per size: a dumpfile holding one market with that many resting orders (half
bids, half asks, 1,000 price levels a side) is written, and the OME started
on it (as `bench/http.py` starts it). A probe process sends `GET /` every
10 ms on its own connection, first alone (the baseline), then while this
process reads `GET /book/{market}` and `GET /book/{market}/order` back to
back, plain and gzip. Reported: the probe's p50, p99 and worst latency in
both phases (the goal: no request waits more than 50 ms behind a big read at
200,000), each big read's duration and size, and the memory the full-book
cache (`ome.fullbook`) holds per resting order once every order is encoded
(tracemalloc, in this process, on the same book).
"""

import sys
from pathlib import Path

# As in bench/http.py: this folder must not come first on sys.path.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_http", BENCH / "http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)

MARKET = bench_http.market_address(7000)
LEVELS = 1000
PROBE_EVERY = 0.01


def write_book(path: Path, orders: int) -> float:
    """Write the dumpfile; the full-book cache's bytes per resting order."""
    from ome.engine import Exchange, Order, Side
    from ome.fullbook import FullBooks
    from ome.persistence import write_dump
    from ome.state import State

    exchange = Exchange()
    book = exchange.create(MARKET)
    for index in range(orders):
        side = Side.Bid if index % 2 == 0 else Side.Ask
        level = (index // 2) % LEVELS
        price = 10_000 - level if side is Side.Bid else 10_001 + level
        order = Order.create(
            user=f"0x{0xC0000 + index % 5000:040x}",
            target_tracer=MARKET,
            side=side,
            price=price,
            amount=1 + index % 7,
            expiration=bench_http.EXPIRATION,
            created=index,
            signed_data=bench_http.SIGNATURE,
        )
        book.submit(order, 0)
    write_dump(path, State(exchange))
    tracemalloc.start()
    cache = FullBooks(exchange)
    cache.build()
    cache.cache(book).flush()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / orders


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


async def probe(base: str, seconds: float, latencies: list[float]) -> None:
    """`GET /` every PROBE_EVERY seconds for `seconds`, each latency (ms) into `latencies`."""
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            async with session.get(base + "/") as response:
                await response.read()
            latencies.append(1000 * (time.monotonic() - started))
            await asyncio.sleep(PROBE_EVERY)


def start_probe(base: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "probe", base, str(seconds)], stdout=subprocess.PIPE, text=True
    )


def summary(latencies: list[float]) -> str:
    return (
        f"p50 {quantile(latencies, 0.5):6.2f} ms, p99 {quantile(latencies, 0.99):6.2f} ms, "
        f"max {max(latencies):6.2f} ms ({len(latencies)} requests)"
    )


async def big_reads(base: str, rounds: int) -> list[tuple[str, float, int]]:
    reads = []
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        for _ in range(rounds):
            for path in (f"/book/{MARKET}", f"/book/{MARKET}/order"):
                for encoding in ("identity", "gzip"):
                    started = time.monotonic()
                    headers = {"Accept-Encoding": encoding}
                    async with session.get(base + path, headers=headers) as response:
                        size = len(await response.read())
                        assert response.status == 200
                    name = f"{path.replace(MARKET, '{market}')} {encoding}"
                    reads.append((name, time.monotonic() - started, size))
    return reads


async def measure(orders: int, rounds: int) -> dict[str, Any]:
    exec_port, ome_port = bench_http.free_port(), bench_http.free_port()
    executioner = f"http://127.0.0.1:{exec_port}"
    base = f"http://127.0.0.1:{ome_port}"
    with tempfile.TemporaryDirectory() as folder:
        dumpfile = Path(folder) / "dump.json"
        started = time.monotonic()
        per_order = await asyncio.to_thread(write_book, dumpfile, orders)
        took = time.monotonic() - started
        print(f"\n{orders:,} resting orders: dumpfile written in {took:.0f} s")
        print(f"  full-book cache: {per_order:.0f} bytes per resting order")
        with bench_http.started(
            ["-m", "ome.devexecutioner", "--port", str(exec_port), "--log-level", "warning"]
        ) as exec_process, bench_http.started(
            [
                str(BENCH / "http.py"), "ome", "httpx", "-l", "127.0.0.1", "-p", str(ome_port),
                "--force-no-tls", "--executioner_address", executioner,
                "--dumpfile", str(dumpfile), "--snapshot-interval", "100000",
            ]
        ) as ome_process:  # fmt: skip
            await bench_http.wait_ready(f"{executioner}/check", exec_process, method="POST")
            bench_http.STARTUP_TIMEOUT = 600.0
            await bench_http.wait_ready(base, ome_process)
            await wait_serving(base, 900)
            alone = start_probe(base, 3.0)
            baseline = json.loads(alone.communicate(timeout=60)[0])
            print(f"  GET / alone:            {summary(baseline)}")
            during = start_probe(base, 3600.0)
            await asyncio.sleep(0.5)
            reads = await big_reads(base, rounds)
            during.terminate()
            busy = json.loads(during.communicate(timeout=60)[0])
            print(f"  GET / during big reads: {summary(busy)}")
            for name, seconds, size in reads:
                print(f"  {name:<28} {seconds:6.2f} s  {size / 1e6:7.1f} MB")
    return {"orders": orders, "alone": baseline, "busy": busy}


async def probe_until_stopped(base: str, seconds: float) -> None:
    """Probe for `seconds` or until SIGTERM; print the latencies."""
    latencies: list[float] = []
    task = asyncio.create_task(probe(base, seconds, latencies))
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    print(json.dumps(latencies))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        asyncio.run(probe_until_stopped(sys.argv[2], float(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="resting orders (repeatable)")
    parser.add_argument("--rounds", type=int, default=2, help="big-read rounds per size")
    parser.add_argument("--quick", action="store_true", help="20,000 orders, one round")
    args = parser.parse_args()
    sizes = args.orders or ([20_000] if args.quick else [200_000, 1_000_000])
    rounds = 1 if args.quick else args.rounds
    print(f"=== big reads, Python {sys.version.split()[0]}")
    for orders in sizes:
        asyncio.run(measure(orders, rounds))


if __name__ == "__main__":
    main()
