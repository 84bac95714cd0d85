"""The journal: framing, group commit, fail-stop, torn tails, corruption and gaps."""

import asyncio
import errno
import threading
from pathlib import Path

import pytest

from ome.journal import (
    CHECK_RUN,
    HEADER,
    Journal,
    JournalCorrupt,
    JournalUnavailable,
    Scan,
    SegmentFile,
    cut_torn_tail,
    frame,
    read_segments,
    segment_name,
    segments,
)


def payloads(n: int, start: int = 1) -> list[tuple[int, bytes]]:
    return [(seq, f'["e",{seq}]'.encode()) for seq in range(start, start + n)]


def write_segment(folder: Path, records: list[tuple[int, bytes]]) -> Path:
    path = folder / segment_name(records[0][0])
    path.write_bytes(b"".join(frame(seq, payload) for seq, payload in records))
    return path


def read_all(folder: Path, after: int = 0) -> tuple[list[tuple[int, bytes]], Scan]:
    scan = Scan(after)
    return list(read_segments(folder, after, scan)), scan


class FailingDisk(SegmentFile):
    """A disk that fails its next write (ENOSPC, as a full disk does) once told to."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, sync=True)
        self.fail_with: OSError | None = None
        self.writes = 0

    def write(self, data: bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes += 1
        super().write(data)


async def started(journal: Journal) -> asyncio.Task[None]:
    return asyncio.create_task(journal.run())


async def test_records_written_come_back_in_order(tmp_path: Path) -> None:
    file = SegmentFile(tmp_path, sync=True)
    file.open(1)
    journal = Journal(file, durable_seq=0)
    task = await started(journal)
    for seq, payload in payloads(5):
        journal.append(seq, payload)
    await journal.wait(5)
    assert journal.durable_seq == 5
    await journal.close()
    await task
    records, scan = read_all(tmp_path)
    assert records == payloads(5)
    assert scan.last_seq == 5 and scan.torn is None


async def test_records_appended_during_a_sync_share_the_next_one(tmp_path: Path) -> None:
    file = SegmentFile(tmp_path, sync=True)
    file.open(1)
    journal = Journal(file, durable_seq=0)
    task = await started(journal)
    waiters = []
    for seq, payload in payloads(200):
        journal.append(seq, payload)
        waiters.append(asyncio.create_task(journal.wait(seq)))
        if seq % 20 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert journal.records_written == 200
    assert journal.flushes < 200 / 5, "records should be made durable in groups"
    await journal.close()
    await task


async def test_wait_returns_only_once_the_record_is_durable(tmp_path: Path) -> None:
    file = SegmentFile(tmp_path, sync=True)
    file.open(1)
    journal = Journal(file, durable_seq=0)
    journal.append(1, b"[]")
    waiting = asyncio.create_task(journal.wait(1))
    await asyncio.sleep(0.05)
    assert not waiting.done(), "nothing writes yet, so nothing is durable"
    task = await started(journal)
    await waiting
    assert read_all(tmp_path)[0] == [(1, b"[]")]
    await journal.close()
    await task


async def test_a_failed_write_fails_every_waiter_and_every_later_append(tmp_path: Path) -> None:
    disk = FailingDisk(tmp_path)
    disk.open(1)
    failures: list[BaseException] = []
    journal = Journal(disk, durable_seq=0, on_failure=failures.append)
    task = await started(journal)
    journal.append(1, b"[1]")
    await journal.wait(1)
    disk.fail_with = OSError(errno.ENOSPC, "No space left on device")
    journal.append(2, b"[2]")
    journal.append(3, b"[3]")
    with pytest.raises(JournalUnavailable):
        await journal.wait(3)
    with pytest.raises(JournalUnavailable):
        await journal.wait(2)
    await task
    assert len(failures) == 1 and isinstance(failures[0], OSError)
    with pytest.raises(JournalUnavailable):
        journal.append(4, b"[4]")
    assert journal.durable_seq == 1
    # The sync is not retried: the disk saw exactly one successful write.
    assert disk.writes == 1
    journal.abandon()


async def test_rotation_starts_a_segment_at_the_next_record(tmp_path: Path) -> None:
    file = SegmentFile(tmp_path, sync=True)
    file.open(1)
    journal = Journal(file, durable_seq=0)
    task = await started(journal)
    for seq, payload in payloads(3):
        journal.append(seq, payload)
    assert journal.rotate() == 3
    for seq, payload in payloads(2, start=4):
        journal.append(seq, payload)
    await journal.wait(5)
    await journal.close()
    await task
    assert [first for first, _ in segments(tmp_path)] == [1, 4]
    assert read_all(tmp_path)[0] == payloads(5)
    assert read_all(tmp_path, after=3)[0] == payloads(2, start=4)


@pytest.mark.parametrize("cut", [3, HEADER.size + 2, HEADER.size])
def test_a_torn_last_record_is_reported_and_cut(tmp_path: Path, cut: int) -> None:
    path = write_segment(tmp_path, payloads(3))
    good = path.stat().st_size
    torn_record = frame(4, b'["e",4]')
    path.write_bytes(path.read_bytes() + torn_record[:cut])
    records, scan = read_all(tmp_path)
    assert records == payloads(3)
    assert scan.torn is not None and scan.torn.offset == good
    cut_torn_tail(scan.torn)
    assert path.stat().st_size == good
    assert read_all(tmp_path)[1].torn is None


def test_a_damaged_last_record_counts_as_torn(tmp_path: Path) -> None:
    path = write_segment(tmp_path, payloads(3))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    records, scan = read_all(tmp_path)
    assert records == payloads(2)
    assert scan.torn is not None


def test_corruption_before_the_end_names_file_and_offset(tmp_path: Path) -> None:
    path = write_segment(tmp_path, payloads(3))
    data = bytearray(path.read_bytes())
    second = len(frame(1, payloads(1)[0][1]))
    data[second + HEADER.size] ^= 0xFF
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(JournalCorrupt, match=rf"{path.name} at offset {second}: CRC"):
        read_all(tmp_path)
    assert path.read_bytes() == before


def test_a_long_segment_comes_back_whole_and_its_corruption_is_found(tmp_path: Path) -> None:
    """Records over several megabytes (read in runs of CHECK_RUN bytes)."""
    records = [(seq, b'["e",%d,"%s"]' % (seq, b"x" * 1000)) for seq in range(1, 3001)]
    path = write_segment(tmp_path, records)
    assert path.stat().st_size > 2 * CHECK_RUN
    assert read_all(tmp_path)[0] == records
    assert read_all(tmp_path, after=2500)[0] == records[2500:]

    damaged = 2222
    offset = sum(len(frame(seq, payload)) for seq, payload in records[: damaged - 1])
    data = bytearray(path.read_bytes())
    data[offset + HEADER.size] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match=rf"{path.name} at offset {offset}: CRC"):
        read_all(tmp_path)


def test_reading_up_to_a_record_ignores_the_one_being_written_after_it(tmp_path: Path) -> None:
    """A checkpoint reads the segment the OME still appends to, up to its boundary."""
    path = write_segment(tmp_path, payloads(5))
    path.write_bytes(path.read_bytes() + frame(6, b'["e",6]')[:-2])
    scan = Scan(0)
    assert list(read_segments(tmp_path, 0, scan, until=4)) == payloads(4)
    assert scan.last_seq == 4 and scan.torn is None


def test_a_sequence_gap_inside_a_segment_is_corruption(tmp_path: Path) -> None:
    write_segment(tmp_path, [*payloads(2), (4, b"[]"), (5, b"[]")])
    with pytest.raises(JournalCorrupt, match="sequence 4 where 3 was expected"):
        read_all(tmp_path)


def test_a_missing_segment_is_corruption(tmp_path: Path) -> None:
    write_segment(tmp_path, payloads(3))
    write_segment(tmp_path, payloads(3, start=7))
    with pytest.raises(JournalCorrupt, match="expected 4"):
        read_all(tmp_path)


def test_a_journal_starting_after_the_snapshot_is_a_gap(tmp_path: Path) -> None:
    write_segment(tmp_path, payloads(3, start=10))
    with pytest.raises(JournalCorrupt, match="missing"):
        read_all(tmp_path, after=5)
    assert read_all(tmp_path, after=9)[0] == payloads(3, start=10)


def test_records_the_snapshot_covers_are_skipped(tmp_path: Path) -> None:
    write_segment(tmp_path, payloads(6))
    records, scan = read_all(tmp_path, after=4)
    assert records == payloads(2, start=5)
    assert scan.last_seq == 6


async def test_a_cancelled_flusher_loses_no_batch_and_settles_its_waiters(tmp_path: Path) -> None:
    """The writer task is cancelled at shutdown; a write it had queued must still happen."""
    file = SegmentFile(tmp_path, sync=False)
    file.open(1)
    journal = Journal(file, durable_seq=0)
    busy = threading.Event()
    # Keep the worker thread busy, so that the flusher's write waits in its queue.
    journal._executor.submit(busy.wait)
    task = await started(journal)
    journal.append(1, b"[1]")
    waiting = asyncio.create_task(journal.wait(1))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    journal.append(2, b"[2]")
    busy.set()
    await asyncio.wait_for(journal.close(), 30)
    await asyncio.wait_for(waiting, 30)
    assert journal.durable_seq == 2
    assert read_all(tmp_path)[0] == [(1, b"[1]"), (2, b"[2]")]
