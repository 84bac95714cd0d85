"""Runtime settings: command-line flags, then environment variables, then defaults.

Each setting is stated once, as one annotated field of `Settings`: its type
and default, and an `Option` with its flags, its environment variable names in
the order they are looked up, the parser of the text an operator gives, and
its help text. The argument parser, the `--help` text (which lists the
environment names and the default of every flag), `ENVIRONMENT` (used by the
checks of `.env.example` and the deployment files) and the error messages are
all derived from those fields, so adding a setting is adding one field.

`load_settings` is called once by `__main__`; everything else receives the
resulting `Settings`. For each setting the flag wins, then the first
environment variable found in the listed order, then the default (docs/API.md
"Flags and environment"). An empty variable counts as unset. Any bad value
becomes one `ConfigError` whose message names where the value came from.

`Settings` reads nothing by itself, so tests construct it directly and the
process environment never leaks into them. Text given to `Settings` goes
through the field's parser, whoever gives it.
"""

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Spellings of RUST_LOG and friends mapped onto the levels above.
_LEVEL_ALIASES = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "critical": "critical",
    "off": "critical",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# The executioner's port when only its host is given (the original service's `executioner_ip`).
EXECUTIONER_PORT = 3000
DEFAULT_EXECUTIONER = f"http://localhost:{EXECUTIONER_PORT}"
# The domain `--dev` verifies order signatures on: the one of the README's examples.
DEV_CHAIN_ID = 1337
DEV_TRADER_CONTRACT = "0x" + "33" * 20
_HEX = frozenset("0123456789abcdef")


class ConfigError(Exception):
    """A setting that cannot be used; the message is one line meant for the operator."""


def parse_log_level(value: str) -> str:
    """A level name, or a RUST_LOG directive list such as `info` or `ome=debug,hyper=warn`.

    For a directive list the most verbose level mentioned wins, since an
    operator who asks for debug anywhere wants to see it here.
    """
    found = []
    for directive in value.split(","):
        name = directive.rpartition("=")[2].strip().lower()
        if name:
            if name not in _LEVEL_ALIASES:
                raise ValueError(f"unknown log level {name!r}; use one of {', '.join(LOG_LEVELS)}")
            found.append(_LEVEL_ALIASES[name])
    if not found:
        raise ValueError(f"no log level given; use one of {', '.join(LOG_LEVELS)}")
    return min(found, key=LOG_LEVELS.index)


