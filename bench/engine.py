"""Benchmark of the matching engine, in-process, on deterministic seeded streams.

    .venv/bin/python bench/engine.py            # full run, under 3 minutes
    .venv/bin/python bench/engine.py --quick    # small streams, one run: a smoke test
    OME_ENGINE_PATH=/tmp/ome-mypyc .venv/bin/python bench/engine.py   # another build

Workloads (issue 2): A limit orders, about 30% trading on arrival; B A plus a
cancel of a random resting order after each order with probability 0.3; C a
non-crossing book, then marketable orders (only those are timed); D the cost
of one submit and one cancel on a book of 1,000 vs 1,000,000 resting orders,
the memory a resting order takes, and the memory a remembered finished id
takes. Ids are computed before timing starts.

A, B and C are measured under two protocols (bench/_engines.py): prebuilt
(every engine's order objects built before timing, the collector frozen
over them), and independent (issue 11: each order built inside the timed
loop from its primitive fields, the result's fills read, the garbage
collector on, as in the service; the peers driven the same way). The
floors apply to the independent protocol; D uses it too. Every figure is
the median of 3 runs. Times are this process's CPU time
(time.process_time), so that other work on a shared machine does not count;
the whole run takes about 5 minutes.

When the PyPI engines of the `bench` extra are installed, A, B and C are also
replayed into them in the same run, after checking that each matches and
leaves resting the same quantities as ours; the ratio column is our throughput
divided by theirs. The process exits 1 when any engine disagrees.
"""

import argparse
import gc
import itertools
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from random import Random

# OME_ENGINE_PATH: a folder holding another build of the `ome` package (for
# instance one compiled with mypyc) to measure in place of this checkout's.
sys.path.insert(0, os.environ.get("OME_ENGINE_PATH") or str(Path(__file__).resolve().parents[1]))

from _engines import Engine, Totals, available
from _streams import (
    CREATED,
    HALF_RANGE,
    MID,
    NOW,
    Stream,
    Traders,
    resting_row,
    stream_a,
    stream_b,
    stream_c,
)

from ome.engine import Book, Order, Side


@dataclass(frozen=True, slots=True)
class Sizes:
    a: int
    c_resting: int
    c_aggressive: int
    d_books: tuple[int, int]
    d_ops: int
    runs: int


FULL = Sizes(200_000, 100_000, 50_000, (1_000, 1_000_000), 20_000, 3)
QUICK = Sizes(5_000, 5_000, 2_500, (1_000, 20_000), 2_000, 1)
# Issue 2's floors for our throughput over limit-order-book's, printed beside the ratios.
FLOORS = {
    ("A", "limit-order-book"): 1.0,
    ("B", "limit-order-book"): 1.0,
    ("C", "limit-order-book"): 0.8,
}
# D's orders carry wei-scaled prices and amounts, like the real ones.
D_SCALE = 10**18
# D times its operations in blocks this long, so the book size stays within two
# blocks of its nominal size.
D_BLOCK = 100


def describe(stream: Stream, totals: Totals) -> str:
    submits = len(stream.events) - stream.cancels
    parts = [f"{submits:,} timed submits"]
    if stream.cancels:
        parts.append(f"{stream.cancels:,} cancels")
    if stream.setup:
        parts.append(f"after {len(stream.setup):,} untimed resting orders")
    parts.append(f"{totals.crossing / submits:.1%} trade on arrival")
    parts.append(f"matched {totals.matched:,}")
    parts.append(
        f"resting {totals.resting_orders:,} orders "
        f"(bid qty {totals.resting_bid:,}, ask qty {totals.resting_ask:,})"
    )
    return ", ".join(parts)


def replay_all(stream: Stream, engines: list[Engine], runs: int) -> bool:
    """Audit every engine against ours, then time the agreeing ones under both
    protocols; False on disagreement."""
    ours = engines[0]
    expected = ours.audit(stream)
    print(f"\n{stream.name}: {describe(stream, expected)}")
    ok = expected.missed_cancels == 0
    agreeing = [ours]
    for engine in engines[1:]:
        got = engine.audit(stream)
        if got == expected:
            agreeing.append(engine)
        else:
            ok = False
            print(f"  {engine.name} DISAGREES, not timed: {got} != ours {expected}")
    resting = (expected.resting_orders, expected.resting_bid, expected.resting_ask)
    for independent in (False, True):
        times: dict[str, list[float]] = {engine.name: [] for engine in agreeing}
        for _ in range(runs):
            for engine in agreeing:
                prepare = engine.prepare_independent if independent else engine.prepare
                replay = prepare(stream)
                # The prepared inputs (prebuilt: the order objects themselves)
                # would not exist in a service: keep full collections during the
                # run from walking them. Independent: every order and result is
                # made in the timed loop, under the collector, as in the service
                # (which freezes only what it restored at start).
                gc.collect()
                gc.freeze()
                start = time.process_time()
                replay()
                times[engine.name].append(time.process_time() - start)
                gc.unfreeze()
                if engine.resting() != resting:
                    ok = False
                    print(f"  {engine.name} run left {engine.resting()} resting, audit {resting}")
        _print_times(stream, agreeing, times, independent)
    return ok


