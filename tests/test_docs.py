"""docs/API.md keeps up with the code: every route, setting and fixed error message is in it,
and no file of the repository points outside it for the API."""

import re
from pathlib import Path

import pytest

from ome.api.app import create_app
from ome.api.middlewares import UNSUPPORTED_ENCODING
from ome.config import OPTIONS, Settings
from ome.engine import DuplicateOrder, MarketExists, OrderNotFound, UnknownMarket
from ome.wire import OUT_OF_BOUNDS

ROOT = Path(__file__).resolve().parents[1]
API = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(dumpfile=tmp_path / "d", journal_dir=tmp_path / "j"))
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        path = route.resource.canonical if route.resource else ""
        assert f"`{route.method} {path}" in API, f"{route.method} {path} is not in docs/API.md"


@pytest.mark.parametrize("field", list(OPTIONS))
def test_every_setting_is_documented_with_its_flags_and_environment(field: str) -> None:
    option = OPTIONS[field]
    first_cell = f"| `{option.flags[0]}`"
    row = next((line for line in API.splitlines() if line.startswith(first_cell)), None)
    assert row is not None, f"no row for {option.flags[0]} in docs/API.md"
    for name in (*option.flags, *option.env_names):
        assert f"`{name}`" in row, f"{name} missing from the row of {field}"


@pytest.mark.parametrize(
    "text",
    [
        str(UnknownMarket("0x")),
        str(MarketExists("0x")),
        str(OrderNotFound("0x")),
        str(DuplicateOrder("0x")),
        OUT_OF_BOUNDS,
        UNSUPPORTED_ENCODING,
        "Executioner unavailable",
        "Healthy",
        "Market created",
        "Order cancelled",
    ],
)
def test_fixed_messages_are_documented(text: str) -> None:
    assert f"`{text}`" in API or f'"message": "{text}"' in API, text


def test_nothing_points_beside_the_repository() -> None:
    files = [ROOT / "README.md", *ROOT.glob("ome/**/*.py"), *ROOT.glob("tests/**/*.py")]
    for path in (f for f in files if f != Path(__file__)):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\.\./shared|shared/(API|DESIGN)\.md|shared/vectors", text), path
