"""Runtime settings: command-line flags, then environment variables, then defaults.

`load_settings` is called once by `__main__`; everything else receives the
resulting `Settings`. The names and their order are the operators' contract
(API.md "Operating"): for each setting the flag wins, then the first
environment variable found in the listed order, then the default. Both the
`OME_*` names and the original service's bare names (`port`, `address`, ...)
are read. Any bad value becomes one `ConfigError` whose message names where
the value came from.

`Settings` reads nothing by itself, so tests construct it directly and the
process environment never leaks into them.
"""

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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
_HEX = frozenset("0123456789abcdef")

# field -> environment variables, first found wins.
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "listen": ("OME_LISTEN_ADDRESS", "address"),
    "port": ("OME_LISTEN_PORT", "port"),
    "executioner_address": ("OME_EXECUTIONER_ADDRESS", "executioner_address"),
    "dumpfile": ("OME_DUMPFILE", "dumpfile"),
    "certificate_path": ("OME_CERTIFICATE_PATH",),
    "private_key_path": ("OME_PRIVATE_KEY_PATH",),
    "force_no_tls": ("OME_FORCE_NO_TLS",),
    "log_level": ("OME_LOG_LEVEL", "RUST_LOG"),
    "chain_id": ("OME_CHAIN_ID", "NETWORK_ID"),
    "trader_contract": ("OME_TRADER_CONTRACT", "TRADER_CONTRACT"),
    "allow_unsigned_cancel": ("OME_ALLOW_UNSIGNED_CANCEL",),
    "max_inflight_per_user": ("OME_MAX_INFLIGHT_PER_USER",),
    "max_markets": ("OME_MAX_MARKETS",),
    "max_orders_per_user": ("OME_MAX_ORDERS_PER_USER",),
    "admin_token": ("OME_ADMIN_TOKEN",),
}
# field -> the flag named in error messages.
FLAGS = {
    "listen": "--listen",
    "port": "--port",
    "executioner_address": "--executioner_address",
    "dumpfile": "--dumpfile",
    "certificate_path": "--certificate_path",
    "private_key_path": "--private_key_path",
    "force_no_tls": "--force-no-tls",
    "log_level": "--log-level",
    "chain_id": "--chain_id",
    "trader_contract": "--trader_contract",
    "allow_unsigned_cancel": "--allow_unsigned_cancel",
    "max_inflight_per_user": "--max_inflight_per_user",
    "max_markets": "--max_markets",
    "max_orders_per_user": "--max_orders_per_user",
    # Only from the environment: a flag would show the secret in the process list.
    "admin_token": "OME_ADMIN_TOKEN",
}
# The domain `--dev` verifies order signatures on: the one of the README's examples.
DEV_CHAIN_ID = 1337
DEV_TRADER_CONTRACT = "0x" + "33" * 20


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


