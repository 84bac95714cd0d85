"""Settings: flags beat the environment, which beats the defaults; bad values exit 2 cleanly."""

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from ome.config import ENVIRONMENT, OPTIONS, ConfigError, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings([], {})
    assert settings == Settings()
    assert settings.listen == "0.0.0.0"
    assert settings.port == 8989
    assert settings.executioner_address == "http://localhost:3000"
    assert settings.dumpfile == Path(".omedump.json")
    assert settings.certificate_path == Path("cert.pem")
    assert settings.private_key_path == Path("pkey.secret")
    assert settings.force_no_tls is False
    assert settings.log_level == "info"
    assert settings.dev is False


def test_every_flag() -> None:
    settings = load_settings(
        [
            "-l", "127.0.0.1", "-p", "1234",
            "--executioner_address", "https://exec.example:8443/",
            "--dumpfile", "/tmp/d.json",
            "--certificate_path", "c.pem", "--private_key_path", "k.pem",
            "--force-no-tls", "--log-level", "debug", "--dev",
        ],
        {},
    )  # fmt: skip
    assert settings.listen == "127.0.0.1"
    assert settings.port == 1234
    assert settings.executioner_address == "https://exec.example:8443"
    assert settings.dumpfile == Path("/tmp/d.json")
    assert settings.certificate_path == Path("c.pem")
    assert settings.private_key_path == Path("k.pem")
    assert settings.force_no_tls is True
    assert settings.log_level == "debug"
    assert settings.dev is True


def test_long_listen_and_port_flags() -> None:
    settings = load_settings(["--listen", "::1", "--port", "0"], {})
    assert (settings.listen, settings.port) == ("::1", 0)


OME_ENV = {
    "OME_LISTEN_ADDRESS": "127.0.0.2",
    "OME_LISTEN_PORT": "9001",
    "OME_EXECUTIONER_ADDRESS": "http://exec:3000",
    "OME_DUMPFILE": "/var/ome/dump.json",
    "OME_CERTIFICATE_PATH": "/tls/cert.pem",
    "OME_PRIVATE_KEY_PATH": "/tls/key.pem",
    "OME_FORCE_NO_TLS": "true",
    "OME_LOG_LEVEL": "warning",
}
BARE_ENV = {
    "address": "127.0.0.3",
    "port": "9002",
    "executioner_address": "http://legacy:3000",
    "dumpfile": "legacy.json",
    "RUST_LOG": "error",
}


def test_ome_environment() -> None:
    settings = load_settings([], OME_ENV)
    assert settings.listen == "127.0.0.2"
    assert settings.port == 9001
    assert settings.executioner_address == "http://exec:3000"
    assert settings.dumpfile == Path("/var/ome/dump.json")
    assert settings.certificate_path == Path("/tls/cert.pem")
    assert settings.private_key_path == Path("/tls/key.pem")
    assert settings.force_no_tls is True
    assert settings.log_level == "warning"


def test_original_environment_names() -> None:
    settings = load_settings([], BARE_ENV)
    assert settings.listen == "127.0.0.3"
    assert settings.port == 9002
    assert settings.executioner_address == "http://legacy:3000"
    assert settings.dumpfile == Path("legacy.json")
    assert settings.log_level == "error"


def test_ome_names_win_over_original_names() -> None:
    settings = load_settings([], {**BARE_ENV, **OME_ENV})
    assert settings.listen == "127.0.0.2"
    assert settings.port == 9001
    assert settings.executioner_address == "http://exec:3000"
    assert settings.dumpfile == Path("/var/ome/dump.json")
    assert settings.log_level == "warning"


def test_flags_win_over_environment() -> None:
    settings = load_settings(
        ["-p", "7000", "-l", "127.0.0.9", "--log-level", "debug", "--dumpfile", "f.json"],
        {**BARE_ENV, **OME_ENV},
    )
    assert settings.port == 7000
    assert settings.listen == "127.0.0.9"
    assert settings.log_level == "debug"
    assert settings.dumpfile == Path("f.json")
    assert settings.executioner_address == "http://exec:3000"


def test_empty_variable_counts_as_unset() -> None:
    assert load_settings([], {"OME_LISTEN_PORT": "", "port": "9100"}).port == 9100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True), ("TRUE", True), ("1", True), ("yes", True),
        ("false", False), ("0", False), ("no", False),
    ],
)  # fmt: skip
def test_force_no_tls_words(value: str, expected: bool) -> None:
    assert load_settings([], {"OME_FORCE_NO_TLS": value}).force_no_tls is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("info", "info"), ("DEBUG", "debug"), ("trace", "debug"), ("warn", "warning"),
        ("error", "error"), ("critical", "critical"), ("tracer_ome=debug,actix=warn", "debug"),
    ],
)  # fmt: skip
def test_rust_log_spellings(value: str, expected: str) -> None:
    assert load_settings([], {"RUST_LOG": value}).log_level == expected