def parse_port(value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise ValueError("must be an integer from 0 to 65535")
    return int(text)


def parse_listen_address(value: str) -> str:
    text = value.strip()
    if text == "localhost":
        return text
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address, or localhost") from None


def parse_url(value: str) -> str:
    text = value.strip()
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:3000")
    return text.rstrip("/")


def parse_executioner_host(value: str) -> str:
    """A URL as it is; a bare IP or host name as `http://<it>:3000`."""
    text = value.strip()
    if "://" in text:
        return parse_url(text)
    host = text
    if ":" in text or "[" in text:
        try:
            host = f"[{ipaddress.IPv6Address(text.strip('[]'))}]"
        except ValueError:
            raise ValueError("must be an IP address, a host name or an http(s):// URL") from None
    elif not all(
        label and label.isascii() and label.replace("-", "").isalnum() for label in text.split(".")
    ):
        raise ValueError("must be an IP address, a host name or an http(s):// URL")
    return parse_url(f"http://{host}:{EXECUTIONER_PORT}")


def parse_path(value: str) -> Path:
    if not value.strip():
        raise ValueError("must not be empty")
    return Path(value)


FSYNC_MODES = ("always", "off")


def parse_fsync(value: str) -> str:
    word = value.strip().lower()
    if word not in FSYNC_MODES:
        raise ValueError(f"must be one of {', '.join(FSYNC_MODES)}")
    return word


def parse_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise ValueError("must be a positive number of seconds")
    return seconds


def parse_boolean(value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("must be true or false")


def parse_chain_id(value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**256:
        raise ValueError("must be a non-negative integer, e.g. 1 or 1337")
    return int(text)


def parse_address(value: str) -> str:
    """`0x` + 40 hex digits in any case, as `0x` + lowercase."""
    digits = value.strip().lower().removeprefix("0x")
    if len(digits) != 40 or not _HEX.issuperset(digits):
        raise ValueError("must be an address: 0x and 40 hex digits")
    return "0x" + digits


def parse_limit(value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError("must be a positive integer")
    return int(text)


def parse_token(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("must not be blank")
    return text


def parse_delay(value: str) -> float:
    try:
        seconds = float(value.strip())
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise ValueError("must be from 0 to 3600 seconds")
    return seconds


@dataclass(frozen=True)
class Env:
    """An environment variable whose text is read by its own parser instead of the setting's."""

    name: str
    parse: Callable[[str], Any]


@dataclass(frozen=True)
class Option:
    """How an operator sets one field of `Settings`.

    `flags`: the command-line spellings, the first `--` one named in errors.
    `env`: environment variable names, first found wins. `parse`: text to
    value, raising ValueError with a message for the operator. `switch`: a
    flag that takes no value and turns the setting on.
    """

    flags: tuple[str, ...]
    env: tuple[str | Env, ...]
    parse: Callable[[str], Any]
    help: str
    switch: bool = False

    @property
    def flag(self) -> str:
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(e.name if isinstance(e, Env) else e for e in self.env)


class Settings(BaseModel):
    """Everything the service can be told at start; one field per setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    listen: Annotated[
        str,
        Option(
            flags=("-l", "--listen"),
            env=("OME_LISTEN_ADDRESS", "address"),
            parse=parse_listen_address,
            help="address to listen on: an IPv4 or IPv6 address, or localhost",
        ),
    ] = "0.0.0.0"
    port: Annotated[
        int,
        Option(
            flags=("-p", "--port"),
            env=("OME_LISTEN_PORT", "port"),
            parse=parse_port,
            help="port to listen on, 0 for any free port",
        ),
    ] = 8989
    executioner_address: Annotated[
        str,
        Option(
            flags=("--executioner_address", "--executioner-address"),
            env=(
                "OME_EXECUTIONER_ADDRESS",
                "executioner_address",
                Env("executioner_ip", parse_executioner_host),
            ),
            parse=parse_url,
            help=(
                "base URL of the executioner, which checks orders and settles matched pairs "
                f"(executioner_ip may be a bare IP or host: http://<it>:{EXECUTIONER_PORT})"
            ),
        ),
    ] = DEFAULT_EXECUTIONER
    dumpfile: Annotated[
        Path,
        Option(
            flags=("--dumpfile",),
            env=("OME_DUMPFILE", "dumpfile"),
            parse=parse_path,
            help="state file read at start and written on shutdown",
        ),
    ] = Path(".omedump.json")
    certificate_path: Annotated[
        Path,
        Option(
            flags=("--certificate_path", "--certificate-path"),
            env=("OME_CERTIFICATE_PATH",),
            parse=parse_path,
            help="TLS certificate (PEM); TLS is served when it and the key exist",
        ),
    ] = Path("cert.pem")
    private_key_path: Annotated[
        Path,
        Option(
            flags=("--private_key_path", "--private-key-path"),
            env=("OME_PRIVATE_KEY_PATH",),
            parse=parse_path,
            help="TLS private key (PEM)",
        ),
    ] = Path("pkey.secret")
    force_no_tls: Annotated[
        bool,
        Option(
            flags=("--force-no-tls", "--force_no_tls"),
            env=("OME_FORCE_NO_TLS",),
            parse=parse_boolean,
            help="serve plain HTTP even when the certificate and key exist",
            switch=True,
        ),
    ] = False
    log_level: Annotated[
        str,
        Option(
            flags=("--log-level", "--log_level"),
            env=("OME_LOG_LEVEL", "RUST_LOG"),
            parse=parse_log_level,
            help="debug, info, warning, error or critical (RUST_LOG directives such as "
            "ome=debug work too)",
        ),
    ] = "info"
    journal_dir: Annotated[
        Path,
        Option(
            flags=("--journal_dir", "--journal-dir"),
            env=("OME_JOURNAL_DIR",),
            parse=parse_path,
            help="folder of the write-ahead journal; every acknowledged command is there first",
        ),
    ] = Path(".omejournal")
    fsync: Annotated[
        str,
        Option(
            flags=("--fsync",),
            env=("OME_FSYNC",),
            parse=parse_fsync,
            help="always: nothing is acknowledged before it is on disk; "
            "off: for benchmarks and tests only (a crash loses acknowledged commands)",
        ),
    ] = "always"
    snapshot_interval: Annotated[
        float,
        Option(
            flags=("--snapshot_interval", "--snapshot-interval"),
            env=("OME_SNAPSHOT_INTERVAL",),
            parse=parse_seconds,
            help="seconds between snapshots written to the dumpfile while serving; "
            "the journal they cover is deleted",
        ),
    ] = 300.0
    start_digest: Annotated[
        bool,
        Option(
            flags=("--start_digest", "--start-digest"),
            env=("OME_START_DIGEST",),
            parse=parse_boolean,
            help="log the digest of the recovered state with state_recovered (seconds "
            "with a million orders; python -m ome.recovery prints it too)",
            switch=True,
        ),
    ] = False
    access_log: Annotated[
        bool,
        Option(
            flags=("--access_log", "--access-log"),
            env=("OME_ACCESS_LOG",),
            parse=parse_boolean,
            help="log one http_request line per request: method, route, status, latency, "
            "request id",
            switch=True,
        ),
    ] = False
    metrics: Annotated[
        bool,
        Option(
            flags=("--metrics",),
            env=("OME_METRICS",),
            parse=parse_boolean,
            help="count requests, orders, deliveries and journal writes, served at GET /metrics "
            "in the Prometheus text format (true or false)",
        ),
    ] = True
    drain_delay: Annotated[
        float,
        Option(
            flags=("--drain_delay", "--drain-delay"),
            env=("OME_DRAIN_DELAY",),
            parse=parse_delay,
            help="seconds to go on serving after SIGTERM, GET /ready answering 503, so that "
            "load balancers stop sending before the port closes",
        ),
    ] = 0.0
    dev: Annotated[
        bool,
        Option(
            flags=("--dev",),
            env=(),
            parse=parse_boolean,
            help="run the development executioner in the same process and use it; verify "
            f"order signatures on chain {DEV_CHAIN_ID}, contract {DEV_TRADER_CONTRACT} unless "
            "--chain_id and --trader_contract say otherwise",
            switch=True,
        ),
    ] = False
    chain_id: Annotated[
        int | None,
        Option(
            flags=("--chain_id", "--chain-id"),
            env=("OME_CHAIN_ID", "NETWORK_ID"),
            parse=parse_chain_id,
            help="chain id of the EIP-712 domain orders are signed on; with --trader_contract, "
            "every order's signature is verified here before the executioner's check",
        ),
    ] = None
    trader_contract: Annotated[
        str | None,
        Option(
            flags=("--trader_contract", "--trader-contract"),
            env=("OME_TRADER_CONTRACT", "TRADER_CONTRACT"),
            parse=parse_address,
            help="the trader contract, verifyingContract of the orders' EIP-712 domain",
        ),
    ] = None
    allow_unsigned_cancel: Annotated[
        bool,
        Option(
            flags=("--allow_unsigned_cancel", "--allow-unsigned-cancel"),
            env=("OME_ALLOW_UNSIGNED_CANCEL",),
            parse=parse_boolean,
            help="let a DELETE without a body cancel any order, as older frontends send it",
            switch=True,
        ),
    ] = False
    max_inflight_per_user: Annotated[
        int,
        Option(
            flags=("--max_inflight_per_user", "--max-inflight-per-user"),
            env=("OME_MAX_INFLIGHT_PER_USER",),
            parse=parse_limit,
            help="orders of one user waiting on the executioner's check at once; more get 429",
        ),
    ] = 16
    max_markets: Annotated[
        int,
        Option(
            flags=("--max_markets", "--max-markets"),
            env=("OME_MAX_MARKETS",),
            parse=parse_limit,
            help="markets that may be open; POST /book beyond it gets 429",
        ),
    ] = 1000
    max_orders_per_user: Annotated[
        int,
        Option(
            flags=("--max_orders_per_user", "--max-orders-per-user"),
            env=("OME_MAX_ORDERS_PER_USER",),
            parse=parse_limit,
            help="resting orders of one user in one market; an order that would rest beyond "
            "it gets 429",
        ),
    ] = 10000
    admin_token: Annotated[
        str | None,
        Option(
            flags=("--admin_token", "--admin-token"),
            env=("OME_ADMIN_TOKEN",),
            parse=parse_token,
            help="when set, POST /book needs Authorization: Bearer <token>; prefer the "
            "environment variable, since a flag shows in the process list",
        ),
    ] = Field(None, repr=False)

    @field_validator("*", mode="before")
    @classmethod
    def _parse_text(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and info.field_name is not None:
            return OPTIONS[info.field_name].parse(value)
        return value

    @field_validator("max_inflight_per_user", "max_markets", "max_orders_per_user")
    @classmethod
    def _limit_is_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a positive integer")
        return value

    @model_validator(mode="after")
    def _domain_is_complete(self) -> "Settings":
        if (self.chain_id is None) != (self.trader_contract is None):
            given, missing = "chain_id", "trader_contract"
            if self.chain_id is None:
                given, missing = missing, given
            raise ValueError(
                f"{OPTIONS[missing].flag} is missing (environment "
                f"{' or '.join(OPTIONS[missing].env_names)}): with {OPTIONS[given].flag} set, "
                "order signatures are verified and need both"
            )
        return self

    @property
    def signature_domain(self) -> tuple[int, str] | None:
        """(chain id, trader contract) orders are verified on; None: not verified here."""
        if self.chain_id is not None and self.trader_contract is not None:
            return self.chain_id, self.trader_contract
        if self.dev:
            return DEV_CHAIN_ID, DEV_TRADER_CONTRACT
        return None


def _option_of(field: str) -> Option:
    found = [m for m in Settings.model_fields[field].metadata if isinstance(m, Option)]
    if len(found) != 1:
        raise TypeError(f"Settings.{field} needs exactly one Option in its annotation")
    return found[0]


# field -> how it is set, in declaration order.
OPTIONS: dict[str, Option] = {field: _option_of(field) for field in Settings.model_fields}
# field -> environment variable names, first found wins.
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    field: option.env_names for field, option in OPTIONS.items() if option.env
}


def package_version() -> str:
    try:
        return version("tracer-ome")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so every bad value
    ends the same way: one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _help_of(option: Option, default: Any) -> str:
    shown = "off" if option.switch else str(default)
    where = f"env {', '.join(option.env_names)}; " if option.env else ""
    return f"{option.help} ({where}default {shown})".replace("%", "%%")


def _parser() -> _Parser:
    parser = _Parser(
        prog="ome",
        description=(
            "Tracer order matching engine: REST API over in-memory order books. "
            "A flag beats its environment variables, which are looked up in the order "
            "listed and beat the default; an empty variable counts as unset."
        ),
        argument_default=argparse.SUPPRESS,
    )
    for field, option in OPTIONS.items():
        default = Settings.model_fields[field].default
        if option.switch:
            parser.add_argument(
                *option.flags, dest=field, action="store_true", help=_help_of(option, default)
            )
        else:
            parser.add_argument(
                *option.flags,
                dest=field,
                metavar=field.upper(),
                help=_help_of(option, default),
            )
    parser.add_argument("--version", action="version", version=f"ome {package_version()}")
    return parser


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags beat environment variables, which beat defaults. Raises ConfigError."""
    if argv is None:
        argv = sys.argv[1:]
    if environ is None:
        environ = os.environ
    flags = vars(_parser().parse_args(list(argv)))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for field, option in OPTIONS.items():
        if field in flags:
            values[field] = flags[field]
            sources[field] = option.flag
            continue
        for entry in option.env:
            name = entry.name if isinstance(entry, Env) else entry
            # An empty variable counts as unset: config maps often carry `port=`.
            text = environ.get(name, "")
            if not text.strip():
                continue
            sources[field] = f"environment variable {name}"
            values[field] = text
            if isinstance(entry, Env):
                try:
                    values[field] = entry.parse(text)
                except ValueError as exc:
                    raise ConfigError(f"{sources[field]}: invalid value {text!r}: {exc}") from None
            break

    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        text = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            # A rule across settings: its message names them.
            raise ConfigError(text) from None
        field = str(error["loc"][0])
        source = sources.get(field, field)
        raise ConfigError(f"{source}: invalid value {values.get(field)!r}: {text}") from None
