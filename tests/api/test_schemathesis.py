"""schemathesis against the real server: every documented operation answers as documented.

`python -m ome` runs as a subprocess on 127.0.0.1, beside the development
executioner (`python -m ome.devexecutioner`, which checks orders and settles
pairs), and schemathesis sends every request to it. Every operation is run through schemathesis'
examples, coverage and fuzzing phases, with valid and invalid data; then a
whole `st run` on the served document adds the stateful phase, which follows
the document's links (create a market, place an order in it, read it, cancel
it). Every check schemathesis has runs, with the one exception stated in
schemathesis.toml. Examples and the time per example are bounded so that the
module takes well under a minute.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from ome.api.openapi import document
from tests.processes import START_TIMEOUT, Ome

MAX_EXAMPLES = 25
CLI_MAX_EXAMPLES = 15
# Per example, generous for a loaded 2-core box; a slower answer fails the test.
DEADLINE_MS = 5000
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=list(HealthCheck),
    database=None,
)

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
CONFIG = schemathesis.Config.from_path(CONFIG_FILE)
CONFIG.projects.default.generation.update(max_examples=MAX_EXAMPLES)


def _wait_for(what: str, found: Callable[[], str | None], process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while (value := found()) is None:
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{what} did not start in time"
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    # The development executioner on its own, not --dev: with --dev the OME verifies
    # signatures on a development domain, and generated orders are never signed on it.
    log = folder / "executioner.out"
    with open(log, "wb") as out:
        executioner = subprocess.Popen(
            [sys.executable, "-m", "ome.devexecutioner", "--port", "0"],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:

        def url() -> str | None:
            for line in log.read_text().splitlines():
                if line.startswith("{") and '"dev_executioner_started"' in line:
                    return str(json.loads(line)["url"])
            return None

        address = _wait_for("the development executioner", url, executioner)
        ome = Ome(
            folder, "--executioner_address", address, "--dumpfile", "dump.json",
            "--allow_unsigned_cancel",
        )  # fmt: skip
        try:

            def port() -> str | None:
                started = ome.events("ome_started")
                return str(started[0]["port"]) if started else None

            yield f"http://127.0.0.1:{_wait_for('ome', port, ome.process)}"
        finally:
            ome.kill()
    finally:
        executioner.kill()
        executioner.wait()


# Built from the code rather than fetched: schemathesis' fixture-loaded schemas do not run on
# this pytest. test_openapi.py checks that the server serves exactly this document.
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_answers_as_documented(case: schemathesis.Case, server: str) -> None:
    case.call_and_validate(base_url=server)


def test_a_whole_cli_run_finds_nothing(server: str, tmp_path: Path) -> None:
    """`st run` as an integrator runs it, on the served document: every phase, stateful too."""
    run = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG_FILE),
            "run", f"{server}/openapi.json",
            "--max-examples", str(CLI_MAX_EXAMPLES), "--request-timeout", "10",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,  # where it keeps its cache of crashes
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr
