"""The README's "Trying every route" examples, run in order against `make run`'s settings
(`--dev`: signatures verified on the examples' domain): every request succeeds, and every
answer shown in full is the answer given."""

import json
import re
import shlex
from pathlib import Path
from typing import Any

from pytest_aiohttp import AiohttpClient

from ome.api.app import create_app
from ome.config import Settings
from tests.builders import Clock

README = Path(__file__).resolve().parents[2] / "README.md"


def examples() -> list[tuple[str, str, Any, str | None]]:
    """(method, path, JSON body or None, the answer shown if it is complete JSON)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Trying every route") :]
    section = section[: section.index("\n## ", 3)]
    found: list[tuple[str, str, Any, str | None]] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        lines = block.replace("\\\n", " ").splitlines()
        number = 0
        while number < len(lines):
            command = lines[number]
            number += 1
            if not command.startswith("curl "):
                continue
            # A quoted body may go on over several lines.
            while command.count("'") % 2:
                command += "\n" + lines[number]
                number += 1
            words = shlex.split(command)
            method = words[words.index("-X") + 1] if "-X" in words else "GET"
            url = next(w for w in words if w.startswith("localhost:8989"))
            body = json.loads(words[words.index("-d") + 1]) if "-d" in words else None
            answer = lines[number] if number < len(lines) else ""
            shown = answer.removeprefix("# ") if answer.startswith("# {") else None
            if shown is not None and ("…" in shown or not shown.endswith("}")):
                shown = None  # abridged, or continued on the next line
            found.append((method, url.removeprefix("localhost:8989"), body, shown))
    return found


def test_the_readme_has_the_examples() -> None:
    methods = [method for method, _, _, _ in examples()]
    assert methods.count("POST") == 3
    assert "PATCH" in methods


async def test_readme_examples_succeed_under_make_run(
    aiohttp_client: AiohttpClient, settings: Settings, clock: Clock
) -> None:
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"dev": True}), clock=clock)
    )
    for method, path, body, shown in examples():
        response = await client.request(method, path, json=body)
        assert 200 <= response.status < 300, (method, path, await response.text())
        if shown is not None:
            assert await response.json() == json.loads(shown), (method, path)
