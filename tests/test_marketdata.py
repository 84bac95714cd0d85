"""Depth, depth updates and trade history against naive models, after random order flow.

Commands go through `Machine.apply` as the live path and replay do. After
every command the test checks, for each market:

- the depth object against levels summed up from the resting orders one by one;
- that a client applying each command's depth update (derived from its events
  only) to the previous picture holds exactly the full depth, with `seq`
  increasing by one per update;
- the trade history against every fill seen so far, newest first, bounded.
"""

from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ome.commands import Machine
from ome.engine import EngineError, Order, Side
from ome.marketdata import depth_json, depth_update, recent_trades, touched_levels
from ome.records import CreateMarket, Place
from ome.state import TRADE_HISTORY, State
from tests.builders import MARKET, NOW, SIG, user
from tests.flows import CANCEL, MARKETS, TICK, command_of, places

commands = st.lists(st.one_of(places(95, 105), CANCEL, TICK), max_size=120)


def naive_levels(machine: Machine, market: str, side: Side) -> list[list[Any]]:
    """Every level of one side, best first, summed from the resting orders."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for order in machine.state.exchange.get(market).in_arrival_order():
        if order.side is side:
            totals[order.price][0] += order.amount_left
            totals[order.price][1] += 1
    prices = sorted(totals, reverse=side is Side.Bid)
    return [[str(p), str(totals[p][0]), totals[p][1]] for p in prices]


def apply_update(picture: dict[str, dict[str, list[Any]]], update: dict[str, Any]) -> None:
    for name in ("bids", "asks"):
        for price, amount, count in update[name]:
            if amount == "0":
                assert count == 0
                picture[name].pop(price, None)
            else:
                picture[name][price] = [price, amount, count]


def sorted_side(levels: dict[str, list[Any]], side: Side) -> list[list[Any]]:
    return sorted(levels.values(), key=lambda level: int(level[0]), reverse=side is Side.Bid)


@settings(max_examples=150, deadline=None)
@given(flow=commands)
def test_depth_updates_and_trades_follow_a_naive_model(flow: list[tuple[Any, ...]]) -> None:
    machine = Machine(State())
    now = NOW
    seq = 0
    for market in MARKETS:
        seq += 1
        machine.apply(seq, now, CreateMarket(market))
    pictures = {m: {"bids": {}, "asks": {}} for m in MARKETS}
    market_seq = dict.fromkeys(MARKETS, 0)
    fills: dict[str, list[dict[str, Any]]] = {m: [] for m in MARKETS}
    placed: list[Order] = []
    for step in flow:
        if step[0] == "tick":
            now += step[1]
        command = command_of(step, now, placed)
        if command is None:
            continue
        try:
            applied = machine.apply(seq + 1, now, command)
        except EngineError:
            continue
        seq += 1
        touched = touched_levels(applied)
        for market, levels in touched.items():
            book = machine.state.exchange.get(market)
            update = depth_update(book, levels)
            assert update["seq"] == market_seq[market] + 1
            market_seq[market] = update["seq"]
            apply_update(pictures[market], update)
        for market in MARKETS:
            # A market the command did not touch did not change its seq.
            assert machine.state.exchange.get(market).seq == market_seq[market]
        for fill in applied.fills:
            maker, taker, price, amount, _, _ = fill
            fills[taker.target_tracer].append(
                {
                    "seq": market_seq[taker.target_tracer],
                    "time": str(now),
                    "price": str(price),
                    "amount": str(amount),
                    "maker": maker.id,
                    "taker": taker.id,
                    "taker_side": taker.side.name,
                }
            )
        for market in MARKETS:
            book = machine.state.exchange.get(market)
            bids = naive_levels(machine, market, Side.Bid)
            asks = naive_levels(machine, market, Side.Ask)
            assert sorted_side(pictures[market]["bids"], Side.Bid) == bids
            assert sorted_side(pictures[market]["asks"], Side.Ask) == asks
            depth = depth_json(book, 3)
            assert depth["bids"] == bids[:3]
            assert depth["asks"] == asks[:3]
            assert depth["seq"] == market_seq[market]
            history = machine.state.trades.get(market)
            expected = fills[market][::-1][:TRADE_HISTORY]
            assert recent_trades(history, 1000) == expected
            assert recent_trades(history, 2) == expected[:2]


def test_trade_history_keeps_the_newest_thousand() -> None:
    machine = Machine(State())
    machine.apply(1, NOW, CreateMarket(MARKET))
    seq = 1
    for i in range(TRADE_HISTORY + 5):
        for side, who in ((Side.Ask, 1), (Side.Bid, 2)):
            seq += 1
            order = Order.create(
                user=user(who),
                target_tracer=MARKET,
                side=side,
                price=100,
                amount=1,
                expiration=NOW + 60,
                created=i,
                signed_data=SIG,
            )
            machine.apply(seq, NOW, Place(order))
    history = machine.state.trades[MARKET]
    assert len(history) == TRADE_HISTORY
    # Each trade is the second command of a pair: market seqs 2, 4, …; the oldest 5 fell off.
    assert history[0].seq == 2 * 6
    assert history[-1].seq == 2 * (TRADE_HISTORY + 5)
