"""Benchmark of the matching engine, in-process, on deterministic seeded streams.

    .venv/bin/python bench/engine.py            # full run, under 3 minutes
    .venv/bin/python bench/engine.py --quick    # small streams, one run: a smoke test

Workloads (issue 2): A limit orders, about 30% trading on arrival; B A plus a
cancel of a random resting order after each order with probability 0.3; C a
non-crossing book, then marketable orders (only those are timed); D the cost
of one submit and one cancel on a book of 1,000 vs 1,000,000 resting orders,
and the memory a resting order takes. Orders are built and their ids
computed before timing starts. Every figure is the median of 3 runs.

When the PyPI engines of the `bench` extra are installed, A, B and C are also
replayed into them in the same run, after checking that each matches and
leaves resting the same quantities as ours; the ratio column is our throughput
divided by theirs. The process exits 1 when any engine disagrees.
"""

import argparse
import gc
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _engines import Engine, Totals, available
from _streams import (
    CREATED,
    NOW,
    Stream,
    Traders,
    resting_row,
    stream_a,
    stream_b,
    stream_c,
)

from ome.engine import Book, Order


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
# D's orders carry wei-scaled prices and amounts, like the real ones.
D_SCALE = 10**18
# D times submits and cancels in alternating blocks this long, so the book size
# stays within a block of its nominal size.
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
    """Audit every engine against ours, then time the agreeing ones; False on disagreement."""
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
    times: dict[str, list[float]] = {engine.name: [] for engine in agreeing}
    for _ in range(runs):
        for engine in agreeing:
            replay = engine.prepare(stream)
            gc.collect()
            start = time.perf_counter()
            replay()
            times[engine.name].append(time.perf_counter() - start)
            if engine.resting() != resting:
                ok = False
                print(f"  {engine.name} run left {engine.resting()} resting, audit {resting}")
    ops = len(stream.events)
    what = "submits+cancels" if stream.cancels else "orders"
    ours_time = statistics.median(times[ours.name])
    print(f"  {'engine':<17} {'median s':>9} {what + '/s':>20} {'ours/engine':>12}")
    for engine in agreeing:
        median = statistics.median(times[engine.name])
        ratio = "" if engine is ours else f"{median / ours_time:.2f}x"
        print(f"  {engine.name:<17} {median:>9.4f} {ops / median:>20,.0f} {ratio:>12}")
    return ok


def workload_d(sizes: Sizes) -> None:
    """Per-operation submit and cancel cost by book size, and memory per resting order."""
    print(
        f"\nD: {sizes.d_ops:,} submits and {sizes.d_ops:,} cancels per run, non-crossing, "
        f"timed in alternating blocks of {D_BLOCK}; cancels hit random resting orders"
    )
    figures = {}
    for size in sizes.d_books:
        traders = Traders(4)
        largest = size == max(sizes.d_books)
        if largest:
            gc.collect()
            tracemalloc.start()
        orders = [Order(*resting_row(traders, CREATED + i, D_SCALE)) for i in range(size)]
        if largest:
            built = tracemalloc.get_traced_memory()[0]
        book = Book(traders.market)
        for order in orders:
            book.submit(order, NOW)
        if largest:
            held, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"  memory, {size:,} resting orders (tracemalloc): peak {peak / size:,.0f} B "
                f"per order, of which the order objects {built / size:,.0f} B "
                f"and the book's structures {(held - built) / size:,.0f} B"
            )
        live = [order.id for order in orders]
        del orders
        submit_ns: list[float] = []
        cancel_ns: list[float] = []
        for run in range(sizes.runs):
            first = CREATED + size + run * sizes.d_ops
            new = [Order(*resting_row(traders, first + k, D_SCALE)) for k in range(sizes.d_ops)]
            blocks = []
            for at in range(0, sizes.d_ops, D_BLOCK):
                submits = new[at : at + D_BLOCK]
                live.extend(order.id for order in submits)
                cancels = []
                for _ in submits:
                    # Swap-remove keeps picking a random live id O(1).
                    pick = traders.rng.randrange(len(live))
                    live[pick], live[-1] = live[-1], live[pick]
                    cancels.append(live.pop())
                blocks.append((submits, cancels))
            submit, cancel, now = book.submit, book.cancel, NOW
            clock = time.perf_counter_ns
            submit_total = cancel_total = 0
            gc.collect()
            for submits, cancels in blocks:
                start = clock()
                for order in submits:
                    submit(order, now)
                middle = clock()
                for oid in cancels:
                    cancel(oid)
                submit_total += middle - start
                cancel_total += clock() - middle
            assert len(book) == size
            submit_ns.append(submit_total / sizes.d_ops)
            cancel_ns.append(cancel_total / sizes.d_ops)
        figures[size] = (statistics.median(submit_ns), statistics.median(cancel_ns))
        book.check_invariants()
        del book, live
    small, large = sizes.d_books
    print(f"  {'resting':>10} {'submit ns/op':>13} {'cancel ns/op':>13} {'both ns/op':>11}")
    for size, (s, c) in figures.items():
        print(f"  {size:>10,} {s:>13,.0f} {c:>13,.0f} {(s + c) / 2:>11,.0f}")
    (s0, c0), (s1, c1) = figures[small], figures[large]
    print(
        f"  {large:,} vs {small:,}: submit {s1 / s0:.2f}x, cancel {c1 / c0:.2f}x, "
        f"both {(s1 + c1) / (s0 + c0):.2f}x (target <= 1.5x)"
    )


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
    for note in missing:
        print(f"  {note}; ours runs without it")
    print("Bids and asks come from disjoint sets of 50 traders each: no self-trade can occur.")
    a = stream_a(sizes.a)
    streams = [a, stream_b(a), stream_c(sizes.c_resting, sizes.c_aggressive)]
    print(f"streams built in {time.perf_counter() - began:.1f} s (ids computed, untimed)")
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
