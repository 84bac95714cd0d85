"""The engine's snapshot: version 3 keeps orders in columns; versions 1 and 2 still load."""

from typing import Any

import orjson
import pytest

from ome.engine import Exchange, OrderFinished, SnapshotError, snapshot
from tests.builders import exchange_version_2
from tests.engine.helpers import MARKET, NOW, ask, bid


def _exchange() -> Exchange:
    exchange = Exchange()
    book = exchange.create(MARKET)
    book.submit(ask(100, 5, trader=1), NOW)
    book.submit(ask(101, 5, trader=1), NOW)
    book.submit(bid(100, 3, trader=2), NOW)
    book.submit(bid(99, 4, trader=3), NOW)
    cancelled = bid(90, 1, trader=2)
    book.submit(cancelled, NOW)
    book.cancel(cancelled.id)
    book.seq = 7
    return exchange


def test_version_3_keeps_columns_seq_and_finished_memory() -> None:
    exchange = _exchange()
    data = snapshot.to_dict(exchange)
    assert data["version"] == 3
    [market] = data["markets"]
    assert market["seq"] == 7
    assert len(market["finished"]) == 2
    assert market["orders"]["side"] == [1, 1, 0]
    assert market["orders"]["amount_left"] == [2, 5, 4]
    restored = snapshot.from_dict(data)
    book = restored.get(MARKET)
    book.validate()
    assert book.seq == 7
    assert book.finished() == exchange.get(MARKET).finished()
    assert [o.to_dict() for o in book.orders()] == [
        o.to_dict() for o in exchange.get(MARKET).orders()
    ]
    assert snapshot.to_dict(restored) == data
    oid, expiration = market["finished"][0]
    assert book.is_finished(oid, NOW)
    refused = bid(1, 1)
    refused.id = oid
    refused.expiration = int(expiration)
    with pytest.raises(OrderFinished):
        book.check_entry(refused, NOW)


def test_numbers_from_2_to_the_63_are_kept_as_strings() -> None:
    exchange = Exchange()
    book = exchange.create(MARKET)
    book.submit(ask(2**100, 2**63, trader=1), NOW)
    book.submit(ask(2**63 - 1, 5, trader=1), NOW)
    data = snapshot.to_dict(exchange)
    assert data["markets"][0]["orders"]["price"] == [str(2**100), 2**63 - 1]
    assert data["markets"][0]["orders"]["amount"] == [str(2**63), 5]
    restored = snapshot.from_dict(orjson.loads(orjson.dumps(data)))
    assert [o.to_dict() for o in restored.get(MARKET).orders()] == [
        o.to_dict() for o in book.orders()
    ]


def test_version_2_still_loads() -> None:
    exchange = _exchange()
    restored = snapshot.from_dict(exchange_version_2(exchange))
    restored.get(MARKET).validate()
    assert snapshot.to_dict(restored) == snapshot.to_dict(exchange)


def test_version_1_loads_with_seq_0_and_no_memory() -> None:
    data = exchange_version_2(_exchange())
    data["version"] = 1
    for market in data["markets"]:
        del market["seq"], market["finished"]
    book = snapshot.from_dict(data).get(MARKET)
    assert (book.seq, book.finished(), len(book)) == (0, [], 3)


def _set_column(name: str, index: int, value: Any):  # type: ignore[no-untyped-def]
    return lambda m: m["orders"][name].__setitem__(index, value)


MALFORMED = [
    lambda m: m.update(seq=-1),
    lambda m: m.update(seq="x"),
    lambda m: m.update(finished=[["0x01"]]),
    lambda m: m.update(finished=[*m["finished"], m["finished"][0]]),
    lambda m: m.update(finished=[[m["orders"]["id"][0], "5"]]),
    lambda m: m["finished"][0].__setitem__(1, "-3"),
    lambda m: m["orders"]["price"].pop(),
    lambda m: m["orders"].pop("created"),
    lambda m: m["orders"].update(extra=[1, 2, 3]),
    _set_column("price", 1, -100),
    _set_column("price", 1, "100"),
    _set_column("price", 1, 100.5),
    _set_column("expiration", 0, "soon"),
    _set_column("amount_left", 2, 0),
    _set_column("amount_left", 2, 5),
    _set_column("side", 0, 2),
    _set_column("user", 0, None),
    _set_column("id", 1, "0x" + "ab" * 32),
    lambda m: m["orders"]["id"].__setitem__(1, m["orders"]["id"][0]),
]


@pytest.mark.parametrize("change", MALFORMED)
def test_malformed_version_3_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    data = snapshot.to_dict(_exchange())
    change(data["markets"][0])
    with pytest.raises(SnapshotError):
        snapshot.from_dict(data)


def test_ids_are_not_recomputed_when_the_caller_checked_them() -> None:
    data = snapshot.to_dict(_exchange())
    data["markets"][0]["orders"]["id"][1] = "0x" + "ab" * 32
    book = snapshot.from_dict(data, ids_checked=True).get(MARKET)
    assert "0x" + "ab" * 32 in book


def test_an_order_id_twice_is_refused_even_when_ids_were_checked() -> None:
    data = snapshot.to_dict(_exchange())
    ids = data["markets"][0]["orders"]["id"]
    ids[1] = ids[0]
    with pytest.raises(SnapshotError, match="appears twice"):
        snapshot.from_dict(data, ids_checked=True)


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o[0].update(target_tracer="0x" + "99" * 20),
        lambda o: o[0].update(amount_left="0"),
        lambda o: o[0].update(price="-1"),
        lambda o: o[1].update(id=o[0]["id"]),
        lambda o: o[1].update(price="1"),
    ],
)
def test_malformed_version_2_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    data = exchange_version_2(_exchange())
    change(data["markets"][0]["orders"])
    with pytest.raises(SnapshotError):
        snapshot.from_dict(data)
