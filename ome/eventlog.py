"""The log sink of the command path: one structured line per event, after the fact.

Runs after the command's state change and journal append; the logger itself
never raises (ome.logs), and the command path skips a failing sink, so a log
line can never change what a client is told.
"""

import structlog

from ome.commands import (
    Applied,
    MarketCreated,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    Trade,
)

log = structlog.get_logger("ome.commands")


def log_events(applied: Applied) -> None:
    seq = applied.seq
    for event in applied.events:
        if isinstance(event, Trade):
            log.info(
                "order_matched",
                seq=seq,
                market=event.market,
                maker=event.maker.id,
                taker=event.taker.id,
                maker_user=event.maker.user,
                taker_user=event.taker.user,
                price=str(event.price),
                amount=str(event.amount),
                key=event.key,
            )
        elif isinstance(event, OrderAccepted):
            order = event.order
            log.info(
                "order_accepted",
                seq=seq,
                market=order.target_tracer,
                order_id=order.id,
                user=order.user,
                status=event.status.value,
            )
        elif isinstance(event, OrderCancelled):
            order = event.order
            log.info(
                "order_cancelled",
                seq=seq,
                market=order.target_tracer,
                order_id=order.id,
                user=order.user,
                signed_by=event.owner,
            )
        elif isinstance(event, OrderExpired):
            order = event.order
            log.info(
                "order_expired",
                seq=seq,
                market=order.target_tracer,
                order_id=order.id,
                user=order.user,
            )
        elif isinstance(event, MarketCreated):
            log.info("market_created", seq=seq, market=event.market)
