"""`python -m ome` as operators run it: a subprocess whose log lines and exit status tests read.

The `processes` fixture (tests/conftest.py) kills whatever a test started and left running.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 20.0


# The settings' names without the OME_ prefix (the original service's and the executioner's).
BARE_NAMES = ("port", "address", "RUST_LOG", "NETWORK_ID", "TRADER_CONTRACT")


class Ome:
    """One `python -m ome` process; stdout (JSON log lines) and stderr go to files."""

    def __init__(self, folder: Path, *args: str, name: str = "ome") -> None:
        self.folder = folder
        self.stdout_path = folder / f"{name}.out"
        self.stderr_path = folder / f"{name}.err"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for variable in list(env):
            if variable.startswith("OME_") or variable in BARE_NAMES:
                del env[variable]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ome", "-l", "127.0.0.1", "-p", "0", *args],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.url = ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = self.stdout_path.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in events if name is None or e["event"] == name]

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    async def started(self, *, scheme: str = "http") -> "Ome":
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            started = self.events("ome_started")
            if started:
                self.url = f"{scheme}://127.0.0.1:{started[0]['port']}"
                return self
            if self.process.poll() is not None:
                pytest.fail(f"ome exited with {self.process.returncode}: {self.stderr}")
            await asyncio.sleep(0.05)
        pytest.fail("ome did not start in time")

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return await self.exited()

    async def exited(self, timeout: float = START_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail("ome did not exit in time")
            await asyncio.sleep(0.05)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
