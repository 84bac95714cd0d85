"""Start = the latest snapshot + a replay of every later journal record.

`recover` reads the dumpfile (if any), then replays every journal record
with a higher sequence number, at the time it carries, through
`Machine.replay` (`Machine.apply`'s state change, without its events),
calling nobody (no executioner, no sink). The result is the state the
process had after its last durable command. A torn last record is reported
and, with `repair`, cut off; a corrupt record, a gap, an undecodable record
or one that does not apply raises `RecoveryError` and nothing is changed.

`python -m ome.recovery --dumpfile F --journal_dir D` prints what a start
would recover (sequence number, counts, digest) without changing any file.
"""

import argparse
import gc
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from ome.commands import Machine
from ome.engine import EngineError
from ome.journal import JournalCorrupt, Scan, Torn, cut_torn_tail, read_segments
from ome.persistence import digest, read_dump
from ome.records import RecordError
from ome.state import State


class RecoveryError(Exception):
    """The snapshot and the journal do not make a state; the message names the file."""


@dataclass(slots=True)
class Recovered:
    state: State
    snapshot_seq: int
    replayed: int
    torn: Torn | None
    # The segment new records can be appended to, if the last one continues the state.
    last_segment: Path | None
    snapshot_found: bool


def recover(
    dumpfile: Path, journal_dir: Path, *, repair: bool, until: int | None = None
) -> Recovered:
    """The state of the snapshot plus the journal (up to record `until`, if given)."""
    # Loading and replaying allocate millions of objects that all stay alive:
    # each full pass of the cyclic collector would walk the growing state again
    # for nothing (the engine makes no reference cycles).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _recover(dumpfile, journal_dir, repair=repair, until=until)
    finally:
        if collecting:
            gc.enable()


def _recover(dumpfile: Path, journal_dir: Path, *, repair: bool, until: int | None) -> Recovered:
    restored = read_dump(dumpfile)
    state = restored or State()
    snapshot_seq = state.seq
    machine = Machine(state)
    scan = Scan(snapshot_seq)
    replayed = 0
    seq = snapshot_seq
    if journal_dir.is_dir():
        try:
            replay = machine.replay
            for seq, payload in read_segments(journal_dir, snapshot_seq, scan, until=until):
                replay(seq, payload)
                replayed += 1
        except JournalCorrupt as exc:
            raise RecoveryError(str(exc)) from exc
        except (RecordError, EngineError, LookupError, TypeError, ValueError) as exc:
            raise RecoveryError(
                f"journal in {journal_dir}: record {seq} cannot be replayed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if scan.torn is not None and repair:
        cut_torn_tail(scan.torn)
    return Recovered(
        state, snapshot_seq, replayed, scan.torn, scan.last_segment, restored is not None
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ome.recovery",
        description="Print the state a start would recover, changing no file.",
    )
    parser.add_argument("--dumpfile", type=Path, default=Path(".omedump.json"))
    parser.add_argument("--journal_dir", type=Path, default=Path(".omejournal"))
    args = parser.parse_args(argv)
    try:
        recovered = recover(args.dumpfile, args.journal_dir, repair=False)
    except Exception as exc:
        print(f"ome.recovery: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    state = recovered.state
    report = {
        "seq": state.seq,
        "snapshot_seq": recovered.snapshot_seq,
        "replayed": recovered.replayed,
        "torn_tail": str(recovered.torn.path) if recovered.torn else None,
        "markets": len(state.exchange.books),
        "orders": sum(len(book) for book in state.exchange.books.values()),
        "pending_pairs": len(state.outbox),
        "digest": digest(state),
    }
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")


if __name__ == "__main__":
    main()
