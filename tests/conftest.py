"""Fixtures shared by every test package: the fake executioner, started OME processes."""

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes import FakeExecutioner
from tests.processes import Ome


@pytest.fixture
async def fake_executioner() -> AsyncIterator[FakeExecutioner]:
    """A running fake executioner on 127.0.0.1; see tests/fakes.py for what it can do."""
    fake = await FakeExecutioner().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def processes() -> Iterator[list[Ome]]:
    """The OME processes a test starts; those still running at its end are killed."""
    started: list[Ome] = []
    yield started
    for ome in started:
        ome.kill()


