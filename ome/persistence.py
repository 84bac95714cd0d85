"""The dumpfile: the whole state of the service across a restart.

Format (version 1), one JSON object:

    {"version": 1,
     "exchange": <ome.engine.snapshot.to_dict>,   # books, queue order, amount_left, ltp
     "outbox": [pair, …]}                          # undelivered pairs in sending order

`read_dump` either returns the complete state or raises `DumpfileError` naming
the file; it never modifies the file. `write_dump` replaces the file
atomically, or raises `DumpfileError`: the new content goes to a temporary
file in the same folder, is fsynced, renamed over the old one and the folder
is fsynced, so after a crash at any point the path holds either the old dump
or the new one, never a part.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ome.delivery import Pair, parse_pair
from ome.engine import Exchange, SnapshotError
from ome.engine.snapshot import from_dict, to_dict

VERSION = 1


class DumpfileError(Exception):
    """The dumpfile exists but cannot be used; the message names the file."""


@dataclass(slots=True)
class State:
    """What a dump holds."""

    exchange: Exchange
    outbox: list[Pair] = field(default_factory=list)


def read_dump(path: Path) -> State | None:
    """The state stored at `path`, or None when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DumpfileError(f"cannot read dumpfile {path}: {exc.strerror or exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DumpfileError(f"dumpfile {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        raise DumpfileError(
            f"dumpfile {path} has unsupported version {version!r}, expected {VERSION}"
        )
    try:
        exchange = from_dict(data.get("exchange"))
        pending = data.get("outbox", [])
        if not isinstance(pending, list):
            raise ValueError("outbox is not a list")
        outbox = [parse_pair(pair) for pair in pending]
    except (SnapshotError, ValueError) as exc:
        raise DumpfileError(f"dumpfile {path} is invalid: {exc}") from exc
    return State(exchange, outbox)


def dump_bytes(exchange: Exchange, pending: list[Pair]) -> bytes:
    return orjson.dumps({"version": VERSION, "exchange": to_dict(exchange), "outbox": pending})


def check_writable(path: Path) -> None:
    """Fail at start, not at the end of a long run, when the dump could not be written."""
    folder = path.parent
    if not folder.is_dir():
        raise DumpfileError(f"cannot write dumpfile {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DumpfileError(f"cannot write dumpfile {path}: folder {folder} is not writable")


def write_dump(path: Path, exchange: Exchange, pending: list[Pair]) -> None:
    """Replace `path` with the given state, atomically and durably."""
    content = dump_bytes(exchange, pending)
    try:
        _write_atomically(path, content)
    except OSError as exc:
        raise DumpfileError(f"cannot write dumpfile {path}: {exc.strerror or exc}") from exc


def _write_atomically(path: Path, content: bytes) -> None:
    folder = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse to open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
