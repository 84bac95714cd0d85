"""The dumpfile round-trips the whole state and is replaced atomically."""

import hashlib
import os
from pathlib import Path

import orjson
import pytest

from ome.engine import Exchange, Side
from ome.engine.snapshot import to_dict
from ome.outbox import PendingPairs, make_pair
from ome.persistence import DumpfileError, check_writable, digest, read_dump, write_dump
from ome.state import State, TradeRecord, trade_history
from ome.wire import trade_json
from tests.builders import MARKET, NOW, OTHER_MARKET, exchange_version_2, make_order


def busy_state() -> State:
    exchange = Exchange()
    book = exchange.create(MARKET)
    exchange.create(OTHER_MARKET)
    for i in range(6):
        book.submit(make_order(Side.Ask, 100 + i % 3, 10, trader=1, created=NOW + i), NOW)
        book.submit(make_order(Side.Bid, 90 + i % 2, 10, trader=2, created=NOW + i), NOW)
    fills = book.submit(make_order(Side.Bid, 101, 25, trader=3, created=NOW), NOW)[1]
    pairs = [make_pair(fill, 13, index) for index, fill in enumerate(fills)]
    trades = trade_history()
    trades.extend(
        TradeRecord(13, NOW, price, amount, maker.id, taker.id, taker.side)
        for maker, taker, price, amount, _, _ in fills
    )
    return State(exchange, PendingPairs(pairs), 13, {MARKET: trades})


def test_round_trip_keeps_books_queues_ltp_pairs_and_seq(tmp_path: Path) -> None:
    saved = busy_state()
    exchange = saved.exchange
    path = tmp_path / "dump.json"
    write_dump(path, saved)

    state = read_dump(path)
    assert state is not None
    assert to_dict(state.exchange) == to_dict(exchange)
    assert state.exchange.get(MARKET).ltp == exchange.get(MARKET).ltp != 0
    assert [o.id for o in state.exchange.get(MARKET).orders()] == [
        o.id for o in exchange.get(MARKET).orders()
    ]
    assert state.outbox.pairs() == saved.outbox.pairs()
    assert state.seq == 13
    assert list(state.trades[MARKET]) == list(saved.trades[MARKET]) != []
    assert digest(state) == digest(saved)
    header, content = path.read_bytes().split(b"\n")
    assert orjson.loads(header) == {"version": 3, "sha256": hashlib.sha256(content).hexdigest()}
    assert set(orjson.loads(content)) == {"seq", "exchange", "outbox", "trades"}


@pytest.mark.parametrize("offset", [0, 1000, -2])
def test_a_damaged_byte_is_found_by_the_checksum(tmp_path: Path, offset: int) -> None:
    path = tmp_path / "dump.json"
    write_dump(path, busy_state())
    damaged = bytearray(path.read_bytes())
    at = damaged.index(b"\n") + 1 + offset if offset >= 0 else len(damaged) + offset
    # A digit for another digit: still valid JSON, and a snapshot that would load.
    damaged[at : at + 1] = b"7" if damaged[at : at + 1] != b"7" else b"8"
    path.write_bytes(bytes(damaged))
    with pytest.raises(DumpfileError, match=r"dump\.json is damaged"):
        read_dump(path)
    assert path.read_bytes() == bytes(damaged)


def test_version_2_still_restores(tmp_path: Path) -> None:
    saved = busy_state()
    path = tmp_path / "old.json"
    document = {
        "version": 2,
        "seq": saved.seq,
        "exchange": exchange_version_2(saved.exchange),
        "outbox": [pair.to_dict() for pair in saved.outbox.pairs()],
        "trades": {m: [trade_json(t) for t in history] for m, history in saved.trades.items()},
    }
    path.write_bytes(orjson.dumps(document))
    state = read_dump(path)
    assert state is not None and digest(state) == digest(saved)
    # Without a checksum the ids are recomputed: a changed field is found.
    document["exchange"]["markets"][0]["orders"][0]["price"] = "1"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(DumpfileError, match="does not match its fields"):
        read_dump(path)


def test_version_1_still_restores(tmp_path: Path) -> None:
    saved = busy_state()
    pairs = [{"key": p.key, "maker": p.maker, "taker": p.taker} for p in saved.outbox.pairs()]
    version_1 = exchange_version_2(saved.exchange)
    version_1["version"] = 1
    for market in version_1["markets"]:
        del market["seq"], market["finished"]
    path = tmp_path / "old.json"
    path.write_bytes(orjson.dumps({"version": 1, "exchange": version_1, "outbox": pairs}))
    state = read_dump(path)
    assert state is not None and state.seq == 0
    for market, book in saved.exchange.books.items():
        restored = state.exchange.get(market)
        assert [o.to_dict() for o in restored.in_arrival_order()] == [
            o.to_dict() for o in book.in_arrival_order()
        ]
    assert [(p.key, p.seq) for p in state.outbox.pairs()] == [(p["key"], 0) for p in pairs]


def test_missing_file_means_nothing_to_restore(tmp_path: Path) -> None:
    assert read_dump(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"version": 3, "exchange": {}, "outbox": []}',
        b'{"version":3,"sha256":"00"}\n{"seq": 1}',
        b'{"version":3,"sha256":"00"}',
        b'{"version":3,',
        b'{"version": 2, "seq": -1, "exchange": {"version": 1, "markets": []}, "outbox": []}',
        b'{"version": 1, "exchange": {"version": 1, "markets": [{"market": 5}]}, "outbox": []}',
        b'{"version": 1, "exchange": {"version": 1, "markets": []}, "outbox": [{"key": 1}]}',
        b'{"version": 1, "exchange": {"version": 1, "markets": []}, "outbox": {}}',
    ],
)
def test_unusable_file_is_named_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(DumpfileError, match=r"broken\.json"):
        read_dump(path)
    assert path.read_bytes() == content


def test_unreadable_path_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(DumpfileError, match="a_folder"):
        read_dump(folder)


def test_write_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(b"old")
    write_dump(path, busy_state())
    assert read_dump(path) is not None
    assert os.listdir(tmp_path) == ["dump.json"]


def test_crash_before_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dump.json"
    write_dump(path, busy_state())
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(DumpfileError, match="simulated"):
        write_dump(path, State())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["dump.json"]


def test_crash_while_writing_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dump.json"
    write_dump(path, busy_state())
    before = path.read_bytes()

    def crash(fd: int) -> None:
        raise OSError("simulated disk failure")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(DumpfileError, match="simulated"):
        write_dump(path, State())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["dump.json"]


def test_unwritable_place_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(DumpfileError, match="missing"):
        check_writable(tmp_path / "missing" / "dump.json")
    check_writable(tmp_path / "dump.json")
