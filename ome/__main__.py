"""`python -m ome` and the `ome` console script: settings in, a running server, exit codes out.

The port is bound first: while the state is restored, `GET /` answers 200
and `GET /ready` 503 (ome.api.health). On SIGTERM or SIGINT, `/ready`
answers 503 at once and the app goes on serving for `--drain_delay` seconds,
so that load balancers stop sending, before the port closes.

Exit status: 0 after a graceful stop (SIGTERM or SIGINT: stop accepting,
finish the requests in flight, dump the state); 2 for a bad flag or
environment value (one line on stderr); 1 when the service cannot start (an
unusable dumpfile, left untouched; a dumpfile folder that cannot be written;
a port in use; an unreadable certificate) or the dump cannot be written.
"""

import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

import structlog
from aiohttp import web

from ome.api.app import create_app
from ome.api.health import Phase, starting_handler
from ome.api.keys import READINESS
from ome.api.protocol import IDLE_TIMEOUT
from ome.config import DEFAULT_EXECUTIONER, ConfigError, Settings, load_settings
from ome.devexecutioner import address_of, start_dev_executioner
from ome.journal import JournalError
from ome.logs import configure_logging, silence_broken_stdout
from ome.persistence import DumpfileError
from ome.recovery import RecoveryError

try:
    import uvloop
except ImportError:  # uvloop does not build on Windows
    uvloop = None  # type: ignore[assignment]

# Well inside Kubernetes' default 30 s grace period, leaving time for the dump.
SHUTDOWN_TIMEOUT = 10.0

log = structlog.get_logger()


class StartupError(Exception):
    """The service cannot start; the message says why, for the operator."""


class ServiceFailed(Exception):
    """The service had to stop while serving (its journal failed)."""


def tls_context(settings: Settings) -> tuple[ssl.SSLContext | None, str]:
    """The server's TLS context, or None and the reason for serving plain HTTP."""
    if settings.force_no_tls:
        return None, "TLS forced off"
    missing = [
        str(path)
        for path in (settings.certificate_path, settings.private_key_path)
        if not path.is_file()
    ]
    if missing:
        return None, f"not found: {', '.join(missing)}"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.certificate_path, settings.private_key_path)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(
            f"cannot load certificate {settings.certificate_path} "
            f"with key {settings.private_key_path}: {exc}"
        ) from exc
    return context, "certificate and key found"


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    fatal: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signum)

    _log_executioner(settings)
    dev_runner = None
    if settings.dev:
        dev_runner = await start_dev_executioner()
        settings = settings.model_copy(update={"executioner_address": address_of(dev_runner)})
    try:
        context, reason = tls_context(settings)
        app = create_app(settings, on_fatal=on_fatal)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=IDLE_TIMEOUT,
        )
        # The port is bound before the restore, and each new connection is served by
        # whichever server `current` holds: the starting one (liveness yes, readiness
        # no) until the app is set up, then the app's.
        starting = web.Server(starting_handler, keepalive_timeout=IDLE_TIMEOUT)
        current: list[web.Server] = [starting]
        try:
            listener = await loop.create_server(
                lambda: current[0](), settings.listen, settings.port, ssl=context, backlog=1024
            )
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.listen}:{settings.port}: {exc.strerror or exc}"
            ) from exc
        port = listener.sockets[0].getsockname()[1]
        log.info("ome_listening", address=settings.listen, port=port, phase="starting")
        try:
            # Setup enters the cleanup contexts (the restore and the journal replay, in a
            # worker thread); cleanup after a failed setup closes what was opened.
            await runner.setup()
            assert runner.server is not None
            current[0] = runner.server
            # Keep-alive connections made while starting are closed after their request.
            await starting.shutdown(SHUTDOWN_TIMEOUT)
            if context is None:
                log.warning("tls_disabled", reason=reason, serving="plain HTTP")
            _warn_about_access(settings)
            log.info(
                "ome_started",
                address=settings.listen,
                port=port,
                tls=context is not None,
                executioner=settings.executioner_address,
                dumpfile=str(settings.dumpfile),
                dev=settings.dev,
                chain_id=domain[0] if (domain := settings.signature_domain) else None,
                trader_contract=domain[1] if domain else None,
            )
            await stop.wait()
            app[READINESS].phase = Phase.draining
            if settings.drain_delay and not fatal:
                log.info("drain_started", seconds=settings.drain_delay)
                await asyncio.sleep(settings.drain_delay)
        finally:
            listener.close()
            await runner.cleanup()
            await starting.shutdown(0)
    finally:
        if dev_runner is not None:
            await dev_runner.cleanup()
    if fatal:
        raise ServiceFailed(f"stopped after a journal failure: {fatal[0]}")
    log.info("ome_stopped")


def _log_executioner(settings: Settings) -> None:
    if settings.dev:
        log.info("executioner_address", executioner="embedded development executioner")
    elif settings.executioner_address == DEFAULT_EXECUTIONER:
        log.warning(
            "executioner_address",
            executioner=settings.executioner_address,
            reason="built-in default: set OME_EXECUTIONER_ADDRESS or --executioner_address",
        )
    else:
        log.info("executioner_address", executioner=settings.executioner_address)


def _warn_about_access(settings: Settings) -> None:
    if settings.signature_domain is None:
        log.warning(
            "signatures_not_verified",
            reason="--chain_id and --trader_contract not set",
            checked_by="the executioner only",
        )
    if settings.allow_unsigned_cancel:
        log.warning("unsigned_cancels_allowed", effect="a DELETE without a body cancels any order")


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    # Stop first: nothing that happens to the log line may keep the service running.
    stop.set()
    log.info("shutdown_requested", signal=signal.Signals(signum).name)


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    if uvloop is None:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def _fail(status: int, message: str) -> NoReturn:
    with contextlib.suppress(OSError, ValueError):
        print(f"ome: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        _fail(2, str(exc))
    configure_logging(settings.log_level)
    try:
        _run(serve(settings))
    except (DumpfileError, JournalError, RecoveryError, StartupError, ServiceFailed) as exc:
        log.error("ome_failed", reason=str(exc))
        _fail(1, str(exc))
    finally:
        silence_broken_stdout()


if __name__ == "__main__":
    main()
