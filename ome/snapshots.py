"""Snapshots while serving: the state written to the dumpfile without stopping matching.

`take` starts a new journal segment at the current sequence number (the
boundary) and waits until the records up to it are durable. Then another
process, `python -m ome.checkpoint`, rebuilds the state at the boundary from
the last snapshot and the journal, as a start would, and writes it to a
temporary file beside the dumpfile, fsynced. Once it succeeded, the OME
renames the file into place and deletes the journal segments the snapshot
covers, so the journal's size stays bounded. Until then the old snapshot
and the journal still recover everything; a failed or cancelled snapshot
changes nothing and leaves no temporary file.

Why not fork, as Redis' BGSAVE does: forking a process of gigabytes stops
its event loop while the kernel copies the page tables (half a second at a
million resting orders), and CPython's reference counts make the child
write to, and so copy, most pages anyway. `subprocess.Popen` starts the
new process with vfork, which copies nothing: the event loop stops only for
that call. The new process needs as much memory as the state, as a forked
child ends up needing; its CPU time is that of a start.
"""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import ome
from ome.journal import Journal, segments
from ome.persistence import install

# Where the `ome` package of this process comes from: the new process must run the same code.
_PACKAGE_ROOT = str(Path(ome.__file__).resolve().parents[1])


class Snapshotter:
    def __init__(self, journal: Journal, dumpfile: Path, journal_dir: Path) -> None:
        self._journal = journal
        self._dumpfile = dumpfile
        self._journal_dir = journal_dir
        self.taken = 0

    async def take(self) -> int:
        """Write a snapshot of the state as it is now; return its sequence number."""
        boundary = self._journal.rotate()
        temporary = self._dumpfile.parent / f".{self._dumpfile.name}.{boundary}.snapshot"
        try:
            # The other process reads the journal from disk: every record it replays
            # must be there, and none is acknowledged that a snapshot would lack.
            await self._journal.wait(boundary)
            await self._checkpoint(boundary, temporary)
            # In a thread, as is the deletion below: the file system frees the
            # blocks of the old snapshot and of the segments then (ext4: 70 ms
            # and more for 300 MB), which would stop the event loop.
            await asyncio.to_thread(install, temporary, self._dumpfile)
        finally:
            # After a failure, or a cancellation at shutdown (the final snapshot supersedes it).
            temporary.unlink(missing_ok=True)
        self.taken += 1
        await asyncio.to_thread(delete_covered_segments, self._journal_dir, boundary)
        return boundary

    async def _checkpoint(self, boundary: int, output: Path) -> None:
        """Run `python -m ome.checkpoint` to write the state at `boundary` into `output`."""
        python_path = os.pathsep.join(filter(None, (_PACKAGE_ROOT, os.environ.get("PYTHONPATH"))))
        process = subprocess.Popen(
            [
                # -P: an `ome` folder in the working folder must not shadow this code.
                *(sys.executable, "-P", "-m", "ome.checkpoint"),
                *("--dumpfile", str(self._dumpfile), "--journal_dir", str(self._journal_dir)),
                *("--seq", str(boundary), "--output", str(output)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": python_path},
        )
        waiting = asyncio.get_running_loop().run_in_executor(None, process.communicate)
        try:
            _, errors = await asyncio.shield(waiting)
        except BaseException:
            process.kill()
            # Until it is gone it could still create the file the caller is about to remove.
            await asyncio.wait([waiting])
            raise
        if process.returncode != 0:
            reason = errors.decode(errors="replace").strip() or f"exit status {process.returncode}"
            raise OSError(f"snapshot process failed: {reason}")


def delete_covered_segments(journal_dir: Path, seq: int) -> int:
    """Delete the segments whose records all have sequence numbers up to `seq`."""
    deleted = 0
    for first, path in segments(journal_dir):
        if first <= seq:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted
