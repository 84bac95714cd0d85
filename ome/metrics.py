"""The service's Prometheus metrics: counted where events already happen, read at scrape time.

One `Metrics` per app, on a registry of its own (so that apps in one process,
as in tests, never share figures). Counters and histograms are bumped by the
code that sees the event, each bump a few attribute lookups and one locked
add: the command path's sink (`sink`: orders by result, fills and matched
amount, cancels, expiries), the request middleware (`observe_request`:
latency by route template, method and status; refused orders by reason), the
executioner client (`observe_executioner`) and the journal writer
(`observe_flush`). Everything that is a level rather than an event (book
sizes, outbox depth and age, delivery and journal totals kept by their
owners, readiness) is read only when scraped, by `_Collector`, from the
`Sources` set at startup: a scrape costs the request path nothing.

Label values are bounded: routes are templates, methods and statuses come
from fixed sets, reasons and kinds from the code's own error classes, and
per-market series stop at `MAX_MARKET_SERIES` markets (the rest are summed
under `market="other"`). Users never become labels.

A failure inside any of this is the caller's to swallow: metrics never change
the outcome of what they count.
"""

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from ome.commands import (
    Applied,
    MarketCreated,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    PairSettled,
    Trade,
)

# No `_created` series beside every counter: a scrape of them is mostly timestamps.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The classic text format, which every Prometheus version reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_MARKET_SERIES = 64
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RECORDS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def reason_of(exc: BaseException) -> str:
    """A bounded label for an error: its class in snake case (`OrderExpired`: `order_expired`)."""
    return _CAMEL.sub("_", type(exc).__name__).lower()


class _Book(Protocol):
    market: str

    @property
    def depth(self) -> tuple[int, int]: ...


@dataclass(slots=True)
class Sources:
    """Where the scrape reads levels; each a callable so that owners set up later can plug in."""

    books: Callable[[], Iterable[_Book]] = lambda: ()
    # (pending pairs, unix seconds the oldest was made or None)
    outbox: Callable[[], tuple[int, float | None]] = lambda: (0, None)
    # outcome -> total so far (delivered, rejected, retried)
    deliveries: Callable[[], dict[str, int]] = dict
    # (records made durable, fsyncs)
    journal: Callable[[], tuple[int, int]] = lambda: (0, 0)
    ready: Callable[[], bool] = lambda: False
    # True reachable, False not, None not asked yet
    executioner_up: Callable[[], bool | None] = lambda: None