def _print_times(
    stream: Stream, engines: list[Engine], times: dict[str, list[float]], independent: bool
) -> None:
    ops = len(stream.events)
    what = "submits+cancels" if stream.cancels else "orders"
    ours_time = statistics.median(times[engines[0].name])
    if independent:
        print("  independent protocol: orders built in the timed loop, fills read, gc on")
    else:
        print("  prebuilt protocol: orders built before timing, gc frozen")
    print(f"    {'engine':<17} {'median s':>9} {what + '/s':>20} {'ours/engine':>12}")
    for engine in engines:
        median = statistics.median(times[engine.name])
        ratio = "" if engine is engines[0] else f"{median / ours_time:.2f}x"
        floor = FLOORS.get((stream.name, engine.name)) if independent else None
        note = f"  (floor {floor:.2f}x)" if floor else ""
        print(f"    {engine.name:<17} {median:>9.4f} {ops / median:>20,.0f} {ratio:>12}{note}")


def _pick_resting(live: list[str], book: Book, rng: Random) -> str:
    """A random id among `live` that still rests; swap-remove keeps each pick O(1)."""
    while True:
        at = rng.randrange(len(live))
        oid = live[at]
        live[at] = live[-1]
        live.pop()
        if oid in book:
            return oid


def _filled_book(size: int, traders: Traders, created: Iterator[int], live: list[str]) -> Book:
    """A book of `size` non-crossing orders, built under tracemalloc to report its memory."""
    gc.collect()
    tracemalloc.start()
    orders = [Order(*resting_row(traders, next(created), D_SCALE)) for _ in range(size)]
    built = tracemalloc.get_traced_memory()[0]
    book = Book(traders.market)
    for order in orders:
        book.submit(order, NOW)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  memory, {size:,} resting orders (tracemalloc): peak {peak / size:,.0f} B per order, "
        f"of which the order objects {built / size:,.0f} B "
        f"and the book's structures {(held - built) / size:,.0f} B (target <= 1,024 B)"
    )
    live.extend(order.id for order in orders)
    return book


