"""The write-ahead journal: every state-changing command, durable before anyone is told.

Layout: a folder of segment files `<first seq, 20 digits>.journal`, each an
append-only run of records with consecutive sequence numbers; the next
segment starts where the previous one ends. A record is framed as

    length u32 | crc32 u32 | seq u64 | payload (length bytes)

little-endian, the CRC taken over the seq field and the payload, so a record
whose bytes were not all written, or were damaged, is recognised.

Writing (`Journal`): `append` only adds the framed record to an in-memory
batch; the `run` task writes each batch with one `os.write` and makes it
durable with one `fdatasync` in a worker thread, so the event loop never
blocks on the disk and every record appended while a sync was running joins
the next one (group commit). `wait(seq)` returns once that record is durable.
A failed write or sync is final (fail-stop): every waiter gets
`JournalUnavailable`, later appends are refused, and `on_failure` is told so
that the process can exit and recover from the durable prefix. A sync is
never retried: after a failed fsync the kernel may have dropped the dirty
pages, and a retry that succeeds proves nothing.

Reading (`read_segments`): records in sequence order after a given seq. A
record cut short at the very end of the last segment is a torn write from a
crash: it is reported (and `repair` truncates it away). Anything else — a bad
CRC with more data behind it, a sequence gap, a segment that does not start
where the previous one ended — raises `JournalCorrupt` naming the file and
offset, and nothing is changed.
"""

import asyncio
import contextlib
import functools
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
# Offset of the seq field in a frame: the CRC covers everything from there on.
_CRC_FROM = HEADER.size - _SEQ.size
SUFFIX = ".journal"
# A record is one command: a few hundred bytes. Anything this large is damage.
MAX_RECORD = 1 << 20
# Bytes of records checked together before any of them is yielded: the check streams through
# them in a row, where checking each record between the replays of the others found its bytes
# evicted from the cache every time (replay took 7% longer).
CHECK_RUN = 1 << 20


class JournalError(Exception):
    """The journal cannot be used; the message names the file."""


class JournalCorrupt(JournalError):
    """A record that fails its CRC or breaks the sequence, before the journal's end."""


class JournalUnavailable(Exception):
    """The journal can no longer make records durable: nothing more is acknowledged."""

    def __init__(self) -> None:
        super().__init__("Journal unavailable")


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def frame(seq: int, payload: bytes) -> bytes:
    seq_bytes = _SEQ.pack(seq)
    crc = zlib.crc32(payload, zlib.crc32(seq_bytes))
    return HEADER.pack(len(payload), crc, seq) + payload


def segments(folder: Path) -> list[tuple[int, Path]]:
    """The segment files of `folder` by first sequence number."""
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        stem = path.name.removesuffix(SUFFIX)
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


@dataclass(slots=True)
class Torn:
    """A torn last record: where the good data ends in which file."""

    path: Path
    offset: int
    size: int


@dataclass(slots=True)
class Scan:
    """What reading the journal found besides its records."""

    last_seq: int
    torn: Torn | None = None
    last_segment: Path | None = None


