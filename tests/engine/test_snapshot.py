"""The engine's snapshot: version 2 keeps seq and the finished-order memory; version 1 loads."""

import pytest

from ome.engine import Exchange, OrderFinished, SnapshotError, snapshot
from tests.engine.helpers import MARKET, NOW, ask, bid


def _exchange() -> Exchange:
    exchange = Exchange()
    book = exchange.create(MARKET)
    book.submit(ask(100, 5, trader=1), NOW)
    book.submit(ask(101, 5, trader=1), NOW)
    book.submit(bid(100, 5, trader=2), NOW)
    cancelled = bid(90, 1, trader=2)
    book.submit(cancelled, NOW)
    book.cancel(cancelled.id)
    book.seq = 7
    return exchange


def test_version_2_keeps_seq_and_finished_memory() -> None:
    exchange = _exchange()
    data = snapshot.to_dict(exchange)
    assert data["version"] == 2
    [market] = data["markets"]
    assert market["seq"] == 7
    assert len(market["finished"]) == 3
    restored = snapshot.from_dict(data)
    book = restored.get(MARKET)
    assert book.seq == 7
    assert book.finished() == exchange.get(MARKET).finished()
    assert snapshot.to_dict(restored) == data
    oid, expiration = market["finished"][0]
    assert book.is_finished(oid, NOW)
    refused = bid(1, 1)
    refused.id = oid
    refused.expiration = int(expiration)
    with pytest.raises(OrderFinished):
        book.check_entry(refused, NOW)


def test_version_1_loads_with_seq_0_and_no_memory() -> None:
    data = snapshot.to_dict(_exchange())
    data["version"] = 1
    for market in data["markets"]:
        del market["seq"], market["finished"]
    book = snapshot.from_dict(data).get(MARKET)
    assert (book.seq, book.finished(), len(book)) == (0, [], 1)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(seq=-1),
        lambda m: m.update(seq="x"),
        lambda m: m.update(finished=[["0x01"]]),
        lambda m: m.update(finished=[*m["finished"], m["finished"][0]]),
        lambda m: m.update(finished=[[m["orders"][0]["id"], "5"]]),
        lambda m: m["finished"][0].__setitem__(1, "-3"),
    ],
)
def test_malformed_version_2_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    data = snapshot.to_dict(_exchange())
    change(data["markets"][0])
    with pytest.raises(SnapshotError):
        snapshot.from_dict(data)
