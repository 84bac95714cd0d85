"""Smoke test of bench/engine.py: the quick run finishes cleanly and reports every workload."""

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
