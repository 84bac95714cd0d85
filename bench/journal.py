"""Durability benchmark (issue 8): what the journal costs, how fast a crash recovers, what a
snapshot stalls. All on 127.0.0.1 and in temporary folders.

    .venv/bin/python bench/journal.py            # 3 runs of each part; ~3 GB of memory at peak
    .venv/bin/python bench/journal.py --quick    # small sizes, 1 run each: a smoke test

1. Throughput. The OME as a subprocess (`python -m ome`, log level info into a
   file), the development executioner as another (`python -m ome.devexecutioner`),
   the load generator of bench/http.py (its `submit` mix: 64 connections, one
   new market per run, about a third of the orders trade). Three configurations,
   interleaved in every run, each a fresh OME on a fresh journal folder:
   `--fsync always`, `--fsync off`, and for reference the last commit before
   the journal (REFERENCE_COMMIT, extracted with `git archive` into a temporary
   folder and run from there with the same interpreter and packages). Reported:
   submissions/s and p50/p99 (medians), the ratio always/off, the OME's CPU
   time per submission (steadier than throughput on a shared machine), and the
   mean records per fsync: the growth of `ome_journal_records_total` over that
   of `ome_journal_fsyncs_total` in the OME's `/metrics` during the load (the
   Journal's own counters; with `--fsync off` a "fsync" is a plain write).
2. Start. A state built through `ome.commands.Machine` (1,000,000 resting
   orders on 100,000 price levels, one market) written with
   `ome.persistence.write_dump`, then 1,000,000 more commands applied the same
   way and written after it as one journal segment (`ome.journal.frame` of
   `ome.records.encode`): 50% orders that rest, 15% orders that trade, 25%
   cancels, 10% delivery outcomes. Measured: from `Popen` of `python -m ome` to
   its `ome_started` line (the executioner it is given refuses connections, so
   the sender appends nothing and the files stay as built; the OME is then
   killed with SIGKILL so that it writes no snapshot; its `state_recovered`
   must report every record replayed), and in-process `ome.recovery.recover`,
   split into reading the snapshot and replaying the journal (records/s),
   whose digest must equal the digest of the state the commands were
   generated on. With `--baseline COMMIT --baseline_data DIR` (DIR: the
   snapshot and journal that COMMIT's own `bench/journal.py --data DIR`
   built, in its dumpfile format), the starts and the replays (each in a
   process of its own) of this tree and of COMMIT alternate, and their CPU
   seconds and ratios are reported.
3. Snapshot stall. In-process, on the state recovered in part 2 (frozen out of
   the collector's way with `gc.freeze()`, as the OME does after its start): an
   event loop (uvloop, as the OME runs) with the journal's writer task and a
   ticker that sleeps 1 ms and records how late it woke, while
   `Snapshotter.take()` writes the snapshot. One order is placed
   through `ome.commands.Commands` before each take, so each snapshot covers
   a new durable record. `take` starts `python -m ome.checkpoint`, which
   rebuilds the state from part 2's snapshot and journal (linked into the
   temporary folder) plus the new records. Reported: the longest lag, how
   long `subprocess.Popen` held the loop, the time `take` took, and whether
   the last snapshot's digest equals the state's.

Targets (issue 8): always >= 0.8x the throughput of off, p99 within +5 ms;
replay >= 200,000 records/s; start <= 10 s; no stall > 100 ms.
"""

import os
import sys
from pathlib import Path

# As in bench/http.py: this folder must not come first on sys.path, where
# http.py would shadow the standard library's `http` package.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# The `ome` package measured: this checkout's, or (OME_ENGINE_PATH, as for
# bench/engine.py) a folder holding another build of it, such as the one
# with the compiled engine (`make .venv/ome-mypyc/.built`: .venv/ome-mypyc/lib).
CODE = Path(os.environ.get("OME_ENGINE_PATH") or REPO).resolve()
sys.path[:] = [
    str(CODE),
    str(REPO),
    *(p for p in sys.path if Path(p or ".").resolve() != BENCH),
]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from bench import http as http_bench  # noqa: E402
from ome import recovery  # noqa: E402
from ome.commands import Commands, Machine, Placed, Trade  # noqa: E402
from ome.engine import EngineError, Order, Side  # noqa: E402
from ome.journal import Journal, SegmentFile, check_folder, frame, segment_name  # noqa: E402
from ome.persistence import VERSION as DUMP_VERSION  # noqa: E402
from ome.persistence import digest, read_dump, write_dump  # noqa: E402
from ome.records import Cancel, Command, CreateMarket, DeliveryOutcome, Place, encode  # noqa: E402
from ome.snapshots import Snapshotter  # noqa: E402
from ome.state import State  # noqa: E402

