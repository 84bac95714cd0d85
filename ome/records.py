"""The commands that change state, as the journal stores them.

A record is one command and the time it was applied at; its sequence number
is in the journal's frame. It holds what replay needs to apply the command
again, never what the command caused: fills, rests and expiries are derived
again by the engine. Payloads are compact JSON arrays, the kind first:

    ["m", time, market]                                   create market
    ["p", time, id, user, market, side, price, amount,    place order
           expiration, created, signed_data]
    ["c", time, market, order_id, owner | null]           cancel (owner: who signed it)
    ["e", time]                                           expire every order due
    ["d", time, key] / ["r", time, key]                   pair delivered / rejected

Integers that can pass 2^64 (price, amount) are decimal strings. The order id
is stored so that replay need not hash again; the journal's CRC covers it.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from ome.engine import Order, Side, make_order

# Side by its value in records: a dict lookup is cheaper than calling the enum.
_SIDES = {int(side): side for side in Side}
# A tuple, not a set: a kind that is not a string (a list, say) must not raise TypeError.
_KINDS = ("p", "c", "e", "d", "r", "m")


class RecordError(ValueError):
    """A payload that is not a record of a known kind."""


@dataclass(frozen=True, slots=True)
class CreateMarket:
    market: str


@dataclass(frozen=True, slots=True)
class Place:
    order: Order


@dataclass(frozen=True, slots=True)
class Cancel:
    market: str
    order_id: str
    # The signer who asked for it; None when unsigned cancels are allowed.
    owner: str | None


@dataclass(frozen=True, slots=True)
class Expire:
    pass


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    key: str
    delivered: bool


Command = CreateMarket | Place | Cancel | Expire | DeliveryOutcome


def encode(command: Command, time: int) -> bytes:
    if isinstance(command, Place):
        o = command.order
        return orjson.dumps(
            [
                "p",
                time,
                o.id,
                o.user,
                o.target_tracer,
                int(o.side),
                str(o.price),
                str(o.amount),
                o.expiration,
                o.created,
                o.signed_data,
            ]
        )
    if isinstance(command, Cancel):
        return orjson.dumps(["c", time, command.market, command.order_id, command.owner])
    if isinstance(command, CreateMarket):
        return orjson.dumps(["m", time, command.market])
    if isinstance(command, Expire):
        return orjson.dumps(["e", time])
    return orjson.dumps(["d" if command.delivered else "r", time, command.key])


def decode(payload: bytes) -> tuple[Command, int]:
    """The command of a payload and its time; raise RecordError when it is none."""
    record = fields(payload)
    kind, time = record[0], record[1]
    command: Command
    try:
        if kind == "p":
            command = Place(place_order(record))
        elif kind == "c":
            command = Cancel(record[2], record[3], record[4])
        elif kind == "m":
            command = CreateMarket(record[2])
        elif kind == "e":
            command = Expire()
        else:
            command = DeliveryOutcome(record[2], kind == "d")
    except IndexError as exc:
        raise RecordError(f"not a journal record: {exc}") from exc
    return command, time


def fields(payload: bytes) -> list[Any]:
    """The array of a record of a known kind with an integer time; raise RecordError if not.

    Its other fields are at the places the module docstring gives them.
    Replay (`ome.commands.Machine.replay`) reads them there itself rather
    than through a command object, which would cost a tenth of its time.
    """
    try:
        record: Any = orjson.loads(payload)
        kind, time = record[0], record[1]
    except (orjson.JSONDecodeError, LookupError, TypeError) as exc:
        raise RecordError(f"not a journal record: {exc}") from exc
    if kind not in _KINDS:
        raise RecordError(f"unknown record kind {kind!r}")
    if type(time) is not int:
        raise RecordError("record time is not an integer")
    return record  # type: ignore[no-any-return]


def place_order(record: list[Any]) -> Order:
    """The order of a place record (`fields` of it); raise RecordError when it is malformed."""
    try:
        _, _, oid, user, market, side, price, amount, expiration, created, signed = record
        amount_int = int(amount)
        return make_order(
            oid,
            user,
            market,
            _SIDES[side],
            int(price),
            amount_int,
            amount_int,
            expiration,
            created,
            signed,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"not a place record: {exc}") from exc
