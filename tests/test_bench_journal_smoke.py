"""Smoke test of the durability benchmark: its quick run finishes cleanly and reports every part."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "journal.py"


def test_quick_journal_benchmark_reports_every_part_with_equal_digests() -> None:
    # Without the reference commit: its OME needs a package from PyPI.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-reference"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for figure in (
        "throughput always/off:",
        "start to ome_started:",
        "records/s",
        "longest event-loop stall:",
    ):
        assert figure in done.stdout, done.stdout
    assert "digest equal" in done.stdout
    assert "DIFFERENT" not in done.stdout
    assert "non-200" not in done.stdout
