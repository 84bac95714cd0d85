"""GET /metrics, GET /ready and the access log, as a scraper, a probe and an operator see them.

Scrapes are parsed with prometheus-client's own text parser; every figure is
compared before and after the requests that must move it.
"""

import errno
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient
from structlog.testing import capture_logs

from ome.api.app import create_app
from ome.api.keys import COMMANDS
from ome.config import Settings
from ome.metrics import Metrics
from tests.api.conftest import EXECUTIONER_TIMEOUT, Client, refused, submit
from tests.builders import MARKET, NOW, Clock, order_body
from tests.fakes import FakeExecutioner

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SUBMIT = {"route": "/book/{market}/order", "method": "POST", "status": "200"}


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_move_as_orders_are_placed_matched_and_cancelled(
    client: Client, market: str, fake_executioner: FakeExecutioner, clock: Clock
) -> None:
    before = await scrape(client)
    ask = await submit(client, order_body(1, "Ask", price=105, amount=10))
    other = await submit(client, order_body(3, "Ask", price=110, amount=2))
    assert (await submit(client, order_body(2, "Bid", price=106, amount=4)))["fills"]
    response = await client.delete(f"/book/{MARKET}/order/{other['id']}")
    assert response.status == 200
    await refused(client, "POST", f"/book/{MARKET}/order", 400, json=order_body(expiration=NOW))
    await refused(client, "POST", f"/book/{MARKET}/order", 409, json=order_body(1, "Ask", 105, 10))
    await refused(client, "POST", f"/book/{MARKET}/order", 400, json={"side": "Bid"})
    await fake_executioner.wait_delivered(1)
    after = await scrape(client)

    assert moved(before, after, "ome_orders_total", result="Add") == 2
    assert moved(before, after, "ome_orders_total", result="FullMatch") == 1
    assert moved(before, after, "ome_orders_total", result="PartialMatch") == 0
    assert moved(before, after, "ome_fills_total") == 1
    assert moved(before, after, "ome_matched_amount_total") == 4
    assert moved(before, after, "ome_cancels_total") == 1
    assert moved(before, after, "ome_orders_refused_total", reason="order_expired") == 1
    assert moved(before, after, "ome_orders_refused_total", reason="duplicate_order") == 1
    assert moved(before, after, "ome_orders_refused_total", reason="invalid_request") == 1
    # Route templates, never raw paths; each answer counted under its own status.
    assert moved(before, after, "ome_http_request_duration_seconds_count", **SUBMIT) == 3
    refusals = {**SUBMIT, "status": "400"}
    assert moved(before, after, "ome_http_request_duration_seconds_count", **refusals) == 2
    cancel = {"route": "/book/{market}/order/{order_id}", "method": "DELETE", "status": "200"}
    assert moved(before, after, "ome_http_request_duration_seconds_count", **cancel) == 1
    assert not any(MARKET in dict(labels).get("route", "") for _, labels in after)
    # Levels, read at scrape time: the ask rests with 6, the other ask was cancelled.
    assert value(after, "ome_book_orders", market=MARKET, side="Ask") == 1
    assert value(after, "ome_book_orders", market=MARKET, side="Bid") == 0
    assert value(after, "ome_markets") == 1
    assert moved(before, after, "ome_deliveries_total", outcome="delivered") == 1
    assert value(after, "ome_outbox_pending") == 0
    assert moved(before, after, "ome_executioner_request_duration_seconds_count", call="check") == 3
    # Three placed, one cancel; delivery outcomes are not waited for.
    assert moved(before, after, "ome_journal_records_total") >= 4
    assert value(after, "ome_journal_fsyncs_total") >= 1
    assert value(after, "ome_journal_records_per_fsync_count") == value(
        after, "ome_journal_fsyncs_total"
    )
    assert value(after, "ome_ready") == 1
    assert value(after, "ome_executioner_up") == 1
    assert ask["id"]


async def test_expiries_and_the_age_of_the_oldest_undelivered_pair(
    client: Client, market: str, fake_executioner: FakeExecutioner, clock: Clock
) -> None:
    fake_executioner.fail(seconds=60)
    before = await scrape(client)
    await submit(client, order_body(1, "Ask", price=105, amount=10, expiration=str(NOW + 5)))
    await submit(client, order_body(2, "Bid", price=105, amount=4))
    await submit(client, order_body(3, "Ask", price=200, amount=1, expiration=str(NOW + 5)))
    await fake_executioner.wait_for("submit", 1)
    during = await scrape(client)
    assert value(during, "ome_outbox_pending") == 1
    assert value(during, "ome_outbox_oldest_age_seconds") > 0
    assert moved(before, during, "ome_deliveries_total", outcome="retried") >= 1
    clock.now = NOW + 10
    app = client.server.app
    assert app is not None
    app[COMMANDS].expire()
    after = await scrape(client)
    assert moved(before, after, "ome_expiries_total") == 2


async def test_executioner_failures_by_kind_and_down_in_ready_but_still_ready(
    client: Client, market: str, fake_executioner: FakeExecutioner
) -> None:
    fake_executioner.fail(times=1, path="check")
    await refused(client, "POST", f"/book/{MARKET}/order", 503, json=order_body())
    fake_executioner.hang(path="check")
    await refused(client, "POST", f"/book/{MARKET}/order", 503, json=order_body(2))
    response = await client.get("/ready")
    assert response.status == 200
    assert (await response.json())["executioner"] == "down"
    fake_executioner.release()
    fake_executioner.reject("no margin")
    await refused(client, "POST", f"/book/{MARKET}/order", 400, json=order_body(3))
    samples = await scrape(client)
    for kind in ("server_error", "timeout", "rejected"):
        assert value(samples, "ome_executioner_failures_total", call="check", kind=kind) == 1
    reasons = ("executioner_unavailable", "executioner_rejected")
    assert [value(samples, "ome_orders_refused_total", reason=r) for r in reasons] == [2, 1]
    assert (await (await client.get("/ready")).json())["executioner"] == "up"


async def test_ready_is_503_while_the_journal_cannot_be_written(
    client: Client, market: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await client.get("/ready")).status == 200
    app = client.server.app
    assert app is not None

    def full_disk(data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(app[COMMANDS].journal._file, "write", full_disk)
    await refused(client, "POST", f"/book/{MARKET}/order", 503, json=order_body())
    response = await client.get("/ready")
    assert response.status == 503
    body = await response.json()
    assert (body["message"], body["journal"]) == ("Journal unavailable", "unavailable")
    assert value(await scrape(client), "ome_ready") == 0


async def test_a_failing_metric_changes_no_answer(
    client: Client, market: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("metrics are broken")

    for name in ("observe_request", "observe_refusal", "observe_executioner", "sink"):
        monkeypatch.setattr(Metrics, name, broken)
    app = client.server.app
    assert app is not None
    # The sink and the executioner's observer were bound at startup: break those too.
    monkeypatch.setattr(app[COMMANDS], "sinks", [*app[COMMANDS].sinks[:-1], broken])
    assert (await submit(client, order_body(1, "Ask")))["message"] == "Add"
    assert (await client.get(f"/book/{MARKET}")).status == 200
    await refused(client, "POST", f"/book/{MARKET}/order", 409, json=order_body(1, "Ask"))


async def test_metrics_off_means_a_404_and_nothing_counted(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    off = settings.model_copy(update={"metrics": False})
    client = await aiohttp_client(
        create_app(off, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT)
    )
    message = await refused(client, "GET", "/metrics", 404)
    assert message == "Metrics are turned off"
    assert (await client.post("/book", json={"market": MARKET})).status == 201
    assert (await client.get("/ready")).status == 200


async def test_the_access_log_has_one_line_per_request(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    logged = settings.model_copy(update={"access_log": True})
    client = await aiohttp_client(
        create_app(logged, clock=clock, executioner_timeout=EXECUTIONER_TIMEOUT)
    )
    with capture_logs() as events:
        created = await client.post("/book", json={"market": MARKET})
        await client.get("/book/" + "zz")
        await client.get("/no/such/route")
    lines = [e for e in events if e["event"] == "http_request"]
    assert [(e["method"], e["route"], e["status"]) for e in lines] == [
        ("POST", "/book", 201),
        ("GET", "/book/{market}", 400),
        ("GET", "unmatched", 404),
    ]
    assert lines[0]["request_id"] == created.headers["X-Request-Id"]
    assert all(e["latency_ms"] >= 0 for e in lines)


async def test_no_access_log_by_default(client: Client) -> None:
    with capture_logs() as events:
        assert (await client.get("/book")).status == 200
    assert not [e for e in events if e["event"] == "http_request"]
