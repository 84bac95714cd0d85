"""Snapshots while serving: the state written to the dumpfile without stopping matching.

`take` starts a new journal segment, forks, and lets the child (a frozen
copy of the state at that instant, as Redis' BGSAVE does) encode the state
into a temporary file beside the dumpfile and fsync it. The event loop stops
only for the fork itself. Once the child succeeded and the journal is
durable up to the snapshot's sequence number, the parent renames the file
into place and deletes the journal segments the snapshot covers, so the
journal's size stays bounded. Until then the old snapshot and the journal
still recover everything; a failed snapshot changes nothing. (POSIX only:
the service runs on Linux.)
"""

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import structlog

from ome.journal import Journal, segments
from ome.persistence import dump_bytes, install, write_file
from ome.state import State

log = structlog.get_logger()


class Snapshotter:
    def __init__(self, state: State, journal: Journal, dumpfile: Path, journal_dir: Path) -> None:
        self._state = state
        self._journal = journal
        self._dumpfile = dumpfile
        self._journal_dir = journal_dir
        self.taken = 0

    async def take(self) -> int:
        """Write a snapshot of the state as it is now; return its sequence number."""
        boundary = self._journal.rotate()
        temporary = self._dumpfile.parent / f".{self._dumpfile.name}.{boundary}.snapshot"
        pid = os.fork()
        if pid == 0:  # the child: encode, write, leave without running any cleanup
            status = 1
            try:
                write_file(temporary, dump_bytes(self._state))
                status = 0
            finally:
                os._exit(status)
        try:
            status = await self._wait_for(pid)
            if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                raise OSError(f"snapshot child failed with status {status}")
            await self._journal.wait(boundary)
            install(temporary, self._dumpfile)
        finally:
            # After a failure, or a cancellation at shutdown (the final snapshot supersedes it).
            temporary.unlink(missing_ok=True)
        self.taken += 1
        delete_covered_segments(self._journal_dir, boundary)
        return boundary


    @staticmethod
    async def _wait_for(child: int) -> int:
        """The child's exit status; a cancelled wait kills it (the waiting thread reaps it)."""
        try:
            _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, child, 0)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            raise
        return status


def delete_covered_segments(journal_dir: Path, seq: int) -> int:
    """Delete the segments whose records all have sequence numbers up to `seq`."""
    deleted = 0
    for first, path in segments(journal_dir):
        if first <= seq:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted
