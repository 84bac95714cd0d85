"""Settings of issue 9: the signature domain, signed cancels, the limits and the admin token."""

import subprocess
import sys

import pytest

from ome.config import ConfigError, Settings, load_settings

CONTRACT = "0x" + "ab" * 20


def test_defaults() -> None:
    settings = load_settings([], {})
    assert settings.signature_domain is None
    assert settings.allow_unsigned_cancel is False
    assert (settings.max_inflight_per_user, settings.max_markets, settings.max_orders_per_user) == (
        16,
        1000,
        10000,
    )
    assert settings.admin_token is None


def test_flags() -> None:
    settings = load_settings(
        [
            *("--chain_id", "42161", "--trader_contract", CONTRACT.upper().replace("0X", "0x")),
            *("--allow_unsigned_cancel", "--max_inflight_per_user", "4"),
            *("--max_markets", "7", "--max_orders_per_user", "9"),
        ],
        {},
    )
    assert settings.signature_domain == (42161, CONTRACT)
    assert settings.allow_unsigned_cancel is True
    assert (settings.max_inflight_per_user, settings.max_markets, settings.max_orders_per_user) == (
        4,
        7,
        9,
    )


def test_environment_ome_names_then_the_executioners() -> None:
    executioners = {"NETWORK_ID": "5", "TRADER_CONTRACT": CONTRACT}
    assert load_settings([], executioners).signature_domain == (5, CONTRACT)
    ours = {"OME_CHAIN_ID": "1", "OME_TRADER_CONTRACT": "0x" + "cd" * 20}
    assert load_settings([], {**executioners, **ours}).signature_domain == (1, "0x" + "cd" * 20)
    assert load_settings(["--chain_id", "9"], {**executioners, **ours}).chain_id == 9
    settings = load_settings(
        [],
        {
            "OME_ALLOW_UNSIGNED_CANCEL": "true",
            "OME_MAX_INFLIGHT_PER_USER": "2",
            "OME_MAX_MARKETS": "3",
            "OME_MAX_ORDERS_PER_USER": "4",
            "OME_ADMIN_TOKEN": "tok",
        },
    )
    assert settings.allow_unsigned_cancel is True
    assert (settings.max_inflight_per_user, settings.max_markets, settings.max_orders_per_user) == (
        2,
        3,
        4,
    )
    assert settings.admin_token == "tok"
    assert "tok" not in repr(settings)


def test_dev_verifies_on_the_readme_domain_unless_set() -> None:
    assert load_settings(["--dev"], {}).signature_domain == (1337, "0x" + "33" * 20)
    assert load_settings(["--dev", "--chain_id", "5", "--trader_contract", CONTRACT], {}) == (
        Settings(dev=True, chain_id=5, trader_contract=CONTRACT)
    )
    assert Settings(dev=True, chain_id=5, trader_contract=CONTRACT).signature_domain == (
        5,
        CONTRACT,
    )


@pytest.mark.parametrize(
    ("argv", "environ", "missing"),
    [
        (["--chain_id", "1"], {}, "--trader_contract"),
        ([], {"NETWORK_ID": "1"}, "--trader_contract"),
        (["--dev", "--chain_id", "1"], {}, "--trader_contract"),
        ([], {"TRADER_CONTRACT": CONTRACT}, "--chain_id"),
        (["--trader_contract", CONTRACT], {}, "--chain_id"),
    ],
)
def test_only_half_a_domain_names_the_missing_half(
    argv: list[str], environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(ConfigError, match=missing):
        load_settings(argv, environ)


@pytest.mark.parametrize(
    ("argv", "environ", "names"),
    [
        (["--chain_id", "-1", "--trader_contract", CONTRACT], {}, "--chain_id"),
        ([], {"NETWORK_ID": "mainnet", "TRADER_CONTRACT": CONTRACT}, "NETWORK_ID"),
        (["--chain_id", "1", "--trader_contract", "0x1234"], {}, "--trader_contract"),
        ([], {"OME_CHAIN_ID": "1", "TRADER_CONTRACT": "0x" + "zz" * 20}, "TRADER_CONTRACT"),
        (["--max_inflight_per_user", "0"], {}, "--max_inflight_per_user"),
        ([], {"OME_MAX_MARKETS": "many"}, "OME_MAX_MARKETS"),
        (["--max_orders_per_user", "-5"], {}, "--max_orders_per_user"),
        ([], {"OME_ALLOW_UNSIGNED_CANCEL": "perhaps"}, "OME_ALLOW_UNSIGNED_CANCEL"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], environ: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(argv, environ)
    assert names in str(caught.value)
    assert "\n" not in str(caught.value)


def test_admin_token_blank_is_refused_and_the_flag_works() -> None:
    assert load_settings(["--admin_token", " tok "], {}).admin_token == "tok"
    with pytest.raises(ConfigError, match="--admin_token"):
        load_settings(["--admin_token", " "], {})


def test_half_a_domain_exits_2_naming_the_missing_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ome", "--chain_id", "1337"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ome: error: --trader_contract is missing")
    assert "OME_TRADER_CONTRACT" in line and "TRADER_CONTRACT" in line