@dataclass(slots=True)
class Metrics:
    """The figures of one app; `render()` is the scrape."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    sources: Sources = field(default_factory=Sources)
    http: Histogram = field(init=False)
    orders: Counter = field(init=False)
    refused: Counter = field(init=False)
    fills: Counter = field(init=False)
    matched: Counter = field(init=False)
    cancels: Counter = field(init=False)
    expiries: Counter = field(init=False)
    markets_created: Counter = field(init=False)
    executioner: Histogram = field(init=False)
    executioner_failures: Counter = field(init=False)
    fsync: Histogram = field(init=False)
    records_per_fsync: Histogram = field(init=False)
    _http_children: dict[tuple[str, str, int], Any] = field(init=False, default_factory=dict)
    _orders_by_result: dict[str, Any] = field(init=False, default_factory=dict)
    _executioner_children: dict[str, Any] = field(init=False, default_factory=dict)
    _collector: "_Collector" = field(init=False)
    # Pair key -> unix seconds of the command that made it, for pairs made since the start.
    _pending_since: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        r = self.registry
        self.http = Histogram(
            "ome_http_request_duration_seconds",
            "Time from a request's arrival at the app to its answer, by route template",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.orders = Counter("ome_orders", "Orders accepted, by result", ["result"], registry=r)
        self.refused = Counter(
            "ome_orders_refused", "Order submissions refused, by reason", ["reason"], registry=r
        )
        self.fills = Counter("ome_fills", "Fills (matched maker/taker pairs)", registry=r)
        self.matched = Counter("ome_matched_amount", "Sum of the amounts of all fills", registry=r)
        self.cancels = Counter("ome_cancels", "Orders cancelled", registry=r)
        self.expiries = Counter("ome_expiries", "Resting orders expired", registry=r)
        self.markets_created = Counter("ome_markets_created", "Markets created", registry=r)
        self.executioner = Histogram(
            "ome_executioner_request_duration_seconds",
            "Time of each call to the executioner, answered or not",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.executioner_failures = Counter(
            "ome_executioner_failures",
            "Executioner calls without a 2xx answer, by kind",
            ["call", "kind"],
            registry=r,
        )
        self.fsync = Histogram(
            "ome_journal_fsync_duration_seconds",
            "Time to write and fsync one group of journal records",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.records_per_fsync = Histogram(
            "ome_journal_records_per_fsync",
            "Journal records made durable by one fsync (group commit)",
            buckets=_RECORDS_BUCKETS,
            registry=r,
        )
        self._collector = _Collector(self.sources)
        r.register(self._collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def pending_since(self, key: str | None) -> float | None:
        """When the pair `key` was made; the process start for a pair restored at start."""
        if key is None:
            return None
        return self._pending_since.get(key, self.started)

    @property
    def started(self) -> float:
        return self._collector.started

    # ------------------------------------------------------------ where events happen

    def sink(self, applied: Applied) -> None:
        """Command-path sink: count what the command did."""
        for event in applied.events:
            kind = type(event)
            if kind is Trade:
                assert isinstance(event, Trade)
                self.fills.inc()
                self.matched.inc(event.amount)
                self._pending_since[event.key] = applied.time
            elif kind is OrderAccepted:
                assert isinstance(event, OrderAccepted)
                result = event.status.value
                child = self._orders_by_result.get(result)
                if child is None:
                    child = self._orders_by_result[result] = self.orders.labels(result)
                child.inc()
            elif kind is OrderCancelled:
                self.cancels.inc()
            elif kind is OrderExpired:
                self.expiries.inc()
            elif kind is PairSettled:
                assert isinstance(event, PairSettled)
                self._pending_since.pop(event.key, None)
            elif kind is MarketCreated:
                self.markets_created.inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._http_children.get(key)
        if child is None:
            label = method if method in _METHODS else "other"
            child = self._http_children[key] = self.http.labels(route, label, str(status))
        child.observe(seconds)

    def observe_refusal(self, exc: BaseException) -> None:
        self.refused.labels(reason_of(exc)).inc()

    def observe_executioner(self, call: str, seconds: float, failure: str | None) -> None:
        child = self._executioner_children.get(call)
        if child is None:
            child = self._executioner_children[call] = self.executioner.labels(call)
        child.observe(seconds)
        if failure is not None:
            self.executioner_failures.labels(call, failure).inc()

    def observe_flush(self, records: int, seconds: float) -> None:
        self.fsync.observe(seconds)
        self.records_per_fsync.observe(records)


class _Collector(Collector):
    """Levels read at scrape time from `Sources`."""

    def __init__(self, sources: Sources) -> None:
        self._sources = sources
        self.started = time.time()

    def collect(self) -> Iterator[Metric]:
        s = self._sources
        books = GaugeMetricFamily(
            "ome_book_orders", "Resting orders, by market and side", labels=["market", "side"]
        )
        markets = 0
        other = [0, 0]
        for book in s.books():
            bids, asks = book.depth
            if markets < MAX_MARKET_SERIES:
                books.add_metric([book.market, "Bid"], bids)
                books.add_metric([book.market, "Ask"], asks)
            else:
                other[0] += bids
                other[1] += asks
            markets += 1
        if markets > MAX_MARKET_SERIES:
            books.add_metric(["other", "Bid"], other[0])
            books.add_metric(["other", "Ask"], other[1])
        yield books
        yield GaugeMetricFamily("ome_markets", "Markets", value=markets)

        pending, oldest = s.outbox()
        yield GaugeMetricFamily(
            "ome_outbox_pending", "Matched pairs not yet settled by the executioner", value=pending
        )
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest)
        yield GaugeMetricFamily(
            "ome_outbox_oldest_age_seconds",
            "Age of the oldest pair not yet settled, 0 when there is none",
            value=age,
        )
        deliveries = CounterMetricFamily(
            "ome_deliveries",
            "Deliveries of pairs to the executioner: delivered, rejected (4xx, final), retried",
            labels=["outcome"],
        )
        for outcome, count in s.deliveries().items():
            deliveries.add_metric([outcome], count)
        yield deliveries

        records, fsyncs = s.journal()
        yield CounterMetricFamily(
            "ome_journal_records", "Journal records made durable", value=records
        )
        yield CounterMetricFamily("ome_journal_fsyncs", "Journal fsyncs", value=fsyncs)

        yield GaugeMetricFamily(
            "ome_ready", "1 when GET /ready answers 200", value=1 if s.ready() else 0
        )
        up = s.executioner_up()
        yield GaugeMetricFamily(
            "ome_executioner_up",
            "1 when the executioner's last answer came, 0 when it did not, -1 before any call",
            value=-1 if up is None else int(up),
        )
        yield GaugeMetricFamily(
            "ome_start_time_seconds", "Unix time the process started", value=self.started
        )
