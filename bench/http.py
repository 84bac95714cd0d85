"""HTTP benchmark of the running service against a bare aiohttp baseline, all on 127.0.0.1.

    .venv/bin/python bench/http.py                 # 3 runs x 10 s per configuration, ~2 minutes
    .venv/bin/python bench/http.py --quick         # 1 run x 2 s: a smoke test
    .venv/bin/python bench/http.py --client both   # also with aiohttp's ClientSession

Processes (each its own interpreter, so they do not share a core's GIL):

- the development executioner (`python -m ome.devexecutioner`), answering
  `/check` for both servers and receiving the OME's `/submit` deliveries;
- the OME (`ome.__main__.main`, as `python -m ome` runs it: uvloop, plain
  HTTP, log level info, JSON logs to /dev/null, its journal in a temporary
  folder), one market created first; and a second one with `--metrics false`;
- the baseline: a bare aiohttp app whose `POST /book/{market}/order` reads the
  body, parses it with the OME's own parser and pydantic model
  (`ome.wire.parse_body` + `parse_order`, which also computes the order id the
  `/check` body carries), awaits the same `/check` call through the same
  `ExecutionerClient`, and answers a constant;
- the load generator (this file, `load` subcommand): one aiohttp
  `ClientSession`, N workers on N keep-alive connections, for a fixed time.

Configurations, interleaved in every run, each OME load on a market of its own:

- `ome mix`: each worker is a trader; it submits orders (about a third priced
  to cross the other side), cancels its oldest resting order (always when it
  has more than 16 resting, so the book stays a few hundred orders deep), and
  reads single orders and the whole book: 65% submit, 15% cancel, 15% order
  read, 5% book read;
- `ome submit` and `baseline submit`: submissions only, the same bodies; their
  throughput ratio is the figure of merit (goal >= 0.7);
- `ome submit, metrics off`: the same submissions to a second OME started
  with `--metrics false`; `ome submit` over it is what counting costs (goal
  >= 0.95). It gets the same mix load first, so that both carry the same
  state. Besides throughput, each OME's CPU time per submission is read
  from /proc: on a shared machine it is the steadier figure of the two.

With N connections always busy, mean latency is N / throughput (Little's
law): at 64 connections a p99 under 20 ms needs well over 3,000 requests/s.

`--client aiohttp` puts a ClientSession-based class with the same interface
in the place of the shipped httpx `ExecutionerClient`, in the OME and in the
baseline alike (issue 3 asks for both figures when the client dominates).

Reported: requests/s, p50 and p99 latency per kind, each the median over the
runs; the share of submissions that traded; non-2xx answers and errors.
"""

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where its name
# would shadow the standard library's `http` package that aiohttp imports.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
# Imported by another bench, the path it set stays first (bench/journal.py may
# put another build of `ome` ahead of this checkout).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402

SIGNATURE = "0x" + "5e" * 65
EXPIRATION = 4102444800
MAX_RESTING = 16
STARTUP_TIMEOUT = 20.0


# ---------------------------------------------------------------- load generator


class Trader:
    """One worker's orders: bodies to submit and the ids of its orders still resting."""

    def __init__(self, market: str, index: int, rng: random.Random) -> None:
        self.market = market
        self.user = f"0x{0xB0000 + index:040x}"
        self.rng = rng
        # Unique across workers, runs and processes: the ids hash `created`.
        self.created = time.time_ns() // 1000 + index * 10**9
        self.resting: list[str] = []
        self.known: list[str] = []

    def order(self) -> dict[str, Any]:
        rng = self.rng
        self.created += 1
        bid = rng.random() < 0.5
        if rng.random() < 1 / 3:
            # Priced through the other side's best level, small: it trades on arrival.
            price, amount = (1001, 1) if bid else (999, 1)
        else:
            price = rng.randint(990, 999) if bid else rng.randint(1001, 1010)
            amount = rng.randint(1, 5)
        return {
            "user": self.user,
            "target_tracer": self.market,
            "side": "Bid" if bid else "Ask",
            "price": str(price),
            "amount": str(amount),
            "expiration": str(EXPIRATION),
            "created": str(self.created),
            "signed_data": SIGNATURE,
        }


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {}
        self.unexpected: dict[str, int] = {}
        self.traded = 0

    def record(self, kind: str, seconds: float, ok: bool) -> None:
        self.latency.setdefault(kind, []).append(seconds)
        if not ok:
            self.unexpected[kind] = self.unexpected.get(kind, 0) + 1


