"""Log output: JSON lines off a terminal, at the configured level, with bound context.

Logging is process-wide state, so each case runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(level: str, body: str) -> list[str]:
    script = textwrap.dedent(
        f"""
        import logging
        import structlog
        from ome.logs import configure_logging
        configure_logging({level!r})
        log = structlog.get_logger()
        """
    ) + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_json_lines_with_level_timestamp_and_fields() -> None:
    (line,) = run("info", 'log.info("order_accepted", market="0xab", amount=5)')
    event = json.loads(line)
    assert event["event"] == "order_accepted"
    assert event["level"] == "info"
    assert event["market"] == "0xab" and event["amount"] == 5
    assert event["timestamp"].endswith("Z")


def test_events_below_the_level_are_dropped() -> None:
    lines = run(
        "warning",
        """
        log.debug("hidden_debug")
        log.info("hidden_info")
        log.warning("shown_warning")
        log.error("shown_error")
        """,
    )
    assert [json.loads(line)["event"] for line in lines] == ["shown_warning", "shown_error"]


def test_rust_log_style_level_is_understood() -> None:
    lines = run("trace", 'log.debug("shown_debug")')
    assert json.loads(lines[0])["event"] == "shown_debug"


def test_bound_context_variables_are_merged() -> None:
    (line,) = run(
        "info",
        """
        structlog.contextvars.bind_contextvars(request_id="r-1")
        log.info("order_cancelled")
        """,
    )
    assert json.loads(line)["request_id"] == "r-1"


def test_exceptions_are_one_json_line() -> None:
    (line,) = run(
        "info",
        """
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("unexpected_error")
        """,
    )
    event = json.loads(line)
    assert event["level"] == "error"
    assert "ZeroDivisionError" in event["exception"]


def test_library_records_join_the_same_stream() -> None:
    (line,) = run("info", 'logging.getLogger("aiohttp.server").error("boom %s", 7)')
    event = json.loads(line)
    assert event["logger"] == "aiohttp.server"
    assert event["message"] == "boom 7"
    assert event["level"] == "error"


def test_values_orjson_refuses_are_escaped_not_lost() -> None:
    (line,) = run("info", 'log.info("request_refused", request_id="\\udcf5", price=2**100)')
    event = json.loads(line)
    assert event["request_id"] == "\udcf5"
    assert event["price"] == 2**100


def run_to(stdout: Any, body: str) -> subprocess.CompletedProcess[str]:
    """Log into `stdout` (a full disk, a closed stream) and report on stderr what came back."""
    script = textwrap.dedent(
        """
        import logging, sys
        import structlog
        from ome.logs import configure_logging, silence_broken_stdout
        configure_logging("info", json=True)
        log = structlog.get_logger()
        """
    ) + body
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=30,
        check=False,
    )


LOG_EVERYTHING = textwrap.dedent(
    """
    log.info("order_accepted", market="0xab")
    log.error("request_failed", exc_info=ValueError("x"))
    logging.getLogger("aiohttp.server").error("boom")
    print("returned", file=sys.stderr)
    silence_broken_stdout()
    """
)


def test_a_full_disk_is_swallowed() -> None:
    with open("/dev/full", "wb") as full:
        result = run_to(full, LOG_EVERYTHING)
    assert (result.returncode, result.stderr) == (0, "returned\n")


def test_a_closed_stdout_is_swallowed() -> None:
    result = run_to(subprocess.DEVNULL, "sys.stdout.close()\n" + LOG_EVERYTHING)
    assert (result.returncode, result.stderr) == (0, "returned\n")


def test_a_pipe_whose_reader_left_is_swallowed_and_the_exit_status_kept() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = run_to(write_end, LOG_EVERYTHING + "sys.exit(3)\n")
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (3, "returned\n")
