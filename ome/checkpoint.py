"""`python -m ome.checkpoint`: a snapshot made by a process of its own, from the files alone.

The periodic snapshot of a serving OME (ome.snapshots) must not stop its
event loop, and forking a process of gigabytes stops it for as long as the
kernel copies its page tables. So a fresh process, started by the OME once
the journal is durable up to `--seq`, rebuilds the state at that record as a
start does: the last snapshot (`--dumpfile`) plus a replay of the journal
(`--journal_dir`) up to `--seq` through the same deterministic
`Machine`. It writes that state to `--output` and fsyncs it; installing it
over the dumpfile is the OME's part. It changes no other file.

Exit status 0 when `--output` is written; 1 with the reason on stderr, and
no `--output` file, when it is not.
"""

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from ome.persistence import dump_bytes, write_file
from ome.recovery import recover


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ome.checkpoint",
        description="Write the state at journal record --seq to --output.",
    )
    parser.add_argument("--dumpfile", type=Path, required=True)
    parser.add_argument("--journal_dir", type=Path, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    # Everything this process builds lives until it exits: the collector would only walk it.
    gc.disable()
    try:
        state = recover(args.dumpfile, args.journal_dir, repair=False, until=args.seq).state
        if state.seq != args.seq:
            raise ValueError(
                f"the journal in {args.journal_dir} ends at {state.seq}, not {args.seq}"
            )
        write_file(args.output, dump_bytes(state))
    except Exception as exc:
        print(f"ome.checkpoint: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
