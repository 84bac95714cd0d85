"""How many threads verify signatures by default: what the process may run on."""

import os
from pathlib import Path

import pytest

from ome.verifier import default_threads, usable_cpus

AFFINITY = float(len(os.sched_getaffinity(0)))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),
        ("50000 100000\n", min(AFFINITY, 0.5)),
        ("200000 100000\n", min(AFFINITY, 2.0)),
        ("garbage\n", AFFINITY),
        (None, AFFINITY),
    ],
)
def test_usable_cpus_is_the_affinity_bounded_by_the_cgroup_quota(
    tmp_path: Path, cpu_max: str | None, expected: float
) -> None:
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert usable_cpus(path) == expected


@pytest.mark.parametrize(("cpus", "threads"), [(0.5, 0), (1.0, 0), (1.5, 0), (2.0, 1), (8.0, 1)])
def test_a_thread_verifies_only_where_a_second_cpu_can_run_it(cpus: float, threads: int) -> None:
    assert default_threads(cpus) == threads