# The last commit before the command path and the journal (a112f46's parent).
REFERENCE_COMMIT = "8aa3cc3"
REFERENCE_DEPS = REPO / ".venv" / "reference-deps"
MARKET = "0x" + "ab" * 20
SIGNATURE = "0x" + "5e" * 65
EXPIRATION = 4102444800
START_TIME = 1_800_000_000
MID_PRICE = 10_000_000
STARTUP_TIMEOUT = 900.0


@dataclass(frozen=True, slots=True)
class Sizes:
    load_seconds: float
    runs: int
    orders: int
    levels: int
    records: int


FULL = Sizes(load_seconds=10.0, runs=3, orders=1_000_000, levels=100_000, records=1_000_000)
QUICK = Sizes(load_seconds=1.0, runs=1, orders=5_000, levels=500, records=5_000)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- 1. throughput


@dataclass(slots=True)
class Variant:
    name: str
    tree: Path
    flags: list[str]
    extra_path: list[Path] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    per_flush: list[float] = field(default_factory=list)
    cpu_per_submission: list[float] = field(default_factory=list)


def extract_commit(commit: str, into: Path) -> None:
    """The files of `commit` (`git archive`) written into `into`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def reference_variant(folder: Path) -> Variant | str:
    """The reference commit's OME, or why it cannot run.

    Its files come from `git archive`; its one dependency the project has
    since dropped (pydantic-settings, with python-dotenv) is installed once
    with pip into REFERENCE_DEPS, outside the venv's own packages.
    """
    try:
        extract_commit(REFERENCE_COMMIT, folder)
        if not (REFERENCE_DEPS / "pydantic_settings").is_dir():
            subprocess.run(
                [
                    *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"),
                    *("--target", str(REFERENCE_DEPS), "pydantic-settings", "python-dotenv"),
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return Variant(f"before the journal ({REFERENCE_COMMIT})", folder, [], [REFERENCE_DEPS])


@contextmanager
def ome_process(variant: Variant, args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m ome` of the variant's tree, its log lines into `log`; SIGTERM at the end."""
    path = os.pathsep.join(str(p) for p in (variant.tree, *variant.extra_path))
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ome", *args],
            cwd=variant.tree,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Ahead of the editable install, so the reference tree runs its own code.
            env={**os.environ, "PYTHONPATH": path},
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def throughput_run(
    variant: Variant, run: int, executioner: str, folder: Path, sizes: Sizes, connections: int
) -> None:
    port = http_bench.free_port()
    base = f"http://127.0.0.1:{port}"
    run_dir = folder / f"{variant.name.replace(' ', '-')}-{run}"
    run_dir.mkdir()
    log = run_dir / "ome.log"
    args = [
        *("-l", "127.0.0.1", "-p", str(port), "--force-no-tls"),
        *("--executioner_address", executioner, "--dumpfile", str(run_dir / "dump.json")),
        *(flag.replace("{dir}", str(run_dir)) for flag in variant.flags),
    ]
    with ome_process(variant, args, log) as process:
        # 503 while the state is restored; the reference, which has no /ready, answers 404
        # once it listens, which it does only after its restore.
        await http_bench.wait_ready(f"{base}/ready", process)
        market = http_bench.market_address(run)
        await http_bench.create_market(base, market)
        before = await journal_counts(base)
        result = await asyncio.to_thread(
            http_bench.measured_load, process.pid, base, market, "submit",
            sizes.load_seconds, connections, run,
        )  # fmt: skip
        after = await journal_counts(base)
    variant.results.append(result)
    variant.cpu_per_submission.append(result["cpu_us_per_request"])
    if before is not None and after is not None and after[1] > before[1]:
        variant.per_flush.append((after[0] - before[0]) / (after[1] - before[1]))