def _time_d(size: int, sizes: Sizes) -> tuple[float, float, float]:
    """Median ns per resting submit, per cancel and per trading submit on a book of `size`."""
    traders = Traders(4)
    rng = traders.rng
    created = itertools.count(CREATED)
    live: list[str] = []
    book = _filled_book(size, traders, created, live)
    far = {Side.Bid: (MID + HALF_RANGE) * D_SCALE, Side.Ask: (MID - HALF_RANGE) * D_SCALE}
    submit, cancel, now = book.submit, book.cancel, NOW
    clock = time.process_time_ns
    per_run: list[tuple[float, float, float]] = []
    for _ in range(sizes.runs):
        totals = [0, 0, 0]
        gc.collect()
        for _ in range(sizes.d_ops // D_BLOCK):
            cancels = [_pick_resting(live, book, rng) for _ in range(D_BLOCK)]
            rests = [resting_row(traders, next(created), D_SCALE) for _ in range(D_BLOCK)]
            live.extend(row[0] for row in rests)
            takers = [
                traders.row(side, far[side], rng.randint(1, 100) * D_SCALE, next(created))
                for side in (Side.Bid, Side.Ask) * (D_BLOCK // 2)
            ]
            matched = 0
            start = clock()
            for row in rests:
                submit(Order(*row), now)
            rested = clock()
            for oid in cancels:
                cancel(oid)
            cancelled = clock()
            for row in takers:
                for fill in submit(Order(*row), now)[1]:
                    matched += fill[3]
            totals[0] += rested - start
            totals[1] += cancelled - rested
            totals[2] += clock() - cancelled
            # Every taker is priced through the whole book: it must be filled in full.
            assert matched == sum(row[5] for row in takers), "a taker rested"
            matched = 0
            # Untimed: bring the book back to its nominal size.
            while len(book) < size:
                order = Order(*resting_row(traders, next(created), D_SCALE))
                submit(order, now)
                live.append(order.id)
        ops = sizes.d_ops // D_BLOCK * D_BLOCK
        per_run.append((totals[0] / ops, totals[1] / ops, totals[2] / ops))
    return (
        statistics.median(r[0] for r in per_run),
        statistics.median(r[1] for r in per_run),
        statistics.median(r[2] for r in per_run),
    )


def _finished_memory(count: int, expirations: int) -> float:
    """Bytes per id in a book's finished-order memory, the id string included
    (once its order is gone, the memory is what keeps the id alive)."""
    rng = Random(6)
    raw = [rng.getrandbits(256) for _ in range(count)]
    book = Book("0x" + "22" * 20)
    gc.collect()
    tracemalloc.start()
    for i, bits in enumerate(raw):
        book.remember(f"0x{bits:064x}", NOW + i % expirations)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / count


def workload_d(sizes: Sizes) -> None:
    """Per-operation cost by book size, and memory per resting order."""
    print(
        f"\nD: per run, {sizes.d_ops:,} each of resting submits, cancels of random resting orders "
        f"and submits that trade at the touch, timed in blocks of {D_BLOCK}; the book is "
        f"refilled untimed after each block"
    )
    figures = {size: _time_d(size, sizes) for size in sizes.d_books}
    print(
        f"  {'resting':>10} {'rest ns/op':>11} {'cancel ns/op':>13} {'trade ns/op':>12} "
        f"{'all ns/op':>10}"
    )
    for size, (r, c, t) in figures.items():
        print(f"  {size:>10,} {r:>11,.0f} {c:>13,.0f} {t:>12,.0f} {(r + c + t) / 3:>10,.0f}")
    small, large = (figures[size] for size in sizes.d_books)
    kinds = ("rest", "cancel", "trade")
    ratios = ", ".join(f"{k} {b / a:.2f}x" for k, a, b in zip(kinds, small, large, strict=True))
    print(
        f"  {sizes.d_books[1]:,} vs {sizes.d_books[0]:,}: {ratios}, "
        f"all {sum(large) / sum(small):.2f}x (target <= 1.5x)"
    )
    count = sizes.d_books[1]
    print(
        f"  finished-order memory (tracemalloc, {count:,} ids): "
        f"{_finished_memory(count, 300):,.0f} B per id when 300 expirations are shared, "
        f"{_finished_memory(count, count):,.0f} B when each id has its own"
    )
    small_dict, large_dict = (
        statistics.median(_dict_ns(size, sizes.d_ops) for _ in range(3)) for size in sizes.d_books
    )
    print(
        f"  for scale, a bare dict of as many order ids: check + insert + delete "
        f"{small_dict:,.0f} vs {large_dict:,.0f} ns, {large_dict / small_dict:.2f}x "
        f"(the memory hierarchy's own ratio on this machine)"
    )


def _dict_ns(size: int, ops: int) -> float:
    """ns per duplicate check, insert and delete of a fresh id in a dict of `size` ids."""
    rng = Random(5)
    ids = {f"0x{rng.getrandbits(256):064x}": None for _ in range(size)}
    fresh = [f"0x{rng.getrandbits(256):064x}" for _ in range(ops)]
    for oid in fresh:
        hash(oid)
    gc.collect()
    start = time.process_time_ns()
    for oid in fresh:
        if oid not in ids:
            ids[oid] = None
    for oid in fresh:
        del ids[oid]
    return (time.process_time_ns() - start) / ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small streams, one run")
    sizes = QUICK if parser.parse_args().quick else FULL
    began = time.perf_counter()
    engines, missing = available()
    print(
        f"Python {platform.python_version()} on {platform.machine()}; "
        f"medians of {sizes.runs} run(s); engines: {', '.join(e.name for e in engines)}"
    )
    print(f"our engine: {sys.modules[Book.__module__].__file__}")
    for note in missing:
        print(f"  {note}; ours runs without it")
    print("Bids and asks come from disjoint sets of 50 traders each: no self-trade can occur.")
    a = stream_a(sizes.a)
    streams = [a, stream_b(a), stream_c(sizes.c_resting, sizes.c_aggressive)]
    print(f"streams built in {time.perf_counter() - began:.1f} s (ids computed, untimed)")
    # The streams are this script's scaffolding, not any engine's heap: keep the
    # collector's full passes from walking them, as a service's would not.
    gc.collect()
    gc.freeze()
    ok = True
    for stream in streams:
        started = time.perf_counter()
        ok = replay_all(stream, engines, sizes.runs) and ok
        took = time.perf_counter() - started
        print(f"  ({stream.name} took {took:.1f} s, audits and set-up included)")
    started = time.perf_counter()
    workload_d(sizes)
    print(f"  (D took {time.perf_counter() - started:.1f} s with set-up)")
    print(f"\ntotal {time.perf_counter() - began:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