async def worker(
    session: aiohttp.ClientSession,
    base: str,
    trader: Trader,
    mix: str,
    deadline: float,
    stats: Stats,
) -> None:
    orders_url = f"{base}/book/{trader.market}/order"
    rng = trader.rng
    clock = time.perf_counter
    while clock() < deadline:
        roll = rng.random() if mix == "mix" else 0.0
        if mix == "mix" and (len(trader.resting) > MAX_RESTING or 0.65 <= roll < 0.80):
            if not trader.resting:
                continue
            kind, method, url = "cancel", "DELETE", f"{orders_url}/{trader.resting.pop(0)}"
            body = None
        elif roll < 0.65:
            kind, method, url, body = "submit", "POST", orders_url, trader.order()
        elif roll < 0.95:
            if not trader.known:
                continue
            kind, method, url = "order read", "GET", f"{orders_url}/{rng.choice(trader.known)}"
            body = None
        else:
            kind, method, url, body = "book read", "GET", f"{base}/book/{trader.market}", None
        started = clock()
        try:
            async with session.request(method, url, json=body) as response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError):
            stats.record(kind, clock() - started, False)
            continue
        # A cancel or read may find the order already filled: 404 is a fair answer.
        stats.record(kind, clock() - started, status == 200 or (status == 404 and kind != "submit"))
        if kind == "submit" and status == 200:
            answer = json.loads(data)
            if answer.get("fills"):
                stats.traded += 1
            if "id" in answer:
                trader.known.append(answer["id"])
                if len(trader.known) > 64:
                    trader.known.pop(0)
                if answer["message"] != "FullMatch":
                    trader.resting.append(answer["id"])


async def generate_load(
    base: str, market: str, mix: str, seconds: float, connections: int, seed: int
) -> Any:
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds
        traders = [Trader(market, i, random.Random(seed * 1000 + i)) for i in range(connections)]
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, base, t, mix, deadline, stats) for t in traders))
        elapsed = time.perf_counter() - started
    result: dict[str, Any] = {"kinds": {}, "unexpected": stats.unexpected}
    for kind, samples in stats.latency.items():
        samples.sort()
        result["kinds"][kind] = {
            "rps": len(samples) / elapsed,
            "p50_ms": 1000 * samples[len(samples) // 2],
            "p99_ms": 1000 * samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "count": len(samples),
        }
    submits = result["kinds"].get("submit", {}).get("count", 0)
    result["traded_share"] = stats.traded / submits if submits else 0.0
    return result


# ---------------------------------------------------------------- client variants


def aiohttp_client_class() -> Any:
    """`ExecutionerClient`'s interface on aiohttp's own ClientSession, for comparison only."""
    from ome import executioner

    class SessionClient:
        def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
            base = base_url.rstrip("/")
            self._check, self._submit = f"{base}/check", f"{base}/submit"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                timeout=aiohttp.ClientTimeout(total=timeout),
                json_serialize=lambda data: json.dumps(data, separators=(",", ":")),
            )

        async def check(self, order: dict[str, Any]) -> None:
            await self._post(self._check, {"order": order}, {})

        async def submit(self, pair: dict[str, Any], idempotency_key: str) -> None:
            await self._post(self._submit, pair, {"Idempotency-Key": idempotency_key})

        async def aclose(self) -> None:
            await self._session.close()

        async def _post(self, url: str, body: Any, headers: dict[str, str]) -> None:
            try:
                async with self._session.post(url, json=body, headers=headers) as response:
                    content = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise executioner.ExecutionerUnavailable(type(exc).__name__) from exc
            if 400 <= status < 500:
                raise executioner.ExecutionerRejected(status, content.decode(errors="replace"))
            if status >= 300:
                raise executioner.ExecutionerUnavailable(f"executioner answered {status}")

    return SessionClient


def use_client(name: str) -> Any:
    """The executioner client class to use, installed where the OME's app factory looks."""
    from ome.api import app
    from ome.executioner import ExecutionerClient

    chosen = ExecutionerClient if name == "httpx" else aiohttp_client_class()
    app.ExecutionerClient = chosen  # type: ignore[misc]
    return chosen


def serve_ome(client: str, argv: list[str]) -> None:
    from ome.__main__ import main as ome_main

    use_client(client)
    ome_main(argv)


# ---------------------------------------------------------------- baseline server


def baseline_app(executioner: str, client: str) -> Any:
    from aiohttp import web

    from ome.wire import parse_body, parse_order

    ExecutionerClient = use_client(client)
    client_key = web.AppKey("client", ExecutionerClient)
    constant = b'{"status":200,"message":"Add"}'

    async def submit(request: web.Request) -> web.Response:
        order = parse_order(parse_body(await request.read()))
        await request.app[client_key].check(order.to_dict())
        return web.Response(body=constant, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=constant, content_type="application/json")

    async def client_context(app: web.Application) -> Any:
        app[client_key] = ExecutionerClient(executioner)
        yield
        await app[client_key].aclose()

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_post("/book/{market}/order", submit)
    app.cleanup_ctx.append(client_context)
    return app


def serve_baseline(port: int, executioner: str, client: str) -> None:
    from aiohttp import web

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        baseline_app(executioner, client), host="127.0.0.1", port=port, access_log=None, print=None
    )


# ---------------------------------------------------------------- orchestration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, process: subprocess.Popen[bytes], method: str = "GET") -> None:
    """Wait until `url` answers other than 503. A bare base URL is asked for `/ready`: an
    OME answers `GET /` while it is still restoring, and its other routes 503 until done."""
    if not url.split("://", 1)[-1].partition("/")[2]:
        url = url.rstrip("/") + "/ready"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{process.args} exited with {process.returncode}")
            try:
                async with session.request(method, url, json={}) as response:
                    await response.read()
                    # 503: the OME's port is bound, its state still restoring.
                    if response.status != 503:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def started(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def market_address(number: int) -> str:
    return f"0x{0x61F5A3D36C10D7EA1D797E70F7486EB7AD170000 + number:040x}"


async def create_market(base: str, market: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/book", json={"market": market}) as response,
    ):
        assert response.status == 201, await response.text()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux); what its requests cost whatever
    else the machine is doing, unlike throughput on a shared box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(pid: int, *args: Any) -> Any:
    """`run_load` that also records the server's CPU microseconds per request."""
    before = cpu_seconds(pid)
    result = run_load(*args)
    used = cpu_seconds(pid) - before
    requests = sum(kind["count"] for kind in result["kinds"].values())
    result["cpu_us_per_request"] = 1e6 * used / requests if requests else 0.0
    return result


def run_load(base: str, market: str, mix: str, seconds: float, connections: int, seed: int) -> Any:
    output = subprocess.run(
        [
            *(sys.executable, __file__, "load", base, market, mix),
            *(str(seconds), str(connections), str(seed)),
        ],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )
    return json.loads(output.stdout)


def median_table(results: list[Any]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for kind in results[0]["kinds"]:
        table[kind] = {
            field: statistics.median(r["kinds"][kind][field] for r in results if kind in r["kinds"])
            for field in ("rps", "p50_ms", "p99_ms")
        }
    return table


def print_table(title: str, results: list[Any]) -> dict[str, dict[str, float]]:
    table = median_table(results)
    print(f"\n{title}")
    print(f"  {'kind':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, row in table.items():
        print(f"  {kind:<12} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}")
    total = sum(row["rps"] for row in table.values())
    print(f"  {'all':<12} {total:>9.0f}")
    unexpected: dict[str, int] = {}
    for r in results:
        for kind, count in r["unexpected"].items():
            unexpected[kind] = unexpected.get(kind, 0) + count
    traded = statistics.median(r["traded_share"] for r in results)
    print(f"  submissions that traded: {traded:.0%}; unexpected answers: {unexpected or 'none'}")
    return table


async def orchestrate(
    seconds: float, runs: int, connections: int, client: str, fsync: str = "always"
) -> None:
    exec_port, ome_port, base_port = free_port(), free_port(), free_port()
    bare_port = free_port()
    executioner = f"http://127.0.0.1:{exec_port}"
    ome = f"http://127.0.0.1:{ome_port}"
    bare = f"http://127.0.0.1:{bare_port}"
    baseline = f"http://127.0.0.1:{base_port}"

    def ome_args(port: int, folder: str, *extra: str) -> list[str]:
        os.makedirs(folder, exist_ok=True)
        return [
            __file__, "ome", client, "-l", "127.0.0.1", "-p", str(port), "--force-no-tls",
            "--executioner_address", executioner, "--dumpfile", f"{folder}/dump.json",
            "--journal_dir", f"{folder}/journal", "--fsync", fsync,
            # Its traders have no keys: the mix cancels with a body-less DELETE.
            "--allow_unsigned_cancel", *extra,
        ]  # fmt: skip

    with tempfile.TemporaryDirectory() as folder, started(
        ["-m", "ome.devexecutioner", "--port", str(exec_port), "--log-level", "warning"]
    ) as exec_process, started(
        ome_args(ome_port, folder)
    ) as ome_process, started(
        # The same OME with its metrics turned off: what counting costs.
        ome_args(bare_port, f"{folder}/bare", "--metrics", "false")
    ) as bare_process, started(
        [__file__, "baseline", str(base_port), executioner, client]
    ) as base_process:  # fmt: skip
        await wait_ready(f"{executioner}/check", exec_process, method="POST")
        await wait_ready(ome, ome_process)
        await wait_ready(bare, bare_process)
        await wait_ready(baseline, base_process)
        print(
            f"\n=== executioner client: {client}; journal fsync {fsync}; {runs} run(s) x "
            f"{seconds:g} s per configuration, {connections} connections, {os.cpu_count()} CPUs, "
            f"Python {sys.version.split()[0]}"
        )
        collected: dict[str, list[Any]] = {
            "ome mix": [],
            "ome submit": [],
            "ome submit, metrics off": [],
            "baseline": [],
        }
        for run in range(runs):
            # A new market for each OME load, so that no run reads a book another grew.
            mix_market, submit_market = market_address(2 * run), market_address(2 * run + 1)
            await create_market(ome, mix_market)
            await create_market(ome, submit_market)
            collected["ome mix"].append(run_load(ome, mix_market, "mix", seconds, connections, run))
            # The same history for the OME without metrics: a bigger heap alone costs time
            # (the collector walks it), which would be charged to the metrics otherwise.
            await create_market(bare, mix_market)
            await create_market(bare, submit_market)
            run_load(bare, mix_market, "mix", seconds, connections, run)
            # Alternated, so that neither always runs first after the mix.
            pair = [
                ("ome submit", ome_process.pid, ome),
                ("ome submit, metrics off", bare_process.pid, bare),
            ]
            for name, pid, url in pair if run % 2 == 0 else reversed(pair):
                collected[name].append(
                    measured_load(pid, url, submit_market, "submit", seconds, connections, run)
                )
            collected["baseline"].append(
                run_load(baseline, submit_market, "submit", seconds, connections, run)
            )
            print(f"  run {run + 1}/{runs} done", flush=True)

    print_table("OME, realistic mix", collected["ome mix"])
    ours = print_table("OME, submissions only", collected["ome submit"])["submit"]
    off = print_table("OME, submissions only, metrics off", collected["ome submit, metrics off"])
    theirs = print_table("Baseline (parse + /check + constant)", collected["baseline"])["submit"]
    print(
        f"\nsubmission throughput ratio OME / baseline: {ours['rps'] / theirs['rps']:.2f} "
        f"(goal >= 0.70); OME submit p99 {ours['p99_ms']:.1f} ms (goal < 20 ms)"
    )
    on_runs, off_runs = collected["ome submit"], collected["ome submit, metrics off"]
    paired = [
        a["kinds"]["submit"]["rps"] / b["kinds"]["submit"]["rps"]
        for a, b in zip(on_runs, off_runs, strict=True)
    ]
    cpu_on = statistics.median(r["cpu_us_per_request"] for r in on_runs)
    cpu_off = statistics.median(r["cpu_us_per_request"] for r in off_runs)
    print(
        f"submission throughput metrics on / off: {ours['rps'] / off['submit']['rps']:.3f} "
        f"(medians), per run {', '.join(f'{r:.3f}' for r in paired)} (goal >= 0.95)\n"
        f"OME CPU per submission: {cpu_on:.0f} us with metrics, {cpu_off:.0f} us without: "
        f"on / off throughput at equal CPU {cpu_off / cpu_on:.3f}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        base, market, mix, seconds, connections, seed = sys.argv[2:8]
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        result = asyncio.run(
            generate_load(base, market, mix, float(seconds), int(connections), int(seed))
        )
        print(json.dumps(result))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "baseline":
        serve_baseline(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "ome":
        serve_ome(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="1 run of 2 s: a smoke test")
    parser.add_argument(
        "--client",
        choices=("httpx", "aiohttp", "both"),
        default="httpx",
        help="executioner client of OME and baseline: the shipped httpx one, aiohttp's "
        "ClientSession in its place, or both one after the other",
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "off"),
        default="always",
        help="the OMEs' journal: durable before each answer (as served), or not (what the "
        "rest costs without the disk)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.runs = 2.0, 1
    for client in ("httpx", "aiohttp") if args.client == "both" else (args.client,):
        asyncio.run(orchestrate(args.duration, args.runs, args.connections, client, args.fsync))


if __name__ == "__main__":
    main()