async def journal_counts(base: str) -> tuple[float, float] | None:
    """The OME's journal records and fsyncs so far, from GET /metrics (None without it)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        if response.status != 200:
            return None
        text = await response.text()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("ome_journal_records_total", "ome_journal_fsyncs_total"):
            values[name] = float(value)
    if len(values) != 2:
        return None
    return values["ome_journal_records_total"], values["ome_journal_fsyncs_total"]


async def throughput(sizes: Sizes, connections: int, folder: Path, *, reference: bool) -> None:
    variants = [
        Variant("fsync always", CODE, ["--journal_dir", "{dir}/journal", "--fsync", "always"]),
        Variant("fsync off", CODE, ["--journal_dir", "{dir}/journal", "--fsync", "off"]),
    ]
    found = reference_variant(folder / "reference") if reference else "--no-reference"
    if isinstance(found, Variant):
        variants.append(found)
    exec_port = http_bench.free_port()
    executioner = f"http://127.0.0.1:{exec_port}"
    print(
        f"\n=== 1. throughput: submissions only, {connections} connections, "
        f"{sizes.runs} run(s) x {sizes.load_seconds:g} s per configuration; journals in {folder}",
        flush=True,
    )
    with http_bench.started(
        ["-m", "ome.devexecutioner", "--port", str(exec_port), "--log-level", "warning"]
    ) as exec_process:
        await http_bench.wait_ready(f"{executioner}/check", exec_process, method="POST")
        for run in range(sizes.runs):
            for variant in variants:
                await throughput_run(variant, run, executioner, folder, sizes, connections)
            print(f"  run {run + 1}/{sizes.runs} done", flush=True)
    rows = {}
    print(
        f"\n  {'configuration':<32} {'subm/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'rec/flush':>10}"
        f" {'CPU us/subm':>12}"
    )
    for variant in variants:
        row = http_bench.median_table(variant.results)["submit"]
        rows[variant.name] = row
        per_flush = f"{median(variant.per_flush):>10.1f}" if variant.per_flush else f"{'-':>10}"
        unexpected = sum(r["unexpected"].get("submit", 0) for r in variant.results)
        print(
            f"  {variant.name:<32} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {per_flush} {median(variant.cpu_per_submission):>12.0f}"
            + (f"  ({unexpected} non-200 answers)" if unexpected else "")
        )
    always, off = rows["fsync always"], rows["fsync off"]
    print(
        f"\n  throughput always/off: {always['rps'] / off['rps']:.2f} (target >= 0.80); "
        f"p99 always - off: {always['p99_ms'] - off['p99_ms']:+.2f} ms (target <= +5 ms)"
    )
    if isinstance(found, str):
        print(f"  reference commit {REFERENCE_COMMIT} not run: {found}")
    else:
        before = rows[variants[-1].name]
        print(
            f"  throughput always/before the journal: {always['rps'] / before['rps']:.2f}; "
            f"off/before: {off['rps'] / before['rps']:.2f}"
        )
    print(
        "  rec/flush: journal records over journal writes during the load, from the OME's "
        "/metrics (ome_journal_records_total / ome_journal_fsyncs_total; with always each "
        "write is one fdatasync); CPU us/subm: the OME process's CPU time during the load "
        "per submission answered"
    )


# ---------------------------------------------------------------- 2. start and replay


class Generator:
    """Commands applied through `Machine`, as the live path would; the records they make."""

    def __init__(self, sizes: Sizes, seed: int) -> None:
        self.state = State()
        self.machine = Machine(self.state)
        self.rng = random.Random(seed)
        self.time = START_TIME
        self.created = 0
        self.half = sizes.levels // 2
        self.live: list[str] = []
        self.unsettled: deque[str] = deque()
        self.users = [f"0x{0xC0000 + n:040x}" for n in range(10_000)]

    def apply(self, command: Command) -> bytes | None:
        """The record of `command` if it applied; None (and nothing changed) if refused."""
        seq = self.state.seq + 1
        try:
            applied = self.machine.apply(seq, self.time, command)
        except EngineError:
            return None
        if isinstance(applied, Placed):
            self.unsettled.extend(e.key for e in applied.events if isinstance(e, Trade))
            order = command.order if isinstance(command, Place) else None
            if order is not None and order.amount_left:
                self.live.append(order.id)
        return encode(command, self.time)

    def order(self, side: Side, price: int, amount: int) -> Place:
        self.created += 1
        return Place(
            Order.create(
                user=self.users[self.created % len(self.users)],
                target_tracer=MARKET,
                side=side,
                price=price,
                amount=amount,
                expiration=EXPIRATION,
                created=self.created,
                signed_data=SIGNATURE,
            )
        )

    def resting(self, level: int | None = None) -> Place:
        """An order on one of the book's levels: bids below the middle, asks above."""
        if level is None:
            level = self.rng.randrange(self.half)
        if self.rng.random() < 0.5:
            return self.order(Side.Bid, MID_PRICE - 1 - level, self.rng.randint(1, 100))
        return self.order(Side.Ask, MID_PRICE + 1 + level, self.rng.randint(1, 100))

    def crossing(self) -> Place:
        book = self.state.exchange.get(MARKET)
        if self.rng.random() < 0.5:
            best = book.best_ask
            return self.order(Side.Bid, best or MID_PRICE, self.rng.randint(1, 150))
        best = book.best_bid
        return self.order(Side.Ask, best or MID_PRICE, self.rng.randint(1, 150))

    def cancel(self) -> Cancel | None:
        live = self.live
        while live:
            index = self.rng.randrange(len(live))
            live[index], live[-1] = live[-1], live[index]
            oid = live.pop()
            # Makers filled since they rested are no longer cancellable.
            book = self.state.exchange.get(MARKET)
            if oid in book:
                return Cancel(MARKET, oid, None)
        return None

    def next_record(self) -> bytes | None:
        roll = self.rng.random()
        command: Command | None
        if roll < 0.50:
            command = self.resting()
        elif roll < 0.65:
            command = self.crossing()
        elif roll < 0.90:
            command = self.cancel()
        else:
            command = DeliveryOutcome(self.unsettled.popleft(), True) if self.unsettled else None
        return None if command is None else self.apply(command)