def read_segments(
    folder: Path, after: int, scan: Scan, *, until: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield (seq, payload) of every record with seq > `after` (and <= `until`), in order.

    `scan.last_seq` ends as the last sequence number present (at least
    `after`), `scan.torn` names a torn tail. Raises JournalCorrupt. With
    `until`, the segments after it are not read: they may be being written.
    """
    scan.last_seq = after
    found = segments(folder)
    if until is not None:
        found = [(first, path) for first, path in found if first <= until]
    if found and found[0][0] > after + 1:
        first, path = found[0]
        raise JournalCorrupt(
            f"journal {path} starts at sequence {first}, but the state before it "
            f"ends at {after}: records {after + 1}..{first - 1} are missing"
        )
    expected: int | None = None
    for index, (first, path) in enumerate(found):
        is_last = index == len(found) - 1
        if expected is not None and first != expected:
            raise JournalCorrupt(
                f"journal {path} starts at sequence {first}, expected {expected} "
                "(a segment is missing or out of place)"
            )
        data = path.read_bytes()
        size = len(data)
        offset = 0
        seq = first - 1
        while offset < size:
            payloads, offset, problem = _check_run(data, offset, seq + 1, offset + CHECK_RUN)
            for payload in payloads:
                seq += 1
                if seq > after:
                    yield seq, payload
                if seq == until:
                    scan.last_seq = max(scan.last_seq, seq)
                    return
            if problem is not None:
                if is_last and problem.endswith_at_eof:
                    scan.torn = Torn(path, offset, size)
                    break
                raise JournalCorrupt(f"journal {path} at offset {offset}: {problem.reason}")
        expected = seq + 1
        scan.last_seq = max(scan.last_seq, seq)
        scan.last_segment = path


@dataclass(slots=True)
class _Problem:
    reason: str
    # True when the bad record runs to the end of the file: a crash mid-write.
    endswith_at_eof: bool


def _check_run(
    data: bytes, offset: int, seq: int, stop: int
) -> tuple[list[bytes], int, _Problem | None]:
    """The payloads of the records from `offset` on, the first numbered `seq`, up to the
    first that starts at `stop` or later; where they end, and what is wrong with the
    record there if that stopped the run."""
    payloads: list[bytes] = []
    size = len(data)
    unpack_header = HEADER.unpack_from
    crc32 = zlib.crc32
    while offset < size and offset < stop:
        # A sound record, checked inline: a call per record was a fifth of replay's time.
        start = offset + HEADER.size
        if start <= size:
            length, crc, record_seq = unpack_header(data, offset)
            end = start + length
            if (
                end <= size
                and record_seq == seq
                and length <= MAX_RECORD
                and crc32(data[offset + _CRC_FROM : end]) == crc
            ):
                payloads.append(data[start:end])
                offset = end
                seq += 1
                continue
        return payloads, offset, _problem(data, offset, seq)
    return payloads, offset, None


def _problem(data: bytes, offset: int, expected_seq: int) -> _Problem:
    """What is wrong with the record at `offset`, which the inline check found unsound."""
    remaining = len(data) - offset
    if remaining < HEADER.size:
        return _Problem("record header cut short", True)
    length, crc, seq = HEADER.unpack_from(data, offset)
    end: int = offset + HEADER.size + length
    if length > MAX_RECORD:
        return _Problem(f"record length {length} is not plausible", False)
    if end > len(data):
        return _Problem("record cut short", True)
    # The seq field and the payload lie side by side: one CRC pass covers both.
    if zlib.crc32(data[offset + _CRC_FROM : end]) != crc:
        return _Problem("CRC mismatch", end == len(data))
    # Everything else held: the inline check failed on the sequence number.
    return _Problem(f"sequence {seq} where {expected_seq} was expected", False)


def cut_torn_tail(torn: Torn) -> None:
    """Truncate a torn last record so that new records follow good ones."""
    with open(torn.path, "r+b") as file:
        file.truncate(torn.offset)
        os.fsync(file.fileno())


def check_folder(folder: Path) -> None:
    """Create the journal folder if needed; fail at start when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"cannot create journal folder {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise JournalError(f"journal folder {folder} is not writable")


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentFile:
    """The file records are appended to; the I/O of one `Journal`, run in its worker thread.

    A layer of its own so that tests can put a failing disk under the journal.
    """

    def __init__(self, folder: Path, *, sync: bool) -> None:
        self.folder = folder
        self.sync = sync
        self.path: Path | None = None
        self._fd = -1

    def open(self, first_seq: int, existing: Path | None = None) -> None:
        """Append to `existing`, or start a new segment whose first record is `first_seq`."""
        self.close()
        path = existing or self.folder / segment_name(first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.path = path
        if existing is None:
            fsync_folder(self.folder)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.sync:
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(slots=True)
class _Batch:
    """Records to be written together, and the future of those who wait for them."""

    chunks: list[bytes]
    last_seq: int
    # Start a new segment, whose first record is this seq, before writing the chunks.
    rotate_to: int | None = None
    done: "asyncio.Future[None] | None" = None


class Journal:
    """Appends framed records and makes them durable in groups; see the module docstring.

    `_queue` holds the batches not yet written; the last one takes new records.
    More than one is queued only when a rotation closed a batch early.
    """

    def __init__(
        self,
        file: SegmentFile,
        *,
        durable_seq: int,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._file = file
        self._on_failure = on_failure
        self.durable_seq = durable_seq
        self._appended_seq = durable_seq
        self._queue: deque[_Batch] = deque([_Batch([], durable_seq)])
        self._writing: _Batch | None = None
        self._in_flight: asyncio.Future[float] | None = None
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self.failure: BaseException | None = None
        self._closed = False
        # Figures for operators: records made durable, and the writes that did it.
        self.records_written = 0
        self.flushes = 0
        # Told of each write: records in it and its seconds (the metrics' fsync histograms).
        self.observer: Callable[[int, float], None] | None = None

    @property
    def appended_seq(self) -> int:
        return self._appended_seq

    def append(self, seq: int, payload: bytes) -> None:
        """Add a record to the open batch. Sequence numbers must follow each other."""
        if self.failure is not None or self._closed:
            raise JournalUnavailable()
        if seq != self._appended_seq + 1:
            raise ValueError(f"journal record {seq} does not follow {self._appended_seq}")
        batch = self._queue[-1]
        batch.chunks.append(frame(seq, payload))
        batch.last_seq = self._appended_seq = seq
        self._wakeup.set()

    def rotate(self) -> int:
        """Put the next record into a new segment; return the last seq of the older ones."""
        boundary = self._appended_seq
        open_batch = self._queue[-1]
        if open_batch.chunks:
            self._queue.append(_Batch([], boundary, rotate_to=boundary + 1))
        else:
            open_batch.rotate_to = boundary + 1
        self._wakeup.set()
        return boundary

    async def wait(self, seq: int) -> None:
        """Return once record `seq` is durable; raise JournalUnavailable if it never will be."""
        if seq <= self.durable_seq:
            return
        if self.failure is not None:
            raise JournalUnavailable()
        batch = self._writing
        if batch is None or seq > batch.last_seq:
            batch = next(b for b in self._queue if seq <= b.last_seq)
        if batch.done is None:
            batch.done = asyncio.get_running_loop().create_future()
        await asyncio.shield(batch.done)

    async def run(self) -> None:
        """Write batches as records arrive, until closed or failed."""
        loop = asyncio.get_running_loop()
        while self.failure is None and not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush(loop)

    async def close(self) -> None:
        """Write what was appended, then stop accepting records. Raises if the write fails."""
        await self._flush(asyncio.get_running_loop())
        self._closed = True
        self._wakeup.set()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._file.close)
        self._executor.shutdown(wait=True)
        if self.failure is not None:
            raise JournalUnavailable() from self.failure

    def abandon(self) -> None:
        """Stop without writing (after a failure); release the worker thread."""
        self._closed = True
        self._wakeup.set()
        self._executor.shutdown(wait=False)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        queue = self._queue
        while True:
            # A write still under way (its flusher was cancelled) goes first: records
            # reach the file in sequence order.
            if self._in_flight is not None:
                await asyncio.wait([self._in_flight])
            if self.failure is not None or not (queue[0].chunks or queue[0].rotate_to):
                return
            batch = queue.popleft()
            if not queue:
                queue.append(_Batch([], batch.last_seq))
            self._writing = batch
            written = loop.run_in_executor(self._executor, self._timed_write, batch)
            # Settled by a callback, not after the await: a cancelled flusher must not
            # cancel a write (a queued job would be dropped) nor skip its bookkeeping.
            self._in_flight = written
            written.add_done_callback(functools.partial(self._settle, batch))
            await asyncio.wait([written])

    def _settle(self, batch: _Batch, written: "asyncio.Future[float]") -> None:
        self._in_flight = None
        self._writing = None
        exc = written.exception()
        if exc is not None:
            self._fail(exc, batch)
            return
        self.durable_seq = max(self.durable_seq, batch.last_seq)
        self.records_written += len(batch.chunks)
        self.flushes += 1 if batch.chunks else 0
        if batch.chunks and self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer(len(batch.chunks), written.result())
        if batch.done is not None:
            batch.done.set_result(None)

    def _timed_write(self, batch: _Batch) -> float:
        """Write a batch in the worker thread; how long it took."""
        started = time.perf_counter()
        self._write(batch)
        return time.perf_counter() - started

    def _write(self, batch: _Batch) -> None:
        if batch.rotate_to is not None:
            self._file.open(batch.rotate_to)
        if batch.chunks:
            self._file.write(b"".join(batch.chunks))

    def _fail(self, exc: BaseException, batch: _Batch) -> None:
        self.failure = exc
        for pending in (batch, *self._queue):
            if pending.done is not None and not pending.done.done():
                pending.done.set_exception(JournalUnavailable())
                # Marks the exception retrieved: nobody may be waiting for it.
                pending.done.exception()
        if self._on_failure is not None:
            self._on_failure(exc)
