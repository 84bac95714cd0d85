"""Smoke tests of the benchmarks: their quick runs finish cleanly and report every part."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "engine.py"


def test_quick_engine_benchmark_runs_and_reports_every_workload() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for workload in ("A:", "B:", "C:", "D:"):
        assert f"\n{workload} " in done.stdout
    assert "DISAGREES" not in done.stdout


def test_quick_verification_benchmark_reports_every_part() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH.parent / "signing.py"), "verify", "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for part in ("verify_order", "digest", "recovery", "address"):
        assert part in done.stdout