def build(sizes: Sizes, folder: Path) -> tuple[Path, Path, str, int]:
    """Snapshot and journal of part 2; their paths, the final digest and the snapshot's seq.

    Kept in `folder` with a note of what they hold, and used again by a later
    run given the same folder and sizes (building them takes minutes).
    """
    dumpfile, journal_dir, note = folder / "dump.json", folder / "journal", folder / "built.json"
    # Data of another dumpfile format (and digest) is built again.
    wanted = {
        "orders": sizes.orders,
        "levels": sizes.levels,
        "records": sizes.records,
        "format": DUMP_VERSION,
    }
    if note.is_file() and (built := orjson.loads(note.read_bytes()))["sizes"] == wanted:
        print(f"  snapshot and journal of an earlier run, in {folder}", flush=True)
        return dumpfile, journal_dir, built["digest"], built["snapshot_seq"]
    folder.mkdir(parents=True, exist_ok=True)
    note.unlink(missing_ok=True)
    dumpfile.unlink(missing_ok=True)
    for old in journal_dir.glob("*") if journal_dir.is_dir() else ():
        old.unlink()
    started = time.perf_counter()
    generator = Generator(sizes, seed=8)
    generator.apply(CreateMarket(MARKET))
    for n in range(sizes.orders):
        # Every level gets its share: orders / levels per price.
        generator.apply(generator.resting(level=(n // 2) % generator.half))
    book = generator.state.exchange.get(MARKET)
    bids, asks = len(book.levels(Side.Bid)), len(book.levels(Side.Ask))
    write_dump(dumpfile, generator.state)
    snapshot_seq = generator.state.seq
    journal_dir.mkdir(exist_ok=True)
    chunks = []
    while generator.state.seq < snapshot_seq + sizes.records:
        if generator.state.seq % 1000 == 0:
            generator.time += 1
        payload = generator.next_record()
        if payload is not None:
            chunks.append(frame(generator.state.seq, payload))
    (journal_dir / segment_name(snapshot_seq + 1)).write_bytes(b"".join(chunks))
    final = digest(generator.state)
    print(
        f"  built in {time.perf_counter() - started:.1f} s: snapshot seq {snapshot_seq}, "
        f"{len(book)} resting orders on {bids} bid + {asks} ask levels after the journal, "
        f"{len(generator.state.outbox)} pairs pending; dumpfile "
        f"{dumpfile.stat().st_size / 1e6:.0f} MB, journal {sizes.records} records "
        f"{sum(len(c) for c in chunks) / 1e6:.0f} MB",
        flush=True,
    )
    note.write_bytes(orjson.dumps({"sizes": wanted, "digest": final, "snapshot_seq": snapshot_seq}))
    return dumpfile, journal_dir, final, snapshot_seq


def file_sizes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in folder.iterdir()}


def start_once(
    dumpfile: Path, journal_dir: Path, folder: Path, tree: Path = CODE
) -> tuple[float, float, dict[str, Any]]:
    """Seconds from Popen to `ome_started` of the OME of `tree`, the CPU seconds it used to
    get there, and its `state_recovered` event."""
    port = http_bench.free_port()
    # Nobody listens there: pending pairs stay pending, so no outcome is journaled.
    refusing = f"http://127.0.0.1:{http_bench.free_port()}"
    args = [
        *(sys.executable, "-m", "ome", "-l", "127.0.0.1", "-p", str(port), "--force-no-tls"),
        *("--executioner_address", refusing, "--dumpfile", str(dumpfile)),
        *("--journal_dir", str(journal_dir)),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        args, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )  # fmt: skip
    recovered: dict[str, Any] = {}
    # Reading the pipe blocks while the OME is silent, as it is during recovery.
    watchdog = threading.Timer(STARTUP_TIMEOUT, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if event.get("event") == "state_recovered":
                recovered = event
            if event.get("event") == "ome_started":
                return time.perf_counter() - started, http_bench.cpu_seconds(process.pid), recovered
        raise SystemExit(f"the OME did not start within {STARTUP_TIMEOUT:g} s: {process.poll()}")
    finally:
        watchdog.cancel()
        # SIGKILL, as a crash would: a graceful stop would snapshot and prune the journal.
        process.kill()
        process.wait()


@dataclass(slots=True)
class Timing:
    """Wall-clock and CPU seconds of one step."""

    wall: float = 0.0
    cpu: float = 0.0

    def __sub__(self, other: "Timing") -> "Timing":
        return Timing(self.wall - other.wall, self.cpu - other.cpu)


@contextmanager
def timing() -> Iterator[Timing]:
    result = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.wall, result.cpu = time.perf_counter() - wall, time.process_time() - cpu


def timed_recover(dumpfile: Path, journal_dir: Path) -> tuple[recovery.Recovered, Timing, Timing]:
    """`recover`, and how long it took in all and for reading the snapshot alone."""
    reading = Timing()
    read_dump = recovery.read_dump

    def timed_read(path: Path) -> State | None:
        nonlocal reading
        with timing() as reading:
            return read_dump(path)

    recovery.read_dump = timed_read
    try:
        with timing() as total:
            recovered = recovery.recover(dumpfile, journal_dir, repair=False)
    finally:
        recovery.read_dump = read_dump
    return recovered, total, reading


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# Run by `python -c` in the tree measured: `recover`'s CPU seconds, in all and for reading
# the snapshot, as JSON, and the file `recover` came from. Only names every version since
# the journal has.
RECOVER_CPU = """
import json, sys, time
from pathlib import Path
from ome import recovery
read_dump, spent = recovery.read_dump, {}
def timed(path):
    began = time.process_time()
    state = read_dump(path)
    spent["read"] = time.process_time() - began
    return state
recovery.read_dump = timed
began = time.process_time()
recovered = recovery.recover(Path(sys.argv[1]), Path(sys.argv[2]), repair=False)
total = time.process_time() - began
print(json.dumps({**spent, "total": total, "code": recovery.__file__}))
"""


def recover_cpu(tree: Path, dumpfile: Path, journal_dir: Path, folder: Path) -> tuple[float, float]:
    """CPU seconds of reading the snapshot and of replaying the journal, by `tree`'s code."""
    done = subprocess.run(
        # -P: the working folder must not come before `tree` on sys.path.
        [sys.executable, "-P", "-c", RECOVER_CPU, str(dumpfile), str(journal_dir)],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        check=True,
        timeout=STARTUP_TIMEOUT,
    )
    spent = orjson.loads(done.stdout.splitlines()[-1])
    if not Path(spent["code"]).is_relative_to(tree):
        raise SystemExit(f"measured {spent['code']}, not the code of {tree}")
    return spent["read"], spent["total"] - spent["read"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """Another commit's OME and the snapshot and journal its own bench/journal.py built."""

    commit: str
    tree: Path
    dumpfile: Path
    journal_dir: Path


def baseline_tree(commit: str, data: Path, folder: Path) -> Baseline:
    tree = folder / f"baseline-{commit}"
    extract_commit(commit, tree)
    return Baseline(commit, tree, data / "dump.json", data / "journal")


def compare_with_baseline(
    baseline: Baseline, sizes: Sizes, folder: Path, built: tuple[Path, Path]
) -> None:
    """Starts and replays of this tree and of the baseline, interleaved, with their ratios."""
    print(
        f"\n  against {baseline.commit} (its snapshot and journal in {baseline.dumpfile.parent}), "
        "interleaved, CPU seconds:",
        flush=True,
    )
    figures: dict[str, list[float]] = {name: [] for name in ("start", "read", "replay")}
    theirs: dict[str, list[float]] = {name: [] for name in figures}
    for run in range(sizes.runs):
        for tree, dumpfile, journal_dir, into in (
            (CODE, *built, figures),
            (baseline.tree, baseline.dumpfile, baseline.journal_dir, theirs),
        ):
            _, cpu, _ = start_once(dumpfile, journal_dir, folder, tree)
            read, replay = recover_cpu(tree, dumpfile, journal_dir, folder)
            into["start"].append(cpu)
            into["read"].append(read)
            into["replay"].append(replay)
        print(
            f"  run {run + 1}: start {figures['start'][-1]:.2f} vs {theirs['start'][-1]:.2f}, "
            f"snapshot read {figures['read'][-1]:.2f} vs {theirs['read'][-1]:.2f}, "
            f"replay {figures['replay'][-1]:.2f} vs {theirs['replay'][-1]:.2f}",
            flush=True,
        )
    for name in figures:
        ours, base = median(figures[name]), median(theirs[name])
        print(
            f"  {name}: {ours:.2f} s CPU vs {base:.2f} s CPU, {base / ours:.2f}x faster (medians)"
        )
    print(
        f"  replay: {sizes.records / median(figures['replay']):,.0f} vs "
        f"{sizes.records / median(theirs['replay']):,.0f} records per CPU second"
    )


def start_and_replay(
    sizes: Sizes, folder: Path, data: Path | None, baseline: Baseline | None = None
) -> tuple[State, tuple[Path, Path]]:
    """Part 2; the state recovered, and the snapshot and journal it was recovered from."""
    print(
        f"\n=== 2. start: {sizes.orders:,} resting orders on {sizes.levels:,} levels in the "
        f"snapshot + {sizes.records:,} journal records",
        flush=True,
    )
    dumpfile, journal_dir, final, snapshot_seq = build(sizes, data or folder / "data")
    gc.collect()
    before = file_sizes(journal_dir), dumpfile.stat().st_size
    final_seq = snapshot_seq + sizes.records
    starts, start_cpus = [], []
    for run in range(sizes.runs):
        seconds, cpu, event = start_once(dumpfile, journal_dir, folder)
        starts.append(seconds)
        start_cpus.append(cpu)
        # The OME logs no digest unless asked (--start_digest); the in-process recovery
        # below compares digests.
        same = event.get("replayed") == sizes.records and event.get("seq") == final_seq
        print(
            f"  start {run + 1}: {seconds:.2f} s ({cpu:.2f} s CPU) to ome_started, replayed "
            f"{event.get('replayed')} up to seq {event.get('seq')}, "
            f"{'as built' if same else 'DIFFERENT'}",
            flush=True,
        )
        if (file_sizes(journal_dir), dumpfile.stat().st_size) != before:
            raise SystemExit("a start changed the snapshot or the journal")
    if baseline is not None:
        compare_with_baseline(baseline, sizes, folder, (dumpfile, journal_dir))
    reads, replays = [], []
    recovered_state = State()
    for run in range(sizes.runs):
        # Free the previous run's state first: one state of a million orders at a time.
        recovered_state = State()
        gc.collect()
        recovered, total, reading = timed_recover(dumpfile, journal_dir)
        replay = total - reading
        reads.append(reading)
        replays.append(replay)
        recovered_state = recovered.state
        same = digest(recovered_state) == final and recovered.snapshot_seq == snapshot_seq
        print(
            f"  recover {run + 1}: snapshot read {reading.wall:.2f} s ({reading.cpu:.2f} s CPU), "
            f"{recovered.replayed} records replayed in {replay.wall:.2f} s ({replay.cpu:.2f} s "
            f"CPU), digest {'equal' if same else 'DIFFERENT'}",
            flush=True,
        )
    replay_wall = median([r.wall for r in replays])
    replay_cpu = median([r.cpu for r in replays])
    print(
        f"\n  start to ome_started: {median(starts):.2f} s, {median(start_cpus):.2f} s of CPU "
        "(target <= 10 s)\n"
        f"  in-process: snapshot read {median([r.wall for r in reads]):.2f} s "
        f"({median([r.cpu for r in reads]):.2f} s CPU); replay "
        f"{sizes.records / replay_wall:,.0f} records/s, "
        f"{sizes.records / replay_cpu:,.0f} records per CPU second (target >= 200,000)"
    )
    return recovered_state, (dumpfile, journal_dir)


# ---------------------------------------------------------------- 3. snapshot stall


@dataclass(slots=True)
class Stall:
    lag: float
    took: float
    # How long the event loop waited for the snapshot process to be started.
    spawn: float
    # The longest lag over as long a time right after, with no snapshot running:
    # what the shared machine's scheduling alone costs the ticker.
    quiet_lag: float


@contextmanager
def timed_spawn(spawns: list[float]) -> Iterator[None]:
    """Record how long starting a process (`subprocess.Popen`) takes while the block runs."""
    popen = subprocess.Popen

    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return popen(*args, **kwargs)
        finally:
            spawns.append(time.perf_counter() - began)

    subprocess.Popen = timed  # type: ignore[assignment, misc]
    try:
        yield
    finally:
        subprocess.Popen = popen  # type: ignore[misc]


async def max_lag_while(work: Any) -> float:
    """The longest a 1 ms sleep overslept while `work` ran (and 50 ms either side)."""
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        clock = time.perf_counter
        while running:
            began = clock()
            await asyncio.sleep(0.001)
            lags.append(clock() - began - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    await work
    await asyncio.sleep(0.05)
    running = False
    await task
    return max(lags)


async def stall_once(snapshotter: Snapshotter, commands: Commands, order: Order) -> Stall:
    await commands.place(order)
    spawns: list[float] = []
    began = time.perf_counter()
    with timed_spawn(spawns):
        lag = await max_lag_while(snapshotter.take())
    took = time.perf_counter() - began - 0.1
    quiet = await max_lag_while(asyncio.sleep(took))
    return Stall(lag, took, spawns[0], quiet)


async def snapshot_stall(
    state: State, built: tuple[Path, Path], sizes: Sizes, folder: Path
) -> None:
    orders = sum(len(book) for book in state.exchange.books.values())
    print(f"\n=== 3. periodic snapshot at {orders:,} resting orders", flush=True)
    # The snapshot process rebuilds the state from the files, as the OME's would:
    # part 2's snapshot and journal, linked (a snapshot replaces links, never the files).
    dumpfile, journal_dir = folder / "stall-dump.json", folder / "stall-journal"
    check_folder(journal_dir)
    link_or_copy(built[0], dumpfile)
    for segment in built[1].iterdir():
        link_or_copy(segment, journal_dir / segment.name)
    file = SegmentFile(journal_dir, sync=True)
    file.open(state.seq + 1)
    journal = Journal(file, durable_seq=state.seq)
    writer = asyncio.create_task(journal.run())
    clock_time = START_TIME + 10**6
    commands = Commands(state, journal, lambda: clock_time)
    snapshotter = Snapshotter(journal, dumpfile, journal_dir)
    stalls = []
    for run in range(sizes.runs):
        order = Order.create(
            user=f"0x{0xD0000:040x}", target_tracer=MARKET, side=Side.Bid, price=1,
            amount=1, expiration=EXPIRATION, created=run, signed_data=SIGNATURE,
        )  # fmt: skip
        stall = await stall_once(snapshotter, commands, order)
        stalls.append(stall)
        print(
            f"  snapshot {run + 1}: took {stall.took:.2f} s, longest loop lag "
            f"{stall.lag * 1000:.1f} ms, Popen {stall.spawn * 1000:.1f} ms; "
            f"longest lag without a snapshot {stall.quiet_lag * 1000:.1f} ms"
        )
    await journal.close()
    await writer
    written = read_dump(dumpfile)
    same = written is not None and digest(written) == digest(state)
    print(f"  the last snapshot written: digest {'equal' if same else 'DIFFERENT'}")
    lags = [stall.lag for stall in stalls]
    print(
        f"\n  longest event-loop stall: median {median(lags) * 1000:.1f} ms, worst "
        f"{max(lags) * 1000:.1f} ms (target <= 100 ms); Popen "
        f"{median([s.spawn for s in stalls]) * 1000:.1f} ms; snapshot took "
        f"{median([s.took for s in stalls]):.2f} s; without a snapshot the ticker's longest "
        f"lag is {median([s.quiet_lag for s in stalls]) * 1000:.1f} ms"
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run: a smoke test")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--parts", default="123", help="which parts to run, e.g. 23 (default: all three)"
    )
    parser.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help=f"skip the OME of {REFERENCE_COMMIT} (it needs pydantic-settings from PyPI once)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="keep part 2's snapshot and journal here, and use them again when they fit",
    )
    parser.add_argument(
        "--folder", type=Path, default=None, help="where journals and snapshots go (a temp folder)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per part (default 3)")
    parser.add_argument(
        "--baseline",
        default=None,
        help="a commit whose starts and replays part 2 interleaves with this tree's "
        "(CPU seconds, ratios); needs --baseline_data",
    )
    parser.add_argument(
        "--baseline_data",
        type=Path,
        default=None,
        help="the snapshot and journal the baseline's own bench/journal.py --data DIR built "
        "(its dumpfile format)",
    )
    args = parser.parse_args()
    # Parts 2 and 3 recover and snapshot in this process: they must run the code measured.
    if not Path(recovery.__file__).resolve().is_relative_to(CODE):
        raise SystemExit(f"imported {recovery.__file__}, not the ome of {CODE}")
    if bool(args.baseline) != bool(args.baseline_data):
        parser.error("--baseline and --baseline_data go together")
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = dataclasses.replace(sizes, runs=args.runs)
    print(
        f"bench/journal.py: the ome of {CODE}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, "
        f"{'quick' if args.quick else 'full'} sizes, medians of {sizes.runs}; "
        f"load average {os.getloadavg()[0]:.1f} (CPU shared with others: see the CPU figures)"
    )
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    with tempfile.TemporaryDirectory(dir=args.folder) as temporary:
        folder = Path(temporary)
        if "1" in args.parts:
            run(throughput(sizes, args.connections, folder, reference=args.reference))
        if "2" in args.parts or "3" in args.parts:
            baseline = (
                baseline_tree(args.baseline, args.baseline_data, folder) if args.baseline else None
            )
            state, built = start_and_replay(sizes, folder, args.data, baseline)
            if "3" in args.parts:
                gc.freeze()
                run(snapshot_stall(state, built, sizes, folder))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