@pytest.mark.parametrize(
    ("argv", "environ", "names"),
    [
        (["--port", "abc"], {}, "--port"),
        (["--port", "65536"], {}, "--port"),
        (["--port", "-1"], {}, "--port"),
        ([], {"OME_LISTEN_PORT": "80x"}, "OME_LISTEN_PORT"),
        ([], {"port": "http"}, "port"),
        (["-l", "nowhere"], {}, "--listen"),
        ([], {"address": "300.1.1.1"}, "address"),
        (["--executioner_address", "localhost:3000"], {}, "--executioner_address"),
        ([], {"OME_EXECUTIONER_ADDRESS": "ftp://x"}, "OME_EXECUTIONER_ADDRESS"),
        ([], {"OME_FORCE_NO_TLS": "maybe"}, "OME_FORCE_NO_TLS"),
        (["--log-level", "loud"], {}, "--log-level"),
        ([], {"RUST_LOG": "verbose"}, "RUST_LOG"),
        (["--bogus"], {}, "--bogus"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], environ: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(argv, environ)
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_settings_never_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for names in ENVIRONMENT.values():
        for name in names:
            monkeypatch.setenv(name, "9")
    monkeypatch.setenv("OME_LISTEN_PORT", "9")
    assert Settings() == load_settings([], {})
    assert Settings().port == 8989


def test_load_settings_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OME_LISTEN_PORT", "9123")
    assert load_settings([]).port == 9123


def test_text_given_to_settings_goes_through_the_parser() -> None:
    assert Settings(port="0", executioner_address="http://127.0.0.1:1/").port == 0  # type: ignore[arg-type]
    assert Settings(executioner_address="http://127.0.0.1:1/").executioner_address == (
        "http://127.0.0.1:1"
    )
    with pytest.raises(ValueError, match="URL"):
        Settings(executioner_address="127.0.0.1:1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:3000"),
        (" 10.1.2.3 ", "http://10.1.2.3:3000"),
        ("executioner", "http://executioner:3000"),
        ("exec-1.tracer.internal", "http://exec-1.tracer.internal:3000"),
        ("::1", "http://[::1]:3000"),
        ("https://exec.example:8443/", "https://exec.example:8443"),
        ("http://10.0.0.1:4000", "http://10.0.0.1:4000"),
    ],
)
def test_executioner_ip_is_the_last_fallback(value: str, expected: str) -> None:
    assert load_settings([], {"executioner_ip": value}).executioner_address == expected


def test_executioner_ip_loses_to_the_other_names() -> None:
    environ = {"executioner_ip": "10.0.0.9", "executioner_address": "http://legacy:3000"}
    assert load_settings([], environ).executioner_address == "http://legacy:3000"
    environ["OME_EXECUTIONER_ADDRESS"] = "http://exec:3000"
    assert load_settings([], environ).executioner_address == "http://exec:3000"


@pytest.mark.parametrize("value", ["local host", "exec:3000", "ftp://x", "a..b", "[nope]"])
def test_bad_executioner_ip_names_its_source(value: str) -> None:
    with pytest.raises(ConfigError, match="executioner_ip"):
        load_settings([], {"executioner_ip": value})


def _run_ome(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ome", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--port", "abc"], {}),
        (["-l", "nowhere"], {}),
        (["--no-such-flag"], {}),
        (["--port"], {}),
        ([], {"OME_LISTEN_PORT": "abc"}),
        ([], {"address": "nowhere"}),
        ([], {"OME_FORCE_NO_TLS": "perhaps"}),
        ([], {"RUST_LOG": "chatty"}),
    ],
)
def test_bad_value_exits_2_with_one_line(args: list[str], env: dict[str, str]) -> None:
    result = _run_ome(args, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ome: error: ")
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_every_flag_with_its_environment_names_and_default() -> None:
    result = _run_ome(["--help"], {"COLUMNS": "1000"})
    assert result.returncode == 0
    # One entry per option: its first line starts with a dash, its help may wrap below.
    entries = [" ".join(entry.split()) for entry in re.split(r"\n(?=  -)", result.stdout)]
    for field, option in OPTIONS.items():
        line = next((e for e in entries if re.match(rf"{option.flags[0]}[ ,]", e)), None)
        assert line is not None, f"--help does not list {option.flags[0]}"
        for flag in option.flags:
            assert flag in line
        for name in option.env_names:
            assert re.search(rf"\b{re.escape(name)}\b", line), f"{name} missing from {line!r}"
        if not option.switch:
            assert f"default {Settings.model_fields[field].default}" in line


def test_version_prints_the_package_version() -> None:
    result = _run_ome(["--version"], {})
    assert result.returncode == 0
    assert result.stdout.strip() == f"ome {version('tracer-ome')}"
