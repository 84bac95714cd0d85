"""The dumpfile: a snapshot of the whole state, covering the journal up to its `seq`.

Format (version 3), two lines, each one JSON object:

    {"version": 3, "sha256": "<hex>"}              # the header
    {"seq": 1234,                                  # last command it contains
     "exchange": <ome.engine.snapshot.to_dict>,    # books, queue order, amount_left, ltp
     "outbox": [pair, …],                          # undelivered pairs, oldest first
     "trades": {"0x<market>": [trade, …]}}         # recent trades, oldest first

`sha256` is the hash of the second line's bytes. It is checked before
anything is parsed, and a file that passes it is what this service wrote:
its order ids need not be recomputed from their fields (ome.engine.snapshot).
A trade is the wire trade object of docs/API.md (`ome.wire.trade_json`).

Version 2, one JSON object `{"version": 2, "seq": …, "exchange": …, "outbox":
…, "trades": …}` with no checksum (its ids are recomputed), still loads; so
does version 1 (no `seq`, pairs without theirs) as seq 0. A file without
`trades` (version 1, or version 2 as written before trade history existed)
loads with no history.

`read_dump` either returns the complete state or raises `DumpfileError` naming
the file; it never modifies the file. A snapshot is written in two steps so
that another process can do the slow part: `write_temporary` (or
`write_file`) puts the content into a temporary file in the same folder and
fsyncs it, `install` renames it over the dumpfile and fsyncs the folder.
After a crash at any point the path holds either the old snapshot or the new
one, never a part.

`digest` is a hash of the state's canonical encoding: two states with the
same digest are the same books, queues, amounts left, ltp, finished-order
memory, outbox, trade history and sequence number.
"""

import hashlib
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from ome.engine import SnapshotError
from ome.engine.snapshot import from_dict, to_dict
from ome.journal import fsync_folder
from ome.outbox import PendingPairs, parse_pair
from ome.state import State, TradeRecord, trade_history
from ome.wire import parse_trade, trade_json

VERSION = 3
# The versions written as one JSON object, without a header.
_READABLE = (1, 2)
# How a version-3 dumpfile starts: `dump_bytes` writes the header this way.
_HEADER_START = b'{"version":3,'


class DumpfileError(Exception):
    """The dumpfile exists but cannot be used; the message names the file."""


def read_dump(path: Path) -> State | None:
    """The state stored at `path`, or None when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DumpfileError(f"cannot read dumpfile {path}: {exc.strerror or exc}") from exc
    if raw.startswith(_HEADER_START):
        return _read_version_3(path, raw)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DumpfileError(f"dumpfile {path} is not valid JSON: {exc}") from exc
    version = data.get("version") if isinstance(data, dict) else None
    if version not in _READABLE:
        raise DumpfileError(
            f"dumpfile {path} has unsupported version {version!r}: expected 1 or 2, "
            f"or {VERSION} with its header line"
        )
    try:
        return from_data(data)
    except (SnapshotError, ValueError) as exc:
        raise DumpfileError(f"dumpfile {path} is invalid: {exc}") from exc


def _read_version_3(path: Path, raw: bytes) -> State:
    end = raw.find(b"\n")
    try:
        header = orjson.loads(raw[:end] if end >= 0 else raw)
    except orjson.JSONDecodeError as exc:
        raise DumpfileError(f"dumpfile {path}: its header is not valid JSON: {exc}") from exc
    # A view: the payload is hashed and parsed without copying hundreds of megabytes.
    payload = memoryview(raw)[end + 1 :] if end >= 0 else memoryview(b"")
    if not isinstance(header, dict) or header.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise DumpfileError(
            f"dumpfile {path} is damaged: the checksum of its content (from offset {end + 1}) "
            "does not match its header"
        )
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DumpfileError(f"dumpfile {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DumpfileError(f"dumpfile {path} is invalid: its content is not an object")
    try:
        return from_data(data, ids_checked=True)
    except (SnapshotError, ValueError) as exc:
        raise DumpfileError(f"dumpfile {path} is invalid: {exc}") from exc


def from_data(data: dict[str, Any], *, ids_checked: bool = False) -> State:
    """The state of a parsed dumpfile; `ids_checked` when its checksum matched."""
    seq = data.get("seq", 0)
    if type(seq) is not int or seq < 0:
        raise ValueError(f"seq {seq!r} is not a sequence number")
    pending = data.get("outbox", [])
    if not isinstance(pending, list):
        raise ValueError("outbox is not a list")
    pairs = [parse_pair(pair) for pair in pending]
    exchange = from_dict(data.get("exchange"), ids_checked=ids_checked)
    return State(exchange, PendingPairs(pairs), seq, _trades(data))


def _trades(data: dict[str, Any]) -> dict[str, deque[TradeRecord]]:
    stored = data.get("trades", {})
    if not isinstance(stored, dict):
        raise ValueError("trades is not an object")
    trades = {}
    for market, listed in stored.items():
        if not isinstance(listed, list):
            raise ValueError(f"trades of {market} is not a list")
        history = trades[market] = trade_history()
        history.extend(parse_trade(trade) for trade in listed)
    return trades


def to_data(state: State) -> dict[str, Any]:
    return {
        "seq": state.seq,
        "exchange": to_dict(state.exchange),
        "outbox": [pair.to_dict() for pair in state.outbox.pairs()],
        "trades": {
            market: [trade_json(trade) for trade in history]
            for market, history in state.trades.items()
        },
    }


def dump_bytes(state: State) -> bytes:
    payload = orjson.dumps(to_data(state))
    header = orjson.dumps({"version": VERSION, "sha256": hashlib.sha256(payload).hexdigest()})
    return b"\n".join((header, payload))


def digest(state: State) -> str:
    return hashlib.sha256(orjson.dumps(to_data(state), option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_writable(path: Path) -> None:
    """Fail at start, not at the end of a long run, when the dump could not be written."""
    folder = path.parent
    if not folder.is_dir():
        raise DumpfileError(f"cannot write dumpfile {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DumpfileError(f"cannot write dumpfile {path}: folder {folder} is not writable")


def write_dump(path: Path, state: State) -> None:
    """Replace `path` with the given state, atomically and durably."""
    try:
        install(write_temporary(path, dump_bytes(state)), path)
    except OSError as exc:
        raise DumpfileError(f"cannot write dumpfile {path}: {exc.strerror or exc}") from exc


def write_temporary(path: Path, content: bytes) -> Path:
    """`content` in a new, fsynced temporary file beside `path`."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    write_file(Path(temporary), content)
    return Path(temporary)


def write_file(path: Path, content: bytes) -> None:
    """Write `path` whole and fsync it; on failure no file is left."""
    try:
        with open(path, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def install(temporary: Path, path: Path) -> None:
    """Rename a temporary file of `write_temporary` over `path`, durably."""
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # Makes the rename itself durable.
    fsync_folder(path.parent)