class Settings(BaseSettings):
    """Everything the service can be told at start."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    listen: str = "0.0.0.0"
    port: int = 8989
    executioner_address: str = "http://localhost:3000"
    dumpfile: Path = Path(".omedump.json")
    certificate_path: Path = Path("cert.pem")
    private_key_path: Path = Path("pkey.secret")
    force_no_tls: bool = False
    log_level: str = "info"
    dev: bool = False
    chain_id: int | None = None
    trader_contract: str | None = None
    allow_unsigned_cancel: bool = False
    max_inflight_per_user: int = 16
    max_markets: int = 1000
    max_orders_per_user: int = 10000
    admin_token: str | None = Field(None, repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only explicit arguments: the environment is read by load_settings, in
        # the documented order, so that a stray variable cannot bypass it.
        return (init_settings,)

    @field_validator("port", mode="before")
    @classmethod
    def _port_is_integer(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ValueError("must be an integer from 0 to 65535")
        return value

    @field_validator("listen")
    @classmethod
    def _listen_is_address(cls, value: str) -> str:
        text = value.strip()
        if text == "localhost":
            return text
        try:
            return str(ipaddress.ip_address(text.strip("[]")))
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address, or localhost") from None

    @field_validator("executioner_address")
    @classmethod
    def _executioner_is_url(cls, value: str) -> str:
        text = value.strip()
        parts = urlsplit(text)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:3000")
        return text.rstrip("/")

    @field_validator("dumpfile", "certificate_path", "private_key_path", mode="before")
    @classmethod
    def _path_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("chain_id", mode="before")
    @classmethod
    def _chain_id_is_integer(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not (text.isascii() and text.isdigit()):
                raise ValueError("must be a non-negative integer, e.g. 1 or 1337")
            value = int(text)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256
        ):
            raise ValueError("must be a non-negative integer, e.g. 1 or 1337")
        return value

    @field_validator("trader_contract", mode="before")
    @classmethod
    def _contract_is_address(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            digits = text.removeprefix("0x")
            if len(digits) != 40 or not _HEX.issuperset(digits):
                raise ValueError("must be an address: 0x and 40 hex digits")
            return "0x" + digits
        return value

    @field_validator("max_inflight_per_user", "max_markets", "max_orders_per_user", mode="before")
    @classmethod
    def _limit_is_positive(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("must be a positive integer")
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _token_not_blank(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _domain_is_complete(self) -> "Settings":
        if (self.chain_id is None) != (self.trader_contract is None):
            given, missing = ("chain_id", "trader_contract")
            if self.chain_id is None:
                given, missing = missing, given
            raise ValueError(
                f"{FLAGS[missing]} is missing ({_names(missing)}): with {FLAGS[given]} set, "
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

    @field_validator("force_no_tls", "allow_unsigned_cancel", mode="before")
    @classmethod
    def _boolean_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError("must be true or false")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_log_level(value)
        return value


def _names(field: str) -> str:
    return "environment " + " or ".join(ENVIRONMENT[field])


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so every bad value
    ends the same way: one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _parser() -> _Parser:
    parser = _Parser(
        prog="ome",
        description="Tracer order matching engine: REST API over in-memory order books.",
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("-l", "--listen", help="address to listen on (default 0.0.0.0)")
    add("-p", "--port", help="port to listen on, 0 for any free port (default 8989)")
    add(
        "--executioner_address",
        "--executioner-address",
        dest="executioner_address",
        help="base URL of the executioner (default http://localhost:3000)",
    )
    add("--dumpfile", help="state file read at start, written on shutdown (default .omedump.json)")
    add(
        "--certificate_path",
        "--certificate-path",
        dest="certificate_path",
        help="TLS certificate (PEM); TLS is served when it and the key exist (default cert.pem)",
    )
    add(
        "--private_key_path",
        "--private-key-path",
        dest="private_key_path",
        help="TLS private key (PEM) (default pkey.secret)",
    )
    add(
        "--force-no-tls",
        "--force_no_tls",
        dest="force_no_tls",
        action="store_true",
        help="serve plain HTTP even when the certificate and key exist",
    )
    add(
        "--log-level",
        "--log_level",
        dest="log_level",
        help="debug, info, warning, error or critical (default info)",
    )
    add(
        "--dev",
        action="store_true",
        help="run the development executioner in the same process and use it; verify "
        f"order signatures on chain {DEV_CHAIN_ID}, contract {DEV_TRADER_CONTRACT} unless set",
    )
    add(
        "--chain_id",
        "--chain-id",
        dest="chain_id",
        help="chain id of the EIP-712 domain orders are signed on; with --trader_contract, "
        "signatures are verified here (env OME_CHAIN_ID, NETWORK_ID)",
    )
    add(
        "--trader_contract",
        "--trader-contract",
        dest="trader_contract",
        help="the trader contract, the domain's verifyingContract "
        "(env OME_TRADER_CONTRACT, TRADER_CONTRACT)",
    )
    add(
        "--allow_unsigned_cancel",
        "--allow-unsigned-cancel",
        dest="allow_unsigned_cancel",
        action="store_true",
        help="let a DELETE without a body cancel any order, as older frontends send it",
    )
    add(
        "--max_inflight_per_user",
        "--max-inflight-per-user",
        dest="max_inflight_per_user",
        help="orders of one user waiting on the executioner's check at once (default 16)",
    )
    add(
        "--max_markets",
        "--max-markets",
        dest="max_markets",
        help="markets that may be open (default 1000)",
    )
    add(
        "--max_orders_per_user",
        "--max-orders-per-user",
        dest="max_orders_per_user",
        help="resting orders of one user in one market (default 10000)",
    )
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
    for field, names in ENVIRONMENT.items():
        if field in flags:
            values[field] = flags[field]
            sources[field] = FLAGS[field]
            continue
        for name in names:
            # An empty variable counts as unset: config maps often carry `port=`.
            if environ.get(name, "").strip():
                values[field] = environ[name]
                sources[field] = f"environment variable {name}"
                break
    if flags.get("dev"):
        values["dev"] = True

    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            raise ConfigError(message) from None
        field = str(error["loc"][0])
        source = sources.get(field, field)
        raise ConfigError(f"{source}: invalid value {values.get(field)!r}: {message}") from None
