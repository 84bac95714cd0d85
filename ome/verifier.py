"""Order signatures verified on the event loop or in worker threads.

Most of a verification is libsecp256k1 recovering the signer's key (about
36 of 60 µs in the server), which coincurve calls through cffi with the GIL
released: in a worker thread it runs on another core while the event loop
goes on serving. On two cores that raised submissions with verification
from 0.79-0.86 to 0.94-0.98 of those without (bench/signing.py http). The
hand-off itself costs about 0.1 ms of CPU per order, a loss where the
process has a single CPU, so the default depends on how many it may use.
"""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ome.engine import Order
from ome.signing import Domain, verify_order

# Where cgroup v2 (Kubernetes, Docker) states the CPU quota: "<quota> <period>" or "max <period>".
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CPU_MAX) -> float:
    """The CPUs this process may run on, bounded by its cgroup's CPU quota if it has one."""
    cpus = float(len(os.sched_getaffinity(0)))
    try:
        quota, period = cpu_max.read_text().split()
        return cpus if quota == "max" else min(cpus, int(quota) / int(period))
    except (OSError, ValueError):
        return cpus


def default_threads(cpus: float) -> int:
    return 1 if cpus >= 2 else 0


class OrderVerifier:
    """Checks that an order's `user` signed it on `domain`; raises InvalidSignature if not."""

    def __init__(self, domain: Domain, threads: int) -> None:
        self.domain = domain
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="verify") if threads else None

    async def verify(self, order: Order) -> None:
        if self._pool is None:
            verify_order(self.domain, order)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, verify_order, self.domain, order)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
